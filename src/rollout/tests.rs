//! Planner scenario tests: whole rollouts walked through the in-memory simulator, checked against
//! the behaviour the reference prescribes (§1.8–1.14).

use std::time::Duration;

use proptest::prelude::*;

use super::sim::{Pods, SEED, Sim};
use crate::api::consts::*;
use crate::rollout::observed::RsExt;

fn deployed_seed() -> Sim {
    let mut sim = Sim::seed();
    sim.settle(20);
    sim
}

#[test]
fn initial_deploy_skips_steps_and_is_healthy() {
    let mut sim = Sim::seed();
    sim.settle(20);
    let st = sim.status();
    assert_eq!(sim.rss.len(), 1);
    assert_eq!(sim.rss[0].spec_replicas(), 5);
    assert_eq!(st.stable_rs, st.current_pod_hash);
    assert_eq!(st.current_step_index, Some(8));
    assert_eq!(sim.phase(), ("Healthy".to_string(), String::new()));
    assert_eq!(st.observed_generation.as_deref(), Some("1"));
    let reasons = sim.event_reasons();
    assert!(
        reasons.contains(&REASON_NEW_REPLICA_SET_CREATED.to_string()),
        "{reasons:?}"
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.reason == REASON_ROLLOUT_COMPLETED && e.message.ends_with("Initial deploy"))
    );
    let rs = &sim.rss[0];
    assert_eq!(
        rs.name(),
        format!(
            "frontend-{}",
            st.current_pod_hash.clone().unwrap_or_default()
        )
    );
    assert_eq!(rs.revision(), Some(1));
}

#[test]
fn a_settled_rollout_plans_no_writes() {
    let mut sim = deployed_seed();
    let p = sim.reconcile();
    assert!(p.is_noop(), "{p:?}");
    assert_eq!(p.requeue_after, None);
}

#[test]
fn seed_walks_every_step_with_exact_pause_requeues() {
    let mut sim = deployed_seed();
    sim.set_image("frontend:v2");
    let mut seen = Vec::new();
    for _ in 0..4 {
        sim.settle(20);
        seen.push(sim.sizes());
        assert_eq!(
            sim.phase(),
            (
                "Paused".to_string(),
                PAUSE_REASON_CANARY_PAUSE_STEP.to_string()
            )
        );
        // the wait is an exact requeue at expiry, not polling
        let p = sim.reconcile();
        assert!(p.is_noop());
        assert_eq!(p.requeue_after, Some(Duration::from_secs(600)));
        sim.advance(300);
        assert_eq!(
            sim.reconcile().requeue_after,
            Some(Duration::from_secs(300))
        );
        sim.advance(300);
    }
    sim.settle(30);
    assert_eq!(seen, vec![(1, 4), (2, 3), (3, 2), (4, 1)]);
    let st = sim.status();
    assert_eq!(st.stable_rs, st.current_pod_hash);
    assert_eq!(sim.phase().0, "Healthy");
    let sizes: Vec<i32> = sim.rss.iter().map(|r| r.spec_replicas()).collect();
    assert!(sizes.contains(&5) && sizes.contains(&0), "{sizes:?}");
    let steps = sim
        .events
        .iter()
        .filter(|e| e.reason == REASON_ROLLOUT_STEP_COMPLETED)
        .count();
    assert_eq!(steps, 8);
    assert!(
        sim.events
            .iter()
            .any(|e| e.message == "Rollout step 1/8 completed (setWeight: 20)")
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.message == "Rollout step 2/8 completed (pause: 10m)")
    );
}

const INDEFINITE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: app, namespace: default, uid: u-1, generation: 1}
spec:
  replicas: 5
  selector: {matchLabels: {app: app}}
  strategy:
    canary:
      steps:
      - setWeight: 20
      - pause: {}
      - setWeight: 60
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: "app:v1"}]}
"#;

