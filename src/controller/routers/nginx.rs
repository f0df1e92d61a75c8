//! NGINX Ingress (Argo's `rollout/trafficrouting/nginx` and `utils/ingress`): beside each stable
//! Ingress the Rollout names, a canary Ingress `<rollout>-<stable>-canary`, owned by the Rollout,
//! with the stable Ingress's rules that reach the stable Service pointed at the canary Service,
//! and the ingress controller's canary annotations carrying the weight. `networking.k8s.io/v1`
//! only (Argo also speaks `extensions/v1beta1`, which no supported cluster still serves).
//! The mapping is pure (`desired_canary`, `canary_patch`); the adapter reads, creates, patches.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{Ingress, IngressSpec};
use kube::Api;
use kube::api::ObjectMeta;
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture, is_controlled_by, merge_diff};
use crate::api::rollout::{NginxTrafficRouting, Rollout};
use crate::rollout::classify::owner_reference;
use crate::rollout::effects::TrafficPlan;

pub struct Nginx;

/// The annotation prefix when `annotationPrefix` is unset.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "nginx.ingress.kubernetes.io";
const CANARY_SUFFIX: &str = "-canary";
/// The one annotation of the stable Ingress the canary keeps: the ingress controller only
/// merges a canary Ingress into a stable one of its own class.
const INGRESS_CLASS_ANNOTATION: &str = "kubernetes.io/ingress.class";

/// `<rollout>-<stable>-canary`, the prefix cut so that the name fits in 253 characters.
pub fn canary_ingress_name(rollout: &str, stable: &str) -> String {
    let mut prefix = format!("{rollout}-{stable}");
    let max = 253 - CANARY_SUFFIX.len();
    if prefix.len() > max {
        let mut cut = max;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    prefix + CANARY_SUFFIX
}

/// The stable Ingresses: `stableIngresses` when set, else `stableIngress`.
pub fn stable_ingresses(nginx: &NginxTrafficRouting) -> Vec<String> {
    match &nginx.stable_ingresses {
        Some(list) => list.clone(),
        None => vec![nginx.stable_ingress.clone().unwrap_or_default()],
    }
}

fn prefix_of(nginx: &NginxTrafficRouting) -> &str {
    nginx
        .annotation_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_ANNOTATION_PREFIX)
}

/// The canary Ingress for `stable` at the plan's weight. An error when no rule of `stable`
/// reaches the stable Service. Pure.
pub fn desired_canary(
    stable: &Ingress,
    name: &str,
    ro: &Rollout,
    nginx: &NginxTrafficRouting,
    max_traffic_weight: Option<i32>,
    plan: &TrafficPlan,
) -> Result<Ingress, String> {
    let prefix = prefix_of(nginx);
    let stable_spec = stable.spec.clone().unwrap_or_default();
    let mut rules = Vec::new();
    for rule in stable_spec.rules.iter().flatten() {
        let mut rule = rule.clone();
        let mut reaches_stable = false;
        for path in rule.http.iter_mut().flat_map(|h| h.paths.iter_mut()) {
            if let Some(svc) = path.backend.service.as_mut()
                && svc.name == plan.stable_service
            {
                svc.name = plan.canary_service.clone();
                reaches_stable = true;
            }
        }
        if reaches_stable {
            rules.push(rule);
        }
    }
    if rules.is_empty() {
        return Err(format!(
            "ingress `{}` has no rules using service {} backend",
            stable.metadata.name.as_deref().unwrap_or_default(),
            plan.stable_service
        ));
    }

    let mut annotations = BTreeMap::new();
    if let Some(class) = stable
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INGRESS_CLASS_ANNOTATION))
    {
        annotations.insert(INGRESS_CLASS_ANNOTATION.to_string(), class.clone());
    }
    for (k, v) in nginx.additional_ingress_annotations.iter().flatten() {
        let k = if k.starts_with(prefix) {
            k.clone()
        } else {
            format!("{prefix}/{k}")
        };
        annotations.insert(k, v.clone());
    }
    for (k, v) in nginx.canary_ingress_annotations.iter().flatten() {
        annotations.insert(k.clone(), v.clone());
    }
    // Always last: header and cookie annotations take precedence in the ingress controller
    // anyway, but the weight is ours.
    annotations.insert(format!("{prefix}/canary"), "true".into());
    annotations.insert(
        format!("{prefix}/canary-weight"),
        plan.canary_weight.to_string(),
    );
    if let Some(total) = max_traffic_weight {
        annotations.insert(format!("{prefix}/canary-weight-total"), total.to_string());
    }

    Ok(Ingress {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_reference(ro)]),
            ..ObjectMeta::default()
        },
        spec: Some(IngressSpec {
            ingress_class_name: stable_spec.ingress_class_name,
            tls: stable_spec.tls,
            rules: Some(rules),
            default_backend: None,
        }),
        status: None,
    })
}

