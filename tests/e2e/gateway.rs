//! Gateway API traffic routing, as Argo Rollouts with the `argoproj-labs/gatewayAPI` plugin does
//! it: the seed Rollout, naming one route of each kind through the plugin config, walks its
//! steps with the route's canary/stable backendRef weights, `status.canary.weights` and the
//! traffic-routed replica counts (stable kept at full size, canary `ceil(weight * 5 / 100)`)
//! checked at every step.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::harness::{Cluster, Fixture, View, root};

const T: Duration = Duration::from_secs(60);
const CANARY: &str = "frontend-canary";
const STABLE: &str = "frontend-stable";
const ROUTE: &str = "frontend-route";
const IN_PROGRESS: &str = "rollouts.argoproj.io/gatewayapi-canary";

/// One route kind: its API, its spec around the two backendRefs, and how the plugin config
/// names it (each kind a different spelling the plugin accepts).
struct Kind {
    kind: &'static str,
    version: &'static str,
    config: &'static str,
}

const HTTP: Kind = Kind {
    kind: "HTTPRoute",
    version: "v1",
    config: "httpRoute: frontend-route",
};
const GRPC: Kind = Kind {
    kind: "GRPCRoute",
    version: "v1",
    config: "grpcRoutes: [{name: frontend-route}]",
};
const TCP: Kind = Kind {
    kind: "TCPRoute",
    version: "v1alpha2",
    config: "tcpRoute: frontend-route",
};
const TLS: Kind = Kind {
    kind: "TLSRoute",
    version: "v1alpha2",
    config: "tlsRoutes: [{name: frontend-route, useHeaderRoutes: true}]",
};

impl Kind {
    fn resource(&self) -> ApiResource {
        ApiResource {
            group: "gateway.networking.k8s.io".into(),
            version: self.version.into(),
            api_version: format!("gateway.networking.k8s.io/{}", self.version),
            kind: self.kind.into(),
            plural: format!("{}s", self.kind.to_lowercase()),
        }
    }

    /// The route as a user writes it: no weights yet (the Gateway API default of 1 each), and
    /// a second rule to another Service that must stay untouched.
    fn manifest(&self) -> Value {
        let refs = json!([{"name": STABLE, "port": 80}, {"name": CANARY, "port": 80}]);
        let other = other_refs();
        let mut spec = json!({"parentRefs": [{"name": "gateway"}]});
        spec["rules"] = match self.kind {
            "HTTPRoute" => json!([
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}], "backendRefs": refs},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/other"}}], "backendRefs": other}]),
            "GRPCRoute" => json!([
                {"matches": [{"method": {"service": "frontend.Frontend"}}], "backendRefs": refs},
                {"matches": [{"method": {"service": "frontend.Other"}}], "backendRefs": other}]),
            _ => json!([{"backendRefs": refs}, {"backendRefs": other}]),
        };
        if self.kind == "TLSRoute" {
            spec["hostnames"] = json!(["frontend.example.com"]);
        }
        json!({
            "apiVersion": format!("gateway.networking.k8s.io/{}", self.version),
            "kind": self.kind,
            "metadata": {"name": ROUTE},
            "spec": spec,
        })
    }
}

/// The backendRefs of the rule the Rollout's Services are not in.
fn other_refs() -> Value {
    json!([{"name": "frontend-other", "port": 80, "weight": 7}])
}

/// The route's (canary, stable) backendRef weights of the first rule, the untouched rule, and
/// whether it carries the in-progress label.
struct RouteView {
    canary: Option<i64>,
    stable: Option<i64>,
    other: Value,
    in_progress: bool,
}

async fn route_view(api: &Api<DynamicObject>) -> Result<RouteView> {
    let r = api.get(ROUTE).await?;
    let rules = &r.data["spec"]["rules"];
    let weight = |name: &str| {
        rules[0]["backendRefs"]
            .as_array()
            .and_then(|refs| refs.iter().find(|b| b["name"] == name))
            .and_then(|b| b["weight"].as_i64())
    };
    Ok(RouteView {
        canary: weight(CANARY),
        stable: weight(STABLE),
        other: rules[1].clone(),
        in_progress: r
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key(IN_PROGRESS),
    })
}

/// `status.canary.weights` as (canary weight, canary hash, stable weight, stable hash).
fn status_weights(v: &View) -> Option<(i32, String, i32, String)> {
    let w = v.ro.status.as_ref()?.canary.as_ref()?.weights.as_ref()?;
    Some((
        w.canary.weight,
        w.canary.pod_template_hash.clone().unwrap_or_default(),
        w.stable.weight,
        w.stable.pod_template_hash.clone().unwrap_or_default(),
    ))
}

