//! Phase, message and conditions — all of them — computed exactly as Argo Rollouts does
//! (reference §1.8), so dashboards, the Argo CD health check and our CLI agree. Both strategies
//! end their reconcile here (`finish`); an invalid spec and the paused-conditions write are
//! planned here too.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::consts::*;
use crate::api::rollout::{PauseCondition, Rollout, RolloutCondition, RolloutSpec, RolloutStatus};
use crate::rollout::duration::{self, Attempt, Facts};
use crate::rollout::effects::{Plan, PlannedEvent};
use crate::time::{add_seconds, k8s_time, until};

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

/// The stable ReplicaSet runs the current pod template (Argo's `IsFullyPromoted`).
pub fn is_fully_promoted(status: &RolloutStatus) -> bool {
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
            let waiting_for_analysis = spec
                .strategy
                .blue_green
                .as_ref()
                .is_some_and(|b| b.post_promotion_analysis.is_some())
                && status
                    .blue_green
                    .as_ref()
                    .and_then(|b| b.post_promotion_analysis_run_status.as_ref())
                    .is_none_or(|r| !crate::analysis::run::is_completed(&r.status));
            let msg = if waiting_for_analysis {
                "waiting for analysis to complete"
            } else {
                "waiting for post-promotion verification to complete"
            };
            return (PHASE_PROGRESSING.into(), msg.into());
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
    // Argo's `IsUnpausing`: the controller paused and nobody's pause condition is left.
    if status.controller_pause.unwrap_or(false)
        && status
            .pause_conditions
            .as_ref()
            .is_none_or(|p| p.is_empty())
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

// =============================================================================================
// The shared status stage
// =============================================================================================

/// Argo's `pauseContext`: the pause and abort changes a reconcile decided, applied to the status
/// at the end.
#[derive(Clone, Debug, Default)]
pub struct PauseChanges {
    pub add: Vec<String>,
    pub remove: Vec<String>,
    pub clear: bool,
    pub add_abort: Option<String>,
    pub remove_abort: bool,
}

impl PauseChanges {
    /// Is the rollout aborted once these changes apply?
    pub fn aborted(&self, prev: &RolloutStatus) -> bool {
        !self.remove_abort && (self.add_abort.is_some() || prev.abort.unwrap_or(false))
    }
}

/// What a strategy hands to `finish`: the facts the shared conditions are computed from.
pub struct Finish<'a> {
    pub ro: &'a Rollout,
    pub prev: &'a RolloutStatus,
    pub generation: &'a str,
    pub now: Timestamp,
    pub new_name: &'a str,
    pub new_hash: &'a str,
    pub new_revision: i64,
    pub replicas: i32,
    /// Available pods over every ReplicaSet of the Rollout.
    pub available: i32,
    /// The strategy's own `Available` verdict (blue-green: the active ReplicaSet is saturated);
    /// `None`: at least `replicas` pods are available.
    pub min_available: Option<bool>,
    /// An older ReplicaSet waits for its scale-down deadline: no progress deadline runs.
    pub waiting_for_scale_down: bool,
    /// The first failing ReplicaSet's `ReplicaFailure` condition, new ReplicaSet first.
    pub replica_failure: Option<RolloutCondition>,
    /// The current step waits indefinitely (pause, analysis, experiment) or the rollout is paused.
    pub indefinite_step: bool,
    /// The strategy's `RolloutHealthy` over the new status.
    pub healthy: &'a dyn Fn(&RolloutStatus) -> bool,
    /// Fields of the spec this version accepts but does not act on, each with what happens
    /// instead (`support::not_implemented`).
    pub not_implemented: &'a [String],
    /// What `status.duration` needs of the ReplicaSets.
    pub attempt: Attempt,
}

