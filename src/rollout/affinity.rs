//! `antiAffinity` (reference: Argo's `GenerateReplicaSetAffinity` and its helpers): the new
//! ReplicaSet's pods get one extra inter-pod anti-affinity term against the pods of the stable
//! ReplicaSet (by its pod-template hash, per node), soft with a weight or hard. Pure; shared by
//! both strategies, which name the setting in `canary.antiAffinity` or `blueGreen.antiAffinity`.

use k8s_openapi::api::core::v1::{
    Affinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use crate::api::consts::LABEL_POD_TEMPLATE_HASH;
use crate::api::rollout::{AntiAffinity, Rollout};

/// The node topology the injected term spreads over.
pub const TOPOLOGY_KEY: &str = "kubernetes.io/hostname";

/// The strategy's anti-affinity setting, when it names a rule (Argo's `GetRolloutAffinity`: a
/// canary setting wins over a blue-green one; an empty setting counts as none).
pub fn rollout_anti_affinity(ro: &Rollout) -> Option<&AntiAffinity> {
    let s = &ro.spec.strategy;
    let a = s
        .canary
        .as_ref()
        .and_then(|c| c.anti_affinity.as_ref())
        .or_else(|| s.blue_green.as_ref().and_then(|b| b.anti_affinity.as_ref()))?;
    let named = a
        .preferred_during_scheduling_ignored_during_execution
        .is_some()
        || a.required_during_scheduling_ignored_during_execution
            .is_some();
    named.then_some(a)
}

/// Argo's `CreateInjectedAntiAffinityRule`: avoid nodes running pods of the stable hash.
pub fn injected_term(namespace: &str, stable_hash: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: LABEL_POD_TEMPLATE_HASH.into(),
                operator: "In".into(),
                values: Some(vec![stable_hash.into()]),
            }]),
            match_labels: None,
        }),
        namespaces: Some(vec![namespace.into()]),
        topology_key: TOPOLOGY_KEY.into(),
        ..PodAffinityTerm::default()
    }
}

/// Argo's `GenerateReplicaSetAffinity`: the template's own affinity (`template`) plus the
/// injected term, when a setting names a rule and a stable ReplicaSet other than the current
/// revision (`new_hash`) exists.
pub fn generate(
    ro: &Rollout,
    template: Option<&Affinity>,
    stable_hash: &str,
    new_hash: &str,
) -> Option<Affinity> {
    let mut affinity = template.cloned();
    let Some(strategy) = rollout_anti_affinity(ro) else {
        return affinity;
    };
    if stable_hash.is_empty() || stable_hash == new_hash {
        return affinity;
    }
    let term = injected_term(ro.metadata.namespace.as_deref().unwrap_or(""), stable_hash);
    let anti = affinity
        .get_or_insert_with(Affinity::default)
        .pod_anti_affinity
        .get_or_insert_with(PodAntiAffinity::default);
    if let Some(p) = &strategy.preferred_during_scheduling_ignored_during_execution {
        anti.preferred_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(WeightedPodAffinityTerm {
                weight: p.weight,
                pod_affinity_term: term,
            });
    } else {
        anti.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
    }
    affinity
}

/// Whether a term selects by the pod-template hash: the mark of the injected one.
fn is_injected(term: &PodAffinityTerm) -> bool {
    term.label_selector
        .as_ref()
        .and_then(|s| s.match_expressions.as_ref())
        .is_some_and(|m| m.iter().any(|r| r.key == LABEL_POD_TEMPLATE_HASH))
}

/// Argo's `HasInjectedAntiAffinityRule`: the index and term of the injected rule, looked for in
/// the list the setting uses (preferred or required).
pub fn injected(ro: &Rollout, affinity: Option<&Affinity>) -> Option<(usize, PodAffinityTerm)> {
    let strategy = rollout_anti_affinity(ro)?;
    let anti = affinity?.pod_anti_affinity.as_ref()?;
    if strategy
        .preferred_during_scheduling_ignored_during_execution
        .is_some()
    {
        let terms = anti
            .preferred_during_scheduling_ignored_during_execution
            .as_ref()?;
        terms
            .iter()
            .position(|t| is_injected(&t.pod_affinity_term))
            .map(|i| (i, terms[i].pod_affinity_term.clone()))
    } else {
        let terms = anti
            .required_during_scheduling_ignored_during_execution
            .as_ref()?;
        terms
            .iter()
            .position(is_injected)
            .map(|i| (i, terms[i].clone()))
    }
}

/// Argo's `RemoveInjectedAntiAffinityRule`: the affinity without the injected term, emptied
/// containers dropped.
pub fn remove_injected(ro: &Rollout, affinity: Option<&Affinity>) -> Option<Affinity> {
    let mut out = affinity.cloned();
    let (Some(i), Some(strategy)) = (
        injected(ro, affinity).map(|(i, _)| i),
        rollout_anti_affinity(ro),
    ) else {
        return out;
    };
    let a = out.as_mut()?;
    let anti = a.pod_anti_affinity.as_mut()?;
    if strategy
        .preferred_during_scheduling_ignored_during_execution
        .is_some()
        && let Some(terms) = anti
            .preferred_during_scheduling_ignored_during_execution
            .as_mut()
    {
        terms.remove(i);
    }
    if strategy
        .required_during_scheduling_ignored_during_execution
        .is_some()
        && let Some(terms) = anti
            .required_during_scheduling_ignored_during_execution
            .as_mut()
    {
        terms.remove(i);
    }
    if anti
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .is_some_and(Vec::is_empty)
    {
        anti.required_during_scheduling_ignored_during_execution = None;
    }
    // An emptied list is written as absent (Go's omitempty), so it counts as none here.
    if anti
        .required_during_scheduling_ignored_during_execution
        .is_none()
        && anti
            .preferred_during_scheduling_ignored_during_execution
            .as_ref()
            .is_none_or(Vec::is_empty)
    {
        a.pod_anti_affinity = None;
    }
    if a.pod_anti_affinity.is_none() && a.pod_affinity.is_none() && a.node_affinity.is_none() {
        return None;
    }
    out
}

