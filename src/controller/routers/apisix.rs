//! Apache APISIX (Argo's `rollout/trafficrouting/apisix`): in the ApisixRoute the Rollout
//! names (`apisix.apache.org/v2`, Argo's default), each http rule listed in `route.rules` — the
//! rule named like the route when the list is unset — has its canary and stable backends'
//! `weight` set (canary, `100 - canary`); the rest of the route is left as found. Header routes
//! (Argo's separate set-header ApisixRoutes) are not driven here. The mapping is pure
//! (`desired_spec`); the adapter reads and patches.

use kube::api::ApiResource;
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture};
use crate::api::rollout::ApisixRoute;
use crate::rollout::effects::TrafficPlan;

pub struct Apisix;

pub fn apisix_routes() -> ApiResource {
    ApiResource {
        group: "apisix.apache.org".into(),
        version: "v2".into(),
        api_version: "apisix.apache.org/v2".into(),
        kind: "ApisixRoute".into(),
        plural: "apisixroutes".into(),
    }
}

/// The rules to edit: `rules` when set (an empty list edits none, as in Argo), else the one
/// named like the route.
fn rule_names(route: &ApisixRoute) -> Vec<String> {
    match &route.rules {
        Some(rules) => rules.clone(),
        None => vec![route.name.clone()],
    }
}

/// The index of the http rule named `name` (Argo's `GetHttpRoute`): every rule before it must be
/// an object with a string `name`.
fn find_rule(rules: &[Value], name: &str) -> Result<usize, String> {
    for (i, r) in rules.iter().enumerate() {
        let Some(o) = r.as_object() else {
            return Err("Failed type assertion for Apisix http route".into());
        };
        match o.get("name") {
            None => return Err("Apisix http route rule name field not found".into()),
            Some(Value::String(n)) if n == name => return Ok(i),
            Some(Value::String(_)) => {}
            Some(_) => return Err("Failed type assertion for Apisix http route rule name".into()),
        }
    }
    Err(format!("Apisix http route rule {name} not found"))
}

/// A rule's `backends` (Argo's `GetBackends`).
fn backends_of(rule: &mut Value) -> Result<&mut Vec<Value>, String> {
    let Some(o) = rule.as_object_mut() else {
        return Err("Failed type assertion for Apisix http route".into());
    };
    match o.get_mut("backends") {
        None => Err("Apisix http route backends not found".into()),
        Some(Value::Array(b)) => Ok(b),
        Some(_) => Err("Failed type assertion for Apisix http route backends".into()),
    }
}

/// Set the weight of the first backend whose `serviceName` is `service` (Argo's
/// `setBackendWeight`): every backend before it must be an object with a string `serviceName`.
fn set_backend_weight(backends: &mut [Value], service: &str, weight: i32) -> Result<(), String> {
    for b in backends.iter_mut() {
        let Some(o) = b.as_object_mut() else {
            return Err("Failed type assertion for Apisix http route backends".into());
        };
        match o.get("serviceName") {
            None => return Err("serviceName field was not found in backend".into()),
            Some(Value::String(n)) if n == service => {
                o.insert("weight".into(), json!(weight));
                return Ok(());
            }
            Some(Value::String(_)) => {}
            Some(_) => return Err("serviceName field of a backend is not a string".into()),
        }
    }
    Err(format!("apisix route {service} backend was not found"))
}

/// The ApisixRoute `spec` with the named rules' canary and stable backends at the plan's
/// weights. Pure.
pub fn desired_spec(
    spec: &Value,
    route: &ApisixRoute,
    plan: &TrafficPlan,
) -> Result<Value, String> {
    let mut spec = spec.clone();
    let Some(rules) = spec.get_mut("http").and_then(Value::as_array_mut) else {
        return Err("spec.http was not found in Apisix Route manifest".into());
    };
    for name in rule_names(route) {
        let i = find_rule(rules, &name)?;
        let backends = backends_of(&mut rules[i])?;
        set_backend_weight(backends, &plan.canary_service, plan.canary_weight)?;
        set_backend_weight(backends, &plan.stable_service, 100 - plan.canary_weight)?;
    }
    Ok(spec)
}

impl Router for Apisix {
    fn name(&self) -> &'static str {
        "apisix"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(a) = cx.routing().and_then(|r| r.apisix.as_ref()) else {
                return Ok(0);
            };
            let res = apisix_routes();
            let Some(route) = a.route.as_ref() else {
                return Err(RouterError::Malformed {
                    kind: res.kind,
                    name: String::new(),
                    reason: "trafficRouting.apisix.route is not set".into(),
                });
            };
            let obj = cx
                .get(&res, &route.name)
                .await?
                .ok_or_else(|| RouterError::NotFound {
                    kind: res.kind.clone(),
                    name: route.name.clone(),
                })?;
            let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
            let new =
                desired_spec(&spec, route, plan).map_err(|reason| RouterError::Malformed {
                    kind: res.kind.clone(),
                    name: route.name.clone(),
                    reason,
                })?;
            if new == spec {
                return Ok(0);
            }
            // The http list is replaced whole; the resourceVersion makes it an update of what
            // was read (Argo's Update), a concurrent edit retrying on the next reconcile.
            let patch = json!({
                "metadata": { "resourceVersion": obj.metadata.resource_version },
                "spec": { "http": new["http"] },
            });
            cx.writer
                .merge_patch_dynamic(&res, cx.namespace, &route.name, &patch)
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

