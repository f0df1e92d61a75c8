//! Ambassador (Argo's `rollout/trafficrouting/ambassador`): beside each base Mapping the Rollout
//! lists, a canary Mapping `<mapping>-canary`, a copy of the base (without its metadata) whose
//! service is the base's with the stable Service replaced by the canary one, carrying the canary
//! weight. It is created only once the weight is above 0, and at weight 0 (promotion, abort) it
//! is zeroed, given Argo's 5 seconds to propagate, and deleted. Like Argo, the canary Mapping has
//! no owner. `getambassador.io/v2` (Argo's `--ambassador-api-version` default). The mapping is
//! pure (`canary_step`, `canary_mapping`); the adapter reads, creates, patches, deletes.

use std::time::Duration;

use kube::api::{ApiResource, DynamicObject, ObjectMeta};
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture};
use crate::rollout::effects::TrafficPlan;

pub struct Ambassador;

/// How long a zeroed canary Mapping stays before it is deleted (Argo's propagation sleep).
const PROPAGATION: Duration = Duration::from_secs(5);

pub fn mappings() -> ApiResource {
    ApiResource {
        group: "getambassador.io".into(),
        version: "v2".into(),
        api_version: "getambassador.io/v2".into(),
        kind: "Mapping".into(),
        plural: "mappings".into(),
    }
}

/// `<base>-canary`, the base cut to 246 bytes (Argo's `buildCanaryMappingName`).
pub fn canary_mapping_name(base: &str) -> String {
    let mut cut = base.len().min(246);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-canary", &base[..cut])
}

/// `spec.weight`, 0 when unset or not an integer (Argo's `GetMappingWeight`).
fn weight_of(obj: &Value) -> i64 {
    obj.pointer("/spec/weight")
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// What to do with one canary Mapping.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Already right (or absent at weight 0).
    Nothing,
    /// Absent at a weight above 0: build it from the base Mapping.
    Create,
    /// Present at another weight above 0.
    SetWeight,
    /// Weight 0: zero it first when it is not yet, wait, delete it.
    Delete { zero_first: bool },
}

/// The step for a canary Mapping as read (`None`: absent) at `weight`. Pure.
pub fn canary_step(existing: Option<&Value>, weight: i32) -> Step {
    match existing {
        None if weight == 0 => Step::Nothing,
        None => Step::Create,
        Some(m) if weight == 0 => Step::Delete {
            zero_first: weight_of(m) != 0,
        },
        Some(m) if weight_of(m) == i64::from(weight) => Step::Nothing,
        Some(_) => Step::SetWeight,
    }
}

/// The canary Mapping built from `base` (Argo's `buildCanaryMapping`): everything but the
/// metadata (and status) copied, named `<base>-canary` in the base's namespace, the first
/// occurrence of the stable Service in `spec.service` replaced by the canary Service, the
/// weight set. An error when the base defines a weight itself. Pure.
pub fn canary_mapping(
    base: &DynamicObject,
    canary_service: &str,
    stable_service: &str,
    weight: i32,
) -> Result<DynamicObject, String> {
    let base_name = base.metadata.name.clone().unwrap_or_default();
    if weight_of(&base.data) != 0 {
        return Err(format!(
            "Ambassador mapping \"{base_name}\" can not define weight"
        ));
    }
    let mut data = base.data.clone();
    if let Some(o) = data.as_object_mut() {
        o.remove("status");
    }
    let service = data
        .pointer("/spec/service")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .replacen(stable_service, canary_service, 1);
    if !data["spec"].is_object() {
        data["spec"] = json!({});
    }
    data["spec"]["service"] = json!(service);
    data["spec"]["weight"] = json!(weight);
    Ok(DynamicObject {
        types: base.types.clone(),
        metadata: ObjectMeta {
            name: Some(canary_mapping_name(&base_name)),
            namespace: base.metadata.namespace.clone(),
            ..ObjectMeta::default()
        },
        data,
    })
}

/// Bring the canary Mapping of `base` to the plan. Returns the writes made.
async fn sync(cx: &RouterCtx<'_>, base: &str, plan: &TrafficPlan) -> Result<usize, RouterError> {
    let res = mappings();
    let name = canary_mapping_name(base);
    let existing = cx.get(&res, &name).await?;
    let weight = plan.canary_weight;
    match canary_step(existing.as_ref().map(|m| &m.data), weight) {
        Step::Nothing => Ok(0),
        Step::Create => {
            let base_obj = cx
                .get(&res, base)
                .await?
                .ok_or_else(|| RouterError::NotFound {
                    kind: res.kind.clone(),
                    name: base.to_string(),
                })?;
            let obj = canary_mapping(
                &base_obj,
                &plan.canary_service,
                &plan.stable_service,
                weight,
            )
            .map_err(|reason| RouterError::Malformed {
                kind: res.kind.clone(),
                name: base.to_string(),
                reason,
            })?;
            cx.writer.create_dynamic(&res, cx.namespace, &obj).await?;
            Ok(1)
        }
        Step::SetWeight => {
            let patch = json!({ "spec": { "weight": weight } });
            cx.writer
                .merge_patch_dynamic(&res, cx.namespace, &name, &patch)
                .await?;
            Ok(1)
        }
        Step::Delete { zero_first } => {
            let mut writes = 0;
            if zero_first {
                let patch = json!({ "spec": { "weight": 0 } });
                cx.writer
                    .merge_patch_dynamic(&res, cx.namespace, &name, &patch)
                    .await?;
                writes += 1;
            }
            // As in Argo, the reconcile waits: the zero weight reaches the proxies before the
            // Mapping goes. A crash in between finds the Mapping at 0 and waits again.
            tokio::time::sleep(PROPAGATION).await;
            if cx.writer.delete_dynamic(&res, cx.namespace, &name).await? {
                writes += 1;
                cx.event(
                    "CanaryMappingDeleted",
                    format!("Canary mapping \"{name}\" deleted"),
                )
                .await;
            }
            Ok(writes)
        }
    }
}

