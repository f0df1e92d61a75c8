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
    if let Some(t) = rs.spec.template.as_mut() {
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
        # Argo refuses a run whose template arguments have no value.
        args: [{name: service, value: app-canary}, {name: hash, valueFrom: {podTemplateHashValue: Latest}}]
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

/// Argo's `newRolloutContext`: an abort on a fully promoted rollout is removed
/// (`IsFullyPromoted && IsAborted → RemoveAbort`); the rollout stays Healthy.
#[test]
fn abort_on_a_fully_promoted_rollout_is_cleared() {
    let mut sim = deployed_seed();
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    let st = sim.status();
    assert_eq!(st.abort, None);
    assert_eq!(st.aborted_at, None);
    assert_eq!(sim.phase().0, "Healthy");
    assert!(
        !sim.event_reasons()
            .contains(&REASON_ROLLOUT_ABORTED.to_string()),
        "{:?}",
        sim.event_reasons()
    );
}

/// `status.currentStepHash` equals Argo's `ComputeStepHash` (vectors from upstream
/// `utils/conditions/rollouts_test.go` `TestComputeStepHash`), so a Rollout taken over from Argo
/// is not seen as a steps change (which would reset its step index and clear an abort). Without
/// steps Argo hashes Go's `null`, not `[]`.
#[test]
fn step_hash_matches_argo_vectors() {
    let hash = |steps: &str| {
        let yaml = INDEFINITE.replace(
            "      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 60\n",
            steps,
        );
        let mut sim = Sim::new(&yaml);
        sim.settle(20);
        sim.status().current_step_hash.unwrap_or_default()
    };
    assert_eq!(hash("      steps:\n      - pause: {}\n"), "6b9b86fbd5");
    assert_eq!(
        hash("      steps:\n      - pause: {}\n      - pause: {}\n"),
        "79c9b9f6bf"
    );
    assert_eq!(hash("      maxSurge: 1\n"), "5ffbfbbd64");
}

/// After a retry the first reconcile creates a new background run (the abort makes the old one
/// stale). A following reconcile that still sees the Rollout as the user left it (its status write
/// not yet in the cache) must adopt that run, not create another: `abortedAt` only asks for a new
/// run once, and a run created after the abort is that new run.
#[test]
fn retry_with_a_stale_rollout_does_not_duplicate_the_background_run() {
    let yaml = ANALYSIS.replace("        startingStep: 1\n", "");
    let mut sim = Sim::new(&yaml);
    sim.templates = vec![template("success-rate"), template("background")];
    sim.settle(20);
    sim.set_image("app:v2");
    sim.settle(20);
    let bg = format!(
        "app-{}-2",
        sim.status().current_pod_hash.unwrap_or_default()
    );
    sim.set_run_phase(&bg, ANALYSIS_PHASE_FAILED, "boom");
    sim.settle(20);
    assert_eq!(sim.phase().0, "Degraded");
    sim.advance(10);
    // retry: {"status":{"abort":false}}
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(false);
    }
    // The first reconcile only records the RolloutRetry condition (checkPausedConditions).
    sim.reconcile();
    let user = sim.ro.clone();
    let p = sim.reconcile();
    assert_eq!(p.create_runs.len(), 1, "{:?}", p.create_runs);
    let live = |sim: &Sim| {
        sim.runs
            .iter()
            .filter(|r| {
                r.spec.terminate.is_none()
                    && r.status.is_none()
                    && r.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_ROLLOUT_TYPE))
                        .map(String::as_str)
                        == Some(ROLLOUT_TYPE_BACKGROUND)
            })
            .count()
    };
    assert_eq!(live(&sim), 1, "{:?}", sim.run_names());
    // The next reconcile runs on the Rollout as the user left it (stale cache).
    let fresh = std::mem::replace(&mut sim.ro, user);
    let p = sim.reconcile();
    assert!(
        p.create_runs.is_empty(),
        "duplicate run: {:?}",
        p.create_runs
    );
    sim.ro = fresh;
    sim.settle(20);
    assert_eq!(live(&sim), 1, "{:?}", sim.run_names());
}

/// `workloadRef` is not resolved by this version: the Rollout must say so (InvalidSpec, like
/// blue-green) instead of trying to create a ReplicaSet from its empty template on every
/// reconcile (the API server rejects it, so the rollout would silently never progress).
#[test]
fn workload_ref_is_reported_not_attempted() {
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: wl, namespace: default, uid: u-wl, generation: 1}
spec:
  replicas: 2
  selector: {matchLabels: {app: wl}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: wl}
  strategy:
    canary:
      steps: [{setWeight: 50}]
