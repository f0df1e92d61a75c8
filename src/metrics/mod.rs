//! The controller's own Prometheus metrics, under Argo Rollouts' names and labels so existing
//! dashboards and alerts keep working. Rollout (and AnalysisRun) gauges are computed at scrape time
//! from the reflector store, so they never go stale and deleted objects disappear; per-object
//! reconcile timings, errors and event counts live in a map pruned once the object has been gone
//! for [`CLEANUP_DELAY`]. Every label is bounded by the number of objects (no per-request series):
//! API requests are counted by kind, namespace, verb and status code only ([`client`]), and the
//! rollout duration histograms by completion status only.
//!
//! Exposition is the Prometheus text format 0.0.4. prometheus-client appends `_total` to every
//! counter, so Argo's suffix-less counters (`rollout_reconcile_error`,
//! `analysis_run_reconcile_error`) are exposed as `untyped` to keep their series names exact.

mod analysis;
mod client;
mod duration;
mod encode;
mod process;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub use analysis::{
    AnalysisMetricSample, AnalysisRunSample, AnalysisTemplateSample, analysis_run_sample,
    analysis_template_sample, metric_provider_type,
};
pub use client::{CountRequests, RequestCounts, classify};
use duration::Durations;
pub use duration::{
    ROLLOUT_DURATION_BUCKETS, ROLLOUT_MANUAL_PAUSE_BUCKETS, ROLLOUT_PROGRESSION_BUCKETS,
    rollout_durations,
};
use encode::{b, family, gauge_family};
use process::{go_arch, process_metrics};

use crate::api::consts::{
    CONDITION_INVALID_SPEC, CONDITION_PROGRESSING, REASON_NEW_REPLICA_SET_AVAILABLE,
    REASON_PROGRESS_DEADLINE_EXCEEDED, REASON_REPLICA_SET_CREATE_ERROR, REASON_ROLLOUT_ABORTED,
    REASON_ROLLOUT_PAUSED,
};
use crate::api::rollout::{Rollout, RolloutDurationStatus};

/// `Content-Type` of [`Metrics::render`].
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Reconcile histogram buckets, in seconds (Argo's).
pub const RECONCILE_BUCKETS: [f64; 5] = [0.01, 0.15, 0.25, 0.5, 1.0];

/// How long the series of a deleted object stay, so the last values can still be scraped (Argo's
/// metrics cleanup delay).
pub const CLEANUP_DELAY: Duration = Duration::from_secs(65);

/// Argo's metric phase of a rollout (`rollout_info{phase}`), derived from the `Progressing`
/// condition's reason and the presence of an `InvalidSpec` condition, not from `status.phase`.
pub fn rollout_metric_phase(ro: &Rollout) -> &'static str {
    let conditions = ro
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    if conditions.iter().any(|c| c.type_ == CONDITION_INVALID_SPEC) {
        return "InvalidSpec";
    }
    let reason = conditions
        .iter()
        .find(|c| c.type_ == CONDITION_PROGRESSING)
        .and_then(|c| c.reason.as_deref());
    match reason {
        Some(REASON_NEW_REPLICA_SET_AVAILABLE) => "Completed",
        Some(REASON_ROLLOUT_PAUSED) => "Paused",
        Some(REASON_REPLICA_SET_CREATE_ERROR) => "Error",
        Some(REASON_PROGRESS_DEADLINE_EXCEEDED) => "Timeout",
        Some(REASON_ROLLOUT_ABORTED) => "Abort",
        _ => "Progressing",
    }
}

/// Every value `rollout_phase` (deprecated) enumerates.
const ROLLOUT_PHASES: [&str; 6] = [
    "Completed",
    "Progressing",
    "Paused",
    "Timeout",
    "Error",
    "Abort",
];

/// Every value `analysis_run_phase` / `analysis_run_metric_phase` enumerate.
const ANALYSIS_PHASES: [&str; 6] = [
    "Pending",
    "Error",
    "Failed",
    "Successful",
    "Running",
    "Inconclusive",
];

/// `(strategy, traffic_router)` labels, as Argo: `blueGreen`, `canary` or `none`; the router is one
/// of ALB, Ambassador, Istio, Nginx, SMI, AppMesh (the later in this list wins) or empty.
pub fn rollout_strategy(ro: &Rollout) -> (&'static str, &'static str) {
    let s = &ro.spec.strategy;
    if s.blue_green.is_some() {
        return ("blueGreen", "");
    }
    let Some(canary) = &s.canary else {
        return ("none", "");
    };
    let router = match &canary.traffic_routing {
        None => "",
        Some(t) if t.app_mesh.is_some() => "AppMesh",
        Some(t) if t.smi.is_some() => "SMI",
        Some(t) if t.nginx.is_some() => "Nginx",
        Some(t) if t.istio.is_some() => "Istio",
        Some(t) if t.ambassador.is_some() => "Ambassador",
        Some(t) if t.alb.is_some() => "ALB",
        Some(_) => "",
    };
    ("canary", router)
}

