//! AWS Load Balancer Controller (Argo's `rollout/trafficrouting/alb`), at the annotation level:
//! on each Ingress the Rollout names, the `<prefix>/actions.<rootService>` annotation holds a
//! forward action splitting the root service's traffic between the canary and stable target
//! groups, and `rollouts.argoproj.io/managed-alb-annotations` records which annotations each
//! Rollout owns. No AWS API is called: weight verification (`--alb-verify-weight`) is off.
//! The mapping is pure (`forward_action`, `managed_annotations`, `annotations_patch`).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::Ingress;
use kube::Api;
use serde::Serialize;
use serde_json::{Value, json};

use super::{Router, RouterCtx, RouterError, RouterFuture, merge_diff};
use crate::api::rollout::ALBTrafficRouting;
use crate::rollout::effects::TrafficPlan;

pub struct Alb;

/// The annotation prefix when `annotationPrefix` is unset.
pub const DEFAULT_ANNOTATION_PREFIX: &str = "alb.ingress.kubernetes.io";
/// Which annotations of the Ingress each Rollout manages: a JSON object from Rollout name to a
/// list of annotation keys. (Argo's older `managed-alb-actions` is deprecated and not written.)
pub const MANAGED_ANNOTATIONS: &str = "rollouts.argoproj.io/managed-alb-annotations";
const ACTION_INFIX: &str = "/actions.";
/// The longest stickiness the AWS API accepts: 7 days.
const MAX_STICKINESS_SECONDS: i64 = 604_800;

/// The Ingresses: `ingresses` when set, else `ingress`. An error (Argo's validation message)
/// when both or neither are set.
pub fn alb_ingresses(alb: &ALBTrafficRouting) -> Result<Vec<String>, String> {
    let single = alb.ingress.as_deref().filter(|i| !i.is_empty());
    match (&alb.ingresses, single) {
        (Some(_), Some(_)) => {
            Err("Either Ingress or Ingresses must be configured. Both are configured.".into())
        }
        (Some(list), None) => Ok(list.clone()),
        (None, Some(one)) => Ok(vec![one.to_string()]),
        (None, None) => {
            Err("Either Ingress or Ingresses must be configured. Neither are configured.".into())
        }
    }
}

/// `rootService`, or the stable Service: the service whose action is written.
pub fn root_service<'a>(alb: &'a ALBTrafficRouting, plan: &'a TrafficPlan) -> &'a str {
    alb.root_service
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or(&plan.stable_service)
}

/// `<prefix>/actions.<rootService>`.
pub fn action_key(alb: &ALBTrafficRouting, plan: &TrafficPlan) -> String {
    let prefix = alb
        .annotation_prefix
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_ANNOTATION_PREFIX);
    format!("{prefix}{ACTION_INFIX}{}", root_service(alb, plan))
}

// The action's shape, field for field in the order Argo's Go structs marshal them.
#[derive(Serialize)]
struct Action<'a> {
    #[serde(rename = "Type")]
    kind: &'static str,
    #[serde(rename = "ForwardConfig")]
    forward_config: ForwardConfig<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ForwardConfig<'a> {
    target_groups: Vec<TargetGroup<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_group_stickiness_config: Option<Stickiness>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TargetGroup<'a> {
    /// Go's `omitempty`.
    #[serde(skip_serializing_if = "str::is_empty")]
    service_name: &'a str,
    service_port: String,
    weight: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Stickiness {
    enabled: bool,
    duration_seconds: i64,
}

