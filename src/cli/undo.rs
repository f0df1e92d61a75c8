//! `undo NAME [--to-revision N]`: make an earlier revision's pod template the desired one again.
//! The template comes from that revision's ReplicaSet, minus its `rollouts-pod-template-hash`
//! label, and is written with Argo's JSON patch
//! `[{"op":"replace","path":"/spec/template","value":<template>}]` — to the Rollout, or to the
//! object a `workloadRef` rollout points at.

use clap::Args;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::api::consts::LABEL_POD_TEMPLATE_HASH;
use crate::api::selector::format_selector;
use crate::cli::Output;
use crate::cli::context::Ctx;
use crate::cli::error::{CliError, rollout_error};
use crate::cli::render::revision_of;

#[derive(Args, Debug)]
pub struct UndoArgs {
    /// Name of the rollout.
    pub name: String,
    /// The revision to go back to; 0 means the one before the latest.
    #[arg(
        long,
        default_value_t = 0,
        value_name = "N",
        env = "SLUICE_TO_REVISION"
    )]
    pub to_revision: i64,
}

/// The ReplicaSet of revision `to` (0: the second-newest revision) among the rollout's own.
pub fn pick_revision<'a>(
    name: &str,
    rss: &'a [ReplicaSet],
    to: i64,
) -> Result<&'a ReplicaSet, CliError> {
    if to > 0 {
        return rss
            .iter()
            .find(|rs| revision_of(rs.metadata.annotations.as_ref()) == to)
            .ok_or_else(|| {
                CliError::Refused(format!("unable to find specified revision {to} in history"))
            });
    }
    let mut by_revision: Vec<&ReplicaSet> = rss.iter().collect();
    by_revision.sort_by_key(|rs| std::cmp::Reverse(revision_of(rs.metadata.annotations.as_ref())));
    by_revision
        .get(1)
        .copied()
        .ok_or_else(|| CliError::Refused(format!("no revision found for rollout \"{name}\"")))
}

/// A pod template as JSON without the pod-template-hash label.
pub fn template_without_hash(mut template: Value) -> Value {
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(LABEL_POD_TEMPLATE_HASH);
    }
    template
}

/// apimachinery's semantic `DeepDerivative`: whatever `a` leaves unset (null, empty string,
/// empty map or list) matches anything; what it sets must equal `b`.
pub fn derivative(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, _) => true,
        (Value::String(s), _) if s.is_empty() => true,
        (Value::Object(x), _) if x.is_empty() => true,
        (Value::Array(x), _) if x.is_empty() => true,
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .all(|(k, v)| derivative(v, y.get(k).unwrap_or(&Value::Null))),
        (Value::Array(x), Value::Array(y)) => {
            x.len() <= y.len() && x.iter().zip(y).all(|(v, w)| derivative(v, w))
        }
        _ => a == b,
    }
}

/// Argo's rollback patch.
pub fn undo_patch(path: &str, template: Value) -> Value {
    json!([{"op": "replace", "path": path, "value": template}])
}

