//! `{{args.name}}` substitution (reference §1.15) and the Rollout-side argument values
//! (`valueFrom.podTemplateHashValue`, `valueFrom.fieldRef`). Substitution works on the metric's
//! JSON with JSON-escaped values, as Argo does, so a value can never break the structure.

use serde_json::Value;

use crate::api::analysis::{Argument, Metric};
use crate::api::rollout::{AnalysisRunArgument, Rollout};

/// Why arguments could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ArgError {
    #[error("argument \"{0}\" was not supplied")]
    NotSupplied(String),
    #[error("failed to resolve {{{{{0}}}}}")]
    Unresolved(String),
    #[error("unable to parse the resolved metric: {0}")]
    Malformed(String),
    #[error("{0}")]
    FieldPath(String),
    #[error("args.{0} was not resolved")]
    NotResolved(String),
}

/// Replace every `{{ tag }}` in `template` with `lookup(tag)`; an unknown tag is an error.
pub fn substitute(
    template: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ArgError> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    let mut err = None;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let tag = &after[..end];
        match lookup(tag.trim()) {
            Some(v) => out.push_str(&v),
            None => {
                if err.is_none() {
                    err = Some(ArgError::Unresolved(tag.to_string()));
                }
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    match err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Resolve a metric's placeholders against fully valued arguments.
pub fn resolve_metric(metric: &Metric, args: &[Argument]) -> Result<Metric, ArgError> {
    let mut values = Vec::with_capacity(args.len());
    for a in args {
        let v = a
            .value
            .clone()
            .ok_or_else(|| ArgError::NotSupplied(a.name.clone()))?;
        values.push((format!("args.{}", a.name), v));
    }
    let json = serde_json::to_string(metric).map_err(|e| ArgError::Malformed(e.to_string()))?;
    let resolved = substitute(&json, &|tag| {
        values.iter().find(|(k, _)| k == tag).map(|(_, v)| {
            // JSON-escape without the surrounding quotes.
            let q = Value::String(v.clone()).to_string();
            q[1..q.len() - 1].to_string()
        })
    })?;
    serde_json::from_str(&resolved).map_err(|e| ArgError::Malformed(e.to_string()))
}

/// Argo's `MergeArgs`: a Rollout value fills or overrides a template argument, template
/// defaults stay where the Rollout gives nothing, and a Rollout argument no template declares is
/// dropped. Every argument must then have a value (`ResolveArgs`).
pub fn merge_args(incoming: &[Argument], template: &[Argument]) -> Result<Vec<Argument>, ArgError> {
    let mut out: Vec<Argument> = template.to_vec();
    for a in incoming {
        if let Some(t) = out.iter_mut().find(|t| t.name == a.name) {
            if a.value.is_some() {
                t.value = a.value.clone();
            } else if a.value_from.is_some() {
                t.value_from = a.value_from.clone();
            }
        }
    }
    if let Some(a) = out
        .iter()
        .find(|a| a.value.is_none() && a.value_from.is_none())
    {
        return Err(ArgError::NotResolved(a.name.clone()));
    }
    Ok(out)
}

/// The value of a Rollout field path such as `metadata.labels['env']`, `metadata.name` or
/// `spec.template.metadata.labels.version` (Argo's fieldRef on the Rollout side).
pub fn rollout_field(ro: &Rollout, path: &str) -> Result<String, ArgError> {
    let v = serde_json::to_value(ro).map_err(|e| ArgError::FieldPath(e.to_string()))?;
    let mut cur = &v;
    let mut rest = path;
    while !rest.is_empty() {
        let (key, next) = if let Some(r) = rest.strip_prefix("['") {
            let end = r
                .find("']")
                .ok_or_else(|| ArgError::FieldPath(format!("unsupported fieldPath {path}")))?;
            (&r[..end], r[end + 2..].trim_start_matches('.'))
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (&rest[..end], rest[end..].trim_start_matches('.'))
        };
        cur = cur
            .get(key)
            .ok_or_else(|| ArgError::FieldPath(format!("field {path} not found in the rollout")))?;
        rest = next;
    }
    Ok(match cur {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

/// `BuildArgumentsForRolloutAnalysisRun`: the Rollout's analysis arguments with their values.
pub fn rollout_args(
    args: &[AnalysisRunArgument],
    ro: &Rollout,
    stable_hash: &str,
    latest_hash: &str,
) -> Result<Vec<Argument>, ArgError> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        let mut value = a.value.clone();
        if let Some(from) = &a.value_from {
            if let Some(which) = &from.pod_template_hash_value {
                value = Some(
                    if which == "Stable" {
                        stable_hash
                    } else {
                        latest_hash
                    }
                    .to_string(),
                );
            } else if let Some(f) = &from.field_ref {
                value = Some(rollout_field(ro, &f.field_path)?);
            }
        }
        out.push(Argument {
            name: a.name.clone(),
            value: Some(value.unwrap_or_default()),
            value_from: None,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(name: &str, value: Option<&str>) -> Argument {
        serde_json::from_value(serde_json::json!({"name": name, "value": value}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn merge_args_is_argos() {
        let template = [arg("a", None), arg("b", Some("default"))];
        // A Rollout argument no template declares is dropped; values fill or override.
        let merged = merge_args(&[arg("a", Some("1")), arg("extra", Some("x"))], &template)
            .unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<(&str, Option<&str>)> = merged
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_deref()))
            .collect();
        assert_eq!(got, [("a", Some("1")), ("b", Some("default"))]);
        // An argument left without a value is Argo's ResolveArgs error.
        assert_eq!(
            merge_args(&[], &template).map_err(|e| e.to_string()),
            Err("args.a was not resolved".to_string())
        );
    }

    #[test]
    fn substitution_trims_tags_and_reports_unknowns() {
        let look = |t: &str| (t == "args.a").then(|| "1".to_string());
        assert_eq!(
            substitute("x{{args.a}}y{{ args.a }}", &look),
            Ok("x1y1".into())
        );
        assert_eq!(
            substitute("{{args.b}}", &look),
            Err(ArgError::Unresolved("args.b".into()))
        );
        assert_eq!(substitute("no tags {", &look), Ok("no tags {".into()));
    }

    #[test]
    fn rollout_field_paths() {
        let ro: Rollout = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "web", "labels": {"env": "prod"}},
            "spec": {"template": {"metadata": {"labels": {"version": "v2"}}, "spec": {"containers": []}}, "strategy": {"canary": {}}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rollout_field(&ro, "metadata.name"), Ok("web".into()));
        assert_eq!(
            rollout_field(&ro, "metadata.labels['env']"),
            Ok("prod".into())
        );
        assert_eq!(
            rollout_field(&ro, "spec.template.metadata.labels.version"),
            Ok("v2".into())
        );
        assert!(rollout_field(&ro, "metadata.labels['nope']").is_err());
    }
}