"#;
    let mut sim = Sim::new(yaml);
    sim.settle(5);
    assert!(sim.rss.is_empty(), "no ReplicaSet from an empty template");
    let (phase, msg) = sim.phase();
    assert_eq!(phase, "Degraded");
    assert!(msg.contains("spec.workloadRef"), "{msg}");
    assert!(sim.reconcile().is_noop());
}

/// `replicaProgressThreshold` (Argo v1.9, `AtDesiredReplicaCountsForCanary` and
/// `shouldFullPromote`): a step, and the final promotion, count as reached once this many canary
/// pods are available, even if one of them never becomes ready.
#[test]
fn replica_progress_threshold_lets_a_step_complete_with_a_straggler() {
    let yaml = INDEFINITE
        .replace(
            "      steps:\n      - setWeight: 20\n      - pause: {}\n      - setWeight: 60\n",
            "      replicaProgressThreshold: {type: Pods, value: 1}\n      steps:\n      - setWeight: 40\n",
        );
    let mut sim = Sim::new(&yaml);
    sim.settle(20);
    sim.set_image("app:v2");
    for _ in 0..40 {
        let p = sim.reconcile();
        // One pod of the new ReplicaSet never becomes available.
        let new = sim.status().current_pod_hash;
        for rs in &mut sim.rss {
            if rs.hash().map(str::to_string) == new
                && new != sim.ro.status.as_ref().and_then(|s| s.stable_rs.clone())
            {
                let spec = rs.spec_replicas();
                if let Some(st) = rs.status.as_mut() {
                    st.available_replicas = Some((spec - 1).max(0));
                    st.ready_replicas = Some((spec - 1).max(0));
                }
            }
        }
        if p.is_noop() {
            break;
        }
    }
    let st = sim.status();
    assert_eq!(st.current_step_index, Some(1), "{:?}", sim.sizes());
    assert_eq!(
        st.stable_rs, st.current_pod_hash,
        "promoted with 4 of 5 available"
    );
}

/// Resuming after an Inconclusive step analysis starts a new run for the step. A following
/// reconcile that still sees the Rollout from before that (stale cache) must not start yet another
/// run and terminate the new one as "not current": the step would then complete on a terminated
/// run (Successful, "Run Terminated") and the rollout would be promoted without analysis.
#[test]
fn resume_after_inconclusive_with_a_stale_rollout_keeps_the_new_run() {
    let mut sim = analysis_sim();
    let first = step_run_name(&sim);
    sim.set_run_phase(&first, ANALYSIS_PHASE_INCONCLUSIVE, "");
    sim.settle(20);
    assert_eq!(sim.phase().1, PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN);
    // resume: {"status":{"pauseConditions":null}}
    if let Some(st) = sim.ro.status.as_mut() {
        st.pause_conditions = None;
    }
    // The first reconcile only records the resume in the conditions (checkPausedConditions).
    sim.reconcile();
    let user = sim.ro.clone();
    let p = sim.reconcile();
    let created: Vec<String> = p
        .create_runs
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    assert_eq!(created, vec![format!("{first}.1")]);
    // The next reconcile runs on the Rollout as it was before that status write.
    let fresh = std::mem::replace(&mut sim.ro, user);
    let stale = sim.reconcile();
    sim.ro = fresh;
    assert!(stale.create_runs.is_empty(), "{:?}", stale.create_runs);
    assert!(
        stale.terminate_runs.is_empty(),
        "{:?}",
        stale.terminate_runs
    );
    sim.settle(20);
    let run = sim
        .runs
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(created[0].as_str()));
    assert!(run.is_some_and(|r| r.spec.terminate.is_none()));
    assert_eq!(sim.status().current_step_index, Some(1), "still analysing");
}

/// Runs are adopted by their labels only when they belong to this revision: after a rollback, the
/// same template applied again is a new revision and its analysis step needs a new run, not the
/// Successful run of the earlier attempt (which would pass the step without analysis).
#[test]
fn a_revision_applied_again_does_not_reuse_an_old_analysis_run() {
    let mut sim = analysis_sim();
    let old = step_run_name(&sim);
    sim.set_run_phase(&old, ANALYSIS_PHASE_SUCCESSFUL, "");
    sim.reconcile();
    assert_eq!(sim.status().current_step_index, Some(2));
    // Roll back to the stable version before the update completes, then apply v2 again.
    sim.set_image("app:v1");
    sim.settle(20);
    assert_eq!(sim.status().stable_rs, sim.status().current_pod_hash);
    sim.set_image("app:v2");
    sim.settle(20);
    let st = sim.status();
    assert_eq!(st.current_step_index, Some(1), "waits for a new analysis");
    let run = st
        .canary
        .and_then(|c| c.current_step_analysis_run_status)
        .map(|s| s.name);
    let hash = st.current_pod_hash.unwrap_or_default();
    assert_eq!(run, Some(format!("app-{hash}-4-1")));
}

