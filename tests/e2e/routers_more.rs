//! Traefik, APISIX and Ambassador canaries against the genuine API server: the seed Rollout
//! (3-second pauses, canary and stable Services given) walks 20/40/60/80, and at each step the
//! router's object carries the weight `status.canary.weights` reports, the stable ReplicaSet
//! keeping its 5 pods; promotion ends at canary weight 0.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use kube::Api;
use kube::api::{ApiResource, DynamicObject, PostParams};
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

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: format!("{group}/{version}"),
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn api(f: &Fixture, r: &ApiResource) -> Api<DynamicObject> {
    Api::namespaced_with(f.client.clone(), &f.ns, r)
}

/// The Services, then the router objects, then the Rollout.
async fn given(c: &Cluster, name: &str, objects: &[(ApiResource, Value)]) -> Result<Fixture> {
    let f = Fixture::new(c, name).await?;
    for svc in ["frontend-canary", "frontend-stable"] {
        f.given_service(svc, "frontend").await?;
    }
    for (r, obj) in objects {
        let obj: DynamicObject = serde_json::from_value(obj.clone())?;
        api(&f, r).create(&PostParams::default(), &obj).await?;
    }
    Ok(f)
}

fn status_weights(v: &View) -> Value {
    let st = serde_json::to_value(v.ro.status.clone().unwrap_or_default()).unwrap_or_default();
    st["canary"]["weights"].clone()
}

/// Canary replicas for `w` percent of 5 with traffic routing.
fn canary_pods(w: i32) -> i32 {
    (w * 5 + 99) / 100
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

/// The walk every router shares. `read` gives the router object's weights as
/// `(canary, stable)`, `None` standing for "no canary object" where the router deletes it.
/// `initial` and `last` are what the router holds before the update and after promotion.
async fn walk<F, Fut>(
    mut f: Fixture,
    routing: &str,
    read: F,
    initial: Option<(i64, i64)>,
    last: Option<(i64, i64)>,
) -> Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Option<(i64, i64)>>>,
{
    f.given_rollout(&routed_seed(routing)?).await?;
    f.then("initial deploy healthy", T, |v| {
        v.healthy() && v.sizes() == (0, 5)
    })
    .await?;
    eventually("the initial router weights", &read, |w| *w == initial).await?;
    f.when_image("frontend:v2").await?;
    for w in STEPS {
        let v = f
            .then(&format!("canary weight {w}"), T, |v| {
                let ws = status_weights(v);
                ws["canary"]["weight"] == json!(w)
                    && ws["stable"]["weight"] == json!(100 - w)
                    && v.sizes() == (canary_pods(w), 5)
            })
            .await?;
        // The router is written before the status that reports its weight.
        let got = read().await?;
        let want = Some((i64::from(w), i64::from(100 - w)));
        ensure!(got == want, "router at {got:?} with status at {w}");
        let ws = status_weights(&v);
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
            v.healthy() && v.stable() != old && status_weights(v)["canary"]["weight"] == json!(0)
        })
        .await?;
    ensure!(v.sizes() == (0, 5), "sizes {:?}", v.sizes());
    eventually("the router after promotion", &read, |w| *w == last).await?;
    f.cleanup().await
}

fn traefik_services() -> ApiResource {
    resource(
        "traefik.io",
        "v1alpha1",
        "TraefikService",
        "traefikservices",
    )
}

/// Traefik: the weighted TraefikService's canary and stable entries follow every step; a
/// third entry and the ports are left as they were.
pub async fn traefik_canary_walk(c: &Cluster) -> Result<()> {
    let ts = json!({
        "apiVersion": "traefik.io/v1alpha1", "kind": "TraefikService",
        "metadata": {"name": "frontend-weighted"},
        "spec": {"weighted": {"services": [
            {"name": "frontend-stable", "port": 80, "weight": 100},
            {"name": "frontend-canary", "port": 80, "weight": 0},
            {"name": "elsewhere", "port": 80, "weight": 7}]}},
    });
    let f = given(c, "traefik-walk", &[(traefik_services(), ts)]).await?;
    let a = api(&f, &traefik_services());
    let read = || async {
        let ts = a.get("frontend-weighted").await?;
        let s = &ts.data["spec"]["weighted"]["services"];
        ensure!(
            s[2] == json!({"name": "elsewhere", "port": 80, "weight": 7}),
            "third service {s}"
        );
        let weight = |i: usize| s[i]["weight"].as_i64().unwrap_or(-1);
        ensure!(
            s[0]["name"] == "frontend-stable" && s[0]["port"] == 80,
            "{s}"
        );
        Ok(Some((weight(1), weight(0))))
    };
    walk(
        f,
        "        traefik: {weightedTraefikServiceName: frontend-weighted}\n",
        read,
        Some((0, 100)),
        Some((0, 100)),
    )
    .await
}

