//! Apply a plan with the fewest writes: server-side apply to create a ReplicaSet, small merge
//! patches to resize or annotate one, a JSON merge patch of only the changed status fields
//! (guarded by resourceVersion so a stale cache can never overwrite a user's promote or abort).
//! Every write goes through the shared writer (`write.rs`): rate limit, leader fence, field manager.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tracing::{info, warn};

use super::{Context, Error};
use crate::api::analysis::AnalysisRun;
use crate::api::consts::{
    ANNOTATION_EPHEMERAL_METADATA, ANNOTATION_MANAGED_BY_ROLLOUTS, ANNOTATION_REVISION,
    LABEL_POD_TEMPLATE_HASH,
};
use crate::api::rollout::Rollout;
use crate::rollout::Plan;
use crate::rollout::effects::{MetaChanges, PlannedEvent, PodMetadataSync, ServiceChange};
use crate::rollout::status::create_failed;

/// The RFC 7386 merge patch that turns `old` into `new`; `None` when they are equal.
pub fn merge_diff(old: &Value, new: &Value) -> Option<Value> {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut out = Map::new();
            for (k, nv) in n {
                match o.get(k) {
                    Some(ov) => {
                        if let Some(d) = merge_diff(ov, nv) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), nv.clone());
                    }
                }
            }
            for k in o.keys() {
                if !n.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        _ if old == new => None,
        _ => Some(new.clone()),
    }
}

