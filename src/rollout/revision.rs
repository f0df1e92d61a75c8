//! Revisions, shared by both strategies (Argo's `getAllReplicaSetsAndSyncRevision` and
//! `cleanupRollouts`): create the new ReplicaSet or keep its revision annotations and
//! minReadySeconds right, keep the Rollout's revision annotation, collect old ReplicaSets past
//! `revisionHistoryLimit`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use crate::api::consts::*;
use crate::api::rollout::Rollout;
use crate::rollout::classify::{Classified, desired_template, owner_reference};
use crate::rollout::ctx::Ctx;
use crate::rollout::effects::AffinityChange;
use crate::rollout::observed::RsExt;
use crate::rollout::{affinity, ephemeral};

/// Rollout annotations that are not copied onto its ReplicaSets.
const NOT_COPIED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    ANNOTATION_REVISION,
    ANNOTATION_REVISION_HISTORY,
    ANNOTATION_DESIRED_REPLICAS,
    "notified.notifications.argoproj.io",
];

/// Create the new ReplicaSet if missing (only when `create`: Argo's
/// `getAllReplicaSetsAndSyncRevision(createIfNotExisted)`) and keep the revision annotations
/// right. Events in Argo's order: `RolloutUpdated`, then `NewReplicaSetCreated`.
pub fn sync_revision(cx: &mut Ctx, create: bool) {
    let revision = cx.rs.new_revision.to_string();
    if cx.rs.creating && !create {
        // Nothing to stamp a revision on yet: the ReplicaSet is created next reconcile.
        return;
    }
    let current = cx
        .ro
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_REVISION));
    if current != Some(&revision) {
        cx.plan.rollout_revision = Some(revision.clone());
        cx.event(
            false,
            REASON_ROLLOUT_UPDATED,
            format!("Rollout updated to revision {revision}"),
        );
    }
    if cx.rs.creating {
        let rs = build_replica_set(cx.ro, &cx.rs, cx.stable_hash(), cx.replicas, &revision);
        cx.plan.create = Some(rs);
        let msg = format!(
            "Created ReplicaSet {} (revision {revision})",
            cx.rs.new_name
        );
        cx.event(false, REASON_NEW_REPLICA_SET_CREATED, msg);
    } else if let Some(rs) = cx.rs.new_rs {
        // Argo's `syncReplicaSetRevision` also keeps minReadySeconds in step: it is not part
        // of the pod template, so a change to it makes no new revision.
        let min_ready = cx.ro.spec.min_ready_seconds.unwrap_or(0);
        let rs_min_ready = rs.spec.min_ready_seconds;
        if rs_min_ready.unwrap_or(0) != min_ready {
            cx.plan.update_for(rs.name()).min_ready_seconds = Some(min_ready);
        }
        let old = rs.revision();
        if old.is_none_or(|o| o < cx.rs.new_revision) {
            let mut ann = BTreeMap::new();
            ann.insert(ANNOTATION_REVISION.to_string(), revision.clone());
            if let Some(o) = old {
                let history = rs.annotations().get(ANNOTATION_REVISION_HISTORY).cloned();
                let h = match history {
                    Some(h) if !h.is_empty() => format!("{h},{o}"),
                    _ => o.to_string(),
                };
                ann.insert(ANNOTATION_REVISION_HISTORY.to_string(), h);
            }
            cx.plan.update_for(rs.name()).annotations.extend(ann);
        }
        // Argo rewrites the injected anti-affinity term with any of these updates, and on its
        // own when the term names another ReplicaSet than the stable one.
        let touched = cx.plan.updates.iter().any(|u| u.name == rs.name());
        let live = rs
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .and_then(|s| s.affinity.as_ref());
        let (stable, new) = (cx.stable_hash(), cx.rs.new_hash.as_str());
        if touched || affinity::needs_update(cx.ro, live, stable, new) {
            let own = desired_template(cx.ro).spec.and_then(|s| s.affinity);
            let to = affinity::generate(cx.ro, own.as_ref(), stable, new);
            if to.as_ref() != live {
                let from = live.cloned();
                cx.plan.update_for(rs.name()).affinity = Some(AffinityChange { from, to });
            }
        }
    }
}

/// The new ReplicaSet, at size 0: the strategy scales it. Its pods carry the anti-affinity
/// term against the stable ReplicaSet (`stable_hash`) and the metadata of their role.
fn build_replica_set(
    ro: &Rollout,
    cls: &Classified,
    stable_hash: &str,
    replicas: i32,
    revision: &str,
) -> ReplicaSet {
    let mut template = desired_template(ro);
    if let Some(spec) = template.spec.as_mut() {
        spec.affinity = affinity::generate(ro, spec.affinity.as_ref(), stable_hash, &cls.new_hash);
    }
    let meta = template.metadata.get_or_insert_with(ObjectMeta::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_POD_TEMPLATE_HASH.to_string(), cls.new_hash.clone());
    // The ReplicaSet's own labels are the template's before the ephemeral ones (as Argo's).
    let labels = meta.labels.clone();
    let record = ephemeral::inject(&mut template, ephemeral::creation_metadata(ro, cls));
    let mut selector: LabelSelector = ro.spec.selector.clone().unwrap_or_default();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(LABEL_POD_TEMPLATE_HASH.to_string(), cls.new_hash.clone());
    let mut annotations: BTreeMap<String, String> = ro
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|(k, _)| !NOT_COPIED_ANNOTATIONS.contains(&k.as_str()))
        .collect();
    annotations.insert(ANNOTATION_REVISION.into(), revision.into());
    annotations.insert(ANNOTATION_DESIRED_REPLICAS.into(), replicas.to_string());
    if let Some(r) = record {
        annotations.insert(ANNOTATION_EPHEMERAL_METADATA.into(), r);
    }
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(cls.new_name.clone()),
            namespace: ro.metadata.namespace.clone(),
            labels,
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(ro)]),
            ..ObjectMeta::default()
        },
        spec: ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: ro.spec.min_ready_seconds,
            selector,
            template: Some(template),
        },
        status: None,
    }
}

/// Delete the oldest ReplicaSets past `revisionHistoryLimit` once they are fully scaled down.
pub fn gc_history(cx: &mut Ctx) {
    let limit = cx.ro.spec.revision_history_limit.unwrap_or(10).max(0) as usize;
    let mut cleanable: Vec<&ReplicaSet> = cx
        .rs
        .others
        .iter()
        .copied()
        .filter(|rs| !rs.deleting())
        .collect();
    if cleanable.len() <= limit {
        return;
    }
    let diff = cleanable.len() - limit;
    cleanable.sort_by_key(|rs| (rs.created(), rs.name().to_string()));
    for rs in cleanable.into_iter().take(diff) {
        let observed = rs
            .status
            .as_ref()
            .and_then(|s| s.observed_generation)
            .unwrap_or(0);
        if rs.status_replicas() != 0
            || rs.spec_replicas() != 0
            || rs.metadata.generation.unwrap_or(0) > observed
        {
            continue;
        }
        cx.plan.deletes.push(rs.name().to_string());
    }
}
