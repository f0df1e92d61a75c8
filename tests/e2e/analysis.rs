//! Analysis end to end: a real Prometheus (Debian's package, started here on loopback) scraping a
//! metrics endpoint this test controls, the web provider against the same loopback server, and
//! the job provider with the fake kubelet finishing (or failing) the Job's pod.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, ensure};
use kube::Api;
use kube::api::{Patch, PatchParams};
use sluice::api::analysis::{AnalysisRun, AnalysisTemplate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{Cluster, Fixture, View};

const T: Duration = Duration::from_secs(90);

/// A loopback HTTP server: `/metrics` in Prometheus text format with one gauge per scenario,
/// `/web/<scenario>` as JSON `{"rate": <value>}`.
#[derive(Clone, Default)]
pub struct Signals {
    values: Arc<Mutex<HashMap<String, f64>>>,
    pub addr: Option<SocketAddr>,
}

impl Signals {
    pub async fn start() -> Result<Signals> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let s = Signals {
            values: Arc::default(),
            addr: Some(addr),
        };
        let values = s.values.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let values = values.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let Ok(n) = sock.read(&mut buf).await else {
                        return;
                    };
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let snapshot = values.lock().map(|v| v.clone()).unwrap_or_default();
                    let body = if path == "/metrics" {
                        let mut out = String::from("# TYPE sluice_e2e_success_rate gauge\n");
                        for (k, v) in &snapshot {
                            out.push_str(&format!(
                                "sluice_e2e_success_rate{{scenario=\"{k}\"}} {v}\n"
                            ));
                        }
                        out
                    } else if let Some(name) = path.strip_prefix("/web/") {
                        format!(
                            "{{\"rate\": {}}}",
                            snapshot.get(name).copied().unwrap_or(0.0)
                        )
                    } else {
                        String::new()
                    };
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        Ok(s)
    }

    pub fn set(&self, scenario: &str, value: f64) {
        if let Ok(mut v) = self.values.lock() {
            v.insert(scenario.to_string(), value);
        }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// A real Prometheus scraping `Signals` every second; killed on drop.
pub struct Prometheus {
    child: Child,
    pub url: String,
}

impl Prometheus {
    pub async fn start(signals: &Signals) -> Result<Prometheus> {
        let dir = crate::harness::log_dir().join("prometheus");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n- job_name: signals\n  static_configs:\n  - targets: ['{}']\n",
            signals.addr()
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(crate::harness::log_dir().join("prometheus.log"))?;
        let bin = ["/usr/bin/prometheus", "prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("prometheus"));
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting prometheus (apt-get install prometheus)")?;
        let p = Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(format!("{}/-/ready", p.url)).send().await
                && r.status().is_success()
            {
                return Ok(p);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(anyhow!("prometheus did not become ready"))
    }

    /// Wait until Prometheus has scraped `value` for `scenario`.
    pub async fn wait_for_value(&self, scenario: &str, value: f64) -> Result<()> {
        let client = reqwest::Client::new();
        let q = format!("sluice_e2e_success_rate{{scenario=\"{scenario}\"}}");
        for _ in 0..150 {
            let r = client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", q.as_str())])
                .send()
                .await;
            if let Ok(r) = r {
                let body = r.text().await.unwrap_or_default();
                if body.contains(&format!("\"{value}\"")) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(anyhow!("prometheus never saw {scenario}={value}"))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rollout(name: &str, template: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: {name}}}
spec:
  replicas: 5
  selector: {{matchLabels: {{app: {name}}}}}
  strategy:
    canary:
      steps:
      - setWeight: 20
      - analysis:
          templates: [{{templateName: {template}}}]
          args: [{{name: scenario, value: {name}}}]
      - setWeight: 60
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec: {{containers: [{{name: app, image: "{name}:v1"}}]}}
"#
    )
}

async fn apply_template(f: &Fixture, yaml: &str) -> Result<()> {
    let t: AnalysisTemplate = serde_saphyr::from_str(yaml).map_err(|e| anyhow!("template: {e}"))?;
    let api: Api<AnalysisTemplate> = Api::namespaced(f.client.clone(), &f.ns);
    let name = t.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&t),
    )
    .await?;
    Ok(())
}

fn prometheus_template(name: &str, address: &str, extra: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: {name}}}
spec:
  args: [{{name: scenario}}]
  metrics:
  - name: success-rate
    interval: 1s
    count: 3
    successCondition: result[0] >= 0.95
{extra}
    provider:
      prometheus:
        address: {address}
        query: 'sluice_e2e_success_rate{{scenario="{{{{args.scenario}}}}"}}'
"#
    )
}

