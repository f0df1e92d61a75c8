//! A traffic-routed canary (reference §1.5, §1.10; Argo's `reconcileTrafficRouting`,
//! `CalculateReplicaCountsForTrafficRoutedCanary`, `GetCanaryReplicasOrWeight`,
//! `UseSetCanaryScale`, `calculateDesiredWeightOnAbortOrStableRollback`): the weight the routers
//! carry each reconcile, `status.canary.weights`, and the replica counts that follow from it
//! (stable kept full unless `dynamicStableScale`; canary sized by weight or `setCanaryScale`).
//! Routing is only planned when every router the spec names is one this version drives
//! (`support::drives_routing`); otherwise the rollout runs as a basic canary and says so.

use super::Canary;
use crate::api::consts::*;
use crate::api::rollout::{
    RolloutStatus, RolloutTrafficRouting, SetCanaryScale, TrafficWeights, WeightDestination,
};
use crate::rollout::effects::TrafficPlan;
use crate::rollout::observed::RsExt;
use crate::rollout::replicas::replica_progress_threshold_met;
use crate::rollout::status::is_fully_promoted;
use crate::rollout::support::drives_routing;

/// `ceil(weight × replicas / max)` (Argo's `trafficWeightToReplicas`).
pub fn weight_to_replicas(replicas: i32, weight: i32, max: i32) -> i32 {
    if max <= 0 {
        return replicas;
    }
    let v = (f64::from(weight) * f64::from(replicas) / f64::from(max)).ceil();
    v.clamp(f64::from(i32::MIN), f64::from(i32::MAX)) as i32
}

