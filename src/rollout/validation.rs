//! Spec validation with Argo's messages (reference §1.14). One code path serves the controller's
//! `InvalidSpec` condition and `kubectl sluice lint`. Errors render like Kubernetes field errors:
//! `spec.strategy.canary.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100`.

use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::rollout::{AntiAffinity, Rollout};
use crate::rollout::replicas::value_from_int_or_percent;
use crate::time::pause_duration_seconds;

/// One validation failure, shaped like apimachinery's `field.Error`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub kind: FieldErrorKind,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    Required,
    /// The offending value, already rendered as Go would print it.
    Invalid(String),
    /// A value not among the supported ones.
    Unsupported(String),
    /// A value given twice where names must be unique.
    Duplicate(String),
}

/// Kubernetes' message for a name that is not a DNS-1123 label.
const DNS1123_LABEL: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

/// The part of Kubernetes' `ValidatePodTemplateSpecForReplicaSet` (which Argo runs on the
/// Rollout's template) that the API server would otherwise refuse the ReplicaSet for most often:
/// container names, duplicates, images and the restart policy. Anything else the server refuses
/// still reaches the Rollout as `ReplicaSetCreateError`.
fn validate_pod_spec(pod: &k8s_openapi::api::core::v1::PodSpec, errs: &mut Vec<FieldError>) {
    let base = "spec.template.spec";
    let mut seen: Vec<&str> = Vec::new();
    let init = pod
        .init_containers
        .iter()
        .flatten()
        .map(|c| ("initContainers", c));
    let main = pod.containers.iter().map(|c| ("containers", c));
    let mut index: std::collections::BTreeMap<&str, usize> = Default::default();
    for (list, c) in init.chain(main) {
        let i = index.entry(list).or_insert(0);
        let path = format!("{base}.{list}[{i}]");
        *i += 1;
        if c.name.is_empty() {
            errs.push(required(&format!("{path}.name"), "Required value".into()));
        } else if !is_dns1123_label(&c.name) {
            errs.push(invalid(
                &format!("{path}.name"),
                quoted(&c.name),
                DNS1123_LABEL,
            ));
        } else if seen.contains(&c.name.as_str()) {
            errs.push(FieldError {
                path: format!("{path}.name"),
                kind: FieldErrorKind::Duplicate(quoted(&c.name)),
                detail: String::new(),
            });
        } else {
            seen.push(&c.name);
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) && list == "containers" {
            errs.push(required(&format!("{path}.image"), "Required value".into()));
        }
    }
    if let Some(p) = pod.restart_policy.as_deref()
        && p != "Always"
    {
        errs.push(FieldError {
            path: format!("{base}.restartPolicy"),
            kind: FieldErrorKind::Unsupported(quoted(p)),
            detail: "supported values: \"Always\"".into(),
        });
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            FieldErrorKind::Required => write!(f, "{}: Required value: {}", self.path, self.detail),
            FieldErrorKind::Invalid(v) => {
                write!(f, "{}: Invalid value: {}: {}", self.path, v, self.detail)
            }
            FieldErrorKind::Unsupported(v) => {
                write!(
                    f,
                    "{}: Unsupported value: {}: {}",
                    self.path, v, self.detail
                )
            }
            FieldErrorKind::Duplicate(v) => write!(f, "{}: Duplicate value: {}", self.path, v),
        }
    }
}

fn required(path: &str, detail: String) -> FieldError {
    FieldError {
        path: path.into(),
        kind: FieldErrorKind::Required,
        detail,
    }
}

pub fn invalid(path: &str, value: impl fmt::Display, detail: impl Into<String>) -> FieldError {
    FieldError {
        path: path.into(),
        kind: FieldErrorKind::Invalid(value.to_string()),
        detail: detail.into(),
    }
}

pub fn quoted(s: &str) -> String {
    format!("{s:?}")
}

