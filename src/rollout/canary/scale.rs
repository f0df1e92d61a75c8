//! Canary scaling: the weight the current step asks for, the surge and unavailability
//! fenceposts, and Argo's order of resizes (stable, then new, then older ReplicaSets).

use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::Canary;
use crate::api::consts::*;
use crate::rollout::delay::{deadline, deadline_from, has_deadline};
use crate::rollout::observed::RsExt;
use crate::rollout::replicas::{
    BasicCanaryInput, RsCounts, basic_canary_counts, resolve_fenceposts, scale_down_older,
};
use crate::rollout::services::{find, selector_hash};
use crate::rollout::status::is_fully_promoted;
use crate::time::until;

const MAX_WEIGHT: i32 = 100;

impl Canary<'_> {
    /// Argo's `GetCurrentSetWeight` plus the "no distinct stable → full weight" rule.
    pub(super) fn desired_weight(&self) -> i32 {
        let p = &self.cx.prev;
        let stable = p.stable_rs.as_deref().unwrap_or("");
        if p.promote_full.unwrap_or(false)
            || stable.is_empty()
            || p.current_pod_hash.as_deref() == Some(stable)
        {
            return MAX_WEIGHT;
        }
        if p.abort.unwrap_or(false) {
            return 0;
        }
        let Some(idx) = self.current_index() else {
            return MAX_WEIGHT;
        };
        if idx as usize >= self.steps.len() {
            return MAX_WEIGHT;
        }
        self.steps[..=idx as usize]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0)
    }

    /// (maxSurge, maxUnavailable) in pods. An unparseable value cannot reach here (validation
    /// rejects it first); the fallback is the safest pair, no surge and one pod at a time.
    pub(super) fn fenceposts(&self) -> (i32, i32) {
        let canary = self.cx.ro.spec.strategy.canary.as_ref();
        resolve_fenceposts(
            canary.and_then(|c| c.max_surge.as_ref()),
            canary.and_then(|c| c.max_unavailable.as_ref()),
            self.cx.replicas,
        )
        .unwrap_or((0, 1))
    }

    /// Counts of the ReplicaSets that are neither new nor stable.
    pub(super) fn older_counts(&self) -> Vec<RsCounts> {
        self.cx.rs.others.iter().map(|rs| rs.counts()).collect()
    }

    /// (desired new, desired stable) for a basic canary. Without a distinct stable the new
    /// ReplicaSet targets all replicas, still bounded by the surge headroom.
    pub(super) fn desired_counts(&self) -> (i32, i32) {
        if self.routed() {
            // The canary follows the weights this reconcile sets, the stable the ones in place
            // (Argo: stable scaling lags the weight change by one reconcile).
            let prev = self
                .cx
                .prev
                .canary
                .as_ref()
                .and_then(|c| c.weights.as_ref());
            let (canary, _) = self.routed_counts(self.new_weights.as_ref());
            let (_, stable) = self.routed_counts(prev);
            return (canary, stable);
        }
        let (surge, unavailable) = self.fenceposts();
        let older = self.older_counts();
        basic_canary_counts(&BasicCanaryInput {
            replicas: self.cx.replicas,
            weight: self.desired_weight(),
            max_weight: MAX_WEIGHT,
            max_surge: surge,
            max_unavailable: unavailable,
            new: self.cx.rs.new_rs.map(|rs| rs.counts()),
            stable: self.cx.rs.stable_distinct().map(|rs| rs.counts()),
            older: &older,
        })
    }

    /// A manual pause or an inconclusive analysis holds every resize.
    fn halted(&self) -> bool {
        self.cx.ro.spec.paused.unwrap_or(false)
            || self
                .cx
                .prev
                .pause_conditions
                .iter()
                .flatten()
                .any(|c| c.reason == PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN)
    }

    /// Scale stable, then new, then older ReplicaSets, stopping after the first kind that changed
    /// (as Argo does): each decision then sees the availability that the previous one produced.
    /// Returns whether any size changed.
    pub(super) fn scale(&mut self) -> bool {
        if self.halted() || self.cx.rs.creating {
            return false;
        }
        let (desired_new, desired_stable) = self.desired_counts();
        let replicas = self.cx.replicas;
        if let Some(stable) = self.cx.rs.stable_distinct()
            && self.cx.plan.scale(stable, desired_stable, replicas)
        {
            return true;
        }
        if self.routed() {
            if let Some(new) = self.cx.rs.new_rs
                && self.scale_new_routed(new, desired_new)
            {
                return true;
            }
            return self.scale_down_older_routed();
        }
        if let Some(new) = self.cx.rs.new_rs
            && self.cx.plan.scale(new, desired_new, replicas)
        {
            return true;
        }
        let (_, unavailable) = self.fenceposts();
        // Drained newest revision first.
        let mut older: Vec<&ReplicaSet> = self.cx.rs.others.clone();
        older.sort_by_key(|rs| std::cmp::Reverse((rs.revision().unwrap_or(0), rs.created())));
        let counts: Vec<RsCounts> = older.iter().map(|rs| rs.counts()).collect();
        let sizes = scale_down_older(
            replicas,
            unavailable,
            self.cx.rs.new_rs.map(|rs| rs.counts()),
            self.cx.rs.stable_distinct().map(|rs| rs.counts()),
            &counts,
        );
        let mut scaled = false;
        for (rs, size) in older.into_iter().zip(sizes) {
            if size < rs.spec_replicas() {
                scaled |= self.cx.plan.scale(rs, size, replicas);
            }
        }
        scaled
    }

    /// Argo's `reconcileNewReplicaSet` for a routed canary: after an abort the canary keeps its
    /// pods until `abortScaleDownDelaySeconds` past the moment stable could take all traffic.
    fn scale_new_routed(&mut self, new: &ReplicaSet, want: i32) -> bool {
        let r = self.cx.replicas;
        let delay_on_abort = self.cx.aborted() && self.cx.rs.stable_distinct().is_some();
        if let (true, Some(delay)) = (delay_on_abort, self.abort_delay()) {
            match deadline(new) {
                Some(at) if at > self.cx.now => {
                    self.wake_at(at);
                    return false;
                }
                Some(_) => return self.cx.plan.scale(new, 0, r),
                None if has_deadline(new) => {}
                None => {
                    let stable_ready = self
                        .cx
                        .rs
                        .stable_distinct()
                        .is_some_and(|s| s.available() >= r);
                    if stable_ready {
                        let value = deadline_from(self.cx.now, delay);
                        self.cx
                            .plan
                            .update_for(new.name())
                            .annotations
                            .insert(ANNOTATION_SCALE_DOWN_DEADLINE.into(), value);
                        self.cx
                            .requeue
                            .push(Duration::from_secs(delay.max(0) as u64));
                    }
                    return false;
                }
            }
        }
        self.cx.plan.scale(new, want, r)
    }

    fn wake_at(&mut self, at: jiff::Timestamp) {
        let d = until(self.cx.now, at).unwrap_or(Duration::ZERO) + Duration::from_millis(50);
        self.cx.requeue.push(d);
    }

    /// Argo's `scaleDownOldReplicaSetsForCanary` with traffic routing: the previous stable keeps
    /// its pods for `scaleDownDelaySeconds` (the `scale-down-deadline` annotation) once the
    /// rollout is fully promoted, an intermediate revision is scaled down at once; a ReplicaSet
    /// still named by the status or a Service is left alone; never below minimum availability.
    fn scale_down_older_routed(&mut self) -> bool {
        let r = self.cx.replicas;
        let (_, unavailable) = self.fenceposts();
        let available: i32 = self.cx.rs.all.iter().map(|rs| rs.available()).sum();
        let mut max_down = available - (r - unavailable);
        if max_down <= 0 {
            return false;
        }
        let mut older: Vec<&ReplicaSet> = self.cx.rs.others.clone();
        older.sort_by_key(|rs| std::cmp::Reverse(rs.revision().unwrap_or(0)));
        let promoted = is_fully_promoted(&self.cx.prev);
        let c = self.cx.ro.spec.strategy.canary.as_ref();
        let dynamic = c.and_then(|c| c.dynamic_stable_scale).unwrap_or(false);
        let delay = c
            .and_then(|c| c.scale_down_delay_seconds)
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY_SECONDS);
        let limit = c
            .and_then(|c| c.scale_down_delay_revision_limit)
            .unwrap_or(i32::MAX);
        let mut annotated = 0;
        let mut scaled = false;
        for rs in older {
            if self.referenced(rs) || rs.spec_replicas() == 0 {
                continue;
            }
            if max_down <= 0 {
                break;
            }
            let mut want = 0;
            if (promoted || has_deadline(rs)) && !dynamic {
                if !has_deadline(rs) {
                    if annotated < limit && delay > 0 {
                        annotated += 1;
                        want = rs.spec_replicas();
                        let value = deadline_from(self.cx.now, delay);
                        self.cx
                            .plan
                            .update_for(rs.name())
                            .annotations
                            .insert(ANNOTATION_SCALE_DOWN_DEADLINE.into(), value);
                        self.cx.requeue.push(Duration::from_secs(delay as u64));
                    }
                } else {
                    annotated += 1;
                    if annotated <= limit
                        && let Some(at) = deadline(rs).filter(|at| *at > self.cx.now)
                    {
                        self.wake_at(at);
                        want = rs.spec_replicas();
                    }
                }
            }
            if want == rs.spec_replicas() {
                continue;
            }
            max_down -= rs.spec_replicas() - want;
            scaled |= self.cx.plan.scale(rs, want, r);
        }
        scaled
    }

    /// Argo's `isReplicaSetReferenced` for a canary: named by the status or selected by the
    /// canary or stable Service.
    fn referenced(&self, rs: &ReplicaSet) -> bool {
        let Some(h) = rs.hash().filter(|h| !h.is_empty()) else {
            return false;
        };
        let p = &self.cx.prev;
        let w = p.canary.as_ref().and_then(|c| c.weights.as_ref());
        let refs = [
            p.stable_rs.as_deref(),
            p.current_pod_hash.as_deref(),
            w.and_then(|w| w.canary.pod_template_hash.as_deref()),
            w.and_then(|w| w.stable.pod_template_hash.as_deref()),
        ];
        if refs.contains(&Some(h)) {
            return true;
        }
        let c = self.cx.ro.spec.strategy.canary.as_ref();
        [
            c.and_then(|c| c.canary_service.as_ref()),
            c.and_then(|c| c.stable_service.as_ref()),
        ]
        .into_iter()
        .flatten()
        .any(|n| selector_hash(find(self.cx.obs.services, n)) == h)
    }
}
