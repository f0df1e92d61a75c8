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
    // The reconcile after the promoting one moves the weight to the new stable.
    let until = Instant::now() + Duration::from_secs(10);
    while vs_weights(&f).await? != (0, 100) && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let vs = vs_weights(&f).await?;
    ensure!(vs == (0, 100), "VirtualService after promotion {vs:?}");
    f.cleanup().await
}

fn destination_rules() -> ApiResource {
    ApiResource {
        kind: "DestinationRule".into(),
        plural: "destinationrules".into(),
        ..virtual_services()
    }
}

/// Argo's TestIstioSubsetSplit: subset-level routing through a DestinationRule, whose subsets'
/// hash labels follow the stable and canary ReplicaSets; weights 100/0, 90/10, then 100/0 with
/// both subsets on the new revision and the old one kept for its scale-down delay.
pub async fn istio_subset_split(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "istio-subset").await?;
    let app = "istio-subset-split";
    f.given_service(app, app).await?;
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "istio-subset-split-vsvc"},
        "spec": {"hosts": [app], "http": [{"name": "primary", "route": [
            {"destination": {"host": app, "subset": "stable"}, "weight": 100},
            {"destination": {"host": app, "subset": "canary"}, "weight": 0}]}]},
    }))?;
    let dr: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "DestinationRule",
        "metadata": {"name": "istio-subset-split-destrule"},
        "spec": {"host": app, "subsets": [
            {"name": "stable", "labels": {"app": app}},
            {"name": "canary", "labels": {"app": app}}]},
    }))?;
    let vs_api: Api<DynamicObject> =
        Api::namespaced_with(f.client.clone(), &f.ns, &virtual_services());
    let dr_api: Api<DynamicObject> =
        Api::namespaced_with(f.client.clone(), &f.ns, &destination_rules());
    vs_api.create(&PostParams::default(), &vs).await?;
    dr_api.create(&PostParams::default(), &dr).await?;
    let yaml = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {app}
spec:
  strategy:
    canary:
      trafficRouting:
        istio:
          virtualService: {{name: istio-subset-split-vsvc, routes: [primary]}}
          destinationRule: {{name: istio-subset-split-destrule, canarySubsetName: canary, stableSubsetName: stable}}
      steps:
      - setWeight: 10
      - pause: {{}}
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
      - name: {app}
        image: nginx:1.19-alpine
        resources: {{requests: {{memory: 16Mi, cpu: 5m}}}}