/// Carry out `plan` for `ro`.
/// Carry out `plan`; returns the Rollout's resourceVersion after our last write to it, if any.
pub async fn apply(
    ctx: &Context,
    ro: &Rollout,
    ns: &str,
    plan: &Plan,
) -> Result<Option<String>, Error> {
    let writer = &ctx.writer;
    let name = ro.name_any();

    for a in &plan.adopt {
        // Guarded by uid and resourceVersion: a ReplicaSet changed or replaced since it was
        // observed is not claimed (the next reconcile sees it again).
        let patch = json!({"metadata": {
            "ownerReferences": a.owner_references,
            "uid": a.uid,
            "resourceVersion": a.resource_version,
        }});
        writer
            .merge_patch::<ReplicaSet>(ns, &a.name, &patch)
            .await?;
        info!(replicaset = %a.name, "adopted orphaned ReplicaSet");
    }
    if let Some(rs) = &plan.create {
        let rs_name = rs.name_any();
        if let Err(e) = writer.apply(ns, rs).await {
            // What the API server refuses (an invalid pod template, a quota, an admission
            // webhook) must reach the Rollout, not only the log: Argo's ReplicaSetCreateError.
            if let Some(reason) = e.refusal() {
                let (status, event) = create_failed(ro, &rs_name, reason, jiff::Timestamp::now());
                let old = serde_json::to_value(ro.status.clone().unwrap_or_default())?;
                if let Some(diff) = merge_diff(&old, &serde_json::to_value(&status)?) {
                    let patch = json!({ "status": diff });
                    writer.patch_status::<Rollout>(ns, &name, &patch).await?;
                }
                record(ctx, ro, ns, std::slice::from_ref(&event)).await;
            }
            return Err(e);
        }
        info!(replicaset = %rs_name, "created ReplicaSet");
    }
    // Before any scaling: pods a scale-up creates must carry the metadata of their role.
    for s in &plan.pod_metadata {
        sync_pod_metadata(ctx, ns, s).await?;
    }
    for u in &plan.updates {
        let mut patch = json!({});
        if !u.annotations.is_empty() || !u.remove_annotations.is_empty() {
            let mut ann = json!(u.annotations);
            for k in &u.remove_annotations {
                ann[k.as_str()] = serde_json::Value::Null;
            }
            patch["metadata"] = json!({ "annotations": ann });
        }
        if let Some(r) = u.replicas {
            patch["spec"]["replicas"] = json!(r);
        }
        if let Some(m) = u.min_ready_seconds {
            patch["spec"]["minReadySeconds"] = json!(m);
        }
        if let Some(a) = &u.affinity {
            let (from, to) = (serde_json::to_value(&a.from)?, serde_json::to_value(&a.to)?);
            if let Some(d) = merge_diff(&from, &to) {
                patch["spec"]["template"]["spec"]["affinity"] = d;
            }
        }
        match writer.merge_patch::<ReplicaSet>(ns, &u.name, &patch).await {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {
                warn!(replicaset = %u.name, "ReplicaSet vanished before scaling")
            }
            Err(e) => return Err(e),
        }
    }
    for c in &plan.services {
        let patch = service_patch(c, &name);
        match writer.merge_patch::<Service>(ns, &c.name, &patch).await {
            Ok(_) => info!(service = %c.name, hash = ?c.hash, "switched Service selector"),
            Err(e) if e.is_not_found() => warn!(service = %c.name, "Service vanished"),
            Err(e) => return Err(e),
        }
    }
    if let Some(t) = &plan.traffic {
        apply_traffic(ctx, ro, ns, t).await?;
    }
    for d in &plan.deletes {
        if writer.delete::<ReplicaSet>(ns, d).await? {
            info!(replicaset = %d, "deleted old ReplicaSet (revision history limit)");
        }
    }
    for pod in &plan.evict {
        if writer.evict(ns, pod).await? {
            info!(pod = %pod, "evicted pod for restart");
        } else {
            warn!(pod = %pod, "eviction refused (disruption budget); retrying later");
        }
    }
    if !plan.create_runs.is_empty()
        || !plan.terminate_runs.is_empty()
        || !plan.delete_runs.is_empty()
    {
        for run in &plan.create_runs {
            let n = run.name_any();
            writer.create(ns, run).await?;
            info!(analysisrun = %n, "created AnalysisRun");
        }
        for n in &plan.terminate_runs {
            let patch = json!({ "spec": { "terminate": true } });
            match writer.merge_patch::<AnalysisRun>(ns, n, &patch).await {
                Ok(_) => info!(analysisrun = %n, "terminated AnalysisRun"),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for n in &plan.delete_runs {
            if writer.delete::<AnalysisRun>(ns, n).await? {
                info!(analysisrun = %n, "deleted AnalysisRun (history limit)");
            }
        }
    }
    let mut resource_version = ro.resource_version();
    let mut wrote = None;
    if let Some(replicas) = plan.default_replicas {
        // Guarded by resourceVersion: a user's own `spec.replicas` written meanwhile wins.
        let patch = json!({
            "metadata": { "resourceVersion": ro.resource_version() },
            "spec": { "replicas": replicas },
        });
        let updated = writer.merge_patch::<Rollout>(ns, &name, &patch).await?;
        resource_version = updated.resource_version();
        wrote = resource_version.clone();
    }
    if let Some(rev) = &plan.rollout_revision {
        let patch = json!({ "metadata": { "annotations": { ANNOTATION_REVISION: rev } } });
        let updated = writer.merge_patch::<Rollout>(ns, &name, &patch).await?;
        resource_version = updated.resource_version();
        wrote = resource_version.clone();
    }
    if let Some(status) = &plan.status {
        let old = serde_json::to_value(ro.status.clone().unwrap_or_default())?;
        let new = serde_json::to_value(status)?;
        if let Some(diff) = merge_diff(&old, &new) {
            let mut patch = json!({ "status": diff });
            if let Some(rv) = resource_version {
                patch["metadata"] = json!({ "resourceVersion": rv });
            }
            match writer.patch_status::<Rollout>(ns, &name, &patch).await {
                Ok(updated) => wrote = updated.resource_version(),
                Err(e) => {
                    if !e.is_conflict() {
                        warn!(patch = %patch["status"], "status patch refused");
                    }
                    return Err(e);
                }
            }
            info!(patch = %patch["status"], "patched status");
        }
    }
    // Written (or nothing to write): the attempt it finishes is observed exactly once.
    if let Some(d) = &plan.finished
        && let Some((status, total, progression, paused)) = crate::metrics::rollout_durations(d)
    {
        info!(
            status,
            total_seconds = total,
            progression_seconds = progression,
            manual_pause_seconds = paused,
            "rollout attempt finished"
        );
        ctx.settings.metrics.rollout_duration(d);
    }
    record(ctx, ro, ns, &plan.events).await;
    Ok(wrote)
}

/// Bring every router the Rollout names to the planned weights. A router that cannot be (its
/// object missing, malformed, its CRD not installed) is reported as a `TrafficRoutingError`
/// warning and fails the reconcile before the status is written, so no step is passed on a
/// weight that is not in place.
async fn apply_traffic(
    ctx: &Context,
    ro: &Rollout,
    ns: &str,
    plan: &crate::rollout::effects::TrafficPlan,
) -> Result<(), Error> {
    let Some(routing) = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
    else {
        return Ok(());
    };
    let cx = super::routers::RouterCtx {
        client: &ctx.client,
        writer: &ctx.writer,
        rollout: ro,
        namespace: ns,
        smi_version: ctx.settings.smi_version,
    };
    for router in super::routers::routers_for(routing) {
        match router.apply(&cx, plan).await {
            Ok(0) => {}
            Ok(n) => info!(
                router = router.name(),
                writes = n,
                canary_weight = plan.canary_weight,
                "set traffic weights"
            ),
            Err(super::routers::RouterError::Api(e)) => return Err(e),
            Err(e) => {
                let msg = format!("{}: {e}", router.name());
                let event = PlannedEvent {
                    warning: true,
                    reason: "TrafficRoutingError".into(),
                    message: msg.clone(),
                };
                record(ctx, ro, ns, std::slice::from_ref(&event)).await;
                return Err(Error::Traffic(msg));
            }
        }
    }
    Ok(())
}

/// The merge patch of one Service change: the hash selector (and our managed-by annotation), or
/// both removed.
fn service_patch(c: &ServiceChange, rollout: &str) -> serde_json::Value {
    match &c.hash {
        Some(hash) => {
            let mut p = json!({ "spec": { "selector": { LABEL_POD_TEMPLATE_HASH: hash } } });
            if c.annotate {
                p["metadata"] =
                    json!({ "annotations": { ANNOTATION_MANAGED_BY_ROLLOUTS: rollout } });
            }
            p
        }
        None => json!({
            "metadata": { "annotations": { ANNOTATION_MANAGED_BY_ROLLOUTS: null } },
            "spec": { "selector": { LABEL_POD_TEMPLATE_HASH: null } },
        }),
    }
}

/// Publish events against the Rollout (best-effort: the writer never fails a reconcile for one).
async fn record(ctx: &Context, ro: &Rollout, ns: &str, events: &[PlannedEvent]) {
    let reference = ro.object_ref(&());
    let name = ro.name_any();
    for ev in events {
        let event = Event {
            type_: if ev.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: ev.reason.clone(),
            note: Some(ev.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        info!(reason = %ev.reason, "{}", ev.message);
        let type_ = if ev.warning { "Warning" } else { "Normal" };
        ctx.settings.metrics.event(ns, &name, type_, &ev.reason);
        ctx.writer.event(&reference, &event).await;
    }
}

/// The pods of a Rollout's ReplicaSets: one list by the Rollout's selector, owner-filtered.
pub async fn rollout_pods(
    client: &kube::Client,
    ns: &str,
    ro: &Rollout,
    replica_sets: &[k8s_openapi::api::apps::v1::ReplicaSet],
) -> Result<Vec<k8s_openapi::api::core::v1::Pod>, Error> {
    use k8s_openapi::api::core::v1::Pod;
    let selector = ro
        .spec
        .selector
        .as_ref()
        .map(crate::api::selector::format_selector)
        .unwrap_or_default();
    let uids: Vec<String> = replica_sets
        .iter()
        .filter_map(|rs| rs.metadata.uid.clone())
        .collect();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| uids.contains(&o.uid))
        })
        .collect())
}

