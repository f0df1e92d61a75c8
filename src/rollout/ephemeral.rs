//! Ephemeral metadata (reference: Argo's `reconcileEphemeralMetadata`): labels and annotations
//! that follow a ReplicaSet's role — canary/stable, preview/active — on its pod template and on
//! its running pods, swapped without restarting a pod when the role changes. What was injected
//! is recorded in the ReplicaSet's `rollout.argoproj.io/ephemeral-metadata` annotation, so that
//! only injected keys are ever removed. Pure; shared by both strategies.
//!
//! The record is also what tells the controller to list pods (`pods_needed`): it is written only
//! after the pods were patched from a list taken while the template already carried the new
//! metadata, so a crash or a pod created mid-way is caught by the next reconcile.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use crate::api::consts::ANNOTATION_EPHEMERAL_METADATA;
use crate::api::rollout::{PodTemplateMetadata, Rollout};
use crate::rollout::classify::{Classified, classify};
use crate::rollout::ctx::Ctx;
use crate::rollout::effects::{MetaChanges, PodMetadataPatch, PodMetadataSync};
use crate::rollout::observed::RsExt;

/// How soon to look again after a template changed, to patch the pods it already had.
pub const RECHECK: Duration = Duration::from_secs(1);

/// A ReplicaSet and the metadata its role carries (`None`: no injected metadata at all).
pub type Role<'a> = (&'a ReplicaSet, Option<&'a PodTemplateMetadata>);

/// The strategy's (new-revision, stable) metadata: canary's `canaryMetadata`/`stableMetadata`,
/// blue-green's `previewMetadata`/`activeMetadata`. `None` when neither is set (Argo's
/// `hasEphemeralMetadataConfigured`): then nothing is synced, not even removed.
pub fn strategy_metadata(
    ro: &Rollout,
) -> Option<(Option<&PodTemplateMetadata>, Option<&PodTemplateMetadata>)> {
    let s = &ro.spec.strategy;
    let pair = if let Some(c) = &s.canary {
        (c.canary_metadata.as_ref(), c.stable_metadata.as_ref())
    } else {
        let b = s.blue_green.as_ref()?;
        (b.preview_metadata.as_ref(), b.active_metadata.as_ref())
    };
    (pair.0.is_some() || pair.1.is_some()).then_some(pair)
}

/// The roles of a reconcile, as Argo assigns them for either strategy: fully promoted (no
/// stable yet, or the stable is the new revision), the new ReplicaSet gets the stable metadata;
/// otherwise the new one gets the new-revision metadata and the stable one the stable metadata.
/// Every other ReplicaSet loses what was injected. Empty when no metadata is configured.
pub fn roles<'a>(ro: &'a Rollout, cls: &Classified<'a>) -> Vec<Role<'a>> {
    let Some((new_md, stable_md)) = strategy_metadata(ro) else {
        return Vec::new();
    };
    let stable_hash = ro
        .status
        .as_ref()
        .and_then(|s| s.stable_rs.as_deref())
        .unwrap_or("");
    let new_hash = cls.new_rs.and_then(|rs| rs.hash()).unwrap_or("");
    let fully_promoted = stable_hash.is_empty() || stable_hash == new_hash;
    let mut out = Vec::new();
    if let Some(rs) = cls.new_rs {
        out.push((rs, if fully_promoted { stable_md } else { new_md }));
    }
    if !fully_promoted && let Some(rs) = cls.stable_distinct() {
        out.push((rs, stable_md));
    }
    out.extend(cls.others.iter().map(|rs| (*rs, None)));
    out.retain(|(rs, _)| !rs.deleting());
    out
}

