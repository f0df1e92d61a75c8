//! Traffic-routed canaries against the genuine API server: the seed Rollout with SMI, NGINX or
//! ALB routing walks its steps, and at each one the router's object, `status.canary.weights` and
//! the replica counts agree — with traffic routing the stable ReplicaSet keeps all 5 pods and
//! the canary has ceil(weight * 5 / 100). Promotion ends at canary weight 0, stable = new.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::{Value, json};

use crate::harness::{Cluster, Fixture, View, root};

const T: Duration = Duration::from_secs(60);
const STEPS: [i32; 4] = [20, 40, 60, 80];

/// The seed manifest, 3-second pauses, with the Services and `trafficRouting` block given.
fn routed_seed(routing: &str) -> Result<String> {
    let seed = std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml"))?;
    let yaml = seed.replace("{duration: 10m}", "{duration: 3}").replace(
        "    canary:\n",
        &format!(
            "    canary:\n      canaryService: frontend-canary\n      stableService: frontend-stable\n      trafficRouting:\n{routing}"
        ),
    );
    ensure!(
        yaml.contains("trafficRouting"),
        "the seed's canary block was not found"
    );
    Ok(yaml)
}

async fn with_services(c: &Cluster, name: &str) -> Result<Fixture> {
    let f = Fixture::new(c, name).await?;
    for svc in ["frontend-canary", "frontend-stable"] {
        f.given_service(svc, "frontend").await?;
    }
    Ok(f)
}

fn weights(v: &View) -> Value {
    let st = serde_json::to_value(v.ro.status.clone().unwrap_or_default()).unwrap_or_default();
    st["canary"]["weights"].clone()
}

/// Canary replicas for `w` percent of 5 with traffic routing.
fn canary_pods(w: i32) -> i32 {
    (w * 5 + 99) / 100
}

/// Wait for the status to carry canary weight `w` with the replica counts that go with it.
async fn at_weight(f: &Fixture, w: i32) -> Result<View> {
    f.then(&format!("canary weight {w}"), T, |v| {
        let ws = weights(v);
        ws["canary"]["weight"] == json!(w)
            && ws["stable"]["weight"] == json!(100 - w)
            && v.sizes() == (canary_pods(w), 5)
    })
    .await
}

