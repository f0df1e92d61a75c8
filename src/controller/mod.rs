//! The I/O shell around the pure planner: watches (label-filtered), the reconcile loop
//! (observe → plan → apply), the error policy and the health/metrics endpoint.

pub mod analysis;
pub mod apply;
pub mod error;
pub mod index;
pub mod leader;
pub mod observe;
pub mod rate;
pub mod routers;
pub mod server;
pub mod write;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{debug, info, warn};

use crate::api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use crate::api::consts::{
    ANNOTATION_MANAGED_BY_ROLLOUTS, LABEL_CONTROLLER_INSTANCE_ID, LABEL_POD_TEMPLATE_HASH,
};
use crate::api::rollout::Rollout;
use crate::rollout::observed::referenced_templates;
use crate::rollout::plan;
use error::Backoff;
pub use error::Error;
use index::OwnerIndex;
use write::Writer;

/// How the controller runs; filled from flags by the binary.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Watch only this namespace (namespaced install); all namespaces when `None`.
    pub namespace: Option<String>,
    /// Run the Rollout controller; `false` runs only the AnalysisRun controller (Argo's
    /// `--controllers=analysis`).
    pub rollouts: bool,
    /// Only reconcile Rollouts labelled with this controller instance id (Argo's `--instance-id`);
    /// when empty, only Rollouts without the label.
    pub instance_id: String,
    /// Concurrent Rollout reconciles (`--rollout-threads`).
    pub threads: u16,
    /// Concurrent AnalysisRun reconciles (`--analysis-threads`).
    pub analysis_threads: u16,
    /// Client-side rate limit for writes.
    pub qps: f64,
    pub burst: u32,
    /// Requeue every Rollout at least this often (Argo's resync).
    pub resync: Duration,
    /// Whether this replica holds the leader lease: only the leader reconciles and writes.
    pub leadership: leader::Leadership,
    /// The controller's own metrics (reconcile timings, errors, events, rollout gauges).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The TrafficSplit version of SMI routing (`--traffic-split-api-version`).
    pub smi_version: routers::smi::SmiVersion,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            namespace: None,
            rollouts: true,
            instance_id: String::new(),
            threads: 10,
            analysis_threads: 10,
            qps: 40.0,
            burst: 80,
            resync: Duration::from_secs(900),
            leadership: leader::Leadership::always(),
            metrics: Arc::default(),
            smi_version: routers::smi::SmiVersion::default(),
        }
    }
}

/// Shared state of all reconciles.
pub struct Context {
    /// Reads only; every write goes through `writer`.
    pub client: Client,
    /// Shared with the AnalysisRun controller.
    pub writer: Arc<Writer>,
    pub replica_sets: Store<ReplicaSet>,
    pub owners: OwnerIndex<ReplicaSet>,
    pub runs: Store<AnalysisRun>,
    pub run_owners: OwnerIndex<AnalysisRun>,
    pub templates: Store<AnalysisTemplate>,
    pub cluster_templates: Option<Store<ClusterAnalysisTemplate>>,
    /// Services, slimmed to their metadata and selector.
    pub services: Store<Service>,
    /// Services by the Rollout their `managed-by-rollouts` annotation names.
    pub managed_services: OwnerIndex<Service>,
    pub settings: Settings,
    backoff: Backoff<Rollout>,
    /// The last resourceVersion this controller wrote per Rollout, until the cache has it
    /// (Argo's rolloutVersionTracker).
    written: Mutex<HashMap<ObjectRef<Rollout>, u64>>,
    /// Flipped once the caches have synced; `/readyz` reports it.
    pub ready: Arc<AtomicBool>,
}

impl Context {
    /// Is the cached Rollout older than a version this controller itself wrote?
    fn behind_own_write(&self, key: &ObjectRef<Rollout>, cached: Option<&str>) -> bool {
        let Ok(mut w) = self.written.lock() else {
            return false;
        };
        let Some(&written) = w.get(key) else {
            return false;
        };
        match cached.and_then(|c| c.parse::<u64>().ok()) {
            Some(c) if c < written => true,
            _ => {
                // Caught up (or an unparseable version): forget it, the map only holds laggards.
                w.remove(key);
                false
            }
        }
    }

