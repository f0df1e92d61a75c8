//! The benchmark's control plane (`sluice-testkit`, in target/bench-cluster/run-<pid>) with the
//! kube-controller-manager settings it measures under, its CRDs and namespaces, and where the
//! child processes it runs (fake kubelet, controllers) log. Everything is stopped, and the
//! directory removed, when the guards drop: on success, on error and on Ctrl-C.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::{Api, Client};
use sluice_testkit::{ControlPlane, Options, Proc};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Logs of the last run (the cluster directory itself is deleted).
pub fn log_dir() -> PathBuf {
    let d = root().join("target/bench-logs");
    let _ = std::fs::create_dir_all(&d);
    d
}

/// How often the bench polls a condition while setting up.
const POLL: Duration = Duration::from_millis(200);

/// Poll `check` every 200 ms until it returns true, for at most `secs` seconds.
pub async fn poll<F, Fut>(what: &str, secs: u64, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    sluice_testkit::wait_for(what, Duration::from_secs(secs), POLL, check).await
}

/// Start `cmd` as `name`, logging to target/bench-logs/scale-<name>.log.
pub fn spawn(name: &str, cmd: Command) -> Result<Proc> {
    Proc::spawn(name, cmd, log_dir().join(format!("scale-{name}.log")))
}

pub struct Cluster {
    pub kubeconfig: PathBuf,
    pub client: Client,
    plane: ControlPlane,
}

/// kube-controller-manager runs only what the measurement needs: the ReplicaSet controller
/// (pods for the ReplicaSets the controller creates) and the service-account controllers
/// (pods are refused until a namespace's default ServiceAccount has its token). Its client
/// limit is raised from 20 QPS so that pod creation does not become what is measured.
const KCM_CONTROLLERS: &str = "replicaset,serviceaccount,serviceaccount-token";
const KCM_ARGS: &str = "--kube-api-qps=500 --kube-api-burst=1000 --concurrent-replicaset-syncs=10";

impl Cluster {
    pub async fn start(keep: bool) -> Result<Cluster> {
        let plane = ControlPlane::start(Options {
            base: root().join("target/bench-cluster"),
            label: "bench",
            kcm_controllers: KCM_CONTROLLERS,
            kcm_args: Some(KCM_ARGS),
            keep,
        })
        .await?;
        plane.install_crds("sluice-bench").await?;
        Ok(Cluster {
            kubeconfig: plane.kubeconfig.clone(),
            client: plane.client.clone(),
            plane,
        })
    }

    pub fn kcm_setup() -> String {
        format!("kube-controller-manager --controllers={KCM_CONTROLLERS} {KCM_ARGS}")
    }

    /// `(name, pid)` of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.plane.pids()
    }

    /// Create `ns` and wait until its default ServiceAccount has a token (pods need it).
    pub async fn namespace(&self, ns: &str) -> Result<()> {
        sluice_testkit::ensure_namespace(&self.client, ns).await?;
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
