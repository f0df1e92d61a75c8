//! Apply a plan with the fewest writes: server-side apply to create a ReplicaSet, small merge
//! patches to resize or annotate one, a JSON merge patch of only the changed status fields
//! (guarded by resourceVersion so a stale cache can never overwrite a user's promote or abort).

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use tracing::{info, warn};

use super::{Context, Error};
use crate::api::analysis::AnalysisRun;
use crate::api::consts::ANNOTATION_REVISION;
use crate::api::consts::FIELD_MANAGER;
use crate::api::rollout::Rollout;
use crate::rollout::Plan;

/// A token bucket shared by all writes (`--qps`, `--burst`).
pub struct RateLimiter {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        RateLimiter {
            qps: qps.max(0.1),
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// Wait for one token.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut s = self.state.lock().await;
                let now = Instant::now();
                let refill = now.duration_since(s.1).as_secs_f64() * self.qps;
                s.0 = (s.0 + refill).min(self.burst);
                s.1 = now;
                if s.0 >= 1.0 {
                    s.0 -= 1.0;
                    return;
                }
                Duration::from_secs_f64((1.0 - s.0) / self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

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

fn params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Carry out `plan` for `ro`.
/// Carry out `plan`; returns the Rollout's resourceVersion after our last write to it, if any.
pub async fn apply(
    ctx: &Context,
    ro: &Rollout,
    ns: &str,
    plan: &Plan,
) -> Result<Option<String>, Error> {
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), ns);
    let ro_api: Api<Rollout> = Api::namespaced(ctx.client.clone(), ns);
    let name = ro.name_any();

    for a in &plan.adopt {
        // Guarded by uid and resourceVersion: a ReplicaSet changed or replaced since it was
        // observed is not claimed (the next reconcile sees it again).
        let patch = json!({"metadata": {
            "ownerReferences": a.owner_references,
            "uid": a.uid,
            "resourceVersion": a.resource_version,
        }});
        ctx.write_permit().await;
        rs_api
            .patch(&a.name, &params(), &Patch::Merge(&patch))
            .await?;
        info!(replicaset = %a.name, "adopted orphaned ReplicaSet");
    }
    if let Some(rs) = &plan.create {
        let rs_name = rs.name_any();
        ctx.write_permit().await;
        rs_api
            .patch(
                &rs_name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(rs),
            )
            .await?;
        info!(replicaset = %rs_name, "created ReplicaSet");
    }
    for u in &plan.updates {
        let mut patch = json!({});
        if !u.annotations.is_empty() {
            patch["metadata"] = json!({ "annotations": u.annotations });
        }
        if let Some(r) = u.replicas {
            patch["spec"]["replicas"] = json!(r);
        }
        if let Some(m) = u.min_ready_seconds {
            patch["spec"]["minReadySeconds"] = json!(m);
        }
        ctx.write_permit().await;
        match rs_api
            .patch(&u.name, &params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if not_found(&e) => {
                warn!(replicaset = %u.name, "ReplicaSet vanished before scaling")
            }
            Err(e) => return Err(e.into()),
        }
    }
    for d in &plan.deletes {
        ctx.write_permit().await;
        match rs_api.delete(d, &DeleteParams::background()).await {
            Ok(_) => info!(replicaset = %d, "deleted old ReplicaSet (revision history limit)"),
            Err(e) if not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    for pod in &plan.evict {
        ctx.write_permit().await;
        if evict(&ctx.client, ns, pod).await? {
            info!(pod = %pod, "evicted pod for restart");
        } else {
            warn!(pod = %pod, "eviction refused (disruption budget); retrying later");
        }
    }
    if !plan.create_runs.is_empty()
        || !plan.terminate_runs.is_empty()
        || !plan.delete_runs.is_empty()
    {
        let runs: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), ns);
        for run in &plan.create_runs {
            ctx.limiter.acquire().await;
            let n = run.name_any();
            runs.create(
                &PostParams {
                    field_manager: Some(FIELD_MANAGER.into()),
                    ..PostParams::default()
                },
                run,
            )
            .await?;
            info!(analysisrun = %n, "created AnalysisRun");
        }
        for n in &plan.terminate_runs {
            ctx.limiter.acquire().await;
            let patch = json!({ "spec": { "terminate": true } });
            match runs.patch(n, &params(), &Patch::Merge(&patch)).await {
                Ok(_) => info!(analysisrun = %n, "terminated AnalysisRun"),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for n in &plan.delete_runs {
            ctx.limiter.acquire().await;
            match runs.delete(n, &DeleteParams::background()).await {
                Ok(_) => info!(analysisrun = %n, "deleted AnalysisRun (history limit)"),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut resource_version = ro.resource_version();
    let mut wrote = None;
    if let Some(rev) = &plan.rollout_revision {
        ctx.write_permit().await;
        let patch = json!({ "metadata": { "annotations": { ANNOTATION_REVISION: rev } } });
        let updated = ro_api
            .patch(&name, &params(), &Patch::Merge(&patch))
            .await?;
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
            ctx.write_permit().await;
            match ro_api
                .patch_status(&name, &params(), &Patch::Merge(&patch))
                .await
            {
                Ok(updated) => wrote = updated.resource_version(),
                Err(e) => {
                    if !matches!(&e, kube::Error::Api(s) if s.code == 409) {
                        warn!(patch = %patch["status"], "status patch refused");
                    }
                    return Err(e.into());
                }
            }
            info!(patch = %patch["status"], "patched status");
        }
    }
    if !plan.events.is_empty() {
        let reference = ro.object_ref(&());
        for ev in &plan.events {
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
            if let Err(e) = ctx.recorder.publish(&event, &reference).await {
                // An event is informational: never fail a reconcile for it.
                warn!("could not record event {}: {e}", ev.reason);
            }
        }
    }
    Ok(wrote)
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

/// Evict a pod (honouring PodDisruptionBudgets): `policy/v1`, falling back to `policy/v1beta1`
/// on servers older than 1.22. A 429 (budget exhausted) is not an error: the pod is retried later.
async fn evict(client: &kube::Client, ns: &str, pod: &str) -> Result<bool, Error> {
    for version in ["policy/v1", "policy/v1beta1"] {
        let body = json!({"apiVersion": version, "kind": "Eviction", "metadata": {"name": pod, "namespace": ns}});
        let req = http::Request::post(format!("/api/v1/namespaces/{ns}/pods/{pod}/eviction"))
            .header("Content-Type", "application/json")
            .body(serde_json::to_vec(&body)?)
            .map_err(|e| Error::Kube(kube::Error::HttpError(e)))?;
        match client.request_text(req).await {
            Ok(_) => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 429 => return Ok(false),
            Err(kube::Error::Api(s)) if s.code == 404 && s.reason != "NotFound" => continue,
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(true),
            Err(kube::Error::Api(s)) if s.code == 400 && version == "policy/v1" => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(false)
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
