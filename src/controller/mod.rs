//! The I/O shell around the pure planner: watches (label-filtered), the reconcile loop
//! (observe → plan → apply), the error policy and the health/metrics endpoint.

pub mod apply;
pub mod error;
pub mod index;
pub mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::consts::{LABEL_CONTROLLER_INSTANCE_ID, LABEL_POD_TEMPLATE_HASH};
use crate::api::rollout::Rollout;
use crate::rollout::{Observed, plan};
pub use error::Error;
use index::OwnerIndex;

/// How the controller runs; filled from flags by the binary.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace (namespaced install); all namespaces when `None`.
    pub namespace: Option<String>,
    /// Only reconcile Rollouts labelled with this controller instance id (Argo's `--instance-id`);
    /// when empty, only Rollouts without the label.
    pub instance_id: String,
    /// Concurrent reconciles.
    pub threads: u16,
    /// Client-side rate limit for writes.
    pub qps: f64,
    pub burst: u32,
    /// Requeue every Rollout at least this often (Argo's resync).
    pub resync: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            instance_id: String::new(),
            threads: 10,
            qps: 40.0,
            burst: 80,
            resync: Duration::from_secs(900),
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub replica_sets: Store<ReplicaSet>,
    pub owners: OwnerIndex,
    pub limiter: apply::RateLimiter,
    pub settings: Settings,
    failures: Mutex<HashMap<ObjectRef<Rollout>, u32>>,
    /// Flipped once the caches have synced; `/readyz` reports it.
    pub ready: Arc<AtomicBool>,
}

fn instance_selector(instance_id: &str) -> String {
    if instance_id.is_empty() {
        format!("!{LABEL_CONTROLLER_INSTANCE_ID}")
    } else {
        format!("{LABEL_CONTROLLER_INSTANCE_ID}={instance_id}")
    }
}

fn api<K>(client: &Client, ns: &Option<String>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match ns {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Run the Rollout controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    ready: Arc<AtomicBool>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let rollouts: Api<Rollout> = api(&client, &settings.namespace);
    let replica_sets: Api<ReplicaSet> = api(&client, &settings.namespace);

    // ReplicaSets: only those carrying the pod-template-hash label (never the Deployments' ones).
    let owners = OwnerIndex::default();
    let (rs_reader, rs_writer) = reflector::store();
    let rs_index = owners.clone();
    let rs_stream = watcher(
        replica_sets,
        watcher::Config::default().labels(LABEL_POD_TEMPLATE_HASH),
    )
    .map(move |ev| {
        ev.map(|e| {
            let e = e.modify(|rs| {
                rs.meta_mut().managed_fields = None;
            });
            rs_index.observe(&e);
            e
        })
    })
    .default_backoff()
    .reflect(rs_writer)
    .touched_objects();

    let (ro_reader, ro_writer) = reflector::store();
    let ro_stream = watcher(
        rollouts,
        watcher::Config::default().labels(&instance_selector(&settings.instance_id)),
    )
    .map(|ev| ev.map(|e| e.modify(|ro: &mut Rollout| ro.meta_mut().managed_fields = None)))
    .default_backoff()
    .reflect(ro_writer)
    .touched_objects();

    let reporter = Reporter {
        controller: "sluice-controller".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client: client.clone(),
        replica_sets: rs_reader.clone(),
        owners,
        limiter: apply::RateLimiter::new(settings.qps, settings.burst),
        failures: Mutex::new(HashMap::new()),
        ready: ready.clone(),
        settings: settings.clone(),
    });

    let ro_ready = ro_reader.clone();
    tokio::spawn(async move {
        let (a, b) = tokio::join!(ro_ready.wait_until_ready(), rs_reader.wait_until_ready());
        if a.is_ok() && b.is_ok() {
            ready.store(true, Ordering::SeqCst);
            info!("caches synced");
        }
    });

    Controller::for_stream(ro_stream, ro_reader)
        .owns_stream(rs_stream)
        .with_config(ControllerConfig::default().concurrency(settings.threads))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(rollout = %obj, "reconciled"),
                Err(e) => debug!("reconcile failed: {e}"),
            }
        })
        .await;
}

fn watcher<K>(
    api: Api<K>,
    cfg: watcher::Config,
) -> impl futures::Stream<Item = Result<Event<K>, watcher::Error>>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, cfg)
}

/// Observe → plan → apply for one Rollout.
#[tracing::instrument(skip_all, fields(namespace = %ro.namespace().unwrap_or_default(), name = %ro.name_any()))]
async fn reconcile(ro: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    let ns = ro
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(ro.name_any()))?;
    if ro.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let owned = ctx
        .owners
        .owned_by(&ctx.replica_sets, &ns, ro.uid().as_deref().unwrap_or(""));
    let now = jiff::Timestamp::now();
    let plan = plan(
        &Observed {
            rollout: &ro,
            replica_sets: &owned,
        },
        now,
    );
    if !plan.is_noop() {
        info!(
            create = plan.create.is_some(),
            updates = plan.updates.len(),
            deletes = plan.deletes.len(),
            status = plan.status.is_some(),
            "applying plan"
        );
    }
    apply::apply(&ctx, &ro, &ns, &plan).await?;
    if let Ok(mut f) = ctx.failures.lock() {
        f.remove(&ObjectRef::from_obj(ro.as_ref()));
    }
    let next = plan
        .requeue_after
        .map_or(ctx.settings.resync, |d| d.min(ctx.settings.resync));
    Ok(Action::requeue(next))
}

fn error_policy(ro: Arc<Rollout>, err: &Error, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from_obj(ro.as_ref());
    let failures = ctx
        .failures
        .lock()
        .map(|mut f| {
            let n = f.entry(key).or_insert(0);
            *n = n.saturating_add(1);
            *n
        })
        .unwrap_or(1);
    let seed = u64::from(jiff::Timestamp::now().subsec_nanosecond().unsigned_abs());
    let after = err.retry_after(failures - 1, seed);
    warn!(
        namespace = %ro.namespace().unwrap_or_default(),
        name = %ro.name_any(),
        category = err.category(),
        retry_in_ms = after.as_millis() as u64,
        "reconcile failed: {err}"
    );
    Action::requeue(after)
}