impl Finish<'_> {
    fn deadline_seconds(&self) -> i64 {
        i64::from(self.ro.spec.progress_deadline_seconds.unwrap_or(600))
    }

    /// `RolloutTimedOut` against a status's Progressing condition.
    fn timed_out(&self, st: &RolloutStatus) -> bool {
        let Some(c) = get_condition(st, CONDITION_PROGRESSING) else {
            return false;
        };
        let reason = c.reason.as_deref().unwrap_or("");
        if reason == REASON_ROLLOUT_ABORTED || reason == REASON_ROLLOUT_PAUSED {
            return false;
        }
        if reason == REASON_PROGRESS_DEADLINE_EXCEEDED {
            return true;
        }
        let Some(from) = time_of(&c.last_update_time) else {
            return false;
        };
        add_seconds(from, self.deadline_seconds()) < self.now
    }

    /// `RolloutProgressing`: did this reconcile observe any progress?
    fn progressing(&self, st: &RolloutStatus) -> bool {
        let old = self.prev;
        let stable_change = st.stable_rs != old.stable_rs;
        let step_change =
            matches!((st.current_step_index, old.current_step_index), (Some(a), Some(b)) if a != b);
        let hash_change = st.current_step_hash != old.current_step_hash;
        let g = |v: Option<i32>| v.unwrap_or(0);
        let old_old = g(old.replicas) - g(old.updated_replicas);
        let new_old = g(st.replicas) - g(st.updated_replicas);
        g(st.updated_replicas) != g(old.updated_replicas)
            || new_old < old_old
            || g(st.ready_replicas) > g(old.ready_replicas)
            || g(st.available_replicas) > g(old.available_replicas)
            || stable_change
            || step_change
            || hash_change
    }

    fn abort_message(&self, pause: &PauseChanges) -> String {
        let mut m = format!("Rollout aborted update to revision {}", self.new_revision);
        if let Some(extra) = &pause.add_abort {
            m = format!("{m}: {extra}");
        }
        m
    }
}

/// `persistRolloutStatus`: deadline abort, pause and abort fields, conditions, phase and the
/// state-change events. Returns the status to write (`None` when unchanged) and the requeue.
pub fn finish(
    f: &Finish,
    mut st: RolloutStatus,
    mut pause: PauseChanges,
    plan: &mut Plan,
    requeue: &mut Vec<Duration>,
) {
    st.observed_generation = Some(f.generation.to_string());
    st.current_pod_hash = Some(f.new_hash.to_string());

    // progressDeadlineAbort
    if f.ro.spec.progress_deadline_abort.unwrap_or(false)
        && !pause.aborted(f.prev)
        && !is_fully_promoted(&st)
        && !f.progressing(&st)
        && !f.indefinite_step
        && f.timed_out(f.prev)
    {
        let msg = format!("ReplicaSet \"{}\" has timed out progressing.", f.new_name);
        pause.add_abort = Some(msg.clone());
        plan.event(true, REASON_ROLLOUT_ABORTED, msg);
    }

    calculate_pause_status(f, &pause, &mut st);
    calculate_conditions(f, &pause, &mut st, &mut plan.events);
    not_implemented(f, &mut st, plan);
    let (phase, message) = calculate_phase(&f.ro.spec, &st);
    st.phase = Some(phase);
    st.message = Some(message);
    let facts = Facts {
        ro: f.ro,
        prev: f.prev,
        spec_changed: spec_changed(f.ro, f.prev, &st),
        attempt: f.attempt,
        replicas: f.replicas,
        aborted: pause.aborted(f.prev),
        now: f.now,
    };
    (st.duration, plan.finished) = duration::calculate(&facts, &st);

    // State-change events (sendStateChangeEvents).
    let prev_paused = f
        .prev
        .pause_conditions
        .as_ref()
        .is_some_and(|p| !p.is_empty());
    let paused = st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty());
    if prev_paused != paused {
        if let Some(first) = st.pause_conditions.as_ref().and_then(|p| p.first()) {
            let msg = format!("Rollout is paused ({})", first.reason);
            plan.event(false, REASON_ROLLOUT_PAUSED, msg);
        } else if st.aborted_at.is_none() {
            plan.event(false, REASON_ROLLOUT_RESUMED, "Rollout is resumed".into());
        }
    }

    requeue_stuck(f, &st, requeue);
    if st != *f.prev {
        plan.status = Some(st);
    }
}

/// Argo's `podSpecChanged` of `calculateStatusDuration`: the first reconcile, or (for a canary)
/// `PodTemplateOrStepsChanged`, or (blue-green) `CheckPodSpecChange`, comparing the observed
/// status with this reconcile's hashes.
fn spec_changed(ro: &Rollout, prev: &RolloutStatus, st: &RolloutStatus) -> bool {
    let old_pod = prev.current_pod_hash.as_deref().unwrap_or("");
    if old_pod.is_empty() || Some(old_pod) != st.current_pod_hash.as_deref() {
        return true;
    }
    ro.spec.strategy.canary.is_some()
        && prev
            .current_step_hash
            .as_deref()
            .is_none_or(|h| h.is_empty() || Some(h) != st.current_step_hash.as_deref())
}

