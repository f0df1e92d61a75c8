//! Traffic-routed canaries against the genuine control plane: the router objects' weights,
//! `status.canary.weights` and the replica counts at every step, as Argo's istio e2e suite
//! asserts them.

use std::time::{Duration, Instant};

use anyhow::{Result, anyhow, ensure};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
use serde_json::json;

use crate::harness::{Cluster, Fixture, View, root};

const T: Duration = Duration::from_secs(60);

fn virtual_services() -> ApiResource {
    ApiResource {
        group: "networking.istio.io".into(),
        version: "v1alpha3".into(),
        api_version: "networking.istio.io/v1alpha3".into(),
        kind: "VirtualService".into(),
        plural: "virtualservices".into(),
    }
}

/// The seed with Istio host-level routing over `frontend-canary`/`frontend-stable` and pauses
/// of `pause` (`{}` = until promoted).
fn seed_with_istio(pause: &str) -> String {
    let seed =
        std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml")).unwrap_or_default();
    seed.replace(
        "    canary:\n",
        "    canary:\n      canaryService: frontend-canary\n      stableService: frontend-stable\n      trafficRouting:\n        istio:\n          virtualService: {name: frontend-vs, routes: [primary]}\n",
    )
    .replace("{duration: 10m}", pause)
}

async fn given_istio(f: &mut Fixture, yaml: &str) -> Result<()> {
    for svc in ["frontend-canary", "frontend-stable"] {
        f.given_service(svc, "frontend").await?;
    }
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3",
        "kind": "VirtualService",
        "metadata": {"name": "frontend-vs"},
        "spec": {"hosts": ["frontend"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "frontend-stable"}, "weight": 100},
            {"destination": {"host": "frontend-canary"}, "weight": 0}]}]},
    }))?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(f.client.clone(), &f.ns, &virtual_services());
    api.create(&PostParams::default(), &vs).await?;
    f.given_rollout(yaml).await
}

/// (canary, stable) weights of the VirtualService's primary route.
async fn vs_weights(f: &Fixture) -> Result<(i64, i64)> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(f.client.clone(), &f.ns, &virtual_services());
    let vs = api.get("frontend-vs").await?;
    let route = vs.data["spec"]["http"][0]["route"]
        .as_array()
        .cloned()
        .ok_or_else(|| anyhow!("no route in {:?}", vs.data))?;
    let weight_of = |host: &str| {
        route
            .iter()
            .find(|d| d["destination"]["host"] == host)
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    Ok((weight_of("frontend-canary"), weight_of("frontend-stable")))
}

fn status_weights(v: &View) -> Option<(i32, i32)> {
    let w = v.ro.status.as_ref()?.canary.as_ref()?.weights.as_ref()?;
    Some((w.canary.weight, w.stable.weight))
}

/// The seed with Istio host routing walks 20/40/60/80 with the stable at 5 pods throughout and
/// the canary at ceil(weight × 5 / 100); promotion ends at canary weight 0 on the new stable.
pub async fn istio_host_split_walk(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "istio-host").await?;
    given_istio(&mut f, &seed_with_istio("{}")).await?;
    f.then("initial deploy healthy", T, |v| v.healthy()).await?;
    f.when_image("frontend:v2").await?;
    for (w, canary) in [(20, 1), (40, 2), (60, 3), (80, 4)] {
        let v = f
            .then(&format!("paused at weight {w}"), T, |v| {
                v.phase() == "Paused" && status_weights(v) == Some((w, 100 - w))
            })
            .await?;
        ensure!(
            v.sizes() == (canary, 5),
            "weight {w}: sizes {:?}, want ({canary}, 5)",
            v.sizes()
        );
        let vs = vs_weights(&f).await?;
        ensure!(
            vs == (w.into(), (100 - w).into()),
            "VirtualService at {vs:?}, want {w}"
        );
        f.promote().await?;
    }
    // The reconcile that promotes still sends 100 to the canary, which is the new stable; the
    // next one records (0, 100) against it, as in Argo.
    f.then("promoted, all traffic to the new stable", T, |v| {
        v.healthy() && status_weights(v) == Some((0, 100))
    })
    .await?;
    let vs = vs_weights(&f).await?;
    ensure!(vs == (0, 100), "VirtualService after promotion {vs:?}");
    f.cleanup().await
}

/// kill -9 at varying instants while timed steps change the weight: the VirtualService's
/// canary weight never goes backwards and the walk ends promoted.
pub async fn istio_kill9_weights_never_go_back(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "istio-kill9").await?;
    given_istio(&mut f, &seed_with_istio("{duration: 1}")).await?;
    f.then("initial deploy healthy", T, |v| v.healthy()).await?;
    f.when_image("frontend:v2").await?;
    let start = Instant::now();
    let (mut kills, mut last) = (0, 0i64);
    let mut delays = [600u64, 1100, 300, 900, 1500, 400].iter().cycle();
    loop {
        let until = Instant::now() + Duration::from_millis(*delays.next().unwrap_or(&800));
        while Instant::now() < until {
            let (canary, stable) = vs_weights(&f).await?;
            ensure!(canary + stable == 100, "weights {canary}+{stable} != 100");
            let v = f.view().await?;
            let promoted = v.stable() == v.pod_hash();
            if !promoted {
                ensure!(canary >= last, "canary weight went back {last} -> {canary}");
                last = canary;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if f.view().await?.healthy() {
            break;
        }
        ensure!(start.elapsed() < Duration::from_secs(90), "did not finish");
        f.kill_controller()?;
        kills += 1;
        f.start_controller()?;
    }
    eprintln!("[istio-kill9] {kills} kill -9 restarts, highest weight seen {last}");
    ensure!(kills >= 3, "the controller must be killed mid-walk");
    ensure!(last >= 60, "the walk was observed: highest weight {last}");
    ensure!(vs_weights(&f).await? == (0, 100));
    f.cleanup().await
}
