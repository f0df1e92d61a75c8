//! The canary strategy (reference §1.3, §1.11): Argo's reconcile order over the shared stages —
//! revision sync, restart, history GC, analysis, then scaling (`scale`), the pause step and step
//! advancement or promotion (`steps`), ending in the shared status stage.

mod analysis;
mod scale;
mod steps;
mod traffic;
#[cfg(test)]
mod traffic_tests;

use crate::api::rollout::{CanaryStep, RolloutStatus};
use crate::api::selector::format_selector;
use crate::rollout::classify::rollback_within_window;
use crate::rollout::ctx::Ctx;
use crate::rollout::effects::Plan;
use crate::rollout::ephemeral;
use crate::rollout::hash::json_hash;
use crate::rollout::observed::RsExt;
use crate::rollout::restart::reconcile_restart;
use crate::rollout::revision::{gc_history, sync_revision};
use crate::rollout::status::{is_fully_promoted, plan_invalid};

/// One canary reconcile: the shared context plus what only a canary tracks.
struct Canary<'a> {
    cx: Ctx<'a>,
    steps: &'a [CanaryStep],
    /// The current step's AnalysisRun completed Successful.
    step_analysis_successful: bool,
    /// `status.canary.weights` as this reconcile leaves it (routed canaries).
    new_weights: Option<crate::api::rollout::TrafficWeights>,
}

/// Plan one reconcile of a canary Rollout.
pub fn plan(cx: Ctx) -> Plan {
    let steps: &[CanaryStep] = cx.ro.spec.canary_steps();
    Canary {
        cx,
        steps,
        step_analysis_successful: false,
        new_weights: None,
    }
    .run()
}

impl<'a> Canary<'a> {
    fn step_count(&self) -> i32 {
        self.steps.len() as i32
    }

    fn current_index(&self) -> Option<i32> {
        if self.steps.is_empty() {
            None
        } else {
            Some(self.cx.prev.current_step_index.unwrap_or(0))
        }
    }