/// Poll an async read until `ok` holds.
async fn eventually<T, F, Fut>(what: &str, read: F, ok: impl Fn(&T) -> bool) -> Result<T>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
    T: std::fmt::Debug,
{
    let start = Instant::now();
    loop {
        let got = read().await?;
        if ok(&got) {
            return Ok(got);
        }
        if start.elapsed() > T {
            bail!("timed out waiting for {what}; last: {got:?}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn owned_by(
    meta_owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    v: &View,
) -> bool {
    meta_owners.iter().any(|o| {
        o.controller == Some(true) && o.kind == "Rollout" && Some(o.uid.clone()) == v.ro.uid()
    })
}

fn splits(f: &Fixture) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("split.smi-spec.io", "v1alpha1", "TrafficSplit");
    Api::namespaced_with(
        f.client.clone(),
        &f.ns,
        &ApiResource::from_gvk_with_plural(&gvk, "trafficsplits"),
    )
}

/// `(canary weight, stable weight)` of the TrafficSplit, as written (v1alpha1: strings).
async fn split_weights(f: &Fixture) -> Result<(Value, Value)> {
    let ts = splits(f).get("frontend").await?;
    let b = &ts.data["spec"]["backends"];
    ensure!(b[0]["service"] == "frontend-canary", "backends {b}");
    ensure!(b[1]["service"] == "frontend-stable", "backends {b}");
    ensure!(
        ts.data["spec"]["service"] == "frontend-stable",
        "root service"
    );
    Ok((b[0]["weight"].clone(), b[1]["weight"].clone()))
}

fn quantity(w: i32) -> (Value, Value) {
    (json!(w.to_string()), json!((100 - w).to_string()))
}

/// SMI: the TrafficSplit (named after the Rollout, root = stable Service, v1alpha1 quantities)
/// is created at the first deploy with weight 0 and follows every step; the router is written
/// before the status that reports its weight.
pub async fn smi_canary_walk(c: &Cluster) -> Result<()> {
    let mut f = with_services(c, "smi-walk").await?;
    f.given_rollout(&routed_seed("        smi: {}\n")?).await?;
    let v = f
        .then("initial deploy healthy", T, |v| {
            v.healthy() && v.sizes() == (0, 5)
        })
        .await?;
    let ts = eventually(
        "the TrafficSplit",
        || async { Ok(splits(&f).get_opt("frontend").await?) },
        |t| t.is_some(),
    )
    .await?
    .context("TrafficSplit")?;
    ensure!(
        owned_by(ts.owner_references(), &v),
        "TrafficSplit owner {:?}",
        ts.owner_references()
    );
    eventually("split at 0", || split_weights(&f), |w| *w == quantity(0)).await?;

    f.when_image("frontend:v2").await?;
    for w in STEPS {
        let v = at_weight(&f, w).await?;
        ensure!(
            split_weights(&f).await? == quantity(w),
            "TrafficSplit behind status at {w}"
        );
        let ws = weights(&v);
        ensure!(
            ws["canary"]["podTemplateHash"] == json!(v.pod_hash()),
            "canary hash {ws}"
        );
        ensure!(
            ws["stable"]["podTemplateHash"] == json!(v.stable()),
            "stable hash {ws}"
        );
    }
    let old = f.view().await?.stable();
    let v = f
        .then("promoted, weight back to 0", T, |v| {
            v.healthy() && v.stable() != old && weights(v)["canary"]["weight"] == json!(0)
        })
        .await?;
    ensure!(v.sizes() == (0, 5), "sizes {:?}", v.sizes());
    ensure!(weights(&v)["stable"]["podTemplateHash"] == json!(v.stable()));
    eventually(
        "split back at 0",
        || split_weights(&f),
        |w| *w == quantity(0),
    )
    .await?;
    f.cleanup().await
}

fn ingresses(f: &Fixture) -> Api<Ingress> {
    Api::namespaced(f.client.clone(), &f.ns)
}

async fn given_stable_ingress(f: &Fixture) -> Result<()> {
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "frontend-ingress", "annotations": {"kubernetes.io/ingress.class": "nginx"}},
        "spec": {"rules": [
            {"host": "frontend.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "frontend-stable", "port": {"number": 80}}}}]}},
            {"host": "other.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "elsewhere", "port": {"number": 80}}}}]}}]}
    }))?;
    ingresses(f).create(&PostParams::default(), &ing).await?;
    Ok(())
}

const CANARY_INGRESS: &str = "frontend-frontend-ingress-canary";
const WEIGHT: &str = "nginx.ingress.kubernetes.io/canary-weight";

async fn canary_weight(f: &Fixture) -> Result<Option<String>> {
    Ok(ingresses(f)
        .get_opt(CANARY_INGRESS)
        .await?
        .and_then(|i| i.annotations().get(WEIGHT).cloned()))
}

/// NGINX: the canary Ingress `<rollout>-<stable>-canary` is created from the stable Ingress
/// (its one rule to the stable Service, pointed at the canary Service; the class kept), owned by
/// the Rollout, and its weight annotation follows every step.
pub async fn nginx_canary_walk(c: &Cluster) -> Result<()> {
    let mut f = with_services(c, "nginx-walk").await?;
    given_stable_ingress(&f).await?;
    f.given_rollout(&routed_seed(
        "        nginx: {stableIngress: frontend-ingress}\n",
    )?)
    .await?;
    let v = f
        .then("initial deploy healthy", T, |v| {
            v.healthy() && v.sizes() == (0, 5)
        })
        .await?;
    eventually(
        "canary ingress at 0",
        || canary_weight(&f),
        |w| w.as_deref() == Some("0"),
    )
    .await?;
    let ing = ingresses(&f).get(CANARY_INGRESS).await?;
    ensure!(
        owned_by(ing.owner_references(), &v),
        "owner {:?}",
        ing.owner_references()
    );
    let a = ing.annotations();
    ensure!(
        a.get("nginx.ingress.kubernetes.io/canary")
            .map(String::as_str)
            == Some("true")
    );
    ensure!(a.get("kubernetes.io/ingress.class").map(String::as_str) == Some("nginx"));
    let rules = ing.spec.and_then(|s| s.rules).unwrap_or_default();
    ensure!(rules.len() == 1, "rules {rules:?}");
    let backend = rules[0]
        .http
        .as_ref()
        .and_then(|h| h.paths[0].backend.service.as_ref())
        .map(|s| s.name.clone());
    ensure!(
        backend.as_deref() == Some("frontend-canary"),
        "backend {backend:?}"
    );

    f.when_image("frontend:v2").await?;
    for w in STEPS {
        at_weight(&f, w).await?;
        let got = canary_weight(&f).await?;
        ensure!(
            got == Some(w.to_string()),
            "canary Ingress behind status at {w}: {got:?}"
        );
    }
    let old = f.view().await?.stable();
    let v = f
        .then("promoted, weight back to 0", T, |v| {
            v.healthy() && v.stable() != old && weights(v)["canary"]["weight"] == json!(0)
        })
        .await?;
    ensure!(v.sizes() == (0, 5), "sizes {:?}", v.sizes());
    eventually(
        "canary ingress back at 0",
        || canary_weight(&f),
        |w| w.as_deref() == Some("0"),
    )
    .await?;
    f.cleanup().await
}

/// NGINX without its stable Ingress: a TrafficRoutingError warning naming the Ingress, and no
/// canary Ingress.
pub async fn nginx_missing_ingress_is_reported(c: &Cluster) -> Result<()> {
    let mut f = with_services(c, "nginx-missing").await?;
    f.given_rollout(&routed_seed(
        "        nginx: {stableIngress: frontend-ingress}\n",
    )?)
    .await?;
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns);
    let notes = eventually(
        "a TrafficRoutingError event",
        || async {
            Ok(events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("TrafficRoutingError"))
                .map(|e| e.note.unwrap_or_default())
                .collect::<Vec<_>>())
        },
        |n| !n.is_empty(),
    )
    .await?;
    ensure!(
        notes[0].contains("Ingress \"frontend-ingress\" not found"),
        "note {:?}",
        notes[0]
    );
    ensure!(ingresses(&f).get_opt(CANARY_INGRESS).await?.is_none());
    f.cleanup().await
}

