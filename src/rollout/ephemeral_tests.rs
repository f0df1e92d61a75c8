//! Ephemeral metadata and anti-affinity through the whole planner, mirroring Argo's
//! `rollout/ephemeralmetadata_test.go`, `utils/replicaset/canary_test.go`
//! (`TestSyncEphemeralPodMetadata`, `TestSyncReplicaSetEphemeralPodMetadata`) and the
//! anti-affinity injection of `createDesiredReplicaSet` / `syncReplicaSetRevision`.

#![allow(clippy::expect_used)]

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;
use crate::api::consts::*;
use crate::rollout::sim::{SEED, Sim};
use crate::rollout::{Observed, plan};

const METADATA: &str = "      canaryMetadata:\n        labels: {role: canary}\n      stableMetadata:\n        labels: {role: stable}\n";

fn sim_with(extra: &str) -> Sim {
    let yaml = SEED.replace("    canary:\n", &format!("    canary:\n{extra}"));
    assert_ne!(yaml, SEED);
    let mut sim = Sim::new(&yaml);
    sim.track_pods = true;
    sim
}

fn template_labels(rs: &ReplicaSet) -> BTreeMap<String, String> {
    rs.spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn rs_by_hash<'a>(sim: &'a Sim, hash: &Option<String>) -> &'a ReplicaSet {
    sim.rss
        .iter()
        .find(|rs| rs.hash().map(str::to_string) == *hash)
        .expect("ReplicaSet")
}

/// (uid, role label) of every pod of `rs`.
fn pods_of(sim: &Sim, rs: &ReplicaSet) -> Vec<(String, Option<String>)> {
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    sim.pod_list
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid)
        })
        .map(|p| {
            let role = p
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("role"))
                .cloned();
            (p.metadata.uid.clone().unwrap_or_default(), role)
        })
        .collect()
}

fn roles_of(pods: &[(String, Option<String>)]) -> Vec<Option<&str>> {
    pods.iter().map(|(_, r)| r.as_deref()).collect()
}

