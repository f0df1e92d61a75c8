//! Istio (Argo's `rollout/trafficrouting/istio`): the weights of the VirtualService routes the
//! Rollout names — host-level (destinations by canary/stable Service host) or, with a
//! DestinationRule, subset-level (destinations by subset, whose labels carry the pod-template
//! hashes). HTTP routes by name (or the only one), TLS routes by port/SNI, TCP routes by port.
//! The mapping is pure (`desired_routes`, `desired_subsets`); the adapter only reads and
//! patches the objects.

use kube::api::{ApiResource, DynamicObject};
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture};
use crate::api::consts::LABEL_POD_TEMPLATE_HASH;
use crate::api::rollout::{IstioDestinationRule, IstioVirtualService};
use crate::rollout::effects::TrafficPlan;

pub struct Istio;

fn virtual_services() -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: "v1alpha3".into(),
        api_version: "networking.istio.io/v1alpha3".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    }
}

fn destination_rules() -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: "v1alpha3".into(),
        api_version: "networking.istio.io/v1alpha3".into(),
        kind: "DestinationRule".into(),
        plural: "destinationrules".into(),
    }
}

/// Does a destination host name `service` (short name, or `service.<ns>...` FQDN)?
fn host_is(host: &str, service: &str) -> bool {
    !service.is_empty()
        && (host == service
            || host
                .strip_prefix(service)
                .is_some_and(|rest| rest.starts_with('.')))
}

/// The weight a destination should carry, if it is the canary's or the stable's.
fn weight_for(dest: &Value, plan: &TrafficPlan, dr: Option<&IstioDestinationRule>) -> Option<i32> {
    let d = dest.get("destination")?;
    if let Some(dr) = dr {
        let subset = d.get("subset")?.as_str()?;
        if subset == dr.canary_subset_name {
            return Some(plan.canary_weight);
        }
        if subset == dr.stable_subset_name {
            return Some(plan.stable_weight());
        }
        return None;
    }
    let host = d.get("host")?.as_str()?;
    if host_is(host, &plan.canary_service) {
        Some(plan.canary_weight)
    } else if host_is(host, &plan.stable_service) {
        Some(plan.stable_weight())
    } else {
        None
    }
}

/// Set the weights of one route's destinations; an error names what is missing.
fn set_route(
    route: &mut Value,
    plan: &TrafficPlan,
    dr: Option<&IstioDestinationRule>,
    what: &str,
) -> Result<(), String> {
    let Some(dests) = route.get_mut("route").and_then(Value::as_array_mut) else {
        return Err(format!("{what} has no destinations"));
    };
    let mut found = (false, false);
    for dest in dests.iter_mut() {
        if let Some(w) = weight_for(dest, plan, dr) {
            if dest_is_canary(dest, plan, dr) {
                found.0 = true;
            } else {
                found.1 = true;
            }
            dest["weight"] = json!(w);
        }
    }
    if !(found.0 && found.1) {
        return Err(format!(
            "{what} does not route to both the canary and the stable destination"
        ));
    }
    Ok(())
}

fn dest_is_canary(dest: &Value, plan: &TrafficPlan, dr: Option<&IstioDestinationRule>) -> bool {
    let Some(d) = dest.get("destination") else {
        return false;
    };
    match dr {
        Some(dr) => d.get("subset").and_then(Value::as_str) == Some(dr.canary_subset_name.as_str()),
        None => d
            .get("host")
            .and_then(Value::as_str)
            .is_some_and(|h| host_is(h, &plan.canary_service)),
    }
}

