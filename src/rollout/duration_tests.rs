//! `status.duration` over whole rollouts in the simulator, one test per way an attempt ends
//! (Argo's `calculateStatusDuration` cases), and the finished attempt handed to the shell exactly
//! once per attempt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::api::consts::*;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::rollout::RolloutDurationStatus;
use crate::rollout::sim::{SEED, Sim};

/// Reconcile until nothing changes, collecting every attempt the plans finish.
fn settle(sim: &mut Sim, finished: &mut Vec<RolloutDurationStatus>) {
    for _ in 0..30 {
        let p = sim.reconcile();
        finished.extend(p.finished.clone());
        if p.is_noop() {
            return;
        }
    }
}

fn duration(sim: &Sim) -> RolloutDurationStatus {
    sim.status().duration.expect("status.duration")
}

/// The simulator's start time plus `offset` seconds, as a status time.
fn at(offset: i64) -> Option<Time> {
    let start = Sim::seed().now;
    Some(crate::time::k8s_time(crate::time::add_seconds(
        start, offset,
    )))
}

/// `(status, total seconds, manual pause seconds)` of a finished attempt.
fn lengths(d: &RolloutDurationStatus) -> (&str, i64, i64) {
    let total = d.finished_at.as_ref().unwrap().0.as_second()
        - d.rollout_started_at.as_ref().unwrap().0.as_second();
    (
        d.completion_status.as_deref().unwrap_or(""),
        total,
        d.total_manual_pause_duration_seconds.unwrap_or(0),
    )
}

fn statuses(finished: &[RolloutDurationStatus]) -> Vec<&str> {
    finished
        .iter()
        .map(|d| d.completion_status.as_deref().unwrap_or(""))
        .collect()
}

#[test]
fn the_initial_deploy_is_an_attempt_that_finishes_promoted() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    let d = duration(&sim);
    assert_eq!(d.rollout_started_at, at(0));
    assert_eq!(d.finished_at, at(0));
    assert_eq!(d.completion_status.as_deref(), Some(COMPLETION_PROMOTED));
    assert_eq!(d.manual_pause_started_at, None);
    assert_eq!(statuses(&finished), [COMPLETION_PROMOTED]);
    // Idle reconciles change nothing and finish nothing again.
    sim.advance(60);
    settle(&mut sim, &mut finished);
    assert_eq!(finished.len(), 1);
    assert_eq!(duration(&sim), d);
}

#[test]
fn timed_pauses_are_progression_and_the_walk_finishes_promoted() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.advance(100);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    let d = duration(&sim);
    assert_eq!(d.rollout_started_at, at(100), "a new attempt");
    assert_eq!(
        (d.finished_at.clone(), d.completion_status.clone()),
        (None, None)
    );
    assert_eq!(
        d.manual_pause_started_at, None,
        "a timed pause needs nobody"
    );
    for _ in 0..4 {
        sim.advance(601);
        settle(&mut sim, &mut finished);
    }
    assert_eq!(sim.phase().0, "Healthy");
    let d = duration(&sim);
    assert_eq!(d.completion_status.as_deref(), Some(COMPLETION_PROMOTED));
    assert_eq!(d.finished_at, at(100 + 4 * 601));
    assert_eq!(d.total_manual_pause_duration_seconds, None);
    assert_eq!(
        statuses(&finished),
        [COMPLETION_PROMOTED, COMPLETION_PROMOTED]
    );
    assert_eq!(lengths(&finished[1]), (COMPLETION_PROMOTED, 2404, 0));
}

#[test]
fn an_indefinite_pause_is_manual_pause_time() {
    let yaml = SEED.replacen("pause: {duration: 10m}", "pause: {}", 1);
    let mut sim = Sim::new(&yaml);
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    assert_eq!(sim.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    let d = duration(&sim);
    assert_eq!(d.manual_pause_started_at, at(0));
    sim.advance(300);
    settle(&mut sim, &mut finished);
    assert_eq!(
        duration(&sim).manual_pause_started_at,
        at(0),
        "still waiting"
    );
    // promote: {"status":{"pauseConditions":null}}
    if let Some(st) = sim.ro.status.as_mut() {
        st.pause_conditions = None;
    }
    settle(&mut sim, &mut finished);
    let d = duration(&sim);
    assert_eq!(d.manual_pause_started_at, None);
    assert_eq!(d.total_manual_pause_duration_seconds, Some(300));
    for _ in 0..3 {
        sim.advance(601);
        settle(&mut sim, &mut finished);
    }
    assert_eq!(sim.phase().0, "Healthy");
    let last = finished.last().unwrap();
    assert_eq!(lengths(last), (COMPLETION_PROMOTED, 2103, 300));
}

#[test]
fn spec_paused_is_a_manual_pause_until_resumed() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    sim.advance(10);
    sim.ro.spec.paused = Some(true);
    sim.bump_generation();
    settle(&mut sim, &mut finished);
    assert_eq!(duration(&sim).manual_pause_started_at, at(10));
    sim.advance(50);
    sim.ro.spec.paused = None;
    sim.bump_generation();
    settle(&mut sim, &mut finished);
    let d = duration(&sim);
    assert_eq!(d.manual_pause_started_at, None);
    assert_eq!(d.total_manual_pause_duration_seconds, Some(50));
}

