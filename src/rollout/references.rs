//! Argo's validation of the objects a Rollout references (`validation_references.go`,
//! `ValidateAnalysisTemplatesWithType`): for the background analysis, every analysis step and the
//! blue-green pre- and post-promotion analyses,
//! the templates must combine into a run (Argo's `NewAnalysisRunFromTemplates` with the Rollout's
//! arguments), a step's metrics must end (a metric with an interval and no count runs forever),
//! and a background template's arguments must be supplied. Each failure is an `InvalidSpec`
//! field error with Argo's path, value and message. Pure.

use crate::analysis::args::{merge_args, resolve_metric, rollout_args};
use crate::analysis::templates::{flatten_resolved, resolve};
use crate::api::analysis::{AnalysisTemplate, Argument, ClusterAnalysisTemplate, Metric};
use crate::api::rollout::{Rollout, RolloutAnalysis};
use crate::rollout::observed::rollout_analyses;
use crate::rollout::validation::{FieldError, invalid, quoted};

/// The first reference error of the Rollout's analyses, if any. Missing templates are reported
/// before this runs (`rollout::missing_template`).
pub fn validate_references(
    ro: &Rollout,
    templates: &[AnalysisTemplate],
    cluster_templates: &[ClusterAnalysisTemplate],
) -> Option<FieldError> {
    let groups = rollout_analyses(ro).into_iter().map(|(path, a)| {
        let background = path.ends_with("canary.analysis.templates");
        (path, a, background)
    });
    for (path, analysis, background) in groups {
        if let Some(e) = validate_group(
            ro,
            &path,
            analysis,
            background,
            templates,
            cluster_templates,
        ) {
            return Some(e);
        }
    }
    None
}

fn validate_group(
    ro: &Rollout,
    path: &str,
    analysis: &RolloutAnalysis,
    background: bool,
    templates: &[AnalysisTemplate],
    cluster_templates: &[ClusterAnalysisTemplate],
) -> Option<FieldError> {
    let refs = analysis.templates.as_deref().unwrap_or(&[]);
    let resolved = match resolve(refs, templates, cluster_templates) {
        Ok(r) => r,
        Err(e) => return Some(invalid(path, quoted("templateNames: []"), e)),
    };
    // Argo's `GetAnalysisTemplateNames`: namespaced, then cluster, Go's `%s` of a slice.
    let names: Vec<&str> = resolved.iter().map(|r| r.name).collect();
    let value = quoted(&format!("templateNames: [{}]", names.join(" ")));
    let flat = match flatten_resolved(&resolved) {
        Ok(f) => f,
        Err(e) => return Some(invalid(path, &value, e)),
    };
    // Argo's `buildAnalysisArgs`: the Rollout's arguments against dummy ReplicaSets.
    let supplied = rollout_args(
        analysis.args.as_deref().unwrap_or(&[]),
        ro,
        "dummy-stable-hash",
        "dummy-new-hash",
    )
    .unwrap_or_default();
    if let Err(e) = merge_args(&supplied, &flat.args) {
        return Some(invalid(path, &value, e.to_string()));
    }
    for t in &resolved {
        let name = quoted(t.name);
        if !background {
            // Argo's `setArgValuePlaceHolder`: only whether the metrics end is in question here.
            let args: Vec<Argument> = t
                .spec
                .args
                .iter()
                .flatten()
                .map(|a| {
                    let mut a = a.clone();
                    if a.value.is_none() && a.value_from.is_none() {
                        a.value = Some("dummy-value".into());
                    }
                    a
                })
                .collect();
            for m in &t.spec.metrics {
                let m: Metric = match resolve_metric(m, &args) {
                    Ok(m) => m,
                    Err(e) => {
                        return Some(invalid(
                            path,
                            &name,
                            format!("AnalysisTemplate {}: {e}", t.name),
                        ));
                    }
                };
                // `EffectiveCount`: nil when only an interval is set.
                if m.count.is_none() && m.interval.as_deref().is_some_and(|i| !i.is_empty()) {
                    return Some(invalid(
                        path,
                        &name,
                        format!(
                            "AnalysisTemplate {} has metric {} which runs indefinitely. Invalid value for count: <nil>",
                            t.name, m.name
                        ),
                    ));
                }
            }
        } else {
            for a in t.spec.args.iter().flatten() {
                if a.value.is_some() || a.value_from.is_some() {
                    continue;
                }
                let Some(rollout_args) = analysis.args.as_ref() else {
                    return Some(invalid(
                        path,
                        &name,
                        "missing analysis arguments in rollout spec",
                    ));
                };
                if !rollout_args.iter().any(|r| r.name == a.name) {
                    return Some(invalid(path, &name, a.name.clone()));
                }
            }
        }
    }
    None
}
