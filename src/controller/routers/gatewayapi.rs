//! Gateway API (what Argo does through the `argoproj-labs/gatewayAPI` traffic-router plugin),
//! natively: the weights of the backendRefs naming the canary and stable Services in the
//! HTTPRoutes, GRPCRoutes, TCPRoutes and TLSRoutes the plugin config names, so manifests written
//! for Argo and the plugin run unchanged. The mapping is pure (`GatewayApiConfig::parse`,
//! `desired_rules`, `in_progress_label`); the adapter only reads and patches the routes.

use std::collections::{BTreeMap, BTreeSet};

use kube::api::ApiResource;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture};
use crate::api::rollout::RolloutTrafficRouting;
use crate::rollout::effects::TrafficPlan;

/// The plugin name Argo Rollouts manifests use for the Gateway API plugin.
pub const PLUGIN_KEY: &str = "argoproj-labs/gatewayAPI";

/// The label the plugin puts on a route while the canary carries traffic (its default).
pub const IN_PROGRESS_LABEL_KEY: &str = "rollouts.argoproj.io/gatewayapi-canary";
pub const IN_PROGRESS_LABEL_VALUE: &str = "in-progress";

pub struct GatewayApi;

/// The four route kinds the plugin drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteKind {
    Http,
    Grpc,
    Tcp,
    Tls,
}

impl RouteKind {
    pub fn kind(self) -> &'static str {
        match self {
            RouteKind::Http => "HTTPRoute",
            RouteKind::Grpc => "GRPCRoute",
            RouteKind::Tcp => "TCPRoute",
            RouteKind::Tls => "TLSRoute",
        }
    }

    /// HTTPRoute and GRPCRoute are v1; TCPRoute and TLSRoute are still only v1alpha2.
    pub fn resource(self) -> ApiResource {
        let version = match self {
            RouteKind::Http | RouteKind::Grpc => "v1",
            RouteKind::Tcp | RouteKind::Tls => "v1alpha2",
        };
        ApiResource {
            group: "gateway.networking.k8s.io".into(),
            version: version.into(),
            api_version: format!("gateway.networking.k8s.io/{version}"),
            kind: self.kind().into(),
            plural: format!("{}s", self.kind().to_lowercase()),
        }
    }

    /// Only HTTP and gRPC routes carry header routes (rules the plugin adds for
    /// `setHeaderRoute`), whose canary-only backendRef must keep its weight.
    fn has_header_routes(self) -> bool {
        matches!(self, RouteKind::Http | RouteKind::Grpc)
    }
}

/// One route of a `httpRoutes`-style list.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamedRoute {
    pub name: String,
    /// Whether `setHeaderRoute` adds its rules to this route (header routes are not driven yet).
    #[serde(default)]
    pub use_header_routes: bool,
}

/// The plugin's configuration, as a Rollout carries it under `plugins["argoproj-labs/gatewayAPI"]`.
/// Unknown keys are ignored, as the plugin's JSON decoding does.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct GatewayApiConfig {
    pub http_route: Option<String>,
    pub grpc_route: Option<String>,
    pub tcp_route: Option<String>,
    pub tls_route: Option<String>,
    pub http_routes: Option<Vec<NamedRoute>>,
    pub grpc_routes: Option<Vec<NamedRoute>>,
    pub tcp_routes: Option<Vec<NamedRoute>>,
    pub tls_routes: Option<Vec<NamedRoute>>,
    /// Namespace of the routes; the Rollout's when unset or empty.
    pub namespace: Option<String>,
    /// Where the plugin keeps its managed-route bookkeeping (used by header routes only).
    pub config_map: Option<String>,
    pub disable_in_progress_label: bool,
    pub in_progress_label_key: Option<String>,
    pub in_progress_label_value: Option<String>,
    pub http_route_selector: Option<Value>,
    pub grpc_route_selector: Option<Value>,
    pub tcp_route_selector: Option<Value>,
    pub tls_route_selector: Option<Value>,
}