/// No silent ignores: a `NotImplemented` condition names every field the spec uses that this
/// version does not act on, and a warning event says so whenever that list changes.
fn not_implemented(f: &Finish, st: &mut RolloutStatus, plan: &mut Plan) {
    if f.not_implemented.is_empty() {
        remove_condition(st, CONDITION_NOT_IMPLEMENTED);
        return;
    }
    let msg = format!(
        "Not implemented in this version of Sluice: {}",
        f.not_implemented.join("; ")
    );
    let current = get_condition(st, CONDITION_NOT_IMPLEMENTED);
    if current.and_then(|c| c.message.as_deref()) == Some(msg.as_str()) {
        return;
    }
    remove_condition(st, CONDITION_NOT_IMPLEMENTED);
    set_condition(
        st,
        new_condition(
            CONDITION_NOT_IMPLEMENTED,
            CONDITION_TRUE,
            REASON_NOT_IMPLEMENTED,
            &msg,
            f.now,
        ),
    );
    plan.event(true, REASON_NOT_IMPLEMENTED, msg);
}

fn calculate_pause_status(f: &Finish, pause: &PauseChanges, st: &mut RolloutStatus) {
    if pause.aborted(f.prev) {
        st.abort = Some(true);
        st.aborted_at = f.prev.aborted_at.clone().or_else(|| Some(k8s_time(f.now)));
        st.pause_conditions = None;
        st.controller_pause = None;
        return;
    }
    st.abort = None;
    st.aborted_at = None;
    if pause.clear {
        st.pause_conditions = None;
        st.controller_pause = None;
        return;
    }
    let mut controller_pause = f.prev.controller_pause.unwrap_or(false);
    let mut conds: Vec<PauseCondition> = f
        .prev
        .pause_conditions
        .iter()
        .flatten()
        .filter(|c| !pause.remove.contains(&c.reason))
        .cloned()
        .collect();
    for reason in &pause.add {
        let exists = f
            .prev
            .pause_conditions
            .iter()
            .flatten()
            .any(|c| &c.reason == reason);
        if !exists {
            conds.push(PauseCondition {
                reason: reason.clone(),
                start_time: k8s_time(f.now),
            });
            controller_pause = true;
        }
    }
    if conds.is_empty() {
        st.pause_conditions = None;
        st.controller_pause = None;
    } else {
        st.pause_conditions = Some(conds);
        st.controller_pause = controller_pause.then_some(true);
    }
}