/// Serialize as Go's `json.Marshal` does: it also escapes `<`, `>`, `&`, U+2028 and U+2029.
/// Those can only occur inside JSON strings, so a textual replacement is exact.
fn go_json<T: Serialize>(v: &T) -> Result<String, String> {
    let s = serde_json::to_string(v).map_err(|e| e.to_string())?;
    Ok(s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029"))
}

/// The forward action: the canary target group first, then the stable one with the rest of
/// 100 (Argo ignores `maxTrafficWeight` here), and stickiness when it is enabled. An error
/// (Argo's message) when the stickiness duration is outside what AWS accepts. Pure.
pub fn forward_action(alb: &ALBTrafficRouting, plan: &TrafficPlan) -> Result<String, String> {
    let port = alb.service_port.to_string();
    let canary = i64::from(plan.canary_weight);
    let stickiness = match &alb.stickiness_config {
        Some(s) if s.enabled => {
            if !(1..=MAX_STICKINESS_SECONDS).contains(&s.duration_seconds) {
                return Err("TargetGroupStickinessConfig's duration must be between 1 and 604800 seconds (7 days)!".into());
            }
            Some(Stickiness {
                enabled: true,
                duration_seconds: s.duration_seconds,
            })
        }
        _ => None,
    };
    go_json(&Action {
        kind: "forward",
        forward_config: ForwardConfig {
            target_groups: vec![
                TargetGroup {
                    service_name: &plan.canary_service,
                    service_port: port.clone(),
                    weight: canary,
                },
                TargetGroup {
                    service_name: &plan.stable_service,
                    service_port: port,
                    weight: 100 - canary,
                },
            ],
            target_group_stickiness_config: stickiness,
        },
    })
}

/// The managed-annotations value with `keys` recorded for `rollout` (each once, in order of
/// first use), the other Rollouts' entries kept. An error when the current value is not the
/// JSON object it should be. Pure.
pub fn managed_annotations(
    current: Option<&str>,
    rollout: &str,
    keys: &[&str],
) -> Result<String, String> {
    // `Option`: Go reads a `null` list as an empty one and writes it back as `null`.
    let mut m: BTreeMap<String, Option<Vec<String>>> = match current {
        None | Some("") => BTreeMap::new(),
        Some(s) => serde_json::from_str::<Option<_>>(s)
            .map_err(|e| format!("annotation {MANAGED_ANNOTATIONS} is not valid: {e}"))?
            .unwrap_or_default(),
    };
    let mine = m
        .entry(rollout.to_string())
        .or_default()
        .get_or_insert_default();
    for k in keys {
        if !mine.iter().any(|m| m == k) {
            mine.push((*k).to_string());
        }
    }
    go_json(&m)
}

/// Does a rule of the Ingress route a path to `service`? (Argo's `HasRuleWithService`.)
pub fn has_rule_with_service(ing: &Ingress, service: &str) -> bool {
    ing.spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .flat_map(|r| r.http.iter().flat_map(|h| h.paths.iter()))
        .any(|p| {
            p.backend
                .service
                .as_ref()
                .is_some_and(|s| s.name == service)
        })
}

/// The merge patch that brings the Ingress's annotations to the plan (the action and the
/// managed-annotations record), `None` when they already are. An error when no rule of the
/// Ingress reaches the root service, the record is unreadable or the stickiness is out of
/// range. Pure.
pub fn annotations_patch(
    ing: &Ingress,
    rollout: &str,
    alb: &ALBTrafficRouting,
    plan: &TrafficPlan,
) -> Result<Option<Value>, String> {
    let root = root_service(alb, plan);
    if !has_rule_with_service(ing, root) {
        return Err(format!(
            "ingress `{}` has no rules using service {root} backend",
            ing.metadata.name.as_deref().unwrap_or_default()
        ));
    }
    let current = ing.metadata.annotations.clone().unwrap_or_default();
    let key = action_key(alb, plan);
    let mut desired = current.clone();
    desired.insert(key.clone(), forward_action(alb, plan)?);
    let managed = managed_annotations(
        current.get(MANAGED_ANNOTATIONS).map(String::as_str),
        rollout,
        &[&key],
    )?;
    desired.insert(MANAGED_ANNOTATIONS.to_string(), managed);
    let (cur, des) = (json!(current), json!(desired));
    Ok(merge_diff(&cur, &des).map(|d| json!({"metadata": {"annotations": d}})))
}

impl Router for Alb {
    fn name(&self) -> &'static str {
        "alb"
    }

    fn apply<'a>(
        &'a self,
        cx: &'a RouterCtx<'a>,
        plan: &'a TrafficPlan,
    ) -> RouterFuture<'a, usize> {
        Box::pin(async move {
            let Some(alb) = cx.routing().and_then(|r| r.alb.as_ref()) else {
                return Ok(0);
            };
            let rollout = cx.rollout.metadata.name.as_deref().unwrap_or_default();
            let names = alb_ingresses(alb).map_err(|reason| RouterError::Malformed {
                kind: "Rollout".into(),
                name: rollout.into(),
                reason,
            })?;
            let api: Api<Ingress> = Api::namespaced(cx.client.clone(), cx.namespace);
            let mut writes = 0;
            // Every Ingress is brought to the plan; Argo stops at the first that needs no
            // change, leaving later ones behind until their turn comes first.
            for name in names {
                let ing = api
                    .get_opt(&name)
                    .await?
                    .ok_or_else(|| RouterError::NotFound {
                        kind: "Ingress".into(),
                        name: name.clone(),
                    })?;
                let patch = annotations_patch(&ing, rollout, alb, plan).map_err(|reason| {
                    RouterError::Malformed {
                        kind: "Ingress".into(),
                        name: name.clone(),
                        reason,
                    }
                })?;
                let Some(mut patch) = patch else {
                    continue;
                };
                // The managed-annotations record merged in is the one just read: a concurrent
                // edit makes the patch fail (409) and the next reconcile merges again.
                patch["metadata"]["resourceVersion"] = json!(ing.metadata.resource_version);
                cx.event(
                    "PatchingALBIngress",
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
    use crate::api::rollout::StickinessConfig;

    const STABLE_SVC: &str = "stable-svc";
    const CANARY_SVC: &str = "canary-svc";
    const ACTION: &str = "alb.ingress.kubernetes.io/actions.stable-svc";

    fn plan(w: i32) -> TrafficPlan {
        TrafficPlan {
            canary_service: CANARY_SVC.into(),
            stable_service: STABLE_SVC.into(),
            canary_hash: "c1".into(),
            stable_hash: "s1".into(),
            canary_weight: w,
            max_weight: 100,
            remove_managed_routes: false,
            ..TrafficPlan::default()
        }
    }

    fn alb() -> ALBTrafficRouting {
        ALBTrafficRouting {
            ingress: Some("ingress".into()),
            service_port: 443,
            ..Default::default()
        }
    }

    fn action(w: i64) -> String {
        format!(
            r#"{{"Type":"forward","ForwardConfig":{{"TargetGroups":[{{"ServiceName":"canary-svc","ServicePort":"443","Weight":{w}}},{{"ServiceName":"stable-svc","ServicePort":"443","Weight":{}}}]}}}}"#,
            100 - w
        )
    }

    /// As Argo's test fixture: one rule to `service` on port `use-annotation`, and the action
    /// and managed record of a Rollout named `rollout` at weight `w` (`None`: no annotations).
    fn ingress(service: &str, w: Option<i64>) -> Ingress {
        let annotations = match w {
            Some(w) => json!({
                format!("alb.ingress.kubernetes.io/actions.{service}"): action(w),
                MANAGED_ANNOTATIONS:
                    format!(r#"{{"rollout":["alb.ingress.kubernetes.io/actions.{service}"]}}"#),
            }),
            None => json!({}),
        };
        serde_json::from_value(json!({
            "metadata": {"name": "ingress", "namespace": "default", "annotations": annotations},
            "spec": {"rules": [{"http": {"paths": [{"pathType": "ImplementationSpecific",
                "backend": {"service": {"name": service, "port": {"name": "use-annotation"}}}}]}}]}
        }))
        .unwrap()
    }

    fn patch(ing: &Ingress, a: &ALBTrafficRouting, w: i32) -> Result<Option<Value>, String> {
        annotations_patch(ing, "rollout", a, &plan(w))
    }

    #[test]
    fn the_managed_record_lists_each_key_once_per_rollout() {
        let keys = [
            "alb.ingress.kubernetes.io/actions.action1",
            "alb.ingress.kubernetes.io/conditions.action1",
        ];
        assert_eq!(
            managed_annotations(None, "argo-rollouts", &keys).unwrap(),
            r#"{"argo-rollouts":["alb.ingress.kubernetes.io/actions.action1","alb.ingress.kubernetes.io/conditions.action1"]}"#
        );
        // Again: nothing added; another Rollout's entry is kept, names in sorted order.
        let cur = r#"{"zz":["x"],"argo-rollouts":["alb.ingress.kubernetes.io/actions.action1"],"aa":null}"#;
        assert_eq!(
            managed_annotations(Some(cur), "argo-rollouts", &keys).unwrap(),
            r#"{"aa":null,"argo-rollouts":["alb.ingress.kubernetes.io/actions.action1","alb.ingress.kubernetes.io/conditions.action1"],"zz":["x"]}"#
        );
        assert!(managed_annotations(Some("invalid, non-json value"), "r", &keys).is_err());
        assert!(managed_annotations(Some("test"), "r", &keys).is_err());
    }

    #[test]
    fn the_forward_action_is_argos_json_byte_for_byte() {
        assert_eq!(forward_action(&alb(), &plan(10)).unwrap(), action(10));
        // Zero is written, not omitted.
        let zero = forward_action(&alb(), &plan(0)).unwrap();
        assert!(zero.contains(r#""Weight":0"#), "{zero}");
        assert!(zero.contains(r#""Weight":100"#), "{zero}");
    }

    #[test]
    fn stickiness_is_written_only_when_enabled_and_in_range() {
        let mut a = alb();
        a.stickiness_config = Some(StickinessConfig {
            enabled: true,
            duration_seconds: 300,
        });
        assert_eq!(
            forward_action(&a, &plan(10)).unwrap(),
            r#"{"Type":"forward","ForwardConfig":{"TargetGroups":[{"ServiceName":"canary-svc","ServicePort":"443","Weight":10},{"ServiceName":"stable-svc","ServicePort":"443","Weight":90}],"TargetGroupStickinessConfig":{"Enabled":true,"DurationSeconds":300}}}"#
        );
        a.stickiness_config = Some(StickinessConfig {
            enabled: false,
            duration_seconds: 0,
        });
        assert_eq!(forward_action(&a, &plan(0)).unwrap(), action(0));
        for bad in [0, -1, 604_801] {
            a.stickiness_config = Some(StickinessConfig {
                enabled: true,
                duration_seconds: bad,
            });
            assert_eq!(
                forward_action(&a, &plan(0)).unwrap_err(),
                "TargetGroupStickinessConfig's duration must be between 1 and 604800 seconds (7 days)!"
            );
        }
        a.stickiness_config = Some(StickinessConfig {
            enabled: true,
            duration_seconds: 604_800,
        });
        assert!(forward_action(&a, &plan(0)).is_ok());
    }

    #[test]
    fn go_escapes_html_characters() {
        assert_eq!(
            go_json(&json!("a<b>&c")).unwrap(),
            r#""a\u003cb\u003e\u0026c""#
        );
    }

    #[test]
    fn an_ingress_at_the_planned_weight_is_not_patched() {
        assert_eq!(patch(&ingress(STABLE_SVC, Some(10)), &alb(), 10), Ok(None));
    }

    #[test]
    fn a_bare_ingress_gets_the_action_and_the_managed_record() {
        let p = patch(&ingress(STABLE_SVC, None), &alb(), 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"annotations": {
                ACTION: action(10),
                MANAGED_ANNOTATIONS: r#"{"rollout":["alb.ingress.kubernetes.io/actions.stable-svc"]}"#,
            }}})
        );
    }

    #[test]
    fn a_weight_change_patches_only_the_action() {
        let p = patch(&ingress(STABLE_SVC, Some(5)), &alb(), 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"annotations": {ACTION: action(10)}}})
        );
        // With stickiness on, the action changes although the weight does not.
        let mut a = alb();
        a.stickiness_config = Some(StickinessConfig {
            enabled: true,
            duration_seconds: 300,
        });
        let p = patch(&ingress(STABLE_SVC, Some(10)), &a, 10)
            .unwrap()
            .unwrap();
        let got = p["metadata"]["annotations"][ACTION].as_str().unwrap();
        assert!(got.ends_with(
            r#""TargetGroupStickinessConfig":{"Enabled":true,"DurationSeconds":300}}}"#
        ));
    }

    #[test]
    fn other_annotations_are_left_alone() {
        let mut ing = ingress(STABLE_SVC, Some(5));
        ing.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert("kubernetes.io/ingress.class".into(), "alb".into());
        let p = patch(&ing, &alb(), 10).unwrap().unwrap();
        let a = p["metadata"]["annotations"].as_object().unwrap();
        assert_eq!(a.keys().collect::<Vec<_>>(), [ACTION]);
    }

    #[test]
    fn an_invalid_managed_record_is_an_error() {
        let mut ing = ingress(STABLE_SVC, Some(5));
        ing.metadata
            .annotations
            .as_mut()
            .unwrap()
            .insert(MANAGED_ANNOTATIONS.into(), "test".into());
        let e = patch(&ing, &alb(), 10).unwrap_err();
        assert!(
            e.starts_with("annotation rollouts.argoproj.io/managed-alb-annotations is not valid"),
            "{e}"
        );
    }

    #[test]
    fn the_ingress_must_route_to_the_root_service() {
        let mut a = alb();
        a.root_service = Some("invalid-svc".into());
        assert_eq!(
            patch(&ingress(STABLE_SVC, Some(5)), &a, 10).unwrap_err(),
            "ingress `ingress` has no rules using service invalid-svc backend"
        );
        // A backend that is a resource, a rule without http: no service either.
        let ing: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "ingress"},
            "spec": {"rules": [{"host": "h"}, {"http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"resource": {"kind": "Bucket", "name": "b"}}}]}}]}
        }))
        .unwrap();
        assert!(!has_rule_with_service(&ing, STABLE_SVC));
        assert!(has_rule_with_service(
            &ingress(STABLE_SVC, None),
            STABLE_SVC
        ));
    }

    #[test]
    fn a_root_service_and_a_prefix_name_the_action() {
        let mut a = alb();
        a.root_service = Some("root-service".into());
        a.annotation_prefix = Some("custom.alb.io".into());
        let p = patch(&ingress("root-service", None), &a, 10)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            json!({"metadata": {"annotations": {
                "custom.alb.io/actions.root-service": action(10),
                MANAGED_ANNOTATIONS: r#"{"rollout":["custom.alb.io/actions.root-service"]}"#,
            }}})
        );
    }

    #[test]
    fn ingress_or_ingresses_but_not_both() {
        assert_eq!(alb_ingresses(&alb()).unwrap(), ["ingress"]);
        let mut a = alb();
        a.ingress = None;
        a.ingresses = Some(vec!["ingress".into(), "multi-ingress".into()]);
        assert_eq!(alb_ingresses(&a).unwrap(), ["ingress", "multi-ingress"]);
        a.ingress = Some("ingress".into());
        assert_eq!(
            alb_ingresses(&a).unwrap_err(),
            "Either Ingress or Ingresses must be configured. Both are configured."
        );
        a.ingress = None;
        a.ingresses = None;
        assert_eq!(
            alb_ingresses(&a).unwrap_err(),
            "Either Ingress or Ingresses must be configured. Neither are configured."
        );
    }
}