/// Argo's `IfInjectedAntiAffinityRuleNeedsUpdate`: the ReplicaSet's injected term names another
/// hash than the stable one, and the current revision is not the stable one.
pub fn needs_update(
    ro: &Rollout,
    affinity: Option<&Affinity>,
    stable_hash: &str,
    new_hash: &str,
) -> bool {
    let Some((_, term)) = injected(ro, affinity) else {
        return false;
    };
    if stable_hash == new_hash {
        return false;
    }
    term.label_selector
        .iter()
        .flat_map(|s| s.match_expressions.iter().flatten())
        .any(|r| {
            r.key == LABEL_POD_TEMPLATE_HASH
                && r.values
                    .as_ref()
                    .and_then(|v| v.first())
                    .is_some_and(|v| v != stable_hash)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn ro(anti: Value) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "foo", "namespace": "default"},
            "spec": {"strategy": {"canary": {"antiAffinity": anti}}},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn preferred() -> Rollout {
        ro(json!({"preferredDuringSchedulingIgnoredDuringExecution": {"weight": 1}}))
    }

    fn required() -> Rollout {
        ro(json!({"requiredDuringSchedulingIgnoredDuringExecution": {}}))
    }

    fn affinity(v: Value) -> Affinity {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn term(hash: &str) -> Value {
        json!({
            "labelSelector": {"matchExpressions": [
                {"key": "rollouts-pod-template-hash", "operator": "In", "values": [hash]}
            ]},
            "namespaces": ["default"],
            "topologyKey": "kubernetes.io/hostname",
        })
    }

    // Argo's TestGetRolloutAffinity.
    #[test]
    fn an_empty_setting_names_no_rule() {
        assert!(rollout_anti_affinity(&ro(json!({}))).is_none());
        assert!(rollout_anti_affinity(&preferred()).is_some());
        assert!(rollout_anti_affinity(&required()).is_some());
        let mut none = preferred();
        if let Some(c) = none.spec.strategy.canary.as_mut() {
            c.anti_affinity = None;
        }
        assert!(rollout_anti_affinity(&none).is_none());
    }

    // Argo's TestGenerateReplicaSetAffinity.
    #[test]
    fn generate_injects_only_against_a_distinct_stable() {
        let r = preferred();
        // No stable yet, or the stable is the current revision: the template's own affinity.
        assert_eq!(generate(&r, None, "", "new"), None);
        assert_eq!(generate(&r, None, "new", "new"), None);
        let expected = affinity(json!({"podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "podAffinityTerm": term("stable")}]
        }}));
        assert_eq!(generate(&r, None, "stable", "new"), Some(expected));
        let req = generate(&required(), None, "stable", "new");
        let expected = affinity(json!({"podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [term("stable")]
        }}));
        assert_eq!(req, Some(expected));
        // The template's own terms are kept, the injected one appended.
        let own = affinity(json!({
            "nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 2, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]},
            "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}
            ]}
        }));
        let got = generate(&required(), Some(&own), "stable", "new").unwrap_or_default();
        let terms = got
            .pod_anti_affinity
            .and_then(|a| a.required_during_scheduling_ignored_during_execution)
            .unwrap_or_default();
        assert_eq!(terms.len(), 2);
        assert_eq!(
            serde_json::to_value(&terms[1]).unwrap_or_default(),
            term("stable")
        );
        assert!(got.node_affinity.is_some());
    }

    // Argo's TestHasInjectedAntiAffinityRule and TestRemoveInjectedAntiAffinityRule.
    #[test]
    fn the_injected_term_is_found_and_removed() {
        let r = preferred();
        let a = generate(&r, None, "stable", "new");
        assert_eq!(injected(&r, a.as_ref()).map(|(i, _)| i), Some(0));
        assert_eq!(remove_injected(&r, a.as_ref()), None);
        // The required list is not searched when the setting is preferred.
        let req = generate(&required(), None, "stable", "new");
        assert!(injected(&r, req.as_ref()).is_none());
        assert_eq!(remove_injected(&r, req.as_ref()), req);
        // Other affinity survives the removal.
        let own = affinity(
            json!({"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": "zone"}
            ]}}),
        );
        let a = generate(&required(), Some(&own), "stable", "new");
        assert_eq!(remove_injected(&required(), a.as_ref()), Some(own));
    }

    // Argo's TestIfInjectedAntiAffinityRuleNeedsUpdate.
    #[test]
    fn a_term_against_an_old_stable_needs_updating() {
        let r = preferred();
        let a = generate(&r, None, "old", "new");
        assert!(needs_update(&r, a.as_ref(), "stable", "new"));
        assert!(!needs_update(&r, a.as_ref(), "old", "new"));
        // Fully promoted: the term is left alone.
        assert!(!needs_update(&r, a.as_ref(), "new", "new"));
        assert!(!needs_update(&r, None, "stable", "new"));
    }
}
