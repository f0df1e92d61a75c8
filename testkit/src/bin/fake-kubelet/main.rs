//! fake-kubelet: plays the nodes of a control plane that has no kubelet (and no scheduler).
//!
//! It watches Pods (kube-runtime watcher, never polls) and, per pod, after a delay patches
//! `/status` so the pod looks like it runs: Running + Ready for ordinary pods, Succeeded/Failed
//! for Job pods, with behaviour cues taken from the image tags (`never-ready`, `crash`, `fail`,
//! `slow<N>`). Pods being deleted are deleted with grace period 0. The decisions are made by the
//! pure [`logic::plan`]; this file does the I/O: watch, patch, delete, and per-pod timers.

mod logic;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use futures::channel::mpsc::{UnboundedSender, unbounded};
use futures::{StreamExt, pin_mut};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, ResourceExt};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use logic::{Action, Plan};

const FIELD_MANAGER: &str = "fake-kubelet";

/// Plays the kubelet for a kubelet-less control plane: makes pods run, become ready, complete.
#[derive(Parser, Debug)]
#[command(name = "fake-kubelet", version)]
struct Args {
    /// Kubeconfig file (default: the usual inference, i.e. $KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long, env = "FAKE_KUBELET_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Only pods of this namespace (default: all namespaces).
    #[arg(long, env = "FAKE_KUBELET_NAMESPACE")]
    namespace: Option<String>,
    /// Milliseconds between first seeing a pod and making it run/ready/complete.
    #[arg(long, env = "FAKE_KUBELET_READY_DELAY", default_value_t = 300)]
    ready_delay: u64,
    /// Only pods matching this label selector.
    #[arg(long, env = "FAKE_KUBELET_LABEL_SELECTOR")]
    label_selector: Option<String>,
}

struct Timer {
    at: Timestamp,
    handle: JoinHandle<()>,
}

struct Tracked {
    pod: Pod,
    first_seen: Timestamp,
    timer: Option<Timer>,
}

struct Kubelet {
    client: Client,
    cfg: logic::Config,
    pods: HashMap<String, Tracked>,
    wake_tx: UnboundedSender<(String, Timestamp)>,
}

fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace().unwrap_or_default(), pod.name_any())
}

/// Resource versions are opaque, but etcd's are integers: use that to ignore stale events.
fn older_than(incoming: &Pod, cached: &Pod) -> bool {
    let rv = |p: &Pod| p.metadata.resource_version.as_deref()?.parse::<u64>().ok();
    matches!((rv(incoming), rv(cached)), (Some(a), Some(b)) if a < b)
}

fn api_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

impl Kubelet {
    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &pod.namespace().unwrap_or_default())
    }

    /// A pod was listed or changed.
    async fn upsert(&mut self, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        match self.pods.get_mut(&uid) {
            Some(t) => {
                if older_than(&pod, &t.pod) {
                    debug!(pod = %pod_key(&pod), "ignoring stale event");
                    return;
                }
                t.pod = pod;
            }
            None => {
                debug!(pod = %pod_key(&pod), %uid, "new pod");
                self.pods.insert(
                    uid.clone(),
                    Tracked {
                        pod,
                        first_seen: Timestamp::now(),
                        timer: None,
                    },
                );
            }
        }
        self.reconcile(&uid).await;
    }

    /// A pod is gone: stop its timer and forget it.
    fn forget(&mut self, uid: &str) {
        if let Some(t) = self.pods.remove(uid) {
            if let Some(timer) = t.timer {
                timer.handle.abort();
            }
            debug!(pod = %pod_key(&t.pod), "forgot deleted pod");
        }
    }

    /// A timer fired: re-plan if it is the pod's current timer.
    async fn wake(&mut self, uid: String, at: Timestamp) {
        let Some(t) = self.pods.get_mut(&uid) else {
            return;
        };
        if t.timer.as_ref().is_some_and(|timer| timer.at == at) {
            t.timer = None;
            self.reconcile(&uid).await;
        }
    }

    async fn reconcile(&mut self, uid: &str) {
        let Some(t) = self.pods.get(uid) else {
            return;
        };
        let pod = t.pod.clone();
        let Plan {
            action,
            mut wake_at,
        } = logic::plan(&pod, t.first_seen, Timestamp::now(), &self.cfg);
        let key = pod_key(&pod);
        match action {
            Action::Nothing => {}
            Action::Patch { patch, summary } => {
                let pp = PatchParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..PatchParams::default()
                };
                match self
                    .api(&pod)
                    .patch_status(&pod.name_any(), &pp, &Patch::Merge(&patch))
                    .await
                {
                    Ok(updated) => {
                        info!(pod = %key, "patched status: {summary}");
                        if let Some(t) = self.pods.get_mut(uid)
                            && !older_than(&updated, &t.pod)
                        {
                            t.pod = updated;
                        }
                    }
                    Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                        // Gone, or changed since we looked: the watch brings the news.
                        warn!(pod = %key, "status patch skipped: {e}");
                    }
                    Err(e) => {
                        error!(pod = %key, "status patch failed, retrying in 1s: {e}");
                        wake_at = Some(retry_at(wake_at));
                    }
                }
            }
            Action::Delete => {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: Some(uid.to_string()),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match self.api(&pod).delete(&pod.name_any(), &dp).await {
                    Ok(_) => info!(pod = %key, "deleted with grace period 0"),
                    Err(e) if matches!(api_code(&e), Some(404 | 409)) => {
                        warn!(pod = %key, "delete skipped: {e}");
                    }
                    Err(e) => {
                        error!(pod = %key, "delete failed, retrying in 1s: {e}");
                        wake_at = Some(retry_at(wake_at));
                    }
                }
            }
        }
        self.set_timer(uid, wake_at);
    }

    /// Keep exactly one timer per pod: the earliest moment its plan changes.
    fn set_timer(&mut self, uid: &str, wake_at: Option<Timestamp>) {
        let Some(t) = self.pods.get_mut(uid) else {
            return;
        };
        if let (Some(timer), Some(at)) = (&t.timer, wake_at)
            && timer.at == at
        {
            return;
        }
        if let Some(old) = t.timer.take() {
            old.handle.abort();
        }
        let Some(at) = wake_at else {
            return;
        };
        let wait = at
            .duration_since(Timestamp::now())
            .checked_add(SignedDuration::from_millis(1))
            .and_then(|d| std::time::Duration::try_from(d).ok())
            .unwrap_or_default();
        debug!(pod = %pod_key(&t.pod), "next look in {wait:?}");
        let tx = self.wake_tx.clone();
        let uid_owned = uid.to_string();
        let handle = tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            // The receiver only goes away when the process exits.
            let _ = tx.unbounded_send((uid_owned, at));
        });
        t.timer = Some(Timer { at, handle });
    }

    fn shutdown(&mut self) {
        for (_, t) in self.pods.drain() {
            if let Some(timer) = t.timer {
                timer.handle.abort();
            }
        }
    }
}