async fn step_run(f: &Fixture, v: &View) -> Result<AnalysisRun> {
    let name =
        v.ro.status
            .as_ref()
            .and_then(|s| s.canary.as_ref())
            .and_then(|c| c.current_step_analysis_run_status.as_ref())
            .map(|s| s.name.clone())
            .ok_or_else(|| anyhow!("no current step analysis run"))?;
    let api: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &f.ns);
    Ok(api.get(&name).await?)
}

async fn run_phase(f: &Fixture, prefix: &str) -> Result<Vec<(String, String)>> {
    let api: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &f.ns);
    Ok(api
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|r| {
            r.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|r| {
            (
                r.metadata.name.clone().unwrap_or_default(),
                r.status.and_then(|s| s.phase).unwrap_or_default(),
            )
        })
        .collect())
}

async fn until_run_phase(f: &Fixture, prefix: &str, phase: &str) -> Result<()> {
    for _ in 0..600 {
        if run_phase(f, prefix).await?.iter().any(|(_, p)| p == phase) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    Err(anyhow!(
        "no AnalysisRun {prefix}* reached {phase}: {:?}",
        run_phase(f, prefix).await?
    ))
}

async fn deployed_then_updated(f: &mut Fixture, name: &str, template: &str) -> Result<()> {
    f.given_rollout(&rollout(name, template)).await?;
    f.then("initial deploy", T, |v| v.healthy()).await?;
    f.when_image(&format!("{name}:v2")).await?;
    Ok(())
}

/// Success rate ≥ 0.95: the analysis step passes and the canary is promoted.
pub async fn prometheus_success(c: &Cluster, s: &Signals, p: &Prometheus) -> Result<()> {
    let name = "prom-ok";
    s.set(name, 0.99);
    p.wait_for_value(name, 0.99).await?;
    let mut f = Fixture::new(c, "analysis-ok").await?;
    apply_template(&f, &prometheus_template("rate", &p.url, "")).await?;
    deployed_then_updated(&mut f, name, "rate").await?;
    let v = f
        .then("analysis step running", T, |v| {
            v.step() == Some(1)
                && v.ro
                    .status
                    .as_ref()
                    .and_then(|s| s.canary.as_ref())
                    .is_some_and(|c| c.current_step_analysis_run_status.is_some())
        })
        .await?;
    let run = step_run(&f, &v).await?;
    let labels = run.metadata.labels.clone().unwrap_or_default();
    ensure!(labels.get("rollout-type").map(String::as_str) == Some("Step"));
    ensure!(labels.get("step-index").map(String::as_str) == Some("1"));
    f.then("promoted", T, |v| v.healthy()).await?;
    until_run_phase(&f, name, "Successful").await?;
    f.cleanup().await
}

/// Success rate drops: the run fails and the rollout aborts (canary 0, stable untouched).
pub async fn prometheus_failure(c: &Cluster, s: &Signals, p: &Prometheus) -> Result<()> {
    let name = "prom-bad";
    s.set(name, 0.5);
    p.wait_for_value(name, 0.5).await?;
    let mut f = Fixture::new(c, "analysis-bad").await?;
    apply_template(&f, &prometheus_template("rate", &p.url, "")).await?;
    deployed_then_updated(&mut f, name, "rate").await?;
    let v = f
        .then("aborted", T, |v| {
            v.phase() == "Degraded" && v.sizes() == (0, 5)
        })
        .await?;
    ensure!(v.message().starts_with("RolloutAborted: Rollout aborted update to revision 2: Step-based analysis phase error/failed"), "{}", v.message());
    ensure!(v.stable() != v.pod_hash());
    until_run_phase(&f, name, "Failed").await?;
    f.cleanup().await
}

/// Prometheus unreachable: Error measurements, the run errors after consecutiveErrorLimit, the
/// rollout aborts — and never promotes.
pub async fn prometheus_unreachable(c: &Cluster) -> Result<()> {
    let name = "prom-down";
    let mut f = Fixture::new(c, "analysis-down").await?;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    apply_template(
        &f,
        &prometheus_template(
            "rate",
            &format!("http://{dead}"),
            "    consecutiveErrorLimit: 1",
        ),
    )
    .await?;
    deployed_then_updated(&mut f, name, "rate").await?;
    let v = f.then("aborted", T, |v| v.phase() == "Degraded").await?;
    ensure!(
        v.message().contains("analysis phase error/failed"),
        "{}",
        v.message()
    );
    ensure!(v.stable() != v.pod_hash(), "never promoted");
    until_run_phase(&f, name, "Error").await?;
    f.cleanup().await
}

/// A middling value with both conditions set is Inconclusive: the rollout pauses.
pub async fn prometheus_inconclusive(c: &Cluster, s: &Signals, p: &Prometheus) -> Result<()> {
    let name = "prom-meh";
    s.set(name, 0.7);
    p.wait_for_value(name, 0.7).await?;
    let mut f = Fixture::new(c, "analysis-meh").await?;
    apply_template(
        &f,
        &prometheus_template("rate", &p.url, "    failureCondition: result[0] < 0.5"),
    )
    .await?;
    deployed_then_updated(&mut f, name, "rate").await?;
    f.then("paused inconclusive", T, |v| {
        v.phase() == "Paused" && v.message() == "InconclusiveAnalysisRun"
    })
    .await?;
    let v = f.view().await?;
    ensure!(v.sizes() == (1, 4));
    until_run_phase(&f, name, "Inconclusive").await?;
    f.cleanup().await
}

/// The web provider against the loopback server, with a JSON path.
pub async fn web_provider(c: &Cluster, s: &Signals) -> Result<()> {
    let name = "web-ok";
    s.set(name, 0.98);
    let mut f = Fixture::new(c, "analysis-web").await?;
    let template = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: web}}