pub const MISSING_FIELD: &str = "Rollout has missing field";
pub const INVALID_SET_WEIGHT: &str = "SetWeight needs to be between 0 and";
pub const INVALID_DURATION: &str = "Duration needs to be greater than 0";
pub const INVALID_SURGE_UNAVAILABLE: &str = "MaxSurge and MaxUnavailable both can not be zero";
pub const INVALID_STEP: &str = "Step must have one of the following set: experiment, setWeight, setCanaryScale, plugin or pause";
pub const INVALID_STRATEGY: &str = "Multiple Strategies can not be listed";
pub const DUPLICATED_SERVICES_CANARY: &str = "This rollout uses the same service for the stable and canary services, but two different services are required.";
pub const DUPLICATED_SERVICES_BLUE_GREEN: &str = "This rollout uses the same service for the active and preview services, but two different services are required.";
pub const INVALID_TRAFFIC_ROUTING: &str =
    "Canary service and Stable service must to be set to use Traffic Routing";
pub const INVALID_SET_CANARY_SCALE: &str = "SetCanaryScale requires TrafficRouting to be set";
pub const INVALID_SCALE_DOWN_DELAY: &str =
    "Canary scaleDownDelaySeconds can only be used with traffic routing";
pub const INVALID_DYNAMIC_STABLE_SCALE: &str =
    "Canary dynamicStableScale can only be used with traffic routing";
pub const INVALID_MAX_WEIGHT: &str =
    "Canary maxTrafficWeight in traffic routing only supported in Nginx and Plugins";
pub const INVALID_EXPERIMENT_WEIGHT: &str =
    "Experiment template weight cannot be set unless TrafficRouting is enabled";
pub const INVALID_ANTI_AFFINITY: &str = "AntiAffinity must have exactly one strategy listed";
pub const INVALID_ANTI_AFFINITY_WEIGHT: &str = "AntiAffinity weight must be between 1-100";
pub const SCALE_DOWN_LIMIT: &str =
    "This rollout's revision history limit can not be smaller than the rollout's scale down limit";

/// All validation errors of a Rollout, in Argo's order; empty when valid.
pub fn validate(ro: &Rollout) -> Vec<FieldError> {
    let spec = &ro.spec;
    let mut errs = Vec::new();
    let replicas = spec.replicas.unwrap_or(1);
    if replicas < 0 {
        errs.push(invalid(
            "spec.replicas",
            replicas,
            "must be greater than or equal to 0",
        ));
    }
    if spec.workload_ref.is_none() {
        match &spec.selector {
            None => errs.push(required(
                "spec.selector",
                format!("{MISSING_FIELD} '.spec.selector'"),
            )),
            Some(sel) => {
                let n = sel.match_labels.as_ref().map_or(0, |m| m.len())
                    + sel.match_expressions.as_ref().map_or(0, |m| m.len());
                if n == 0 {
                    errs.push(invalid(
                        "spec.selector",
                        "{}",
                        "empty selector is invalid for deployment",
                    ));
                }
            }
        }
        match &spec.template {
            None => errs.push(required(
                "spec.template",
                format!("{MISSING_FIELD} '.spec.template'"),
            )),
            Some(t) => {
                let containers = t.spec.as_ref().map_or(0, |s| s.containers.len());
                if containers == 0 {
                    errs.push(required(
                        "spec.template.spec.containers",
                        "Required value".into(),
                    ));
                }
                if let Some(pod) = t.spec.as_ref() {
                    validate_pod_spec(pod, &mut errs);
                }
                // The selector must select the template's own labels.
                if let Some(ml) = spec.selector.as_ref().and_then(|s| s.match_labels.as_ref()) {
                    let labels = t
                        .metadata
                        .as_ref()
                        .and_then(|m| m.labels.clone())
                        .unwrap_or_default();
                    if ml.iter().any(|(k, v)| labels.get(k) != Some(v)) {
                        errs.push(invalid(
                            "spec.template.metadata.labels",
                            format!("{labels:?}"),
                            "`selector` does not match template `labels`",
                        ));
                    }
                }
            }
        }
    } else if spec
        .template
        .as_ref()
        .is_some_and(|t| t.spec.as_ref().is_some_and(|s| !s.containers.is_empty()))
    {
        errs.push(invalid(
            "spec.template",
            "",
            "template must be empty for workload reference rollout",
        ));
    }
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    if min_ready < 0 {
        errs.push(invalid(
            "spec.minReadySeconds",
            min_ready,
            "must be greater than or equal to 0",
        ));
    }
    let rhl = spec.revision_history_limit.unwrap_or(10);
    if rhl < 0 {
        errs.push(invalid(
            "spec.revisionHistoryLimit",
            rhl,
            "must be greater than or equal to 0",
        ));
    }
    let pds = spec.progress_deadline_seconds.unwrap_or(600);
    if pds < 0 {
        errs.push(invalid(
            "spec.progressDeadlineSeconds",
            pds,
            "must be greater than or equal to 0",
        ));
    }
    if pds <= min_ready {
        errs.push(invalid(
            "spec.progressDeadlineSeconds",
            pds,
            "must be greater than minReadySeconds",
        ));
    }
    validate_strategy(ro, &mut errs);
    errs
}