type AnalysisSource = Box<dyn Fn() -> Vec<AnalysisRunSample> + Send + Sync>;
type TemplateSource = Box<dyn Fn() -> Vec<AnalysisTemplateSample> + Send + Sync>;
type LeaderProbe = Box<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Rollout,
    AnalysisRun,
}

type Key = (Kind, String, String);

/// What is kept per reconciled object.
#[derive(Clone, Debug, Default)]
struct PerObject {
    /// Non-cumulative bucket counts for [`RECONCILE_BUCKETS`] (the +Inf bucket is `count`).
    buckets: [u64; 5],
    sum: f64,
    count: u64,
    errors: u64,
    /// `(type, reason)` → count.
    events: BTreeMap<(String, String), u64>,
    /// When the object was first seen missing from its store.
    gone_since: Option<Instant>,
}

struct State {
    version: String,
    commit: String,
    rustc: String,
    started: f64,
    rollouts: RwLock<Option<Store<Rollout>>>,
    analysis: RwLock<Option<AnalysisSource>>,
    templates: RwLock<Option<TemplateSource>>,
    leader: RwLock<Option<(String, LeaderProbe)>>,
    objects: Mutex<BTreeMap<Key, PerObject>>,
    requests: RequestCounts,
    /// Completion status → the duration histograms.
    durations: Mutex<BTreeMap<String, Durations>>,
}

/// The controller's registry. Shared (`Arc`) between the reconciler, which records, and the
/// HTTP server, which renders.
pub struct Metrics {
    registry: Registry,
    state: Arc<State>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("version", &self.state.version)
            .finish()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(env!("CARGO_PKG_VERSION"))
    }
}

struct Collector(Arc<State>);

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Collector")
    }
}

impl Metrics {
    pub fn new(version: &str) -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let state = Arc::new(State {
            version: version.to_string(),
            commit: option_env!("SLUICE_GIT_COMMIT")
                .unwrap_or("unknown")
                .to_string(),
            rustc: option_env!("SLUICE_RUSTC_VERSION")
                .map_or_else(|| "rust".to_string(), |v| format!("rust{v}")),
            started,
            rollouts: RwLock::new(None),
            analysis: RwLock::new(None),
            templates: RwLock::new(None),
            leader: RwLock::new(None),
            objects: Mutex::new(BTreeMap::new()),
            requests: RequestCounts::default(),
            durations: Mutex::new(BTreeMap::new()),
        });
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Collector(state.clone())));
        Metrics { registry, state }
    }

    /// The Rollout reflector store the `rollout_info*` gauges are computed from.
    pub fn watch_rollouts(&self, store: Store<Rollout>) {
        if let Ok(mut r) = self.state.rollouts.write() {
            *r = Some(store);
        }
    }

    /// Where the `analysis_run_*` gauges come from; until set, those families have no samples.
    pub fn set_analysis_source(
        &self,
        source: impl Fn() -> Vec<AnalysisRunSample> + Send + Sync + 'static,
    ) {
        if let Ok(mut a) = self.state.analysis.write() {
            *a = Some(Box::new(source));
        }
    }

    /// Where the `analysis_template_*` gauges come from (the template caches); until set, those
    /// families have no samples.
    pub fn set_template_source(
        &self,
        source: impl Fn() -> Vec<AnalysisTemplateSample> + Send + Sync + 'static,
    ) {
        if let Ok(mut t) = self.state.templates.write() {
            *t = Some(Box::new(source));
        }
    }

    /// The layer to add to the kube client's service so that its requests are counted in
    /// `controller_clientset_k8s_request_total`.
    pub fn request_layer(&self) -> CountRequests {
        CountRequests(self.state.requests.clone())
    }

    /// Record a finished update attempt in the rollout duration histograms, labelled by its
    /// completion status. Call once per attempt, after the status that finishes it was written.
    pub fn rollout_duration(&self, d: &RolloutDurationStatus) {
        let Some((status, total, progression, paused)) = rollout_durations(d) else {
            return;
        };
        if let Ok(mut m) = self.state.durations.lock() {
            let h = m.entry(status).or_default();
            h.total.observe(&ROLLOUT_DURATION_BUCKETS, total);
            h.progression
                .observe(&ROLLOUT_PROGRESSION_BUCKETS, progression);
            h.manual_pause
                .observe(&ROLLOUT_MANUAL_PAUSE_BUCKETS, paused);
        }
    }

    /// `leader_election_master_status{name=<lease>}`: 1 on the leader, 0 on a standby.
    pub fn set_leader_probe(&self, lease: &str, probe: impl Fn() -> bool + Send + Sync + 'static) {
        if let Ok(mut l) = self.state.leader.write() {
            *l = Some((lease.to_string(), Box::new(probe)));
        }
    }

    /// Starts timing one Rollout reconcile; recorded in `rollout_reconcile` when dropped.
    pub fn reconcile_timer(&self, ro: &Rollout) -> ReconcileTimer {
        self.timer(
            Kind::Rollout,
            &ro.namespace().unwrap_or_default(),
            &ro.name_any(),
        )
    }

    /// Starts timing one AnalysisRun reconcile (`analysis_run_reconcile`).
    pub fn analysis_run_reconcile_timer(&self, namespace: &str, name: &str) -> ReconcileTimer {
        self.timer(Kind::AnalysisRun, namespace, name)
    }

    fn timer(&self, kind: Kind, namespace: &str, name: &str) -> ReconcileTimer {
        ReconcileTimer {
            state: self.state.clone(),
            key: (kind, namespace.to_string(), name.to_string()),
            start: Instant::now(),
        }
    }

    /// `rollout_reconcile_error{namespace,name}` += 1.
    pub fn reconcile_error(&self, ro: &Rollout) {
        let key = (
            Kind::Rollout,
            ro.namespace().unwrap_or_default(),
            ro.name_any(),
        );
        self.state.with(key, |o| o.errors += 1);
    }

    /// `analysis_run_reconcile_error{namespace,name}` += 1.
    pub fn analysis_run_reconcile_error(&self, namespace: &str, name: &str) {
        let key = (Kind::AnalysisRun, namespace.to_string(), name.to_string());
        self.state.with(key, |o| o.errors += 1);
    }

    /// `rollout_events_total{namespace,name,type,reason}` += 1 (`type` is Normal or Warning).
    pub fn event(&self, namespace: &str, name: &str, type_: &str, reason: &str) {
        let key = (Kind::Rollout, namespace.to_string(), name.to_string());
        self.state.with(key, |o| {
            *o.events
                .entry((type_.to_string(), reason.to_string()))
                .or_insert(0) += 1;
        });
    }

    /// The exposition, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            tracing::warn!("encoding metrics failed: {e}");
        }
        out
    }
}

