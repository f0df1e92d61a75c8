//! Planner tests for the shared stages: adoption and the collision bump as planned writes, and
//! the `NotImplemented` condition that keeps unimplemented fields from being silently ignored.

#![allow(clippy::expect_used)]

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::sim::{SEED, Sim};
use crate::api::consts::*;
use crate::rollout::classify::wanted_name;
use crate::rollout::observed::RsExt;
use crate::rollout::status::get_condition;
use crate::rollout::{Observed, plan};

fn orphan(name: &str, app: &str, owner: Option<&str>) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some("42".into()),
            labels: Some(
                [
                    ("app".to_string(), app.to_string()),
                    (LABEL_POD_TEMPLATE_HASH.to_string(), "abc".to_string()),
                ]
                .into(),
            ),
            owner_references: owner.map(|uid| {
                vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "Deployment".into(),
                    name: "other".into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..ObjectMeta::default()
        },
        ..ReplicaSet::default()
    }
}

#[test]
fn orphans_the_rollout_selects_are_adopted_before_anything_else() {
    let sim = Sim::seed();
    let orphans = [
        orphan("frontend-abc", "frontend", None),
        orphan("other-abc", "other", None),
        orphan("owned-abc", "frontend", Some("deploy-uid")),
    ];
    let obs = Observed {
        orphans: &orphans,
        ..Observed::new(&sim.ro, &[])
    };
    let p = plan(&obs, sim.now);
    assert_eq!(p.adopt.len(), 1, "{p:?}");
    let a = &p.adopt[0];
    assert_eq!(a.name, "frontend-abc");
    assert_eq!(
        (a.uid.as_str(), a.resource_version.as_str()),
        ("uid-frontend-abc", "42")
    );
    let owner = &a.owner_references[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("Rollout", "uid-frontend")
    );
    assert_eq!(owner.controller, Some(true));
    // Nothing else this round: the next reconcile sees the ReplicaSet owned.
    assert!(p.create.is_none() && p.status.is_none() && p.events.is_empty());
    assert!(p.requeue_after.is_some());
}

#[test]
fn a_foreign_replica_set_with_the_new_name_bumps_the_collision_count() {
    let mut sim = Sim::seed();
    // The first reconcile only records the new revision; the create comes next.
    let first = plan(&Observed::new(&sim.ro, &[]), sim.now);
    assert!(first.create.is_none());
    sim.ro.status = first.status;
    let name = wanted_name(&sim.ro);
    let foreign = orphan(&name, "frontend", Some("someone-else"));
    let obs = Observed {
        same_name: Some(&foreign),
        services: &[],
        missing_routers: &[],
        ..Observed::new(&sim.ro, &[])
    };
    let p = plan(&obs, sim.now);
    assert!(
        p.create.is_none(),
        "never apply over another owner's ReplicaSet"
    );
    let bumped = p.status.clone().and_then(|s| s.collision_count);
    assert_eq!(bumped, Some(1));
    // With the bumped count the wanted name differs: a new revision is recorded, then created.
    sim.ro.status = p.status;
    assert_ne!(wanted_name(&sim.ro), name);
    for _ in 0..2 {
        let obs = Observed {
            same_name: Some(&foreign),
            services: &[],
            missing_routers: &[],
            ..Observed::new(&sim.ro, &[])
        };
        let p = plan(&obs, sim.now);
        if let Some(rs) = p.create {
            assert_eq!(rs.name(), wanted_name(&sim.ro));
            return;
        }
        sim.ro.status = p.status;
    }
    panic!("the ReplicaSet with the new name was never created");
}

#[test]
fn our_own_replica_set_with_the_new_name_is_no_collision() {
    let mut sim = Sim::seed();
    sim.settle(20);
    let own = sim.rss[0].clone();
    let obs = Observed {
        same_name: Some(&own),
        services: &[],
        missing_routers: &[],
        ..Observed::new(&sim.ro, &sim.rss)
    };
    assert!(plan(&obs, sim.now).is_noop());
}

const APISIX_AND_HEADER_ROUTE: &str = r#"
      trafficRouting:
        apisix:
          route: {name: frontend-route, rules: [primary]}
        managedRoutes:
        - name: header
      canaryService: frontend-canary
      stableService: frontend-stable
      steps:
      - setWeight: 20
      - setHeaderRoute:
          name: header
          match:
          - headerName: x-canary
            headerValue: {exact: "yes"}
      - pause: {}
"#;

