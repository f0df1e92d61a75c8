//! The snapshot the planner sees: the Rollout, the ReplicaSets it owns and the analysis objects
//! it names, read from caches by `controller::observe`.

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};

use crate::api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use crate::api::consts::*;
use crate::api::rollout::{Rollout, RolloutAnalysis};
use crate::rollout::replicas::RsCounts;

/// Everything `plan` needs; no handles, no clocks.
#[derive(Clone, Debug)]
pub struct Observed<'a> {
    pub rollout: &'a Rollout,
    /// ReplicaSets whose controller owner reference is this Rollout.
    pub replica_sets: &'a [ReplicaSet],
    /// AnalysisRuns whose controller owner reference is this Rollout.
    pub analysis_runs: &'a [AnalysisRun],
    /// Runs the status names that are missing from the cache and that a live read found deleted
    /// (`runs_to_look_up` says which to read).
    pub gone_runs: &'a [String],
    /// The AnalysisTemplates the Rollout references (those that exist).
    pub templates: &'a [AnalysisTemplate],
    /// The ClusterAnalysisTemplates the Rollout references (those that exist).
    pub cluster_templates: &'a [ClusterAnalysisTemplate],
    /// Pods, read only while a restart is due (all of the Rollout's: `restart::restart_due`) or
    /// while ReplicaSets' pods may lack their role's metadata (theirs: `ephemeral::pods_needed`).
    pub pods: Option<&'a [Pod]>,
    /// ReplicaSets of the namespace without a controller owner (candidates for adoption).
    pub orphans: &'a [ReplicaSet],
    /// The cached ReplicaSet, whoever owns it, named as the new revision's ReplicaSet would be
    /// (`classify::wanted_name`), to tell a hash collision.
    pub same_name: Option<&'a ReplicaSet>,
    /// The Services of the namespace the Rollout names (`services::named`) or manages (their
    /// `managed-by-rollouts` annotation names it), those that exist.
    pub services: &'a [Service],
    /// Router objects the Rollout names that a read found missing, as (field path, resource,
    /// name) — e.g. `("spec.strategy.canary.trafficRouting.istio.virtualService.name",
    /// "virtualservices.networking.istio.io", "vs")` (`router_objects` says which to read).
    pub missing_routers: &'a [(String, String, String)],
}

impl<'a> Observed<'a> {
    /// A Rollout and its ReplicaSets, with no analysis objects.
    pub fn new(rollout: &'a Rollout, replica_sets: &'a [ReplicaSet]) -> Self {
        Observed {
            rollout,
            replica_sets,
            analysis_runs: &[],
            gone_runs: &[],
            templates: &[],
            cluster_templates: &[],
            pods: None,
            orphans: &[],
            same_name: None,
            services: &[],
            missing_routers: &[],
        }
    }
}

/// The runs the Rollout's status names that are missing from `cached`: the observe step reads
/// each live to tell a run the cache has not caught up with from one that was deleted.
pub fn runs_to_look_up(ro: &Rollout, cached: &[AnalysisRun]) -> Vec<String> {
    let canary = ro.status.as_ref().and_then(|s| s.canary.as_ref());
    let bg = ro.status.as_ref().and_then(|s| s.blue_green.as_ref());
    [
        canary.and_then(|c| c.current_step_analysis_run_status.as_ref()),
        canary.and_then(|c| c.current_background_analysis_run_status.as_ref()),
        bg.and_then(|b| b.pre_promotion_analysis_run_status.as_ref()),
        bg.and_then(|b| b.post_promotion_analysis_run_status.as_ref()),
    ]
    .into_iter()
    .flatten()
    .map(|r| r.name.clone())
    .filter(|n| !n.is_empty())
    .filter(|n| !cached.iter().any(|r| r.metadata.name.as_ref() == Some(n)))
    .collect()
}

/// The analysis templates a Rollout references: (namespaced names, cluster-scoped names).
pub fn referenced_templates(ro: &Rollout) -> (Vec<String>, Vec<String>) {
    let mut ns = Vec::new();
    let mut cluster = Vec::new();
    for (_, a) in rollout_analyses(ro) {
        for t in a.templates.iter().flatten() {
            let name = t.template_name.clone().unwrap_or_default();
            let list = if t.cluster_scope.unwrap_or(false) {
                &mut cluster
            } else {
                &mut ns
            };
            if !list.contains(&name) {
                list.push(name);
            }
        }
    }
    (ns, cluster)
}