/// Drop what Go's `omitempty` drops (nulls, empty lists and maps), so that both sides of a
/// comparison are written alike.
fn omit_empty(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, omit_empty(v)))
                .filter(|(_, v)| match v {
                    Value::Null => false,
                    Value::Array(a) => !a.is_empty(),
                    Value::Object(o) => !o.is_empty(),
                    _ => true,
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(omit_empty).collect()),
        other => other,
    }
}

/// What Argo compares of a canary Ingress: annotations, labels, spec.
fn compared(
    annotations: Option<&BTreeMap<String, String>>,
    labels: Option<&BTreeMap<String, String>>,
    spec: Option<&IngressSpec>,
) -> Value {
    omit_empty(json!({
        "metadata": { "annotations": annotations, "labels": labels },
        "spec": spec.map(serde_json::to_value).and_then(Result::ok),
    }))
}

/// The merge patch that brings the existing canary Ingress to `desired`: annotations merged
/// (those of other controllers kept, ours winning), labels removed, spec replaced — Argo's
/// `getDesiredAnnotations` and `BuildIngressPatch`. `None` when nothing differs. Pure.
pub fn canary_patch(current: &Ingress, desired: &Ingress) -> Option<Value> {
    let mut annotations = desired.metadata.annotations.clone().unwrap_or_default();
    for (k, v) in current.metadata.annotations.iter().flatten() {
        annotations.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let cur = compared(
        current.metadata.annotations.as_ref(),
        current.metadata.labels.as_ref(),
        current.spec.as_ref(),
    );
    let des = compared(
        Some(&annotations),
        desired.metadata.labels.as_ref(),
        desired.spec.as_ref(),
    );
    merge_diff(&cur, &des)
}

fn api_error(e: &crate::controller::Error, code: u16) -> bool {
    matches!(e, crate::controller::Error::Kube(kube::Error::Api(s)) if s.code == code)
}

impl Router for Nginx {
    fn name(&self) -> &'static str {
        "nginx"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(routing) = cx.routing() else {
                return Ok(0);
            };
            let Some(nginx) = routing.nginx.as_ref() else {
                return Ok(0);
            };
            let api: Api<Ingress> = Api::namespaced(cx.client.clone(), cx.namespace);
            let rollout = cx.rollout.metadata.name.as_deref().unwrap_or_default();
            let mut writes = 0;
            for stable_name in stable_ingresses(nginx) {
                let stable =
                    api.get_opt(&stable_name)
                        .await?
                        .ok_or_else(|| RouterError::NotFound {
                            kind: "Ingress".into(),
                            name: stable_name.clone(),
                        })?;
                let name = canary_ingress_name(rollout, &stable_name);
                let desired = desired_canary(
                    &stable,
                    &name,
                    cx.rollout,
                    nginx,
                    routing.max_traffic_weight,
                    plan,
                )
                .map_err(|reason| RouterError::Malformed {
                    kind: "Ingress".into(),
                    name: stable_name.clone(),
                    reason,
                })?;
                let current = match api.get_opt(&name).await? {
                    Some(c) => c,
                    None => {
                        cx.event(
                            "CreatingCanaryIngress",
                            format!(
                                "Creating canary ingress `{name}` with weight `{}`",
                                plan.canary_weight
                            ),
                        )
                        .await;
                        match cx.writer.create(cx.namespace, &desired).await {
                            Ok(_) => {
                                writes += 1;
                                continue;
                            }
                            // Created meanwhile (by an earlier reconcile whose cache we are
                            // ahead of): patch it like any existing one.
                            Err(e) if api_error(&e, 409) => {
                                api.get_opt(&name)
                                    .await?
                                    .ok_or_else(|| RouterError::NotFound {
                                        kind: "Ingress".into(),
                                        name: name.clone(),
                                    })?
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                };
                if !is_controlled_by(&current.metadata, cx.rollout) {
                    return Err(RouterError::NotOwned {
                        kind: "Ingress".into(),
                        name,
                    });
                }
                let Some(mut patch) = canary_patch(&current, &desired) else {
                    continue;
                };
                // The annotations merged in are those just read: a concurrent edit makes the
                // patch fail (409) and the next reconcile merges again.
                patch["metadata"]["resourceVersion"] = json!(current.metadata.resource_version);
                cx.event(
                    "PatchingCanaryIngress",
                    format!(
                        "Updating Ingress `{name}` to desiredWeight '{}'",
                        plan.canary_weight
                    ),
                )
                .await;
                cx.writer
                    .merge_patch::<Ingress>(cx.namespace, &name, &patch)
                    .await?;
                writes += 1;
            }
            Ok(writes)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const STABLE_SVC: &str = "stable-service";
    const CANARY_SVC: &str = "canary-service";

    fn plan(w: i32) -> TrafficPlan {
        TrafficPlan {
            canary_service: CANARY_SVC.into(),
            stable_service: STABLE_SVC.into(),
            canary_hash: "c1".into(),
            stable_hash: "s1".into(),
            canary_weight: w,
            max_weight: 100,
            remove_managed_routes: false,
        }
    }

    fn rollout() -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "rollout", "namespace": "ns", "uid": "u-1"},
            "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {},
                "strategy": {"canary": {"canaryService": CANARY_SVC, "stableService": STABLE_SVC,
                    "trafficRouting": {"nginx": {"stableIngress": "stable-ingress"}}}}}
        }))
        .unwrap()
    }

    fn nginx() -> NginxTrafficRouting {
        NginxTrafficRouting {
            stable_ingress: Some("stable-ingress".into()),
            ..Default::default()
        }
    }

    /// An Ingress of one rule, one path to `service`, with a default backend, a class, an
    /// annotation and labels (as the fixtures of Argo's nginx tests have).
    fn ingress(name: &str, service: &str) -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"annotation-key1": "annotation-value1"},
                "labels": {"label-key1": "label-value1"}},
            "spec": {
                "ingressClassName": "ingress-name",
                "defaultBackend": {"service": {"name": service, "port": {"number": 80}}},
                "rules": [{"host": "fakehost.example.com", "http": {"paths": [
                    {"path": "/foo", "pathType": "Prefix",
                     "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]
            }
        }))
        .unwrap()
    }

    fn desired(stable: &Ingress, n: &NginxTrafficRouting, max: Option<i32>, w: i32) -> Ingress {
        let name = canary_ingress_name("rollout", stable.metadata.name.as_deref().unwrap());
        desired_canary(stable, &name, &rollout(), n, max, &plan(w)).unwrap()
    }

    fn backend(i: &Ingress) -> String {
        i.spec.as_ref().unwrap().rules.as_ref().unwrap()[0]
            .http
            .as_ref()
            .unwrap()
            .paths[0]
            .backend
            .service
            .as_ref()
            .unwrap()
            .name
            .clone()
    }

    #[test]
    fn canary_names_and_their_253_character_limit() {
        assert_eq!(
            canary_ingress_name("rollout", "stable-ingress"),
            "rollout-stable-ingress-canary"
        );
        let long = canary_ingress_name("r", &"x".repeat(300));
        assert_eq!(long.len(), 253);
        assert!(long.ends_with("x-canary"));
        let mut n = nginx();
        assert_eq!(stable_ingresses(&n), ["stable-ingress"]);
        n.stable_ingresses = Some(vec!["a".into(), "b".into()]);
        assert_eq!(stable_ingresses(&n), ["a", "b"]);
    }

    #[test]
    fn a_new_canary_routes_to_the_canary_service_with_the_weight_and_the_class() {
        let stable = ingress("stable-ingress", STABLE_SVC);
        let c = desired(&stable, &nginx(), None, 10);
        assert_eq!(
            c.metadata.name.as_deref(),
            Some("rollout-stable-ingress-canary")
        );
        assert_eq!(backend(&c), CANARY_SVC);
        let a = c.metadata.annotations.as_ref().unwrap();
        assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "10");
        assert!(!a.contains_key("nginx.ingress.kubernetes.io/canary-weight-total"));
        assert!(
            !a.contains_key("annotation-key1"),
            "stable annotations are not copied"
        );
        let spec = c.spec.as_ref().unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("ingress-name"));
        assert!(spec.default_backend.is_none());
        assert!(c.metadata.labels.is_none());
        let owner = &c.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Rollout", "u-1")
        );
        assert_eq!(owner.controller, Some(true));
    }

    #[test]
    fn only_rules_reaching_the_stable_service_are_copied() {
        let mut stable = ingress("stable-ingress", STABLE_SVC);
        let mut other = ingress("x", "elsewhere").spec.unwrap().rules.unwrap();
        other[0].host = Some("other.example.com".into());
        stable
            .spec
            .as_mut()
            .unwrap()
            .rules
            .as_mut()
            .unwrap()
            .extend(other);
        let c = desired(&stable, &nginx(), None, 10);
        let rules = c.spec.unwrap().rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].host.as_deref(), Some("fakehost.example.com"));
    }

    #[test]
    fn a_stable_ingress_without_the_stable_service_is_an_error() {
        let stable = ingress("stable-ingress", "wrong-service");
        let e = desired_canary(&stable, "c", &rollout(), &nginx(), None, &plan(10)).unwrap_err();
        assert_eq!(
            e,
            "ingress `stable-ingress` has no rules using service stable-service backend"
        );
        // A rule without http, a backend that is a resource: not the stable Service either.
        let stable: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "s"},
            "spec": {"rules": [{"host": "h"}, {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}]}
        }))
        .unwrap();
        assert!(desired_canary(&stable, "c", &rollout(), &nginx(), None, &plan(10)).is_err());
    }

    #[test]
    fn the_ingress_class_annotation_and_tls_are_kept() {
        let mut stable = ingress("stable-ingress", STABLE_SVC);
        stable.metadata.annotations = Some(BTreeMap::from([(
            INGRESS_CLASS_ANNOTATION.to_string(),
            "nginx-foo".to_string(),
        )]));
        stable.spec.as_mut().unwrap().tls = Some(
            serde_json::from_value(json!([
                {"hosts": ["fakehost.example.com"], "secretName": "tls-secret-name"},
                {"hosts": ["fakehost.example.com", "*.example.com"], "secretName": "tls-secret-name-two"}]))
            .unwrap(),
        );
        let c = desired(&stable, &nginx(), None, 15);
        let a = c.metadata.annotations.as_ref().unwrap();
        assert_eq!(a[INGRESS_CLASS_ANNOTATION], "nginx-foo");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "15");
        assert_eq!(c.spec.unwrap().tls, stable.spec.unwrap().tls);
        // No TLS on the stable Ingress, none on the canary.
        let c = desired(&ingress("stable-ingress", STABLE_SVC), &nginx(), None, 15);
        assert!(c.spec.unwrap().tls.is_none());
    }

    #[test]
    fn additional_annotations_get_the_prefix_and_canary_annotations_go_verbatim() {
        let mut n = nginx();
        n.additional_ingress_annotations = Some(BTreeMap::from([
            ("canary-by-header".to_string(), "X-Foo".to_string()),
            ("canary-by-header-value".to_string(), "DoCanary".to_string()),
        ]));
        n.canary_ingress_annotations = Some(BTreeMap::from([(
            "annotation-prefix.some.group/some-key".to_string(),
            "some-value".to_string(),
        )]));
        let c = desired(&ingress("stable-ingress", STABLE_SVC), &n, None, 15);
        let a = c.metadata.annotations.unwrap();
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-by-header"], "X-Foo");
        assert_eq!(
            a["nginx.ingress.kubernetes.io/canary-by-header-value"],
            "DoCanary"
        );
        assert_eq!(a["annotation-prefix.some.group/some-key"], "some-value");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true");
        // Our own prefix.
        n.annotation_prefix = Some("custom.nginx.io".into());
        let c = desired(&ingress("stable-ingress", STABLE_SVC), &n, None, 15);
        let a = c.metadata.annotations.unwrap();
        assert_eq!(a["custom.nginx.io/canary-weight"], "15");
        assert_eq!(a["custom.nginx.io/canary-by-header"], "X-Foo");
    }

    #[test]
    fn a_weight_change_patches_only_the_weight() {
        let stable = ingress("stable-ingress", STABLE_SVC);
        let current = desired(&stable, &nginx(), None, 10);
        let want = desired(&stable, &nginx(), None, 15);
        assert_eq!(
            canary_patch(&current, &want).unwrap(),
            json!({"metadata": {"annotations": {"nginx.ingress.kubernetes.io/canary-weight": "15"}}})
        );
        assert_eq!(canary_patch(&want, &want), None);
    }

    #[test]
    fn max_traffic_weight_adds_the_weight_total() {
        let stable = ingress("stable-ingress", STABLE_SVC);
        let current = desired(&stable, &nginx(), None, 10);
        let want = desired(&stable, &nginx(), Some(1000), 15);
        assert_eq!(
            canary_patch(&current, &want).unwrap(),
            json!({"metadata": {"annotations": {
                "nginx.ingress.kubernetes.io/canary-weight": "15",
                "nginx.ingress.kubernetes.io/canary-weight-total": "1000"}}})
        );
    }

    #[test]
    fn a_changed_stable_route_is_carried_over() {
        let mut stable = ingress("stable-ingress", STABLE_SVC);
        let current = desired(&stable, &nginx(), None, 15);
        stable.spec.as_mut().unwrap().rules.as_mut().unwrap()[0]
            .http
            .as_mut()
            .unwrap()
            .paths[0]
            .path = Some("/bar".into());
        let want = desired(&stable, &nginx(), None, 15);
        let patch = canary_patch(&current, &want).unwrap();
        assert!(patch.get("metadata").is_none(), "{patch}");
        assert_eq!(
            patch["spec"]["rules"][0]["http"]["paths"][0]["path"],
            "/bar"
        );
        assert_eq!(
            patch["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
            CANARY_SVC
        );
    }

    #[test]
    fn annotations_of_others_stay_ours_win_labels_and_extra_spec_go() {
        let stable = ingress("stable-ingress", STABLE_SVC);
        let mut current = ingress("rollout-stable-ingress-canary", CANARY_SVC);
        current.metadata.annotations = Some(BTreeMap::from([
            (
                "nginx.ingress.kubernetes.io/canary".to_string(),
                "false".to_string(),
            ),
            (
                "annotation-prefix.some.group/some-key".to_string(),
                "some-value".to_string(),
            ),
        ]));
        let want = desired(&stable, &nginx(), None, 15);
        let patch = canary_patch(&current, &want).unwrap();
        let a = &patch["metadata"]["annotations"];
        assert_eq!(a["nginx.ingress.kubernetes.io/canary"], "true");
        assert_eq!(a["nginx.ingress.kubernetes.io/canary-weight"], "15");
        assert!(
            a.get("annotation-prefix.some.group/some-key").is_none(),
            "kept, so not patched"
        );
        assert_eq!(patch["metadata"]["labels"], Value::Null);
        assert!(
            patch["metadata"]
                .as_object()
                .unwrap()
                .contains_key("labels")
        );
        assert_eq!(patch["spec"], json!({"defaultBackend": null}));
    }
}