impl State {
    fn with(&self, key: Key, f: impl FnOnce(&mut PerObject)) {
        if let Ok(mut m) = self.objects.lock() {
            f(m.entry(key).or_default());
        }
    }

    /// Drop the series of objects that have left their store for longer than the cleanup delay.
    /// Without a store for a kind, nothing of that kind is pruned.
    fn prune(&self, present: &BTreeMap<Kind, BTreeSet<(String, String)>>) {
        let Ok(mut m) = self.objects.lock() else {
            return;
        };
        let now = Instant::now();
        m.retain(|(kind, ns, name), o| {
            let Some(set) = present.get(kind) else {
                return true;
            };
            if set.contains(&(ns.clone(), name.clone())) {
                o.gone_since = None;
                return true;
            }
            let since = *o.gone_since.get_or_insert(now);
            now.duration_since(since) < CLEANUP_DELAY
        });
    }
}

/// Records the elapsed time into the reconcile histogram when dropped, so a reconcile that fails
/// or is cancelled is timed too.
pub struct ReconcileTimer {
    state: Arc<State>,
    key: Key,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        let secs = self.start.elapsed().as_secs_f64();
        let key = std::mem::replace(&mut self.key, (Kind::Rollout, String::new(), String::new()));
        self.state.with(key, |o| {
            if let Some(i) = RECONCILE_BUCKETS.iter().position(|b| secs <= *b) {
                o.buckets[i] += 1;
            }
            o.sum += secs;
            o.count += 1;
        });
    }
}

