//! The state one reconcile carries through its stages, shared by both strategies (Argo's
//! `rolloutContext` less what each strategy owns): the observation, its classification, the
//! pause changes decided so far, and the plan being filled.

use std::time::Duration;

use jiff::Timestamp;

use crate::api::consts::*;
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
            fast_rollback: is_fast_rollback(self.ro, &self.prev, &self.rs, self.now),
        }
    }

    /// Argo's `promoteStable`, the part both strategies share: pauses and abort cleared, the new
    /// ReplicaSet recorded as stable with a `RolloutCompleted` event when that changes.
    pub fn promote_stable(&mut self, st: &mut RolloutStatus, reason: &str) {
        self.pause.clear = true;
        self.pause.remove_abort = true;
        st.promote_full = None;
        if let Some(b) = st.blue_green.as_mut() {
            b.scale_up_preview_check_point = None;
        }
        let new_hash = self.rs.new_hash.clone();
        if st.stable_rs.as_deref() != Some(new_hash.as_str()) {
            // The attempt's outcome is known now; it finishes once the new pods are available.
            if let Some(d) = st.duration.as_mut()
                && d.completion_status.is_none()
            {
                let fast = self.prev.promote_full.unwrap_or(false);
                let status = if fast {
                    COMPLETION_FAST_PROMOTED
                } else {
                    COMPLETION_PROMOTED
                };
                d.completion_status = Some(status.into());
            }
            st.stable_rs = Some(new_hash.clone());
            let msg = format!(
                "Rollout completed update to revision {} ({new_hash}): {reason}",
                self.rs.new_revision
            );
            self.event(false, REASON_ROLLOUT_COMPLETED, msg);
        }
    }

    /// Take the analysis stage's decisions into the plan (runs to create, stop and delete,
    /// events) and the pause changes (an inconclusive run pauses, a failed one aborts), for
    /// either strategy; the strategy records the current runs in its own status.
    pub fn take_analysis(
        &mut self,
        out: &mut crate::rollout::analysis::AnalysisOutcome,
    ) -> Result<(), String> {
        if let Some(msg) = out.invalid.take() {
            return Err(msg);
        }
        self.plan.create_runs = std::mem::take(&mut out.create);
        self.plan.terminate_runs = std::mem::take(&mut out.terminate);
        self.plan.delete_runs = std::mem::take(&mut out.delete);
        self.plan.events.append(&mut out.events);
        if out.pause_inconclusive {
            self.pause
                .add
                .push(PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN.into());
        }
        if let Some(msg) = out.abort.take()
            && !self.aborted()
        {
            self.pause.add_abort = Some(msg);
        }
        Ok(())
    }

    /// The shortest requeue asked for so far.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue.iter().min().copied()
    }

    /// The shared end of a reconcile: conditions, phase and events through `status::finish`,
    /// then the plan.
    pub fn finish(
        self,
        st: RolloutStatus,
        indefinite_step: bool,
        healthy: &dyn Fn(&RolloutStatus) -> bool,
    ) -> Plan {
        self.finish_with_availability(st, indefinite_step, healthy, None)
    }

    /// `finish` with the strategy's own `Available` verdict.
    pub fn finish_with_availability(
        mut self,
        st: RolloutStatus,
        indefinite_step: bool,
        healthy: &dyn Fn(&RolloutStatus) -> bool,
        min_available: Option<bool>,
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
            min_available,
            waiting_for_scale_down: self.rs.others.iter().any(|rs| {
                rs.annotations()
                    .get(ANNOTATION_SCALE_DOWN_DEADLINE)
                    .is_some_and(|d| !d.is_empty())
            }),
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