spec:
  args: [{{name: scenario}}]
  metrics:
  - name: web-rate
    successCondition: result >= 0.95
    provider:
      web:
        url: "http://{}/web/{{{{args.scenario}}}}"
        jsonPath: "{{$.rate}}"
"#,
        s.addr()
    );
    apply_template(&f, &template).await?;
    deployed_then_updated(&mut f, name, "web").await?;
    f.then("promoted", T, |v| v.healthy()).await?;
    until_run_phase(&f, name, "Successful").await?;
    f.cleanup().await
}

/// The job provider: the fake kubelet completes `busybox:1` and fails `busybox:fail`.
pub async fn job_provider(c: &Cluster, succeed: bool) -> Result<()> {
    let name = if succeed { "job-ok" } else { "job-bad" };
    let image = if succeed { "busybox:1" } else { "busybox:fail" };
    let mut f = Fixture::new(c, name).await?;
    let template = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: job}}
spec:
  args: [{{name: scenario}}]
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{{name: smoke, image: "{image}", command: [sh, -c, "true"]}}]
"#
    );
    apply_template(&f, &template).await?;
    deployed_then_updated(&mut f, name, "job").await?;
    if succeed {
        f.then("promoted", T, |v| v.healthy()).await?;
        until_run_phase(&f, name, "Successful").await?;
    } else {
        let v = f
            .then("aborted", T, |v| {
                v.phase() == "Degraded" && v.sizes() == (0, 5)
            })
            .await?;
        ensure!(
            v.message()
                .contains("Step-based analysis phase error/failed"),
            "{}",
            v.message()
        );
        until_run_phase(&f, name, "Failed").await?;
    }
    f.cleanup().await
}

/// A step AnalysisRun deleted while it measures is created again (Argo's live look-up of a run
/// the status names), and the step still waits for it: the Job measures for 6 s, so the
/// deletion lands mid-run; the new run then completes and the rollout is promoted.
pub async fn deleted_run_is_measured_again(c: &Cluster) -> Result<()> {
    let name = "ar-deleted";
    let mut f = Fixture::new(c, name).await?;
    let template = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: slow-job}
