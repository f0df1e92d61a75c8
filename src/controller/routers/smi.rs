//! SMI (Argo's `rollout/trafficrouting/smi`): one TrafficSplit per Rollout, created by the
//! controller (and owned by the Rollout) when missing, its root service and backends set to
//! the canary and stable weights otherwise. Which `split.smi-spec.io` version is spoken is a
//! controller flag, as in Argo (`--traffic-split-api-version`, default `v1alpha1`); the versions
//! differ only in how a weight is written. The mapping is pure (`desired_spec`, `spec_patch`).

use kube::api::{ApiResource, DynamicObject, ObjectMeta, TypeMeta};
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture, is_controlled_by, merge_diff};
use crate::api::rollout::Rollout;
use crate::rollout::classify::owner_reference;
use crate::rollout::effects::TrafficPlan;

/// The `split.smi-spec.io` version the controller reads and writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SmiVersion {
    /// Weights are quantities (written as strings: `"20"`). Argo's default.
    #[default]
    V1alpha1,
    /// Weights are integers.
    V1alpha2,
    /// Weights are integers; the spec may also carry `matches`.
    V1alpha3,
}

impl SmiVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            SmiVersion::V1alpha1 => "v1alpha1",
            SmiVersion::V1alpha2 => "v1alpha2",
            SmiVersion::V1alpha3 => "v1alpha3",
        }
    }

    /// A weight as this version writes it.
    fn weight(self, w: i32) -> Value {
        match self {
            SmiVersion::V1alpha1 => json!(w.to_string()),
            SmiVersion::V1alpha2 | SmiVersion::V1alpha3 => json!(w),
        }
    }
}

impl std::str::FromStr for SmiVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "v1alpha1" => Ok(SmiVersion::V1alpha1),
            "v1alpha2" => Ok(SmiVersion::V1alpha2),
            "v1alpha3" => Ok(SmiVersion::V1alpha3),
            other => Err(format!("Unsupported TrafficSplit API version `{other}`")),
        }
    }
}

pub struct Smi;

pub fn traffic_splits(version: SmiVersion) -> ApiResource {
    ApiResource {
        group: "split.smi-spec.io".into(),
        version: version.as_str().into(),
        api_version: format!("split.smi-spec.io/{}", version.as_str()),
        kind: "TrafficSplit".into(),
        plural: "trafficsplits".into(),
    }
}

/// `trafficSplitName`, or the Rollout's name.
pub fn split_name(ro: &Rollout) -> String {
    smi_of(ro)
        .and_then(|s| s.traffic_split_name.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| ro.metadata.name.clone().unwrap_or_default())
}

fn smi_of(ro: &Rollout) -> Option<&crate::api::rollout::SMITrafficRouting> {
    ro.spec
        .strategy
        .canary
        .as_ref()?
        .traffic_routing
        .as_ref()?
        .smi
        .as_ref()
}

/// `rootService`, or the stable Service.
fn root_service(ro: &Rollout, plan: &TrafficPlan) -> String {
    smi_of(ro)
        .and_then(|s| s.root_service.clone())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| plan.stable_service.clone())
}

/// The TrafficSplit `spec`: the root service, the canary backend first, the stable one last.
/// The stable weight is `100 - canary` whatever `maxTrafficWeight` is, as in Argo. Pure.
pub fn desired_spec(version: SmiVersion, root: &str, plan: &TrafficPlan) -> Value {
    json!({
        "service": root,
        "backends": [
            {"service": plan.canary_service, "weight": version.weight(plan.canary_weight)},
            {"service": plan.stable_service, "weight": version.weight(100 - plan.canary_weight)},
        ],
    })
}

/// The existing `spec` as the version's type sees it: only the fields the version defines, a
/// v1alpha1 weight written as a number read as the quantity it is.
fn known_spec(version: SmiVersion, spec: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(s) = spec.get("service").filter(|s| !s.is_null()) {
        out.insert("service".into(), s.clone());
    }
    if let Some(backends) = spec.get("backends").and_then(Value::as_array) {
        let backends: Vec<Value> = backends
            .iter()
            .map(|b| {
                let mut o = serde_json::Map::new();
                if let Some(s) = b.get("service") {
                    o.insert("service".into(), s.clone());
                }
                if let Some(w) = b.get("weight") {
                    let w = match (version, w) {
                        (SmiVersion::V1alpha1, Value::Number(n)) => json!(n.to_string()),
                        _ => w.clone(),
                    };
                    o.insert("weight".into(), w);
                }
                Value::Object(o)
            })
            .collect();
        out.insert("backends".into(), Value::Array(backends));
    }
    if version == SmiVersion::V1alpha3
        && let Some(m) = spec.get("matches").filter(|m| !m.is_null())
    {
        out.insert("matches".into(), m.clone());
    }
    Value::Object(out)
}