    fn record_write(&self, key: ObjectRef<Rollout>, rv: &str) {
        if let (Ok(mut w), Ok(v)) = (self.written.lock(), rv.parse::<u64>()) {
            w.insert(key, v);
        }
    }
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

/// Flags `synced` once the watcher has listed everything. A Controller's main store must not be
/// awaited with `Store::wait_until_ready` by anyone else: kube's readiness signal wakes only the
/// last waiter, so a second one can leave the Controller's runner (or the other waiter) parked
/// forever. Readiness of such a store is read off its watch stream instead.
fn mark_synced<K>(synced: &AtomicBool, e: Event<K>) -> Event<K> {
    if matches!(e, Event::InitDone) {
        synced.store(true, Ordering::SeqCst);
    }
    e
}

/// Drop managedFields from cached objects: they are never read and dominate object size.
fn slim<K: Resource>(ev: Event<K>) -> Event<K> {
    ev.modify(|o| o.meta_mut().managed_fields = None)
}

/// A Service as the cache keeps it: its metadata (no managed fields) and selector, nothing else
/// of a spec that can be large (ports, IPs) and is never read.
fn slim_service(ev: Event<Service>) -> Event<Service> {
    ev.modify(|svc| {
        svc.metadata.managed_fields = None;
        let selector = svc.spec.as_ref().and_then(|s| s.selector.clone());
        svc.spec = Some(ServiceSpec {
            selector,
            ..ServiceSpec::default()
        });
        svc.status = None;
    })
}

/// A Service is filed under the Rollout its `managed-by-rollouts` annotation names.
fn managed_by_key(svc: &Service) -> Option<index::Key> {
    let name = svc
        .metadata
        .annotations
        .as_ref()?
        .get(ANNOTATION_MANAGED_BY_ROLLOUTS)?;
    Some((svc.namespace().unwrap_or_default(), name.clone()))
}

/// Run the Rollout and AnalysisRun controllers until `shutdown` resolves.
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
    let rs_stream = watcher::watcher(
        replica_sets,
        watcher::Config::default().labels(LABEL_POD_TEMPLATE_HASH),
    )
    .map(move |ev| {
        ev.map(|e| {
            let e = slim(e);
            rs_index.observe(&e);
            e
        })
    })
    .default_backoff()
    .reflect(rs_writer)
    .touched_objects();

    let (ro_reader, ro_writer) = reflector::store();
    settings.metrics.watch_rollouts(ro_reader.clone());
    let (ro_synced, ar_synced) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (ro_flag, ar_flag) = (ro_synced.clone(), ar_synced.clone());
    let ro_stream = watcher::watcher(
        rollouts,
        watcher::Config::default().labels(&instance_selector(&settings.instance_id)),
    )
    .map(move |ev| ev.map(|e| slim(mark_synced(&ro_flag, e))))
    .default_backoff()
    .reflect(ro_writer)
    .touched_objects();

    // Argo's `--instance-id` filters Rollouts, AnalysisRuns and (cluster) AnalysisTemplates alike,
    // so that two controllers (Sluice and Argo during a migration) never act on the same runs.
    let instance = instance_selector(&settings.instance_id);
    // AnalysisRuns feed two controllers (the Rollout's, to react to phases, and their own).
    let run_owners = OwnerIndex::default();
    let (ar_reader, ar_writer) = reflector::store_shared(1024);
    let (Some(ar_for_rollouts), Some(ar_for_runs)) = (ar_writer.subscribe(), ar_writer.subscribe())
    else {
        warn!("cannot subscribe to the AnalysisRun cache");
        return;
    };
    let ar_index = run_owners.clone();
    // The shared reflector hands subscribers applied objects only: a deleted run would never wake
    // its Rollout (which must then measure again), so deletions reach it through this channel.
    let (run_deleted_tx, run_deleted_rx) = futures::channel::mpsc::unbounded();
    let ar_driver = watcher::watcher(
        api::<AnalysisRun>(&client, &settings.namespace),
        watcher::Config::default().labels(&instance),
    )
    .map(move |ev| {
        ev.map(|e| {
            let e = slim(mark_synced(&ar_flag, e));
            ar_index.observe(&e);
            if let Event::Delete(run) = &e
                && let Some(owner) = rollout_owner(run)
            {
                let _ = run_deleted_tx.unbounded_send(owner);
            }
            e
        })
    })
    .default_backoff()
    .reflect_shared(ar_writer)
    .for_each(|_| async {});

    // Templates, to build runs; a template appearing re-triggers the Rollouts that name it.
    let (at_reader, at_writer) = reflector::store();
    let at_stream = watcher::watcher(
        api::<AnalysisTemplate>(&client, &settings.namespace),
        watcher::Config::default().labels(&instance),
    )
    .map(|ev| ev.map(slim))
    .default_backoff()
    .reflect(at_writer)
    .touched_objects();
    let (cat_reader, cat_stream) = if settings.namespace.is_none() {
        let (r, w) = reflector::store();
        let s = watcher::watcher(
            Api::<ClusterAnalysisTemplate>::all(client.clone()),
            watcher::Config::default().labels(&instance),
        )
        .map(|ev| ev.map(slim))
        .default_backoff()
        .reflect(w)
        .touched_objects();
        (Some(r), Some(s))
    } else {
        (None, None)
    };

