//! AnalysisTemplates as Argo combines them into one run: the references resolved recursively
//! through `spec.templates` (Argo's `getAnalysisTemplatesFromRefs`, duplicates dropped by name),
//! then flattened (`FlattenTemplates`): metrics, args, dryRun and measurementRetention merged,
//! namespaced templates first, then cluster ones, with Argo's error messages. Pure.

use crate::api::analysis::{
    AnalysisTemplate, AnalysisTemplateSpec, Argument, ClusterAnalysisTemplate, DryRun,
    MeasurementRetention, Metric,
};
use crate::api::rollout::AnalysisTemplateRef;

/// How deep `spec.templates` may nest. Argo recurses without a bound (a template naming itself
/// overflows its stack); a cycle is reported here instead.
const MAX_DEPTH: usize = 16;

/// One run's templates, flattened.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Flattened {
    pub metrics: Vec<Metric>,
    pub args: Vec<Argument>,
    pub dry_run: Vec<DryRun>,
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// The names a template refers to through `spec.templates`: (namespaced, cluster-scoped).
pub fn nested_refs(spec: &AnalysisTemplateSpec) -> Vec<(String, bool)> {
    spec.templates
        .iter()
        .flatten()
        .map(|r| {
            (
                r.template_name.clone().unwrap_or_default(),
                r.cluster_scope.unwrap_or(false),
            )
        })
        .collect()
}

/// The Kubernetes NotFound wording Argo reports for a missing template.
pub fn not_found(name: &str, cluster: bool) -> String {
    if cluster {
        format!("ClusterAnalysisTemplate.argoproj.io \"{name}\" not found")
    } else {
        format!("AnalysisTemplate.argoproj.io \"{name}\" not found")
    }
}

/// A template a run is made of, after resolving nested references.
pub struct Resolved<'a> {
    pub name: &'a str,
    pub cluster: bool,
    pub spec: &'a AnalysisTemplateSpec,
}

/// Resolve `refs` recursively (depth first, each name once), namespaced templates before cluster
/// ones, as Argo orders them for flattening.
pub fn resolve<'a>(
    refs: &[AnalysisTemplateRef],
    templates: &'a [AnalysisTemplate],
    cluster_templates: &'a [ClusterAnalysisTemplate],
) -> Result<Vec<Resolved<'a>>, String> {
    let lookup = Lookup {
        templates,
        cluster_templates,
    };
    let top: Vec<(String, bool)> = refs
        .iter()
        .map(|r| {
            (
                r.template_name.clone().unwrap_or_default(),
                r.cluster_scope.unwrap_or(false),
            )
        })
        .collect();
    let mut found = Vec::new();
    lookup.collect(&top, 0, &mut found)?;
    // Stable: each scope keeps its depth-first order.
    found.sort_by_key(|r| r.cluster);
    Ok(found)
}

/// Resolve `refs` (recursively) against the templates at hand and flatten them.
pub fn flatten(
    refs: &[AnalysisTemplateRef],
    templates: &[AnalysisTemplate],
    cluster_templates: &[ClusterAnalysisTemplate],
) -> Result<Flattened, String> {
    flatten_resolved(&resolve(refs, templates, cluster_templates)?)
}

/// Argo's `FlattenTemplates` over templates already resolved.
pub fn flatten_resolved(resolved: &[Resolved]) -> Result<Flattened, String> {
    let specs: Vec<&AnalysisTemplateSpec> = resolved.iter().map(|r| r.spec).collect();
    let mut out = Flattened::default();
    for s in &specs {
        for m in &s.metrics {
            if out.metrics.iter().any(|x| x.name == m.name) {
                return Err(format!("two metrics have the same name '{}'", m.name));
            }
            out.metrics.push(m.clone());
        }
    }
    for s in &specs {
        for a in s.args.iter().flatten() {
            match out.args.iter_mut().find(|x| x.name == a.name) {
                Some(prev) => {
                    if let (Some(p), Some(n)) = (&prev.value, &a.value)
                        && p != n
                    {
                        return Err(format!(
                            "Argument `{}` specified multiple times with different values: '{p}', '{n}'",
                            a.name
                        ));
                    }
                    // A value already set is never replaced by a declaration without one.
                    if prev.value.is_none() {
                        *prev = a.clone();
                    }
                }
                None => out.args.push(a.clone()),
            }
        }
    }
    for s in &specs {
        out.dry_run.extend(s.dry_run.clone().unwrap_or_default());
        out.measurement_retention
            .extend(s.measurement_retention.clone().unwrap_or_default());
    }
    unique_rules(&out.dry_run, |d| &d.metric_name, "Dry-Run")?;
    unique_rules(
        &out.measurement_retention,
        |m| &m.metric_name,
        "Measurement Retention",
    )?;
    Ok(out)
}

/// Argo's `validateDryRunMetrics` / `validateMeasurementRetentionMetrics`.
pub fn unique_rules<T>(rules: &[T], name: fn(&T) -> &String, what: &str) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        if rules[..i].iter().any(|p| name(p) == name(r)) {
            return Err(format!(
                "two {what} metric rules have the same name '{}'",
                name(r)
            ));
        }
    }
    Ok(())
}

struct Lookup<'a> {
    templates: &'a [AnalysisTemplate],
    cluster_templates: &'a [ClusterAnalysisTemplate],
}