"#
    );
    f.given_rollout(&yaml).await?;
    let weights = || async {
        let vs = vs_api.get("istio-subset-split-vsvc").await?;
        let r = &vs.data["spec"]["http"][0]["route"];
        Ok::<_, anyhow::Error>((
            r[0]["weight"].as_i64().unwrap_or(-1),
            r[1]["weight"].as_i64().unwrap_or(-1),
        ))
    };
    let subsets = || async {
        let dr = dr_api.get("istio-subset-split-destrule").await?;
        let s = &dr.data["spec"]["subsets"];
        let hash = |i: usize| {
            s[i]["labels"]["rollouts-pod-template-hash"]
                .as_str()
                .map(String::from)
        };
        Ok::<_, anyhow::Error>((hash(0), hash(1)))
    };
    let v = f.then("healthy", T, |v| v.healthy()).await?;
    let rs1 = v.pod_hash();
    ensure!(
        weights().await? == (100, 0),
        "initial weights {:?}",
        weights().await?
    );
    let wait_subsets = |want: (Option<String>, Option<String>)| {
        let subsets = &subsets;
        async move {
            let until = Instant::now() + Duration::from_secs(5);
            loop {
                let got = subsets().await?;
                if got == want || Instant::now() > until {
                    ensure!(got == want, "subsets {got:?}, want {want:?}");
                    return Ok::<_, anyhow::Error>(());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_subsets((rs1.clone(), rs1.clone())).await?;
    f.when_image("nginx:1.19-alpine-v2").await?;
    let v = f.then("paused", T, |v| v.phase() == "Paused").await?;
    let rs2 = v.pod_hash();
    ensure!(rs2 != rs1, "a second revision");
    ensure!(
        weights().await? == (90, 10),
        "paused weights {:?}",
        weights().await?
    );
    wait_subsets((rs1.clone(), rs2.clone())).await?;
    f.promote().await?;
    f.then("healthy again", T, |v| v.healthy() && v.stable() == rs2)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        weights().await? == (100, 0),
        "promoted weights {:?}",
        weights().await?
    );
    wait_subsets((rs2.clone(), rs2.clone())).await?;
    let v = f.view().await?;
    ensure!(
        v.size_of(&rs1) == 1,
        "the old revision is kept for its scale-down delay: {}",
        v.size_of(&rs1)
    );
    f.cleanup().await
}

/// Argo's TestIstioHostHeaderRoute: the managed header route comes first while set (canary at
/// 100 for matching requests; the primary route at 80/20), goes when a step removes it (60/40
/// would be Argo's next weight; here 40 after its setWeight), and the promoted VirtualService is
/// back to its own routes at 100/0.
pub async fn istio_host_header_route(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "istio-header").await?;
    for svc in ["canary-service", "stable-service"] {
        f.given_service(svc, "rollouts-demo").await?;
    }
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "rollouts-demo-vsvc"},
        "spec": {"hosts": ["rollouts-demo.com"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "stable-service"}, "weight": 80},
            {"destination": {"host": "canary-service"}, "weight": 20}]}]},
    }))?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(f.client.clone(), &f.ns, &virtual_services());
    api.create(&PostParams::default(), &vs).await?;
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: rollouts-demo
spec:
  replicas: 5
  selector:
    matchLabels: {app: rollouts-demo}
  template:
    metadata:
      labels: {app: rollouts-demo}
    spec:
      containers:
      - name: rollouts-demo
        image: nginx:1.19-alpine
        resources: {requests: {memory: 16Mi, cpu: 5m}}
  strategy:
    canary:
      canaryService: canary-service
      stableService: stable-service
      trafficRouting:
        managedRoutes:
        - name: set-header-1
        istio:
          virtualService: {name: rollouts-demo-vsvc, routes: [primary]}
      steps:
      - setWeight: 20
      - setHeaderRoute:
          name: set-header-1
          match:
          - headerName: agent
            headerValue: {regex: firefox(.*)}
      - pause: {}
      - setHeaderRoute:
          name: set-header-1
          match:
          - headerName: agent
            headerValue: {regex: chrome(.*)}
      - pause: {}
      - setWeight: 40
      - setHeaderRoute: {name: set-header-1}
      - pause: {}