impl GatewayApiConfig {
    /// The config of a routing block, if it names the plugin. Pure.
    pub fn parse(routing: &RolloutTrafficRouting) -> Option<Result<GatewayApiConfig, String>> {
        let raw = routing.plugins.as_ref()?.get(PLUGIN_KEY)?;
        Some(
            GatewayApiConfig::deserialize(raw).map_err(|e| format!("plugins[{PLUGIN_KEY:?}]: {e}")),
        )
    }

    /// Every route named, by kind: each list first, then its single-name shorthand (the order
    /// the plugin visits them in), without repeats. An error when none is named, or when routes
    /// are to be discovered by label selector (not supported yet).
    pub fn routes(&self) -> Result<Vec<(RouteKind, String)>, String> {
        let selectors = [
            ("httpRouteSelector", &self.http_route_selector),
            ("grpcRouteSelector", &self.grpc_route_selector),
            ("tcpRouteSelector", &self.tcp_route_selector),
            ("tlsRouteSelector", &self.tls_route_selector),
        ];
        if let Some((key, _)) = selectors.iter().find(|(_, s)| s.is_some()) {
            return Err(format!(
                "{key}: discovering routes by label selector is not supported; name the routes"
            ));
        }
        let mut out: Vec<(RouteKind, String)> = Vec::new();
        for (kind, list, single) in [
            (RouteKind::Http, &self.http_routes, &self.http_route),
            (RouteKind::Grpc, &self.grpc_routes, &self.grpc_route),
            (RouteKind::Tcp, &self.tcp_routes, &self.tcp_route),
            (RouteKind::Tls, &self.tls_routes, &self.tls_route),
        ] {
            let names = list
                .iter()
                .flatten()
                .map(|r| r.name.as_str())
                .chain(single.as_deref());
            for name in names {
                if name.is_empty() {
                    return Err(format!("a {} name is empty", kind.kind()));
                }
                if !out.iter().any(|(k, n)| *k == kind && n == name) {
                    out.push((kind, name.to_string()));
                }
            }
        }
        if out.is_empty() {
            return Err(
                "no route is named: set at least one of httpRoute(s), grpcRoute(s), \
                 tcpRoute(s) or tlsRoute(s)"
                    .into(),
            );
        }
        Ok(out)
    }

    /// The namespace of the routes.
    pub fn namespace<'a>(&'a self, rollout_ns: &'a str) -> &'a str {
        self.namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(rollout_ns)
    }
}

/// Is `rule` one the plugin added for a header route: named after a managed route (`name`, or
/// `name-N` for the N-th copy on a multi-rule route), or, for rules added by plugin versions
/// that did not name them, routing only to the canary?
fn is_header_rule(rule: &Value, canary: &str, managed: &BTreeSet<String>) -> bool {
    if let Some(name) = rule.get("name").and_then(Value::as_str) {
        let derived = |base: &String| {
            name.strip_prefix(base.as_str())
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        };
        if managed.contains(name) || managed.iter().any(derived) {
            return true;
        }
    }
    match rule.get("backendRefs").and_then(Value::as_array) {
        Some(refs) => {
            refs.len() == 1 && refs[0].get("name").and_then(Value::as_str) == Some(canary)
        }
        None => false,
    }
}