    fn route(name: &str, rules: Option<&[&str]>) -> ApisixRoute {
        ApisixRoute {
            name: name.into(),
            rules: rules.map(|r| r.iter().map(|s| s.to_string()).collect()),
        }
    }

    /// Argo's test ApisixRoute.
    fn spec() -> Value {
        json!({"http": [{"name": "mocks-apisix-route",
            "match": {"paths": ["/*"], "methods": ["GET"]},
            "backends": [
                {"serviceName": "stable-rollout", "servicePort": 80, "weight": 100},
                {"serviceName": "canary-rollout", "servicePort": 80, "weight": 0}]}]})
    }

    fn weights(spec: &Value, rule: usize) -> (i64, i64) {
        let b = &spec["http"][rule]["backends"];
        (
            b[1]["weight"].as_i64().unwrap(),
            b[0]["weight"].as_i64().unwrap(),
        )
    }

    #[test]
    fn without_rules_the_rule_named_like_the_route_gets_the_weights() {
        let p = plan("canary-rollout", "stable-rollout", 30);
        let new = desired_spec(&spec(), &route("mocks-apisix-route", None), &p).unwrap();
        assert_eq!(weights(&new, 0), (30, 70));
        assert_eq!(new["http"][0]["match"], spec()["http"][0]["match"]);
        assert_eq!(new["http"][0]["backends"][0]["servicePort"], 80);
        let back = desired_spec(
            &new,
            &route("mocks-apisix-route", None),
            &plan("canary-rollout", "stable-rollout", 0),
        );
        assert_eq!(back.unwrap(), spec());
    }

    #[test]
    fn listed_rules_are_edited_and_others_left_alone() {
        let mut s = spec();
        let mut second = s["http"][0].clone();
        second["name"] = json!("second");
        let mut third = s["http"][0].clone();
        third["name"] = json!("third");
        s["http"].as_array_mut().unwrap().extend([second, third]);
        let p = plan("canary-rollout", "stable-rollout", 40);
        let new =
            desired_spec(&s, &route("r", Some(&["second", "mocks-apisix-route"])), &p).unwrap();
        assert_eq!(weights(&new, 0), (40, 60));
        assert_eq!(weights(&new, 1), (40, 60));
        assert_eq!(weights(&new, 2), (0, 100));
        // An empty list edits no rule, as in Argo.
        assert_eq!(desired_spec(&s, &route("r", Some(&[])), &p).unwrap(), s);
    }

    #[test]
    fn a_manifest_without_http_rules_is_an_error() {
        let p = plan("canary-rollout", "stable-rollout", 30);
        let e = desired_spec(&Value::Null, &route("mocks-apisix-route", None), &p);
        assert_eq!(
            e.unwrap_err(),
            "spec.http was not found in Apisix Route manifest"
        );
    }

    #[test]
    fn an_unknown_canary_or_stable_backend_is_an_error() {
        let r = route("mocks-apisix-route", None);
        let e = desired_spec(
            &spec(),
            &r,
            &plan("canary-rollout", "fake-stable-rollout", 30),
        );
        assert_eq!(
            e.unwrap_err(),
            "apisix route fake-stable-rollout backend was not found"
        );
        let e = desired_spec(
            &spec(),
            &r,
            &plan("fake-canary-rollout", "stable-rollout", 30),
        );
        assert_eq!(
            e.unwrap_err(),
            "apisix route fake-canary-rollout backend was not found"
        );
    }

    #[test]
    fn malformed_rules_are_errors() {
        // Argo's TestGetHttpRouteError cases.
        assert!(find_rule(&[], "nil").is_err());
        assert!(find_rule(&[json!("")], "Failed type").is_err());
        assert!(find_rule(&[json!({"x": null})], "noname").is_err());
        assert!(find_rule(&[json!({"name": 123})], "name type error").is_err());
        assert_eq!(
            find_rule(&[json!({"name": "123"})], "name not found").unwrap_err(),
            "Apisix http route rule name not found not found"
        );
        assert_eq!(
            find_rule(&[json!({"name": "a"}), json!({"name": "b"})], "b"),
            Ok(1)
        );
    }

    #[test]
    fn malformed_backends_are_errors() {
        // Argo's TestGetBackendsError and TestSetBackendWeightError cases.
        for rule in [
            Value::Null,
            json!(123),
            json!({}),
            json!({"backends": "123"}),
        ] {
            let mut rule = rule;
            assert!(backends_of(&mut rule).is_err(), "{rule}");
        }
        assert!(set_backend_weight(&mut [], "", 0).is_err());
        assert!(set_backend_weight(&mut [json!("")], "", 0).is_err());
        assert!(set_backend_weight(&mut [json!({"abc": 123})], "", 0).is_err());
        assert!(set_backend_weight(&mut [json!({"serviceName": 123})], "", 0).is_err());
    }
}