/// Argo's TestCanarySetCanaryScale (canary_test.go) on NGINX routing, replicas 4: (canary,
/// stable) pods at steps 0, 2, 4, 6, 8 and after promotion are (0,4) (1,4) (1,4) (3,4) (2,4)
/// (4,4).
pub async fn canary_set_canary_scale(c: &Cluster) -> Result<()> {
    let mut f = with_services(c, "set-canary-scale").await?;
    given_stable_ingress(&f).await?;
    let yaml = routed_seed("        nginx:\n          stableIngress: frontend-ingress\n")?
        .replace("  replicas: 5\n", "  replicas: 4\n");
    let start = yaml
        .find("      steps:\n")
        .ok_or_else(|| anyhow::anyhow!("no steps in the seed"))?;
    let end = yaml
        .find("  revisionHistoryLimit")
        .ok_or_else(|| anyhow::anyhow!("no revisionHistoryLimit in the seed"))?;
    let mut yaml = yaml;
    yaml.replace_range(
        start..end,
        "      steps:\n      - pause: {}\n      - setCanaryScale: {weight: 25}\n      - pause: {duration: 100s}\n      - setWeight: 50\n      - pause: {duration: 10s}\n      - setCanaryScale: {replicas: 3}\n      - pause: {}\n      - setCanaryScale: {matchTrafficWeight: true}\n      - pause: {duration: 5s}\n",
    );
    f.given_rollout(&yaml).await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    f.when_image("frontend:v2").await?;
    // Pods of the current and of the stable revision, as ExpectCanaryStablePodCount counts.
    let pods = |v: &View| (v.size_of(&v.pod_hash()), v.size_of(&v.stable()));
    for (step, want) in [
        (0, (0, 4)),
        (2, (1, 4)),
        (4, (1, 4)),
        (6, (3, 4)),
        (8, (2, 4)),
    ] {
        let v = f
            .then(&format!("at step {step}"), T, |v| {
                v.step() == Some(step) && pods(v) == want && v.phase() == "Paused"
            })
            .await?;
        ensure!(pods(&v) == want, "step {step}: {:?}", pods(&v));
        f.promote().await?;
    }
    let v = f.then("healthy", T, |v| v.healthy()).await?;
    ensure!(pods(&v) == (4, 4), "promoted: {:?}", pods(&v));
    f.cleanup().await
}

