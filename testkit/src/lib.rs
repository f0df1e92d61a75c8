//! Sluice's test kit: what the end-to-end suite (`tests/e2e`) and the scale benchmark
//! (`benches/scale`) share — a genuine local control plane (`e2e/k8s-local.sh`) in a directory of
//! its own per run, its client, the CRDs, the fake kubelet and the child processes they run. The
//! fake kubelet itself is this package's binary (`src/bin/fake-kubelet/`).
//!
//! The suite keeps its Given/When/Then fixture and the benchmark its measurements; neither starts
//! a process or a control plane any other way.

mod control_plane;
mod crds;
mod process;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

pub use control_plane::{ControlPlane, Options};
pub use crds::install as install_crds;
pub use process::{Proc, fake_kubelet};

/// The repository: `e2e/k8s-local.sh`, `crds/`, and the workspace the fake kubelet is built in.
pub fn repo_root() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().unwrap_or(testkit).to_path_buf()
}

/// A client with the credentials of `kubeconfig`.
pub async fn client_for(kubeconfig: &Path) -> Result<Client> {
    let kc = Kubeconfig::read_from(kubeconfig)?;
    let cfg = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(cfg)?)
}

/// Call `check` every `every` until it returns true; fail after `timeout`, with the last error.
pub async fn wait_for<F, Fut>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: F,
) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let start = Instant::now();
    let mut last_err = None;
    loop {
        match check().await {
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(e) => last_err = Some(e),
        }
        if start.elapsed() > timeout {
            bail!(
                "timed out after {timeout:?} waiting for {what}{}",
                last_err
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default()
            );
        }
        tokio::time::sleep(every).await;
    }
}

/// Create namespace `ns`; one that exists already is fine.
pub async fn ensure_namespace(client: &Client, ns: &str) -> Result<()> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let body: Namespace = serde_json::from_value(serde_json::json!({"metadata": {"name": ns}}))?;
    match nss.create(&PostParams::default(), &body).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Two distinct ports nothing listens on right now (other runs may share this machine).
pub fn free_ports() -> Result<(u16, u16)> {
    let a = std::net::TcpListener::bind("127.0.0.1:0")?;
    let b = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok((a.local_addr()?.port(), b.local_addr()?.port()))
}
