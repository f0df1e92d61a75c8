//! Running Sluice in production, against the genuine control plane: two replicas with leader
//! election (kill -9 takeover, and a frozen leader that must not write once it wakes), the metrics
//! endpoint during a rollout, JSON logs, and the chart's RBAC (a full canary with the chart's
//! ServiceAccount token and roles, not as cluster admin).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../support/helm.rs"]
mod helm;

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Cluster, Fixture, View, log_dir, root, wait_for};
pub(crate) use sluice_testkit::free_ports;

const T: Duration = Duration::from_secs(60);

pub(crate) fn seed() -> String {
    std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml")).unwrap_or_default()
}

fn log_path(name: &str) -> PathBuf {
    log_dir().join(format!("{name}.log"))
}

/// One controller process of ours.
struct Proc {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    metrics_port: u16,
    healthz_port: u16,
}

impl Proc {
    /// Start `sluice-controller` with `args`, `POD_NAME=<name>` (its lease identity) and JSON logs.
    fn start(name: &str, kubeconfig: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<Proc> {
        let (metrics_port, healthz_port) = free_ports()?;
        let log = log_path(&format!("ops-{name}"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-controller"));
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .arg("--metrics-port")
            .arg(metrics_port.to_string())
            .arg("--healthz-port")
            .arg(healthz_port.to_string())
            .arg("--log-format")
            .arg("json")
            .args(args)
            .env("RUST_LOG", "info,kube=warn")
            .env("POD_NAME", name)
            .env_remove("POD_NAMESPACE")
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting sluice-controller")?;
        Ok(Proc {
            name: name.into(),
            child: Some(child),
            log,
            metrics_port,
            healthz_port,
        })
    }

    fn pid(&self) -> Result<u32> {
        self.child
            .as_ref()
            .map(Child::id)
            .ok_or_else(|| anyhow!("{} is not running", self.name))
    }

    fn kill9(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    fn signal(&self, sig: &str) -> Result<()> {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid()?.to_string())
            .status()?;
        ensure!(st.success(), "kill -{sig} failed");
        Ok(())
    }

    /// The JSON lines of the log (every line must be JSON).
    fn lines(&self) -> Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.log)?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).map_err(|e| anyhow!("{}: not JSON ({e}): {l}", self.name))
            })
            .collect()
    }

    /// Log lines that record a write to the API.
    fn writes(&self) -> Result<usize> {
        Ok(self
            .lines()?
            .iter()
            .filter(|l| {
                matches!(
                    l["msg"].as_str(),
                    Some("applying plan" | "patched status" | "created ReplicaSet")
                )
            })
            .count())
    }

    async fn metrics(&self) -> Result<String> {
        let (code, body) = http_get(self.metrics_port, "/metrics").await?;
        ensure!(code == 200, "{}: /metrics answered {code}", self.name);
        Ok(body)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_ref() {
            // A stopped process ignores SIGKILL until continued; make sure it goes.
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(c.id().to_string())
                .status();
        }
        let _ = self.kill9();
    }
}

pub(crate) async fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("bad HTTP response: {text}"))?;
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    Ok((code, body.to_string()))
}

/// The value of the sample of `name` whose labels include all of `labels`.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            return None;
        }
        if !labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

