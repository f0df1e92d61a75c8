//! Which ReplicaSet is new, which is stable and which are older; what the new one is called and
//! which revision it gets; which orphaned ReplicaSets to adopt and whether the new name is taken
//! by someone else's ReplicaSet (a hash collision). Pure, shared by both strategies.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::api::consts::{ANNOTATION_SCALE_DOWN_DEADLINE, LABEL_EXPERIMENT_NAME};
use crate::api::rollout::{Rollout, RolloutStatus};
use crate::api::selector::selects;
use crate::rollout::effects::Adoption;
use crate::rollout::hash::{pod_template_hash, templates_match};
use crate::rollout::observed::RsExt;
use crate::rollout::sanitize::sanitize_template;

/// The Rollout's ReplicaSets, sorted into the roles a reconcile needs.
#[derive(Clone, Debug)]
pub struct Classified<'a> {
    /// Every ReplicaSet the Rollout owns.
    pub all: Vec<&'a ReplicaSet>,
    /// The ReplicaSet running the current pod template, if it exists yet.
    pub new_rs: Option<&'a ReplicaSet>,
    /// Its pod-template hash (ours, or an adopted Argo ReplicaSet's).
    pub new_hash: String,
    /// Its name: the existing one's, or `<rollout>-<hash>` for the one to create.
    pub new_name: String,
    /// The revision it has or gets: one above every older ReplicaSet's.
    pub new_revision: i64,
    /// The new ReplicaSet does not exist yet and is to be created.
    pub creating: bool,
    /// The ReplicaSet `status.stableRS` names, if it exists.
    pub stable_rs: Option<&'a ReplicaSet>,
    /// Neither new nor stable.
    pub others: Vec<&'a ReplicaSet>,
}

impl<'a> Classified<'a> {
    /// A stable ReplicaSet exists and is not the new one.
    pub fn stable_distinct(&self) -> Option<&'a ReplicaSet> {
        self.stable_rs
            .filter(|s| s.hash() != Some(self.new_hash.as_str()))
    }
}

/// The Rollout's pod template as its ReplicaSets carry it (quantities normalised).
pub fn desired_template(ro: &Rollout) -> PodTemplateSpec {
    let template = ro.spec.template.clone().unwrap_or_default();
    sanitize_template(&template).0
}

/// The name a ReplicaSet for the current template gets when Sluice creates it.
pub fn wanted_name(ro: &Rollout) -> String {
    let collision = ro.status.as_ref().and_then(|s| s.collision_count);
    let hash = pod_template_hash(&desired_template(ro), collision);
    format!("{}-{hash}", ro.metadata.name.as_deref().unwrap_or(""))
}

/// Sort `replica_sets` (those the Rollout owns) into their roles.
pub fn classify<'a>(
    ro: &Rollout,
    prev: &RolloutStatus,
    replica_sets: &'a [ReplicaSet],
) -> Classified<'a> {
    let all: Vec<&ReplicaSet> = replica_sets.iter().collect();
    let template = desired_template(ro);
    let want_hash = pod_template_hash(&template, prev.collision_count);
    let alive = || all.iter().copied().filter(|rs| !rs.deleting());
    // Our own ReplicaSets carry our hash; one created by Argo Rollouts (another hash function)
    // is adopted when its template matches (trap 3), newest revision first.
    let new_rs = alive()
        .find(|rs| rs.hash() == Some(want_hash.as_str()))
        .or_else(|| {
            alive()
                .filter(|rs| {
                    rs.spec
                        .template
                        .as_ref()
                        .is_some_and(|t| templates_match(&template, t))
                })
                .max_by_key(|rs| rs.revision().unwrap_or(0))
        });
    let new_hash = new_rs
        .and_then(|rs| rs.hash())
        .map_or_else(|| want_hash.clone(), str::to_string);
    let name = ro.metadata.name.clone().unwrap_or_default();
    let new_name = new_rs.map_or_else(|| format!("{name}-{want_hash}"), |rs| rs.name().to_string());
    let stable_hash = prev.stable_rs.clone().unwrap_or_default();
    let stable_rs = if stable_hash.is_empty() {
        None
    } else {
        all.iter()
            .copied()
            .find(|rs| rs.hash() == Some(stable_hash.as_str()))
    };
    let others: Vec<&ReplicaSet> = all
        .iter()
        .copied()
        .filter(|rs| {
            let h = rs.hash();
            h != Some(new_hash.as_str()) && h != stable_rs.and_then(|s| s.hash())
        })
        .collect();
    let max_old = all
        .iter()
        .filter(|rs| rs.hash() != Some(new_hash.as_str()))
        .filter_map(|rs| rs.revision())
        .max()
        .unwrap_or(0);
    let new_revision = new_rs
        .and_then(|rs| rs.revision())
        .unwrap_or(0)
        .max(max_old + 1);
    Classified {
        creating: new_rs.is_none(),
        all,
        new_rs,
        new_hash,
        new_name,
        new_revision,
        stable_rs,
        others,
    }
}

