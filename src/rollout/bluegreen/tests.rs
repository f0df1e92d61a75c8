//! Blue-green walked through the simulator: Services, pauses, promotion, scale-down delay,
//! abort, fast rollback, preview replica count and the promotion analyses.
#![allow(clippy::unwrap_used)]

use crate::api::consts::*;
use crate::rollout::observed::RsExt;
use crate::rollout::sim::Sim;
use crate::rollout::status::get_condition;

const BG: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bg}
spec:
  replicas: 3
  revisionHistoryLimit: 2
  selector: {matchLabels: {app: bg}}
  strategy:
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      autoPromotionEnabled: false
  template:
    metadata: {labels: {app: bg}}
    spec:
      containers: [{name: bg, image: "bg:v1"}]
"#;

fn sim(yaml: &str) -> Sim {
    let mut s = Sim::new(yaml);
    s.add_service("bg-active", &[("app", "bg")]);
    s.add_service("bg-preview", &[("app", "bg")]);
    s
}

fn deployed(yaml: &str) -> Sim {
    let mut s = sim(yaml);
    s.settle(20);
    assert_eq!(s.phase().0, PHASE_HEALTHY, "{:?}", s.phase());
    s
}

fn hash(s: &Sim) -> String {
    s.status().current_pod_hash.unwrap_or_default()
}

fn bg_status(s: &Sim) -> (String, String) {
    let b = s.status().blue_green.unwrap_or_default();
    (
        b.active_selector.unwrap_or_default(),
        b.preview_selector.unwrap_or_default(),
    )
}

fn spec_of(s: &Sim, hash: &str) -> i32 {
    s.rs_by_hash(hash).map_or(-1, RsExt::spec_replicas)
}

fn promote(s: &mut Sim) {
    let mut st = s.status();
    st.pause_conditions = None;
    s.ro.status = Some(st);
}

fn abort(s: &mut Sim) {
    let mut st = s.status();
    st.abort = Some(true);
    s.ro.status = Some(st);
}

#[test]
fn initial_deploy_points_both_services_at_the_first_replica_set() {
    let s = deployed(BG);
    let h = hash(&s);
    assert_eq!(s.service_hash("bg-active"), h);
    assert_eq!(s.service_hash("bg-preview"), h);
    assert_eq!(bg_status(&s), (h.clone(), h.clone()));
    assert_eq!(s.status().stable_rs.as_deref(), Some(h.as_str()));
    assert_eq!(spec_of(&s, &h), 3);
    let svc = crate::rollout::services::find(&s.services, "bg-active").unwrap();
    assert_eq!(
        svc.metadata.annotations.as_ref().unwrap()[ANNOTATION_MANAGED_BY_ROLLOUTS],
        "bg"
    );
    assert!(
        s.event_reasons()
            .contains(&REASON_SWITCH_SERVICE.to_string())
    );
    // Settled: nothing more to write.
    let mut s = s;
    assert!(s.reconcile().is_noop(), "{:?}", s.last);
}

#[test]
fn update_pauses_with_the_preview_up_then_promote_switches_and_delays_the_scale_down() {
    let mut s = deployed(BG);
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    let v2 = hash(&s);
    assert_ne!(v1, v2);
    assert_eq!(s.phase(), (PHASE_PAUSED.into(), "BlueGreenPause".into()));
    assert_eq!(s.service_hash("bg-preview"), v2);
    assert_eq!(s.service_hash("bg-active"), v1);
    assert_eq!((spec_of(&s, &v2), spec_of(&s, &v1)), (3, 3));
    let st = s.status();
    assert_eq!(
        st.available_replicas,
        Some(3),
        "available counts the active RS only"
    );
    assert_eq!(st.replicas, Some(6));
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(bg_status(&s), (v1.clone(), v2.clone()));

    promote(&mut s);
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), v2);
    assert_eq!(s.status().stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!(s.phase().0, PHASE_HEALTHY, "{:?}", s.phase());
    let old = s.rs_by_hash(&v1).unwrap();
    assert_eq!(old.spec_replicas(), 3, "kept during scaleDownDelaySeconds");
    assert!(
        old.annotations()
            .contains_key(ANNOTATION_SCALE_DOWN_DEADLINE)
    );
    assert!(s.last.requeue_after.is_some() || s.reconcile().requeue_after.is_some());
    s.advance(31);
    s.settle(20);
    assert_eq!(spec_of(&s, &v1), 0, "scaled down after the delay");
    assert_eq!(s.status().replicas, Some(3));
}