fn validate_strategy(ro: &Rollout, errs: &mut Vec<FieldError>) {
    let strategy = &ro.spec.strategy;
    match (&strategy.blue_green, &strategy.canary) {
        (None, None) => errs.push(required(
            "spec.strategy",
            format!("{MISSING_FIELD} '.spec.strategy.canary or .spec.strategy.blueGreen'"),
        )),
        (Some(_), Some(_)) => errs.push(invalid(
            "spec.strategy",
            quoted("blueGreen: true canary: true"),
            INVALID_STRATEGY,
        )),
        (Some(bg), None) => {
            if Some(&bg.active_service) == bg.preview_service.as_ref() {
                errs.push(invalid(
                    "spec.strategy.activeService",
                    quoted(&bg.active_service),
                    DUPLICATED_SERVICES_BLUE_GREEN,
                ));
            }
            let rhl = ro.spec.revision_history_limit.unwrap_or(10);
            if let Some(l) = bg.scale_down_delay_revision_limit
                && rhl < l
            {
                errs.push(invalid(
                    "spec.strategy.scaleDownDelayRevisionLimit",
                    l,
                    SCALE_DOWN_LIMIT,
                ));
            }
            validate_anti_affinity(bg.anti_affinity.as_ref(), "spec.strategy", errs);
        }
        (None, Some(_)) => validate_canary(ro, errs),
    }
}

fn is_zero(v: Option<&IntOrString>, default: &IntOrString, replicas: i32, up: bool) -> bool {
    value_from_int_or_percent(v.unwrap_or(default), replicas.max(1) * 100, up).is_ok_and(|n| n == 0)
}

