//! Argo Rollouts' own install manifests run `sluice-controller` unchanged: the controller starts
//! with exactly the container arguments of Argo's `install.yaml` and `namespace-install.yaml`,
//! becomes ready and walks a Rollout to Healthy. What a pod would get from its environment (the
//! API server, its namespace, free ports on a shared test machine) comes through the environment
//! here too, never through extra arguments. Also Argo's analysis-only mode.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, Result, ensure};
use kube::Api;
use serde_json::{Value, json};
use sluice::api::analysis::AnalysisRun;

use crate::harness::{Cluster, Fixture, log_dir, wait_for};
use crate::ops::{free_ports, http_get, sample, seed, wait_ready};

const T: Duration = Duration::from_secs(90);

/// The container `args:` of `manifests/install.yaml` in argoproj/argo-rollouts (HEAD 9f8d111d,
/// 2026-08-17): none; the cluster-wide controller runs on its defaults.
const ARGO_INSTALL_ARGS: &[&str] = &[];
/// The container `args:` of `manifests/namespace-install.yaml` in argoproj/argo-rollouts (same
/// commit).
const ARGO_NAMESPACE_INSTALL_ARGS: &[&str] = &["--namespaced"];

/// A controller started with exactly `args`; killed on drop.
struct ArgoStyle {
    child: Child,
    log: PathBuf,
    metrics_port: u16,
    healthz_port: u16,
}

impl ArgoStyle {
    fn start(c: &Cluster, name: &str, args: &[&str], env: &[(&str, &str)]) -> Result<ArgoStyle> {
        let (metrics_port, healthz_port) = free_ports()?;
        let log = log_dir().join(format!("{name}-controller.log"));
        let file = std::fs::File::create(&log)?;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice-controller"));
        cmd.args(args)
            .env("KUBECONFIG", &c.kubeconfig)
            .env("SLUICE_METRICS_PORT", metrics_port.to_string())
            .env("SLUICE_HEALTHZ_PORT", healthz_port.to_string())
            .env("POD_NAME", format!("{name}-controller"))
            .env("RUST_LOG", "info,kube=warn")
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().context("starting sluice-controller")?;
        Ok(ArgoStyle {
            child,
            log,
            metrics_port,
            healthz_port,
        })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ArgoStyle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed Rollout, labelled for a controller instance when `instance` is given.
fn rollout(instance: Option<&str>) -> Result<String> {
    let mut v: Value = serde_saphyr::from_str(&seed()).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(id) = instance {
        v["metadata"]["labels"] = json!({"argo-rollouts.argoproj.io/controller-instance-id": id});
    }
    // JSON is YAML.
    Ok(serde_json::to_string(&v)?)
}

async fn ready_and_healthy(f: &mut Fixture, p: &ArgoStyle, instance: Option<&str>) -> Result<()> {
    wait_ready(p.healthz_port)
        .await
        .with_context(|| format!("log:\n{}", p.log()))?;
    f.given_rollout(&rollout(instance)?).await?;
    f.then("initial deploy healthy", T, |v| v.healthy()).await?;
    f.when_image("frontend:v2").await?;
    f.then("first step: paused at 20%", T, |v| {
        v.phase() == "Paused" && v.sizes() == (1, 4)
    })
    .await?;
    let (code, metrics) = http_get(p.metrics_port, "/metrics").await?;
    ensure!(code == 200, "/metrics answered {code}");
    let ro = [("namespace", f.ns.as_str()), ("name", "frontend")];
    ensure!(
        sample(&metrics, "rollout_info", &ro) == Some(1.0),
        "{metrics}"
    );
    ensure!(
        !p.log().contains("has no effect"),
        "Argo's manifest flags all take effect:\n{}",
        p.log()
    );
    Ok(())
}

/// `namespace-install.yaml`: `--namespaced`, the namespace from the pod (in a pod, the service
/// account's; here $POD_NAMESPACE, which Sluice reads first).
async fn namespace_install(c: &Cluster) -> Result<()> {
    let mut f = Fixture::bare(c, "argo-namespace-install").await?;
    let ns = f.ns.clone();
    let p = ArgoStyle::start(
        c,
        "argo-namespace-install",
        ARGO_NAMESPACE_INSTALL_ARGS,
        &[("POD_NAMESPACE", ns.as_str())],
    )?;
    ready_and_healthy(&mut f, &p, None).await?;
    ensure!(
        p.log()
            .contains(&format!("namespaced: watching only namespace {ns}")),
        "{}",
        p.log()
    );
    drop(p);
    f.cleanup().await
}

/// `install.yaml`: no arguments, all namespaces. The suite shares one control plane, so this
/// controller gets an instance id (from the environment) and handles only this scenario's
/// Rollout; the Lease lives in the pod's namespace as in a real install.
async fn cluster_install(c: &Cluster) -> Result<()> {
    let mut f = Fixture::bare(c, "argo-install").await?;
    let ns = f.ns.clone();
    let id = "e2e-argo-install";
    let p = ArgoStyle::start(
        c,
        "argo-install",
        ARGO_INSTALL_ARGS,
        &[("POD_NAMESPACE", ns.as_str()), ("SLUICE_INSTANCE_ID", id)],
    )?;
    ready_and_healthy(&mut f, &p, Some(id)).await?;
    ensure!(!p.log().contains("namespaced:"), "{}", p.log());
    drop(p);
    f.cleanup().await
}

/// `--controllers=analysis` (Argo's analysis-only controller): AnalysisRuns are measured,
/// Rollouts are left to another controller.
async fn analysis_only(c: &Cluster) -> Result<()> {
    let mut f = Fixture::bare(c, "argo-analysis-only").await?;
    let ns = f.ns.clone();
    let p = ArgoStyle::start(
        c,
        "argo-analysis-only",
        &["--namespaced", "--controllers=analysis"],
        &[("POD_NAMESPACE", ns.as_str())],
    )?;
    wait_ready(p.healthz_port)
        .await
        .with_context(|| format!("log:\n{}", p.log()))?;
    let run: AnalysisRun = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": "smoke", "namespace": ns},
        "spec": {"metrics": [{"name": "smoke", "provider": {"job": {"spec": {
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "smoke", "image": "busybox:1", "command": ["sh", "-c", "true"]}]}},
        }}}}]},
    }))?;
    let runs: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &ns);
    runs.create(&Default::default(), &run).await?;
    f.given_rollout(&rollout(None)?).await?;
    let runs = &runs;
    wait_for("the run measured", T, move || async move {
        let r = runs.get("smoke").await?;
        Ok(r.status.and_then(|s| s.phase).as_deref() == Some("Successful"))
    })
    .await?;
    let v = f.view().await?;
    ensure!(
        v.ro.status.is_none() && v.rss.is_empty(),
        "the Rollout was reconciled: {:?}",
        v.ro.status
    );
    ensure!(p.log().contains("running only the AnalysisRun controller"));
    drop(p);
    f.cleanup().await
}

pub async fn argo_install_manifests(c: &Cluster) -> Result<()> {
    let (a, b, d) = tokio::join!(namespace_install(c), cluster_install(c), analysis_only(c));
    a.context("namespace-install.yaml")?;
    b.context("install.yaml")?;
    d.context("--controllers=analysis")
}