#[test]
fn abort_keeps_active_on_stable_and_scales_the_preview_down_after_the_delay() {
    let mut s = deployed(BG);
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    let v2 = hash(&s);
    abort(&mut s);
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), v1);
    let (phase, msg) = s.phase();
    assert_eq!(phase, PHASE_DEGRADED);
    assert!(
        msg.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{msg}"
    );
    assert_eq!(
        spec_of(&s, &v2),
        3,
        "preview kept for abortScaleDownDelaySeconds"
    );
    assert!(
        s.rs_by_hash(&v2)
            .unwrap()
            .annotations()
            .contains_key(ANNOTATION_SCALE_DOWN_DEADLINE)
    );
    s.advance(31);
    s.settle(20);
    assert_eq!(spec_of(&s, &v2), 0);
    assert_eq!(spec_of(&s, &v1), 3);
}

#[test]
fn fast_rollback_inside_the_delay_window_switches_at_once() {
    let mut s = deployed(BG);
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    promote(&mut s);
    s.settle(20);
    assert_eq!(s.phase().0, PHASE_HEALTHY);
    // Back to v1 while it is still inside its scale-down delay: no pause, no analysis.
    s.set_image("bg:v1");
    s.settle(20);
    assert_eq!(hash(&s), v1);
    assert_eq!(s.service_hash("bg-active"), v1);
    assert_eq!(s.status().stable_rs.as_deref(), Some(v1.as_str()));
    assert_eq!(s.phase().0, PHASE_HEALTHY, "{:?}", s.phase());
    assert!(
        !s.rs_by_hash(&v1)
            .unwrap()
            .annotations()
            .contains_key(ANNOTATION_SCALE_DOWN_DEADLINE),
        "the deadline is removed from the ReplicaSet that is active again"
    );
}

#[test]
fn auto_promotion_seconds_promotes_after_the_wait() {
    let yaml = BG.replace("autoPromotionEnabled: false", "autoPromotionSeconds: 10");
    let mut s = deployed(&yaml);
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    assert_eq!(s.phase(), (PHASE_PAUSED.into(), "BlueGreenPause".into()));
    assert_eq!(s.service_hash("bg-active"), v1);
    let wait = s.reconcile().requeue_after;
    assert!(wait.is_some_and(|w| w.as_secs() <= 11), "{wait:?}");
    s.advance(11);
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), hash(&s));
    assert_eq!(s.phase().0, PHASE_HEALTHY);
}

#[test]
fn auto_promotion_without_a_pause_switches_once_the_preview_is_available() {
    let yaml = BG.replace("autoPromotionEnabled: false", "autoPromotionEnabled: true");
    let mut s = deployed(&yaml);
    s.set_image("bg:v2");
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), hash(&s));
    assert!(
        !s.event_reasons()
            .contains(&REASON_ROLLOUT_PAUSED.to_string())
    );
}

#[test]
fn preview_replica_count_holds_the_preview_small_until_promotion() {
    let yaml = BG.replace(
        "autoPromotionEnabled: false",
        "autoPromotionEnabled: false\n      previewReplicaCount: 1",
    );
    let mut s = deployed(&yaml);
    let v1 = hash(&s);
    assert_eq!(spec_of(&s, &v1), 3, "the first revision runs at full size");
    s.set_image("bg:v2");
    s.settle(20);
    let v2 = hash(&s);
    assert_eq!(spec_of(&s, &v2), 1);
    assert_eq!(s.phase(), (PHASE_PAUSED.into(), "BlueGreenPause".into()));
    promote(&mut s);
    // Scaled to full before the switch, through the check point.
    for _ in 0..5 {
        s.reconcile();
        if spec_of(&s, &v2) == 3 {
            break;
        }
    }
    assert_eq!(spec_of(&s, &v2), 3);
    assert_eq!(
        s.service_hash("bg-active"),
        v1,
        "the switch waits for full size"
    );
    let b = s.status().blue_green.unwrap_or_default();
    assert_eq!(b.scale_up_preview_check_point, Some(true));
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), v2);
    let b = s.status().blue_green.unwrap_or_default();
    assert_eq!(b.scale_up_preview_check_point, None, "reset once promoted");
    assert_eq!(s.phase().0, PHASE_HEALTHY);
}