/// The route's `spec.rules` with every backendRef naming the canary Service weighted
/// `canary_weight` and every one naming the stable Service the rest, other backendRefs (and
/// header-route rules) untouched. An error when no rule names one of the two. Pure.
pub fn desired_rules(
    kind: RouteKind,
    spec: &Value,
    plan: &TrafficPlan,
    managed: &BTreeSet<String>,
) -> Result<Value, String> {
    let Some(rules) = spec.get("rules").and_then(Value::as_array) else {
        return Err("spec.rules not found".into());
    };
    let mut rules = rules.clone();
    let (mut canary, mut stable) = (false, false);
    for rule in rules.iter_mut() {
        if kind.has_header_routes() && is_header_rule(rule, &plan.canary_service, managed) {
            continue;
        }
        let Some(refs) = rule.get_mut("backendRefs").and_then(Value::as_array_mut) else {
            continue;
        };
        for r in refs.iter_mut() {
            let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
            if name == plan.canary_service {
                r["weight"] = json!(plan.canary_weight);
                canary = true;
            } else if name == plan.stable_service {
                r["weight"] = json!(plan.stable_weight());
                stable = true;
            }
        }
    }
    for (found, role, service) in [
        (canary, "canary", &plan.canary_service),
        (stable, "stable", &plan.stable_service),
    ] {
        if !found {
            return Err(format!(
                "no backendRef of its rules names the {role} Service {service:?}"
            ));
        }
    }
    Ok(Value::Array(rules))
}

/// The in-progress label change a route needs: `Some((key, Some(value)))` to set it while the
/// canary has weight, `Some((key, None))` to remove it at weight 0, `None` when it is right
/// already (or disabled). Pure.
pub fn in_progress_label(
    cfg: &GatewayApiConfig,
    canary_weight: i32,
    labels: &BTreeMap<String, String>,
) -> Option<(String, Option<String>)> {
    if cfg.disable_in_progress_label {
        return None;
    }
    let key = cfg
        .in_progress_label_key
        .as_deref()
        .filter(|k| !k.is_empty())
        .unwrap_or(IN_PROGRESS_LABEL_KEY);
    let value = cfg
        .in_progress_label_value
        .as_deref()
        .filter(|v| !v.is_empty())
        .unwrap_or(IN_PROGRESS_LABEL_VALUE);
    match (canary_weight, labels.get(key)) {
        (0, None) => None,
        (0, Some(_)) => Some((key.to_string(), None)),
        (_, Some(v)) if v == value => None,
        _ => Some((key.to_string(), Some(value.to_string()))),
    }
}

/// Bring one route to the plan: one guarded merge patch when its rules or label differ.
async fn sync_route(
    cx: &RouterCtx<'_>,
    ns: &str,
    cfg: &GatewayApiConfig,
    kind: RouteKind,
    name: &str,
    plan: &TrafficPlan,
    managed: &BTreeSet<String>,
) -> Result<usize, RouterError> {
    let resource = kind.resource();
    let obj = cx
        .get_in(&resource, ns, name)
        .await?
        .ok_or_else(|| RouterError::NotFound {
            kind: kind.kind().into(),
            name: name.to_string(),
        })?;
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    let rules =
        desired_rules(kind, &spec, plan, managed).map_err(|reason| RouterError::Malformed {
            kind: kind.kind().into(),
            name: name.to_string(),
            reason,
        })?;
    let labels = obj.metadata.labels.clone().unwrap_or_default();
    let label = in_progress_label(cfg, plan.canary_weight, &labels);
    if Some(&rules) == spec.get("rules") && label.is_none() {
        return Ok(0);
    }
    // The rule list is replaced whole by a merge patch; the resourceVersion guards against a
    // concurrent edit being overwritten (a 409 retries on the next reconcile).
    let mut patch = json!({
        "metadata": { "resourceVersion": obj.metadata.resource_version },
        "spec": { "rules": rules },
    });
    if let Some((key, value)) = label {
        patch["metadata"]["labels"] = json!({ key: value });
    }
    cx.writer
        .merge_patch_dynamic(&resource, ns, name, &patch)
        .await?;
    Ok(1)
}

impl Router for GatewayApi {
    fn name(&self) -> &'static str {
        "gatewayAPI"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(routing) = cx.routing() else {
                return Ok(0);
            };
            let malformed = |reason: String| RouterError::Malformed {
                kind: "plugin config".into(),
                name: PLUGIN_KEY.into(),
                reason,
            };
            let Some(cfg) = GatewayApiConfig::parse(routing) else {
                return Ok(0);
            };
            let cfg = cfg.map_err(malformed)?;
            let routes = cfg.routes().map_err(malformed)?;
            let managed: BTreeSet<String> = routing
                .managed_routes
                .iter()
                .flatten()
                .map(|m| m.name.clone())
                .collect();
            let ns = cfg.namespace(cx.namespace);
            let mut writes = 0;
            for (kind, name) in &routes {
                writes += sync_route(cx, ns, &cfg, *kind, name, plan, &managed).await?;
            }
            Ok(writes)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STABLE: &str = "argo-rollouts-stable-service";
    const CANARY: &str = "argo-rollouts-canary-service";

