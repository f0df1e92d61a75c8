//! `status.duration`: when the current update attempt started, how long it waited for people
//! (manual pauses), when it finished and how (Argo's `calculateStatusDuration`,
//! `rollout/sync.go`, with `RolloutDurationStatus.CompleteRollout`). A finished attempt is also
//! handed to the shell once, to be observed into the rollout duration histograms after the status
//! that finishes it has been written.

use jiff::Timestamp;

use crate::api::consts::*;
use crate::api::rollout::{Rollout, RolloutDurationStatus, RolloutStatus};
use crate::time::k8s_time;

/// What the duration tracking looks at, besides the old and new status.
pub struct Facts<'a> {
    pub ro: &'a Rollout,
    /// The status as observed (Argo's `c.rollout.Status`).
    pub prev: &'a RolloutStatus,
    /// The pod template (or, for a canary, the steps) changed, or this is the first reconcile.
    pub spec_changed: bool,
    pub attempt: Attempt,
    /// `spec.replicas` with its default.
    pub replicas: i32,
    /// The rollout is aborted once this reconcile's pause changes apply.
    pub aborted: bool,
    pub now: Timestamp,
}

/// What the duration tracking needs of the ReplicaSets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Attempt {
    /// Available pods of the new ReplicaSet; `None` when it does not exist yet.
    pub new_available: Option<i32>,
    /// Argo's `isRollback`: the new ReplicaSet is the stable one, or older than it.
    pub rollback: bool,
    /// Argo's `isFastRollback`: a rollback to stable or inside the rollback window.
    pub fast_rollback: bool,
}

/// The new `status.duration` for `new` (the status about to be written), and the attempt this
/// reconcile finishes, if any (for the histograms; it may differ from the new duration, which
/// already tracks the next attempt when an update was superseded).
pub fn calculate(
    f: &Facts,
    new: &RolloutStatus,
) -> (Option<RolloutDurationStatus>, Option<RolloutDurationStatus>) {
    if condition_reason(new, CONDITION_INVALID_SPEC).is_some() {
        return (new.duration.clone(), None);
    }
    let mut d = new.duration.clone();
    let mut finished = None;
    let prev = f.prev.duration.as_ref();
    let promoted =
        new.stable_rs.as_deref().unwrap_or("") == new.current_pod_hash.as_deref().unwrap_or("");
    let at_desired = f.attempt.new_available.is_some_and(|a| a >= f.replicas);
    let completed = promoted && at_desired;
    let was_aborted =
        condition_reason(f.prev, CONDITION_PROGRESSING) == Some(REASON_ROLLOUT_ABORTED);
    let retry = !f.aborted && was_aborted;
    let mut was_paused = prev.is_some_and(|p| p.manual_pause_started_at.is_some());
    let in_progress = prev.is_some_and(|p| p.rollout_started_at.is_some() && !is_completed(p));

    if in_progress && let Some(cur) = d.as_mut() {
        if f.spec_changed {
            if f.attempt.rollback {
                // Reverted to an earlier revision: the same attempt goes on, as a rollback.
                let s = if f.attempt.fast_rollback {
                    COMPLETION_FAST_ROLLED_BACK
                } else {
                    COMPLETION_ROLLED_BACK
                };
                cur.completion_status = Some(s.into());
            } else {
                complete(cur, f.now, COMPLETION_SUPERSEDED);
                finished = Some(cur.clone());
            }
        }
        if completed && !is_completed(cur) {
            let s = status_or(cur, COMPLETION_PROMOTED);
            complete(cur, f.now, &s);
            return (d.clone(), d);
        } else if f.aborted && !is_completed(cur) {
            let s = status_or(cur, COMPLETION_ABORTED);
            complete(cur, f.now, &s);
            finished = Some(cur.clone());
        }
    }

    if d.as_ref().is_none_or(|cur| is_completed(cur) && !completed) {
        // The first update, or a new one after a finished attempt.
        was_paused = false;
        if (f.spec_changed && !completed) || retry {
            d = Some(RolloutDurationStatus {
                rollout_started_at: Some(k8s_time(f.now)),
                ..RolloutDurationStatus::default()
            });
        }
    }
    let Some(cur) = d.as_mut() else {
        return (None, finished);
    };
    if is_completed(cur) {
        return (d, finished);
    }
    let manual = f.ro.spec.paused.unwrap_or(false)
        || new
            .pause_conditions
            .iter()
            .flatten()
            .any(|c| requires_manual_action(&c.reason, f.ro, f.prev));
    if was_paused && !manual {
        end_manual_pause(cur, f.now);
    } else if !was_paused && manual && cur.manual_pause_started_at.is_none() {
        cur.manual_pause_started_at = Some(k8s_time(f.now));
    }
    (d, finished)
}

/// The reason of the condition of `type_` (empty when it has none), if there is one. (`status`
/// has the same helpers, but it calls this module.)
fn condition_reason<'a>(st: &'a RolloutStatus, type_: &str) -> Option<&'a str> {
    st.conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .map(|c| c.reason.as_deref().unwrap_or(""))
}

/// `IsCompleted`: started and finished.
fn is_completed(d: &RolloutDurationStatus) -> bool {
    d.rollout_started_at.is_some() && d.finished_at.is_some()
}

fn status_or(d: &RolloutDurationStatus, default: &str) -> String {
    d.completion_status
        .clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Fold a running manual pause into the total, in whole seconds as Argo counts them.
fn end_manual_pause(d: &mut RolloutDurationStatus, now: Timestamp) {
    if let Some(start) = d.manual_pause_started_at.take() {
        let secs = now.duration_since(start.0).as_secs();
        *d.total_manual_pause_duration_seconds.get_or_insert(0) += secs;
    }
}

/// `CompleteRollout`: end any manual pause, then stamp the end and the outcome.
fn complete(d: &mut RolloutDurationStatus, now: Timestamp, status: &str) {
    end_manual_pause(d, now);
    d.finished_at = Some(k8s_time(now));
    d.completion_status = Some(status.to_string());
}

/// Argo's `requiresManualAction`: a pause that only a person ends — inconclusive analysis or
/// experiment, an indefinite canary pause step (the step as observed), a blue-green pause
/// without auto-promotion.
fn requires_manual_action(reason: &str, ro: &Rollout, prev: &RolloutStatus) -> bool {
    match reason {
        PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN | PAUSE_REASON_INCONCLUSIVE_EXPERIMENT => true,
        PAUSE_REASON_CANARY_PAUSE_STEP => {
            let steps = ro.spec.canary_steps();
            let i = prev.current_step_index.unwrap_or(0);
            usize::try_from(i)
                .ok()
                .and_then(|i| steps.get(i))
                .and_then(|s| s.pause.as_ref())
                .is_some_and(|p| p.duration.is_none())
        }
        PAUSE_REASON_BLUE_GREEN_PAUSE => ro
            .spec
            .strategy
            .blue_green
            .as_ref()
            .is_some_and(|b| b.auto_promotion_enabled == Some(false)),
        _ => false,
    }
}