/// A retry re-runs the analysis (reference §1.12 "creates new ARs"): the Successful step run of
/// the aborted attempt is not adopted when the retried rollout reaches the step again.
#[test]
fn retry_runs_the_step_analysis_again() {
    let mut sim = analysis_sim();
    let old = step_run_name(&sim);
    sim.set_run_phase(&old, ANALYSIS_PHASE_SUCCESSFUL, "");
    sim.reconcile();
    assert_eq!(sim.status().current_step_index, Some(2));
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    assert_eq!(sim.phase().0, "Degraded");
    sim.advance(10);
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(false);
    }
    sim.settle(20);
    let st = sim.status();
    assert_eq!(st.current_step_index, Some(1), "waits for a new analysis");
    let run = st
        .canary
        .and_then(|c| c.current_step_analysis_run_status)
        .map(|s| s.name);
    assert_eq!(run, Some(format!("{old}.1")));
}

/// Random operator actions (new images, abort, retry, promote, promote --full, pause, analysis
/// outcomes, scaling, time passing, rollback), with some reconciles running on the Rollout as it
/// was before the previous write (a stale cache: their other writes land, their status write is
/// refused). Every action settles without a write loop, at most one step and one background run
/// are live, a run created by a stale reconcile is the one the next reconcile keeps, and an
/// analysis step passes only on the run it started.
#[test]
fn random_actions_with_stale_reconciles_settle_without_duplicate_runs() {
    let mut seed: u64 = 12345;
    let mut rnd = |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let current_runs = |sim: &Sim| -> Vec<String> {
        sim.status()
            .canary
            .iter()
            .flat_map(|c| {
                [
                    c.current_step_analysis_run_status.clone(),
                    c.current_background_analysis_run_status.clone(),
                ]
            })
            .flatten()
            .map(|s| s.name)
            .collect()
    };
    for case in 0..400 {
        let yaml = if case % 2 == 0 {
            ANALYSIS.to_string()
        } else {
            ANALYSIS.replace("        startingStep: 1\n", "")
        };
        let mut sim = Sim::new(&yaml);
        sim.templates = vec![template("success-rate"), template("background")];
        sim.settle(20);
        let mut log = Vec::new();
        let mut img = 1;
        for _ in 0..12 {
            let action = rnd(10);
            log.push(action);
            let st = sim.ro.status.get_or_insert_with(Default::default);
            match action {
                0 => {
                    img += 1;
                    sim.set_image(&format!("app:v{img}"));
                }
                1 => st.abort = Some(true),
                2 => st.abort = Some(false),
                3 => st.promote_full = Some(true),
                4 => st.pause_conditions = None,
                5 => {
                    sim.ro.spec.paused = Some(!sim.ro.spec.paused.unwrap_or(false));
                    sim.bump_generation();
                }
                6 => {
                    let phase = [
                        ANALYSIS_PHASE_SUCCESSFUL,
                        ANALYSIS_PHASE_FAILED,
                        ANALYSIS_PHASE_INCONCLUSIVE,
                        ANALYSIS_PHASE_RUNNING,
                    ][rnd(4) as usize];
                    if let Some(n) = sim.run_names().last() {
                        sim.set_run_phase(n, phase, "");
                    }
                }
                7 => {
                    sim.ro.spec.replicas = Some(1 + rnd(8) as i32);
                    sim.bump_generation();
                }
                8 => sim.advance(700),
                _ => {
                    img = 1;
                    sim.set_image("app:v1");
                }
            }
            for round in 0.. {
                assert!(
                    round < 80,
                    "case {case} {log:?}: no fixpoint: {:?}",
                    sim.last
                );
                let before = sim.ro.clone();
                let step_run = sim
                    .status()
                    .canary
                    .and_then(|c| c.current_step_analysis_run_status)
                    .map(|s| s.name);
                let p = sim.reconcile();
                // An analysis step passes only on the run status names, and never on one we
                // terminated.
                if p.events.iter().any(|e| e.message.ends_with("(analysis)")) {
                    let run = sim.runs.iter().find(|r| r.metadata.name == step_run);
                    assert!(
                        run.is_some_and(|r| r.spec.terminate.is_none()),
                        "case {case} {log:?}: step passed on {step_run:?}"
                    );
                }
                if p.is_noop() {
                    break;
                }
                if rnd(3) != 0 {
                    continue;
                }
                let fresh = std::mem::replace(&mut sim.ro, before);
                let stale = sim.reconcile();
                sim.ro = fresh;
                if stale.create_runs.is_empty() {
                    continue;
                }
                sim.reconcile();
                let current = current_runs(&sim);
                for r in &stale.create_runs {
                    let name = r.metadata.name.clone().unwrap_or_default();
                    assert!(
                        current.contains(&name),
                        "case {case} {log:?}: stale reconcile created {name}, current {current:?}"
                    );
                }
            }
            let live: Vec<String> = sim
                .runs
                .iter()
                .filter(|r| {
                    r.spec.terminate.is_none()
                        && !r
                            .status
                            .as_ref()
                            .and_then(|s| s.phase.as_deref())
                            .is_some_and(crate::analysis::run::is_completed)
                })
                .filter_map(|r| r.metadata.name.clone())
                .collect();
            assert!(live.len() <= 2, "case {case} {log:?}: live runs {live:?}");
        }
    }
}