#[test]
fn indefinite_pause_holds_until_pause_conditions_are_cleared() {
    let mut sim = Sim::new(INDEFINITE);
    sim.settle(20);
    sim.set_image("app:v2");
    sim.settle(20);
    assert_eq!(sim.sizes(), (1, 4));
    assert_eq!(sim.phase(), ("Paused".into(), "CanaryPauseStep".into()));
    let p = sim.reconcile();
    assert_eq!(p.requeue_after, None, "an indefinite pause needs no timer");
    sim.advance(86_400);
    sim.settle(20);
    assert_eq!(sim.sizes(), (1, 4));
    assert_eq!(sim.status().current_step_index, Some(1));
    // `kubectl argo rollouts promote`: {"status":{"pauseConditions":null}}
    if let Some(st) = sim.ro.status.as_mut() {
        st.pause_conditions = None;
    }
    sim.settle(20);
    let st = sim.status();
    assert_eq!(
        st.stable_rs, st.current_pod_hash,
        "completed after the last setWeight"
    );
    assert_eq!(sim.phase().0, "Healthy");
    assert!(
        sim.event_reasons()
            .contains(&REASON_ROLLOUT_RESUMED.to_string())
            || sim
                .event_reasons()
                .contains(&REASON_ROLLOUT_STEP_COMPLETED.to_string())
    );
}

#[test]
fn abort_rolls_back_and_retry_restarts_from_step_zero() {
    let mut sim = deployed_seed();
    sim.set_image("frontend:v2");
    sim.settle(20);
    sim.advance(601);
    sim.settle(20);
    assert_eq!(sim.sizes(), (2, 3));
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    assert_eq!(sim.sizes(), (0, 5));
    let (phase, msg) = sim.phase();
    assert_eq!(phase, "Degraded");
    assert!(
        msg.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{msg}"
    );
    assert_eq!(sim.status().current_step_index, Some(0));
    assert!(sim.status().aborted_at.is_some());
    assert!(
        sim.events
            .iter()
            .any(|e| e.warning && e.reason == REASON_ROLLOUT_ABORTED)
    );
    // retry: {"status":{"abort":false}}
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(false);
    }
    sim.settle(20);
    assert_eq!(sim.sizes(), (1, 4));
    assert_eq!(sim.status().current_step_index, Some(1));
    assert_eq!(sim.phase(), ("Paused".into(), "CanaryPauseStep".into()));
}

#[test]
fn promote_full_completes_at_once() {
    let mut sim = deployed_seed();
    sim.set_image("frontend:v2");
    sim.settle(20);
    assert_eq!(sim.sizes(), (1, 4));
    if let Some(st) = sim.ro.status.as_mut() {
        st.promote_full = Some(true);
    }
    sim.settle(20);
    let st = sim.status();
    assert_eq!(st.stable_rs, st.current_pod_hash);
    assert_eq!(st.promote_full, None);
    assert_eq!(st.current_step_index, Some(8));
    assert_eq!(sim.phase().0, "Healthy");
    assert!(
        sim.events
            .iter()
            .any(|e| e.message.ends_with("Full promotion requested"))
    );
}

#[test]
fn spec_paused_halts_scaling() {
    let mut sim = deployed_seed();
    sim.ro.spec.paused = Some(true);
    sim.bump_generation();
    sim.set_image("frontend:v2");
    sim.settle(20);
    assert_eq!(sim.sizes(), (0, 5));
    assert_eq!(sim.phase(), ("Paused".into(), "manually paused".into()));
    sim.ro.spec.paused = None;
    sim.bump_generation();
    sim.settle(20);
    assert_eq!(sim.sizes(), (1, 4));
}

#[test]
fn revision_history_limit_keeps_two_old_replicasets() {
    let mut sim = deployed_seed();
    for v in 2..=6 {
        sim.set_image(&format!("frontend:v{v}"));
        // The first reconcile of a new template resets promoteFull, so promote after it.
        sim.reconcile();
        if let Some(st) = sim.ro.status.as_mut() {
            st.promote_full = Some(true);
        }
        sim.settle(20);
    }
    let st = sim.status();
    let old = sim
        .rss
        .iter()
        .filter(|r| r.hash() != st.current_pod_hash.as_deref())
        .count();
    assert_eq!(
        old,
        2,
        "{:?}",
        sim.rss
            .iter()
            .map(|r| (
                r.name().to_string(),
                r.revision(),
                r.spec_replicas(),
                r.created()
            ))
            .collect::<Vec<_>>()
    );
    assert_eq!(sim.rss.iter().filter_map(|r| r.revision()).max(), Some(6));
}

