//! Canary scaling: the weight the current step asks for, the surge and unavailability
//! fenceposts, and Argo's order of resizes (stable, then new, then older ReplicaSets).

use k8s_openapi::api::apps::v1::ReplicaSet;

use super::Canary;
use crate::api::consts::*;
use crate::rollout::observed::RsExt;
use crate::rollout::replicas::{
    BasicCanaryInput, RsCounts, basic_canary_counts, resolve_fenceposts, scale_down_older,
};

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
}
