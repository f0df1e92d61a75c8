//! The blue-green strategy (reference §1.6, §1.13; Argo's `rollout/bluegreen.go`,
//! `rollout/service.go`, `utils/replicaset/bluegreen.go`), in Argo's reconcile order over the
//! shared stages: revision sync (the new ReplicaSet is created at once), the preview Service,
//! restart, then the ReplicaSets (`scale`), the pause, the active Service switch, the pre- and
//! post-promotion analyses, and the status, ending in the shared status stage.
//!
//! The Services are read as observed and as this reconcile leaves them: a switch planned here
//! is what `status.blueGreen.*Selector` records, as Argo records the Service it just patched.

mod scale;
#[cfg(test)]
mod tests;

use k8s_openapi::api::apps::v1::ReplicaSet;

use crate::api::analysis::AnalysisRun;
use crate::api::consts::*;
use crate::api::rollout::{BlueGreenStatus, BlueGreenStrategy, RolloutStatus};
use crate::api::selector::format_selector;
use crate::rollout::analysis::{AnalysisInputs, reconcile_analysis};
use crate::rollout::classify::{is_fast_rollback, rollback_within_window};
use crate::rollout::ctx::Ctx;
use crate::rollout::effects::Plan;
use crate::rollout::ephemeral;
use crate::rollout::observed::RsExt;
use crate::rollout::replicas::value_from_int_or_percent;
use crate::rollout::restart::reconcile_restart;
use crate::rollout::revision::sync_revision;
use crate::rollout::services::{find, selector_hash};
use crate::rollout::status::{get_condition, is_fully_promoted, plan_invalid};

/// One blue-green reconcile: the shared context plus what only blue-green tracks.
struct BlueGreen<'a> {
    cx: Ctx<'a>,
    bg: &'a BlueGreenStrategy,
    /// The hash each Service selects once this reconcile's switches apply.
    active_sel: String,
    preview_sel: String,
    /// The runs the observed status names as current (Argo's `currentArs` before
    /// `reconcileAnalysisRuns` replaces them).
    pre_run: Option<&'a AnalysisRun>,
    post_run: Option<&'a AnalysisRun>,
    /// The current post-promotion run's phase once the analysis stage ran.
    post_phase: String,
}

/// Plan one reconcile of a blue-green Rollout.
pub fn plan(cx: Ctx) -> Plan {
    let Some(bg) = cx.ro.spec.strategy.blue_green.as_ref() else {
        return cx.plan;
    };
    let services = cx.obs.services;
    let active_sel = selector_hash(find(services, &bg.active_service));
    let preview_sel = bg
        .preview_service
        .as_deref()
        .map(|n| selector_hash(find(services, n)))
        .unwrap_or_default();
    let named = |st: Option<&crate::api::rollout::RolloutAnalysisRunStatus>| {
        let name = st?.name.as_str();
        cx.obs
            .analysis_runs
            .iter()
            .find(|r| r.metadata.name.as_deref() == Some(name))
    };
    let prev_bg = cx.prev.blue_green.clone().unwrap_or_default();
    let pre_run = named(prev_bg.pre_promotion_analysis_run_status.as_ref());
    let post_run = named(prev_bg.post_promotion_analysis_run_status.as_ref());
    BlueGreen {
        cx,
        bg,
        active_sel,
        preview_sel,
        pre_run,
        post_run,
        post_phase: phase(post_run).to_string(),
    }
    .run()
}