spec:
  args: [{name: scenario}]
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{name: smoke, image: "busybox:slow6000", command: [sh, -c, "true"]}]
"#;
    apply_template(&f, template).await?;
    deployed_then_updated(&mut f, name, "slow-job").await?;
    let v = f
        .then("step analysis running", T, |v| {
            v.step() == Some(1)
                && v.ro
                    .status
                    .as_ref()
                    .and_then(|s| s.canary.as_ref())
                    .is_some_and(|c| c.current_step_analysis_run_status.is_some())
        })
        .await?;
    let first = step_run(&f, &v).await?;
    let run_name = first.metadata.name.clone().unwrap_or_default();
    let api: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &f.ns);
    api.delete(&run_name, &Default::default()).await?;
    let old_uid = first.metadata.uid.clone();
    let mut again = None;
    for _ in 0..200 {
        if let Some(r) = api.get_opt(&run_name).await?
            && r.metadata.uid != old_uid
        {
            again = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        again.is_some(),
        "the deleted run {run_name} was not created again"
    );
    let v = f.view().await?;
    ensure!(
        v.step() == Some(1) && !v.healthy(),
        "the step did not wait for the new run"
    );
    f.then("promoted after the new run", T, |v| v.healthy())
        .await?;
    f.cleanup().await
}

/// `--instance-id` filters AnalysisRuns as it filters Rollouts (Argo's instance-id selector on
/// every argoproj informer): a run labelled for another controller instance (Argo running beside
/// Sluice during a migration) is never measured, while an unlabelled one is.
pub async fn instance_id_filters_analysis_runs(c: &Cluster) -> Result<()> {
    let f = Fixture::new(c, "ar-instance").await?;
    let api: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &f.ns);
    let run = |name: &str, instance: Option<&str>| -> Result<AnalysisRun> {
        let labels = instance
            .map(|i| format!("labels: {{argo-rollouts.argoproj.io/controller-instance-id: {i}}}"))
            .unwrap_or_default();
        let yaml = format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata: {{name: {name}, {labels}}}
spec:
  metrics:
  - name: smoke
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers: [{{name: smoke, image: "busybox:1", command: [sh, -c, "true"]}}]
"#
        );
        serde_saphyr::from_str(&yaml).map_err(|e| anyhow!("run: {e}"))
    };
    api.create(&Default::default(), &run("ours", None)?).await?;
    api.create(&Default::default(), &run("argos", Some("argo"))?)
        .await?;
    until_run_phase(&f, "ours", "Successful").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let other = api.get("argos").await?;
    ensure!(
        other.status.is_none(),
        "a run of another controller instance was touched: {:?}",
        other.status
    );
    f.cleanup().await
}

/// `ttlStrategy.secondsAfterCompletion: 5`: a standalone run completes, stays while its TTL runs
/// and is deleted by the controller once the whole seconds since `completedAt` exceed 5 (Argo's
/// rule), without any other write or event prompting it.
pub async fn ttl_strategy(c: &Cluster, s: &Signals) -> Result<()> {
    let name = "ttl";
    s.set(name, 1.0);
    let f = Fixture::new(c, "analysis-ttl").await?;
    let run: AnalysisRun = serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "ttl-run", "namespace": f.ns},
        "spec": {
            "ttlStrategy": {"secondsAfterCompletion": 5},
            "metrics": [{
                "name": "web-rate",
                "successCondition": "result >= 0.95",
                "provider": {"web": {"url": format!("http://{}/web/{name}", s.addr()), "jsonPath": "{$.rate}"}},
            }],
        },
    }))?;
    let api: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &f.ns);
    api.create(&Default::default(), &run).await?;
    let mut completed_at = None;
    for _ in 0..600 {
        let r = api.get_opt("ttl-run").await?;
        let st = r
            .as_ref()
            .and_then(|r| r.status.clone())
            .unwrap_or_default();
        if st.phase.as_deref() == Some("Successful") {
            completed_at = st.completed_at.map(|t| t.0);
            break;
        }
        ensure!(r.is_some(), "deleted before it was seen completed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let completed_at =
        completed_at.ok_or_else(|| anyhow!("the run never completed with a completedAt"))?;
    loop {
        let age = jiff::Timestamp::now()
            .duration_since(completed_at)
            .as_secs_f64();
        let present = api.get_opt("ttl-run").await?.is_some();
        if !present {
            ensure!(
                age >= 5.0,
                "deleted {age:.1}s after completion, before its TTL of 5s"
            );
            break;
        }
        ensure!(age < 20.0, "still there {age:.1}s after completion");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f.cleanup().await
}