/// The merge patch that brings an existing TrafficSplit's `spec` to `desired` (Argo's two-way
/// merge patch of the specs), `None` when it already is. Pure.
pub fn spec_patch(version: SmiVersion, existing: &Value, desired: &Value) -> Option<Value> {
    merge_diff(&known_spec(version, existing), desired).map(|d| json!({ "spec": d }))
}

/// The TrafficSplit to create, owned by the Rollout.
pub fn new_split(
    version: SmiVersion,
    ro: &Rollout,
    name: &str,
    namespace: &str,
    spec: Value,
) -> DynamicObject {
    let res = traffic_splits(version);
    DynamicObject {
        types: Some(TypeMeta {
            api_version: res.api_version,
            kind: res.kind,
        }),
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            owner_references: Some(vec![owner_reference(ro)]),
            ..ObjectMeta::default()
        },
        data: json!({ "spec": spec }),
    }
}

impl Router for Smi {
    fn name(&self) -> &'static str {
        "smi"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            if cx.routing().and_then(|r| r.smi.as_ref()).is_none() {
                return Ok(0);
            }
            let res = traffic_splits(cx.smi_version);
            let name = split_name(cx.rollout);
            let desired = desired_spec(cx.smi_version, &root_service(cx.rollout, plan), plan);
            let Some(existing) = cx.get(&res, &name).await? else {
                let obj = new_split(cx.smi_version, cx.rollout, &name, cx.namespace, desired);
                match cx.writer.create_dynamic(&res, cx.namespace, &obj).await {
                    Ok(_) => {}
                    Err(crate::controller::Error::Kube(kube::Error::Api(s))) if s.code == 404 => {
                        return Err(RouterError::NotInstalled {
                            kind: res.kind,
                            api_version: res.api_version,
                        });
                    }
                    Err(e) => return Err(e.into()),
                }
                cx.event(
                    "TrafficSplitCreated",
                    format!("TrafficSplit `{name}` created"),
                )
                .await;
                return Ok(1);
            };
            if !is_controlled_by(&existing.metadata, cx.rollout) {
                return Err(RouterError::NotOwned {
                    kind: res.kind,
                    name,
                });
            }
            let spec = existing.data.get("spec").cloned().unwrap_or(Value::Null);
            let Some(patch) = spec_patch(cx.smi_version, &spec, &desired) else {
                return Ok(0);
            };
            cx.writer
                .merge_patch_dynamic(&res, cx.namespace, &name, &patch)
                .await?;
            Ok(1)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(w: i32) -> TrafficPlan {
        TrafficPlan {
            canary_service: "canary-service".into(),
            stable_service: "stable-service".into(),
            canary_hash: "c1".into(),
            stable_hash: "s1".into(),
            canary_weight: w,
            max_weight: 100,
            remove_managed_routes: false,
        }
    }

