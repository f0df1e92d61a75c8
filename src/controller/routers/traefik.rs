//! Traefik (Argo's `rollout/trafficrouting/traefik`): the weighted TraefikService the Rollout
//! names already lists the canary and stable Services under `spec.weighted.services`; only
//! their two `weight`s are set (canary, `100 - canary`), everything else is left as found.
//! Sluice speaks Argo's default `traefik.io/v1alpha1` (Traefik v3). The mapping is pure
//! (`desired_spec`); the adapter reads and patches.

use kube::api::ApiResource;
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture};
use crate::rollout::effects::TrafficPlan;

pub struct Traefik;

/// Argo's `--traefik-api-group` / `--traefik-api-version` defaults.
pub const API_GROUP: &str = "traefik.io";
pub const API_VERSION: &str = "v1alpha1";

pub fn traefik_services() -> ApiResource {
    ApiResource {
        group: API_GROUP.into(),
        version: API_VERSION.into(),
        api_version: format!("{API_GROUP}/{API_VERSION}"),
        kind: "TraefikService".into(),
        plural: "traefikservices".into(),
    }
}

/// The index of the entry of `services` named `name`; an error (as Argo's `getService`) when an
/// entry is not an object or has no string `name` before the match is found.
fn find_service(services: &[Value], name: &str) -> Result<Option<usize>, String> {
    for (i, s) in services.iter().enumerate() {
        let Some(o) = s.as_object() else {
            return Err("a weighted service is not an object".into());
        };
        match o.get("name").and_then(Value::as_str) {
            Some(n) if n == name => return Ok(Some(i)),
            Some(_) => {}
            None => return Err("name field was not found in service".into()),
        }
    }
    Ok(None)
}

/// The TraefikService `spec` with the canary entry at the plan's weight and the stable one at
/// `100 - weight` (whatever `maxTrafficWeight` is, as in Argo). Pure.
pub fn desired_spec(spec: &Value, plan: &TrafficPlan) -> Result<Value, String> {
    let mut spec = spec.clone();
    let Some(services) = spec
        .pointer_mut("/weighted/services")
        .and_then(Value::as_array_mut)
    else {
        return Err("spec.weighted.services was not found in traefik service manifest".into());
    };
    let canary = find_service(services, &plan.canary_service)?
        .ok_or("traefik canary service was not found")?;
    services[canary]["weight"] = json!(plan.canary_weight);
    let stable = find_service(services, &plan.stable_service)?
        .ok_or("traefik stable service was not found")?;
    services[stable]["weight"] = json!(100 - plan.canary_weight);
    Ok(spec)
}

impl Router for Traefik {
    fn name(&self) -> &'static str {
        "traefik"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(t) = cx.routing().and_then(|r| r.traefik.as_ref()) else {
                return Ok(0);
            };
            let res = traefik_services();
            let name = &t.weighted_traefik_service_name;
            let obj = cx
                .get(&res, name)
                .await?
                .ok_or_else(|| RouterError::NotFound {
                    kind: res.kind.clone(),
                    name: name.clone(),
                })?;
            let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
            let new = desired_spec(&spec, plan).map_err(|reason| RouterError::Malformed {
                kind: res.kind.clone(),
                name: name.clone(),
                reason,
            })?;
            if new == spec {
                return Ok(0);
            }
            // The list is replaced whole; the resourceVersion makes it an update of what was
            // read (Argo's Update), a concurrent edit retrying on the next reconcile.
            let patch = json!({
                "metadata": { "resourceVersion": obj.metadata.resource_version },
                "spec": { "weighted": { "services": new["weighted"]["services"] } },
            });
            cx.writer
                .merge_patch_dynamic(&res, cx.namespace, name, &patch)
                .await?;
            Ok(1)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(canary: &str, stable: &str, w: i32) -> TrafficPlan {
        TrafficPlan {
            canary_service: canary.into(),
            stable_service: stable.into(),
            canary_weight: w,
            max_weight: 100,
            ..TrafficPlan::default()
        }
    }

    /// Argo's test TraefikService.
    fn spec() -> Value {
        json!({"weighted": {"services": [
            {"name": "stable-rollout", "weight": 100, "port": 80},
            {"name": "canary-rollout", "weight": 0, "port": 80}]}})
    }

    #[test]
    fn the_two_services_get_the_weight_and_its_complement() {
        let new = desired_spec(&spec(), &plan("canary-rollout", "stable-rollout", 30)).unwrap();
        assert_eq!(
            new,
            json!({"weighted": {"services": [
                {"name": "stable-rollout", "weight": 70, "port": 80},
                {"name": "canary-rollout", "weight": 30, "port": 80}]}})
        );
        let back = desired_spec(&new, &plan("canary-rollout", "stable-rollout", 0)).unwrap();
        assert_eq!(back, spec());
    }

    #[test]
    fn other_services_and_fields_are_left_alone() {
        let mut s = spec();
        s["weighted"]["services"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "mirror", "weight": 5}));
        s["weighted"]["sticky"] = json!({"cookie": {"name": "lb"}});
        let new = desired_spec(&s, &plan("canary-rollout", "stable-rollout", 20)).unwrap();
        assert_eq!(
            new["weighted"]["services"][2],
            json!({"name": "mirror", "weight": 5})
        );
        assert_eq!(new["weighted"]["sticky"], s["weighted"]["sticky"]);
        assert_eq!(new["weighted"]["services"][1]["weight"], 20);
    }

    #[test]
    fn a_manifest_without_weighted_services_is_an_error() {
        let e = desired_spec(&Value::Null, &plan("canary-rollout", "stable-rollout", 30));
        assert_eq!(
            e.unwrap_err(),
            "spec.weighted.services was not found in traefik service manifest"
        );
        let e = desired_spec(
            &json!({"weighted": {}}),
            &plan("canary-rollout", "stable-rollout", 30),
        );
        assert!(e.is_err());
    }

    #[test]
    fn an_unknown_canary_or_stable_service_is_an_error() {
        let e = desired_spec(&spec(), &plan("canary-rollout", "fake-stable-rollout", 30));
        assert_eq!(e.unwrap_err(), "traefik stable service was not found");
        let e = desired_spec(&spec(), &plan("fake-canary-rollout", "stable-rollout", 30));
        assert_eq!(e.unwrap_err(), "traefik canary service was not found");
    }

    #[test]
    fn a_service_without_a_name_or_not_an_object_is_an_error() {
        // Argo's TestGetService cases.
        assert!(find_service(&[json!(12)], "default").is_err());
        assert!(find_service(&[json!({"weight": 100})], "default").is_err());
        assert!(find_service(&[json!({"name": null})], "default").is_err());
        assert_eq!(
            find_service(&[json!({"name": "default"})], "default"),
            Ok(Some(0))
        );
        assert_eq!(find_service(&[json!({"name": "x"})], "default"), Ok(None));
    }

    #[test]
    fn argos_default_group_and_version() {
        let r = traefik_services();
        assert_eq!(r.api_version, "traefik.io/v1alpha1");
        assert_eq!(r.plural, "traefikservices");
    }
}