fn validate_canary(ro: &Rollout, errs: &mut Vec<FieldError>) {
    let Some(canary) = ro.spec.strategy.canary.as_ref() else {
        return;
    };
    let path = "spec.strategy";
    let default = IntOrString::String("25".into());
    let replicas = ro.spec.replicas.unwrap_or(1);
    if is_zero(canary.max_surge.as_ref(), &default, replicas, true)
        && is_zero(canary.max_unavailable.as_ref(), &default, replicas, false)
    {
        errs.push(invalid(
            &format!("{path}.maxSurge"),
            canary
                .max_surge
                .as_ref()
                .map_or("25".into(), crate::time::int_or_string_display),
            INVALID_SURGE_UNAVAILABLE,
        ));
    }
    for v in [&canary.max_surge, &canary.max_unavailable]
        .into_iter()
        .flatten()
    {
        if value_from_int_or_percent(v, replicas, true).is_err() {
            errs.push(invalid(
                &format!("{path}.maxSurge"),
                quoted(&crate::time::int_or_string_display(v)),
                "invalid value for IntOrString: invalid value: must be an integer or a percentage",
            ));
        }
    }
    let canary_svc = canary.canary_service.as_deref().unwrap_or("");
    let stable_svc = canary.stable_service.as_deref().unwrap_or("");
    if !canary_svc.is_empty() && canary_svc == stable_svc {
        errs.push(invalid(
            &format!("{path}.stableService"),
            quoted(stable_svc),
            DUPLICATED_SERVICES_CANARY,
        ));
    }
    let routing = canary.traffic_routing.as_ref();
    if let Some(tr) = routing {
        let needs_services = tr.smi.is_some()
            || tr.nginx.is_some()
            || tr.ambassador.is_some()
            || tr.app_mesh.is_some()
            || tr.traefik.is_some()
            || tr.apisix.is_some()
            || (tr.alb.is_some() && canary.ping_pong.is_none())
            || (tr
                .istio
                .as_ref()
                .is_some_and(|i| i.destination_rule.is_none())
                && canary.ping_pong.is_none());
        if needs_services {
            if stable_svc.is_empty() {
                errs.push(invalid(
                    &format!("{path}.stableService"),
                    quoted(""),
                    INVALID_TRAFFIC_ROUTING,
                ));
            }
            if canary_svc.is_empty() {
                errs.push(invalid(
                    &format!("{path}.canaryService"),
                    quoted(""),
                    INVALID_TRAFFIC_ROUTING,
                ));
            }
        }
        if canary.scale_down_delay_seconds.is_some() && canary.dynamic_stable_scale.unwrap_or(false)
        {
            errs.push(invalid(
                &format!("{path}.dynamicStableScale"),
                true,
                "Canary dynamicStableScale cannot be used with scaleDownDelaySeconds",
            ));
        }
        if let Some(w) = tr.max_traffic_weight
            && tr.nginx.is_none()
            && tr.plugins.as_ref().is_none_or(|p| p.is_empty())
        {
            errs.push(invalid(
                &format!("{path}.trafficRouting.maxTrafficWeight"),
                w,
                INVALID_MAX_WEIGHT,
            ));
        }
    } else {
        if let Some(d) = canary.scale_down_delay_seconds {
            errs.push(invalid(
                &format!("{path}.scaleDownDelaySeconds"),
                d,
                INVALID_SCALE_DOWN_DELAY,
            ));
        }
        if canary.dynamic_stable_scale.unwrap_or(false) {
            errs.push(invalid(
                &format!("{path}.dynamicStableScale"),
                true,
                INVALID_DYNAMIC_STABLE_SCALE,
            ));
        }
    }
    let max_weight = routing.and_then(|t| t.max_traffic_weight).unwrap_or(100);
    for (i, step) in canary.steps.iter().flatten().enumerate() {
        let sp = format!("{path}.steps[{i}]");
        let any = [
            step.experiment.is_some(),
            step.pause.is_some(),
            step.set_weight.is_some(),
            step.analysis.is_some(),
            step.set_canary_scale.is_some(),
            step.set_header_route.is_some(),
            step.set_mirror_route.is_some(),
            step.plugin.is_some(),
        ];
        // Argo's `hasMultipleStepsType` covers only these four: setCanaryScale may go with a
        // header route in one step (upstream's examples/apisix/rollout.yaml does).
        let exclusive = [
            step.set_weight.is_some(),
            step.pause.is_some(),
            step.experiment.is_some(),
            step.analysis.is_some(),
        ];
        if exclusive.iter().filter(|k| **k).count() > 1 {
            let value = format!(
                "step.Experiment: {} step.Pause: {} step.SetWeight: {} step.Analysis: {}",
                step.experiment.is_some(),
                step.pause.is_some(),
                step.set_weight.is_some(),
                step.analysis.is_some()
            );
            errs.push(invalid(&sp, quoted(&value), INVALID_STEP));
        }
        if !any.iter().any(|k| *k) {
            errs.push(invalid(&sp, quoted("no step type"), INVALID_STEP));
        }
        if let Some(w) = step.set_weight
            && !(0..=max_weight).contains(&w)
        {
            errs.push(invalid(
                &format!("{sp}.setWeight"),
                w,
                format!("{INVALID_SET_WEIGHT} {max_weight}"),
            ));
        }
        if let Some(d) = step.pause.as_ref().and_then(|p| p.duration.as_ref()) {
            let secs = pause_duration_seconds(d);
            if secs < 0 {
                errs.push(invalid(
                    &format!("{sp}.pause.duration"),
                    secs,
                    INVALID_DURATION,
                ));
            }
        }
        if step.set_canary_scale.is_some() && routing.is_none() {
            errs.push(required(
                &format!("{path}.trafficRouting"),
                INVALID_SET_CANARY_SCALE.into(),
            ));
        }
        if step.set_header_route.is_some()
            && routing.is_none_or(|t| {
                t.istio.is_none()
                    && t.alb.is_none()
                    && t.apisix.is_none()
                    && t.plugins.as_ref().is_none_or(|p| p.is_empty())
            })
        {
            errs.push(invalid(
                &format!("{sp}.setHeaderRoute"),
                quoted("setHeaderRoute"),
                "SetHeaderRoute requires TrafficRouting, supports Istio and ALB and Apisix",
            ));
        }
        if step.set_mirror_route.is_some()
            && routing.is_none_or(|t| {
                t.istio.is_none() && t.plugins.as_ref().is_none_or(|p| p.is_empty())
            })
        {
            errs.push(invalid(
                &format!("{sp}.setMirrorRoute"),
                quoted("setMirrorRoute"),
                "SetMirrorRoute requires TrafficRouting, supports Istio and Plugins",
            ));
        }
        if let Some(exp) = &step.experiment {
            for (j, t) in exp.templates.iter().enumerate() {
                if let (Some(w), None) = (t.weight, routing) {
                    errs.push(invalid(
                        &format!("{sp}.experiment.templates[{j}].weight"),
                        w,
                        INVALID_EXPERIMENT_WEIGHT,
                    ));
                }
            }
        }
    }
    validate_anti_affinity(canary.anti_affinity.as_ref(), path, errs);
}

