//! Tolerance for what the API server admits but a Pod cannot carry (trap 5): Argo's CRD keeps
//! container `resources` free-form and its informer drops fields that fail to decode, so a
//! Rollout with `memory: invalid` still deploys. We drop invalid quantities from the template the
//! ReplicaSet gets, and the whole `ephemeralContainers` list when one of them is malformed, as
//! Kubernetes' own decoder would.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// Is `q` a Kubernetes resource quantity (`100m`, `1.5Gi`, `1e3`, `0.001`)?
pub fn is_quantity(q: &str) -> bool {
    let s = q.trim();
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(digits_end);
    if num.is_empty() || num == "." || num.matches('.').count() > 1 {
        return false;
    }
    matches!(
        suffix,
        "" | "n"
            | "u"
            | "m"
            | "k"
            | "M"
            | "G"
            | "T"
            | "P"
            | "E"
            | "Ki"
            | "Mi"
            | "Gi"
            | "Ti"
            | "Pi"
            | "Ei"
    ) || suffix.strip_prefix(['e', 'E']).is_some_and(|exp| {
        let exp = exp.strip_prefix(['+', '-']).unwrap_or(exp);
        !exp.is_empty() && exp.chars().all(|c| c.is_ascii_digit())
    })
}

fn clean(map: &mut Option<BTreeMap<String, Quantity>>) -> bool {
    let Some(m) = map.as_mut() else { return false };
    let before = m.len();
    m.retain(|_, q| is_quantity(&q.0));
    before != m.len()
}

fn clean_resources(r: &mut Option<ResourceRequirements>) -> bool {
    let Some(r) = r.as_mut() else { return false };
    let a = clean(&mut r.limits);
    let b = clean(&mut r.requests);
    a || b
}

/// The template a ReplicaSet can be created from; `changed` reports whether anything was dropped.
pub fn sanitize_template(t: &PodTemplateSpec) -> (PodTemplateSpec, bool) {
    let mut t = t.clone();
    let mut changed = false;
    if let Some(spec) = t.spec.as_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            changed |= clean_resources(&mut c.resources);
        }
        let bad_ephemeral = spec.ephemeral_containers.iter().flatten().any(|c| {
            let mut r = c.resources.clone();
            clean_resources(&mut r)
        });
        if bad_ephemeral {
            spec.ephemeral_containers = None;
            changed = true;
        }
    }
    (t, changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "1", "100m", "0.001", "1.5Gi", "512Mi", "1e3", "2E-2", "+1", "10k",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["invalid", "", "1.2.3", "Gi", "1Gb", "1e", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn drops_invalid_requests_only() {
        let t: PodTemplateSpec = serde_json::from_value(serde_json::json!({
            "spec": {"containers": [{"name": "a", "resources": {"requests": {"memory": "invalid", "cpu": "1m"}}}],
                     "ephemeralContainers": [{"name": "a", "resources": {"requests": {"memory": "invalid"}}}]}
        }))
        .unwrap_or_default();
        let (clean, changed) = sanitize_template(&t);
        assert!(changed);
        let spec = clean.spec.unwrap_or_default();
        let req = spec.containers[0]
            .resources
            .clone()
            .and_then(|r| r.requests)
            .unwrap_or_default();
        assert_eq!(req.keys().collect::<Vec<_>>(), vec!["cpu"]);
        assert!(spec.ephemeral_containers.is_none());
    }
}