fn with_canary(extra: &str) -> Sim {
    let yaml = SEED.replace(
        "      steps:\n      - setWeight: 20\n      - pause: {duration: 10m}\n      - setWeight: 40\n      - pause: {duration: 10m}\n      - setWeight: 60\n      - pause: {duration: 10m}\n      - setWeight: 80\n      - pause: {duration: 10m}\n",
        extra.trim_start_matches('\n'),
    );
    assert_ne!(yaml, SEED, "the seed's steps were not found");
    let mut sim = Sim::new(&yaml);
    for svc in ["frontend-canary", "frontend-stable"] {
        sim.add_service(svc, &[("app", "frontend")]);
    }
    sim
}

#[test]
fn unimplemented_fields_get_a_condition_and_one_event_naming_each() {
    let mut sim = with_canary(APISIX_AND_HEADER_ROUTE);
    sim.settle(20);
    let st = sim.status();
    let c = get_condition(&st, CONDITION_NOT_IMPLEMENTED)
        .unwrap_or_else(|| panic!("NotImplemented condition: {:?}", sim.phase()));
    assert_eq!(c.status, "True");
    assert_eq!(c.reason.as_deref(), Some(REASON_NOT_IMPLEMENTED));
    let msg = c.message.clone().unwrap_or_default();
    for field in [
        "spec.strategy.canary.trafficRouting.managedRoutes",
        "spec.strategy.canary.steps[1].setHeaderRoute",
    ] {
        assert!(msg.contains(field), "{field} missing from {msg}");
    }
    // APISIX weights are driven; its header routes are not.
    assert!(!msg.contains("trafficRouting.apisix"), "{msg}");
    // The rollout still runs as far as it safely can: the initial deploy is Healthy.
    assert_eq!(sim.phase().0, PHASE_HEALTHY);
    assert!(!msg.contains("Service"), "Services are managed now: {msg}");
    let warnings: Vec<_> = sim
        .events
        .iter()
        .filter(|e| e.reason == REASON_NOT_IMPLEMENTED)
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", sim.events);
    assert!(warnings[0].warning);
    assert_eq!(warnings[0].message, msg);
    // A new revision keeps the condition without repeating the event.
    sim.set_image("frontend:v2");
    sim.settle(20);
    assert!(get_condition(&sim.status(), CONDITION_NOT_IMPLEMENTED).is_some());
    let n = sim
        .events
        .iter()
        .filter(|e| e.reason == REASON_NOT_IMPLEMENTED)
        .count();
    assert_eq!(n, 1);
}

#[test]
fn the_condition_goes_when_the_fields_go() {
    let mut sim = with_canary(APISIX_AND_HEADER_ROUTE);
    sim.settle(20);
    assert!(get_condition(&sim.status(), CONDITION_NOT_IMPLEMENTED).is_some());
    if let Some(c) = sim.ro.spec.strategy.canary.as_mut() {
        c.traffic_routing = None;
        c.canary_service = None;
        c.stable_service = None;
        c.steps = Some(Vec::new());
    }
    sim.bump_generation();
    sim.settle(20);
    assert!(get_condition(&sim.status(), CONDITION_NOT_IMPLEMENTED).is_none());
}

#[test]
fn a_basic_canary_has_no_not_implemented_condition() {
    let mut sim = Sim::seed();
    sim.settle(20);
    sim.set_image("frontend:v2");
    sim.settle(20);
    assert!(get_condition(&sim.status(), CONDITION_NOT_IMPLEMENTED).is_none());
    assert!(
        !sim.event_reasons()
            .contains(&REASON_NOT_IMPLEMENTED.to_string())
    );
}

#[test]
fn experiment_steps_are_named_and_wait() {
    let mut sim = with_canary(
        r#"
      steps:
      - setWeight: 20
      - experiment:
          templates:
          - name: baseline
            specRef: stable
"#,
    );
    sim.settle(20);
    sim.set_image("frontend:v2");
    sim.settle(20);
    let st = sim.status();
    let msg = get_condition(&st, CONDITION_NOT_IMPLEMENTED)
        .and_then(|c| c.message.clone())
        .unwrap_or_default();
    assert!(
        msg.contains("steps[1].experiment (no Experiment is run; the rollout waits"),
        "{msg}"
    );
    assert_eq!(
        st.current_step_index,
        Some(1),
        "the gate is never passed silently"
    );
}

#[test]
fn a_step_may_combine_set_canary_scale_and_a_header_route_as_in_argo() {
    // Upstream's examples/apisix/rollout.yaml: Argo's multiple-step-types check covers only
    // setWeight, pause, experiment and analysis.
    let sim = with_canary(
        r#"
      canaryService: frontend-canary
      stableService: frontend-stable
      trafficRouting:
        managedRoutes:
        - name: header
        apisix:
          route:
            name: frontend-route
            rules: [frontend]
      steps:
      - setCanaryScale: {weight: 10}
        setHeaderRoute:
          name: header
          match:
          - headerName: x-canary
            headerValue: {exact: "yes"}
      - pause: {}
"#,
    );
    let errs = crate::rollout::validation::validate(&sim.ro);
    assert!(errs.is_empty(), "{errs:?}");
}