#[test]
fn fast_rollback_to_stable_skips_steps() {
    let mut sim = deployed_seed();
    sim.set_image("frontend:v2");
    sim.settle(20);
    assert_eq!(sim.sizes(), (1, 4));
    sim.set_image("frontend:v1");
    sim.settle(20);
    let st = sim.status();
    assert_eq!(st.stable_rs, st.current_pod_hash);
    assert_eq!(st.current_step_index, Some(8));
    assert!(sim.event_reasons().contains(&"SkipSteps".to_string()));
    assert_eq!(sim.phase().0, "Healthy");
    assert_eq!(sim.total_pods(), 5);
}

#[test]
fn invalid_set_weight_is_an_invalid_spec_condition() {
    let yaml = SEED.replace("setWeight: 20", "setWeight: 150");
    let mut sim = Sim::new(&yaml);
    sim.settle(5);
    let st = sim.status();
    let cond = st
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == CONDITION_INVALID_SPEC)
        .cloned();
    let msg = cond.and_then(|c| c.message).unwrap_or_default();
    assert_eq!(
        msg,
        "The Rollout \"frontend\" is invalid: spec.strategy.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
    );
    assert_eq!(sim.phase().0, "Degraded");
    assert!(sim.phase().1.starts_with("InvalidSpec: "));
    assert!(sim.rss.is_empty(), "an invalid rollout creates nothing");
    assert!(sim.reconcile().is_noop(), "and does not write again");
    // fixing the spec clears the condition
    sim.ro.spec = Sim::seed().ro.spec;
    sim.bump_generation();
    sim.settle(20);
    assert_eq!(sim.phase().0, "Healthy");
    assert!(
        sim.status()
            .conditions
            .iter()
            .flatten()
            .all(|c| c.type_ != CONDITION_INVALID_SPEC)
    );
}

#[test]
fn progress_deadline_degrades_and_aborts_when_asked() {
    for abort in [false, true] {
        let yaml = SEED.replace("revisionHistoryLimit: 2", &format!("revisionHistoryLimit: 2\n  progressDeadlineSeconds: 60\n  progressDeadlineAbort: {abort}"));
        let mut sim = Sim::new(&yaml);
        sim.pods = Pods::NeverReadyTag;
        sim.settle(20);
        sim.set_image("frontend:never-ready");
        sim.settle(20);
        assert_eq!(sim.phase().0, "Progressing");
        let p = sim.reconcile();
        assert!(
            p.requeue_after
                .is_some_and(|d| d <= Duration::from_secs(61)),
            "{:?}",
            p.requeue_after
        );
        sim.advance(62);
        sim.settle(20);
        let (phase, msg) = sim.phase();
        assert_eq!(phase, "Degraded", "abort={abort}");
        if abort {
            assert!(msg.starts_with("RolloutAborted: "), "{msg}");
            assert_eq!(sim.sizes(), (0, 5));
        } else {
            assert!(
                msg.starts_with("ProgressDeadlineExceeded: ReplicaSet \"frontend-"),
                "{msg}"
            );
        }
    }
}

#[test]
fn argo_created_replicaset_is_adopted_not_recreated() {
    let mut sim = deployed_seed();
    // Pretend Argo made the ReplicaSet: another hash label and name, a defaulted template.
    let rs = &mut sim.rss[0];
    let argo_hash = "6d4b8f7c9".to_string();
    rs.metadata.name = Some(format!("frontend-{argo_hash}"));
    if let Some(l) = rs.metadata.labels.as_mut() {
        l.insert(LABEL_POD_TEMPLATE_HASH.into(), argo_hash.clone());
    }
    if let Some(t) = rs.spec.as_mut().and_then(|s| s.template.as_mut()) {
        if let Some(l) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
            l.insert(LABEL_POD_TEMPLATE_HASH.into(), argo_hash.clone());
        }
        if let Some(c) = t.spec.as_mut().and_then(|s| s.containers.first_mut()) {
            c.image_pull_policy = Some("IfNotPresent".into());
            c.termination_message_path = Some("/dev/termination-log".into());
        }
    }
    if let Some(st) = sim.ro.status.as_mut() {
        st.stable_rs = Some(argo_hash.clone());
        st.current_pod_hash = Some(argo_hash.clone());
    }
    let p = sim.reconcile();
    assert!(p.create.is_none(), "must adopt, not create: {p:?}");
    sim.settle(10);
    assert_eq!(sim.rss.len(), 1);
    assert_eq!(
        sim.status().current_pod_hash.as_deref(),
        Some(argo_hash.as_str())
    );
    assert_eq!(sim.phase().0, "Healthy");
}

