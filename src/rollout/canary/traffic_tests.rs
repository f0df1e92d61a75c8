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

/// Argo's TestCanarySetCanaryScale (canary_test.go): (canary, stable) pods at steps 0, 2, 4,
/// 6, 8 and after promotion: (0,4) (1,4) (1,4) (3,4) (2,4) (4,4).
#[test]
fn set_canary_scale_sizes_the_canary_apart_from_the_weight() {
    let steps = "      steps:\n      - pause: {}\n      - setCanaryScale: {weight: 25}\n      - pause: {duration: 100s}\n      - setWeight: 50\n      - pause: {duration: 10s}\n      - setCanaryScale: {replicas: 3}\n      - pause: {}\n      - setCanaryScale: {matchTrafficWeight: true}\n      - pause: {duration: 5s}\n";
    let mut s = routed(Some(steps));
    s.ro.spec.replicas = Some(4);
    s.bump_generation();
    s.settle(20);
    s.set_image("frontend:v2");
    let pods = |s: &Sim| {
        let st = s.status();
        let of = |h: &Option<String>| {
            s.rss
                .iter()
                .find(|rs| {
                    rs.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(LABEL_POD_TEMPLATE_HASH))
                        == h.as_ref()
                })
                .and_then(|rs| rs.spec.replicas)
                .unwrap_or(0)
        };
        (of(&st.current_pod_hash), of(&st.stable_rs))
    };
    let mut seen = Vec::new();
    for _ in 0..5 {
        s.settle(20);
        seen.push((s.status().current_step_index, pods(&s)));
        promote(&mut s);
    }
    s.settle(20);
    seen.push((s.status().current_step_index, pods(&s)));
    assert_eq!(
        seen,
        vec![
            (Some(0), (0, 4)),
            (Some(2), (1, 4)),
            (Some(4), (1, 4)),
            (Some(6), (3, 4)),
            (Some(8), (2, 4)),
            (Some(9), (4, 4)),
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

/// Argo's TestIstioHostHeaderRoute: the header route set at step 1 is in force (first in the
/// managed order) until a later step removes it; none once promoted.
#[test]
fn header_routes_fold_over_the_steps_and_go_at_promotion() {
    use crate::rollout::effects::ManagedRoute;
    let steps = "      steps:\n      - setWeight: 20\n      - setHeaderRoute:\n          name: set-header-1\n          match:\n          - headerName: agent\n            headerValue: {regex: firefox(.*)}\n      - pause: {}\n      - setHeaderRoute: {name: set-header-1}\n      - pause: {}\n";
    let mut s = routed(Some(steps));
    s.ro.spec
        .strategy
        .canary
        .as_mut()
        .unwrap()
        .traffic_routing
        .as_mut()
        .unwrap()
        .managed_routes = serde_saphyr::from_str("[{name: set-header-1}]").ok();
    s.bump_generation();
    s.settle(20);
    s.set_image("frontend:v2");
    s.settle(20);
    let t = s.last.traffic.clone().unwrap();
    assert_eq!(t.canary_weight, 20);
    assert_eq!(t.managed_route_names, vec!["set-header-1".to_string()]);
    assert!(
        matches!(t.managed_routes.as_slice(), [ManagedRoute::Header(h)] if h.name.as_deref() == Some("set-header-1"))
    );
    promote(&mut s);
    s.settle(20);
    assert!(
        s.last.traffic.clone().unwrap().managed_routes.is_empty(),
        "removed by step 3"
    );
    promote(&mut s);
    s.settle(20);
    let t = s.last.traffic.clone().unwrap();
    assert!(t.remove_managed_routes && t.managed_routes.is_empty());
}

mod properties {
    use proptest::prelude::*;

    use super::promote;
    use crate::rollout::observed::RsExt;
    use crate::rollout::sim::{Pods, SEED, Sim};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Whatever the replicas, steps, maxTrafficWeight, promotions and aborts, and whether the
        /// canary's pods ever become ready: the weights recorded always sum to
        /// `maxTrafficWeight`, and no weight is sent to a ReplicaSet beyond what its available
        /// pods can serve (the canary's `ceil(w × R / max)` pods, the stable's floor).
        #[test]
        fn weights_sum_to_max_and_follow_available_pods(
            replicas in 1i32..9,
            max in prop_oneof![Just(100), Just(1000), Just(7)],
            mut weights in proptest::collection::vec(1i32..100, 1..4),
            never_ready in any::<bool>(),
            actions in proptest::collection::vec(0u8..4, 1..12),
        ) {
            weights.sort();
            let steps: String = weights
                .iter()
                .map(|w| format!("      - setWeight: {}\n      - pause: {{}}\n", w * max / 100))
                .collect();
            let mut yaml = SEED.replace(
                "    canary:\n",
                &format!("    canary:\n      canaryService: frontend-canary\n      stableService: frontend-stable\n      trafficRouting:\n        maxTrafficWeight: {max}\n        nginx:\n          stableIngress: frontend-ingress\n"),
            ).replace("  replicas: 5\n", &format!("  replicas: {replicas}\n"));
            let start = yaml.find("      steps:\n").unwrap();
            let end = yaml.find("  revisionHistoryLimit").unwrap();
            yaml.replace_range(start..end, &format!("      steps:\n{steps}"));
            let mut s = Sim::new(&yaml);
            s.add_service("frontend-canary", &[("app", "frontend")]);
            s.add_service("frontend-stable", &[("app", "frontend")]);
            s.pods = Pods::NeverReadyTag;
            s.settle(20);
            prop_assert_eq!(s.phase().0, "Healthy", "{:?}", s.phase());
            s.set_image(if never_ready { "frontend:never-ready" } else { "frontend:v2" });
            for a in actions {
                match a {
                    0 => promote(&mut s),
                    1 => {
                        let mut st = s.status();
                        st.abort = Some(true);
                        s.ro.status = Some(st);
                    }
                    2 => s.advance(40),
                    _ => {}
                }
                for _ in 0..20 {
                    let p = s.reconcile();
                    if let Some(w) = s.status().canary.and_then(|c| c.weights) {
                        prop_assert_eq!(w.canary.weight + w.stable.weight, max);
                    }
                    if let Some(t) = &p.traffic {
                        let avail = |hash: &str| {
                            s.rss.iter().find(|rs| rs.hash() == Some(hash)).map_or(0, |rs| rs.available())
                        };
                        // Before the apply settled pods: the availability the plan was made on
                        // is at most what the cluster has now, so these are conservative.
                        if t.canary_hash != t.stable_hash && t.canary_weight > 0 {
                            let needed = (f64::from(t.canary_weight) * f64::from(replicas) / f64::from(max)).floor() as i32;
                            prop_assert!(avail(&t.canary_hash) >= needed.max(1),
                                "canary weight {} with {} available of {}", t.canary_weight, avail(&t.canary_hash), replicas);
                        }
                        if !t.stable_hash.is_empty() {
                            let needed = t.stable_weight() * replicas / max;
                            prop_assert!(avail(&t.stable_hash) >= needed,
                                "stable weight {} with {} available", t.stable_weight(), avail(&t.stable_hash));
                        }
                    }
                    if p.is_noop() {
                        break;
                    }
                }
            }
        }
    }
}
