//! `Plan`: every effect one reconcile decides — ReplicaSet adoptions, creates, resizes and
//! deletes, the Rollout's revision annotation and status, evictions, AnalysisRuns, events and the
//! requeue. Both strategies fill the same plan; the shell only writes it.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Affinity, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::api::analysis::AnalysisRun;
use crate::api::consts::*;
use crate::api::rollout::{RolloutDurationStatus, RolloutStatus};
use crate::rollout::observed::RsExt;

/// What one reconcile should change. Empty means: write nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphaned ReplicaSets the Rollout selects, to be made its own (Argo's `ClaimReplicaSets`).
    /// When there are any, the plan holds nothing else: the next reconcile sees them owned.
    pub adopt: Vec<Adoption>,
    /// A ReplicaSet to create (server-side apply of the whole object).
    pub create: Option<ReplicaSet>,
    /// Changes to existing ReplicaSets: size and annotations.
    pub updates: Vec<RsUpdate>,
    /// ReplicaSets to delete (revision history GC).
    pub deletes: Vec<String>,
    /// `spec.replicas` to write into a Rollout that has none (Argo defaults it to 1 so that the
    /// `/scale` subresource, and so an HPA, works). When set, the plan holds nothing else.
    pub default_replicas: Option<i32>,
    /// New value of the Rollout's `rollout.argoproj.io/revision` annotation, when it changes.
    pub rollout_revision: Option<String>,
    /// The new status, when it differs from the observed one.
    pub status: Option<RolloutStatus>,
    /// Pods to evict (restart).
    pub evict: Vec<String>,
    /// Service selector switches and releases, in order.
    pub services: Vec<ServiceChange>,
    /// The weights (and managed routes) the traffic routers are to carry, when this reconcile
    /// decided them; applied by every router the Rollout names before the status is written.
    /// Planned on every reconcile of a routed canary so a router edited behind the Rollout's
    /// back is put right; adapters write only what differs, so it is not counted by `is_noop`.
    pub traffic: Option<TrafficPlan>,
    /// Ephemeral metadata to sync, per ReplicaSet: its pod template, its pods, its record.
    pub pod_metadata: Vec<PodMetadataSync>,
    /// AnalysisRuns to create.
    pub create_runs: Vec<AnalysisRun>,
    /// AnalysisRuns to stop (`spec.terminate: true`).
    pub terminate_runs: Vec<String>,
    /// AnalysisRuns to delete (history limits).
    pub delete_runs: Vec<String>,
    /// Kubernetes events to record.
    pub events: Vec<PlannedEvent>,
    /// When to look again even if nothing changes (pause expiry, progress deadline).
    pub requeue_after: Option<Duration>,
    /// The update attempt this plan's status finishes (promoted, aborted, superseded), to be
    /// observed into the rollout duration histograms once that status has been written.
    pub finished: Option<RolloutDurationStatus>,
}

impl Plan {
    /// True when applying the plan makes no API writes.
    pub fn is_noop(&self) -> bool {
        self.adopt.is_empty()
            && self.create.is_none()
            && self.updates.is_empty()
            && self.deletes.is_empty()
            && self.default_replicas.is_none()
            && self.rollout_revision.is_none()
            && self.status.is_none()
            && self.evict.is_empty()
            && self.services.is_empty()
            && self.pod_metadata.is_empty()
            && self.create_runs.is_empty()
            && self.terminate_runs.is_empty()
            && self.delete_runs.is_empty()
            && self.events.is_empty()
    }

    /// Record an event against the Rollout.
    pub fn event(&mut self, warning: bool, reason: &str, message: String) {
        self.events.push(PlannedEvent {
            warning,
            reason: reason.into(),
            message,
        });
    }

    /// The update for ReplicaSet `name`, created empty on first use, so that a resize, an
    /// annotation and a minReadySeconds change of one reconcile become one write.
    pub fn update_for(&mut self, name: &str) -> &mut RsUpdate {
        let i = match self.updates.iter().position(|u| u.name == name) {
            Some(i) => i,
            None => {
                self.updates.push(RsUpdate {
                    name: name.to_string(),
                    ..RsUpdate::default()
                });
                self.updates.len() - 1
            }
        };
        &mut self.updates[i]
    }