fn apisix_routes() -> ApiResource {
    resource("apisix.apache.org", "v2", "ApisixRoute", "apisixroutes")
}

/// APISIX: the listed http rule's canary and stable backends follow every step (Argo's
/// TestAPISIXCanaryStep over the seed); a rule not listed keeps its weights.
pub async fn apisix_canary_walk(c: &Cluster) -> Result<()> {
    let rule = |name: &str| {
        json!({"name": name,
            "match": {"paths": ["/*"], "methods": ["GET"], "hosts": ["frontend.example.com"]},
            "backends": [
                {"serviceName": "frontend-stable", "servicePort": 80, "weight": 100},
                {"serviceName": "frontend-canary", "servicePort": 80, "weight": 0}]})
    };
    let ar = json!({
        "apiVersion": "apisix.apache.org/v2", "kind": "ApisixRoute",
        "metadata": {"name": "frontend-route"},
        "spec": {"http": [rule("other"), rule("primary")]},
    });
    let f = given(c, "apisix-walk", &[(apisix_routes(), ar)]).await?;
    let a = api(&f, &apisix_routes());
    let read = || async {
        let ar = a.get("frontend-route").await?;
        let http = &ar.data["spec"]["http"];
        ensure!(
            http[0] == rule("other"),
            "the unlisted rule changed: {http}"
        );
        ensure!(http[1]["name"] == "primary", "{http}");
        let b = &http[1]["backends"];
        ensure!(b[0]["serviceName"] == "frontend-stable", "{b}");
        ensure!(b[1]["serviceName"] == "frontend-canary", "{b}");
        let weight = |i: usize| b[i]["weight"].as_i64().unwrap_or(-1);
        Ok(Some((weight(1), weight(0))))
    };
    walk(
        f,
        "        apisix:\n          route: {name: frontend-route, rules: [primary]}\n",
        read,
        Some((0, 100)),
        Some((0, 100)),
    )
    .await
}

fn mappings() -> ApiResource {
    resource("getambassador.io", "v2", "Mapping", "mappings")
}

/// Ambassador: no canary Mapping until the first step; then `frontend-mapping-canary`, a copy
/// of the base onto the canary Service, whose weight follows every step (the stable's share is
/// what is left, 100 - weight); after promotion it is zeroed and deleted. The base is never
/// changed.
pub async fn ambassador_canary_walk(c: &Cluster) -> Result<()> {
    let base_spec =
        json!({"prefix": "/frontend/", "rewrite": "/", "service": "frontend-stable:80"});
    let base = json!({
        "apiVersion": "getambassador.io/v2", "kind": "Mapping",
        "metadata": {"name": "frontend-mapping"},
        "spec": base_spec,
    });
    let f = given(c, "ambassador-walk", &[(mappings(), base)]).await?;
    let a = api(&f, &mappings());
    let read = || async {
        let base = a.get("frontend-mapping").await?;
        ensure!(
            base.data["spec"] == base_spec,
            "base changed: {:?}",
            base.data
        );
        let Some(canary) = a.get_opt("frontend-mapping-canary").await? else {
            return Ok(None);
        };
        let s = &canary.data["spec"];
        ensure!(s["service"] == "frontend-canary:80", "canary service {s}");
        ensure!(
            s["prefix"] == "/frontend/" && s["rewrite"] == "/",
            "canary copy {s}"
        );
        let w = s["weight"].as_i64().unwrap_or(-1);
        Ok(Some((w, 100 - w)))
    };
    walk(
        f,
        "        ambassador:\n          mappings: [frontend-mapping]\n",
        read,
        None,
        None,
    )
    .await
}