/// `calculateRolloutConditions`.
fn calculate_conditions(
    f: &Finish,
    pause: &PauseChanges,
    st: &mut RolloutStatus,
    events: &mut Vec<PlannedEvent>,
) {
    let now = f.now;
    let mut event = |warning: bool, reason: &str, message: String| {
        events.push(PlannedEvent {
            warning,
            reason: reason.into(),
            message,
        })
    };
    remove_condition(st, CONDITION_INVALID_SPEC);
    let paused = st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty())
        || f.ro.spec.paused.unwrap_or(false);
    let aborted = pause.aborted(f.prev);
    let healthy = (f.healthy)(st);

    let had_healthy = get_condition(f.prev, CONDITION_HEALTHY).is_some();
    let mut became_unhealthy = false;
    if !paused && healthy {
        set_condition(
            st,
            new_condition(
                CONDITION_HEALTHY,
                "True",
                REASON_ROLLOUT_HEALTHY,
                "Rollout is healthy",
                now,
            ),
        );
    } else if had_healthy {
        became_unhealthy = set_condition(
            st,
            new_condition(
                CONDITION_HEALTHY,
                "False",
                REASON_ROLLOUT_HEALTHY,
                "Rollout is not healthy",
                now,
            ),
        );
    }

    if aborted {
        let msg = f.abort_message(pause);
        if set_condition(
            st,
            new_condition(
                CONDITION_PROGRESSING,
                "False",
                REASON_ROLLOUT_ABORTED,
                &msg,
                now,
            ),
        ) {
            event(true, REASON_ROLLOUT_ABORTED, msg);
        }
    }

    let current = get_condition(f.prev, CONDITION_PROGRESSING).cloned();
    if !aborted {
        if healthy {
            let msg = format!("ReplicaSet \"{}\" has successfully progressed.", f.new_name);
            set_condition(
                st,
                new_condition(
                    CONDITION_PROGRESSING,
                    "True",
                    REASON_NEW_REPLICA_SET_AVAILABLE,
                    &msg,
                    now,
                ),
            );
        } else if f.progressing(st) || became_unhealthy {
            let (reason, msg) = if is_fully_promoted(st) && became_unhealthy {
                (
                    REASON_REPLICA_SET_NOT_AVAILABLE,
                    "Rollout does not have minimum availability".to_string(),
                )
            } else {
                (
                    REASON_REPLICA_SET_UPDATED,
                    format!("ReplicaSet \"{}\" is progressing.", f.new_name),
                )
            };
            let mut c = new_condition(CONDITION_PROGRESSING, "True", reason, &msg, now);
            if let Some(cur) = &current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                remove_condition(st, CONDITION_PROGRESSING);
            }
            set_condition(st, c);
        } else if !f.indefinite_step && !f.waiting_for_scale_down && f.timed_out(st) {
            let msg = format!("ReplicaSet \"{}\" has timed out progressing.", f.new_name);
            set_condition(
                st,
                new_condition(
                    CONDITION_PROGRESSING,
                    "False",
                    REASON_PROGRESS_DEADLINE_EXCEEDED,
                    &msg,
                    now,
                ),
            );
        }
    }

    let available = f.min_available.unwrap_or(f.available >= f.replicas);
    let (status, message) = if available {
        ("True", "Rollout has minimum availability")
    } else {
        ("False", "Rollout does not have minimum availability")
    };
    set_condition(
        st,
        new_condition(CONDITION_AVAILABLE, status, REASON_AVAILABLE, message, now),
    );

    if let Some(c) = f.replica_failure.clone() {
        set_condition(st, c);
    } else {
        remove_condition(st, CONDITION_REPLICA_FAILURE);
    }

    if is_fully_promoted(st) {
        set_condition(
            st,
            new_condition(
                CONDITION_COMPLETED,
                "True",
                REASON_ROLLOUT_COMPLETED,
                REASON_ROLLOUT_COMPLETED,
                now,
            ),
        );
    } else if set_condition(
        st,
        new_condition(
            CONDITION_COMPLETED,
            "False",
            REASON_ROLLOUT_COMPLETED,
            REASON_ROLLOUT_COMPLETED,
            now,
        ),
    ) {
        let msg = format!(
            "Rollout not completed, started update to revision {} ({})",
            f.new_revision, f.new_hash
        );
        event(false, REASON_ROLLOUT_NOT_COMPLETED, msg);
    }
}