    // Services: the Rollouts that name (or manage) one are reconciled when it changes.
    let managed_services = OwnerIndex::keyed_by(managed_by_key);
    let svc_index = managed_services.clone();
    let (svc_reader, svc_writer) = reflector::store();
    let svc_stream = watcher::watcher(
        api::<Service>(&client, &settings.namespace),
        watcher::Config::default(),
    )
    .map(move |ev| {
        ev.map(|e| {
            let e = slim_service(e);
            svc_index.observe(&e);
            e
        })
    })
    .default_backoff()
    .reflect(svc_writer)
    .touched_objects();

    let reporter = Reporter {
        controller: "sluice-controller".into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    // One writer for both controllers: one rate limit, one fence.
    let writer = Arc::new(Writer::new(
        client.clone(),
        rate::RateLimiter::new(settings.qps, settings.burst),
        settings.leadership.clone(),
        reporter,
    ));
    let ctx = Arc::new(Context {
        writer: writer.clone(),
        client: client.clone(),
        replica_sets: rs_reader.clone(),
        owners,
        runs: ar_reader.clone(),
        run_owners,
        templates: at_reader.clone(),
        cluster_templates: cat_reader.clone(),
        services: svc_reader.clone(),
        managed_services,
        backoff: Backoff::default(),
        written: Mutex::new(HashMap::new()),
        ready: ready.clone(),
        settings: settings.clone(),
    });

    let at_ready = at_reader.clone();
    let svc_ready = svc_reader.clone();
    let with_rollouts = settings.rollouts;
    tokio::spawn(async move {
        // Without the Rollout controller its watches never run: only the runs' cache counts.
        let (b, d) = if with_rollouts {
            let (b, d, s) = tokio::join!(
                rs_reader.wait_until_ready(),
                at_ready.wait_until_ready(),
                svc_ready.wait_until_ready()
            );
            (b.is_ok(), d.is_ok() && s.is_ok())
        } else {
            (true, true)
        };
        // The Rollout and AnalysisRun stores are Controllers' main stores: see `mark_synced`.
        while !((ro_synced.load(Ordering::SeqCst) || !with_rollouts)
            && ar_synced.load(Ordering::SeqCst))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if b && d {
            ready.store(true, Ordering::SeqCst);
            info!("caches synced");
        }
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let template_owner = |ro_store: Store<Rollout>, cluster: bool| {
        move |name: String, ns: Option<String>| -> Vec<ObjectRef<Rollout>> {
            ro_store
                .state()
                .iter()
                .filter(|ro| cluster || ro.namespace() == ns)
                .filter(|ro| {
                    let (n, c) = referenced_templates(ro);
                    if cluster {
                        c.contains(&name)
                    } else {
                        n.contains(&name)
                    }
                })
                .map(|ro| ObjectRef::from_obj(ro.as_ref()))
                .collect()
        }
    };
    let at_map = template_owner(ro_reader.clone(), false);
    let svc_rollouts = ro_reader.clone();
    let svc_map = move |svc: Service| -> Vec<ObjectRef<Rollout>> {
        let name = svc.name_any();
        let ns = svc.namespace();
        let manager = managed_by_key(&svc).map(|(_, r)| r);
        svc_rollouts
            .state()
            .iter()
            .filter(|ro| ro.namespace() == ns)
            .filter(|ro| {
                manager.as_deref() == ro.metadata.name.as_deref()
                    || crate::rollout::services::named(ro)
                        .iter()
                        .any(|(_, n)| *n == name)
            })
            .map(|ro| ObjectRef::from_obj(ro.as_ref()))
            .collect()
    };
    let mut rollout_controller = Controller::for_stream(ro_stream, ro_reader.clone())
        .owns_stream(rs_stream)
        .reconcile_all_on(settings.leadership.acquired())
        .owns_shared_stream(ar_for_rollouts)
        .reconcile_on(run_deleted_rx)
        .watches_stream(at_stream, move |t: AnalysisTemplate| {
            at_map(t.name_any(), t.namespace())
        })
        .watches_stream(svc_stream, svc_map);
    if let Some(s) = cat_stream {
        let cat_map = template_owner(ro_reader.clone(), true);
        rollout_controller = rollout_controller
            .watches_stream(s, move |t: ClusterAnalysisTemplate| {
                cat_map(t.name_any(), None)
            });
    }
    let rollouts = rollout_controller
        .with_config(ControllerConfig::default().concurrency(settings.threads))
        .graceful_shutdown_on(stopped())
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => debug!(rollout = %obj, "reconciled"),
                Err(e) => debug!("reconcile failed: {e}"),
            }
        });
    let rollouts_idle = stopped();
    let rollouts = async move {
        if with_rollouts {
            rollouts.await;
        } else {
            info!("running only the AnalysisRun controller");
            rollouts_idle.await;
        }
    };
    {
        let (namespaced, cluster) = (at_reader.clone(), cat_reader.clone());
        settings.metrics.set_template_source(move || {
            let mut out: Vec<_> = namespaced
                .state()
                .iter()
                .map(|t| {
                    let ns = t.namespace().unwrap_or_default();
                    crate::metrics::analysis_template_sample(&ns, &t.name_any(), &t.spec)
                })
                .collect();
            for t in cluster.iter().flat_map(|c| c.state()) {
                out.push(crate::metrics::analysis_template_sample(
                    "",
                    &t.name_any(),
                    &t.spec,
                ));
            }
            out
        });
    }
    {
        let source = ar_reader.clone();
        settings.metrics.set_analysis_source(move || {
            source
                .state()
                .iter()
                .map(|r| crate::metrics::analysis_run_sample(r))
                .collect()
        });
    }
    // Only the leader runs the AnalysisRun controller (it writes). A standby drains the shared
    // stream, so the reflector never blocks on it; on takeover every cached run is reconciled.
    let (leadership, runs_store, runs_stop) =
        (settings.leadership.clone(), ar_reader.clone(), stopped());
    let (runs_client, runs_settings, runs_shutdown) = (client.clone(), settings.clone(), stopped());
    let runs = async move {
        let mut handle = ar_for_runs;
        {
            let drain = async { while handle.next().await.is_some() {} };
            tokio::select! {
                _ = leadership.wait_leading() => {}
                _ = drain => return,
                _ = runs_stop => return,
            }
        }
        let cached = futures::stream::iter(runs_store.state());
        analysis::run(
            runs_client,
            writer,
            &runs_settings,
            cached.chain(handle),
            ar_reader,
            runs_shutdown,
        )
        .await;
    };
    let driver = tokio::spawn(ar_driver);
    let stopper = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(rollouts, runs, stopper);
    driver.abort();
}

