//! Getting the objects of one rollout's tree: a one-shot fetch for `get rollout`, and kube
//! watchers for `--watch` (the Rollout by field selector, its ReplicaSets and Pods by the
//! rollout's label selector, AnalysisRuns of the namespace when that CRD exists). Nothing polls.

use std::collections::BTreeMap;

use futures::StreamExt;
use futures::stream::{BoxStream, select_all};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};

use crate::api::rollout::Rollout;
use crate::api::selector::format_selector;
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, rollout_error};
use crate::cli::tree::{AnalysisRunInfo, View};

/// Everything one frame of the tree shows.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub rollout: Option<Rollout>,
    pub replica_sets: Vec<ReplicaSet>,
    pub pods: Vec<Pod>,
    pub analysis_runs: Vec<AnalysisRunInfo>,
}

impl Snapshot {
    pub fn view(&self) -> Option<View<'_>> {
        Some(View {
            rollout: self.rollout.as_ref()?,
            replica_sets: &self.replica_sets,
            pods: &self.pods,
            analysis_runs: &self.analysis_runs,
        })
    }
}

/// The label selector that finds a rollout's ReplicaSets and Pods: `spec.selector`, else the
/// `status.selector` the controller publishes (workloadRef rollouts).
pub fn selector_of(ro: &Rollout) -> Option<String> {
    ro.spec
        .selector
        .as_ref()
        .map(format_selector)
        .filter(|s| s != "<none>")
        .or_else(|| ro.status.as_ref().and_then(|s| s.selector.clone()))
        .filter(|s| !s.is_empty())
}

fn analysis_runs_api(ctx: &Ctx) -> Api<DynamicObject> {
    ctx.dynamic("argoproj.io", "v1alpha1", "AnalysisRun", "analysisruns")
}

