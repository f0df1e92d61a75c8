//! Observe: read one Rollout's snapshot out of the reflector caches (and, only while a restart
//! is due, its pods from the API). The planner decides everything; this module only asks it
//! which names to look up (`classify::wanted_name`) and whether pods are needed
//! (`restart::restart_due`).

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::{Context, Error, apply};
use crate::api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use crate::api::rollout::Rollout;
use crate::rollout::Observed;
use crate::rollout::classify::wanted_name;
use crate::rollout::observed::{referenced_templates, runs_to_look_up};
use crate::rollout::restart::restart_due;

/// What `Observed` borrows, owned.
pub struct Snapshot<'a> {
    rollout: &'a Rollout,
    replica_sets: Vec<ReplicaSet>,
    orphans: Vec<ReplicaSet>,
    same_name: Option<ReplicaSet>,
    runs: Vec<AnalysisRun>,
    gone_runs: Vec<String>,
    templates: Vec<AnalysisTemplate>,
    cluster_templates: Vec<ClusterAnalysisTemplate>,
    pods: Option<Vec<Pod>>,
}

impl Snapshot<'_> {
    pub fn observed(&self) -> Observed<'_> {
        Observed {
            rollout: self.rollout,
            replica_sets: &self.replica_sets,
            analysis_runs: &self.runs,
            gone_runs: &self.gone_runs,
            templates: &self.templates,
            cluster_templates: &self.cluster_templates,
            pods: self.pods.as_deref(),
            orphans: &self.orphans,
            same_name: self.same_name.as_ref(),
        }
    }
}

/// Read the snapshot of `ro` in namespace `ns` at `now`.
pub async fn observe<'a>(
    ctx: &Context,
    ro: &'a Rollout,
    ns: &str,
    now: jiff::Timestamp,
) -> Result<Snapshot<'a>, Error> {
    let uid = ro.uid().unwrap_or_default();
    let replica_sets = ctx.owners.owned_by(&ctx.replica_sets, ns, &uid);
    // Objects without a controller are indexed under the empty uid.
    let orphans = ctx.owners.owned_by(&ctx.replica_sets, ns, "");
    let same_name = ctx
        .replica_sets
        .get(&ObjectRef::new(&wanted_name(ro)).within(ns))
        .map(|rs| (*rs).clone());
    let runs = ctx.run_owners.owned_by(&ctx.runs, ns, &uid);
    // A run the status names but the cache lacks is read live (rare: just created, or deleted).
    let mut gone_runs = Vec::new();
    for name in runs_to_look_up(ro, &runs) {
        let api: kube::Api<AnalysisRun> = kube::Api::namespaced(ctx.client.clone(), ns);
        if api.get_opt(&name).await?.is_none() {
            gone_runs.push(name);
        }
    }
    let (names, cluster_names) = referenced_templates(ro);
    let templates = names
        .iter()
        .filter_map(|n| ctx.templates.get(&ObjectRef::new(n).within(ns)))
        .map(|t| (*t).clone())
        .collect();
    let cluster_templates = match &ctx.cluster_templates {
        Some(store) => cluster_names
            .iter()
            .filter_map(|n| store.get(&ObjectRef::new(n)))
            .map(|t| (*t).clone())
            .collect(),
        None => Vec::new(),
    };
    // Pods are read only while a restart is due: one label-selected list, never a cache.
    let pods = if restart_due(ro, now) {
        Some(apply::rollout_pods(&ctx.client, ns, ro, &replica_sets).await?)
    } else {
        None
    };
    Ok(Snapshot {
        rollout: ro,
        replica_sets,
        orphans,
        same_name,
        runs,
        gone_runs,
        templates,
        cluster_templates,
        pods,
    })
}