impl Router for Ambassador {
    fn name(&self) -> &'static str {
        "ambassador"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(a) = cx.routing().and_then(|r| r.ambassador.as_ref()) else {
                return Ok(0);
            };
            // Every Mapping is tried (Argo handles them concurrently); the first error is
            // returned after all of them.
            let mut writes = 0;
            let mut first_error = None;
            for base in &a.mappings {
                match sync(cx, base, plan).await {
                    Ok(n) => writes += n,
                    Err(e) => {
                        tracing::warn!(mapping = %base, "canary mapping: {e}");
                        first_error.get_or_insert(e);
                    }
                }
            }
            if writes > 0 && plan.canary_weight > 0 {
                cx.event(
                    "CanaryMappingWeightUpdate",
                    format!("Set canary mapping weight to {}", plan.canary_weight),
                )
                .await;
            }
            match first_error {
                Some(e) => Err(e),
                None => Ok(writes),
            }
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Argo's test base Mapping.
    fn base(spec: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "getambassador.io/v2", "kind": "Mapping",
            "metadata": {"name": "myapp-mapping", "namespace": "default",
                "labels": {"a": "b"}, "resourceVersion": "7", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn spec() -> Value {
        json!({"prefix": "/myapp/", "rewrite": "/myapp/", "service": "main-service:8080"})
    }

    #[test]
    fn a_new_canary_mapping_copies_the_base_onto_the_canary_service() {
        let m = canary_mapping(&base(spec()), "canary-service", "main-service", 13).unwrap();
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["apiVersion"], "getambassador.io/v2");
        assert_eq!(v["kind"], "Mapping");
        assert_eq!(
            v["metadata"],
            json!({"name": "myapp-mapping-canary", "namespace": "default"})
        );
        assert_eq!(
            v["spec"],
            json!({"prefix": "/myapp/", "rewrite": "/myapp/",
                "service": "canary-service:8080", "weight": 13})
        );
    }

    #[test]
    fn a_base_without_a_port_or_of_another_kind_is_copied_alike() {
        let mut s = spec();
        s["service"] = json!("main-service");
        let m = canary_mapping(&base(s), "canary-service", "main-service", 13).unwrap();
        assert_eq!(m.data["spec"]["service"], "canary-service");
        let mut v3 = base(spec());
        v3.types = Some(kube::api::TypeMeta {
            api_version: "x.getambassador.io/v3alpha1".into(),
            kind: "AmbassadorMapping".into(),
        });
        let m = canary_mapping(&v3, "canary-service", "main-service", 13).unwrap();
        assert_eq!(m.types.unwrap().kind, "AmbassadorMapping");
    }

    #[test]
    fn a_base_that_defines_a_weight_is_an_error() {
        let mut s = spec();
        s["weight"] = json!(20);
        let e = canary_mapping(&base(s), "canary-service", "main-service", 13).unwrap_err();
        assert_eq!(
            e,
            "Ambassador mapping \"myapp-mapping\" can not define weight"
        );
    }

    #[test]
    fn the_step_follows_argos_set_weight() {
        let at = |w: i64| json!({"spec": {"weight": w}});
        // Absent: created above 0, left absent at 0.
        assert_eq!(canary_step(None, 13), Step::Create);
        assert_eq!(canary_step(None, 0), Step::Nothing);
        // Present: weight updated, nothing written when it already is.
        assert_eq!(canary_step(Some(&at(20)), 13), Step::SetWeight);
        assert_eq!(canary_step(Some(&at(13)), 13), Step::Nothing);
        // Weight 0: zeroed then deleted, or deleted when already at 0.
        assert_eq!(
            canary_step(Some(&at(20)), 0),
            Step::Delete { zero_first: true }
        );
        assert_eq!(
            canary_step(Some(&at(0)), 0),
            Step::Delete { zero_first: false }
        );
        assert_eq!(
            canary_step(Some(&json!({"spec": {}})), 0),
            Step::Delete { zero_first: false }
        );
    }

    #[test]
    fn the_canary_name_respects_the_resource_name_size() {
        assert_eq!(canary_mapping_name("myapp-mapping"), "myapp-mapping-canary");
        let long = "very-long-mapping-name-".repeat(11);
        let name = canary_mapping_name(&long);
        assert_eq!(name.len(), 253);
        assert_eq!(name, format!("{}-canary", &long[..246]));
        // A multi-byte character is never split.
        let wide = "é".repeat(200);
        assert!(canary_mapping_name(&wide).ends_with("é-canary"));
    }
}