"#;
    f.given_rollout(yaml).await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    let http = || async {
        let vs = api.get("rollouts-demo-vsvc").await?;
        Ok::<_, anyhow::Error>(
            vs.data["spec"]["http"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    };
    let weight = |route: &serde_json::Value, host: &str| {
        route["route"]
            .as_array()
            .and_then(|r| r.iter().find(|d| d["destination"]["host"] == host))
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    let h = http().await?;
    ensure!(h[0]["name"] == "primary", "initial routes {h:?}");
    f.when_image("nginx:1.19-alpine-v2").await?;
    f.then("paused", T, |v| v.phase() == "Paused").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = http().await?;
    ensure!(h[0]["name"] == "set-header-1", "header route first: {h:?}");
    ensure!(weight(&h[0], "canary-service") == 100, "{h:?}");
    ensure!(
        weight(&h[1], "stable-service") == 80 && weight(&h[1], "canary-service") == 20,
        "{h:?}"
    );
    ensure!(
        h[0]["match"][0]["headers"]["agent"]["regex"] == "firefox(.*)",
        "{h:?}"
    );
    f.promote().await?;
    f.then("paused at the chrome route", T, |v| {
        v.step() == Some(4) && v.phase() == "Paused"
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = http().await?;
    ensure!(
        h[0]["match"][0]["headers"]["agent"]["regex"] == "chrome(.*)" && h.len() == 2,
        "the route is replaced, not duplicated: {h:?}"
    );
    f.promote().await?;
    f.then("paused at 40", T, |v| {
        v.step() == Some(7) && v.phase() == "Paused"
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = http().await?;
    ensure!(h.len() == 1 && h[0]["name"] == "primary", "removed: {h:?}");
    ensure!(
        weight(&h[0], "stable-service") == 60 && weight(&h[0], "canary-service") == 40,
        "{h:?}"
    );
    // Argo's PromoteRolloutFull.
    f.when_status_patch(json!({"status": {"promoteFull": true}}))
        .await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let h = http().await?;
        let done = weight(&h[0], "stable-service") == 100 && weight(&h[0], "canary-service") == 0;
        if done || Instant::now() > until {
            ensure!(done, "after full promotion {h:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.cleanup().await
}

/// Argo's TestIstioHostMirrorRoute: mirror routes first in `managedRoutes` order, carrying the
/// weighted route's current weights and their mirror percentage; one replaced, one removed; a
/// full promotion leaves the VirtualService's own route at 100/0.
pub async fn istio_host_mirror_route(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "istio-mirror").await?;
    for svc in ["canary-service", "stable-service"] {
        f.given_service(svc, "rollouts-demo").await?;
    }
    let vs: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1alpha3", "kind": "VirtualService",
        "metadata": {"name": "rollouts-demo-vsvc"},
        "spec": {"hosts": ["rollouts-demo.com"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "stable-service"}, "weight": 100},
            {"destination": {"host": "canary-service"}, "weight": 0}]}]},
    }))?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(f.client.clone(), &f.ns, &virtual_services());
    api.create(&PostParams::default(), &vs).await?;
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: rollouts-demo
spec:
  replicas: 5
  selector:
    matchLabels: {app: rollouts-demo}
  template:
    metadata:
      labels: {app: rollouts-demo}
    spec:
      containers:
      - name: rollouts-demo
        image: nginx:1.19-alpine
        resources: {requests: {memory: 16Mi, cpu: 5m}}
  strategy:
    canary:
      canaryService: canary-service
      stableService: stable-service
      trafficRouting:
        managedRoutes:
        - name: mirror-route-1
        - name: mirror-route-2
        istio:
          virtualService: {name: rollouts-demo-vsvc, routes: [primary]}
      steps:
      - setWeight: 20
      - setMirrorRoute:
          name: mirror-route-1
          percentage: 100
          match:
          - path: {prefix: /}
      - setMirrorRoute:
          name: mirror-route-2
          percentage: 80
          match:
          - path: {prefix: /}
            method: {exact: GET}
      - pause: {}
      - setMirrorRoute:
          name: mirror-route-1
          percentage: 100
          match:
          - path: {prefix: /rewrite}
      - pause: {}
      - setWeight: 40
      - setMirrorRoute: {name: mirror-route-1}
      - pause: {}
"#;
    f.given_rollout(yaml).await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    let http = || async {
        let vs = api.get("rollouts-demo-vsvc").await?;
        Ok::<_, anyhow::Error>(
            vs.data["spec"]["http"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        )
    };
    let weights = |route: &serde_json::Value| {
        let w = |host: &str| {
            route["route"]
                .as_array()
                .and_then(|r| r.iter().find(|d| d["destination"]["host"] == host))
                .and_then(|d| d["weight"].as_i64())
                .unwrap_or(-1)
        };
        (w("stable-service"), w("canary-service"))
    };
    ensure!(http().await?[0]["name"] == "primary");
    f.when_image("nginx:1.19-alpine-v2").await?;
    f.then("paused", T, |v| v.phase() == "Paused").await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = http().await?;
    ensure!(
        h.len() == 3 && h[0]["name"] == "mirror-route-1" && h[1]["name"] == "mirror-route-2",
        "{h:?}"
    );
    ensure!(
        h[0]["mirrorPercentage"]["value"].as_f64() == Some(100.0),
        "{h:?}"
    );
    ensure!(
        h[1]["mirrorPercentage"]["value"].as_f64() == Some(80.0),
        "{h:?}"
    );
    for r in &h {
        ensure!(weights(r) == (80, 20), "weights {r:?}");
    }
    f.promote().await?;
    f.then("paused again", T, |v| {
        v.step() == Some(5) && v.phase() == "Paused"
    })
    .await?;
    f.promote().await?;
    f.then("paused at 40", T, |v| {
        v.step() == Some(8) && v.phase() == "Paused"
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let h = http().await?;
    ensure!(
        h.len() == 2 && h[0]["name"] == "mirror-route-2" && h[1]["name"] == "primary",
        "{h:?}"
    );
    ensure!(
        weights(&h[0]) == (60, 40) && weights(&h[1]) == (60, 40),
        "{h:?}"
    );
    f.when_status_patch(json!({"status": {"promoteFull": true}}))
        .await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let h = http().await?;
        let done = h.len() == 1 && weights(&h[0]) == (100, 0);
        if done || Instant::now() > until {
            ensure!(done, "after full promotion {h:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.cleanup().await
}
