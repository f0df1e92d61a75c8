//! Observe: read one Rollout's snapshot out of the reflector caches (and, only while a restart
//! is due or a ReplicaSet's ephemeral metadata is out of date, pods from the API). The planner
//! decides everything; this module only asks it which names to look up (`classify::wanted_name`)
//! and which pods are needed (`restart::restart_due`, `ephemeral::pods_needed`).

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use super::{Context, Error, apply};
use crate::analysis::templates::nested_refs;
use crate::api::analysis::{AnalysisRun, AnalysisTemplate, ClusterAnalysisTemplate};
use crate::api::rollout::Rollout;
use crate::rollout::Observed;
use crate::rollout::classify::wanted_name;
use crate::rollout::ephemeral::pods_needed;
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
    services: Vec<Service>,
    missing_routers: Vec<(String, String, String)>,
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
            services: &self.services,
            missing_routers: &self.missing_routers,
        }
    }
}

/// The templates the Rollout names and, through `spec.templates`, every template those nest,
/// from the caches. A missing one is simply absent: the planner reports it.
fn templates_of(
    ctx: &Context,
    ro: &Rollout,
    ns: &str,
) -> (Vec<AnalysisTemplate>, Vec<ClusterAnalysisTemplate>) {
    let (names, cluster_names) = referenced_templates(ro);
    let mut todo: Vec<(String, bool)> = names
        .into_iter()
        .map(|n| (n, false))
        .chain(cluster_names.into_iter().map(|n| (n, true)))
        .collect();
    let (mut templates, mut cluster_templates): (
        Vec<AnalysisTemplate>,
        Vec<ClusterAnalysisTemplate>,
    ) = (Vec::new(), Vec::new());
    let mut seen: Vec<(String, bool)> = Vec::new();
    while let Some((name, cluster)) = todo.pop() {
        if seen.contains(&(name.clone(), cluster)) {
            continue;
        }
        seen.push((name.clone(), cluster));
        let nested = if cluster {
            let Some(t) = ctx
                .cluster_templates
                .as_ref()
                .and_then(|s| s.get(&ObjectRef::new(&name)))
            else {
                continue;
            };
            let nested = nested_refs(&t.spec.0);
            cluster_templates.push((*t).clone());
            nested
        } else {
            let Some(t) = ctx.templates.get(&ObjectRef::new(&name).within(ns)) else {
                continue;
            };
            let nested = nested_refs(&t.spec);
            templates.push((*t).clone());
            nested
        };
        todo.extend(nested);
    }
    (templates, cluster_templates)
}

/// The Services the Rollout names and those still marked as managed by it, from the cache.
fn services_of(ctx: &Context, ro: &Rollout, ns: &str) -> Vec<Service> {
    let mut out = ctx
        .managed_services
        .owned_by(&ctx.services, ns, &ro.name_any());
    for (_, name) in crate::rollout::services::named(ro) {
        if out
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(name.as_str()))
        {
            continue;
        }
        if let Some(s) = ctx.services.get(&ObjectRef::new(&name).within(ns)) {
            out.push((*s).clone());
        }
    }
    out
}

/// The router objects the Rollout names that do not exist (one live read each; only for a
/// Rollout that routes traffic). A router kind the API server does not serve counts as missing.
async fn missing_routers(
    ctx: &Context,
    ro: &Rollout,
    ns: &str,
) -> Result<Vec<(String, String, String)>, Error> {
    let mut out = Vec::new();
    for (path, group, plural, obj_ns, name) in crate::rollout::observed::router_objects(ro) {
        // Argo's `--istio-api-version` default.
        let version = "v1alpha3";
        let resource = kube::api::ApiResource {
            group: group.clone(),
            version: version.to_string(),
            api_version: format!("{group}/{version}"),
            kind: String::new(),
            plural: plural.clone(),
        };
        let obj_ns = if obj_ns.is_empty() {
            ns
        } else {
            obj_ns.as_str()
        };
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(ctx.client.clone(), obj_ns, &resource);
        if api.get_opt(&name).await?.is_none() {
            out.push((path, format!("{plural}.{group}"), name));
        }
    }
    Ok(out)
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
    let (templates, cluster_templates) = templates_of(ctx, ro, ns);
    // Pods are read only while a restart is due (all of them) or while a ReplicaSet's pods may
    // lack the metadata of its role (those of that ReplicaSet): label-selected lists, never a
    // cache.
    let pods = if restart_due(ro, now) {
        Some(apply::rollout_pods(&ctx.client, ns, ro, &replica_sets).await?)
    } else {
        let needed = pods_needed(ro, &replica_sets);
        let mut pods = Vec::new();
        for rs in replica_sets
            .iter()
            .filter(|rs| needed.contains(&rs.name_any()))
        {
            pods.extend(apply::replica_set_pods(&ctx.client, ns, rs).await?);
        }
        (!needed.is_empty()).then_some(pods)
    };
    Ok(Snapshot {
        missing_routers: missing_routers(ctx, ro, ns).await?,
        services: services_of(ctx, ro, ns),
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
