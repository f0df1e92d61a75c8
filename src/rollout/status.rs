//! Phase, message and conditions, computed from a status exactly as Argo Rollouts does
//! (reference §1.8), so dashboards, the Argo CD health check and our CLI agree.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::consts::*;
use crate::api::rollout::{RolloutCondition, RolloutSpec, RolloutStatus};
use crate::time::k8s_time;

/// A new condition stamped with `now` for both times.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> RolloutCondition {
    RolloutCondition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        last_update_time: Some(k8s_time(now)),
        last_transition_time: Some(k8s_time(now)),
    }
}

pub fn get_condition<'a>(status: &'a RolloutStatus, type_: &str) -> Option<&'a RolloutCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

pub fn reason_of(c: Option<&RolloutCondition>) -> &str {
    c.and_then(|c| c.reason.as_deref()).unwrap_or("")
}

/// Argo's `SetRolloutCondition`: no change when type, status and reason already match; the
/// transition time survives when only the reason changes. Returns whether anything changed.
pub fn set_condition(status: &mut RolloutStatus, mut cond: RolloutCondition) -> bool {
    let conds = status.conditions.get_or_insert_with(Vec::new);
    if let Some(cur) = conds.iter().find(|c| c.type_ == cond.type_) {
        if cur.status == cond.status && cur.reason == cond.reason {
            return false;
        }
        if cur.status == cond.status {
            cond.last_transition_time = cur.last_transition_time.clone();
        }
    }
    conds.retain(|c| c.type_ != cond.type_);
    conds.push(cond);
    true
}

pub fn remove_condition(status: &mut RolloutStatus, type_: &str) {
    if let Some(conds) = status.conditions.as_mut() {
        conds.retain(|c| c.type_ != type_);
        if conds.is_empty() {
            status.conditions = None;
        }
    }
}

pub fn replicas_or_default(spec: &RolloutSpec) -> i32 {
    spec.replicas.unwrap_or(1)
}

fn is_fully_promoted(status: &RolloutStatus) -> bool {
    status.stable_rs.as_deref().is_some_and(|s| !s.is_empty())
        && status.stable_rs == status.current_pod_hash
}

/// `CalculateRolloutPhase` (reference §1.8): the first matching row wins.
pub fn calculate_phase(spec: &RolloutSpec, status: &RolloutStatus) -> (String, String) {
    for c in status.conditions.iter().flatten() {
        if c.type_ == CONDITION_INVALID_SPEC {
            return (
                PHASE_DEGRADED.into(),
                format!(
                    "{}: {}",
                    CONDITION_INVALID_SPEC,
                    c.message.as_deref().unwrap_or("")
                ),
            );
        }
        let reason = c.reason.as_deref().unwrap_or("");
        if reason == REASON_ROLLOUT_ABORTED || reason == REASON_PROGRESS_DEADLINE_EXCEEDED {
            return (
                PHASE_DEGRADED.into(),
                format!("{}: {}", reason, c.message.as_deref().unwrap_or("")),
            );
        }
    }
    if spec.paused.unwrap_or(false) {
        return (PHASE_PAUSED.into(), "manually paused".into());
    }
    if let Some(p) = status.pause_conditions.iter().flatten().next() {
        return (PHASE_PAUSED.into(), p.reason.clone());
    }
    if let Some(restart_at) = &spec.restart_at
        && status.restarted_at.as_ref() != Some(restart_at)
    {
        return (PHASE_PROGRESSING.into(), "rollout is restarting".into());
    }
    let updated = status.updated_replicas.unwrap_or(0);
    if updated < replicas_or_default(spec) {
        return (
            PHASE_PROGRESSING.into(),
            "more replicas need to be updated".into(),
        );
    }
    if status.available_replicas.unwrap_or(0) < updated {
        return (
            PHASE_PROGRESSING.into(),
            "updated replicas are still becoming available".into(),
        );
    }
    if spec.strategy.blue_green.is_some() {
        let active = status
            .blue_green
            .as_ref()
            .and_then(|b| b.active_selector.clone())
            .unwrap_or_default();
        if active.is_empty() || Some(&active) != status.current_pod_hash.as_ref() {
            return (
                PHASE_PROGRESSING.into(),
                "active service cutover pending".into(),
            );
        }
        if !is_fully_promoted(status) {
            return (
                PHASE_PROGRESSING.into(),
                "waiting for post-promotion verification to complete".into(),
            );
        }
    } else if let Some(canary) = &spec.strategy.canary {
        if canary.traffic_routing.is_none() && status.replicas.unwrap_or(0) > updated {
            return (
                PHASE_PROGRESSING.into(),
                "old replicas are pending termination".into(),
            );
        }
        if !is_fully_promoted(status) {
            return (
                PHASE_PROGRESSING.into(),
                "waiting for all steps to complete".into(),
            );
        }
    }
    (PHASE_HEALTHY.into(), String::new())
}

/// The client-side view (`GetRolloutPhase`): a stored phase is only trusted once the generation
/// has been observed and a user's resume has been acted on.
pub fn effective_phase(
    generation: Option<i64>,
    spec: &RolloutSpec,
    status: &RolloutStatus,
) -> (String, String) {
    let observed = status
        .observed_generation
        .as_deref()
        .and_then(|g| g.parse::<i64>().ok());
    if let (Some(g), Some(o)) = (generation, observed)
        && o < g
    {
        return (
            PHASE_PROGRESSING.into(),
            "waiting for rollout spec update to be observed".into(),
        );
    }
    if status.controller_pause.unwrap_or(false)
        && status
            .pause_conditions
            .as_ref()
            .is_none_or(|p| p.is_empty())
        && !spec.paused.unwrap_or(false)
    {
        return (
            PHASE_PROGRESSING.into(),
            "waiting for rollout to unpause".into(),
        );
    }
    match (&status.phase, &status.message) {
        (Some(p), m) if !p.is_empty() => (p.clone(), m.clone().unwrap_or_default()),
        _ => calculate_phase(spec, status),
    }
}

/// Seconds between two optional k8s times, for deadline checks.
pub fn time_of(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| t.0)
}
