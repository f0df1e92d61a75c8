//! The benchmark's own control plane (e2e/k8s-local.sh in target/bench-cluster/run-<pid>), its
//! CRDs and namespaces, and the child processes it runs (fake kubelet, controller). Everything is
//! stopped, and the directory removed, when the guards drop: on success, on error and on Ctrl-C.

#[path = "../../tests/support/crds.rs"]
mod crds;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::json;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    root().join("e2e/k8s-local.sh")
}

/// Logs of the last run (the cluster directory itself is deleted).
pub fn log_dir() -> PathBuf {
    let d = root().join("target/bench-logs");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Stops the control plane recorded in `dir` and deletes `dir` when dropped.
struct DirGuard {
    dir: PathBuf,
    keep: bool,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "bench: control plane kept running in {} (stop: bash e2e/k8s-local.sh down {0})",
                self.dir.display()
            );
            return;
        }
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: Client,
    guard: DirGuard,
}

/// kube-controller-manager runs only what the measurement needs: the ReplicaSet controller
/// (pods for the ReplicaSets the controller creates) and the service-account controllers
/// (pods are refused until a namespace's default ServiceAccount has its token). Its client
/// limit is raised from 20 QPS so that pod creation does not become what is measured.
const KCM_CONTROLLERS: &str = "replicaset,serviceaccount,serviceaccount-token";
const KCM_ARGS: &str = "--kube-api-qps=500 --kube-api-burst=1000 --concurrent-replicaset-syncs=10";

impl Cluster {
    pub async fn start(keep: bool) -> Result<Cluster> {
        let base = root().join("target/bench-cluster");
        std::fs::create_dir_all(&base)?;
        remove_stale(&base);
        let guard = DirGuard {
            dir: base.join(format!("run-{}", std::process::id())),
            keep,
        };
        let t = Instant::now();
        let status = Command::new("bash")
            .arg(script())
            .arg("up")
            .arg(&guard.dir)
            .env("K8S_KCM_CONTROLLERS", KCM_CONTROLLERS)
            .env("K8S_KCM_ARGS", KCM_ARGS)
            .stdout(Stdio::null())
            .status()
            .context("running e2e/k8s-local.sh up")?;
        if !status.success() {
            bail!("control plane did not start: {status}");
        }
        eprintln!(
            "bench: control plane up in {:.1}s",
            t.elapsed().as_secs_f64()
        );
        let kubeconfig = guard.dir.join("kubeconfig");
        let client = client_for(&kubeconfig).await?;
        let cluster = Cluster {
            kubeconfig,
            client,
            guard,
        };
        cluster.install_crds().await?;
        Ok(cluster)
    }

    pub fn kcm_setup() -> String {
        format!("kube-controller-manager --controllers={KCM_CONTROLLERS} {KCM_ARGS}")
    }

    /// `(name, pid)` of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<(String, u32)> {
        std::fs::read_to_string(self.guard.dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (name, pid) = l.split_once(' ')?;
                Some((name.to_string(), pid.trim().parse().ok()?))
            })
            .collect()
    }

    async fn install_crds(&self) -> Result<()> {
        crds::install(&self.client, &root().join("crds"), "sluice-bench").await
    }

    /// Create `ns` and wait until its default ServiceAccount has a token (pods need it).
    pub async fn namespace(&self, ns: &str) -> Result<()> {
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let body: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
        match nss.create(&PostParams::default(), &body).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let sas: Api<ServiceAccount> = Api::namespaced(self.client.clone(), ns);
        poll(&format!("default ServiceAccount in {ns}"), 60, || {
            let sas = sas.clone();
            async move {
                Ok(sas
                    .get_opt("default")
                    .await?
                    .and_then(|sa| sa.secrets)
                    .is_some_and(|s| !s.is_empty()))
            }
        })
        .await
    }
}

/// Clusters of earlier runs whose bench process is gone (killed without cleanup): stop and remove.
/// Directories of runs still alive (someone else's) are left alone.
fn remove_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(pid) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        eprintln!(
            "bench: removing the cluster of an interrupted run: {}",
            dir.display()
        );
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&dir)
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// Poll `check` every 200 ms until it returns true, for at most `secs` seconds.
pub async fn poll<F, Fut>(what: &str, secs: u64, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > Duration::from_secs(secs) {
            bail!(
                "timed out after {secs}s waiting for {what}{}",
                last_err
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A child process, killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command) -> Result<Proc> {
        let log = log_dir().join(format!("scale-{name}.log"));
        let file = std::fs::File::create(&log)?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({}); see {}",
                self.name,
                status,
                self.log.display()
            ),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two ports nothing listens on right now.
pub fn free_ports() -> Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}