    /// Argo's `scaleReplicaSetAndRecordEvent`: set `rs` to `size` (and its desired-replicas
    /// annotation to `desired`), recording a scaling event. Returns whether the size changed.
    pub fn scale(&mut self, rs: &ReplicaSet, size: i32, desired: i32) -> bool {
        // A size this plan already gives the ReplicaSet (blue-green's stable ReplicaSet is also
        // the new one once promoted) is not decided, or reported, twice.
        let planned = self
            .updates
            .iter()
            .find(|u| u.name == rs.name())
            .and_then(|u| u.replicas);
        let old = planned.unwrap_or_else(|| rs.spec_replicas());
        let want = desired.to_string();
        let annotate = rs.annotations().get(ANNOTATION_DESIRED_REPLICAS) != Some(&want)
            && self
                .updates
                .iter()
                .find(|u| u.name == rs.name())
                .is_none_or(|u| u.annotations.get(ANNOTATION_DESIRED_REPLICAS) != Some(&want));
        let resize = old != size;
        if !resize && !annotate {
            return false;
        }
        let name = rs.name().to_string();
        let u = self.update_for(&name);
        if annotate {
            u.annotations
                .insert(ANNOTATION_DESIRED_REPLICAS.to_string(), want);
        }
        if resize {
            u.replicas = Some(size);
            let op = if size > old { "up" } else { "down" };
            let revision = rs.revision().unwrap_or(0);
            self.event(
                false,
                REASON_SCALING_REPLICA_SET,
                format!("Scaled {op} ReplicaSet {name} (revision {revision}) from {old} to {size}"),
            );
        }
        resize
    }
}

/// What every traffic router of the Rollout should carry now (Argo's `UpdateHash` +
/// `SetWeight` + managed routes), planned by the core; each router adapter in the shell maps it
/// onto its own objects and writes only what differs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrafficPlan {
    /// `canaryService` and `stableService`.
    pub canary_service: String,
    pub stable_service: String,
    /// Pod-template hashes behind them (for subset-level routers such as Istio DestinationRules).
    pub canary_hash: String,
    pub stable_hash: String,
    /// Weight of the canary; the stable gets `max_weight - canary_weight`.
    pub canary_weight: i32,
    /// `trafficRouting.maxTrafficWeight` (100 unless set).
    pub max_weight: i32,
    /// Managed header/mirror routes go (promotion, abort, no canary pods).
    pub remove_managed_routes: bool,
}

impl TrafficPlan {
    pub fn stable_weight(&self) -> i32 {
        self.max_weight - self.canary_weight
    }
}

/// A change to a Service the Rollout names (or named).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceChange {
    pub name: String,
    /// `Some(hash)`: point the `rollouts-pod-template-hash` selector at `hash`, adding the
    /// `managed-by-rollouts` annotation when `annotate`. `None`: release the Service, removing
    /// both (the Rollout no longer names it).
    pub hash: Option<String>,
    /// The Service lacks the managed-by annotation (or carries another value) and gets ours.
    pub annotate: bool,
}

/// A change to an existing ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RsUpdate {
    pub name: String,
    /// New `spec.replicas`, when it changes.
    pub replicas: Option<i32>,
    /// Annotations to set (only those that change).
    pub annotations: BTreeMap<String, String>,
    /// Annotations to remove.
    pub remove_annotations: Vec<String>,
    /// New `spec.minReadySeconds`, when it changes (the new ReplicaSet follows the Rollout's).
    pub min_ready_seconds: Option<i32>,
    /// New `spec.template.spec.affinity` (the injected anti-affinity term follows the stable
    /// ReplicaSet), with the observed one to diff against.
    pub affinity: Option<AffinityChange>,
}

/// A pod template's affinity, from what was observed to what it should be.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AffinityChange {
    pub from: Option<Affinity>,
    pub to: Option<Affinity>,
}

/// Labels or annotations to set (`Some`) or remove (`None`).
pub type MetaChanges = BTreeMap<String, Option<String>>;

/// The ephemeral metadata of one ReplicaSet's role, written in this order: its pod template (so
/// that pods created from then on carry it), its existing pods, then the record of what they
/// carry (the `rollout.argoproj.io/ephemeral-metadata` annotation).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodMetadataSync {
    pub replica_set: String,
    /// `spec.template.metadata.labels` changes.
    pub template_labels: MetaChanges,
    /// `spec.template.metadata.annotations` changes.
    pub template_annotations: MetaChanges,
    /// The pods to patch.
    pub pods: Vec<PodMetadataPatch>,
    /// New value of the ReplicaSet's ephemeral-metadata annotation; `Some(None)` removes it.
    pub record: Option<Option<String>>,
}

/// Labels and annotations of one pod. Written as an update of the pod as listed (Argo's RBAC
/// grants `update` on pods, not `patch`), so its resourceVersion guards it: a pod changed since
/// it was listed is not written, and the next reconcile lists it again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PodMetadataPatch {
    pub name: String,
    pub labels: MetaChanges,
    pub annotations: MetaChanges,
    /// The pod as listed, with the changes made.
    pub pod: Pod,
}

/// Taking controller ownership of an orphaned ReplicaSet, guarded by its uid and
/// resourceVersion so that a ReplicaSet changed or replaced meanwhile is not claimed.
#[derive(Clone, Debug, PartialEq)]
pub struct Adoption {
    pub name: String,
    pub uid: String,
    pub resource_version: String,
    /// The whole new `ownerReferences` list: the existing ones plus the Rollout as controller.
    pub owner_references: Vec<OwnerReference>,
}

/// An event to record against the Rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}