// Argo's TestSyncCanaryEphemeralMetadataInitialRevision.
#[test]
fn a_first_revision_carries_the_stable_metadata() {
    let mut sim = sim_with(METADATA);
    sim.settle(20);
    let rs = &sim.rss[0];
    let labels = template_labels(rs);
    assert_eq!(labels.get("role").map(String::as_str), Some("stable"));
    assert_eq!(labels.get("app").map(String::as_str), Some("frontend"));
    // The ReplicaSet's own labels are the template's without the ephemeral ones.
    let own = rs.metadata.labels.clone().unwrap_or_default();
    assert!(!own.contains_key("role"), "{own:?}");
    assert_eq!(
        rs.annotations()
            .get(ANNOTATION_EPHEMERAL_METADATA)
            .map(String::as_str),
        Some(r#"{"labels":{"role":"stable"}}"#)
    );
    let pods = pods_of(&sim, rs);
    assert_eq!(pods.len(), 5);
    assert!(roles_of(&pods).iter().all(|r| *r == Some("stable")));
    // Settled: nothing is written and no pod is listed.
    assert!(pods_needed(&sim.ro, &sim.rss).is_empty());
    assert!(sim.reconcile().is_noop());
}

// Argo's TestSyncCanaryEphemeralMetadataSecondRevision and e2e TestCanaryEphemeralMetadata:
// canary pods carry the canary role, stable pods the stable role at each step; after promotion
// the same pods carry the stable role.
#[test]
fn promotion_swaps_the_role_metadata_without_replacing_pods() {
    let mut sim = sim_with(METADATA);
    sim.settle(20);
    sim.set_image("frontend:v2");
    sim.settle(20);
    let st = sim.status();
    assert_ne!(st.current_pod_hash, st.stable_rs);
    let canary = rs_by_hash(&sim, &st.current_pod_hash).clone();
    let stable = rs_by_hash(&sim, &st.stable_rs).clone();
    assert_eq!(
        template_labels(&canary).get("role").map(String::as_str),
        Some("canary")
    );
    assert_eq!(
        template_labels(&stable).get("role").map(String::as_str),
        Some("stable")
    );
    let canary_pods = pods_of(&sim, &canary);
    assert_eq!(roles_of(&canary_pods), vec![Some("canary")]);
    assert!(
        roles_of(&pods_of(&sim, &stable))
            .iter()
            .all(|r| *r == Some("stable"))
    );

    // Walk the remaining steps.
    for _ in 0..8 {
        sim.advance(601);
        sim.settle(20);
    }
    let st = sim.status();
    assert_eq!(st.current_pod_hash, st.stable_rs, "{:?}", sim.phase());
    let promoted = rs_by_hash(&sim, &st.stable_rs).clone();
    assert_eq!(
        template_labels(&promoted).get("role").map(String::as_str),
        Some("stable")
    );
    let pods = pods_of(&sim, &promoted);
    assert_eq!(pods.len(), 5);
    assert!(
        roles_of(&pods).iter().all(|r| *r == Some("stable")),
        "{pods:?}"
    );
    // The first canary pod is still there, relabelled rather than replaced.
    assert!(pods.iter().any(|(uid, _)| *uid == canary_pods[0].0));
    assert_eq!(
        promoted
            .annotations()
            .get(ANNOTATION_EPHEMERAL_METADATA)
            .map(String::as_str),
        Some(r#"{"labels":{"role":"stable"}}"#)
    );
    assert!(sim.reconcile().is_noop());
}

/// A ReplicaSet whose record and template lag its role, with two pods.
fn lagging(template_role: &str, record: Option<&str>) -> (Sim, Vec<Pod>) {
    let mut sim = sim_with(METADATA);
    sim.settle(20);
    let rs = &mut sim.rss[0];
    let labels = rs
        .spec
        .template
        .as_mut()
        .and_then(|t| t.metadata.as_mut())
        .and_then(|m| m.labels.as_mut())
        .expect("labels");
    labels.insert("role".into(), template_role.into());
    let ann = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match record {
        Some(r) => ann.insert(ANNOTATION_EPHEMERAL_METADATA.into(), r.into()),
        None => ann.remove(ANNOTATION_EPHEMERAL_METADATA),
    };
    let mut pods: Vec<Pod> = sim.pod_list.iter().take(2).cloned().collect();
    for (p, role) in pods.iter_mut().zip(["stable", "canary"]) {
        let l = p.metadata.labels.get_or_insert_with(BTreeMap::new);
        l.insert("role".into(), role.into());
    }
    (sim, pods)
}

fn observed_plan(sim: &Sim, pods: &[Pod]) -> crate::rollout::Plan {
    let obs = Observed {
        pods: Some(pods),
        ..Observed::new(&sim.ro, &sim.rss)
    };
    plan(&obs, sim.now)
}

// Argo's TestSyncCanaryEphemeralMetadataReplicaSetAlreadyPatched: the template already has the
// metadata (no record), one pod lacks it: only that pod is patched, then the record written.
#[test]
fn pods_lacking_the_metadata_are_patched_even_when_the_template_has_it() {
    let (sim, pods) = lagging("stable", None);
    assert_eq!(
        pods_needed(&sim.ro, &sim.rss),
        vec![sim.rss[0].name().to_string()]
    );
    let p = observed_plan(&sim, &pods);
    assert_eq!(p.pod_metadata.len(), 1, "{:?}", p.pod_metadata);
    let s = &p.pod_metadata[0];
    assert!(s.template_labels.is_empty());
    assert_eq!(s.pods.len(), 1);
    assert_eq!(
        s.pods[0].name,
        pods[1].metadata.name.clone().unwrap_or_default()
    );
    assert_eq!(
        s.pods[0].labels.get("role"),
        Some(&Some("stable".to_string()))
    );
    // The update carries the pod as listed (its resourceVersion guards it), relabelled.
    let mut expected = pods[1].clone();
    if let Some(l) = expected.metadata.labels.as_mut() {
        l.insert("role".into(), "stable".into());
    }
    assert_eq!(s.pods[0].pod, expected);
    assert_eq!(
        s.record,
        Some(Some(r#"{"labels":{"role":"stable"}}"#.into()))
    );
}

// The record is written only from a pod list taken while the template already carried the
// metadata: a template change first, and the record (with any pod created meanwhile) next time.
#[test]
fn the_record_waits_for_a_pod_list_taken_after_the_template_changed() {
    let (sim, pods) = lagging("canary", Some(r#"{"labels":{"role":"canary"}}"#));
    let p = observed_plan(&sim, &pods);
    let s = &p.pod_metadata[0];
    assert_eq!(
        s.template_labels.get("role"),
        Some(&Some("stable".to_string()))
    );
    assert_eq!(
        s.pods.len(),
        1,
        "the pod that lacks the role is patched at once"
    );
    assert_eq!(s.record, None);
    assert_eq!(p.requeue_after, Some(RECHECK));
    // Without a pod list (a controller that did not list), only the template is written.
    let p = plan(&Observed::new(&sim.ro, &sim.rss), sim.now);
    assert!(p.pod_metadata[0].pods.is_empty());
    assert_eq!(p.pod_metadata[0].record, None);
}

// Argo's TestSyncEphemeralMetadataSkipsPodListOnZeroReplicaRS: no pods are listed for a
// ReplicaSet at zero; its template and record are written together.
#[test]
fn a_replica_set_at_zero_needs_no_pod_list() {
    let (mut sim, _) = lagging("canary", Some(r#"{"labels":{"role":"canary"}}"#));
    sim.rss[0].spec.replicas = Some(0);
    assert!(pods_needed(&sim.ro, &sim.rss).is_empty());
    let p = plan(&Observed::new(&sim.ro, &sim.rss), sim.now);
    let s = p.pod_metadata.first().expect("a sync");
    assert_eq!(
        s.template_labels.get("role"),
        Some(&Some("stable".to_string()))
    );
    assert_eq!(
        s.record,
        Some(Some(r#"{"labels":{"role":"stable"}}"#.into()))
    );
}

// Argo's TestReconcileEphemeralMetadataSkipsWhenNotConfigured.
#[test]
fn without_metadata_nothing_is_listed_or_removed() {
    let (mut sim, pods) = lagging("canary", Some(r#"{"labels":{"role":"canary"}}"#));
    if let Some(c) = sim.ro.spec.strategy.canary.as_mut() {
        c.canary_metadata = None;
        c.stable_metadata = None;
    }
    assert!(pods_needed(&sim.ro, &sim.rss).is_empty());
    assert!(observed_plan(&sim, &pods).pod_metadata.is_empty());
}

// Older ReplicaSets lose what was injected, and only that.
#[test]
fn older_replica_sets_lose_only_the_injected_metadata() {
    let mut sim = sim_with(METADATA);
    sim.settle(20);
    let old = sim.rss[0].clone();
    sim.set_image("frontend:v2");
    sim.settle(20);
    // A third revision while the second is the canary: the second is neither new nor stable.
    sim.set_image("frontend:v3");
    sim.settle(20);
    let st = sim.status();
    assert_eq!(st.stable_rs, old.hash().map(str::to_string));
    let middle = sim
        .rss
        .iter()
        .find(|rs| {
            rs.hash().map(str::to_string) != st.stable_rs
                && rs.hash().map(str::to_string) != st.current_pod_hash
        })
        .expect("the v2 ReplicaSet");
    let labels = template_labels(middle);
    assert!(!labels.contains_key("role"), "{labels:?}");
    assert_eq!(labels.get("app").map(String::as_str), Some("frontend"));
    assert!(
        !middle
            .annotations()
            .contains_key(ANNOTATION_EPHEMERAL_METADATA)
    );
}

// Argo's TestSyncEphemeralPodMetadata.
#[test]
fn changes_set_wanted_keys_and_remove_only_injected_ones() {
    let md = |l: &[(&str, &str)], a: &[(&str, &str)]| PodTemplateMetadata {
        labels: Some(
            l.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        annotations: Some(
            a.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    };
    let map = |l: &[(&str, &str)]| -> BTreeMap<String, String> {
        l.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    // Inject into empty metadata.
    let want = md(&[("role", "canary")], &[("note", "x")]);
    let (l, a) = changes(None, None, None, Some(&want));
    assert_eq!(l, [("role".to_string(), Some("canary".to_string()))].into());
    assert_eq!(a, [("note".to_string(), Some("x".to_string()))].into());
    // Already there: nothing.
    let labels = map(&[("role", "canary"), ("app", "x")]);
    let annotations = map(&[("note", "x")]);
    let (l, a) = changes(Some(&labels), Some(&annotations), Some(&want), Some(&want));
    assert!(l.is_empty() && a.is_empty());
    // Removal: injected keys no longer wanted go; keys never injected stay.
    let existing = md(&[("role", "canary"), ("gone", "y")], &[("note", "x")]);
    let labels = map(&[("role", "canary"), ("gone", "y"), ("istio", "sidecar")]);
    let (l, a) = changes(Some(&labels), Some(&annotations), Some(&existing), None);
    assert_eq!(
        l,
        [("gone".to_string(), None), ("role".to_string(), None)].into()
    );
    assert_eq!(a, [("note".to_string(), None)].into());
    // An injected key the object no longer has is not removed again.
    let (l, _) = changes(Some(&map(&[("app", "x")])), None, Some(&existing), None);
    assert!(l.is_empty());
}

// Argo's TestParseExistingPodMetadata: an unparseable record counts as none.
#[test]
fn an_unparseable_record_counts_as_none() {
    let mut rs = ReplicaSet::default();
    rs.metadata.annotations =
        Some([(ANNOTATION_EPHEMERAL_METADATA.to_string(), "{".to_string())].into());
    assert_eq!(recorded(&rs), None);
    let v = json!({"labels": {"a": "b"}, "annotations": {}}).to_string();
    rs.metadata.annotations = Some([(ANNOTATION_EPHEMERAL_METADATA.to_string(), v)].into());
    let md = recorded(&rs).expect("parsed");
    assert_eq!(md.labels, Some([("a".to_string(), "b".to_string())].into()));
    assert_eq!(md.annotations, None);
}

const ANTI_AFFINITY: &str =
    "      antiAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution: {weight: 50}\n";

fn affinity_of(rs: &ReplicaSet) -> serde_json::Value {
    let a = rs
        .spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.affinity.clone());
    serde_json::to_value(a).unwrap_or_default()
}

// Argo's createDesiredReplicaSet with GenerateReplicaSetAffinity: the first revision has no
// stable to avoid; the second avoids the stable hash.
#[test]
fn the_new_replica_set_avoids_the_stable_pods() {
    let mut sim = sim_with(ANTI_AFFINITY);
    sim.settle(20);
    assert_eq!(affinity_of(&sim.rss[0]), serde_json::Value::Null);
    sim.set_image("frontend:v2");
    sim.settle(20);
    let st = sim.status();
    let stable = st.stable_rs.clone().unwrap_or_default();
    let new = rs_by_hash(&sim, &st.current_pod_hash);
    assert_eq!(
        affinity_of(new),
        json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
            "weight": 50,
            "podAffinityTerm": {
                "labelSelector": {"matchExpressions": [
                    {"key": LABEL_POD_TEMPLATE_HASH, "operator": "In", "values": [stable]}
                ]},
                "namespaces": ["default"],
                "topologyKey": "kubernetes.io/hostname",
            }
        }]}})
    );
}

// Argo's syncReplicaSetRevision: a rollback to an older ReplicaSet whose term names another
// stable gets its term rewritten against the current stable.
#[test]
fn a_term_against_an_old_stable_is_rewritten() {
    let mut sim = sim_with(ANTI_AFFINITY);
    sim.settle(20);
    sim.set_image("frontend:v2");
    sim.settle(20);
    let v2 = sim.status().current_pod_hash;
    // The canary's term names a hash that is no longer stable, as an old ReplicaSet's does
    // when a rollback makes it the new one again.
    let rs = sim
        .rss
        .iter_mut()
        .find(|rs| rs.hash().map(str::to_string) == v2)
        .expect("v2");
    let aff = rs
        .spec
        .template
        .as_mut()
        .and_then(|t| t.spec.as_mut())
        .and_then(|s| s.affinity.as_mut())
        .expect("injected");
    let term = &mut aff
        .pod_anti_affinity
        .as_mut()
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_mut()
        })
        .expect("preferred")[0];
    term.pod_affinity_term.label_selector = Some(
        serde_json::from_value(json!({"matchExpressions": [
            {"key": LABEL_POD_TEMPLATE_HASH, "operator": "In", "values": ["someoldhash"]}
        ]}))
        .expect("selector"),
    );
    let p = sim.reconcile();
    let stable = sim.status().stable_rs.unwrap_or_default();
    let u = p
        .updates
        .iter()
        .find(|u| u.affinity.is_some())
        .expect("an affinity update");
    let to = serde_json::to_value(&u.affinity.as_ref().expect("change").to).unwrap_or_default();
    assert_eq!(
        to["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
            ["labelSelector"]["matchExpressions"][0]["values"],
        json!([stable])
    );
}

// Argo's TestValidateRolloutStrategyAntiAffinity.
#[test]
fn anti_affinity_needs_exactly_one_rule_and_a_weight_in_range() {
    use crate::rollout::validation::{invalid_spec_message, validate};
    let msg = |extra: &str| {
        let sim = sim_with(extra);
        invalid_spec_message(&sim.ro, &validate(&sim.ro)).unwrap_or_default()
    };
    assert_eq!(
        msg("      antiAffinity: {}\n"),
        "The Rollout \"frontend\" is invalid: spec.strategy.antiAffinity: Invalid value: \"antiAffinity.PreferredDuringSchedulingIgnoredDuringExecution: false antiAffinity.RequiredDuringSchedulingIgnoredDuringExecution: false\": AntiAffinity must have exactly one strategy listed"
    );
    assert_eq!(
        msg(
            "      antiAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution: {weight: 10}\n        requiredDuringSchedulingIgnoredDuringExecution: {}\n"
        ),
        "The Rollout \"frontend\" is invalid: spec.strategy.antiAffinity: Invalid value: \"antiAffinity.PreferredDuringSchedulingIgnoredDuringExecution: true antiAffinity.RequiredDuringSchedulingIgnoredDuringExecution: true\": AntiAffinity must have exactly one strategy listed"
    );
    assert_eq!(
        msg(
            "      antiAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution: {weight: 0}\n"
        ),
        "The Rollout \"frontend\" is invalid: spec.strategy.antiAffinity.weight: Invalid value: 0: AntiAffinity weight must be between 1-100"
    );
    assert_eq!(
        msg(
            "      antiAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution: {weight: 100}\n"
        ),
        ""
    );
    assert_eq!(
        msg("      antiAffinity:\n        requiredDuringSchedulingIgnoredDuringExecution: {}\n"),
        ""
    );
}
