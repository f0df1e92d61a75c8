//! The state one reconcile carries through its stages, shared by both strategies (Argo's
//! `rolloutContext` less what each strategy owns): the observation, its classification, the
//! pause changes decided so far, and the plan being filled.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::rollout::{Rollout, RolloutStatus};
use crate::rollout::classify::{Classified, classify, is_fast_rollback, is_rollback};
use crate::rollout::duration::Attempt;
use crate::rollout::effects::Plan;
use crate::rollout::observed::{Observed, RsExt};
use crate::rollout::status::{
    Finish, PauseChanges, finish, is_fully_promoted, replica_failure, replicas_or_default,
};
use crate::rollout::support::not_implemented;

pub struct Ctx<'a> {
    pub obs: &'a Observed<'a>,
    pub ro: &'a Rollout,
    pub now: Timestamp,
    /// `metadata.generation` as `status.observedGeneration` records it.
    pub generation: String,
    /// The status as observed.
    pub prev: RolloutStatus,
    pub rs: Classified<'a>,
    /// `spec.replicas` with Kubernetes' default.
    pub replicas: i32,
    pub pause: PauseChanges,
    pub plan: Plan,
    /// Candidate requeue delays; the plan takes the shortest.
    pub requeue: Vec<Duration>,
}

impl<'a> Ctx<'a> {
    pub fn new(
        obs: &'a Observed<'a>,
        prev: RolloutStatus,
        generation: String,
        now: Timestamp,
    ) -> Self {
        let ro = obs.rollout;
        let rs = classify(ro, &prev, obs.replica_sets);
        // Argo's `newRolloutContext`: an abort on a fully promoted rollout is dropped
        // (`IsFullyPromoted && IsAborted → RemoveAbort`), so the rollout stays Healthy.
        let remove_abort = is_fully_promoted(&prev) && prev.abort.unwrap_or(false);
        Ctx {
            obs,
            ro,
            now,
            generation,
            prev,
            rs,
            replicas: replicas_or_default(&ro.spec),
            pause: PauseChanges {
                remove_abort,
                ..PauseChanges::default()
            },
            plan: Plan::default(),
            requeue: Vec::new(),
        }
    }

    pub fn event(&mut self, warning: bool, reason: &str, message: String) {
        self.plan.event(warning, reason, message);
    }

    pub fn aborted(&self) -> bool {
        self.pause.aborted(&self.prev)
    }

    /// `status.stableRS`, empty when unset.
    pub fn stable_hash(&self) -> &str {
        self.prev.stable_rs.as_deref().unwrap_or("")
    }

    /// What `status.duration` needs of the ReplicaSets.
    pub fn attempt(&self) -> Attempt {
        Attempt {
            new_available: self.rs.new_rs.map(|rs| rs.available()),
            rollback: is_rollback(&self.prev, &self.rs),
            fast_rollback: is_fast_rollback(self.ro, &self.prev, &self.rs),
        }
    }

    /// The shortest requeue asked for so far.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue.iter().min().copied()
    }

    /// The shared end of a reconcile: conditions, phase and events through `status::finish`,
    /// then the plan.
    pub fn finish(
        mut self,
        st: RolloutStatus,
        indefinite_step: bool,
        healthy: &dyn Fn(&RolloutStatus) -> bool,
    ) -> Plan {
        let unimplemented = not_implemented(self.ro);
        let available = self.rs.all.iter().map(|rs| rs.available()).sum();
        let attempt = self.attempt();
        let f = Finish {
            ro: self.ro,
            prev: &self.prev,
            generation: &self.generation,
            now: self.now,
            new_name: &self.rs.new_name,
            new_hash: &self.rs.new_hash,
            // Argo's `GetReplicaSetRevision` of a ReplicaSet that does not exist yet is 0.
            new_revision: if self.rs.creating && self.plan.create.is_none() {
                0
            } else {
                self.rs.new_revision
            },
            replicas: self.replicas,
            available,
            replica_failure: replica_failure(self.rs.new_rs, &self.rs.all),
            indefinite_step,
            healthy,
            not_implemented: &unimplemented,
            attempt,
        };
        let pause = std::mem::take(&mut self.pause);
        finish(&f, st, pause, &mut self.plan, &mut self.requeue);
        self.plan.requeue_after = self.requeue_after();
        self.plan
    }
}