/// The metadata a ReplicaSet created now carries (Argo's `createDesiredReplicaSet`): the
/// new-revision metadata beside an existing stable ReplicaSet, the stable metadata otherwise
/// (a first revision becomes the stable one).
pub fn creation_metadata<'a>(
    ro: &'a Rollout,
    cls: &Classified<'_>,
) -> Option<&'a PodTemplateMetadata> {
    let (new_md, stable_md) = strategy_metadata(ro)?;
    if cls.stable_distinct().is_some() {
        new_md
    } else {
        stable_md
    }
}

/// Inject `md` into a new ReplicaSet's pod template; returns the record annotation's value.
pub fn inject(template: &mut PodTemplateSpec, md: Option<&PodTemplateMetadata>) -> Option<String> {
    let md = normalized(md)?;
    let meta = template.metadata.get_or_insert_with(Default::default);
    let (labels, annotations) = changes(
        meta.labels.as_ref(),
        meta.annotations.as_ref(),
        None,
        Some(&md),
    );
    apply_changes(&mut meta.labels, &labels);
    apply_changes(&mut meta.annotations, &annotations);
    record_of(Some(&md))
}

/// The ReplicaSets whose pods the controller must list for this reconcile: those with pods
/// whose recorded metadata is not what their role wants.
pub fn pods_needed(ro: &Rollout, replica_sets: &[ReplicaSet]) -> Vec<String> {
    let prev = ro.status.clone().unwrap_or_default();
    let cls = classify(ro, &prev, replica_sets);
    roles(ro, &cls)
        .into_iter()
        .filter(|(rs, md)| rs.spec_replicas() > 0 && recorded(rs) != normalized(*md))
        .map(|(rs, _)| rs.name().to_string())
        .collect()
}

/// Plan the metadata of every role (Argo's `syncEphemeralMetadata`, one ReplicaSet at a time).
pub fn reconcile(cx: &mut Ctx, roles: &[Role]) {
    for (rs, md) in roles {
        let sync = sync_replica_set(rs, *md, cx.obs.pods);
        if let Some(s) = sync {
            if s.record.is_none() {
                // The template changed first; the pods it had are listed again next time.
                cx.requeue.push(RECHECK);
            }
            cx.plan.pod_metadata.push(s);
        }
    }
}

/// One ReplicaSet: the template changes now; the pods (when they were listed) and the record
/// once the template already carried `md` when the pods were listed.
fn sync_replica_set(
    rs: &ReplicaSet,
    md: Option<&PodTemplateMetadata>,
    pods: Option<&[Pod]>,
) -> Option<PodMetadataSync> {
    let existing = recorded(rs);
    let want = normalized(md);
    let meta = rs.spec.template.as_ref().and_then(|t| t.metadata.as_ref());
    let (template_labels, template_annotations) = changes(
        meta.and_then(|m| m.labels.as_ref()),
        meta.and_then(|m| m.annotations.as_ref()),
        existing.as_ref(),
        want.as_ref(),
    );
    let mut s = PodMetadataSync {
        replica_set: rs.name().to_string(),
        template_labels,
        template_annotations,
        ..PodMetadataSync::default()
    };
    if existing != want {
        let template_done = s.template_labels.is_empty() && s.template_annotations.is_empty();
        if rs.spec_replicas() == 0 {
            // Argo lists no pods of a ReplicaSet scaled to zero.
            s.record = Some(record_of(want.as_ref()));
        } else if let Some(pods) = pods {
            let uid = rs.metadata.uid.as_deref().unwrap_or("");
            s.pods = pods
                .iter()
                .filter(|p| owned_by(p, uid))
                .filter_map(|p| pod_patch(p, existing.as_ref(), want.as_ref()))
                .collect();
            if template_done {
                s.record = Some(record_of(want.as_ref()));
            }
        }
    }
    let empty = s.template_labels.is_empty()
        && s.template_annotations.is_empty()
        && s.pods.is_empty()
        && s.record.is_none();
    (!empty).then_some(s)
}

fn owned_by(pod: &Pod, uid: &str) -> bool {
    !uid.is_empty()
        && pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|o| o.uid == uid)
}