/// The VirtualService `spec` with the named routes' weights set to the plan's. Pure.
pub fn desired_routes(
    spec: &Value,
    vs: &IstioVirtualService,
    plan: &TrafficPlan,
    dr: Option<&IstioDestinationRule>,
) -> Result<Value, String> {
    let mut spec = spec.clone();
    let has_tls = vs.tls_routes.as_ref().is_some_and(|r| !r.is_empty());
    let has_tcp = vs.tcp_routes.as_ref().is_some_and(|r| !r.is_empty());
    let names = vs.routes.clone().unwrap_or_default();
    if let Some(http) = spec.get_mut("http").and_then(Value::as_array_mut) {
        let single = http.len() == 1 && names.is_empty() && !has_tls && !has_tcp;
        for (i, route) in http.iter_mut().enumerate() {
            let name = route.get("name").and_then(Value::as_str).unwrap_or("");
            if single || names.iter().any(|n| n == name) {
                set_route(route, plan, dr, &format!("HTTP route {i} ({name})"))?;
            }
        }
        for n in &names {
            if !http
                .iter()
                .any(|r| r.get("name").and_then(Value::as_str) == Some(n.as_str()))
            {
                return Err(format!("HTTP route {n:?} not found"));
            }
        }
    } else if !names.is_empty() {
        return Err("spec.http not found".into());
    }
    for (kind, wanted) in [
        (
            "tls",
            vs.tls_routes.as_ref().map(|r| {
                r.iter()
                    .map(|t| (t.port, t.sni_hosts.clone()))
                    .collect::<Vec<_>>()
            }),
        ),
        (
            "tcp",
            vs.tcp_routes
                .as_ref()
                .map(|r| r.iter().map(|t| (t.port, None)).collect::<Vec<_>>()),
        ),
    ] {
        let Some(wanted) = wanted.filter(|w| !w.is_empty()) else {
            continue;
        };
        let Some(routes) = spec.get_mut(kind).and_then(Value::as_array_mut) else {
            return Err(format!("spec.{kind} not found"));
        };
        for (i, route) in routes.iter_mut().enumerate() {
            let matches = route
                .get("match")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let hit = wanted.iter().any(|(port, sni)| {
                matches.iter().any(|m| {
                    let port_ok =
                        port.is_none_or(|p| m.get("port").and_then(Value::as_i64) == Some(p));
                    let sni_ok = sni.as_ref().is_none_or(|hosts| {
                        let have: Vec<&str> = m
                            .get("sniHosts")
                            .and_then(Value::as_array)
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        hosts.iter().all(|h| have.contains(&h.as_str()))
                    });
                    port_ok && sni_ok
                })
            });
            if hit {
                set_route(
                    route,
                    plan,
                    dr,
                    &format!("{} route {i}", kind.to_uppercase()),
                )?;
            }
        }
    }
    Ok(spec)
}

/// The DestinationRule `spec` with the canary and stable subsets' hash labels set. Pure.
pub fn desired_subsets(
    spec: &Value,
    dr: &IstioDestinationRule,
    plan: &TrafficPlan,
) -> Result<Value, String> {
    let mut spec = spec.clone();
    let Some(subsets) = spec.get_mut("subsets").and_then(Value::as_array_mut) else {
        return Err("spec.subsets not found".into());
    };
    for (name, hash) in [
        (&dr.canary_subset_name, &plan.canary_hash),
        (&dr.stable_subset_name, &plan.stable_hash),
    ] {
        let Some(s) = subsets
            .iter_mut()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(name.as_str()))
        else {
            return Err(format!("subset {name:?} not found"));
        };
        if hash.is_empty() {
            continue;
        }
        s["labels"][LABEL_POD_TEMPLATE_HASH] = json!(hash);
    }
    Ok(spec)
}

async fn sync(
    cx: &RouterCtx<'_>,
    resource: &ApiResource,
    name: &str,
    want: impl FnOnce(&Value) -> Result<Value, String>,
) -> Result<usize, RouterError> {
    // `name.namespace` names an object in another namespace (Argo's
    // `GetVirtualServiceNamespaceName`).
    let (name, ns) = crate::rollout::observed::split_istio_name(name);
    let ns = if ns.is_empty() { cx.namespace } else { ns };
    let obj: DynamicObject =
        cx.get_in(resource, ns, name)
            .await?
            .ok_or_else(|| RouterError::NotFound {
                kind: resource.kind.clone(),
                name: name.to_string(),
            })?;
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    let new = want(&spec).map_err(|reason| RouterError::Malformed {
        kind: resource.kind.clone(),
        name: name.to_string(),
        reason,
    })?;
    if new == spec {
        return Ok(0);
    }
    // Lists are replaced whole by a merge patch; the resourceVersion guards against a concurrent
    // edit being overwritten (a 409 retries on the next reconcile).
    let patch = json!({
        "metadata": { "resourceVersion": obj.metadata.resource_version },
        "spec": new,
    });
    cx.writer
        .merge_patch_dynamic(resource, ns, name, &patch)
        .await?;
    Ok(1)
}