const TEMPLATE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {name: check, namespace: default}
spec:
  metrics:
  - name: m
    provider: {web: {url: "http://x"}}
"#;

fn with_analysis(kind: &str) -> Sim {
    let yaml = BG.replace(
        "autoPromotionEnabled: false",
        &format!("{kind}:\n        templates: [{{templateName: check}}]"),
    );
    let mut s = sim(&yaml);
    s.templates.push(serde_saphyr::from_str(TEMPLATE).unwrap());
    s.settle(20);
    assert_eq!(s.phase().0, PHASE_HEALTHY, "{:?}", s.phase());
    assert!(s.runs.is_empty(), "no analysis on the initial deploy");
    s
}

#[test]
fn pre_promotion_analysis_gates_the_switch() {
    let mut s = with_analysis("prePromotionAnalysis");
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    let v2 = hash(&s);
    let names = s.run_names();
    assert_eq!(names, vec![format!("bg-{v2}-2-pre")]);
    let run = &s.runs[0];
    assert_eq!(
        run.metadata.labels.as_ref().unwrap()[LABEL_ROLLOUT_TYPE],
        ROLLOUT_TYPE_PRE_PROMOTION
    );
    assert_eq!(s.service_hash("bg-active"), v1, "no switch while analysing");
    s.set_run_phase(&names[0], ANALYSIS_PHASE_SUCCESSFUL, "");
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), v2);
    assert_eq!(s.phase().0, PHASE_HEALTHY);
    let b = s.status().blue_green.unwrap_or_default();
    assert_eq!(
        b.pre_promotion_analysis_run_status.map(|r| r.status),
        Some(ANALYSIS_PHASE_SUCCESSFUL.to_string())
    );
}

#[test]
fn failed_pre_promotion_analysis_aborts() {
    let mut s = with_analysis("prePromotionAnalysis");
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    let name = s.run_names()[0].clone();
    s.set_run_phase(&name, ANALYSIS_PHASE_FAILED, "metric m failed");
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), v1);
    let (phase, msg) = s.phase();
    assert_eq!(phase, PHASE_DEGRADED);
    assert!(
        msg.contains("Blue/green pre-promotion analysis phase error/failed: metric m failed"),
        "{msg}"
    );
}

#[test]
fn post_promotion_analysis_decides_stable_and_failure_switches_back() {
    let mut s = with_analysis("postPromotionAnalysis");
    let v1 = hash(&s);
    s.set_image("bg:v2");
    s.settle(20);
    let v2 = hash(&s);
    assert_eq!(
        s.service_hash("bg-active"),
        v2,
        "switched before post-promotion"
    );
    assert_eq!(s.run_names(), vec![format!("bg-{v2}-2-post")]);
    assert_eq!(s.status().stable_rs.as_deref(), Some(v1.as_str()));
    assert_eq!(
        s.phase(),
        (
            PHASE_PROGRESSING.into(),
            "waiting for analysis to complete".into()
        )
    );
    // No scaleDownDelaySeconds: the old ReplicaSet stays up while post-promotion runs.
    assert_eq!(spec_of(&s, &v1), 3);
    let name = s.run_names()[0].clone();
    s.set_run_phase(&name, ANALYSIS_PHASE_FAILED, "");
    s.settle(20);
    assert_eq!(s.service_hash("bg-active"), v1, "switched back to stable");
    assert_eq!(s.phase().0, PHASE_DEGRADED);
    assert_eq!(s.status().stable_rs.as_deref(), Some(v1.as_str()));
}