fn pod_patch(
    pod: &Pod,
    existing: Option<&PodTemplateMetadata>,
    want: Option<&PodTemplateMetadata>,
) -> Option<PodMetadataPatch> {
    let m = &pod.metadata;
    let (labels, annotations) = changes(m.labels.as_ref(), m.annotations.as_ref(), existing, want);
    if labels.is_empty() && annotations.is_empty() {
        return None;
    }
    let mut updated = pod.clone();
    apply_changes(&mut updated.metadata.labels, &labels);
    apply_changes(&mut updated.metadata.annotations, &annotations);
    Some(PodMetadataPatch {
        name: m.name.clone().unwrap_or_default(),
        labels,
        annotations,
        pod: updated,
    })
}

/// What the ReplicaSet's annotation records as injected; `None` when absent, empty or not
/// parseable (Argo then removes nothing).
pub fn recorded(rs: &ReplicaSet) -> Option<PodTemplateMetadata> {
    let raw = rs.annotations().get(ANNOTATION_EPHEMERAL_METADATA)?.clone();
    let md: PodTemplateMetadata = serde_json::from_str(&raw).ok()?;
    normalized(Some(&md))
}

/// Metadata with empty maps dropped; `None` when nothing is left.
fn normalized(md: Option<&PodTemplateMetadata>) -> Option<PodTemplateMetadata> {
    let keep = |m: &Option<BTreeMap<String, String>>| m.clone().filter(|m| !m.is_empty());
    let md = md?;
    let out = PodTemplateMetadata {
        labels: keep(&md.labels),
        annotations: keep(&md.annotations),
    };
    (out.labels.is_some() || out.annotations.is_some()).then_some(out)
}

/// The annotation's value, as Go's `json.Marshal` writes it (keys sorted, empty maps omitted).
fn record_of(md: Option<&PodTemplateMetadata>) -> Option<String> {
    normalized(md).and_then(|m| serde_json::to_string(&m).ok())
}

/// Argo's `SyncEphemeralPodMetadata` as changes: set what `want` has and the object lacks;
/// remove what `existing` injected, `want` no longer has and the object still carries.
pub fn changes(
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
    existing: Option<&PodTemplateMetadata>,
    want: Option<&PodTemplateMetadata>,
) -> (MetaChanges, MetaChanges) {
    let diff = |have: Option<&BTreeMap<String, String>>,
                old: Option<&BTreeMap<String, String>>,
                new: Option<&BTreeMap<String, String>>| {
        let mut out = MetaChanges::new();
        for (k, v) in new.into_iter().flatten() {
            if have.and_then(|h| h.get(k)) != Some(v) {
                out.insert(k.clone(), Some(v.clone()));
            }
        }
        for k in old.into_iter().flatten().map(|(k, _)| k) {
            let still = new.is_some_and(|n| n.contains_key(k));
            if !still && have.is_some_and(|h| h.contains_key(k)) {
                out.insert(k.clone(), None);
            }
        }
        out
    };
    (
        diff(
            labels,
            existing.and_then(|e| e.labels.as_ref()),
            want.and_then(|w| w.labels.as_ref()),
        ),
        diff(
            annotations,
            existing.and_then(|e| e.annotations.as_ref()),
            want.and_then(|w| w.annotations.as_ref()),
        ),
    )
}

/// Apply `changes` to a label or annotation map (an emptied map stays empty, as Go's does).
pub fn apply_changes(map: &mut Option<BTreeMap<String, String>>, changes: &MetaChanges) {
    if changes.is_empty() {
        return;
    }
    let m = map.get_or_insert_with(BTreeMap::new);
    for (k, v) in changes {
        match v {
            Some(v) => m.insert(k.clone(), v.clone()),
            None => m.remove(k),
        };
    }
}

#[cfg(test)]
#[path = "ephemeral_tests.rs"]
mod tests;