impl Canary<'_> {
    /// The routing block, when this version drives every router it names.
    pub(super) fn routing(&self) -> Option<&RolloutTrafficRouting> {
        let t = self
            .cx
            .ro
            .spec
            .strategy
            .canary
            .as_ref()?
            .traffic_routing
            .as_ref()?;
        drives_routing(t).then_some(t)
    }

    pub(super) fn routed(&self) -> bool {
        self.routing().is_some()
    }

    /// `maxTrafficWeight`, 100 unless set.
    pub(super) fn max_weight(&self) -> i32 {
        self.routing()
            .and_then(|t| t.max_traffic_weight)
            .filter(|w| *w > 0)
            .unwrap_or(100)
    }

    fn dynamic_stable_scale(&self) -> bool {
        self.cx
            .ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.dynamic_stable_scale)
            .unwrap_or(false)
    }

    /// `abortScaleDownDelaySeconds` as Argo reads it for a routed canary: `None` means never.
    pub(super) fn abort_delay(&self) -> Option<i32> {
        let c = self.cx.ro.spec.strategy.canary.as_ref()?;
        match c.abort_scale_down_delay_seconds {
            Some(0) => None,
            Some(s) => Some(s),
            None => Some(DEFAULT_SCALE_DOWN_DELAY_SECONDS),
        }
    }

    fn explicit_abort_delay(&self) -> bool {
        self.cx
            .ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.abort_scale_down_delay_seconds)
            .is_some_and(|s| s != 0)
    }

    /// Argo's `UseSetCanaryScale`.
    fn set_canary_scale(&self) -> Option<&SetCanaryScale> {
        self.routing()?;
        if self.cx.prev.abort.unwrap_or(false) && self.abort_delay().is_some() {
            return None;
        }
        let i = usize::try_from(self.current_index()?).ok()?;
        if i >= self.steps.len() {
            return None;
        }
        for step in self.steps[..=i].iter().rev() {
            if let Some(s) = &step.set_canary_scale {
                if s.match_traffic_weight.unwrap_or(false) {
                    return None;
                }
                return Some(s);
            }
        }
        None
    }

    /// Argo's `GetCurrentSetWeight` against `maxTrafficWeight`.
    fn current_set_weight(&self) -> i32 {
        if self.cx.prev.abort.unwrap_or(false) {
            return 0;
        }
        let Some(i) = self
            .current_index()
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < self.steps.len())
        else {
            return self.max_weight();
        };
        self.steps[..=i]
            .iter()
            .rev()
            .find_map(|s| s.set_weight)
            .unwrap_or(0)
    }

    /// Argo's `GetDesiredCanaryWeight`: on an abort with `dynamicStableScale`, the setWeight
    /// steps walked backwards as stable pods come up.
    fn desired_canary_weight(&self) -> i32 {
        let (Some(new), Some(stable)) = (self.cx.rs.new_rs, self.cx.rs.stable_distinct()) else {
            return self.current_set_weight();
        };
        if !(self.cx.prev.abort.unwrap_or(false) && self.dynamic_stable_scale()) {
            return self.current_set_weight();
        }
        let (r, max) = (self.cx.replicas, self.max_weight());
        let expected = r - stable.available();
        let canary = if self.explicit_abort_delay() {
            expected
        } else {
            expected.max(new.available())
        };
        self.steps
            .iter()
            .rev()
            .filter_map(|s| s.set_weight)
            .find(|w| weight_to_replicas(r, *w, max) < canary)
            .unwrap_or(0)
    }

    /// Argo's `GetCanaryReplicasOrWeight`: an explicit canary size, or the weight to size by.
    fn canary_replicas_or_weight(&self) -> (Option<i32>, i32) {
        let p = &self.cx.prev;
        let stable = p.stable_rs.as_deref().unwrap_or("");
        if p.promote_full.unwrap_or(false)
            || stable.is_empty()
            || p.current_pod_hash.as_deref() == Some(stable)
        {
            return (None, self.max_weight());
        }
        if let Some(s) = self.set_canary_scale() {
            if let Some(n) = s.replicas {
                return (Some(n), 0);
            }
            if let Some(w) = s.weight {
                return (None, w);
            }
        }
        (None, self.desired_canary_weight())
    }

    /// Argo's `CheckMinPodsPerReplicaSet`.
    fn min_pods(&self, count: i32) -> i32 {
        if count == 0 {
            return 0;
        }
        let min = self
            .cx
            .ro
            .spec
            .strategy
            .canary
            .as_ref()
            .and_then(|c| c.min_pods_per_replica_set);
        match min {
            Some(m) => count.max(m.min(self.cx.replicas)),
            None => count,
        }
    }

    /// Argo's `CalculateReplicaCountsForTrafficRoutedCanary`: (canary, stable).
    pub(super) fn routed_counts(&self, weights: Option<&TrafficWeights>) -> (i32, i32) {
        let r = self.cx.replicas;
        let max = self.max_weight();
        let (explicit, weight) = self.canary_replicas_or_weight();
        let mut canary = match explicit {
            Some(n) => n,
            None => self.min_pods(weight_to_replicas(r, weight, max)),
        };
        if !self.dynamic_stable_scale() {
            return (canary, r);
        }
        let mut stable = weight_to_replicas(r, max - weight, max);
        if let Some(w) = weights {
            stable = stable.max(weight_to_replicas(r, w.stable.weight, max));
            if self.cx.prev.abort.unwrap_or(false) {
                canary = canary.max(weight_to_replicas(r, w.canary.weight, max));
            }
        }
        (self.min_pods(canary), self.min_pods(stable))
    }

    /// Argo's `AtDesiredReplicaCountsForCanary` with traffic routing: the canary at its size
    /// (or threshold), the stable ReplicaSet created at its size (unless dynamic); older
    /// ReplicaSets may still run, the routers send them nothing.
    pub(super) fn at_desired_routed(&self) -> bool {
        let (dn, ds) = self.routed_counts(None);
        if !replica_progress_threshold_met(
            self.progress_threshold(),
            self.cx.rs.new_rs.map(|rs| rs.counts()),
            dn,
        ) {
            return false;
        }
        if !self.dynamic_stable_scale() {
            let stable = self.cx.rs.stable_rs;
            if !stable.is_some_and(|s| s.spec_replicas() == ds && s.status_replicas() == ds) {
                return false;
            }
        }
        true
    }

    /// Argo's `calculateDesiredWeightOnAbortOrStableRollback`.
    fn abort_weight(&self) -> i32 {
        let (Some(stable), Some(_)) = (self.cx.rs.stable_distinct(), self.cx.rs.new_rs) else {
            return 0;
        };
        let r = self.cx.replicas;
        if !self.dynamic_stable_scale() || r == 0 {
            return 0;
        }
        let max = self.max_weight();
        let desired = self.desired_canary_weight();
        let expected = (max - max * stable.available() / r).max(0);
        let Some(current) = self.prev_weights().map(|w| w.canary.weight) else {
            return expected.max(desired);
        };
        if desired <= 0 {
            return expected.min(current);
        }
        let stable_weight = max * stable.available() / r;
        if stable_weight < max - desired {
            return current;
        }
        desired.min(current)
    }

    fn prev_weights(&self) -> Option<&TrafficWeights> {
        self.cx.prev.canary.as_ref()?.weights.as_ref()
    }

    /// Argo's `checkReplicasAvailable`: can `rs` take `weight` of the traffic?
    fn can_take(&self, rs: Option<&k8s_openapi::api::apps::v1::ReplicaSet>, weight: i32) -> bool {
        let Some(rs) = rs else { return false };
        let desired = weight * self.cx.replicas / self.max_weight();
        rs.available() >= desired
            || replica_progress_threshold_met(self.progress_threshold(), Some(rs.counts()), desired)
    }

    /// Argo's `reconcileTrafficRouting`: decide the weight, plan the routers' writes, record
    /// `status.canary.weights` (and `TrafficWeightUpdated`). Without routing, no weights.
    pub(super) fn reconcile_traffic(&mut self, st: &mut RolloutStatus) {
        let canary_st = st.canary.get_or_insert_with(Default::default);
        if self.routing().is_none() {
            canary_st.weights = None;
            return;
        }
        let max = self.max_weight();
        let new = self.cx.rs.new_rs;
        let mut remove_routes = false;
        let desired = if is_fully_promoted(&self.cx.prev) {
            remove_routes = true;
            0
        } else if self.cx.aborted() {
            remove_routes = true;
            self.abort_weight()
        } else if new.is_none_or(|rs| rs.available() == 0) {
            remove_routes = true;
            0
        } else if self.cx.prev.promote_full.unwrap_or(false) {
            remove_routes = true;
            if self.dynamic_stable_scale() {
                max * new.map_or(0, |rs| rs.available()) / self.cx.replicas.max(1)
            } else {
                self.prev_weights().map_or(0, |w| w.canary.weight)
            }
        } else if let Some(i) = self.current_index() {
            if !self.at_desired_routed() {
                self.steps[..usize::try_from(i).unwrap_or(0).min(self.steps.len())]
                    .iter()
                    .rev()
                    .find_map(|s| s.set_weight)
                    .unwrap_or(0)
            } else if i as usize != self.steps.len() {
                self.current_set_weight()
            } else {
                max
            }
        } else {
            0
        };
        // The stable pods must be able to take what is left to them.
        if !self.can_take(self.cx.rs.stable_rs, max - desired) {
            return;
        }
        let c = self.cx.ro.spec.strategy.canary.as_ref();
        let canary_service = c.and_then(|c| c.canary_service.clone()).unwrap_or_default();
        let stable_service = c.and_then(|c| c.stable_service.clone()).unwrap_or_default();
        let canary_hash = new.and_then(|rs| rs.hash()).unwrap_or("").to_string();
        let stable_hash = self
            .cx
            .rs
            .stable_rs
            .and_then(|rs| rs.hash())
            .unwrap_or("")
            .to_string();
        self.cx.plan.traffic = Some(TrafficPlan {
            canary_service: canary_service.clone(),
            stable_service: stable_service.clone(),
            canary_hash: canary_hash.clone(),
            stable_hash: stable_hash.clone(),
            canary_weight: desired,
            max_weight: max,
            remove_managed_routes: remove_routes,
        });
        let weights = TrafficWeights {
            canary: WeightDestination {
                weight: desired,
                service_name: Some(canary_service).filter(|s| !s.is_empty()),
                pod_template_hash: Some(canary_hash).filter(|s| !s.is_empty()),
            },
            stable: WeightDestination {
                weight: max - desired,
                service_name: Some(stable_service).filter(|s| !s.is_empty()),
                pod_template_hash: Some(stable_hash).filter(|s| !s.is_empty()),
            },
            additional: None,
            verified: None,
        };
        let prev = self.prev_weights().cloned();
        let modified = prev.as_ref().is_none_or(|p| {
            p.canary != weights.canary || p.stable != weights.stable || p.additional.is_some()
        });
        if modified {
            let detail = match &prev {
                None => format!("to {desired}"),
                Some(p) if p.canary.weight != desired => {
                    format!("from {} to {desired}", p.canary.weight)
                }
                Some(_) => String::new(),
            };
            self.cx.event(
                false,
                REASON_TRAFFIC_WEIGHT_UPDATED,
                format!("Traffic weight updated {detail}"),
            );
            if let Some(c) = st.canary.as_mut() {
                c.weights = Some(weights);
            }
        }
    }
}