#[test]
fn promote_full_finishes_fast_promoted() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    sim.advance(30);
    if let Some(st) = sim.ro.status.as_mut() {
        st.promote_full = Some(true);
    }
    settle(&mut sim, &mut finished);
    assert_eq!(sim.phase().0, "Healthy");
    let d = duration(&sim);
    assert_eq!(
        d.completion_status.as_deref(),
        Some(COMPLETION_FAST_PROMOTED)
    );
    assert_eq!(d.finished_at, at(30));
    assert_eq!(
        statuses(&finished),
        [COMPLETION_PROMOTED, COMPLETION_FAST_PROMOTED]
    );
}

#[test]
fn abort_finishes_aborted_and_retry_starts_a_new_attempt() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    sim.advance(20);
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    settle(&mut sim, &mut finished);
    let d = duration(&sim);
    assert_eq!(d.completion_status.as_deref(), Some(COMPLETION_ABORTED));
    assert_eq!(d.finished_at, at(20));
    assert_eq!(
        statuses(&finished),
        [COMPLETION_PROMOTED, COMPLETION_ABORTED]
    );
    sim.advance(40);
    settle(&mut sim, &mut finished);
    assert_eq!(finished.len(), 2, "an aborted attempt finishes once");
    // retry: {"status":{"abort":false}}
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(false);
    }
    settle(&mut sim, &mut finished);
    let d = duration(&sim);
    assert_eq!(d.rollout_started_at, at(60), "a new attempt");
    assert_eq!(d.finished_at, None);
}

#[test]
fn a_new_revision_mid_update_supersedes_the_attempt() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    sim.advance(45);
    sim.set_image("frontend:v3");
    settle(&mut sim, &mut finished);
    assert_eq!(
        statuses(&finished),
        [COMPLETION_PROMOTED, COMPLETION_SUPERSEDED]
    );
    assert_eq!(lengths(&finished[1]), (COMPLETION_SUPERSEDED, 45, 0));
    // The status already tracks the next attempt.
    let d = duration(&sim);
    assert_eq!(d.rollout_started_at, at(45));
    assert_eq!((d.finished_at, d.completion_status), (None, None));
}

#[test]
fn going_back_to_stable_mid_update_finishes_fast_rolled_back() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    sim.advance(15);
    sim.set_image("frontend:v1");
    settle(&mut sim, &mut finished);
    assert_eq!(sim.phase().0, "Healthy");
    let d = duration(&sim);
    assert_eq!(d.rollout_started_at, at(0), "the same attempt, rolled back");
    assert_eq!(
        d.completion_status.as_deref(),
        Some(COMPLETION_FAST_ROLLED_BACK)
    );
    assert_eq!(d.finished_at, at(15));
    assert_eq!(
        statuses(&finished),
        [COMPLETION_PROMOTED, COMPLETION_FAST_ROLLED_BACK]
    );
}

#[test]
fn an_invalid_spec_leaves_the_duration_alone() {
    let mut sim = Sim::seed();
    let mut finished = Vec::new();
    settle(&mut sim, &mut finished);
    let before = duration(&sim);
    let yaml = SEED.replace("setWeight: 20", "setWeight: 150");
    let bad: crate::api::rollout::Rollout = serde_saphyr::from_str(&yaml).unwrap();
    sim.ro.spec = bad.spec;
    sim.set_image("frontend:v2");
    settle(&mut sim, &mut finished);
    assert_eq!(sim.phase().0, "Degraded");
    assert_eq!(duration(&sim), before);
    assert_eq!(finished.len(), 1);
}