#[test]
fn two_of_argos_exclusive_step_types_in_one_step_are_invalid_with_argos_message() {
    let sim = with_canary(
        r#"
      steps:
      - setWeight: 20
        pause: {}
"#,
    );
    let errs = crate::rollout::validation::validate(&sim.ro);
    let msg = crate::rollout::validation::invalid_spec_message(&sim.ro, &errs).unwrap_or_default();
    assert_eq!(
        msg,
        format!(
            "The Rollout \"frontend\" is invalid: spec.strategy.steps[0]: Invalid value: \"step.Experiment: false step.Pause: true step.SetWeight: true step.Analysis: false\": {}",
            crate::rollout::validation::INVALID_STEP
        )
    );
}

/// Argo's e2e `TestRolloutAbortRetryPromote` asserts the exact event sequence of a whole
/// rollout; the planner emits the same reasons in the same order.
#[test]
fn events_follow_argos_abort_retry_promote_sequence() {
    let mut sim = Sim::new(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: abort-retry-promote
spec:
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {duration: 3s}
  selector:
    matchLabels:
      app: abort-retry-promote
  template:
    metadata:
      labels:
        app: abort-retry-promote
    spec:
      containers:
      - name: abort-retry-promote
        image: nginx:1.19-alpine
"#,
    );
    sim.settle(20);
    assert_eq!(sim.phase().0, PHASE_HEALTHY);
    sim.set_image("nginx:1.20-alpine");
    sim.settle(20);
    assert_eq!(sim.phase().0, PHASE_PAUSED);
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(true);
    }
    sim.settle(20);
    assert_eq!(sim.phase().0, PHASE_DEGRADED);
    if let Some(st) = sim.ro.status.as_mut() {
        st.abort = Some(false);
    }
    sim.settle(20);
    assert_eq!(sim.phase().0, PHASE_PAUSED);
    sim.advance(4);
    sim.settle(20);
    assert_eq!(sim.phase().0, PHASE_HEALTHY);
    assert_eq!(
        sim.event_reasons(),
        [
            "RolloutAddedToInformer",
            "RolloutNotCompleted",
            "RolloutUpdated",
            "NewReplicaSetCreated",
            "ScalingReplicaSet",
            "RolloutCompleted",
            "RolloutNotCompleted",
            "RolloutUpdated",
            "NewReplicaSetCreated",
            "ScalingReplicaSet",
            "RolloutStepCompleted",
            "RolloutPaused",
            "ScalingReplicaSet",
            "RolloutAborted",
            "ScalingReplicaSet",
            "RolloutStepCompleted",
            "RolloutPaused",
            "RolloutStepCompleted",
            "RolloutResumed",
            "ScalingReplicaSet",
            "RolloutCompleted",
        ]
    );
    let first_not_completed = sim
        .events
        .iter()
        .find(|e| e.reason == "RolloutNotCompleted")
        .map(|e| e.message.clone())
        .unwrap_or_default();
    assert!(
        first_not_completed.starts_with("Rollout not completed, started update to revision 0 ("),
        "{first_not_completed}"
    );
}

/// Argo writes `spec.replicas: 1` into a Rollout without one (so that `/scale`, and an HPA,
/// work), in a write of its own; the Rollout then runs with one replica.
#[test]
fn a_rollout_without_replicas_gets_one_written_first() {
    let mut sim = Sim::new(&SEED.replace("  replicas: 5\n", ""));
    assert_eq!(sim.ro.spec.replicas, None);
    let p = sim.reconcile();
    assert_eq!(p.default_replicas, Some(1));
    assert!(
        p.status.is_none() && p.create.is_none() && p.events.is_empty(),
        "{p:?}"
    );
    sim.settle(20);
    assert_eq!(sim.ro.spec.replicas, Some(1));
    assert_eq!(sim.phase().0, PHASE_HEALTHY);
    let st = sim.status();
    assert_eq!((st.replicas, st.hpa_replicas), (Some(1), Some(1)));
    assert_eq!(st.selector.as_deref(), Some("app=frontend"));
    let added = sim
        .event_reasons()
        .iter()
        .filter(|r| *r == "RolloutAddedToInformer")
        .count();
    assert_eq!(added, 1);
}

fn at(name: &str, spec: serde_json::Value) -> crate::api::analysis::AnalysisTemplate {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "default"}, "spec": spec
    }))
    .expect("template")
}

