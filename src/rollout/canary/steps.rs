//! The canary step machine: the pause step, whether the current step is complete, advancing to
//! the next step, and full promotion (`shouldFullPromote`, `syncRolloutStatusCanary`).

use std::time::Duration;

use super::Canary;
use crate::api::consts::*;
use crate::api::rollout::{PauseCondition, RolloutStatus, step_string};
use crate::rollout::effects::Plan;
use crate::rollout::observed::RsExt;
use crate::rollout::replicas::{
    ReplicaProgressThreshold, at_desired_counts_with_threshold, replica_progress_threshold_met,
};
use crate::rollout::status::get_condition;
use crate::time::{add_seconds, pause_duration_seconds, until};

impl Canary<'_> {
    /// Argo's `reconcileCanaryPause`.
    pub(super) fn reconcile_pause(&mut self) {
        if self.cx.ro.spec.paused.unwrap_or(false)
            || self.cx.prev.promote_full.unwrap_or(false)
            || self.cx.aborted()
        {
            return;
        }
        let Some(step) = self.current_step() else {
            return;
        };
        let Some(pause) = &step.pause else { return };
        match self
            .pause_condition(PAUSE_REASON_CANARY_PAUSE_STEP)
            .cloned()
        {
            None => {
                if !self.cx.prev.controller_pause.unwrap_or(false) {
                    self.cx
                        .pause
                        .add
                        .push(PAUSE_REASON_CANARY_PAUSE_STEP.into());
                    if let Some(d) = &pause.duration {
                        let secs = pause_duration_seconds(d).max(0) as u64;
                        self.cx.requeue.push(Duration::from_secs(secs));
                    }
                }
            }
            Some(c) => {
                if let Some(d) = &pause.duration {
                    let expiry = add_seconds(c.start_time.0, pause_duration_seconds(d));
                    if let Some(left) = until(self.cx.now, expiry) {
                        self.cx.requeue.push(left);
                    }
                }
            }
        }
    }

    fn pause_condition(&self, reason: &str) -> Option<&PauseCondition> {
        self.cx
            .prev
            .pause_conditions
            .iter()
            .flatten()
            .find(|c| c.reason == reason)
    }

    /// Argo's `completedCurrentCanaryStep` for the step kinds a basic canary runs.
    fn completed_current_step(&self) -> bool {
        if self.cx.ro.spec.paused.unwrap_or(false) {
            return false;
        }
        let Some(step) = self.current_step() else {
            return false;
        };
        if let Some(pause) = &step.pause {
            let cond = self.pause_condition(PAUSE_REASON_CANARY_PAUSE_STEP);
            if self.cx.prev.controller_pause.unwrap_or(false) && cond.is_none() {
                return true;
            }
            if let (Some(d), Some(c)) = (&pause.duration, cond) {
                return self.cx.now >= add_seconds(c.start_time.0, pause_duration_seconds(d));
            }
            return false;
        }
        if step.set_canary_scale.is_some() && self.routed() {
            return self.at_desired_routed();
        }
        if step.set_weight.is_some() && self.routed() {
            return self.at_desired_routed();
        }
        if step.set_weight.is_some() {
            let (dn, ds) = self.desired_counts();
            return at_desired_counts_with_threshold(
                self.progress_threshold(),
                dn,
                ds,
                self.cx.rs.new_rs.map(|rs| rs.counts()),
                self.cx.rs.stable_distinct().map(|rs| rs.counts()),
                &self.older_counts(),
            );
        }
        if step.analysis.is_some() {
            return self.step_analysis_successful;
        }
        // Header and mirror routes complete at once; experiment and plugin steps wait for
        // controllers that this version does not run yet (the NotImplemented condition says so).
        step.set_header_route.is_some() || step.set_mirror_route.is_some()
    }

    /// `spec.strategy.canary.replicaProgressThreshold` (Argo compares the type with "Percent"
    /// only; anything else counts pods).
    pub(super) fn progress_threshold(&self) -> Option<ReplicaProgressThreshold> {
        let t = self
            .cx
            .ro
            .spec
            .strategy
            .canary
            .as_ref()?
            .replica_progress_threshold
            .as_ref()?;
        Some(if t.type_ == "Percent" {
            ReplicaProgressThreshold::Percent(t.value)
        } else {
            ReplicaProgressThreshold::Pods(t.value)
        })
    }

    /// `shouldFullPromote`: a reason to mark the new ReplicaSet stable, if any.
    fn should_full_promote(&self) -> Option<String> {
        let cx = &self.cx;
        if cx.rs.creating {
            // Argo scales a ReplicaSet it creates in the same reconcile and records
            // `ScalingReplicaSet` before `RolloutCompleted`; ours is scaled next reconcile, so
            // the initial deploy completes then too, keeping Argo's event order.
            return None;
        }
        if cx.rs.stable_rs.is_none() {
            return Some("Initial deploy".into());
        }
        if cx.aborted() {
            return None;
        }
        let new = cx.rs.new_rs?;
        if new.available() < cx.replicas
            && !replica_progress_threshold_met(
                self.progress_threshold(),
                Some(new.counts()),
                cx.replicas,
            )
        {
            return None;
        }
        if cx.prev.promote_full.unwrap_or(false) {
            return Some("Full promotion requested".into());
        }
        if self.rollback_within_window() {
            return Some("Rollback within window".into());
        }
        if cx.stable_hash() == cx.rs.new_hash {
            return Some("Fast rollback".into());
        }
        let n = self.steps.len();
        let idx = self.current_index();
        if n == 0 || idx == Some(n as i32) {
            return Some(format!("Completed all {n} canary steps"));
        }
        None
    }

    /// Argo's `syncRolloutStatusCanary` after the scaling phase.
    pub(super) fn sync_status(mut self, mut st: RolloutStatus) -> Plan {
        let n = self.step_count();
        let mut idx = self.current_index();
        if self.cx.prev.promote_full.unwrap_or(false) || self.rollback_within_window() {
            self.cx.pause.clear = true;
            self.cx.pause.remove_abort = true;
            if n > 0 {
                idx = Some(n);
            }
        }
        if let Some(reason) = self.should_full_promote() {
            self.promote_stable(&mut st, &reason);
            return self.persist(st);
        }
        if self.cx.aborted() {
            if n > 0 {
                let back_to_stable = st.stable_rs.as_deref() == Some(self.cx.rs.new_hash.as_str());
                st.current_step_index = Some(if back_to_stable { n } else { 0 });
            }
            return self.persist(st);
        }
        if self.completed_current_step()
            && let (Some(step), Some(i)) = (self.current_step(), idx.as_mut())
        {
            let desc = step_string(step);
            *i += 1;
            if let Some(c) = st.canary.as_mut() {
                c.current_step_analysis_run_status = None;
            }
            self.cx.event(
                false,
                REASON_ROLLOUT_STEP_COMPLETED,
                format!("Rollout step {i}/{n} completed ({desc})"),
            );
            self.cx
                .pause
                .remove
                .push(PAUSE_REASON_CANARY_PAUSE_STEP.into());
        }
        st.current_step_index = idx;
        self.persist(st)
    }

    fn promote_stable(&mut self, st: &mut RolloutStatus, reason: &str) {
        let n = self.step_count();
        self.cx.promote_stable(st, reason);
        st.current_step_index = if n > 0 { Some(n) } else { None };
    }

    /// The current step waits indefinitely (pause, analysis, experiment) or the rollout is
    /// paused: no progress deadline runs.
    pub(super) fn is_indefinite_step(&self) -> bool {
        if let Some(s) = self.current_step()
            && (s.experiment.is_some() || s.analysis.is_some() || s.pause.is_some())
        {
            return true;
        }
        get_condition(&self.cx.prev, CONDITION_PAUSED).is_some_and(|c| c.status == "True")
    }
}
