//! The end-to-end fixture: a genuine control plane with our CRDs and the fake kubelet (started by
//! `sluice-testkit`, as for the scale benchmark), and one `sluice-controller` process per
//! scenario (namespaced, so scenarios run in parallel and one can kill its controller without
//! touching the others).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Service};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};
use sluice::api::rollout::Rollout;
use sluice_testkit::{ControlPlane, Options, Proc};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn log_dir() -> PathBuf {
    let d = std::env::var_os("SLUICE_E2E_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/e2e-logs"));
    let _ = std::fs::create_dir_all(&d);
    d
}

/// The control plane for the whole run, with the CRDs and the fake kubelet; stopped on drop
/// (kept running with `SLUICE_E2E_KEEP=1`).
pub struct Cluster {
    pub dir: PathBuf,
    pub kubeconfig: PathBuf,
    pub client: Client,
    // Fields drop in this order: the fake kubelet stops before the control plane does.
    _kubelet: Proc,
    _plane: ControlPlane,
}

impl Cluster {
    pub async fn start() -> Result<Cluster> {
        let kubelet =
            sluice_testkit::fake_kubelet(Path::new(env!("CARGO_BIN_EXE_sluice-controller")))?;
        let plane = ControlPlane::start(Options {
            base: std::env::var_os("SLUICE_E2E_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target/e2e-cluster")),
            label: "e2e",
            kcm_controllers: "*,-nodelifecycle",
            kcm_args: None,
            keep: std::env::var_os("SLUICE_E2E_KEEP").is_some(),
        })
        .await?;
        plane.install_crds("sluice-e2e").await?;
        // The traffic routers' kinds (our own minimal CRDs), so router objects can be asserted.
        sluice_testkit::install_crds(
            &plane.client,
            &root().join("tests/data/router-crds"),
            "sluice-e2e",
        )
        .await?;
        let mut cmd = Command::new(kubelet);
        cmd.env("KUBECONFIG", &plane.kubeconfig)
            .env("FAKE_KUBELET_READY_DELAY", "200");
        let kubelet = Proc::spawn("fake-kubelet", cmd, log_dir().join("fake-kubelet.log"))?;
        Ok(Cluster {
            dir: plane.dir().to_path_buf(),
            kubeconfig: plane.kubeconfig.clone(),
            client: plane.client.clone(),
            _kubelet: kubelet,
            _plane: plane,
        })
    }
}

/// Poll `check` until it returns true or `timeout` passes.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool>>,
{
    sluice_testkit::wait_for(what, timeout, Duration::from_millis(150), check).await
}

static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// Two ports nothing listens on (other test runs may share this machine).
fn free_port_pair() -> u16 {
    loop {
        let Ok(l) = std::net::TcpListener::bind("127.0.0.1:0") else {
            continue;
        };
        let Ok(addr) = l.local_addr() else { continue };
        let p = addr.port();
        if p < 65_000
            && NEXT_PORT.swap(p, Ordering::SeqCst) != p
            && std::net::TcpListener::bind(("0.0.0.0", p + 1)).is_ok()
        {
            return p;
        }
    }
}

/// One scenario: its namespace and its own controller process.
pub struct Fixture {
    pub name: String,
    pub ns: String,
    pub client: Client,
    kubeconfig: PathBuf,
    controller: Option<Child>,
    ports: (u16, u16),
    pub rollout: String,
    starts: u32,
}

/// What the Then-steps look at: the Rollout and its ReplicaSets.
#[derive(Clone, Debug)]
pub struct View {
    pub ro: Rollout,
    pub rss: Vec<ReplicaSet>,
}

impl View {
    pub fn phase(&self) -> String {
        self.status("phase")
    }
    pub fn message(&self) -> String {
        self.status("message")
    }
    fn status(&self, field: &str) -> String {
        let st = self.ro.status.clone().unwrap_or_default();
        let v = serde_json::to_value(st).unwrap_or(Value::Null);
        v.get(field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }
    pub fn pod_hash(&self) -> Option<String> {
        self.ro
            .status
            .as_ref()
            .and_then(|s| s.current_pod_hash.clone())
    }
    pub fn stable(&self) -> Option<String> {
        self.ro.status.as_ref().and_then(|s| s.stable_rs.clone())
    }
    pub fn step(&self) -> Option<i32> {
        self.ro.status.as_ref().and_then(|s| s.current_step_index)
    }
    pub fn size_of(&self, hash: &Option<String>) -> i32 {
        self.rss
            .iter()
            .find(|rs| rs.labels().get("rollouts-pod-template-hash") == hash.as_ref())
            .and_then(|rs| rs.spec.replicas)
            .unwrap_or(0)
    }
    /// (canary spec replicas, stable spec replicas); canary is 0 once it is the stable one.
    pub fn sizes(&self) -> (i32, i32) {
        let (cur, stable) = (self.pod_hash(), self.stable());
        if cur == stable {
            (0, self.size_of(&stable))
        } else {
            (self.size_of(&cur), self.size_of(&stable))
        }
    }
    pub fn total(&self) -> i32 {
        self.rss.iter().filter_map(|rs| rs.spec.replicas).sum()
    }
    pub fn condition_message(&self, type_: &str) -> Option<String> {
        self.ro
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == type_)?
            .message
            .clone()
    }
    pub fn healthy(&self) -> bool {
        let generation = self.ro.metadata.generation.map(|g| g.to_string());
        self.phase() == "Healthy"
            && self
                .ro
                .status
                .as_ref()
                .and_then(|s| s.observed_generation.clone())
                == generation
            && self.pod_hash().is_some()
            && self.pod_hash() == self.stable()
    }
}