/// The router objects a Rollout names that must exist, as (field path, API group, plural,
/// namespace or "" for the Rollout's, name), in Argo's order (`GetReferencedVirtualServices`).
pub fn router_objects(ro: &Rollout) -> Vec<(String, String, String, String, String)> {
    let mut out = Vec::new();
    let Some(istio) = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.istio.as_ref())
    else {
        return out;
    };
    let base = "spec.strategy.canary.trafficRouting.istio";
    let (list, path): (Vec<&str>, String) = match &istio.virtual_services {
        Some(v) if !v.is_empty() => (
            v.iter().map(|s| s.name.as_str()).collect(),
            format!("{base}.virtualServices.name"),
        ),
        _ => (
            istio
                .virtual_service
                .iter()
                .map(|s| s.name.as_str())
                .collect(),
            format!("{base}.virtualService.name"),
        ),
    };
    for full in list {
        let (name, ns) = split_istio_name(full);
        out.push((
            path.clone(),
            "networking.istio.io".into(),
            "virtualservices".into(),
            ns.to_string(),
            name.to_string(),
        ));
    }
    out
}

/// Argo's `GetVirtualServiceNamespaceName`: `name.namespace`, or a bare name.
pub fn split_istio_name(full: &str) -> (&str, &str) {
    full.split_once('.').unwrap_or((full, ""))
}

/// What a Rollout analyses, in Argo's order (blue-green pre- then post-promotion; canary
/// background then steps), with each one's `templates` field path.
pub fn rollout_analyses(ro: &Rollout) -> Vec<(String, &RolloutAnalysis)> {
    let mut out = Vec::new();
    if let Some(bg) = ro.spec.strategy.blue_green.as_ref() {
        let base = "spec.strategy.blueGreen";
        if let Some(a) = &bg.pre_promotion_analysis {
            out.push((format!("{base}.prePromotionAnalysis.templates"), a));
        }
        if let Some(a) = &bg.post_promotion_analysis {
            out.push((format!("{base}.postPromotionAnalysis.templates"), a));
        }
    } else if let Some(canary) = ro.spec.strategy.canary.as_ref() {
        let base = "spec.strategy.canary";
        if let Some(b) = &canary.analysis {
            out.push((format!("{base}.analysis.templates"), &b.rollout_analysis));
        }
        for (i, s) in canary.steps.iter().flatten().enumerate() {
            if let Some(a) = &s.analysis {
                out.push((format!("{base}.steps[{i}].analysis.templates"), a));
            }
        }
    }
    out
}

/// Read-only accessors over a ReplicaSet, with Kubernetes' defaults applied.
pub trait RsExt {
    fn name(&self) -> &str;
    fn hash(&self) -> Option<&str>;
    fn spec_replicas(&self) -> i32;
    fn status_replicas(&self) -> i32;
    fn ready(&self) -> i32;
    fn available(&self) -> i32;
    fn revision(&self) -> Option<i64>;
    fn annotations(&self) -> BTreeMap<String, String>;
    fn created(&self) -> Option<Timestamp>;
    fn deleting(&self) -> bool;
    fn counts(&self) -> RsCounts;
}

impl RsExt for ReplicaSet {
    fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }
    fn hash(&self) -> Option<&str> {
        self.metadata
            .labels
            .as_ref()?
            .get(LABEL_POD_TEMPLATE_HASH)
            .map(String::as_str)
    }
    fn spec_replicas(&self) -> i32 {
        self.spec.replicas.unwrap_or(1)
    }
    fn status_replicas(&self) -> i32 {
        self.status.as_ref().map_or(0, |s| s.replicas)
    }
    fn ready(&self) -> i32 {
        self.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
    }
    fn available(&self) -> i32 {
        self.status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0)
    }
    fn revision(&self) -> Option<i64> {
        self.metadata
            .annotations
            .as_ref()?
            .get(ANNOTATION_REVISION)?
            .parse()
            .ok()
    }
    fn annotations(&self) -> BTreeMap<String, String> {
        self.metadata.annotations.clone().unwrap_or_default()
    }
    fn created(&self) -> Option<Timestamp> {
        self.metadata.creation_timestamp.as_ref().map(|t| t.0)
    }
    fn deleting(&self) -> bool {
        self.metadata.deletion_timestamp.is_some()
    }
    fn counts(&self) -> RsCounts {
        RsCounts {
            spec: self.spec_replicas(),
            status_replicas: self.status_replicas(),
            available: self.available(),
        }
    }
}