const ALB_ACTION: &str = "alb.ingress.kubernetes.io/actions.frontend-stable";
const ALB_MANAGED: &str = "rollouts.argoproj.io/managed-alb-annotations";

/// The forward action Argo writes at canary weight `w` (port 80).
fn alb_action(w: i32) -> String {
    format!(
        r#"{{"Type":"forward","ForwardConfig":{{"TargetGroups":[{{"ServiceName":"frontend-canary","ServicePort":"80","Weight":{w}}},{{"ServiceName":"frontend-stable","ServicePort":"80","Weight":{}}}]}}}}"#,
        100 - w
    )
}

async fn alb_annotations(f: &Fixture) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(ingresses(f)
        .get("frontend-ingress")
        .await?
        .annotations()
        .clone())
}

/// ALB: the Ingress (its rule to the stable Service on port `use-annotation`) gets the forward
/// action annotation and the managed-annotations record at the first deploy with weight 0; the
/// action follows every step, ahead of the status; other annotations are left alone.
pub async fn alb_canary_walk(c: &Cluster) -> Result<()> {
    let mut f = with_services(c, "alb-walk").await?;
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "frontend-ingress", "annotations": {"kubernetes.io/ingress.class": "alb"}},
        "spec": {"rules": [{"http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "frontend-stable", "port": {"name": "use-annotation"}}}}]}}]}
    }))?;
    ingresses(&f).create(&PostParams::default(), &ing).await?;
    f.given_rollout(&routed_seed(
        "        alb: {ingress: frontend-ingress, servicePort: 80}\n",
    )?)
    .await?;
    f.then("initial deploy healthy", T, |v| {
        v.healthy() && v.sizes() == (0, 5)
    })
    .await?;
    let a = eventually(
        "the action at 0",
        || alb_annotations(&f),
        |a| a.get(ALB_ACTION) == Some(&alb_action(0)),
    )
    .await?;
    ensure!(
        a.get(ALB_MANAGED).map(String::as_str)
            == Some(r#"{"frontend":["alb.ingress.kubernetes.io/actions.frontend-stable"]}"#),
        "managed record {:?}",
        a.get(ALB_MANAGED)
    );
    ensure!(a.get("kubernetes.io/ingress.class").map(String::as_str) == Some("alb"));

    f.when_image("frontend:v2").await?;
    for w in STEPS {
        at_weight(&f, w).await?;
        let got = alb_annotations(&f).await?.get(ALB_ACTION).cloned();
        ensure!(
            got == Some(alb_action(w)),
            "ALB action behind status at {w}: {got:?}"
        );
    }
    let old = f.view().await?.stable();
    let v = f
        .then("promoted, weight back to 0", T, |v| {
            v.healthy() && v.stable() != old && weights(v)["canary"]["weight"] == json!(0)
        })
        .await?;
    ensure!(v.sizes() == (0, 5), "sizes {:?}", v.sizes());
    eventually(
        "the action back at 0",
        || alb_annotations(&f),
        |a| a.get(ALB_ACTION) == Some(&alb_action(0)),
    )
    .await?;
    f.cleanup().await
}

/// ALB without its Ingress: a TrafficRoutingError warning naming the Ingress.
pub async fn alb_missing_ingress_is_reported(c: &Cluster) -> Result<()> {
    let mut f = with_services(c, "alb-missing").await?;
    f.given_rollout(&routed_seed(
        "        alb: {ingress: frontend-ingress, servicePort: 80}\n",
    )?)
    .await?;
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns);
    let notes = eventually(
        "a TrafficRoutingError event",
        || async {
            Ok(events
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|e| e.reason.as_deref() == Some("TrafficRoutingError"))
                .map(|e| e.note.unwrap_or_default())
                .collect::<Vec<_>>())
        },
        |n| !n.is_empty(),
    )
    .await?;
    ensure!(
        notes[0] == "alb: Ingress \"frontend-ingress\" not found",
        "note {:?}",
        notes[0]
    );
    f.cleanup().await
}