    fn rollout(root: Option<&str>, split: Option<&str>) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "rollout", "namespace": "ns", "uid": "u-1"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {},
                "strategy": {"canary": {"canaryService": "canary-service", "stableService": "stable-service",
                    "trafficRouting": {"smi": {"rootService": root, "trafficSplitName": split}}}}}
        }))
        .unwrap()
    }

    #[test]
    fn the_version_flag_takes_argos_three_versions_and_defaults_to_v1alpha1() {
        assert_eq!(SmiVersion::default(), SmiVersion::V1alpha1);
        for v in ["v1alpha1", "v1alpha2", "v1alpha3"] {
            assert_eq!(v.parse::<SmiVersion>().unwrap().as_str(), v);
        }
        let e = "does-not-exist".parse::<SmiVersion>().unwrap_err();
        assert_eq!(e, "Unsupported TrafficSplit API version `does-not-exist`");
        assert_eq!(
            traffic_splits(SmiVersion::V1alpha3).api_version,
            "split.smi-spec.io/v1alpha3"
        );
    }

    #[test]
    fn a_new_split_takes_the_rollout_name_and_the_stable_service_as_root() {
        let ro = rollout(None, None);
        let p = plan(10);
        let name = split_name(&ro);
        assert_eq!(name, "rollout");
        let spec = desired_spec(SmiVersion::V1alpha1, &root_service(&ro, &p), &p);
        let obj = new_split(SmiVersion::V1alpha1, &ro, &name, "ns", spec);
        let v = serde_json::to_value(&obj).unwrap();
        assert_eq!(v["apiVersion"], "split.smi-spec.io/v1alpha1");
        assert_eq!(v["kind"], "TrafficSplit");
        assert_eq!(v["metadata"]["name"], "rollout");
        let owner = &v["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "Rollout");
        assert_eq!(owner["uid"], "u-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(
            v["spec"],
            json!({"service": "stable-service", "backends": [
                {"service": "canary-service", "weight": "10"},
                {"service": "stable-service", "weight": "90"}]})
        );
    }

    #[test]
    fn named_split_and_root_service_and_integer_weights_in_v1alpha2_and_v1alpha3() {
        let ro = rollout(Some("root-service"), Some("traffic-split-name"));
        assert_eq!(split_name(&ro), "traffic-split-name");
        let p = plan(10);
        assert_eq!(root_service(&ro, &p), "root-service");
        for v in [SmiVersion::V1alpha2, SmiVersion::V1alpha3] {
            let spec = desired_spec(v, "root-service", &p);
            assert_eq!(spec["backends"][0]["weight"], 10);
            assert_eq!(spec["backends"][1]["weight"], 90);
            assert_eq!(spec["service"], "root-service");
        }
    }

    #[test]
    fn an_existing_split_gets_the_new_weights_and_an_unchanged_one_nothing() {
        for v in [
            SmiVersion::V1alpha1,
            SmiVersion::V1alpha2,
            SmiVersion::V1alpha3,
        ] {
            let old = desired_spec(v, "root-service", &plan(10));
            let new = desired_spec(v, "root-service", &plan(50));
            let patch = spec_patch(v, &old, &new).unwrap();
            assert_eq!(
                patch["spec"]["backends"][0]["weight"],
                v.weight(50),
                "{v:?}"
            );
            assert_eq!(patch["spec"]["backends"][1]["weight"], v.weight(50));
            assert!(patch["spec"].get("service").is_none(), "{patch}");
            assert_eq!(spec_patch(v, &new, &new), None, "{v:?}");
        }
    }

    #[test]
    fn a_v1alpha1_weight_written_as_a_number_is_the_same_quantity() {
        let existing = json!({"service": "root", "backends": [
            {"service": "canary-service", "weight": 10},
            {"service": "stable-service", "weight": 90}]});
        let desired = desired_spec(SmiVersion::V1alpha1, "root", &plan(10));
        assert_eq!(spec_patch(SmiVersion::V1alpha1, &existing, &desired), None);
    }

    #[test]
    fn a_changed_root_service_or_foreign_backend_is_put_back() {
        let existing = json!({"service": "elsewhere", "backends": [
            {"service": "canary-service", "weight": 10},
            {"service": "other", "weight": 5},
            {"service": "stable-service", "weight": 85}]});
        let desired = desired_spec(SmiVersion::V1alpha2, "root", &plan(10));
        let patch = spec_patch(SmiVersion::V1alpha2, &existing, &desired).unwrap();
        assert_eq!(patch["spec"]["service"], "root");
        assert_eq!(patch["spec"]["backends"], desired["backends"]);
    }

    #[test]
    fn v1alpha3_matches_go_and_other_versions_ignore_them() {
        let mut existing = desired_spec(SmiVersion::V1alpha3, "root", &plan(10));
        existing["matches"] = json!([{"kind": "HTTPRouteGroup", "name": "g"}]);
        let desired = desired_spec(SmiVersion::V1alpha3, "root", &plan(10));
        let patch = spec_patch(SmiVersion::V1alpha3, &existing, &desired).unwrap();
        assert_eq!(patch, json!({"spec": {"matches": null}}));
        let mut existing = desired_spec(SmiVersion::V1alpha2, "root", &plan(10));
        existing["matches"] = json!([{"kind": "HTTPRouteGroup", "name": "g"}]);
        let desired = desired_spec(SmiVersion::V1alpha2, "root", &plan(10));
        assert_eq!(spec_patch(SmiVersion::V1alpha2, &existing, &desired), None);
    }

    #[test]
    fn promotion_weight_zero_sends_everything_to_stable() {
        let spec = desired_spec(SmiVersion::V1alpha1, "root", &plan(0));
        assert_eq!(spec["backends"][0]["weight"], "0");
        assert_eq!(spec["backends"][1]["weight"], "100");
    }
}