/// The Rollout that controls an object, from its controller owner reference.
fn rollout_owner<K: Resource>(obj: &K) -> Option<ObjectRef<Rollout>> {
    let owner = obj
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && o.kind == "Rollout")?;
    let ns = obj.meta().namespace.as_deref()?;
    Some(ObjectRef::new(&owner.name).within(ns))
}

/// Observe → plan → apply for one Rollout.
#[tracing::instrument(skip_all, fields(namespace = %ro.namespace().unwrap_or_default(), rollout = %ro.name_any()))]
async fn reconcile(ro: Arc<Rollout>, ctx: Arc<Context>) -> Result<Action, Error> {
    if !ctx.settings.leadership.is_leading() {
        // A standby keeps its caches warm but never writes; it reconciles everything on takeover.
        return Ok(Action::await_change());
    }
    let _timer = ctx.settings.metrics.reconcile_timer(&ro);
    let ns = ro
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(ro.name_any()))?;
    if ro.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let key = ObjectRef::from_obj(ro.as_ref());
    if ctx.behind_own_write(&key, ro.resource_version().as_deref()) {
        // Our cache has not caught up with our own last write: planning from it could redo or
        // undo that write. The watch event for the write triggers the next reconcile.
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let now = jiff::Timestamp::now();
    let snapshot = observe::observe(&ctx, &ro, &ns, now).await?;
    let plan = plan(&snapshot.observed(), now);
    if !plan.is_noop() {
        info!(
            adopt = plan.adopt.len(),
            create = plan.create.is_some(),
            updates = plan.updates.len(),
            deletes = plan.deletes.len(),
            status = plan.status.is_some(),
            "applying plan"
        );
    }
    if let Some(rv) = apply::apply(&ctx, &ro, &ns, &plan).await? {
        ctx.record_write(key.clone(), &rv);
    }
    ctx.backoff.reset(&key);
    let next = plan
        .requeue_after
        .map_or(ctx.settings.resync, |d| d.min(ctx.settings.resync));
    Ok(Action::requeue(next))
}

fn error_policy(ro: Arc<Rollout>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.settings.metrics.reconcile_error(&ro);
    let after = ctx.backoff.failed(ObjectRef::from_obj(ro.as_ref()), err);
    warn!(
        namespace = %ro.namespace().unwrap_or_default(),
        rollout = %ro.name_any(),
        category = err.category(),
        retry_in_ms = after.as_millis() as u64,
        "reconcile failed: {err}"
    );
    Action::requeue(after)
}