impl<'a> Lookup<'a> {
    fn find(&self, name: &str, cluster: bool) -> Option<Resolved<'a>> {
        if cluster {
            self.cluster_templates
                .iter()
                .find(|t| t.metadata.name.as_deref() == Some(name))
                .map(|t| (t.metadata.name.as_deref(), &t.spec.0))
        } else {
            self.templates
                .iter()
                .find(|t| t.metadata.name.as_deref() == Some(name))
                .map(|t| (t.metadata.name.as_deref(), &t.spec))
        }
        .map(|(n, spec)| Resolved {
            name: n.unwrap_or_default(),
            cluster,
            spec,
        })
    }

    /// Depth first, each template before the ones it nests, a name kept once per scope (Argo's
    /// `FilterUniqueTemplates`).
    fn collect(
        &self,
        refs: &[(String, bool)],
        depth: usize,
        found: &mut Vec<Resolved<'a>>,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "analysis templates nest deeper than {MAX_DEPTH} levels (a template that includes itself?)"
            ));
        }
        for (name, cluster) in refs {
            let t = self
                .find(name, *cluster)
                .ok_or_else(|| not_found(name, *cluster))?;
            let nested = nested_refs(t.spec);
            if !found
                .iter()
                .any(|f| f.name == t.name && f.cluster == t.cluster)
            {
                found.push(t);
            }
            if !nested.is_empty() {
                self.collect(&nested, depth + 1, found)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(name: &str, spec: serde_json::Value) -> AnalysisTemplate {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn ct(name: &str, spec: serde_json::Value) -> ClusterAnalysisTemplate {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterAnalysisTemplate",
            "metadata": {"name": name}, "spec": spec
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn metric(name: &str) -> serde_json::Value {
        json!({"name": name, "provider": {"web": {"url": "http://127.0.0.1/"}}})
    }

    fn refs(v: serde_json::Value) -> Vec<AnalysisTemplateRef> {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    fn names(f: &Flattened) -> Vec<&str> {
        f.metrics.iter().map(|m| m.name.as_str()).collect()
    }

    #[test]
    fn nested_templates_flatten_depth_first_namespaced_before_cluster() {
        let templates = [
            t(
                "top",
                json!({"metrics": [metric("a")], "args": [{"name": "x"}],
                "templates": [{"templateName": "inner"}, {"templateName": "shared", "clusterScope": true}],
                "dryRun": [{"metricName": "a"}]}),
            ),
            t(
                "inner",
                json!({"metrics": [metric("b")], "args": [{"name": "x", "value": "1"}, {"name": "y"}],
                "templates": [{"templateName": "leaf"}], "measurementRetention": [{"metricName": "b", "limit": 3}]}),
            ),
            t("leaf", json!({"metrics": [metric("c")]})),
        ];
        let cluster = [ct("shared", json!({"metrics": [metric("z")]}))];
        let f = flatten(
            &refs(json!([{"templateName": "top"}])),
            &templates,
            &cluster,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&f), ["a", "b", "c", "z"]);
        // x got its value from `inner`; y stays to be supplied.
        let args: Vec<(&str, Option<&str>)> = f
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_deref()))
            .collect();
        assert_eq!(args, [("x", Some("1")), ("y", None)]);
        assert_eq!(f.dry_run.len(), 1);
        assert_eq!(f.measurement_retention.len(), 1);
    }

    #[test]
    fn a_template_named_twice_counts_once() {
        let templates = [
            t(
                "a",
                json!({"metrics": [metric("m1")], "templates": [{"templateName": "c"}]}),
            ),
            t(
                "b",
                json!({"metrics": [metric("m2")], "templates": [{"templateName": "c"}]}),
            ),
            t("c", json!({"metrics": [metric("m3")]})),
        ];
        let f = flatten(
            &refs(json!([{"templateName": "a"}, {"templateName": "b"}])),
            &templates,
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&f), ["m1", "m3", "m2"]);
    }

    #[test]
    fn argos_errors() {
        let missing = [t(
            "top",
            json!({"metrics": [], "templates": [{"templateName": "gone"}]}),
        )];
        assert_eq!(
            flatten(&refs(json!([{"templateName": "top"}])), &missing, &[]),
            Err("AnalysisTemplate.argoproj.io \"gone\" not found".to_string())
        );
        let dup = [
            t("a", json!({"metrics": [metric("m")]})),
            t("b", json!({"metrics": [metric("m")]})),
        ];
        assert_eq!(
            flatten(
                &refs(json!([{"templateName": "a"}, {"templateName": "b"}])),
                &dup,
                &[]
            ),
            Err("two metrics have the same name 'm'".to_string())
        );
        let args = [
            t(
                "a",
                json!({"metrics": [metric("m1")], "args": [{"name": "x", "value": "1"}]}),
            ),
            t(
                "b",
                json!({"metrics": [metric("m2")], "args": [{"name": "x", "value": "2"}]}),
            ),
        ];
        assert_eq!(
            flatten(
                &refs(json!([{"templateName": "a"}, {"templateName": "b"}])),
                &args,
                &[]
            ),
            Err(
                "Argument `x` specified multiple times with different values: '1', '2'".to_string()
            )
        );
        let dry = [
            t(
                "a",
                json!({"metrics": [metric("m1")], "dryRun": [{"metricName": "m1"}]}),
            ),
            t(
                "b",
                json!({"metrics": [metric("m2")], "dryRun": [{"metricName": "m1"}]}),
            ),
        ];
        assert_eq!(
            flatten(
                &refs(json!([{"templateName": "a"}, {"templateName": "b"}])),
                &dry,
                &[]
            ),
            Err("two Dry-Run metric rules have the same name 'm1'".to_string())
        );
        let cycle = [
            t(
                "a",
                json!({"metrics": [], "templates": [{"templateName": "b"}]}),
            ),
            t(
                "b",
                json!({"metrics": [], "templates": [{"templateName": "a"}]}),
            ),
        ];
        let e = flatten(&refs(json!([{"templateName": "a"}])), &cycle, &[]);
        assert!(e.is_err_and(|e| e.contains("nest deeper")));
    }
}