    fn current_step(&self) -> Option<&'a CanaryStep> {
        let i = self.current_index()?;
        self.steps.get(usize::try_from(i).ok()?)
    }

    fn rollback_within_window(&self) -> bool {
        rollback_within_window(self.cx.ro, &self.cx.rs)
    }

    fn run(mut self) -> Plan {
        // Argo's `ComputeStepHash` marshals the steps field itself: no steps hash as `null`.
        let steps_field = self
            .cx
            .ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.steps.as_ref());
        let step_hash = json_hash(&steps_field);
        let new_hash = self.cx.rs.new_hash.clone();
        let pod_changed = self
            .cx
            .prev
            .current_pod_hash
            .as_deref()
            .is_some_and(|h| !h.is_empty() && h != new_hash);
        let steps_changed = self
            .cx
            .prev
            .current_step_hash
            .as_deref()
            .is_none_or(|h| h.is_empty() || h != step_hash);
        // A new revision (or new steps) first records the change alone; the ReplicaSet is
        // created by the next reconcile, as Argo does (`PodTemplateOrStepsChanged`).
        sync_revision(&mut self.cx, !(pod_changed || steps_changed));
        let mut st = self.base_status(step_hash);

        if pod_changed || steps_changed {
            self.reset_for_new_revision(&mut st);
            return self.persist(st);
        }

        let (_, unavailable) = self.fenceposts();
        if reconcile_restart(&mut self.cx, &mut st, unavailable) {
            // Availability counts are stale until the evicted pods are replaced: stop here.
            self.cx.plan.requeue_after = self.cx.requeue_after();
            return self.cx.plan;
        }
        let roles = ephemeral::roles(self.cx.ro, &self.cx.rs);
        ephemeral::reconcile(&mut self.cx, &roles);
        gc_history(&mut self.cx);
        self.cx.release_unnamed_services();
        self.cx.reconcile_canary_services();
        self.reconcile_traffic(&mut st);
        self.new_weights = st.canary.as_ref().and_then(|c| c.weights.clone());
        if let Err(msg) = self.reconcile_analysis(&mut st) {
            let name = self.cx.ro.metadata.name.clone().unwrap_or_default();
            let msg = format!("The Rollout \"{name}\" is invalid: {msg}");
            let cx = &self.cx;
            return plan_invalid(cx.ro, &cx.prev, &cx.generation, &msg, cx.now);
        }
        if self.cx.pause.add.is_empty() {
            let scaled = self.scale();
            if !scaled {
                self.reconcile_pause();
            }
        }
        self.sync_status(st)
    }

    /// A new revision (or new steps): reset the step state and stop; scaling starts next time.
    /// A rollback to the stable ReplicaSet, or inside the rollback window, skips the steps.
    fn reset_for_new_revision(&mut self, st: &mut RolloutStatus) {
        self.cx.pause.clear = true;
        self.cx.pause.remove_abort = true;
        st.promote_full = None;
        if let Some(c) = st.canary.as_mut() {
            c.current_step_analysis_run_status = None;
            c.current_background_analysis_run_status = None;
            c.step_plugin_statuses = None;
        }
        st.restarted_at = self.cx.ro.spec.restart_at.clone();
        st.current_step_index = if self.steps.is_empty() { None } else { Some(0) };
        if self.cx.rs.creating || self.steps.is_empty() {
            return;
        }
        if self.cx.stable_hash() == self.cx.rs.new_hash {
            self.cx
                .event(false, "SkipSteps", "Rollback to stable ReplicaSets".into());
            st.current_step_index = Some(self.step_count());
        } else if self.rollback_within_window()
            && self.cx.rs.new_rs.is_some_and(|rs| rs.spec_replicas() > 0)
        {
            self.cx.event(
                false,
                "SkipSteps",
                "Rollback to active ReplicaSets within RollbackWindow".into(),
            );
            st.current_step_index = Some(self.step_count());
        }
    }

    /// The observed status with the counts, selector and hashes of this reconcile.
    fn base_status(&self, step_hash: String) -> RolloutStatus {
        let cx = &self.cx;
        let mut st = cx.prev.clone();
        st.current_pod_hash = Some(cx.rs.new_hash.clone());
        let sum = |f: fn(&k8s_openapi::api::apps::v1::ReplicaSet) -> i32| -> i32 {
            cx.rs.all.iter().map(|rs| f(rs)).sum()
        };
        st.replicas = Some(sum(RsExt::status_replicas));
        st.updated_replicas = Some(cx.rs.new_rs.map_or(0, RsExt::status_replicas));
        st.ready_replicas = Some(sum(RsExt::ready));
        st.available_replicas = Some(sum(RsExt::available));
        st.hpa_replicas = st.replicas;
        st.selector = cx.ro.spec.selector.as_ref().map(format_selector);
        let promote_full = cx.prev.promote_full.unwrap_or(false)
            && cx.prev.stable_rs.as_ref() != Some(&cx.rs.new_hash);
        st.promote_full = promote_full.then_some(true);
        st.current_step_hash = Some(step_hash);
        st
    }

    /// Hand the status to the shared status stage.
    fn persist(self, st: RolloutStatus) -> Plan {
        let indefinite = self.is_indefinite_step();
        let (replicas, steps) = (self.cx.replicas, self.step_count());
        let generation_observed =
            self.cx.prev.observed_generation.as_deref() == Some(self.cx.generation.as_str());
        let healthy = move |st: &RolloutStatus| healthy(replicas, steps, generation_observed, st);
        self.cx.finish(st, indefinite, &healthy)
    }
}

/// `RolloutHealthy` for a canary.
fn healthy(replicas: i32, steps: i32, generation_observed: bool, st: &RolloutStatus) -> bool {
    let all_steps = steps == 0 || st.current_step_index.is_none_or(|i| i == steps);
    st.updated_replicas.unwrap_or(0) == replicas
        && st.available_replicas.unwrap_or(0) == replicas
        && generation_observed
        && all_steps
        && is_fully_promoted(st)
        && st.replicas.unwrap_or(0) == replicas
}