#[test]
fn steps_change_restarts_the_canary_from_step_zero() {
    let mut sim = deployed_seed();
    sim.set_image("frontend:v2");
    sim.settle(20);
    sim.advance(601);
    sim.settle(20);
    assert_eq!(sim.status().current_step_index, Some(3));
    if let Some(steps) = sim
        .ro
        .spec
        .strategy
        .canary
        .as_mut()
        .and_then(|c| c.steps.as_mut())
    {
        steps.remove(0);
    }
    sim.bump_generation();
    sim.settle(20);
    assert_eq!(sim.status().current_step_index, Some(0));
}

/// Walk a canary with random shape; return per-round observations for property checks.
fn walk(
    replicas: i32,
    weights: &[i32],
    surge: &str,
    unavailable: &str,
) -> Vec<(i32, i32, Option<i32>, bool)> {
    let steps: String = weights
        .iter()
        .map(|w| format!("      - setWeight: {w}\n      - pause: {{duration: 5}}\n"))
        .collect();
    let yaml = format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: p, namespace: default, uid: u-p, generation: 1}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: p}}}}
  strategy:
    canary:
      maxSurge: "{surge}"
      maxUnavailable: "{unavailable}"
      steps:
{steps}
  template:
    metadata: {{labels: {{app: p}}}}
    spec: {{containers: [{{name: p, image: "p:v1"}}]}}
"#
    );
    let mut sim = Sim::new(&yaml);
    sim.settle(50);
    sim.set_image("p:v2");
    let mut obs = Vec::new();
    for _ in 0..200 {
        let p = sim.reconcile();
        obs.push((
            sim.total_pods(),
            sim.available(),
            sim.status().current_step_index,
            sim.status().abort.unwrap_or(false),
        ));
        if p.is_noop() {
            if p.requeue_after.is_none() {
                break;
            }
            sim.advance(6);
        }
    }
    let st = sim.status();
    assert_eq!(st.stable_rs, st.current_pod_hash, "rollout completes");
    obs
}

fn fenceposts(replicas: i32, surge: &str, unavailable: &str) -> (i32, i32) {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    crate::rollout::replicas::resolve_fenceposts(
        Some(&IntOrString::String(surge.into())),
        Some(&IntOrString::String(unavailable.into())),
        replicas,
    )
    .unwrap_or((0, 1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Total desired pods never exceed replicas + maxSurge; with all pods ready, availability never
    /// drops below replicas − maxUnavailable; the step index only moves forward.
    #[test]
    fn canary_walk_invariants(
        replicas in 1i32..15,
        weights in proptest::collection::vec(1i32..100, 1..5),
        surge in prop_oneof![Just("25%"), Just("0"), Just("50%"), Just("100%")],
        unavailable in prop_oneof![Just("25%"), Just("0"), Just("10%"), Just("50%")],
    ) {
        // Both zero is an InvalidSpec ("MaxSurge and MaxUnavailable both can not be zero").
        prop_assume!(!(surge == "0" && unavailable == "0"));
        let (s, u) = fenceposts(replicas, surge, unavailable);
        let mut sorted = weights.clone();
        sorted.sort();
        let obs = walk(replicas, &sorted, surge, unavailable);
        let mut last_index = 0;
        for (total, available, index, aborted) in obs {
            prop_assert!(total <= replicas + s, "total {} > {} + {}", total, replicas, s);
            prop_assert!(available >= replicas - u, "available {} < {} - {}", available, replicas, u);
            prop_assert!(!aborted);
            let i = index.unwrap_or(0);
            prop_assert!(i >= last_index, "step index went back {} -> {}", last_index, i);
            last_index = i;
        }
    }
}

const ANALYSIS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: app, namespace: default, uid: u-a, generation: 1}
spec:
  replicas: 5
  selector: {matchLabels: {app: app}}
  strategy:
    canary:
      analysis:
        templates: [{templateName: background}]
        startingStep: 1
      steps:
      - setWeight: 20
      - analysis:
          templates: [{templateName: success-rate}]
          args: [{name: service, value: app-canary}, {name: hash, valueFrom: {podTemplateHashValue: Latest}}]
      - setWeight: 60
  template:
    metadata: {labels: {app: app}}
    spec: {containers: [{name: app, image: "app:v1"}]}
"#;

fn template(name: &str) -> crate::api::analysis::AnalysisTemplate {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "args": [{"name": "service"}, {"name": "hash"}],
            "metrics": [{"name": format!("{name}-metric"), "successCondition": "result[0] >= 0.95",
                "provider": {"prometheus": {"address": "http://127.0.0.1:9090", "query": "rate{svc=\"{{args.service}}\"}"}}}]
        }
    }))
    .unwrap_or_else(|e| panic!("{e}"))
}