/// AnalysisRuns of the namespace, or `None` when the AnalysisRun CRD is not installed or the
/// user may not list them (the tree is still worth showing without them).
async fn list_analysis_runs(ctx: &Ctx) -> Result<Option<Vec<DynamicObject>>, CliError> {
    match analysis_runs_api(ctx).list(&ListParams::default()).await {
        Ok(list) => Ok(Some(list.items)),
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 403 => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// One consistent-enough read of the tree (used without `--watch`).
pub async fn fetch(ctx: &Ctx, name: &str) -> Result<Snapshot, CliError> {
    let ro = ctx
        .rollouts()
        .get(name)
        .await
        .map_err(|e| rollout_error(e, name, &ctx.namespace))?;
    let mut snap = Snapshot::default();
    if let Some(sel) = selector_of(&ro) {
        let lp = ListParams::default().labels(&sel);
        let rss: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        snap.replica_sets = rss.list(&lp).await?.items;
        let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
        snap.pods = pods.list(&lp).await?.items;
    }
    snap.analysis_runs = list_analysis_runs(ctx)
        .await?
        .unwrap_or_default()
        .iter()
        .map(|o| AnalysisRunInfo::from_json(&serde_json::to_value(o).unwrap_or_default()))
        .collect();
    snap.rollout = Some(ro);
    Ok(snap)
}

/// A watcher-fed map of one kind's objects, keyed by name. It becomes ready after the first
/// complete listing, so a frame never shows half a list.
#[derive(Debug)]
pub struct Cache<K> {
    items: BTreeMap<String, K>,
    relist: Option<BTreeMap<String, K>>,
    ready: bool,
}

impl<K> Default for Cache<K> {
    fn default() -> Self {
        Cache {
            items: BTreeMap::new(),
            relist: None,
            ready: false,
        }
    }
}

impl<K: Resource + Clone> Cache<K> {
    pub fn apply(&mut self, ev: Event<K>) {
        match ev {
            Event::Init => self.relist = Some(BTreeMap::new()),
            Event::InitApply(k) => {
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k.name_any(), k);
            }
            Event::InitDone => {
                self.items = self.relist.take().unwrap_or_default();
                self.ready = true;
            }
            Event::Apply(k) => {
                self.items.insert(k.name_any(), k);
            }
            Event::Delete(k) => {
                self.items.remove(&k.name_any());
            }
        }
    }

    pub fn ready(&self) -> bool {
        self.ready
    }

    pub fn values(&self) -> impl Iterator<Item = &K> {
        self.items.values()
    }
}

/// One watcher event of any of the watched kinds.
pub enum Change {
    Rollout(Box<Event<Rollout>>),
    ReplicaSet(Box<Event<ReplicaSet>>),
    Pod(Box<Event<Pod>>),
    AnalysisRun(Box<Event<DynamicObject>>),
}

fn watch<K, F>(api: Api<K>, cfg: watcher::Config, wrap: F) -> BoxStream<'static, Change>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    F: Fn(Event<K>) -> Change + Send + 'static,
{
    // Transport errors are retried with backoff inside the stream; a frame keeps showing the
    // last known state meanwhile.
    watcher::watcher(api, cfg)
        .default_backoff()
        .filter_map(move |r| futures::future::ready(r.ok().map(&wrap)))
        .boxed()
}

/// Live state of one rollout's tree.
pub struct TreeWatch {
    name: String,
    rollout: Cache<Rollout>,
    replica_sets: Cache<ReplicaSet>,
    pods: Cache<Pod>,
    analysis_runs: Option<Cache<DynamicObject>>,
    changes: BoxStream<'static, Change>,
}

impl TreeWatch {
    /// Start the watchers. Fails at once when the rollout does not exist.
    pub async fn start(ctx: &Ctx, name: &str) -> Result<TreeWatch, CliError> {
        let ro = ctx
            .rollouts()
            .get(name)
            .await
            .map_err(|e| rollout_error(e, name, &ctx.namespace))?;
        let mut streams = vec![watch(
            ctx.rollouts(),
            watcher::Config::default().fields(&format!("metadata.name={name}")),
            |e| Change::Rollout(Box::new(e)),
        )];
        let (mut rss, mut pods) = (Cache::default(), Cache::default());
        match selector_of(&ro) {
            Some(sel) => {
                let cfg = watcher::Config::default().labels(&sel);
                streams.push(watch(
                    Api::namespaced(ctx.client.clone(), &ctx.namespace),
                    cfg.clone(),
                    |e| Change::ReplicaSet(Box::new(e)),
                ));
                streams.push(watch(
                    Api::namespaced(ctx.client.clone(), &ctx.namespace),
                    cfg,
                    |e| Change::Pod(Box::new(e)),
                ));
            }
            None => {
                // Nothing to select by: the tree has only the rollout.
                rss.ready = true;
                pods.ready = true;
            }
        }
        let analysis_runs = match list_analysis_runs(ctx).await? {
            Some(_) => {
                streams.push(watch(
                    analysis_runs_api(ctx),
                    watcher::Config::default(),
                    |e| Change::AnalysisRun(Box::new(e)),
                ));
                Some(Cache::default())
            }
            None => None,
        };
        Ok(TreeWatch {
            name: name.to_string(),
            rollout: Cache::default(),
            replica_sets: rss,
            pods,
            analysis_runs,
            changes: select_all(streams).boxed(),
        })
    }

    /// Wait for the next watch event and fold it in; `None` when every watch has ended.
    pub async fn next(&mut self) -> Option<()> {
        match self.changes.next().await? {
            Change::Rollout(e) => self.rollout.apply(*e),
            Change::ReplicaSet(e) => self.replica_sets.apply(*e),
            Change::Pod(e) => self.pods.apply(*e),
            Change::AnalysisRun(e) => {
                if let Some(c) = self.analysis_runs.as_mut() {
                    c.apply(*e);
                }
            }
        }
        Some(())
    }

    /// Every cache has seen its first complete listing.
    pub fn ready(&self) -> bool {
        self.rollout.ready()
            && self.replica_sets.ready()
            && self.pods.ready()
            && self.analysis_runs.as_ref().is_none_or(Cache::ready)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            rollout: self.rollout.items.get(&self.name).cloned(),
            replica_sets: self.replica_sets.values().cloned().collect(),
            pods: self.pods.values().cloned().collect(),
            analysis_runs: self
                .analysis_runs
                .iter()
                .flat_map(Cache::values)
                .map(|o| AnalysisRunInfo::from_json(&serde_json::to_value(o).unwrap_or_default()))
                .collect(),
        }
    }

    /// Identity of the current state: changes whenever any watched object changes.
    pub fn signature(&self) -> Vec<(String, Option<String>)> {
        fn sig<K: Resource>(c: &Cache<K>, kind: &str) -> Vec<(String, Option<String>)> {
            c.items
                .values()
                .map(|o| {
                    (
                        format!("{kind}/{}", o.meta().name.clone().unwrap_or_default()),
                        o.meta().resource_version.clone(),
                    )
                })
                .collect()
        }
        let mut s = sig(&self.rollout, "ro");
        s.extend(sig(&self.replica_sets, "rs"));
        s.extend(sig(&self.pods, "pod"));
        if let Some(c) = &self.analysis_runs {
            s.extend(sig(c, "ar"));
        }
        s
    }
}