/// The first ReplicaFailure condition of the new ReplicaSet (or any other), as a rollout condition.
pub fn replica_failure(
    new_rs: Option<&ReplicaSet>,
    all: &[&ReplicaSet],
) -> Option<RolloutCondition> {
    let name = |rs: &ReplicaSet| rs.metadata.name.clone();
    let mut order: Vec<&ReplicaSet> = new_rs.into_iter().collect();
    order.extend(
        all.iter()
            .copied()
            .filter(|rs| new_rs.is_none_or(|n| name(rs) != name(n))),
    );
    for rs in order {
        for c in rs
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
        {
            if c.type_.as_deref() == Some(CONDITION_REPLICA_FAILURE)
                && c.status.as_deref() == Some("True")
            {
                return Some(RolloutCondition {
                    type_: CONDITION_REPLICA_FAILURE.into(),
                    status: "True".into(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                    last_update_time: c.last_transition_time.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                });
            }
        }
    }
    None
}

/// `requeueStuckRollout`: look again exactly when the progress deadline would pass.
fn requeue_stuck(f: &Finish, st: &RolloutStatus, requeue: &mut Vec<Duration>) {
    let Some(c) = get_condition(st, CONDITION_PROGRESSING) else {
        return;
    };
    let paused = st.pause_conditions.as_ref().is_some_and(|p| !p.is_empty())
        || f.ro.spec.paused.unwrap_or(false);
    if (f.healthy)(st)
        || c.reason.as_deref() == Some(REASON_PROGRESS_DEADLINE_EXCEEDED)
        || paused
        || st.abort.unwrap_or(false)
        || f.indefinite_step
    {
        return;
    }
    let Some(from) = time_of(&c.last_update_time) else {
        return;
    };
    let deadline = add_seconds(from, f.deadline_seconds() + 1);
    requeue.push(until(f.now, deadline).unwrap_or(Duration::from_secs(1)));
}

/// The plan for a Rollout whose spec cannot run: an `InvalidSpec` condition (and a warning event
/// when the message is new); nothing else is touched.
pub fn plan_invalid(
    ro: &Rollout,
    prev: &RolloutStatus,
    generation: &str,
    msg: &str,
    now: Timestamp,
) -> Plan {
    let mut st = prev.clone();
    let prev_cond = get_condition(prev, CONDITION_INVALID_SPEC);
    let mut plan = Plan::default();
    if prev_cond.and_then(|c| c.message.as_deref()) != Some(msg) {
        remove_condition(&mut st, CONDITION_INVALID_SPEC);
        set_condition(
            &mut st,
            new_condition(
                CONDITION_INVALID_SPEC,
                "True",
                REASON_INVALID_SPEC,
                msg,
                now,
            ),
        );
        plan.event(true, REASON_INVALID_SPEC, msg.into());
    }
    st.observed_generation = Some(generation.to_string());
    let (phase, message) = calculate_phase(&ro.spec, &st);
    st.phase = Some(phase);
    st.message = Some(message);
    if st != *prev {
        plan.status = Some(st);
    }
    plan
}

/// Argo's `checkPausedConditions`: keep the Progressing/Paused conditions in step with pauses and
/// retries as a write of its own, before anything else happens.
pub fn check_paused_conditions(
    ro: &Rollout,
    prev: &RolloutStatus,
    attempt: Attempt,
    now: Timestamp,
) -> Option<Plan> {
    let prog = get_condition(prev, CONDITION_PROGRESSING);
    let prog_reason = reason_of(prog);
    let prog_paused = prog_reason == REASON_ROLLOUT_PAUSED;
    let is_paused = prev
        .pause_conditions
        .as_ref()
        .is_some_and(|p| !p.is_empty())
        || ro.spec.paused.unwrap_or(false);
    let abort_cond = prog_reason == REASON_ROLLOUT_ABORTED;
    let completed = is_fully_promoted(prev);
    let mut updates = Vec::new();
    if is_paused != prog_paused && !abort_cond && !completed {
        updates.push(if is_paused {
            new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                REASON_ROLLOUT_PAUSED,
                "Rollout is paused",
                now,
            )
        } else {
            new_condition(
                CONDITION_PROGRESSING,
                "Unknown",
                REASON_ROLLOUT_RESUMED,
                "Rollout is resumed",
                now,
            )
        });
    }
    if !prev.abort.unwrap_or(false) && abort_cond {
        updates.push(new_condition(
            CONDITION_PROGRESSING,
            "Unknown",
            REASON_ROLLOUT_RETRY,
            "Retrying Rollout after abort",
            now,
        ));
    }
    let paused_true = get_condition(prev, CONDITION_PAUSED).is_some_and(|c| c.status == "True");
    if is_paused != paused_true && !abort_cond {
        let s = if is_paused { "True" } else { "False" };
        updates.push(new_condition(
            CONDITION_PAUSED,
            s,
            REASON_ROLLOUT_PAUSED,
            "Rollout is paused",
            now,
        ));
    }
    if updates.is_empty() {
        return None;
    }
    let mut st = prev.clone();
    for c in updates {
        set_condition(&mut st, c);
    }
    let (phase, message) = calculate_phase(&ro.spec, &st);
    st.phase = Some(phase);
    st.message = Some(message);
    // Argo's `patchCondition` tracks the duration too (a resume ends a manual pause here).
    let facts = Facts {
        ro,
        prev,
        spec_changed: spec_changed(ro, prev, &st),
        attempt,
        replicas: replicas_or_default(&ro.spec),
        aborted: prev.abort.unwrap_or(false),
        now,
    };
    let finished;
    (st.duration, finished) = duration::calculate(&facts, &st);
    if st == *prev {
        return None;
    }
    Some(Plan {
        status: Some(st),
        finished,
        ..Plan::default()
    })
}

/// Argo's answer to a ReplicaSet create the API server refused: a `Progressing: False`
/// condition (`ReplicaSetCreateError`) and a warning event with the same message.
pub fn create_failed(
    ro: &Rollout,
    rs_name: &str,
    reason: &str,
    now: Timestamp,
) -> (RolloutStatus, PlannedEvent) {
    let msg = format!("Failed to create new replica set \"{rs_name}\": {reason}");
    let mut st = ro.status.clone().unwrap_or_default();
    set_condition(
        &mut st,
        new_condition(
            CONDITION_PROGRESSING,
            CONDITION_FALSE,
            REASON_REPLICA_SET_CREATE_ERROR,
            &msg,
            now,
        ),
    );
    (
        st,
        PlannedEvent {
            warning: true,
            reason: REASON_REPLICA_SET_CREATE_ERROR.into(),
            message: msg,
        },
    )
}