#[test]
fn post_promotion_success_marks_stable() {
    let mut s = with_analysis("postPromotionAnalysis");
    s.set_image("bg:v2");
    s.settle(20);
    let v2 = hash(&s);
    let name = s.run_names()[0].clone();
    s.set_run_phase(&name, ANALYSIS_PHASE_SUCCESSFUL, "");
    s.settle(20);
    assert_eq!(s.status().stable_rs.as_deref(), Some(v2.as_str()));
    assert_eq!(s.phase().0, PHASE_HEALTHY);
}

#[test]
fn a_missing_service_is_invalid_spec_with_argos_message() {
    let mut s = Sim::new(BG);
    s.add_service("bg-active", &[("app", "bg")]);
    s.settle(5);
    assert!(s.rss.is_empty());
    let (phase, msg) = s.phase();
    assert_eq!(phase, PHASE_DEGRADED);
    assert_eq!(
        msg,
        "InvalidSpec: The Rollout \"bg\" is invalid: spec.strategy.blueGreen.previewService: Invalid value: \"bg-preview\": services \"bg-preview\" not found"
    );
}

#[test]
fn a_service_of_another_rollout_or_selecting_other_pods_is_invalid() {
    let mut s = sim(BG);
    s.services[0]
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_MANAGED_BY_ROLLOUTS.into(), "other".into());
    s.settle(5);
    let msg = get_condition(&s.status(), CONDITION_INVALID_SPEC)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        msg.ends_with("spec.strategy.blueGreen.activeService: Invalid value: \"bg-active\": Service \"bg-active\" is managed by another Rollout"),
        "{msg}"
    );
    let mut s = Sim::new(BG);
    s.add_service("bg-active", &[("app", "other")]);
    s.add_service("bg-preview", &[("app", "bg")]);
    s.settle(5);
    let msg = get_condition(&s.status(), CONDITION_INVALID_SPEC)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        msg.ends_with("Service \"bg-active\" has unmatch label \"app\" in rollout"),
        "{msg}"
    );
}

#[test]
fn switching_to_canary_releases_the_active_service() {
    let mut s = deployed(BG);
    s.ro.spec.strategy.blue_green = None;
    s.ro.spec.strategy.canary =
        serde_saphyr::from_str("steps: [{setWeight: 50}, {pause: {}}]").ok();
    s.set_image("bg:v2");
    s.settle(20);
    for svc in ["bg-active", "bg-preview"] {
        let sel = crate::rollout::services::find(&s.services, svc)
            .and_then(|x| x.spec.clone())
            .and_then(|x| x.selector)
            .unwrap_or_default();
        assert_eq!(sel.len(), 1, "{svc}: {sel:?}");
        assert_eq!(sel.get("app").map(String::as_str), Some("bg"));
    }
    assert_eq!(s.phase(), (PHASE_PAUSED.into(), "CanaryPauseStep".into()));
}

#[test]
fn canary_services_follow_stable_and_new() {
    let yaml = crate::rollout::sim::SEED.replace(
        "    canary:\n",
        "    canary:\n      canaryService: frontend-canary\n      stableService: frontend-stable\n",
    );
    let mut s = Sim::new(&yaml);
    s.add_service("frontend-canary", &[("app", "frontend")]);
    s.add_service("frontend-stable", &[("app", "frontend")]);
    s.settle(20);
    let v1 = hash(&s);
    assert_eq!(s.service_hash("frontend-stable"), v1);
    assert_eq!(s.service_hash("frontend-canary"), v1);
    s.set_image("frontend:v2");
    s.settle(20);
    let v2 = hash(&s);
    assert_eq!(s.sizes(), (1, 4));
    assert_eq!(s.service_hash("frontend-stable"), v1);
    assert_eq!(s.service_hash("frontend-canary"), v2);
    // Abort: the canary Service goes back to stable.
    abort(&mut s);
    s.settle(20);
    assert_eq!(s.service_hash("frontend-canary"), v1);
}