impl Fixture {
    pub async fn new(cluster: &Cluster, name: &str) -> Result<Fixture> {
        let mut f = Fixture::bare(cluster, name).await?;
        f.start_controller()?;
        Ok(f)
    }

    /// The namespace without a controller (for scenarios that start their own).
    pub async fn bare(cluster: &Cluster, name: &str) -> Result<Fixture> {
        let ns = format!("e2e-{name}");
        sluice_testkit::ensure_namespace(&cluster.client, &ns).await?;
        let base = free_port_pair();
        Ok(Fixture {
            name: name.into(),
            ns,
            client: cluster.client.clone(),
            kubeconfig: cluster.kubeconfig.clone(),
            controller: None,
            ports: (base, base + 1),
            rollout: String::new(),
            starts: 0,
        })
    }

    pub fn start_controller(&mut self) -> Result<()> {
        self.starts += 1;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_dir().join(format!("{}-controller.log", self.name)))?;
        let child = Command::new(env!("CARGO_BIN_EXE_sluice-controller"))
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--namespace")
            .arg(&self.ns)
            .arg("--metrics-port")
            .arg(self.ports.0.to_string())
            .arg("--healthz-port")
            .arg(self.ports.1.to_string())
            .env("RUST_LOG", "info,kube=warn")
            // The leader-election identity: a restart reclaims its own lease at once, as a
            // restarted container in the same pod does.
            .env("POD_NAME", format!("{}-controller", self.name))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting sluice-controller")?;
        self.controller = Some(child);
        Ok(())
    }

    /// SIGKILL the controller, as a node failure or OOM kill would.
    pub fn kill_controller(&mut self) -> Result<()> {
        if let Some(mut c) = self.controller.take() {
            c.kill()?;
            c.wait()?;
        }
        Ok(())
    }

    pub fn rollouts(&self) -> Api<Rollout> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Given: apply a Rollout manifest (server-side apply, as GitOps tools do).
    pub async fn given_rollout(&mut self, yaml: &str) -> Result<()> {
        let mut v: Value = serde_saphyr::from_str(yaml).map_err(|e| anyhow!("manifest: {e}"))?;
        v["metadata"]["namespace"] = json!(self.ns);
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let api: Api<kube::api::DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &kube::api::ApiResource::erase::<Rollout>(&()),
        );
        let obj: kube::api::DynamicObject = serde_json::from_value(v)?;
        api.patch(
            &name,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&obj),
        )
        .await?;
        self.rollout = name;
        Ok(())
    }

    /// When: change the image of the first container (a new revision).
    pub async fn when_image(&self, image: &str) -> Result<()> {
        // A merge patch replaces the container list, so send the whole list with one image changed.
        let ro = self.rollouts().get(&self.rollout).await?;
        let mut containers = serde_json::to_value(
            ro.spec
                .template
                .and_then(|t| t.spec)
                .map(|s| s.containers)
                .unwrap_or_default(),
        )?;
        containers[0]["image"] = json!(image);
        let patch = json!({"spec": {"template": {"spec": {"containers": containers}}}});
        self.rollouts()
            .patch(
                &self.rollout,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// When: a JSON merge patch to the status subresource, exactly as Argo's CLI sends it.
    pub async fn when_status_patch(&self, patch: Value) -> Result<()> {
        self.rollouts()
            .patch_status(
                &self.rollout,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    pub async fn when_spec_patch(&self, patch: Value) -> Result<()> {
        self.rollouts()
            .patch(
                &self.rollout,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    /// `kubectl argo rollouts promote`: clears pause conditions.
    pub async fn promote(&self) -> Result<()> {
        self.when_status_patch(json!({"status": {"pauseConditions": null}}))
            .await
    }

    pub async fn view(&self) -> Result<View> {
        let ro = self.rollouts().get(&self.rollout).await?;
        let rss: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &self.ns);
        let uid = ro.uid().unwrap_or_default();
        let rss = rss
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|rs| rs.owner_references().iter().any(|o| o.uid == uid))
            .collect();
        Ok(View { ro, rss })
    }

    /// Then: wait until `pred` holds for the Rollout and its ReplicaSets.
    pub async fn then<P>(&self, what: &str, timeout: Duration, pred: P) -> Result<View>
    where
        P: Fn(&View) -> bool,
    {
        let start = Instant::now();
        loop {
            let v = self.view().await?;
            if pred(&v) {
                return Ok(v);
            }
            if start.elapsed() > timeout {
                bail!(
                    "[{}] timed out after {timeout:?} waiting for {what}; phase={:?} message={:?} step={:?} sizes={:?} total={} rss={}",
                    self.name,
                    v.phase(),
                    v.message(),
                    v.step(),
                    v.sizes(),
                    v.total(),
                    v.rss.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn cleanup(mut self) -> Result<()> {
        self.kill_controller()?;
        let nss: Api<Namespace> = Api::all(self.client.clone());
        let _ = nss.delete(&self.ns, &DeleteParams::default()).await;
        Ok(())
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.kill_controller();
    }
}

/// A Service like upstream's `newService(name, label)`: port 80 → 80, selector `app: <app>`.
pub fn service_manifest(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {"ports": [{"port": 80, "targetPort": 80}], "selector": {"app": app}},
    })
}

/// `Rollout`-independent reads and writes of Services and their Endpoints.
impl Fixture {
    pub fn services(&self) -> Api<Service> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Given: create a Service (port 80 → 80) selecting `app: <app>`.
    pub async fn given_service(&self, name: &str, app: &str) -> Result<()> {
        let svc: Service = serde_json::from_value(service_manifest(name, app))?;
        self.services().create(&PostParams::default(), &svc).await?;
        Ok(())
    }

    pub async fn service(&self, name: &str) -> Result<Service> {
        Ok(self.services().get(name).await?)
    }

    /// The Service's `spec.selector` (empty when it has none).
    pub async fn service_selector(&self, name: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .service(name)
            .await?
            .spec
            .and_then(|s| s.selector)
            .unwrap_or_default())
    }

    /// The `rollouts-pod-template-hash` key of the Service's selector.
    pub async fn service_hash(&self, name: &str) -> Result<Option<String>> {
        Ok(self.service_selector(name).await?.get(POD_HASH).cloned())
    }

    /// The Service's `argo-rollouts.argoproj.io/managed-by-rollouts` annotation.
    pub async fn service_managed_by(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .service(name)
            .await?
            .annotations()
            .get(MANAGED_BY)
            .cloned())
    }

    /// Ready addresses of the Service's Endpoints (filled by kube-controller-manager); 0 when
    /// the Endpoints object does not exist yet.
    pub async fn endpoints_ready(&self, name: &str) -> Result<usize> {
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), &self.ns);
        let Some(ep) = api.get_opt(name).await? else {
            return Ok(0);
        };
        Ok(ep
            .subsets
            .unwrap_or_default()
            .iter()
            .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
            .sum())
    }

    /// A Node object (cluster-scoped) for pods to be bound to by `spec.nodeName`: there is no
    /// scheduler, and the endpoints controller only publishes addresses of pods with a node.
    /// Nothing runs it (node lifecycle is off); the fake kubelet serves pods wherever bound.
    pub async fn ensure_node(&self, name: &str) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let node: Node = serde_json::from_value(json!({"metadata": {"name": name}}))?;
        match nodes.create(&PostParams::default(), &node).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Pods (not being deleted) carrying `hash`, as upstream's `ExpectRevisionPodCount` counts.
    pub async fn pods_with_hash(&self, hash: &str) -> Result<usize> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &self.ns);
        let lp = ListParams::default().labels(&format!("{POD_HASH}={hash}"));
        Ok(pods
            .list(&lp)
            .await?
            .items
            .iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .count())
    }

    /// Pods of the ReplicaSet with annotation `rollout.argoproj.io/revision: <rev>`.
    pub async fn revision_pods(&self, rev: u32) -> Result<usize> {
        let v = self.view().await?;
        let Some(hash) = v.revision_hash(rev) else {
            bail!("[{}] no ReplicaSet with revision {rev}", self.name);
        };
        self.pods_with_hash(&hash).await
    }

    /// Start recording the (reason, message) of every Event about Rollout `rollout`.
    pub async fn watch_events(&self, rollout: &str) -> Result<EventLog> {
        use futures::{StreamExt, TryStreamExt};
        use k8s_openapi::api::events::v1::Event;
        use kube::api::{WatchEvent, WatchParams};
        let events: Api<Event> = Api::namespaced(self.client.clone(), &self.ns);
        let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let mut stream = events.watch(&WatchParams::default(), "0").await?.boxed();
        let sink = seen.clone();
        let name = rollout.to_string();
        let task = tokio::spawn(async move {
            while let Ok(Some(ev)) = stream.try_next().await {
                let e = match ev {
                    WatchEvent::Added(e) | WatchEvent::Modified(e) => e,
                    _ => continue,
                };
                let regarding = e.regarding.as_ref();
                if regarding.and_then(|r| r.kind.as_deref()) == Some("Rollout")
                    && regarding.and_then(|r| r.name.as_deref()) == Some(name.as_str())
                    && let (Ok(mut s), Some(reason)) = (sink.lock(), e.reason)
                {
                    s.push((reason, e.note.unwrap_or_default()));
                }
            }
        });
        Ok(EventLog { seen, task })
    }
}

