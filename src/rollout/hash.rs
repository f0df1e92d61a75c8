//! Pod-template and step hashes. Both are FNV-32a over a JSON rendering, printed in decimal and
//! passed through Kubernetes' "safe encoding" alphabet, as Argo does. Our JSON is serde's, not Go's,
//! so a pod-template hash need not equal Argo's; adoption therefore also matches templates
//! semantically (see `templates_match`).

use k8s_openapi::api::core::v1::PodTemplateSpec;
use serde_json::Value;

use crate::api::consts::LABEL_POD_TEMPLATE_HASH;

const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// apimachinery's `rand.SafeEncodeString`: every byte mapped into a vowel-free alphabet.
pub fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char)
        .collect()
}

fn encode(h: u32) -> String {
    safe_encode(&h.to_string())
}

/// The template with the pod-template-hash label removed (empty label maps dropped), as JSON.
pub fn template_without_hash(template: &PodTemplateSpec) -> Value {
    let mut v = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Some(labels) = v
        .get_mut("metadata")
        .and_then(|m| m.get_mut("labels"))
        .and_then(Value::as_object_mut)
    {
        labels.remove(LABEL_POD_TEMPLATE_HASH);
    }
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("labels")
            .and_then(Value::as_object)
            .is_some_and(|l| l.is_empty())
    {
        meta.remove("labels");
    }
    v
}

/// Hash of a pod template (hash label ignored), with Argo's collision-count salt.
pub fn pod_template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut bytes = serde_json::to_vec(&template_without_hash(template)).unwrap_or_default();
    if let Some(c) = collision_count {
        bytes.extend_from_slice(&u64::from(c as u32).to_le_bytes());
    }
    encode(fnv32a(&bytes))
}

/// Hash of any serialisable value (the canary steps: `status.currentStepHash`).
pub fn json_hash<T: serde::Serialize>(value: &T) -> String {
    encode(fnv32a(&serde_json::to_vec(value).unwrap_or_default()))
}

/// Fields the API server fills in on a ReplicaSet's pod template that a Rollout template may leave
/// out. A ReplicaSet carrying one of these where the Rollout has none still matches.
const DEFAULTED_KEYS: &[&str] = &[
    "creationTimestamp",
    "dnsPolicy",
    "enableServiceLinks",
    "imagePullPolicy",
    "preemptionPolicy",
    "priority",
    "protocol",
    "restartPolicy",
    "schedulerName",
    "terminationGracePeriodSeconds",
    "terminationMessagePath",
    "terminationMessagePolicy",
];

/// Does `defaulted` (a ReplicaSet's template, after API defaulting) hold exactly the values of
/// `wanted` (the Rollout's template), allowing only known defaulted fields in addition?
fn matches_defaulted(wanted: &Value, defaulted: &Value) -> bool {
    match (wanted, defaulted) {
        (Value::Object(w), Value::Object(d)) => {
            w.iter().all(|(k, wv)| match d.get(k) {
                Some(dv) => matches_defaulted(wv, dv),
                None => is_empty(wv),
            }) && d.iter().all(|(k, dv)| {
                w.contains_key(k) || DEFAULTED_KEYS.contains(&k.as_str()) || is_empty(dv)
            })
        }
        (Value::Array(w), Value::Array(d)) => {
            w.len() == d.len() && w.iter().zip(d).all(|(a, b)| matches_defaulted(a, b))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => wanted == defaulted,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Argo's semantic template equality for adoption (trap 3): the ReplicaSet's template, hash label
/// removed, equals the Rollout's template up to API-server defaults.
pub fn templates_match(rollout_template: &PodTemplateSpec, rs_template: &PodTemplateSpec) -> bool {
    matches_defaulted(
        &template_without_hash(rollout_template),
        &template_without_hash(rs_template),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tpl(v: Value) -> PodTemplateSpec {
        serde_json::from_value(v).unwrap_or_default()
    }

    #[test]
    fn fnv_known_values() {
        // FNV-1a 32-bit test vectors.
        assert_eq!(fnv32a(b""), 0x811c9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9cf968);
    }

    #[test]
    fn safe_encoding_maps_digits() {
        assert_eq!(safe_encode("0123456789"), "456789bcdf");
    }

    #[test]
    fn hash_ignores_the_hash_label_and_changes_with_image() {
        let a = tpl(
            json!({"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}),
        );
        let b = tpl(
            json!({"metadata":{"labels":{"app":"x","rollouts-pod-template-hash":"abc"}},"spec":{"containers":[{"name":"c","image":"i:1"}]}}),
        );
        let c = tpl(
            json!({"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"i:2"}]}}),
        );
        assert_eq!(pod_template_hash(&a, None), pod_template_hash(&b, None));
        assert_ne!(pod_template_hash(&a, None), pod_template_hash(&c, None));
        assert_ne!(pod_template_hash(&a, None), pod_template_hash(&a, Some(1)));
    }

    #[test]
    fn adoption_tolerates_defaults_but_not_changes() {
        let rollout = tpl(
            json!({"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"i:1","ports":[{"containerPort":80}]}]}}),
        );
        let argo_rs = tpl(
            json!({"metadata":{"labels":{"app":"x","rollouts-pod-template-hash":"6d4b"},"creationTimestamp":null},
            "spec":{"containers":[{"name":"c","image":"i:1","imagePullPolicy":"IfNotPresent","ports":[{"containerPort":80,"protocol":"TCP"}],
            "resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File"}],
            "dnsPolicy":"ClusterFirst","restartPolicy":"Always","schedulerName":"default-scheduler","securityContext":{},"terminationGracePeriodSeconds":30}}),
        );
        assert!(templates_match(&rollout, &argo_rs));
        let changed = tpl(
            json!({"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"i:2","ports":[{"containerPort":80}]}]}}),
        );
        assert!(!templates_match(&changed, &argo_rs));
        let extra_env = tpl(
            json!({"metadata":{"labels":{"app":"x"}},"spec":{"containers":[{"name":"c","image":"i:1","env":[{"name":"A","value":"1"}],"ports":[{"containerPort":80}]}]}}),
        );
        assert!(!templates_match(&extra_env, &argo_rs));
        // A field present only on the ReplicaSet that is not an API default means the user removed it.
        let with_sa = tpl(
            json!({"metadata":{"labels":{"app":"x"}},"spec":{"serviceAccountName":"old","containers":[{"name":"c","image":"i:1"}]}}),
        );
        assert!(!templates_match(&rollout, &with_sa));
    }
}