/// Argo's `syncReplicaSetRevision` keeps the new ReplicaSet's `minReadySeconds` equal to the
/// Rollout's (it is not part of the pod template, so changing it makes no new revision).
#[test]
fn min_ready_seconds_change_updates_the_current_replicaset() {
    let mut sim = deployed_seed();
    sim.ro.spec.min_ready_seconds = Some(5);
    sim.bump_generation();
    let p = sim.reconcile();
    assert!(p.create.is_none());
    assert_eq!(
        p.updates
            .iter()
            .map(|u| u.min_ready_seconds)
            .collect::<Vec<_>>(),
        vec![Some(5)]
    );
    sim.settle(10);
    assert_eq!(sim.rss.len(), 1);
    let spec = sim.rss[0].spec.clone();
    assert_eq!(spec.min_ready_seconds, Some(5));
    assert!(sim.reconcile().is_noop());
}

#[test]
fn a_new_run_is_recorded_as_pending_never_with_an_empty_phase() {
    let sim = analysis_sim();
    let st = sim
        .status()
        .canary
        .and_then(|c| c.current_step_analysis_run_status)
        .unwrap_or_default();
    assert_eq!(
        st.status, ANALYSIS_PHASE_PENDING,
        "an empty phase is refused by the API server"
    );
}

/// Argo's `getAnalysisRunsForRollout`: a run the status names that is missing from the cache is
/// read live; one that was really deleted is measured again (both step and background), while
/// one merely not cached yet is still waited for.
#[test]
fn a_deleted_analysis_run_is_measured_again() {
    let mut sim = analysis_sim();
    let step = step_run_name(&sim);
    let bg = format!(
        "app-{}-2",
        sim.status().current_pod_hash.unwrap_or_default()
    );
    sim.set_run_phase(&step, ANALYSIS_PHASE_RUNNING, "");
    sim.settle(20);
    // Missing from the cache, not confirmed gone: nothing new is created.
    let kept: Vec<_> = sim.runs.drain(..).collect();
    let p = sim.reconcile();
    assert!(p.create_runs.is_empty(), "{:?}", p.create_runs);
    // Confirmed deleted by a live read: both runs are created again.
    sim.gone_runs = vec![step.clone(), bg.clone()];
    let p = sim.reconcile();
    let created: Vec<String> = p
        .create_runs
        .iter()
        .filter_map(|r| r.metadata.name.clone())
        .collect();
    assert!(created.contains(&step), "{created:?}");
    assert!(created.contains(&bg), "{created:?}");
    assert_eq!(
        sim.status().current_step_index,
        Some(1),
        "the step still waits"
    );
    drop(kept);
}

/// Nested AnalysisTemplates (`spec.templates`) are flattened into the run, and a Rollout
/// argument no template declares is dropped (Argo's `FlattenTemplates`, `MergeArgs`).
#[test]
fn nested_templates_are_flattened_into_the_run() {
    let yaml = ANALYSIS.replace(
        "templates: [{templateName: success-rate}]\n          args: [{name: service, value: app-canary},",
        "templates: [{templateName: top}]\n          args: [{name: extra, value: dropped}, {name: service, value: app-canary},",
    );
    assert_ne!(yaml, ANALYSIS);
    let mut sim = Sim::new(&yaml);
    let mut top = template("top");
    top.spec.templates = Some(vec![crate::api::rollout::AnalysisTemplateRef {
        template_name: Some("success-rate".into()),
        cluster_scope: None,
    }]);
    sim.templates = vec![top, template("success-rate"), template("background")];
    sim.settle(20);
    sim.set_image("app:v2");
    sim.settle(20);
    let name = step_run_name(&sim);
    let run = sim
        .runs
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name.as_str()))
        .cloned()
        .unwrap_or_else(|| panic!("step run {name} in {:?}", sim.run_names()));
    let metrics: Vec<&str> = run.spec.metrics.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(metrics, ["top-metric", "success-rate-metric"]);
    let args: Vec<&str> = run
        .spec
        .args
        .iter()
        .flatten()
        .map(|a| a.name.as_str())
        .collect();
    assert_eq!(
        args,
        ["service", "hash"],
        "undeclared Rollout args are dropped"
    );
}