/// Events recorded by [`Fixture::watch_events`]; the watch stops on drop.
pub struct EventLog {
    seen: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl EventLog {
    pub fn all(&self) -> Vec<(String, String)> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
    pub fn reasons(&self) -> Vec<String> {
        self.all().into_iter().map(|(r, _)| r).collect()
    }
    /// Wait up to `timeout` for the reasons to equal `want` exactly; the last list otherwise.
    pub async fn settle(&self, want: &[&str], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.reasons();
            if got == want || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const POD_HASH: &str = "rollouts-pod-template-hash";
pub const MANAGED_BY: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

/// Blue-green reads of the Rollout status and its ReplicaSets.
impl View {
    fn bg(&self) -> Option<&sluice::api::rollout::BlueGreenStatus> {
        self.ro.status.as_ref()?.blue_green.as_ref()
    }
    pub fn active_selector(&self) -> Option<String> {
        self.bg()?.active_selector.clone()
    }
    pub fn preview_selector(&self) -> Option<String> {
        self.bg()?.preview_selector.clone()
    }
    /// Upstream's `ExpectReplicaCounts(desired, current, updated, ready, available)`:
    /// spec.replicas (default 1), status.replicas, .updatedReplicas, .readyReplicas,
    /// .availableReplicas.
    pub fn counts(&self) -> (i32, i32, i32, i32, i32) {
        let st = self.ro.status.clone().unwrap_or_default();
        (
            self.ro.spec.replicas.unwrap_or(1),
            st.replicas.unwrap_or(0),
            st.updated_replicas.unwrap_or(0),
            st.ready_replicas.unwrap_or(0),
            st.available_replicas.unwrap_or(0),
        )
    }
    pub fn revision_rs(&self, rev: u32) -> Option<&ReplicaSet> {
        let rev = rev.to_string();
        self.rss
            .iter()
            .find(|rs| rs.annotations().get("rollout.argoproj.io/revision") == Some(&rev))
    }
    pub fn revision_hash(&self, rev: u32) -> Option<String> {
        self.revision_rs(rev)?.labels().get(POD_HASH).cloned()
    }
    /// spec.replicas of the ReplicaSet of revision `rev` (None: no such ReplicaSet).
    pub fn revision_replicas(&self, rev: u32) -> Option<i32> {
        self.revision_rs(rev)?.spec.replicas
    }
    pub fn revision_annotation(&self, rev: u32, key: &str) -> Option<String> {
        self.revision_rs(rev)?.annotations().get(key).cloned()
    }
    pub fn abort(&self) -> bool {
        self.ro.status.as_ref().and_then(|s| s.abort) == Some(true)
    }
    pub fn condition(&self, type_: &str) -> Option<(String, Option<String>)> {
        let c = self
            .ro
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == type_)?;
        Some((c.status.clone(), c.reason.clone()))
    }
    pub fn conditions_len(&self) -> usize {
        self.ro
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map_or(0, Vec::len)
    }
    pub fn pause_reasons(&self) -> Vec<String> {
        self.ro
            .status
            .as_ref()
            .and_then(|s| s.pause_conditions.as_ref())
            .map(|p| p.iter().map(|c| c.reason.clone()).collect())
            .unwrap_or_default()
    }
    pub fn observed(&self) -> bool {
        self.ro.metadata.generation.map(|g| g.to_string())
            == self
                .ro
                .status
                .as_ref()
                .and_then(|s| s.observed_generation.clone())
    }
}