fn retry_at(wake_at: Option<Timestamp>) -> Timestamp {
    let retry = Timestamp::now() + SignedDuration::from_secs(1);
    wake_at.map_or(retry, |w| w.min(retry))
}

async fn client(args: &Args) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .context("loading kubeconfig")?
        }
        None => kube::Config::infer()
            .await
            .context("inferring kube config")?,
    };
    Client::try_from(config).context("building client")
}

async fn terminate_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    let client = client(&args).await?;
    let ready_delay = SignedDuration::from_millis(
        i64::try_from(args.ready_delay).context("--ready-delay too large")?,
    );

    let pods: Api<Pod> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let mut wc = watcher::Config::default();
    if let Some(sel) = &args.label_selector {
        wc = wc.labels(sel);
    }
    info!(
        namespace = args.namespace.as_deref().unwrap_or("*"),
        label_selector = args.label_selector.as_deref().unwrap_or(""),
        ready_delay_ms = args.ready_delay,
        "fake-kubelet watching pods"
    );

    let (wake_tx, mut wake_rx) = unbounded::<(String, Timestamp)>();
    let mut kubelet = Kubelet {
        client,
        cfg: logic::Config::new(ready_delay),
        pods: HashMap::new(),
        wake_tx,
    };
    let stream = watcher::watcher(pods, wc).default_backoff();
    pin_mut!(stream);
    let stop = terminate_signal();
    pin_mut!(stop);
    // UIDs listed since the last (re)list started; pods not among them were deleted meanwhile.
    let mut relisted: Option<HashSet<String>> = None;

    loop {
        tokio::select! {
            r = &mut stop => {
                r?;
                info!("signal received, exiting");
                kubelet.shutdown();
                return Ok(());
            }
            event = stream.next() => match event {
                None => {
                    kubelet.shutdown();
                    anyhow::bail!("pod watch stream ended");
                }
                Some(Err(e)) => warn!("watch error (backing off): {e}"),
                Some(Ok(Event::Init)) => relisted = Some(HashSet::new()),
                Some(Ok(Event::InitApply(pod))) => {
                    if let (Some(seen), Some(uid)) = (relisted.as_mut(), pod.metadata.uid.as_ref()) {
                        seen.insert(uid.clone());
                    }
                    kubelet.upsert(pod).await;
                }
                Some(Ok(Event::InitDone)) => {
                    if let Some(seen) = relisted.take() {
                        let gone: Vec<String> = kubelet
                            .pods
                            .keys()
                            .filter(|uid| !seen.contains(*uid))
                            .cloned()
                            .collect();
                        for uid in gone {
                            kubelet.forget(&uid);
                        }
                    }
                    info!(pods = kubelet.pods.len(), "pod list synced");
                }
                Some(Ok(Event::Apply(pod))) => kubelet.upsert(pod).await,
                Some(Ok(Event::Delete(pod))) => {
                    if let Some(uid) = pod.metadata.uid.as_deref() {
                        kubelet.forget(uid);
                    }
                }
            },
            Some((uid, at)) = wake_rx.next() => kubelet.wake(uid, at).await,
        }
    }
}