fn analysis_sim() -> Sim {
    let mut sim = Sim::new(ANALYSIS);
    sim.templates = vec![template("success-rate"), template("background")];
    sim.settle(20);
    assert!(sim.runs.is_empty(), "no analysis on the initial deploy");
    sim.set_image("app:v2");
    sim.settle(20);
    sim
}

fn step_run_name(sim: &Sim) -> String {
    let st = sim.status();
    format!("app-{}-2-1", st.current_pod_hash.unwrap_or_default())
}

#[test]
fn analysis_step_creates_a_labelled_run_and_waits_for_it() {
    let mut sim = analysis_sim();
    assert_eq!(sim.sizes(), (1, 4));
    assert_eq!(sim.status().current_step_index, Some(1));
    let name = step_run_name(&sim);
    let run = sim
        .runs
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
        .cloned();
    let run = run.unwrap_or_else(|| panic!("step run {name} in {:?}", sim.run_names()));
    let labels = run.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get(LABEL_ROLLOUT_TYPE).map(String::as_str),
        Some(ROLLOUT_TYPE_STEP)
    );
    assert_eq!(labels.get(LABEL_STEP_INDEX).map(String::as_str), Some("1"));
    assert_eq!(labels.get("app").map(String::as_str), Some("app"));
    assert_eq!(
        labels.get(LABEL_POD_TEMPLATE_HASH),
        sim.status().current_pod_hash.as_ref()
    );
    let args = run.spec.args.clone().unwrap_or_default();
    assert!(
        args.iter()
            .any(|a| a.name == "service" && a.value.as_deref() == Some("app-canary"))
    );
    assert!(
        args.iter()
            .any(|a| a.name == "hash" && a.value == sim.status().current_pod_hash)
    );
    // background analysis started at step 1
    assert!(sim.run_names().iter().any(|n| n
        == &format!(
            "app-{}-2",
            sim.status().current_pod_hash.unwrap_or_default()
        )));
    // a running analysis holds the step
    sim.set_run_phase(&name, ANALYSIS_PHASE_RUNNING, "");
    sim.settle(20);
    assert_eq!(sim.status().current_step_index, Some(1));
    let st = sim
        .status()
        .canary
        .and_then(|c| c.current_step_analysis_run_status)
        .unwrap_or_else(|| panic!("status"));
    assert_eq!(
        (st.name.as_str(), st.status.as_str()),
        (name.as_str(), ANALYSIS_PHASE_RUNNING)
    );
    sim.set_run_phase(&name, ANALYSIS_PHASE_SUCCESSFUL, "");
    sim.settle(30);
    let st = sim.status();
    assert_eq!(
        st.stable_rs, st.current_pod_hash,
        "promoted after a successful analysis"
    );
    assert_eq!(sim.phase().0, "Healthy");
    // the background run is terminated at promotion
    let bg = format!("app-{}-2", st.current_pod_hash.unwrap_or_default());
    assert!(
        sim.runs
            .iter()
            .any(|r| r.metadata.name.as_deref() == Some(bg.as_str())
                && r.spec.terminate == Some(true))
    );
    assert!(
        sim.event_reasons()
            .contains(&"AnalysisRunSuccessful".to_string())
    );
}