impl Router for Istio {
    fn name(&self) -> &'static str {
        "istio"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(istio) = cx.routing().and_then(|r| r.istio.as_ref()) else {
                return Ok(0);
            };
            let dr = istio.destination_rule.as_ref();
            let mut writes = 0;
            // Subsets first: a weight is never sent to a subset that selects the wrong pods.
            if let Some(dr) = dr {
                writes += sync(cx, &destination_rules(), &dr.name, |s| {
                    desired_subsets(s, dr, plan)
                })
                .await?;
            }
            let services = istio
                .virtual_service
                .iter()
                .chain(istio.virtual_services.iter().flatten());
            for vs in services {
                writes += sync(cx, &virtual_services(), &vs.name, |s| {
                    desired_routes(s, vs, plan, dr)
                })
                .await?;
            }
            Ok(writes)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn plan(w: i32) -> TrafficPlan {
        TrafficPlan {
            canary_service: "canary".into(),
            stable_service: "stable".into(),
            canary_hash: "c1".into(),
            stable_hash: "s1".into(),
            canary_weight: w,
            max_weight: 100,
            remove_managed_routes: false,
        }
    }

    fn vs_spec() -> Value {
        json!({"hosts": ["x"], "http": [
            {"name": "primary", "route": [
                {"destination": {"host": "stable"}, "weight": 100},
                {"destination": {"host": "canary.ns.svc.cluster.local"}, "weight": 0}]},
            {"name": "other", "route": [{"destination": {"host": "elsewhere"}}]}],
            "tcp": [{"match": [{"port": 3000}], "route": [
                {"destination": {"host": "stable"}, "weight": 100},
                {"destination": {"host": "canary"}, "weight": 0}]}]})
    }

    #[test]
    fn named_http_routes_get_the_weights_and_others_are_untouched() {
        let vs = IstioVirtualService {
            name: "vs".into(),
            routes: Some(vec!["primary".into()]),
            ..Default::default()
        };
        let out = desired_routes(&vs_spec(), &vs, &plan(20), None).unwrap();
        assert_eq!(out["http"][0]["route"][0]["weight"], 80);
        assert_eq!(out["http"][0]["route"][1]["weight"], 20);
        assert_eq!(out["http"][1], vs_spec()["http"][1]);
        assert_eq!(out["tcp"], vs_spec()["tcp"], "TCP routes not named");
    }

    #[test]
    fn tcp_routes_by_port() {
        let vs = IstioVirtualService {
            name: "vs".into(),
            tcp_routes: Some(vec![crate::api::rollout::TCPRoute { port: Some(3000) }]),
            routes: Some(vec!["primary".into()]),
            ..Default::default()
        };
        let out = desired_routes(&vs_spec(), &vs, &plan(40), None).unwrap();
        assert_eq!(out["tcp"][0]["route"][1]["weight"], 40);
        assert_eq!(out["tcp"][0]["route"][0]["weight"], 60);
    }

    #[test]
    fn a_missing_route_or_destination_is_an_error() {
        let vs = IstioVirtualService {
            name: "vs".into(),
            routes: Some(vec!["nope".into()]),
            ..Default::default()
        };
        assert!(desired_routes(&vs_spec(), &vs, &plan(20), None).is_err());
        let vs = IstioVirtualService {
            name: "vs".into(),
            routes: Some(vec!["other".into()]),
            ..Default::default()
        };
        let e = desired_routes(&vs_spec(), &vs, &plan(20), None).unwrap_err();
        assert!(e.contains("both the canary and the stable"), "{e}");
    }

    #[test]
    fn subset_level_sets_labels_and_weights_by_subset() {
        let dr = IstioDestinationRule {
            name: "dr".into(),
            canary_subset_name: "canary".into(),
            stable_subset_name: "stable".into(),
            additional_subset_names: None,
        };
        let spec = json!({"host": "svc", "subsets": [{"name": "canary"}, {"name": "stable", "labels": {"app": "a"}}]});
        let out = desired_subsets(&spec, &dr, &plan(10)).unwrap();
        assert_eq!(out["subsets"][0]["labels"][LABEL_POD_TEMPLATE_HASH], "c1");
        assert_eq!(out["subsets"][1]["labels"]["app"], "a");
        assert_eq!(out["subsets"][1]["labels"][LABEL_POD_TEMPLATE_HASH], "s1");
        let vs_spec = json!({"http": [{"route": [
            {"destination": {"host": "svc", "subset": "stable"}, "weight": 100},
            {"destination": {"host": "svc", "subset": "canary"}, "weight": 0}]}]});
        let vs = IstioVirtualService {
            name: "vs".into(),
            ..Default::default()
        };
        let out = desired_routes(&vs_spec, &vs, &plan(10), Some(&dr)).unwrap();
        assert_eq!(out["http"][0]["route"][1]["weight"], 10);
        assert_eq!(out["http"][0]["route"][0]["weight"], 90);
    }
}