fn invalid_message(sim: &Sim) -> Option<String> {
    get_condition(&sim.status(), CONDITION_INVALID_SPEC).and_then(|c| c.message.clone())
}

/// Argo's `ValidateAnalysisTemplateWithType`: a step metric with an interval and no count
/// would never finish, so the spec is invalid from the start, with Argo's path and message.
#[test]
fn a_step_metric_that_runs_forever_is_invalid_spec() {
    let mut sim = with_canary(
        r#"
      steps:
      - setWeight: 20
      - analysis:
          templates: [{templateName: forever}]
"#,
    );
    sim.templates = vec![at(
        "forever",
        serde_json::json!({"metrics": [{"name": "rate", "interval": "10s",
            "provider": {"web": {"url": "http://127.0.0.1/"}}}]}),
    )];
    sim.settle(5);
    assert_eq!(
        invalid_message(&sim).as_deref(),
        Some(
            "The Rollout \"frontend\" is invalid: spec.strategy.canary.steps[1].analysis.templates: Invalid value: \"forever\": AnalysisTemplate forever has metric rate which runs indefinitely. Invalid value for count: <nil>"
        )
    );
    assert!(sim.rss.is_empty());
    // The same metric in a background analysis is fine: it runs until the rollout ends.
    let mut sim = with_canary(
        r#"
      analysis:
        templates: [{templateName: forever}]
      steps:
      - setWeight: 20
"#,
    );
    sim.templates = vec![at(
        "forever",
        serde_json::json!({"metrics": [{"name": "rate", "interval": "10s",
            "provider": {"web": {"url": "http://127.0.0.1/"}}}]}),
    )];
    sim.settle(20);
    assert_eq!(invalid_message(&sim), None);
}

/// A template argument left without a value, by the template and by the Rollout, is Argo's
/// `MergeArgs` error on the analysis' templates path.
#[test]
fn a_template_argument_without_a_value_is_invalid_spec() {
    let mut sim = with_canary(
        r#"
      analysis:
        templates: [{templateName: needs-arg}]
      steps:
      - setWeight: 20
"#,
    );
    sim.templates = vec![at(
        "needs-arg",
        serde_json::json!({"args": [{"name": "service"}], "metrics": [{"name": "rate",
            "provider": {"web": {"url": "http://127.0.0.1/{{args.service}}"}}}]}),
    )];
    sim.settle(5);
    assert_eq!(
        invalid_message(&sim).as_deref(),
        Some(
            "The Rollout \"frontend\" is invalid: spec.strategy.canary.analysis.templates: Invalid value: \"templateNames: [needs-arg]\": args.service was not resolved"
        )
    );
}

/// Kubernetes' pod-template validation, which Argo runs on the Rollout's template: what the
/// ReplicaSet create would be refused for is an `InvalidSpec` with the API server's wording.
#[test]
fn an_invalid_pod_template_is_invalid_spec_with_kubernetes_wording() {
    let cases = [
        (
            SEED.replace("- name: frontend\n", "- name: Bad_Name\n"),
            "spec.template.spec.containers[0].name: Invalid value: \"Bad_Name\": a lowercase RFC 1123 label must consist of",
        ),
        (
            SEED.replace("    spec:\n      containers:\n", "    spec:\n      restartPolicy: Never\n      containers:\n"),
            "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
        ),
        (
            SEED.replace(
                "      containers:\n      - name: frontend\n",
                "      containers:\n      - name: frontend\n        image: x\n      - name: frontend\n",
            ),
            "spec.template.spec.containers[1].name: Duplicate value: \"frontend\"",
        ),
    ];
    for (yaml, want) in cases {
        assert_ne!(yaml, SEED);
        let mut sim = Sim::new(&yaml);
        sim.settle(5);
        let msg = invalid_message(&sim).unwrap_or_default();
        assert!(
            msg.starts_with(&format!("The Rollout \"frontend\" is invalid: {want}")),
            "{msg}"
        );
        assert!(sim.rss.is_empty());
    }
}

/// Argo's `GetRolloutPhase`/`IsUnpausing`: a controller pause with no condition left is
/// "waiting for rollout to unpause", whether or not the user also set `spec.paused`.
#[test]
fn unpausing_ignores_spec_paused_as_argo_does() {
    use crate::rollout::status::effective_phase;
    let mut sim = Sim::seed();
    sim.settle(20);
    let mut st = sim.status();
    st.controller_pause = Some(true);
    st.pause_conditions = None;
    sim.ro.spec.paused = Some(true);
    let (phase, msg) = effective_phase(sim.ro.metadata.generation, &sim.ro.spec, &st);
    assert_eq!(
        (phase.as_str(), msg.as_str()),
        (PHASE_PROGRESSING, "waiting for rollout to unpause")
    );
}