pub async fn run(ctx: &Ctx, args: &UndoArgs, out: &mut Output<'_>) -> Result<(), CliError> {
    let name = &args.name;
    let ro = ctx
        .dynamic_rollouts()
        .get(name)
        .await
        .map_err(|e| rollout_error(e, name, &ctx.namespace))?;
    let uid = ro.metadata.uid.clone().unwrap_or_default();
    let selector: Option<LabelSelector> =
        serde_json::from_value(ro.data["spec"]["selector"].clone()).ok();
    let mut lp = ListParams::default();
    if let Some(sel) = selector
        .as_ref()
        .map(format_selector)
        .filter(|s| s != "<none>")
    {
        lp = lp.labels(&sel);
    }
    let rs_api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let owned: Vec<ReplicaSet> = rs_api
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.uid == uid && o.controller == Some(true))
        })
        .collect();
    let rs = pick_revision(name, &owned, args.to_revision)?;
    let revision = revision_of(rs.metadata.annotations.as_ref());
    let template = template_without_hash(
        serde_json::to_value(rs.spec.template.as_ref())
            .map_err(|e| CliError::Decode(e.to_string()))?,
    );
    let current = template_without_hash(ro.data["spec"]["template"].clone());
    if !current.is_null() && derivative(&current, &template) {
        return out.line(&format!(
            "skipped rollback (current template already matches revision {revision})"
        ));
    }
    let workload = &ro.data["spec"]["workloadRef"];
    let (api, target, path) = if workload.is_object() {
        let target = workload["name"].as_str().unwrap_or_default().to_string();
        match workload["kind"].as_str().unwrap_or_default() {
            "Deployment" => (
                ctx.dynamic("apps", "v1", "Deployment", "deployments"),
                target,
                "/spec/template",
            ),
            "ReplicaSet" => (
                ctx.dynamic("apps", "v1", "ReplicaSet", "replicasets"),
                target,
                "/spec/template",
            ),
            "PodTemplate" => (
                ctx.dynamic("", "v1", "PodTemplate", "podtemplates"),
                target,
                "/template",
            ),
            other => {
                return Err(CliError::Refused(format!(
                    "workload of type {other} is not supported"
                )));
            }
        }
    } else {
        (ctx.dynamic_rollouts(), name.clone(), "/spec/template")
    };
    let patch = serde_json::from_value(undo_patch(path, template))
        .map_err(|e| CliError::Decode(e.to_string()))?;
    api.patch(&target, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .map_err(|e| {
            CliError::Refused(format!(
                "failed restoring revision {revision}: {}",
                CliError::from(e)
            ))
        })?;
    out.line(&format!("rollout '{name}' undo (to revision {revision})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, revision: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": name, "annotations": {"rollout.argoproj.io/revision": revision}},
            "spec": {"selector": {}, "template": {
                "metadata": {"labels": {"app": "f", "rollouts-pod-template-hash": name}},
                "spec": {"containers": [{"name": "app", "image": image}]}
            }}
        }))
        .unwrap_or_default()
    }

    #[test]
    fn previous_and_explicit_revisions() {
        let rss = vec![rs("a", "1", "v1"), rs("c", "3", "v3"), rs("b", "2", "v2")];
        let name = |r: Result<&ReplicaSet, CliError>| r.ok().and_then(|r| r.metadata.name.clone());
        assert_eq!(name(pick_revision("f", &rss, 0)).as_deref(), Some("b"));
        assert_eq!(name(pick_revision("f", &rss, 1)).as_deref(), Some("a"));
        let e = pick_revision("f", &rss, 7).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("unable to find specified revision 7 in history")
        );
        let e = pick_revision("f", &rss[..1], 0)
            .err()
            .map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("no revision found for rollout \"f\""));
    }

    #[test]
    fn patch_replaces_the_template_without_the_hash_label() {
        let r = rs("a", "1", "v1");
        let t = template_without_hash(serde_json::to_value(r.spec.template).unwrap_or_default());
        assert_eq!(
            undo_patch("/spec/template", t),
            json!([{"op": "replace", "path": "/spec/template", "value": {
                "metadata": {"labels": {"app": "f"}},
                "spec": {"containers": [{"name": "app", "image": "v1"}]}
            }}])
        );
    }

    #[test]
    fn semantic_derivative() {
        let full = json!({"metadata": {"labels": {"app": "f"}}, "spec": {"containers": [
            {"name": "app", "image": "v1", "imagePullPolicy": "IfNotPresent"}]}});
        let sparse = json!({"metadata": {"labels": {"app": "f"}, "annotations": {}},
            "spec": {"containers": [{"name": "app", "image": "v1"}]}});
        assert!(derivative(&sparse, &full));
        let other = json!({"spec": {"containers": [{"name": "app", "image": "v2"}]}});
        assert!(!derivative(&other, &full));
    }
}