fn phase(run: Option<&AnalysisRun>) -> &str {
    run.and_then(|r| r.status.as_ref())
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

impl<'a> BlueGreen<'a> {
    fn run(mut self) -> Plan {
        sync_revision(&mut self.cx, true);
        self.cx.release_unnamed_services();
        self.reconcile_preview_service();
        let mut st = self.base_status();
        if self.pod_spec_changed() {
            self.reset(&mut st);
            return self.sync_status(st);
        }
        let unavailable = self.max_unavailable();
        if reconcile_restart(&mut self.cx, &mut st, unavailable) {
            self.cx.plan.requeue_after = self.cx.requeue_after();
            return self.cx.plan;
        }
        self.reconcile_replica_sets();
        self.reconcile_pause();
        self.reconcile_active_service();
        if let Err(msg) = self.reconcile_analysis(&mut st) {
            let name = self.cx.ro.metadata.name.clone().unwrap_or_default();
            let msg = format!("The Rollout \"{name}\" is invalid: {msg}");
            let cx = &self.cx;
            return plan_invalid(cx.ro, &cx.prev, &cx.generation, &msg, cx.now);
        }
        // Preview metadata on the new ReplicaSet, active metadata on the stable one.
        let roles = ephemeral::roles(self.cx.ro, &self.cx.rs);
        ephemeral::reconcile(&mut self.cx, &roles);
        self.sync_status(st)
    }

    fn new_hash(&self) -> String {
        self.cx.rs.new_hash.clone()
    }

    /// Argo's `CheckPodSpecChange`: the recorded pod hash is not the new ReplicaSet's.
    fn pod_spec_changed(&self) -> bool {
        let cur = self.cx.prev.current_pod_hash.as_deref().unwrap_or("");
        !cur.is_empty() && cur != self.cx.rs.new_hash
    }

    /// Argo's `haltProgress`: a user pause or an inconclusive analysis stops every switch.
    fn halted(&self) -> bool {
        self.cx.ro.spec.paused.unwrap_or(false)
            || self.has_pause(PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN)
    }

    fn has_pause(&self, reason: &str) -> bool {
        self.cx
            .prev
            .pause_conditions
            .iter()
            .flatten()
            .any(|p| p.reason == reason)
    }

    /// `MaxUnavailable` for a blue-green restart: `maxUnavailable` (default 25 %) of the
    /// replicas, rounded down, at most all of them.
    fn max_unavailable(&self) -> i32 {
        let r = self.cx.replicas;
        let v = self.bg.max_unavailable.clone().unwrap_or(
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("25%".into()),
        );
        value_from_int_or_percent(&v, r, false).unwrap_or(0).min(r)
    }

    /// Argo's `isFastRollback` with blue-green's scale-down window.
    fn fast_rollback(&self) -> bool {
        is_fast_rollback(self.cx.ro, &self.cx.prev, &self.cx.rs, self.cx.now)
    }

    fn rollback_within_window(&self) -> bool {
        rollback_within_window(self.cx.ro, &self.cx.rs)
    }

    /// Argo's `reconcilePreviewService`: the preview Service follows the newest ReplicaSet.
    fn reconcile_preview_service(&mut self) {
        let Some(name) = self.bg.preview_service.clone().filter(|n| !n.is_empty()) else {
            return;
        };
        if self.halted() {
            return;
        }
        let hash = self.new_hash();
        self.preview_sel = self.cx.switch_service(&name, &hash);
    }

    /// Argo's `calculateBaseStatus` for blue-green: counts over every ReplicaSet, the canary
    /// fields dropped (Argo starts blue-green's status afresh).
    fn base_status(&self) -> RolloutStatus {
        let cx = &self.cx;
        let mut st = cx.prev.clone();
        st.current_pod_hash = Some(cx.rs.new_hash.clone());
        let sum = |f: fn(&ReplicaSet) -> i32| -> i32 { cx.rs.all.iter().map(|rs| f(rs)).sum() };
        st.replicas = Some(sum(RsExt::status_replicas));
        st.updated_replicas = Some(cx.rs.new_rs.map_or(0, RsExt::status_replicas));
        st.ready_replicas = Some(sum(RsExt::ready));
        let promote_full = cx.prev.promote_full.unwrap_or(false)
            && cx.prev.stable_rs.as_ref() != Some(&cx.rs.new_hash);
        st.promote_full = promote_full.then_some(true);
        st.current_step_hash = None;
        st.current_step_index = None;
        st.canary = None;
        st
    }

    /// Argo's `resetRolloutStatus` on a new pod template.
    fn reset(&mut self, st: &mut RolloutStatus) {
        self.cx.pause.clear = true;
        self.cx.pause.remove_abort = true;
        st.restarted_at = self.cx.ro.spec.restart_at.clone();
        st.promote_full = None;
        let b = st.blue_green.get_or_insert_with(BlueGreenStatus::default);
        b.pre_promotion_analysis_run_status = None;
        b.post_promotion_analysis_run_status = None;
        b.scale_up_preview_check_point = None;
    }

    /// Argo's `ReadyForPause`: the new ReplicaSet is at, and has available, the size it should
    /// have now.
    fn ready_for_pause(&self) -> bool {
        let Some(new) = self.cx.rs.new_rs else {
            return false;
        };
        let want = self.new_replicas();
        new.spec_replicas() == want && new.available() == want
    }

    /// Argo's `IsSaturated`: the ReplicaSet runs, wants and has available all replicas.
    fn saturated(&self, rs: Option<&ReplicaSet>) -> bool {
        let Some(rs) = rs else { return false };
        let r = self.cx.replicas;
        let desired = rs
            .annotations()
            .get(ANNOTATION_DESIRED_REPLICAS)
            .and_then(|d| d.parse::<i32>().ok());
        rs.spec_replicas() == r && desired == Some(r) && rs.available() == r
    }

    /// Argo's `isBlueGreenFastTracked`: skip the pause.
    fn fast_tracked(&self) -> bool {
        self.fast_rollback()
            || self.cx.prev.promote_full.unwrap_or(false)
            || self.active_sel.is_empty()
            || self.active_sel == self.cx.rs.new_hash
    }

    fn needs_controller_pause(&self) -> bool {
        self.bg.auto_promotion_enabled == Some(false)
            || self.bg.auto_promotion_seconds.unwrap_or(0) > 0
    }

    fn check_point(&self) -> bool {
        self.cx
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.scale_up_preview_check_point)
            .unwrap_or(false)
    }

    /// Argo's `completedPrePromotionAnalysis`.
    fn completed_pre_promotion(&self) -> bool {
        self.bg.pre_promotion_analysis.is_none() || phase(self.pre_run) == ANALYSIS_PHASE_SUCCESSFUL
    }

    /// Argo's `CompletedBlueGreenPause`.
    fn completed_pause(&self) -> bool {
        if !self.cx.pause.add.is_empty() {
            return false;
        }
        if self.check_point() {
            return true;
        }
        let cond = self
            .cx
            .prev
            .pause_conditions
            .iter()
            .flatten()
            .find(|p| p.reason == PAUSE_REASON_BLUE_GREEN_PAUSE);
        if self.bg.auto_promotion_enabled.unwrap_or(true) {
            let secs = self.bg.auto_promotion_seconds.unwrap_or(0);
            if secs == 0 {
                return true;
            }
            return cond.is_some_and(|c| {
                crate::time::add_seconds(c.start_time.0, i64::from(secs)) < self.cx.now
            });
        }
        self.cx.prev.controller_pause.unwrap_or(false) && cond.is_none()
    }

    fn remove_pause(&mut self) {
        self.cx
            .pause
            .remove
            .push(PAUSE_REASON_BLUE_GREEN_PAUSE.into());
    }

    /// Argo's `reconcileBlueGreenPause`.
    fn reconcile_pause(&mut self) {
        if self.cx.prev.abort.unwrap_or(false) || !self.ready_for_pause() || self.halted() {
            return;
        }
        if self.fast_tracked() || self.check_point() || !self.needs_controller_pause() {
            self.remove_pause();
            return;
        }
        if !self.completed_pre_promotion() {
            return;
        }
        let cond = self
            .cx
            .prev
            .pause_conditions
            .iter()
            .flatten()
            .find(|p| p.reason == PAUSE_REASON_BLUE_GREEN_PAUSE)
            .cloned();
        match cond {
            Some(c) => {
                if self.completed_pause() {
                    self.remove_pause();
                } else if let Some(secs) = self.bg.auto_promotion_seconds.filter(|s| *s > 0) {
                    let at = crate::time::add_seconds(c.start_time.0, i64::from(secs) + 1);
                    let wait = crate::time::until(self.cx.now, at)
                        .unwrap_or(std::time::Duration::from_secs(1));
                    self.cx.requeue.push(wait);
                }
            }
            None => {
                if !self.cx.prev.controller_pause.unwrap_or(false) {
                    self.cx.pause.add.push(PAUSE_REASON_BLUE_GREEN_PAUSE.into());
                }
            }
        }
    }

    /// Argo's `reconcileActiveService`: once the new ReplicaSet is saturated and the pause and
    /// pre-promotion analysis are done (or the update is fast-tracked), the active Service
    /// points at it; an abort points it back at the stable ReplicaSet.
    fn reconcile_active_service(&mut self) {
        if self.halted() {
            return;
        }
        if !self.ready_for_pause() || !self.saturated(self.cx.rs.new_rs) {
            return;
        }
        let mut hash = self.active_sel.clone();
        if self.fast_tracked() || (self.completed_pause() && self.completed_pre_promotion()) {
            hash = self.new_hash();
        }
        if self.cx.prev.abort.unwrap_or(false) {
            hash = self.cx.stable_hash().to_string();
        }
        let name = self.bg.active_service.clone();
        self.active_sel = self.cx.switch_service(&name, &hash);
    }

    /// Argo's `reconcileAnalysisRuns` for blue-green.
    fn reconcile_analysis(&mut self, st: &mut RolloutStatus) -> Result<(), String> {
        let cx = &self.cx;
        let stable = cx.stable_hash().to_string();
        let cancel_all = is_fully_promoted(&cx.prev)
            || cx.aborted()
            || cx.prev.promote_full.unwrap_or(false)
            || self.fast_rollback()
            || stable.is_empty();
        let obs = cx.obs;
        let out = reconcile_analysis(&AnalysisInputs {
            ro: cx.ro,
            runs: obs.analysis_runs,
            gone: obs.gone_runs,
            templates: obs.templates,
            cluster_templates: obs.cluster_templates,
            replica_sets: &cx.rs.all,
            prev: &cx.prev,
            new_hash: &cx.rs.new_hash,
            stable_hash: &stable,
            revision: cx.rs.new_revision.to_string(),
            step_index: None,
            cancel_all,
            new_rs: cx.rs.new_rs,
        });
        let mut out = out;
        self.cx.take_analysis(&mut out)?;
        let b = st.blue_green.get_or_insert_with(BlueGreenStatus::default);
        b.pre_promotion_analysis_run_status = out.pre;
        b.post_promotion_analysis_run_status = out.post;
        // `shouldFullPromote` reads the post-promotion run as the analysis stage left it.
        self.post_phase = out.post_phase;
        Ok(())
    }

    /// Argo's `shouldFullPromote` for blue-green.
    fn should_full_promote(&self, st: &RolloutStatus) -> Option<String> {
        let cx = &self.cx;
        if cx.rs.stable_rs.is_none() {
            return Some("Initial deploy".into());
        }
        if self.active_sel.is_empty() {
            return Some("Initial deploy".into());
        }
        if Some(&self.active_sel) != st.current_pod_hash.as_ref() {
            return None;
        }
        if cx.prev.promote_full.unwrap_or(false) {
            return Some("Full promotion requested".into());
        }
        if self.fast_rollback() {
            if self.rollback_within_window() {
                return Some("Rollback within window".into());
            }
            return Some("Fast rollback".into());
        }
        if cx.aborted() {
            return None;
        }
        if self.bg.post_promotion_analysis.is_some() && self.post_phase != ANALYSIS_PHASE_SUCCESSFUL
        {
            return None;
        }
        Some("Completed blue-green update".into())
    }

    /// Argo's `calculateScaleUpPreviewCheckPoint`: a one-way trip-wire, set once the preview is
    /// at `previewReplicaCount`, the pre-promotion analysis passed and the pause is over.
    fn scale_up_check_point(&self) -> bool {
        let Some(count) = self.bg.preview_replica_count else {
            return false;
        };
        if self.check_point() {
            return true;
        }
        if !self.completed_pre_promotion() || !self.completed_pause() {
            return false;
        }
        self.cx.rs.new_rs.map_or(0, RsExt::available) == count
    }

    /// Argo's `syncRolloutStatusBlueGreen`, then the shared status stage.
    fn sync_status(mut self, mut st: RolloutStatus) -> Plan {
        if self.cx.prev.promote_full.unwrap_or(false) || self.rollback_within_window() {
            self.cx.pause.clear = true;
            self.cx.pause.remove_abort = true;
        }
        let check_point = if let Some(reason) = self.should_full_promote(&st) {
            self.cx.promote_stable(&mut st, &reason);
            false
        } else {
            self.scale_up_check_point()
        };
        let b = st.blue_green.get_or_insert_with(BlueGreenStatus::default);
        b.preview_selector = Some(self.preview_sel.clone()).filter(|s| !s.is_empty());
        b.active_selector = Some(self.active_sel.clone()).filter(|s| !s.is_empty());
        b.scale_up_preview_check_point = check_point.then_some(true);
        let active = (!self.active_sel.is_empty())
            .then(|| {
                self.cx
                    .rs
                    .all
                    .iter()
                    .copied()
                    .find(|rs| rs.hash() == Some(self.active_sel.as_str()))
            })
            .flatten();
        if let Some(a) = active {
            st.hpa_replicas = Some(a.status_replicas());
            st.selector = Some(format_selector(&a.spec.selector));
            st.available_replicas = Some(a.available());
            st.ready_replicas = Some(a.ready());
        } else {
            let all = &self.cx.rs.all;
            st.hpa_replicas = Some(all.iter().map(|rs| rs.status_replicas()).sum());
            st.selector = self.cx.ro.spec.selector.as_ref().map(format_selector);
            st.available_replicas = Some(all.iter().map(|rs| rs.available()).sum());
        }
        let min_available = self.saturated(active);
        let indefinite = get_condition(&self.cx.prev, CONDITION_PAUSED)
            .is_some_and(|c| c.status == CONDITION_TRUE);
        let replicas = self.cx.replicas;
        let preview_named = self
            .bg
            .preview_service
            .as_ref()
            .is_some_and(|p| !p.is_empty());
        let generation_observed =
            self.cx.prev.observed_generation.as_deref() == Some(self.cx.generation.as_str());
        let healthy = move |st: &RolloutStatus| {
            let b = st.blue_green.clone().unwrap_or_default();
            let active_done = b.active_selector == st.current_pod_hash;
            let preview_done = !preview_named || b.preview_selector == st.current_pod_hash;
            st.updated_replicas.unwrap_or(0) == replicas
                && st.available_replicas.unwrap_or(0) == replicas
                && generation_observed
                && active_done
                && preview_done
        };
        self.cx
            .finish_with_availability(st, indefinite, &healthy, Some(min_available))
    }
}