    fn plan(w: i32) -> TrafficPlan {
        TrafficPlan {
            canary_service: CANARY.into(),
            stable_service: STABLE.into(),
            canary_hash: "c1".into(),
            stable_hash: "s1".into(),
            canary_weight: w,
            max_weight: 100,
            remove_managed_routes: false,
            ..TrafficPlan::default()
        }
    }

    /// The plugin's fixture route: one rule, stable then canary, both on port 80.
    fn route(stable_w: i32, canary_w: i32) -> Value {
        json!({"rules": [{
            "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [
                {"name": STABLE, "port": 80, "weight": stable_w},
                {"name": CANARY, "port": 80, "weight": canary_w}]}]})
    }

    fn weights(rules: &Value, rule: usize) -> Vec<i64> {
        rules[rule]["backendRefs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["weight"].as_i64().unwrap_or(-1))
            .collect()
    }

    fn config(v: Value) -> GatewayApiConfig {
        let routing = RolloutTrafficRouting {
            plugins: Some([(PLUGIN_KEY.to_string(), v)].into()),
            ..Default::default()
        };
        GatewayApiConfig::parse(&routing).unwrap().unwrap()
    }

    #[test]
    fn every_route_kind_gets_canary_weight_and_the_rest_on_stable() {
        for kind in [
            RouteKind::Http,
            RouteKind::Grpc,
            RouteKind::Tcp,
            RouteKind::Tls,
        ] {
            let out = desired_rules(kind, &route(0, 0), &plan(30), &BTreeSet::new()).unwrap();
            assert_eq!(weights(&out, 0), [70, 30], "{kind:?}");
            assert_eq!(out[0]["matches"], route(0, 0)["rules"][0]["matches"]);
        }
    }

    #[test]
    fn the_resources_name_the_group_versions_and_plurals() {
        let r = RouteKind::Http.resource();
        assert_eq!(
            (r.api_version.as_str(), r.plural.as_str()),
            ("gateway.networking.k8s.io/v1", "httproutes")
        );
        assert_eq!(
            RouteKind::Grpc.resource().api_version,
            "gateway.networking.k8s.io/v1"
        );
        let r = RouteKind::Tcp.resource();
        assert_eq!(
            (r.api_version.as_str(), r.plural.as_str()),
            ("gateway.networking.k8s.io/v1alpha2", "tcproutes")
        );
        assert_eq!(RouteKind::Tls.resource().plural, "tlsroutes");
    }

    #[test]
    fn unmanaged_backends_are_kept_untouched() {
        let spec = json!({"rules": [{"backendRefs": [
            {"name": STABLE, "port": 80, "weight": 100},
            {"name": CANARY, "port": 80, "weight": 0},
            {"name": "extra-pipeline-service", "port": 80, "weight": 1}]}]});
        let out = desired_rules(RouteKind::Http, &spec, &plan(30), &BTreeSet::new()).unwrap();
        assert_eq!(weights(&out, 0), [70, 30, 1]);
        let out = desired_rules(RouteKind::Http, &spec, &plan(0), &BTreeSet::new()).unwrap();
        assert_eq!(weights(&out, 0), [100, 0, 1]);
        assert_eq!(out[0]["backendRefs"][2]["name"], "extra-pipeline-service");
    }

    #[test]
    fn every_rule_naming_the_services_is_weighted() {
        let spec = json!({"rules": [
            {"matches": [{"path": {"value": "/a"}}], "backendRefs": [
                {"name": STABLE, "weight": 100}, {"name": CANARY, "weight": 0}]},
            {"matches": [{"path": {"value": "/b"}}], "backendRefs": [
                {"name": CANARY}, {"name": STABLE}]},
            {"backendRefs": [{"name": "elsewhere", "weight": 5}]}]});
        let out = desired_rules(RouteKind::Http, &spec, &plan(40), &BTreeSet::new()).unwrap();
        assert_eq!(weights(&out, 0), [60, 40]);
        assert_eq!(weights(&out, 1), [40, 60]);
        assert_eq!(out[2], spec["rules"][2]);
    }

    #[test]
    fn header_route_rules_keep_their_canary_weight() {
        // A rule the plugin added for `setHeaderRoute` (named after the managed route), a copy
        // on a second rule (`name-1`), and an unnamed canary-only rule of an older plugin.
        let spec = json!({"rules": [
            {"backendRefs": [{"name": STABLE, "weight": 100}, {"name": CANARY, "weight": 0}]},
            {"name": "test-header-route", "backendRefs": [{"name": CANARY}]},
            {"name": "test-header-route-1", "backendRefs": [{"name": CANARY}, {"name": STABLE}]},
            {"backendRefs": [{"name": CANARY}]}]});
        let managed: BTreeSet<String> = ["test-header-route".to_string()].into();
        for kind in [RouteKind::Http, RouteKind::Grpc] {
            let out = desired_rules(kind, &spec, &plan(0), &managed).unwrap();
            assert_eq!(weights(&out, 0), [100, 0]);
            for i in 1..4 {
                assert_eq!(out[i], spec["rules"][i], "{kind:?} rule {i}");
            }
        }
        // A name that only starts like a managed route is an ordinary rule.
        let spec = json!({"rules": [{"name": "test-header-route-x", "backendRefs": [
            {"name": STABLE}, {"name": CANARY}]}]});
        let out = desired_rules(RouteKind::Http, &spec, &plan(10), &managed).unwrap();
        assert_eq!(weights(&out, 0), [90, 10]);
    }

    #[test]
    fn a_route_without_both_services_is_an_error() {
        let spec = json!({"rules": [{"backendRefs": [{"name": CANARY}]}]});
        for kind in [RouteKind::Tcp, RouteKind::Tls] {
            let e = desired_rules(kind, &spec, &plan(10), &BTreeSet::new()).unwrap_err();
            assert!(e.contains("stable Service"), "{e}");
        }
        // On an HTTPRoute a canary-only rule is a header route: neither is found.
        let e = desired_rules(RouteKind::Http, &spec, &plan(10), &BTreeSet::new()).unwrap_err();
        assert!(e.contains("canary Service"), "{e}");
        let spec = json!({"rules": [{"backendRefs": [{"name": STABLE}]}]});
        let e = desired_rules(RouteKind::Grpc, &spec, &plan(10), &BTreeSet::new()).unwrap_err();
        assert!(e.contains("canary Service"), "{e}");
        let e = desired_rules(RouteKind::Tcp, &json!({}), &plan(10), &BTreeSet::new());
        assert_eq!(e.unwrap_err(), "spec.rules not found");
        let empty = json!({"rules": []});
        assert!(desired_rules(RouteKind::Tls, &empty, &plan(10), &BTreeSet::new()).is_err());
    }

    #[test]
    fn the_stable_gets_what_max_traffic_weight_leaves() {
        let mut p = plan(3);
        p.max_weight = 10;
        let out = desired_rules(RouteKind::Http, &route(0, 0), &p, &BTreeSet::new()).unwrap();
        assert_eq!(weights(&out, 0), [7, 3]);
    }

    #[test]
    fn config_lists_then_shorthands_in_kind_order_without_repeats() {
        let cfg = config(json!({
            "namespace": "default",
            "httpRoutes": [{"name": "h1", "useHeaderRoutes": true}, {"name": "h2"}],
            "httpRoute": "h1",
            "tlsRoute": "t",
            "tcpRoutes": [{"name": "c"}],
            "grpcRoute": "g",
            "configMap": "cm",
            "someFutureKey": 1,
        }));
        assert_eq!(
            cfg.routes().unwrap(),
            [
                (RouteKind::Http, "h1".to_string()),
                (RouteKind::Http, "h2".to_string()),
                (RouteKind::Grpc, "g".to_string()),
                (RouteKind::Tcp, "c".to_string()),
                (RouteKind::Tls, "t".to_string()),
            ]
        );
        assert_eq!(cfg.namespace("ro-ns"), "default");
        assert_eq!(cfg.config_map.as_deref(), Some("cm"));
    }

    #[test]
    fn the_namespace_defaults_to_the_rollouts() {
        assert_eq!(
            config(json!({"httpRoute": "r"})).namespace("ro-ns"),
            "ro-ns"
        );
        let cfg = config(json!({"httpRoute": "r", "namespace": ""}));
        assert_eq!(cfg.namespace("ro-ns"), "ro-ns");
    }

    #[test]
    fn a_config_without_routes_or_with_selectors_is_refused() {
        let e = config(json!({"namespace": "x"})).routes().unwrap_err();
        assert!(e.contains("no route is named"), "{e}");
        let e = config(json!({"httpRouteSelector": {"matchLabels": {"a": "b"}}}))
            .routes()
            .unwrap_err();
        assert!(e.contains("httpRouteSelector"), "{e}");
        assert!(
            config(json!({"httpRoutes": [{"name": ""}]}))
                .routes()
                .is_err()
        );
        let routing = RolloutTrafficRouting {
            plugins: Some([(PLUGIN_KEY.to_string(), json!({"httpRoute": 3}))].into()),
            ..Default::default()
        };
        assert!(GatewayApiConfig::parse(&routing).unwrap().is_err());
        let other = RolloutTrafficRouting {
            plugins: Some([("other/plugin".to_string(), json!({}))].into()),
            ..Default::default()
        };
        assert!(GatewayApiConfig::parse(&other).is_none());
    }

    #[test]
    fn the_plugin_key_selects_the_router() {
        let names = |plugins: Value| {
            let routing = RolloutTrafficRouting {
                plugins: serde_json::from_value(plugins).unwrap(),
                ..Default::default()
            };
            super::super::routers_for(&routing)
                .iter()
                .map(|r| r.name())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(json!({PLUGIN_KEY: {"httpRoute": "r"}})),
            ["gatewayAPI"]
        );
        assert!(names(json!({"gatewayAPI": {"httpRoute": "r"}})).is_empty());
        assert!(names(json!(null)).is_empty());
    }

    #[test]
    fn the_in_progress_label_follows_the_canary_weight() {
        let cfg = GatewayApiConfig::default();
        let none = BTreeMap::new();
        let set: BTreeMap<String, String> =
            [(IN_PROGRESS_LABEL_KEY.into(), IN_PROGRESS_LABEL_VALUE.into())].into();
        assert_eq!(
            in_progress_label(&cfg, 25, &none),
            Some((
                IN_PROGRESS_LABEL_KEY.into(),
                Some(IN_PROGRESS_LABEL_VALUE.into())
            ))
        );
        assert_eq!(in_progress_label(&cfg, 25, &set), None);
        assert_eq!(
            in_progress_label(&cfg, 0, &set),
            Some((IN_PROGRESS_LABEL_KEY.into(), None))
        );
        assert_eq!(in_progress_label(&cfg, 0, &none), None);
        let custom = GatewayApiConfig {
            in_progress_label_key: Some("k".into()),
            in_progress_label_value: Some("v".into()),
            ..Default::default()
        };
        assert_eq!(
            in_progress_label(&custom, 5, &set),
            Some(("k".into(), Some("v".into())))
        );
        let off = GatewayApiConfig {
            disable_in_progress_label: true,
            ..Default::default()
        };
        assert_eq!(in_progress_label(&off, 5, &none), None);
    }
}