/// Argo's `ValidateRolloutStrategyAntiAffinity`: exactly one rule, a weight of 1 to 100.
fn validate_anti_affinity(a: Option<&AntiAffinity>, path: &str, errs: &mut Vec<FieldError>) {
    let Some(a) = a else {
        return;
    };
    let preferred = a
        .preferred_during_scheduling_ignored_during_execution
        .as_ref();
    let required = a
        .required_during_scheduling_ignored_during_execution
        .is_some();
    if preferred.is_some() == required {
        let value = format!(
            "antiAffinity.PreferredDuringSchedulingIgnoredDuringExecution: {} antiAffinity.RequiredDuringSchedulingIgnoredDuringExecution: {required}",
            preferred.is_some()
        );
        errs.push(invalid(
            &format!("{path}.antiAffinity"),
            quoted(&value),
            INVALID_ANTI_AFFINITY,
        ));
    }
    if let Some(p) = preferred
        && !(1..=100).contains(&p.weight)
    {
        errs.push(invalid(
            &format!("{path}.antiAffinity.weight"),
            p.weight,
            INVALID_ANTI_AFFINITY_WEIGHT,
        ));
    }
}

/// The condition message Argo writes: `The Rollout "<name>" is invalid: <first error>`.
pub fn invalid_spec_message(ro: &Rollout, errs: &[FieldError]) -> Option<String> {
    let first = errs.first()?;
    let name = ro.metadata.name.as_deref().unwrap_or("");
    Some(format!("The Rollout \"{name}\" is invalid: {first}"))
}