impl prometheus_client::collector::Collector for Collector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let st = &self.0;
        let mut present = BTreeMap::new();

        // --- Rollouts, from the reflector store -----------------------------------------------
        let mut rollouts: Vec<Arc<Rollout>> = match st.rollouts.read() {
            Ok(g) => match g.as_ref() {
                Some(store) => store.state(),
                None => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        if st.rollouts.read().map(|g| g.is_some()).unwrap_or(false) {
            present.insert(
                Kind::Rollout,
                rollouts
                    .iter()
                    .map(|r| (r.namespace().unwrap_or_default(), r.name_any()))
                    .collect::<BTreeSet<_>>(),
            );
        }
        rollouts.sort_by_key(|r| (r.namespace(), r.name_any()));
        struct Row {
            ns: String,
            name: String,
            strategy: &'static str,
            router: &'static str,
            phase: &'static str,
            available: f64,
            unavailable: f64,
            desired: f64,
            updated: f64,
        }
        let rows: Vec<Row> = rollouts
            .iter()
            .map(|ro| {
                let (strategy, router) = rollout_strategy(ro);
                let status = ro.status.clone().unwrap_or_default();
                let available = status.available_replicas.unwrap_or(0);
                Row {
                    ns: ro.namespace().unwrap_or_default(),
                    name: ro.name_any(),
                    strategy,
                    router,
                    phase: rollout_metric_phase(ro),
                    available: f64::from(available),
                    unavailable: f64::from(status.replicas.unwrap_or(0) - available),
                    desired: f64::from(ro.spec.replicas.unwrap_or(1)),
                    updated: f64::from(status.updated_replicas.unwrap_or(0)),
                }
            })
            .collect();
        gauge_family(
            &mut enc,
            "rollout_info",
            "Information about a rollout: strategy, traffic router and metric phase.",
            rows.iter().map(|r| {
                (
                    [
                        ("namespace", r.ns.as_str()),
                        ("name", r.name.as_str()),
                        ("strategy", r.strategy),
                        ("traffic_router", r.router),
                        ("phase", r.phase),
                    ],
                    1.0,
                )
            }),
        )?;
        type Pick = fn(&Row) -> f64;
        let replica_gauges: [(&str, &str, Pick); 4] = [
            (
                "rollout_info_replicas_available",
                "Available replicas of a rollout.",
                |r| r.available,
            ),
            (
                "rollout_info_replicas_unavailable",
                "Unavailable replicas of a rollout.",
                |r| r.unavailable,
            ),
            (
                "rollout_info_replicas_desired",
                "Desired replicas of a rollout.",
                |r| r.desired,
            ),
            (
                "rollout_info_replicas_updated",
                "Updated replicas of a rollout.",
                |r| r.updated,
            ),
        ];
        for (name, help, pick) in replica_gauges {
            gauge_family(
                &mut enc,
                name,
                help,
                rows.iter().map(|r| {
                    (
                        [("namespace", r.ns.as_str()), ("name", r.name.as_str())],
                        pick(r),
                    )
                }),
            )?;
        }
        gauge_family(
            &mut enc,
            "rollout_phase",
            "Metric phase of a rollout, one series per phase (deprecated: use rollout_info).",
            rows.iter().flat_map(|r| {
                ROLLOUT_PHASES.iter().map(move |p| {
                    (
                        [
                            ("namespace", r.ns.as_str()),
                            ("name", r.name.as_str()),
                            ("strategy", r.strategy),
                            ("phase", *p),
                        ],
                        b(r.phase == *p),
                    )
                })
            }),
        )?;

        // --- AnalysisRuns, from the analysis controller's source -------------------------------
        let runs: Option<Vec<AnalysisRunSample>> = st
            .analysis
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|f| f()));
        if let Some(runs) = &runs {
            present.insert(
                Kind::AnalysisRun,
                runs.iter()
                    .map(|r| (r.namespace.clone(), r.name.clone()))
                    .collect(),
            );
        }
        let mut runs = runs.unwrap_or_default();
        runs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let run_phase = |r: &AnalysisRunSample| -> String {
            if r.phase.is_empty() {
                "Pending".into()
            } else {
                r.phase.clone()
            }
        };
        gauge_family(
            &mut enc,
            "analysis_run_info",
            "Information about an analysis run.",
            runs.iter().map(|r| {
                (
                    vec![
                        ("namespace", r.namespace.clone()),
                        ("name", r.name.clone()),
                        ("phase", r.phase.clone()),
                    ],
                    1.0,
                )
            }),
        )?;
        gauge_family(
            &mut enc,
            "analysis_run_phase",
            "Phase of an analysis run, one series per phase (deprecated: use analysis_run_info).",
            runs.iter().flat_map(|r| {
                let phase = run_phase(r);
                ANALYSIS_PHASES.iter().map(move |p| {
                    (
                        vec![
                            ("namespace", r.namespace.clone()),
                            ("name", r.name.clone()),
                            ("phase", p.to_string()),
                        ],
                        b(phase == *p),
                    )
                })
            }),
        )?;
        gauge_family(
            &mut enc,
            "analysis_run_metric_type",
            "Provider type of each metric of an analysis run.",
            runs.iter().flat_map(|r| {
                r.metrics.iter().map(move |m| {
                    (
                        vec![
                            ("namespace", r.namespace.clone()),
                            ("name", r.name.clone()),
                            ("metric", m.name.clone()),
                            ("type", m.provider.clone()),
                        ],
                        1.0,
                    )
                })
            }),
        )?;
        gauge_family(
            &mut enc,
            "analysis_run_metric_phase",
            "Phase of each metric of an analysis run, one series per phase.",
            runs.iter().flat_map(|r| {
                r.metrics.iter().flat_map(move |m| {
                    let phase = if m.phase.is_empty() {
                        "Pending".to_string()
                    } else {
                        m.phase.clone()
                    };
                    ANALYSIS_PHASES.iter().map(move |p| {
                        (
                            vec![
                                ("namespace", r.namespace.clone()),
                                ("name", r.name.clone()),
                                ("metric", m.name.clone()),
                                ("type", m.provider.clone()),
                                ("dry_run", m.dry_run.to_string()),
                                ("phase", p.to_string()),
                            ],
                            b(phase == *p),
                        )
                    })
                })
            }),
        )?;

        // --- Analysis templates, from the template caches ---------------------------------------
        let mut templates: Vec<AnalysisTemplateSample> = st
            .templates
            .read()
            .ok()
            .and_then(|g| g.as_ref().map(|f| f()))
            .unwrap_or_default();
        templates.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        gauge_family(
            &mut enc,
            "analysis_template_info",
            "Information about analysis templates.",
            templates.iter().map(|t| {
                (
                    [
                        ("namespace", t.namespace.as_str()),
                        ("name", t.name.as_str()),
                    ],
                    1.0,
                )
            }),
        )?;
        gauge_family(
            &mut enc,
            "analysis_template_metric_info",
            "Information on metrics in analysis templates.",
            templates.iter().flat_map(|t| {
                t.metrics.iter().map(move |(metric, type_)| {
                    (
                        [
                            ("namespace", t.namespace.as_str()),
                            ("name", t.name.as_str()),
                            ("type", type_.as_str()),
                            ("metric", metric.as_str()),
                        ],
                        1.0,
                    )
                })
            }),
        )?;

        // --- Per-object reconcile timings, errors and events -----------------------------------
        st.prune(&present);
        let objects: Vec<(Key, PerObject)> = st
            .objects
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        for (kind, hist, errors) in [
            (
                Kind::Rollout,
                (
                    "rollout_reconcile",
                    "Rollout reconciliation duration in seconds.",
                ),
                (
                    "rollout_reconcile_error",
                    "Failed rollout reconciliations (a counter, exposed untyped to keep Argo's name).",
                ),
            ),
            (
                Kind::AnalysisRun,
                (
                    "analysis_run_reconcile",
                    "AnalysisRun reconciliation duration in seconds.",
                ),
                (
                    "analysis_run_reconcile_error",
                    "Failed AnalysisRun reconciliations (a counter, exposed untyped to keep Argo's name).",
                ),
            ),
        ] {
            let of_kind = || objects.iter().filter(move |((k, _, _), _)| *k == kind);
            {
                let mut m = enc.encode_descriptor(hist.0, hist.1, None, MetricType::Histogram)?;
                for ((_, ns, name), o) in of_kind().filter(|(_, o)| o.count > 0) {
                    let labels = [("namespace", ns.as_str()), ("name", name.as_str())];
                    let buckets: Vec<(f64, u64)> =
                        RECONCILE_BUCKETS.iter().copied().zip(o.buckets).collect();
                    m.encode_family(&labels)?
                        .encode_histogram::<NoLabelSet>(o.sum, o.count, &buckets, None)?;
                }
            }
            family(
                &mut enc,
                errors.0,
                errors.1,
                MetricType::Unknown,
                of_kind()
                    .filter(|(_, o)| o.errors > 0)
                    .map(|((_, ns, name), o)| {
                        (
                            [("namespace", ns.as_str()), ("name", name.as_str())],
                            o.errors as f64,
                        )
                    }),
            )?;
        }
        {
            let mut m = enc.encode_descriptor(
                "rollout_events",
                "Kubernetes events emitted for a rollout, by type and reason.",
                None,
                MetricType::Counter,
            )?;
            for ((kind, ns, name), o) in &objects {
                if *kind != Kind::Rollout {
                    continue;
                }
                for ((type_, reason), n) in &o.events {
                    let labels = [
                        ("namespace", ns.as_str()),
                        ("name", name.as_str()),
                        ("type", type_.as_str()),
                        ("reason", reason.as_str()),
                    ];
                    m.encode_family(&labels)?
                        .encode_counter::<NoLabelSet, u64, u64>(n, None)?;
                }
            }
        }

        // --- Rollout durations, by completion status ------------------------------------------
        let durations: Vec<(String, Durations)> = st
            .durations
            .lock()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        duration::encode(&mut enc, &durations)?;

        // --- API requests --------------------------------------------------------------------
        {
            let mut m = enc.encode_descriptor(
                "controller_clientset_k8s_request",
                "Number of kubernetes requests executed during application reconciliation.",
                None,
                MetricType::Counter,
            )?;
            for ((kind, ns, verb, code), n) in st.requests.snapshot() {
                let labels = [
                    ("kind", kind.as_str()),
                    ("namespace", ns.as_str()),
                    ("name", "N/A"),
                    ("verb", verb),
                    ("status_code", code.as_str()),
                ];
                m.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, u64, u64>(&n, None)?;
            }
        }

        // --- The controller itself ------------------------------------------------------------
        gauge_family(
            &mut enc,
            "argo_rollouts_controller_info",
            "Version of the running controller (Argo Rollouts-compatible name).",
            [([("version", st.version.as_str())], 1.0)],
        )?;
        gauge_family(
            &mut enc,
            "build_info",
            "Constant 1, labelled with how the controller was built (Argo's labels: goversion is the Rust compiler's version, goarch the architecture under Go's name).",
            [(
                [
                    ("version", st.version.as_str()),
                    ("goversion", st.rustc.as_str()),
                    ("goarch", go_arch()),
                    ("commit", st.commit.as_str()),
                    ("language", "rust"),
                ],
                1.0,
            )],
        )?;
        if let Ok(g) = st.leader.read()
            && let Some((lease, probe)) = g.as_ref()
        {
            gauge_family(
                &mut enc,
                "leader_election_master_status",
                "1 while this replica holds the leader lease, 0 on a standby.",
                [([("name", lease.as_str())], b(probe()))],
            )?;
        }
        process_metrics(&mut enc, st.started)?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::api::analysis::{AnalysisRun, AnalysisTemplateSpec};
    use crate::api::rollout::{RolloutCondition, RolloutStatus};
    use kube::runtime::watcher::Event;

    fn rollout(ns: &str, name: &str, yaml_strategy: serde_json::Value) -> Rollout {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"namespace": ns, "name": name},
            "spec": {"replicas": 5, "strategy": yaml_strategy},
        }))
        .unwrap()
    }

    fn with_conditions(mut ro: Rollout, conds: &[(&str, &str)]) -> Rollout {
        ro.status = Some(RolloutStatus {
            conditions: Some(
                conds
                    .iter()
                    .map(|(t, r)| RolloutCondition {
                        type_: t.to_string(),
                        status: "True".into(),
                        reason: Some(r.to_string()),
                        ..Default::default()
                    })
                    .collect(),
            ),
            replicas: Some(6),
            available_replicas: Some(4),
            updated_replicas: Some(2),
            ..Default::default()
        });
        ro
    }

    #[test]
    fn metric_phase_follows_the_progressing_reason() {
        let base = rollout("ns", "a", serde_json::json!({"canary": {}}));
        for (conds, want) in [
            (vec![], "Progressing"),
            (vec![("Progressing", "NewReplicaSetAvailable")], "Completed"),
            (vec![("Progressing", "ReplicaSetUpdated")], "Progressing"),
            (vec![("Progressing", "RolloutPaused")], "Paused"),
            (vec![("Progressing", "ReplicaSetCreateError")], "Error"),
            (vec![("Progressing", "ProgressDeadlineExceeded")], "Timeout"),
            (vec![("Progressing", "RolloutAborted")], "Abort"),
            (
                vec![
                    ("Progressing", "NewReplicaSetAvailable"),
                    ("InvalidSpec", "InvalidSpec"),
                ],
                "InvalidSpec",
            ),
            // Other conditions' reasons do not count.
            (vec![("Available", "RolloutPaused")], "Progressing"),
        ] {
            let ro = with_conditions(base.clone(), &conds);
            assert_eq!(rollout_metric_phase(&ro), want, "{conds:?}");
        }
    }

    #[test]
    fn strategy_and_router() {
        let r = |s| rollout("n", "r", s);
        assert_eq!(rollout_strategy(&r(serde_json::json!({}))), ("none", ""));
        assert_eq!(
            rollout_strategy(&r(serde_json::json!({"blueGreen": {"activeService": "a"}}))),
            ("blueGreen", "")
        );
        assert_eq!(
            rollout_strategy(&r(serde_json::json!({"canary": {}}))),
            ("canary", "")
        );
        let nginx =
            serde_json::json!({"canary": {"trafficRouting": {"nginx": {"stableIngress": "i"}}}});
        assert_eq!(rollout_strategy(&r(nginx)), ("canary", "Nginx"));
        let both = serde_json::json!({"canary": {"trafficRouting": {
            "alb": {"ingress": "i", "servicePort": 80}, "smi": {}}}});
        assert_eq!(rollout_strategy(&r(both)), ("canary", "SMI"));
        let traefik = serde_json::json!({"canary": {"trafficRouting": {"traefik": {"weightedTraefikServiceName": "t"}}}});
        assert_eq!(rollout_strategy(&r(traefik)), ("canary", ""));
    }

    fn store_with(
        ros: Vec<Rollout>,
    ) -> (
        Store<Rollout>,
        kube::runtime::reflector::store::Writer<Rollout>,
    ) {
        let (reader, mut writer) = kube::runtime::reflector::store();
        writer.apply_watcher_event(&Event::Init);
        for ro in ros {
            writer.apply_watcher_event(&Event::InitApply(ro));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (reader, writer)
    }

    #[test]
    fn exposition() {
        let m = Metrics::new("1.2.3");
        let ro = with_conditions(
            rollout("prod", "web", serde_json::json!({"canary": {}})),
            &[("Progressing", "RolloutPaused")],
        );
        let (store, _w) = store_with(vec![ro.clone()]);
        m.watch_rollouts(store);
        {
            let _t = m.reconcile_timer(&ro);
        }
        m.reconcile_error(&ro);
        m.event("prod", "web", "Normal", "RolloutPaused");
        m.event("prod", "web", "Normal", "RolloutPaused");
        m.set_leader_probe("sluice-controller-lock", || true);
        let text = m.render();
        for want in [
            "# TYPE rollout_info gauge",
            r#"rollout_info{namespace="prod",name="web",strategy="canary",traffic_router="",phase="Paused"} 1"#,
            r#"rollout_info_replicas_available{namespace="prod",name="web"} 4"#,
            r#"rollout_info_replicas_unavailable{namespace="prod",name="web"} 2"#,
            r#"rollout_info_replicas_desired{namespace="prod",name="web"} 5"#,
            r#"rollout_info_replicas_updated{namespace="prod",name="web"} 2"#,
            r#"rollout_phase{namespace="prod",name="web",strategy="canary",phase="Paused"} 1"#,
            r#"rollout_phase{namespace="prod",name="web",strategy="canary",phase="Completed"} 0"#,
            "# TYPE rollout_reconcile histogram",
            r#"rollout_reconcile_bucket{namespace="prod",name="web",le="0.01"} 1"#,
            r#"rollout_reconcile_bucket{namespace="prod",name="web",le="+Inf"} 1"#,
            r#"rollout_reconcile_count{namespace="prod",name="web"} 1"#,
            "# TYPE rollout_reconcile_error untyped",
            r#"rollout_reconcile_error{namespace="prod",name="web"} 1"#,
            "# TYPE rollout_events_total counter",
            r#"rollout_events_total{namespace="prod",name="web",type="Normal",reason="RolloutPaused"} 2"#,
            "# TYPE analysis_run_info gauge",
            "# TYPE analysis_run_metric_phase gauge",
            "# TYPE analysis_run_metric_type gauge",
            r#"argo_rollouts_controller_info{version="1.2.3"} 1"#,
            r#"leader_election_master_status{name="sluice-controller-lock"} 1"#,
            "# TYPE build_info gauge",
            r#"goversion="rust"#,
            "# TYPE process_start_time_seconds gauge",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("_total_total"));
    }

    #[test]
    fn analysis_runs_from_their_source() {
        let m = Metrics::new("x");
        m.set_analysis_source(|| {
            vec![AnalysisRunSample {
                namespace: "ns".into(),
                name: "run".into(),
                phase: "Running".into(),
                metrics: vec![AnalysisMetricSample {
                    name: "success-rate".into(),
                    provider: "Prometheus".into(),
                    dry_run: false,
                    phase: String::new(),
                }],
            }]
        });
        let text = m.render();
        for want in [
            r#"analysis_run_info{namespace="ns",name="run",phase="Running"} 1"#,
            r#"analysis_run_phase{namespace="ns",name="run",phase="Running"} 1"#,
            r#"analysis_run_metric_type{namespace="ns",name="run",metric="success-rate",type="Prometheus"} 1"#,
            r#"analysis_run_metric_phase{namespace="ns",name="run",metric="success-rate",type="Prometheus",dry_run="false",phase="Pending"} 1"#,
            r#"analysis_run_metric_phase{namespace="ns",name="run",metric="success-rate",type="Prometheus",dry_run="false",phase="Running"} 0"#,
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn analysis_run_samples() {
        let run: AnalysisRun = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"namespace": "ns", "name": "run"},
            "spec": {
                "metrics": [
                    {"name": "success-rate", "provider": {"prometheus": {"query": "q"}}},
                    {"name": "smoke", "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}},
                    {"name": "latency", "provider": {"web": {"url": "http://x"}}},
                ],
                "dryRun": [{"metricName": "smo.*"}],
            },
            "status": {"phase": "Running", "metricResults": [{"name": "success-rate", "phase": "Successful"}]},
        }))
        .unwrap();
        let s = analysis_run_sample(&run);
        assert_eq!(
            (s.namespace.as_str(), s.name.as_str(), s.phase.as_str()),
            ("ns", "run", "Running")
        );
        let m: Vec<(&str, &str, bool, &str)> = s
            .metrics
            .iter()
            .map(|m| {
                (
                    m.name.as_str(),
                    m.provider.as_str(),
                    m.dry_run,
                    m.phase.as_str(),
                )
            })
            .collect();
        assert_eq!(
            m,
            vec![
                ("success-rate", "Prometheus", false, "Successful"),
                ("smoke", "Job", true, ""),
                ("latency", "Web", false, ""),
            ]
        );
    }

    #[test]
    fn analysis_templates_from_their_source() {
        let m = Metrics::new("x");
        let spec: AnalysisTemplateSpec = serde_json::from_value(serde_json::json!({
            "metrics": [
                {"name": "success-rate", "provider": {"prometheus": {"query": "q"}}},
                {"name": "smoke", "provider": {"job": {"spec": {"template": {"spec": {"containers": []}}}}}},
            ],
        }))
        .unwrap();
        let at = analysis_template_sample("ns", "rates", &spec);
        let cat = analysis_template_sample("", "global", &spec);
        m.set_template_source(move || vec![at.clone(), cat.clone()]);
        let text = m.render();
        for want in [
            "# TYPE analysis_template_info gauge",
            r#"analysis_template_info{namespace="ns",name="rates"} 1"#,
            r#"analysis_template_info{namespace="",name="global"} 1"#,
            "# TYPE analysis_template_metric_info gauge",
            r#"analysis_template_metric_info{namespace="ns",name="rates",type="Prometheus",metric="success-rate"} 1"#,
            r#"analysis_template_metric_info{namespace="ns",name="rates",type="Job",metric="smoke"} 1"#,
            r#"analysis_template_metric_info{namespace="",name="global",type="Job",metric="smoke"} 1"#,
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn rollout_duration_histograms() {
        let m = Metrics::new("x");
        let d = |start: i64, end: Option<i64>, paused: Option<i64>, status: Option<&str>| {
            let t = |s: i64| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    jiff::Timestamp::from_second(1_800_000_000 + s).unwrap(),
                )
            };
            RolloutDurationStatus {
                rollout_started_at: Some(t(start)),
                finished_at: end.map(t),
                total_manual_pause_duration_seconds: paused,
                completion_status: status.map(str::to_string),
                ..Default::default()
            }
        };
        // Not finished, or no status: nothing is recorded (Argo's EmitRolloutDuration).
        assert_eq!(rollout_durations(&d(0, None, None, Some("Promoted"))), None);
        assert_eq!(rollout_durations(&d(0, Some(10), None, None)), None);
        assert_eq!(
            rollout_durations(&d(0, Some(700), Some(200), Some("Promoted"))),
            Some(("Promoted".into(), 700.0, 500.0, 200.0))
        );
        m.rollout_duration(&d(0, Some(700), Some(200), Some("Promoted")));
        m.rollout_duration(&d(0, Some(20), None, Some("Promoted")));
        m.rollout_duration(&d(0, Some(45), None, Some("Aborted")));
        m.rollout_duration(&d(0, None, None, Some("Aborted")));
        let text = m.render();
        for want in [
            "# TYPE rollout_duration_seconds histogram",
            r#"rollout_duration_seconds_bucket{status="Promoted",le="30"} 1"#,
            r#"rollout_duration_seconds_bucket{status="Promoted",le="600"} 1"#,
            r#"rollout_duration_seconds_bucket{status="Promoted",le="1200"} 2"#,
            r#"rollout_duration_seconds_bucket{status="Promoted",le="+Inf"} 2"#,
            r#"rollout_duration_seconds_sum{status="Promoted"} 720.0"#,
            r#"rollout_duration_seconds_count{status="Aborted"} 1"#,
            "# TYPE rollout_progression_duration_seconds histogram",
            r#"rollout_progression_duration_seconds_bucket{status="Promoted",le="300"} 1"#,
            r#"rollout_progression_duration_seconds_bucket{status="Promoted",le="600"} 2"#,
            "# TYPE rollout_manual_pause_duration_seconds histogram",
            r#"rollout_manual_pause_duration_seconds_bucket{status="Promoted",le="0"} 1"#,
            r#"rollout_manual_pause_duration_seconds_bucket{status="Promoted",le="300"} 2"#,
            r#"rollout_manual_pause_duration_seconds_sum{status="Promoted"} 200.0"#,
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    #[tokio::test]
    async fn api_requests_are_counted_with_bounded_labels() {
        use tower::{Layer, Service, ServiceExt};
        let m = Metrics::new("x");
        let inner = tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(
                http::Response::builder().status(200).body(()).unwrap(),
            )
        });
        let mut svc = m.request_layer().layer(inner);
        for name in ["a", "b", "c"] {
            let path = format!("/apis/argoproj.io/v1alpha1/namespaces/prod/rollouts/{name}/status");
            // A request that never leaves: the inner service answers it.
            let req = http::Request::builder()
                .method(http::Method::PATCH)
                .uri(path)
                .body(())
                .unwrap();
            svc.ready().await.unwrap().call(req).await.unwrap();
        }
        let text = m.render();
        let want = r#"controller_clientset_k8s_request_total{kind="rollouts",namespace="prod",name="N/A",verb="Patch",status_code="200"} 3"#;
        assert!(
            text.contains("# TYPE controller_clientset_k8s_request_total counter"),
            "{text}"
        );
        assert!(text.contains(want), "missing {want:?} in\n{text}");
        // One series for three objects: no object name reaches a label.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("controller_clientset_k8s_request_total{"))
                .count(),
            1
        );
    }

    #[test]
    fn deleted_rollouts_disappear() {
        let m = Metrics::new("x");
        let ro = rollout("ns", "gone", serde_json::json!({"canary": {}}));
        let (store, mut w) = store_with(vec![ro.clone()]);
        m.watch_rollouts(store);
        drop(m.reconcile_timer(&ro));
        assert!(
            m.render()
                .contains(r#"rollout_info{namespace="ns",name="gone""#)
        );
        w.apply_watcher_event(&Event::Delete(ro.clone()));
        let text = m.render();
        assert!(!text.contains(r#"rollout_info{namespace="ns",name="gone""#));
        // The reconcile series stay for the cleanup delay, then go.
        assert!(text.contains(r#"rollout_reconcile_count{namespace="ns",name="gone"}"#));
        if let Ok(mut objs) = m.state.objects.lock() {
            for o in objs.values_mut() {
                o.gone_since = Some(Instant::now() - CLEANUP_DELAY - Duration::from_secs(1));
            }
        }
        assert!(!m.render().contains(r#"name="gone""#));
    }
}
