//! A traffic-routed canary walked through the simulator: the weights the routers are asked for,
//! `status.canary.weights`, and the replica counts (stable kept full; canary by weight or by
//! `setCanaryScale`), as Argo's istio and canary e2e suites expect.
#![allow(clippy::unwrap_used)]

use crate::api::consts::*;
use crate::rollout::delay::has_deadline;
use crate::rollout::sim::{SEED, Sim};

fn routed(extra_steps: Option<&str>) -> Sim {
    let mut yaml = SEED.replace(
        "    canary:\n",
        "    canary:\n      canaryService: frontend-canary\n      stableService: frontend-stable\n      trafficRouting:\n        istio:\n          virtualService: {name: frontend-vs, routes: [primary]}\n",
    );
    if let Some(steps) = extra_steps {
        let start = yaml.find("      steps:\n").unwrap();
        let end = yaml.find("  revisionHistoryLimit").unwrap();
        yaml.replace_range(start..end, steps);
    }
    let mut s = Sim::new(&yaml);
    s.add_service("frontend-canary", &[("app", "frontend")]);
    s.add_service("frontend-stable", &[("app", "frontend")]);
    s.settle(20);
    assert_eq!(s.phase().0, PHASE_HEALTHY, "{:?}", s.phase());
    s
}

fn promote(s: &mut Sim) {
    let mut st = s.status();
    st.pause_conditions = None;
    s.ro.status = Some(st);
}

fn weight(s: &Sim) -> Option<i32> {
    s.last.traffic.as_ref().map(|t| t.canary_weight)
}

fn status_weights(s: &Sim) -> (i32, i32) {
    let w = s.status().canary.and_then(|c| c.weights).unwrap();
    (w.canary.weight, w.stable.weight)
}

#[test]
fn the_seed_with_istio_shifts_traffic_and_keeps_stable_full() {
    let mut s = routed(None);
    assert_eq!(weight(&s), Some(0));
    s.set_image("frontend:v2");
    for (w, canary) in [(20, 1), (40, 2), (60, 3), (80, 4)] {
        s.settle(20);
        assert_eq!(s.phase().1, "CanaryPauseStep");
        assert_eq!(weight(&s), Some(w), "weight at step");
        assert_eq!(status_weights(&s), (w, 100 - w));
        assert_eq!(s.sizes(), (canary, 5), "stable stays at 5 pods");
        promote(&mut s);
    }
    s.settle(20);
    assert_eq!(s.phase().0, PHASE_HEALTHY, "{:?}", s.phase());
    assert_eq!(weight(&s), Some(0), "stable is the new ReplicaSet now");
    let st = s.status();
    let w = st.canary.and_then(|c| c.weights).unwrap();
    assert_eq!(w.stable.pod_template_hash, st.stable_rs);
    assert!(
        s.event_reasons()
            .contains(&REASON_TRAFFIC_WEIGHT_UPDATED.to_string())
    );
    // The old stable keeps its pods for scaleDownDelaySeconds, then goes.
    let old = s
        .rss
        .iter()
        .find(|rs| {
            rs.metadata.labels.as_ref().unwrap()[LABEL_POD_TEMPLATE_HASH]
                != st.stable_rs.clone().unwrap()
        })
        .unwrap();
    assert_eq!(old.spec.replicas, Some(5));
    assert!(has_deadline(old));
    s.advance(31);
    s.settle(20);
    assert_eq!(s.total_pods(), 5);
}

/// Argo's TestCanarySetCanaryScale: (canary, stable) at each step.
#[test]
fn set_canary_scale_sizes_the_canary_apart_from_the_weight() {
    let steps = "      steps:\n      - setCanaryScale: {weight: 25}\n      - pause: {}\n      - setWeight: 20\n      - pause: {}\n      - setCanaryScale: {replicas: 3}\n      - pause: {}\n      - setCanaryScale: {matchTrafficWeight: true}\n      - pause: {}\n";
    let mut s = routed(Some(steps));
    s.ro.spec.replicas = Some(4);
    s.bump_generation();
    s.settle(20);
    s.set_image("frontend:v2");
    let mut seen = Vec::new();
    for _ in 0..4 {
        s.settle(20);
        seen.push((s.sizes(), weight(&s)));
        promote(&mut s);
    }
    assert_eq!(
        seen,
        vec![
            ((1, 4), Some(0)),
            ((1, 4), Some(20)),
            ((3, 4), Some(20)),
            ((1, 4), Some(20)),
        ]
    );
}

#[test]
fn abort_sends_all_traffic_back_and_keeps_the_canary_for_the_abort_delay() {
    let mut s = routed(None);
    s.set_image("frontend:v2");
    s.settle(20);
    assert_eq!(weight(&s), Some(20));
    let mut st = s.status();
    st.abort = Some(true);
    s.ro.status = Some(st);
    s.settle(20);
    assert_eq!(weight(&s), Some(0));
    assert_eq!(
        s.sizes(),
        (1, 5),
        "canary kept during abortScaleDownDelaySeconds"
    );
    s.advance(31);
    s.settle(20);
    assert_eq!(s.sizes(), (0, 5));
}

#[test]
fn an_undriven_router_runs_as_a_basic_canary() {
    let yaml = SEED.replace(
        "    canary:\n",
        "    canary:\n      canaryService: c\n      stableService: st\n      trafficRouting:\n        istio:\n          virtualService: {name: vs}\n        appMesh:\n          virtualService: {name: x}\n",
    );
    let mut s = Sim::new(&yaml);
    s.add_service("c", &[("app", "frontend")]);
    s.add_service("st", &[("app", "frontend")]);
    s.settle(20);
    s.set_image("frontend:v2");
    s.settle(20);
    assert_eq!(s.sizes(), (1, 4), "pod ratio, as a basic canary");
    assert!(s.last.traffic.is_none());
}

/// Argo's `GetReferencedVirtualServices`: a VirtualService that does not exist makes the spec
/// invalid, with the API's words; nothing is scaled or shifted.
#[test]
fn a_missing_virtual_service_is_invalid_spec() {
    use crate::rollout::{Observed, plan};
    let s = routed(None);
    let missing = vec![(
        "spec.strategy.canary.trafficRouting.istio.virtualService.name".to_string(),
        "virtualservices.networking.istio.io".to_string(),
        "frontend-vs".to_string(),
    )];
    let obs = Observed {
        services: &s.services,
        missing_routers: &missing,
        ..Observed::new(&s.ro, &s.rss)
    };
    let p = plan(&obs, s.now);
    let st = p.status.unwrap();
    assert_eq!(
        st.message.as_deref(),
        Some(
            "InvalidSpec: The Rollout \"frontend\" is invalid: spec.strategy.canary.trafficRouting.istio.virtualService.name: Invalid value: \"frontend-vs\": virtualservices.networking.istio.io \"frontend-vs\" not found"
        )
    );
    assert!(p.traffic.is_none() && p.updates.is_empty());
}