/// The pods of one ReplicaSet: one list by its selector (which carries its pod-template hash),
/// owner-filtered.
pub async fn replica_set_pods(
    client: &kube::Client,
    ns: &str,
    rs: &ReplicaSet,
) -> Result<Vec<k8s_openapi::api::core::v1::Pod>, Error> {
    use k8s_openapi::api::core::v1::Pod;
    let selector = crate::api::selector::format_selector(&rs.spec.selector);
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pods = api
        .list(&kube::api::ListParams::default().labels(&selector))
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .collect())
}

/// `{key: value}` for what to set and `{key: null}` for what to remove: a merge patch's map.
fn meta_patch(changes: &MetaChanges) -> Value {
    Value::Object(
        changes
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(Value::Null, |v| json!(v))))
            .collect(),
    )
}

/// Ephemeral metadata, per ReplicaSet in this order: its template (so that pods created from
/// now on carry it), its pods, then its record annotation (which says the pods are done).
async fn sync_pod_metadata(ctx: &Context, ns: &str, s: &PodMetadataSync) -> Result<(), Error> {
    use k8s_openapi::api::core::v1::Pod;
    let writer = &ctx.writer;
    let record = s
        .record
        .as_ref()
        .map(|r| json!({ ANNOTATION_EPHEMERAL_METADATA: r }));
    let mut rs_patch = json!({});
    if !s.template_labels.is_empty() {
        rs_patch["spec"]["template"]["metadata"]["labels"] = meta_patch(&s.template_labels);
    }
    if !s.template_annotations.is_empty() {
        rs_patch["spec"]["template"]["metadata"]["annotations"] =
            meta_patch(&s.template_annotations);
    }
    // With no pods to patch in between, the record goes with the template.
    let record_now = s.pods.is_empty();
    if record_now && let Some(r) = &record {
        rs_patch["metadata"]["annotations"] = r.clone();
    }
    if rs_patch != json!({}) {
        match writer
            .merge_patch::<ReplicaSet>(ns, &s.replica_set, &rs_patch)
            .await
        {
            Ok(_) => info!(replicaset = %s.replica_set, "synced ephemeral metadata"),
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    for p in &s.pods {
        match writer.replace::<Pod>(ns, &p.pod).await {
            Ok(_) => info!(pod = %p.name, "synced ephemeral metadata"),
            // Gone: nothing to label. Changed meanwhile (409): the record is not written, so
            // the next reconcile lists the pods again.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    if !record_now && let Some(r) = record {
        let patch = json!({ "metadata": { "annotations": r } });
        match writer
            .merge_patch::<ReplicaSet>(ns, &s.replica_set, &patch)
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_diff_minimal() {
        let old = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": [1, 2], "gone": true});
        let new = json!({"a": 1, "b": {"c": 2, "d": 4}, "e": [1, 2, 3], "added": "x"});
        assert_eq!(
            merge_diff(&old, &new),
            Some(json!({"b": {"d": 4}, "e": [1, 2, 3], "added": "x", "gone": null}))
        );
        assert_eq!(merge_diff(&old, &old), None);
    }
}
