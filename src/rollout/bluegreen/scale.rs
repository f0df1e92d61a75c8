//! Blue-green ReplicaSets (Argo's `reconcileBlueGreenReplicaSets`): scale-down deadlines off the
//! new and stable ReplicaSets, the stable one at full size, the new one at its preview or full
//! size (held up for `abortScaleDownDelaySeconds` after an abort), and the older ones kept for
//! `scaleDownDelaySeconds` with a `scale-down-deadline` annotation, then scaled to zero.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;

use super::{BlueGreen, phase};
use crate::api::consts::*;
use crate::rollout::delay::{deadline, deadline_from, has_deadline};
use crate::rollout::observed::RsExt;
use crate::rollout::revision::gc_history;
use crate::rollout::services::{find, selector_hash};
use crate::time::until;

impl BlueGreen<'_> {
    /// Argo's `NewRSNewReplicas` for blue-green.
    pub(super) fn new_replicas(&self) -> i32 {
        let r = self.cx.replicas;
        let Some(preview) = self.bg.preview_replica_count else {
            return r;
        };
        let new_name = self.cx.rs.new_name.as_str();
        let prev_active = self
            .cx
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone())
            .unwrap_or_default();
        let active = self
            .cx
            .rs
            .all
            .iter()
            .find(|rs| !prev_active.is_empty() && rs.hash() == Some(prev_active.as_str()));
        if active.is_none_or(|a| a.name() == new_name) {
            return r;
        }
        if self.cx.prev.promote_full.unwrap_or(false) {
            return r;
        }
        if Some(self.cx.rs.new_hash.as_str()) != self.cx.prev.current_pod_hash.as_deref() {
            return preview;
        }
        let not_paused = !self.cx.ro.spec.paused.unwrap_or(false)
            && self
                .cx
                .prev
                .pause_conditions
                .as_ref()
                .is_none_or(|p| p.is_empty());
        if not_paused && self.check_point() {
            return r;
        }
        preview
    }

    /// `abortScaleDownDelaySeconds` as Argo reads it: `None` means never scale down.
    fn abort_delay(&self) -> Option<i32> {
        match self.bg.abort_scale_down_delay_seconds {
            Some(0) => None,
            Some(s) => Some(s),
            None => Some(DEFAULT_SCALE_DOWN_DELAY_SECONDS),
        }
    }

    /// Argo's `shouldDelayScaleDownOnAbort`.
    fn delay_scale_down_on_abort(&self) -> bool {
        self.cx.aborted() && self.cx.rs.stable_rs.is_some() && self.abort_delay().is_some()
    }

    fn set_deadline(&mut self, rs: &ReplicaSet, secs: i32) {
        let value = deadline_from(self.cx.now, secs);
        self.cx
            .plan
            .update_for(rs.name())
            .annotations
            .insert(ANNOTATION_SCALE_DOWN_DEADLINE.into(), value);
        self.cx
            .requeue
            .push(Duration::from_secs(secs.max(0) as u64));
    }

    fn remove_deadline(&mut self, rs: &ReplicaSet) {
        if has_deadline(rs) {
            let u = self.cx.plan.update_for(rs.name());
            u.remove_annotations
                .push(ANNOTATION_SCALE_DOWN_DEADLINE.into());
        }
    }

    /// Look again when `at` passes.
    fn wake_at(&mut self, at: Timestamp) {
        // Deadlines are whole seconds and compared strictly: just past `at` it has passed.
        let d = until(self.cx.now, at).unwrap_or(Duration::ZERO) + Duration::from_millis(50);
        self.cx.requeue.push(d);
    }

    pub(super) fn reconcile_replica_sets(&mut self) {
        // removeScaleDownDeadlines
        let new = self.cx.rs.new_rs;
        let stable = self.cx.rs.stable_rs;
        if let Some(n) = new
            && !self.delay_scale_down_on_abort()
        {
            self.remove_deadline(n);
        }
        if let Some(s) = stable
            && new.is_none_or(|n| n.name() != s.name())
        {
            self.remove_deadline(s);
        }
        let r = self.cx.replicas;
        if let Some(s) = stable {
            self.cx.plan.scale(s, r, r);
        }
        self.reconcile_new_replica_set();
        self.scale_down_older();
        gc_history(&mut self.cx);
    }

    /// Argo's `reconcileNewReplicaSet` (blue-green part).
    fn reconcile_new_replica_set(&mut self) {
        let Some(new) = self.cx.rs.new_rs else {
            self.scale_created();
            return;
        };
        let r = self.cx.replicas;
        let mut want = self.new_replicas();
        if self.delay_scale_down_on_abort() {
            if has_deadline(new) {
                match deadline(new) {
                    Some(at) if at > self.cx.now => {
                        self.wake_at(at);
                        self.cx.plan.scale(new, new.spec_replicas(), r);
                        return;
                    }
                    Some(_) => want = 0,
                    // Argo logs an unreadable deadline and scales as usual.
                    None => {}
                }
            } else if let Some(delay) = self.abort_delay() {
                self.cx.plan.scale(new, new.spec_replicas(), r);
                let stable_ready = self.cx.rs.stable_rs.is_some_and(|s| s.available() >= r);
                if stable_ready {
                    self.set_deadline(new, delay);
                }
                return;
            }
        }
        self.cx.plan.scale(new, want, r);
    }

    /// Argo scales the ReplicaSet it just created (at 0) in the same reconcile; Sluice creates
    /// it at that size, with the same `ScalingReplicaSet` event.
    fn scale_created(&mut self) {
        let want = self.new_replicas();
        let name = self.cx.rs.new_name.clone();
        let revision = self.cx.rs.new_revision;
        let Some(rs) = self.cx.plan.create.as_mut() else {
            return;
        };
        if want <= 0 {
            return;
        }
        rs.spec.replicas = Some(want);
        self.cx.event(
            false,
            REASON_SCALING_REPLICA_SET,
            format!("Scaled up ReplicaSet {name} (revision {revision}) from 0 to {want}"),
        );
    }

    /// Argo's `isReplicaSetReferenced`: a ReplicaSet a status selector or a Service still points
    /// at is never scaled down.
    fn referenced(&self, rs: &ReplicaSet) -> bool {
        let Some(h) = rs.hash().filter(|h| !h.is_empty()) else {
            return false;
        };
        let p = &self.cx.prev;
        let b = p.blue_green.clone().unwrap_or_default();
        let refs = [
            p.stable_rs.clone(),
            p.current_pod_hash.clone(),
            b.active_selector,
            b.preview_selector,
        ];
        if refs.iter().any(|r| r.as_deref() == Some(h)) {
            return true;
        }
        let services = self.cx.obs.services;
        [
            Some(&self.bg.active_service),
            self.bg.preview_service.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter(|n| !n.is_empty())
        .any(|n| find(services, n).is_some() && selector_hash(find(services, n)) == h)
    }

    /// Argo's `scaleDownOldReplicaSetsForBlueGreen` with `scaleDownDelayHelper`.
    fn scale_down_older(&mut self) {
        let mut older: Vec<&ReplicaSet> = self
            .cx
            .rs
            .others
            .iter()
            .copied()
            .filter(|rs| rs.spec_replicas() > 0)
            .collect();
        if older.is_empty() || self.has_pause(PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN) {
            return;
        }
        if self.bg.post_promotion_analysis.is_some()
            && self.bg.scale_down_delay_seconds.is_none()
            && !self.skip_post_promotion()
            && phase(self.post_run) != ANALYSIS_PHASE_SUCCESSFUL
        {
            return;
        }
        older.sort_by_key(|rs| std::cmp::Reverse(rs.revision().unwrap_or(0)));
        let limit = self.bg.scale_down_delay_revision_limit.unwrap_or(i32::MAX);
        let delay = self
            .bg
            .scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS);
        let r = self.cx.replicas;
        let mut annotated = 0;
        for rs in older {
            if self.referenced(rs) {
                continue;
            }
            let mut want = 0;
            if !has_deadline(rs) {
                // A zero delay scales down at once (Argo writes no deadline and then keeps the
                // ReplicaSet up for good; see docs/decisions.md).
                if annotated < limit && delay > 0 {
                    annotated += 1;
                    want = rs.spec_replicas();
                    self.set_deadline(rs, delay);
                }
            } else {
                annotated += 1;
                if annotated <= limit {
                    match deadline(rs) {
                        Some(at) if at > self.cx.now => {
                            self.wake_at(at);
                            want = r;
                        }
                        Some(_) => {}
                        // Argo logs the unreadable deadline and scales the ReplicaSet down.
                        None => {}
                    }
                }
            }
            if want != rs.spec_replicas() {
                self.cx.plan.scale(rs, want, r);
            }
        }
    }

    /// Argo's `skipPostPromotionAnalysisRun`.
    pub(super) fn skip_post_promotion(&self) -> bool {
        let hash = self.cx.rs.new_hash.as_str();
        let active = self
            .cx
            .prev
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone())
            .unwrap_or_default();
        if self.cx.stable_hash() == hash || active != hash || hash.is_empty() {
            return true;
        }
        if self.post_run.is_some() {
            return false;
        }
        !self.saturated(self.cx.rs.new_rs)
    }
}