/// Wait until the route, the status and the ReplicaSets show canary weight `w` with the given
/// hashes and sizes, checking on every look that `stable_always` (if any) keeps 5 replicas.
async fn at_weight(
    f: &Fixture,
    api: &Api<DynamicObject>,
    what: &str,
    w: i32,
    hashes: (&str, &str),
    sizes: (i32, i32),
    stable_always: Option<&str>,
) -> Result<View> {
    let other = other_refs();
    let start = Instant::now();
    loop {
        let v = f.view().await?;
        let r = route_view(api).await?;
        if let Some(h1) = stable_always {
            ensure!(
                v.stable().as_deref() == Some(h1) && v.sizes().1 == 5,
                "{what}: stable left 5 pods of {h1}: stable {:?} sizes {:?}",
                v.stable(),
                v.sizes()
            );
        }
        ensure!(
            r.other["backendRefs"] == other,
            "{what}: the other rule changed: {}",
            r.other
        );
        let want_status = Some((w, hashes.0.to_string(), 100 - w, hashes.1.to_string()));
        let got = (
            r.canary,
            r.stable,
            status_weights(&v),
            v.sizes(),
            r.in_progress,
        );
        let want = (
            Some(i64::from(w)),
            Some(i64::from(100 - w)),
            want_status,
            sizes,
            w > 0,
        );
        if got == want {
            return Ok(v);
        }
        if start.elapsed() > T {
            bail!(
                "[{}] {what}: want (route canary, route stable, status weights, sizes, in-progress label) {want:?}, have {got:?}; phase={:?} message={:?} step={:?}",
                f.name,
                v.phase(),
                v.message(),
                v.step()
            );
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

async fn route_walk(c: &Cluster, name: &str, kind: Kind) -> Result<()> {
    let mut f = Fixture::new(c, name).await?;
    for svc in [CANARY, STABLE, "frontend-other"] {
        f.given_service(svc, "frontend").await?;
    }
    let api: Api<DynamicObject> = Api::namespaced_with(f.client.clone(), &f.ns, &kind.resource());
    let route: DynamicObject = serde_json::from_value(kind.manifest())?;
    api.create(&PostParams::default(), &route).await?;
    let seed = std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml"))?;
    let yaml = seed
        .replace(
            "    canary:\n",
            &format!(
                "    canary:\n      canaryService: {CANARY}\n      stableService: {STABLE}\n      trafficRouting:\n        plugins:\n          argoproj-labs/gatewayAPI:\n            {}\n",
                kind.config
            ),
        )
        .replace("pause: {duration: 10m}", "pause: {duration: 4s}");
    ensure!(
        yaml.contains("argoproj-labs/gatewayAPI") && !yaml.contains("10m"),
        "seed manifest not as expected"
    );
    f.given_rollout(&yaml).await?;
    let v = f
        .then("initial deploy healthy", T, |v| {
            v.healthy() && v.sizes() == (0, 5)
        })
        .await?;
    let h1 = v.stable().unwrap_or_default();
    at_weight(&f, &api, "initial deploy", 0, (&h1, &h1), (0, 5), None).await?;
    f.when_image("frontend:v2").await?;
    let v = f
        .then("a second revision", T, |v| {
            v.pod_hash().is_some_and(|h| h != h1)
        })
        .await?;
    let h2 = v.pod_hash().unwrap_or_default();
    for w in [20, 40, 60, 80] {
        // Traffic-routed canary: the canary gets ceil(weight * replicas / 100) pods.
        let canary = (w * 5 + 99) / 100;
        at_weight(
            &f,
            &api,
            &format!("setWeight {w}"),
            w,
            (&h2, &h1),
            (canary, 5),
            Some(&h1),
        )
        .await?;
    }
    f.then("fully promoted", T, |v| {
        v.healthy() && v.stable().as_deref() == Some(h2.as_str())
    })
    .await?;
    at_weight(&f, &api, "promoted", 0, (&h2, &h2), (0, 5), None).await?;
    f.cleanup().await
}

pub async fn gateway_httproute_walk(c: &Cluster) -> Result<()> {
    route_walk(c, "gw-httproute", HTTP).await
}

pub async fn gateway_grpcroute_walk(c: &Cluster) -> Result<()> {
    route_walk(c, "gw-grpcroute", GRPC).await
}

pub async fn gateway_tcproute_walk(c: &Cluster) -> Result<()> {
    route_walk(c, "gw-tcproute", TCP).await
}

pub async fn gateway_tlsroute_walk(c: &Cluster) -> Result<()> {
    route_walk(c, "gw-tlsroute", TLS).await
}

/// The router on its own, against the API server (no planner involved): one guarded patch per
/// route that differs, none when nothing does, the in-progress label following the weight, and
/// a missing route or one without both Services reported as such.
pub async fn gateway_router_writes_only_differences(c: &Cluster) -> Result<()> {
    use sluice::controller::routers::gatewayapi::GatewayApi;
    use sluice::controller::routers::{Router, RouterCtx, RouterError};
    use sluice::rollout::effects::TrafficPlan;

    let f = Fixture::bare(c, "gw-router").await?;
    let (http, tcp) = (
        Api::<DynamicObject>::namespaced_with(f.client.clone(), &f.ns, &HTTP.resource()),
        Api::<DynamicObject>::namespaced_with(f.client.clone(), &f.ns, &TCP.resource()),
    );
    for (api, kind) in [(&http, &HTTP), (&tcp, &TCP)] {
        let route: DynamicObject = serde_json::from_value(kind.manifest())?;
        api.create(&PostParams::default(), &route).await?;
    }
    let rollout = |config: Value| -> Result<sluice::api::rollout::Rollout> {
        Ok(serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "frontend", "namespace": f.ns},
            "spec": {"selector": {"matchLabels": {"app": "frontend"}}, "strategy": {"canary": {
                "canaryService": CANARY, "stableService": STABLE,
                "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": config}}}}}
        }))?)
    };
    let writer = sluice::controller::write::Writer::new(
        f.client.clone(),
        sluice::controller::rate::RateLimiter::new(1000.0, 1000),
        sluice::controller::leader::Leadership::always(),
        kube::runtime::events::Reporter {
            controller: "e2e".into(),
            instance: None,
        },
    );
    let plan = |w: i32| TrafficPlan {
        canary_service: CANARY.into(),
        stable_service: STABLE.into(),
        canary_hash: "c".into(),
        stable_hash: "s".into(),
        canary_weight: w,
        max_weight: 100,
        remove_managed_routes: false,
        ..TrafficPlan::default()
    };
    let run = async |ro: &sluice::api::rollout::Rollout, w: i32| {
        let cx = RouterCtx {
            client: &f.client,
            writer: &writer,
            rollout: ro,
            namespace: &f.ns,
            smi_version: Default::default(),
        };
        GatewayApi.apply(&cx, &plan(w)).await
    };
    let both = rollout(json!({"httpRoute": ROUTE, "tcpRoutes": [{"name": ROUTE}]}))?;
    let writes = run(&both, 30).await?;
    ensure!(writes == 2, "first apply wrote {writes} routes, want 2");
    for api in [&http, &tcp] {
        let r = route_view(api).await?;
        ensure!(
            (r.canary, r.stable, r.in_progress) == (Some(30), Some(70), true),
            "after weight 30: canary {:?} stable {:?} label {}",
            r.canary,
            r.stable,
            r.in_progress
        );
        ensure!(r.other["backendRefs"] == other_refs(), "other rule changed");
    }
    let rv = http.get(ROUTE).await?.metadata.resource_version;
    let writes = run(&both, 30).await?;
    ensure!(writes == 0, "a second apply wrote {writes} routes, want 0");
    ensure!(http.get(ROUTE).await?.metadata.resource_version == rv);
    ensure!(run(&both, 0).await? == 2);
    let r = route_view(&http).await?;
    ensure!(
        (r.canary, r.stable, r.in_progress) == (Some(0), Some(100), false),
        "after weight 0: canary {:?} stable {:?} label {}",
        r.canary,
        r.stable,
        r.in_progress
    );
    // Another namespace named by the config: the route is looked for there.
    let elsewhere = rollout(json!({"httpRoute": ROUTE, "namespace": "e2e-gw-nowhere"}))?;
    match run(&elsewhere, 10).await {
        Err(RouterError::NotFound { kind, name }) if kind == "HTTPRoute" && name == ROUTE => {}
        other => bail!("a route in a namespace without it: {other:?}"),
    }
    let missing = rollout(json!({"grpcRoute": "no-such-route"}))?;
    match run(&missing, 10).await {
        Err(RouterError::NotFound { kind, .. }) if kind == "GRPCRoute" => {}
        other => bail!("a missing GRPCRoute: {other:?}"),
    }
    let mut lonely = HTTP.manifest();
    lonely["metadata"]["name"] = json!("stable-only");
    lonely["spec"]["rules"][0]["backendRefs"] = json!([{"name": STABLE, "port": 80}]);
    http.create(&PostParams::default(), &serde_json::from_value(lonely)?)
        .await?;
    match run(&rollout(json!({"httpRoute": "stable-only"}))?, 10).await {
        Err(RouterError::Malformed { reason, .. }) if reason.contains("canary Service") => {}
        other => bail!("a route without the canary Service: {other:?}"),
    }
    match run(&rollout(json!({"namespace": "x"}))?, 10).await {
        Err(RouterError::Malformed { reason, .. }) if reason.contains("no route") => {}
        other => bail!("a config naming no route: {other:?}"),
    }
    f.cleanup().await
}