#[test]
fn failed_analysis_aborts_the_rollout() {
    let mut sim = analysis_sim();
    let name = step_run_name(&sim);
    sim.set_run_phase(
        &name,
        ANALYSIS_PHASE_FAILED,
        "Metric \"success-rate-metric\" assessed Failed due to failed (1) > failureLimit (0)",
    );
    sim.settle(20);
    assert_eq!(sim.sizes(), (0, 5));
    let (phase, msg) = sim.phase();
    assert_eq!(phase, "Degraded");
    assert_eq!(
        msg,
        "RolloutAborted: Rollout aborted update to revision 2: Step-based analysis phase error/failed: Metric \"success-rate-metric\" assessed Failed due to failed (1) > failureLimit (0)"
    );
    assert!(
        sim.events
            .iter()
            .any(|e| e.warning && e.reason == "AnalysisRunFailed")
    );
}

#[test]
fn errored_analysis_aborts_and_never_promotes() {
    let mut sim = analysis_sim();
    let name = step_run_name(&sim);
    sim.set_run_phase(
        &name,
        ANALYSIS_PHASE_ERROR,
        "consecutiveErrors (5) > consecutiveErrorLimit (4)",
    );
    sim.settle(20);
    assert_eq!(sim.phase().0, "Degraded");
    assert_ne!(sim.status().stable_rs, sim.status().current_pod_hash);
}

#[test]
fn inconclusive_analysis_pauses_and_halts_scaling() {
    let mut sim = analysis_sim();
    let name = step_run_name(&sim);
    sim.set_run_phase(&name, ANALYSIS_PHASE_INCONCLUSIVE, "");
    sim.settle(20);
    assert_eq!(
        sim.phase(),
        (
            "Paused".into(),
            PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN.into()
        )
    );
    assert_eq!(sim.sizes(), (1, 4));
    assert_eq!(sim.status().current_step_index, Some(1));
}

#[test]
fn missing_analysis_template_is_invalid_spec() {
    let mut sim = Sim::new(ANALYSIS);
    sim.templates = vec![template("background")];
    sim.settle(5);
    assert_eq!(sim.phase().0, "Degraded");
    assert!(
        sim.phase()
            .1
            .contains("AnalysisTemplate.argoproj.io \"success-rate\" not found"),
        "{:?}",
        sim.phase()
    );
    assert!(sim.rss.is_empty());
}

#[test]
fn abort_terminates_running_analysis() {
    let mut sim = analysis_sim();
    let name = step_run_name(&sim);
    sim.set_run_phase(&name, ANALYSIS_PHASE_RUNNING, "");
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    assert!(
        sim.runs
            .iter()
            .filter(|r| r.metadata.name.as_deref() == Some(name.as_str()))
            .all(|r| r.spec.terminate == Some(true))
    );
    assert_eq!(sim.sizes(), (0, 5));
}

#[test]
fn a_run_created_before_a_crash_is_adopted_not_duplicated() {
    let mut sim = analysis_sim();
    let name = step_run_name(&sim);
    // The status write that would name the run was lost (crash, or a refused patch).
    if let Some(c) = sim.ro.status.as_mut().and_then(|s| s.canary.as_mut()) {
        c.current_step_analysis_run_status = None;
        c.current_background_analysis_run_status = None;
    }
    let before = sim.runs.len();
    sim.settle(20);
    assert_eq!(
        sim.runs.len(),
        before,
        "no duplicate run: {:?}",
        sim.run_names()
    );
    let st = sim
        .status()
        .canary
        .and_then(|c| c.current_step_analysis_run_status)
        .map(|s| s.name);
    assert_eq!(st.as_deref(), Some(name.as_str()));
    assert!(
        sim.runs.iter().all(|r| r.spec.terminate.is_none()),
        "nothing terminated"
    );
}