async fn lease_holder(client: &Client, ns: &str) -> Result<Option<String>> {
    let api: Api<Lease> = Api::namespaced(client.clone(), ns);
    Ok(api
        .get_opt("sluice-controller-lock")
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

async fn wait_holder(client: &Client, ns: &str, who: &str, timeout: Duration) -> Result<()> {
    wait_for(
        &format!("{who} to hold the lease"),
        timeout,
        move || async move { Ok(lease_holder(client, ns).await?.as_deref() == Some(who)) },
    )
    .await
}

pub(crate) async fn wait_ready(port: u16) -> Result<()> {
    wait_for("/readyz 200", T, move || async move {
        Ok(http_get(port, "/readyz").await?.0 == 200)
    })
    .await
}

/// A namespace of our own with nothing left from an earlier run (the control plane keeps its etcd
/// data between runs): a stale Lease or a namespace still terminating would skew the election.
async fn fresh(c: &Cluster, name: &str) -> Result<Fixture> {
    let nss: Api<Namespace> = Api::all(c.client.clone());
    let ns = format!("e2e-{name}");
    if nss.get_opt(&ns).await?.is_some() {
        let _ = nss.delete(&ns, &DeleteParams::default()).await;
        let (nss, ns) = (&nss, ns.as_str());
        wait_for(
            &format!("namespace {ns} gone"),
            Duration::from_secs(120),
            move || async move { Ok(nss.get_opt(ns).await?.is_none()) },
        )
        .await?;
    }
    Fixture::bare(c, name).await
}

fn is_paused_at(v: &View, sizes: (i32, i32)) -> bool {
    v.sizes() == sizes && v.phase() == "Paused"
}

/// Two replicas: exactly one holds the lease and writes; the standby serves health and (warm)
/// metrics. kill -9 of the holder: the standby takes over within lease duration + retry period and
/// finishes the rollout. Every reconcile log line carries the rollout's namespace and name.
pub async fn ha_failover(c: &Cluster) -> Result<()> {
    let mut f = fresh(c, "ha").await?;
    let ns = f.ns.clone();
    let ns_arg = ["--namespace", ns.as_str()];
    let mut a = Proc::start("ha-a", &c.kubeconfig, &ns_arg, &[])?;
    wait_holder(&f.client, &ns, "ha-a", T).await?;
    let b = Proc::start("ha-b", &c.kubeconfig, &ns_arg, &[])?;
    wait_ready(b.healthz_port).await?;

    f.given_rollout(&seed()).await?;
    f.then("initial deploy healthy", T, |v| {
        v.healthy() && v.sizes() == (0, 5)
    })
    .await?;
    f.when_image("frontend:v2").await?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;

    // Exactly one writer.
    ensure!(lease_holder(&f.client, &ns).await?.as_deref() == Some("ha-a"));
    ensure!(a.writes()? > 0, "the leader wrote nothing");
    ensure!(b.writes()? == 0, "the standby wrote: {} lines", b.writes()?);
    let (ma, mb) = (a.metrics().await?, b.metrics().await?);
    let lock = [("name", "sluice-controller-lock")];
    ensure!(sample(&ma, "leader_election_master_status", &lock) == Some(1.0));
    ensure!(sample(&mb, "leader_election_master_status", &lock) == Some(0.0));
    let ro = [("namespace", ns.as_str()), ("name", "frontend")];
    let standby = &b;
    wait_for(
        "standby's warm cache shows the pause",
        T,
        move || async move {
            Ok(sample(
                &standby.metrics().await?,
                "rollout_info",
                &[ro[0], ro[1], ("phase", "Paused")],
            ) == Some(1.0))
        },
    )
    .await?;
    ensure!(
        sample(&mb, "rollout_reconcile_count", &ro).is_none(),
        "the standby reconciled"
    );

    // kill -9 the holder mid-rollout.
    let killed = Instant::now();
    a.kill9()?;
    wait_holder(&f.client, &ns, "ha-b", Duration::from_secs(30)).await?;
    let takeover = killed.elapsed();
    // Lease duration 15 s + retry period 2 s, plus the poll interval of this check.
    ensure!(
        takeover <= Duration::from_millis(17_500),
        "takeover took {takeover:?}"
    );
    for sizes in [(2, 3), (3, 2), (4, 1)] {
        f.promote().await?;
        f.then(&format!("paused at {sizes:?}"), T, |v| {
            is_paused_at(v, sizes)
        })
        .await?;
    }
    f.promote().await?;
    f.then("fully promoted by the new leader", T, |v| {
        v.healthy() && v.sizes() == (0, 5)
    })
    .await?;
    let finished = killed.elapsed();
    ensure!(b.writes()? > 0, "the new leader wrote nothing");
    eprintln!(
        "[ha] kill -9 of the leader: standby took the lease after {:.1}s, rollout finished {:.1}s after the kill",
        takeover.as_secs_f64(),
        finished.as_secs_f64()
    );

    // JSON logs: every line parses; every line of a reconcile names the rollout.
    for p in [&a, &b] {
        let lines = p.lines()?;
        ensure!(!lines.is_empty());
        let reconcile_lines: Vec<&Value> = lines
            .iter()
            .filter(|l| {
                matches!(
                    l["msg"].as_str(),
                    Some("applying plan" | "patched status" | "created ReplicaSet")
                ) || l["reason"].is_string()
            })
            .collect();
        for l in &reconcile_lines {
            ensure!(
                l["namespace"] == ns.as_str() && l["rollout"] == "frontend",
                "{}: reconcile line without the rollout: {l}",
                p.name
            );
            ensure!(l["time"].is_string() && l["level"].is_string(), "{l}");
        }
    }
    ensure!(b.lines()?.iter().any(|l| l["msg"] == "acquired leadership"));
    f.cleanup().await
}

const PAUSE_AT_40: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: fenced}
spec:
  replicas: 5
  selector: {matchLabels: {app: fenced}}
  strategy:
    canary:
      steps:
      - setWeight: 40
      - pause: {}
      - setWeight: 80
      - pause: {duration: 1}
  template:
    metadata: {labels: {app: fenced}}
    spec: {containers: [{name: app, image: "fenced:v1"}]}
"#;

/// A leader frozen (SIGSTOP) past its renew deadline loses the lease to the standby; when it
/// wakes up it must exit without a single write, while the new leader finishes the rollout.
pub async fn frozen_leader_is_fenced(c: &Cluster) -> Result<()> {
    let mut f = fresh(c, "fenced").await?;
    let ns = f.ns.clone();
    let args = [
        "--namespace",
        ns.as_str(),
        "--leader-election-lease-duration=6s",
        "--leader-election-renew-deadline=4s",
        "--leader-election-retry-period=1s",
    ];
    let mut a = Proc::start("fenced-a", &c.kubeconfig, &args, &[])?;
    wait_holder(&f.client, &ns, "fenced-a", T).await?;
    let b = Proc::start("fenced-b", &c.kubeconfig, &args, &[])?;
    f.given_rollout(PAUSE_AT_40).await?;
    f.then("initial deploy", T, |v| v.healthy()).await?;
    f.when_image("fenced:v2").await?;
    f.then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;

    a.signal("STOP")?;
    let stopped = Instant::now();
    wait_holder(&f.client, &ns, "fenced-b", Duration::from_secs(20)).await?;
    let takeover = stopped.elapsed();
    // The user promotes while the old leader is still frozen; the new leader finishes.
    f.promote().await?;
    f.then("completed by the new leader", T, |v| v.healthy())
        .await?;
    let before = a.writes()?;
    a.signal("CONT")?;
    let woke = Instant::now();
    let status = loop {
        if let Some(st) = a.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
            break st;
        }
        ensure!(
            woke.elapsed() < Duration::from_secs(10),
            "the woken ex-leader did not exit"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    a.child = None;
    ensure!(!status.success(), "the ex-leader exited with {status}");
    ensure!(
        a.writes()? == before,
        "the ex-leader wrote after waking: {} -> {}",
        before,
        a.writes()?
    );
    ensure!(
        a.lines()?.iter().any(|l| l["msg"]
            .as_str()
            .unwrap_or("")
            .starts_with("lost leadership")),
        "the ex-leader did not report the loss"
    );
    ensure!(lease_holder(&f.client, &ns).await?.as_deref() == Some("fenced-b"));
    eprintln!(
        "[fenced] frozen leader replaced after {:.1}s (lease 6s, retry 1s); it exited {:.2}s after waking, with {status}, without writing",
        takeover.as_secs_f64(),
        woke.elapsed().as_secs_f64()
    );
    drop(b);
    f.cleanup().await
}

/// `/metrics` during a rollout: rollout_info's phase and the replica gauges follow the walk;
/// reconcile timings and events are counted; health endpoints answer on their own port.
pub async fn metrics_during_rollout(c: &Cluster) -> Result<()> {
    let mut f = fresh(c, "metrics").await?;
    let ns = f.ns.clone();
    let p = Proc::start("metrics", &c.kubeconfig, &["--namespace", ns.as_str()], &[])?;
    wait_ready(p.healthz_port).await?;
    ensure!(http_get(p.healthz_port, "/healthz").await?.0 == 200);
    ensure!(http_get(p.healthz_port, "/metrics").await?.0 == 404);
    ensure!(http_get(p.metrics_port, "/healthz").await?.0 == 404);

    let ro = [("namespace", ns.as_str()), ("name", "frontend")];
    let pr = &p;
    let expect = move |phase: &'static str, updated: f64, available: f64| {
        let p = pr;
        async move {
            let what =
                format!("rollout_info phase={phase} updated={updated} available={available}");
            let start = Instant::now();
            loop {
                let m = p.metrics().await?;
                let ok = sample(&m, "rollout_info", &[ro[0], ro[1], ("phase", phase)]) == Some(1.0)
                    && sample(&m, "rollout_info_replicas_updated", &ro) == Some(updated)
                    && sample(&m, "rollout_info_replicas_available", &ro) == Some(available)
                    && sample(&m, "rollout_info_replicas_desired", &ro) == Some(5.0);
                if ok {
                    return Ok::<String, anyhow::Error>(m);
                }
                if start.elapsed() > T {
                    bail!(
                        "timed out waiting for {what}; last:\n{}",
                        m.lines()
                            .filter(|l| l.starts_with("rollout_info"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };

    f.given_rollout(&seed()).await?;
    f.then("initial deploy healthy", T, |v| v.healthy()).await?;
    expect("Completed", 5.0, 5.0).await?;
    f.when_image("frontend:v2").await?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    expect("Paused", 1.0, 5.0).await?;
    f.promote().await?;
    f.then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    let m = expect("Paused", 2.0, 5.0).await?;
    ensure!(
        sample(
            &m,
            "rollout_info",
            &[("strategy", "canary"), ("traffic_router", "")]
        )
        .is_some()
    );
    ensure!(sample(&m, "rollout_info_replicas_unavailable", &ro) == Some(0.0));
    f.when_status_patch(json!({"status": {"promoteFull": true}}))
        .await?;
    let v = f.then("fully promoted", T, |v| v.healthy()).await?;
    let m = expect("Completed", 5.0, 5.0).await?;
    // status.duration and the duration histograms: the initial deploy finished Promoted, the
    // update FastPromoted (promoteFull), one observation each, labelled by status only.
    let d =
        v.ro.status
            .as_ref()
            .and_then(|s| s.duration.clone())
            .ok_or_else(|| anyhow!("no status.duration"))?;
    ensure!(
        d.completion_status.as_deref() == Some("FastPromoted")
            && d.rollout_started_at.is_some()
            && d.finished_at.is_some(),
        "{d:?}"
    );
    for status in ["Promoted", "FastPromoted"] {
        for family in [
            "rollout_duration_seconds_count",
            "rollout_progression_duration_seconds_count",
            "rollout_manual_pause_duration_seconds_count",
        ] {
            let n = sample(&m, family, &[("status", status)]);
            ensure!(n == Some(1.0), "{family}{{status={status}}} = {n:?}");
        }
    }

    let reconciles = sample(&m, "rollout_reconcile_count", &ro).unwrap_or(0.0);
    ensure!(reconciles >= 5.0, "rollout_reconcile_count {reconciles}");
    ensure!(
        sample(
            &m,
            "rollout_reconcile_bucket",
            &[ro[0], ro[1], ("le", "+Inf")]
        ) == Some(reconciles)
    );
    ensure!(
        m.lines()
            .any(|l| l.starts_with("rollout_events_total{") && l.contains(r#"name="frontend""#)),
        "no rollout_events_total for the rollout"
    );
    ensure!(sample(&m, "argo_rollouts_controller_info", &[]) == Some(1.0));
    // Every API request is counted, by kind, namespace, verb and code only.
    let status_patches = [
        ("kind", "rollouts"),
        ("namespace", ns.as_str()),
        ("name", "N/A"),
        ("verb", "Patch"),
        ("status_code", "200"),
    ];
    let patches = sample(
        &m,
        "controller_clientset_k8s_request_total",
        &status_patches,
    );
    ensure!(
        patches.unwrap_or(0.0) >= 3.0,
        "rollout patches counted: {patches:?}"
    );
    ensure!(
        sample(
            &m,
            "controller_clientset_k8s_request_total",
            &[("kind", "replicasets"), ("verb", "Watch")]
        )
        .is_some(),
        "the ReplicaSet watch is counted"
    );
    ensure!(sample(&m, "process_resident_memory_bytes", &[]).unwrap_or(0.0) > 0.0);
    // Bounded cardinality: no series names an object other than the rollout.
    for l in m.lines().filter(|l| !l.starts_with('#')) {
        if let Some(i) = l.find("name=\"") {
            let name = &l[i + 6..];
            ensure!(
                name.starts_with("frontend\"")
                    || name.starts_with("sluice-controller-lock\"")
                    || name.starts_with("N/A\""),
                "unexpected per-object series: {l}"
            );
        }
    }
    // The series of a deleted rollout go at once for the gauges.
    f.rollouts()
        .delete("frontend", &DeleteParams::default())
        .await?;
    wait_for("rollout_info gone", T, move || async move {
        Ok(sample(&pr.metrics().await?, "rollout_info", &ro).is_none())
    })
    .await?;
    drop(p);
    f.cleanup().await
}

// ------------------------------------------------------------------------------------------------
// The chart's RBAC
// ------------------------------------------------------------------------------------------------

async fn apply_json<K>(api: &Api<K>, obj: &Value) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(obj.clone())?;
    let name = typed.name_any();
    api.patch(
        &name,
        &PatchParams::apply("sluice-e2e").force(),
        &Patch::Apply(&typed),
    )
    .await
    .with_context(|| format!("applying {name}"))?;
    Ok(())
}

/// `kubectl auth can-i` for the ServiceAccount.
async fn can_i(
    client: &Client,
    user: &str,
    verb: &str,
    group: &str,
    resource: &str,
    ns: Option<&str>,
) -> Result<bool> {
    let api: Api<SubjectAccessReview> = Api::all(client.clone());
    let mut attrs = json!({"verb": verb, "group": group, "resource": resource});
    if let Some(ns) = ns {
        attrs["namespace"] = json!(ns);
    }
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {
            "user": user,
            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", user.split(':').nth(2).unwrap_or("")), "system:authenticated"],
            "resourceAttributes": attrs,
        },
    }))?;
    let r = api.create(&PostParams::default(), &review).await?;
    Ok(r.status.map(|s| s.allowed).unwrap_or(false))
}

/// A kubeconfig for the ServiceAccount: the cluster entry of the admin one, the SA's token.
async fn service_account_kubeconfig(
    c: &Cluster,
    client: &Client,
    ns: &str,
    sa: &str,
) -> Result<PathBuf> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut token = None;
    let start = Instant::now();
    while token.is_none() {
        // Kubernetes 1.20 creates a token Secret for every ServiceAccount.
        token = secrets
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|s| s.type_.as_deref() == Some("kubernetes.io/service-account-token"))
            .filter(|s| {
                s.annotations()
                    .get("kubernetes.io/service-account.name")
                    .map(String::as_str)
                    == Some(sa)
            })
            .find_map(|s| {
                s.data?
                    .get("token")
                    .map(|t| String::from_utf8_lossy(&t.0).to_string())
            });
        ensure!(
            start.elapsed() < T,
            "no token Secret for ServiceAccount {sa}"
        );
        if token.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let admin: Value = serde_saphyr::from_str(&std::fs::read_to_string(&c.kubeconfig)?)
        .map_err(|e| anyhow!("kubeconfig: {e}"))?;
    let cluster = admin["clusters"][0].clone();
    let cluster_name = cluster["name"].clone();
    let kc = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": cluster_name, "user": sa, "namespace": ns}}],
        "current-context": sa,
    });
    // Beside the cluster it belongs to (concurrent runs share target/e2e-logs).
    let path = c.dir.join(format!("{ns}-{sa}-kubeconfig"));
    // JSON is YAML.
    std::fs::write(&path, serde_json::to_vec_pretty(&kc)?)?;
    Ok(path)
}

/// The chart's ServiceAccount and roles, applied to the cluster from a real Helm render; the
/// controller then runs a full canary with the ServiceAccount's token. Cluster-wide install
/// (`namespaced == false`, isolated from the other scenarios by an instance id) or namespaced.
pub async fn chart_rbac(c: &Cluster, namespaced: bool) -> Result<()> {
    let name = if namespaced { "rbac-ns" } else { "rbac" };
    let mut f = fresh(c, name).await?;
    let ns = f.ns.clone();
    let release = format!("sluice-{name}");
    let instance = format!("e2e-{name}");
    let values = json!({
        "clusterInstall": !namespaced,
        "controller": {"instanceID": instance},
    });
    let rendered = helm::render(&values, &release, &ns)?;
    let admin = f.client.clone();
    let mut applied = Vec::new();
    for o in rendered.objects()? {
        let kind = o["kind"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "ServiceAccount" => {
                apply_json(&Api::<ServiceAccount>::namespaced(admin.clone(), &ns), &o).await?
            }
            "Role" => apply_json(&Api::<Role>::namespaced(admin.clone(), &ns), &o).await?,
            "RoleBinding" => {
                apply_json(&Api::<RoleBinding>::namespaced(admin.clone(), &ns), &o).await?
            }
            "ClusterRole" => apply_json(&Api::<ClusterRole>::all(admin.clone()), &o).await?,
            "ClusterRoleBinding" => {
                apply_json(&Api::<ClusterRoleBinding>::all(admin.clone()), &o).await?
            }
            // The workload itself cannot run here (no kubelet, no image); its args are checked
            // by tests/chart.rs against the binary.
            _ => continue,
        }
        applied.push(kind);
    }
    let want: &[&str] = if namespaced {
        &[
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Role",
            "RoleBinding",
        ]
    } else {
        &[
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Role",
            "RoleBinding",
        ]
    };
    let mut got = applied.clone();
    got.sort();
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    ensure!(got == want, "applied {applied:?}");

    // No wider than needed, as the API server itself judges it.
    let user = format!("system:serviceaccount:{ns}:{release}");
    let scope = if namespaced { Some(ns.as_str()) } else { None };
    for (verb, group, resource, at, allowed) in [
        ("list", "argoproj.io", "rollouts", scope, true),
        (
            "patch",
            "argoproj.io",
            "rollouts/status",
            Some(ns.as_str()),
            true,
        ),
        ("delete", "apps", "replicasets", Some(ns.as_str()), true),
        ("create", "events.k8s.io", "events", Some(ns.as_str()), true),
        (
            "create",
            "coordination.k8s.io",
            "leases",
            Some(ns.as_str()),
            true,
        ),
        // A namespaced install reads Secrets (AnalysisRun arguments) in its own namespace only.
        ("get", "", "secrets", Some(ns.as_str()), namespaced),
        ("get", "", "secrets", Some("default"), false),
        (
            "create",
            "argoproj.io",
            "analysisruns",
            Some(ns.as_str()),
            true,
        ),
        ("create", "batch", "jobs", Some(ns.as_str()), true),
        (
            "list",
            "argoproj.io",
            "clusteranalysistemplates",
            None,
            !namespaced,
        ),
        ("list", "", "secrets", None, false),
        ("list", "", "pods", Some(ns.as_str()), true),
        ("update", "", "pods", Some(ns.as_str()), true),
        ("watch", "", "pods", Some(ns.as_str()), false),
        ("delete", "", "pods", Some(ns.as_str()), false),
        ("create", "apps", "deployments", Some(ns.as_str()), false),
        (
            "delete",
            "argoproj.io",
            "rollouts",
            Some(ns.as_str()),
            false,
        ),
        (
            "create",
            "coordination.k8s.io",
            "leases",
            Some("default"),
            false,
        ),
        (
            "list",
            "argoproj.io",
            "rollouts",
            Some("default"),
            !namespaced,
        ),
        ("list", "argoproj.io", "rollouts", None, !namespaced),
    ] {
        let got = can_i(&admin, &user, verb, group, resource, at).await?;
        ensure!(
            got == allowed,
            "{user} {verb} {group}/{resource} in {at:?}: allowed={got}, expected {allowed}"
        );
    }

    let kubeconfig = service_account_kubeconfig(c, &admin, &ns, &release).await?;
    let mut args = vec!["--instance-id", instance.as_str()];
    if namespaced {
        args.extend(["--namespace", ns.as_str()]);
    }
    let p = Proc::start(
        &format!("{name}-controller"),
        &kubeconfig,
        &args,
        &[("POD_NAMESPACE", ns.as_str())],
    )?;
    let lock = format!("sluice-controller-lock-{instance}");
    let leases: Api<Lease> = Api::namespaced(admin.clone(), &ns);
    let (leases, lock_name) = (&leases, lock.as_str());
    wait_for(
        "the ServiceAccount's controller to hold the lease",
        T,
        move || async move { Ok(leases.get_opt(lock_name).await?.is_some()) },
    )
    .await?;

    let manifest = seed()
        .replace("{duration: 10m}", "{duration: 1}")
        .replace(
            "metadata:\n  name: frontend",
            &format!(
                "metadata:\n  name: frontend\n  labels:\n    argo-rollouts.argoproj.io/controller-instance-id: {instance}"
            ),
        );
    ensure!(manifest.contains("controller-instance-id"));
    f.given_rollout(&manifest).await?;
    f.then("initial deploy healthy", T, |v| v.healthy()).await?;
    f.when_image("frontend:v2").await?;
    for sizes in [(1, 4), (2, 3), (3, 2), (4, 1)] {
        f.then(&format!("canary at {sizes:?}"), T, |v| v.sizes() == sizes)
            .await?;
    }
    f.then("full canary completed", T, |v| {
        v.healthy() && v.sizes() == (0, 5)
    })
    .await?;

    // Nothing was refused along the way, events included.
    let text = std::fs::read_to_string(&p.log)?;
    for bad in ["forbidden", "could not record event", "code: 403"] {
        ensure!(
            !text.to_lowercase().contains(bad),
            "controller log mentions {bad:?}: see {}",
            p.log.display()
        );
    }
    let events: Api<KubeEvent> = Api::namespaced(admin.clone(), &ns);
    let ours = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("frontend"))
        .count();
    ensure!(ours > 0, "no events recorded for the rollout");
    drop(p);
    if !namespaced {
        let _ = Api::<ClusterRoleBinding>::all(admin.clone())
            .delete(&release, &DeleteParams::default())
            .await;
        let _ = Api::<ClusterRole>::all(admin.clone())
            .delete(&release, &DeleteParams::default())
            .await;
    }
    f.cleanup().await
}