/// The Rollout as the controller owner of its ReplicaSets and AnalysisRuns.
pub fn owner_reference(ro: &Rollout) -> OwnerReference {
    OwnerReference {
        api_version: "argoproj.io/v1alpha1".into(),
        kind: "Rollout".into(),
        name: ro.metadata.name.clone().unwrap_or_default(),
        uid: ro.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Argo's `ClaimReplicaSets`: orphaned ReplicaSets (no controller) that the Rollout's selector
/// selects — e.g. after `kubectl delete rollout --cascade=orphan` and a re-apply — become its own.
pub fn adoptions(ro: &Rollout, orphans: &[ReplicaSet]) -> Vec<Adoption> {
    orphans
        .iter()
        .filter(|rs| !rs.deleting())
        .filter(|rs| {
            !rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.controller == Some(true))
        })
        .filter(|rs| selects(ro.spec.selector.as_ref(), rs.metadata.labels.as_ref()))
        .map(|rs| {
            let mut refs = rs.metadata.owner_references.clone().unwrap_or_default();
            refs.push(owner_reference(ro));
            Adoption {
                name: rs.name().to_string(),
                uid: rs.metadata.uid.clone().unwrap_or_default(),
                resource_version: rs.metadata.resource_version.clone().unwrap_or_default(),
                owner_references: refs,
            }
        })
        .collect()
}

/// A ReplicaSet named as the one to create that is not the Rollout's own: applying over it would
/// take over someone else's pods. Argo bumps `status.collisionCount` so the next hash, and name,
/// differ.
pub fn name_taken(ro: &Rollout, cls: &Classified, same_name: Option<&ReplicaSet>) -> bool {
    let Some(existing) = same_name else {
        return false;
    };
    if !cls.creating || existing.name() != cls.new_name {
        return false;
    }
    let uid = ro.metadata.uid.as_deref().unwrap_or("");
    !existing
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.controller == Some(true) && o.uid == uid)
}

/// Argo's `isRollbackWithinWindow`: the new ReplicaSet is older than the stable one and fewer
/// than `rollbackWindow.revisions` revisions lie between them.
pub fn rollback_within_window(ro: &Rollout, cls: &Classified) -> bool {
    let (Some(new), Some(stable)) = (cls.new_rs, cls.stable_rs) else {
        return false;
    };
    let (Some(new_t), Some(stable_t)) = (new.created(), stable.created()) else {
        return false;
    };
    if new_t >= stable_t {
        return false;
    }
    let Some(limit) = ro.spec.rollback_window.as_ref().and_then(|w| w.revisions) else {
        return false;
    };
    if limit <= 0 {
        return false;
    }
    let window = cls
        .all
        .iter()
        .filter(|rs| !rs.annotations().contains_key(LABEL_EXPERIMENT_NAME))
        .filter(|rs| rs.created().is_some_and(|t| t < stable_t && new_t < t))
        .count() as i32;
    window < limit
}

/// Argo's `isRollback`: the new ReplicaSet is the stable one (also true of a fully promoted
/// rollout, so only meaningful while an update is in flight) or was created before it.
pub fn is_rollback(prev: &RolloutStatus, cls: &Classified) -> bool {
    let (Some(new), Some(stable)) = (cls.new_rs, cls.stable_rs) else {
        return false;
    };
    let to_stable = prev.stable_rs.as_deref() == Some(cls.new_hash.as_str());
    let older = matches!((new.created(), stable.created()), (Some(n), Some(s)) if n < s);
    to_stable || older
}

/// Argo's `isFastRollback`: a rollback to the stable ReplicaSet, inside the rollback window, or
/// (blue-green) to a ReplicaSet still inside its scale-down delay at `now`.
pub fn is_fast_rollback(
    ro: &Rollout,
    prev: &RolloutStatus,
    cls: &Classified,
    now: jiff::Timestamp,
) -> bool {
    let within_delay = ro.spec.strategy.blue_green.is_some()
        && cls.new_rs.is_some_and(|rs| {
            rs.annotations()
                .get(ANNOTATION_SCALE_DOWN_DEADLINE)
                .and_then(|d| d.parse::<jiff::Timestamp>().ok())
                .is_some_and(|d| d > now)
        });
    is_rollback(prev, cls)
        && (rollback_within_window(ro, cls)
            || within_delay
            || prev.stable_rs.as_deref() == Some(cls.new_hash.as_str()))
}
