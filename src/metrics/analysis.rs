//! What the metrics show of AnalysisRuns and analysis templates: samples taken from the caches at
//! scrape time, with Argo's provider type names.

use kube::ResourceExt;

use crate::api::analysis::{AnalysisRun, AnalysisTemplateSpec, MetricProvider};

/// One AnalysisRun as the metrics see it. The analysis controller supplies these through
/// [`super::Metrics::set_analysis_source`], typically straight from its AnalysisRun reflector store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisRunSample {
    pub namespace: String,
    pub name: String,
    /// `status.phase`; empty while unset (counted as Pending).
    pub phase: String,
    pub metrics: Vec<AnalysisMetricSample>,
}

/// One metric of an AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisMetricSample {
    pub name: String,
    /// Argo's metric type: the provider (`Prometheus`, `Job`, `Web`, …).
    pub provider: String,
    pub dry_run: bool,
    /// Phase of the metric's result; empty when there is no result yet (counted as Pending).
    pub phase: String,
}

/// Argo's metric type of a provider (`analysis_run_metric_type{type}`), in Argo's order of
/// precedence and with its spellings (`skywalking`, `RPCPlugin`).
pub fn metric_provider_type(p: &MetricProvider) -> &'static str {
    if p.prometheus.is_some() {
        "Prometheus"
    } else if p.job.is_some() {
        "Job"
    } else if p.kayenta.is_some() {
        "Kayenta"
    } else if p.web.is_some() {
        "Web"
    } else if p.datadog.is_some() {
        "Datadog"
    } else if p.wavefront.is_some() {
        "Wavefront"
    } else if p.new_relic.is_some() {
        "NewRelic"
    } else if p.cloud_watch.is_some() {
        "CloudWatch"
    } else if p.graphite.is_some() {
        "Graphite"
    } else if p.influxdb.is_some() {
        "Influxdb"
    } else if p.skywalking.is_some() {
        "skywalking"
    } else if p.plugin.is_some() {
        "RPCPlugin"
    } else {
        "Unknown Provider"
    }
}

/// What the metrics show of an AnalysisRun: its phase and, per metric, the provider, whether it is
/// a dry run (`*`, the name, or an anchored regular expression matching it) and its result's phase.
pub fn analysis_run_sample(run: &AnalysisRun) -> AnalysisRunSample {
    let status = run.status.clone().unwrap_or_default();
    let results = status.metric_results.unwrap_or_default();
    let patterns: Vec<&str> = run
        .spec
        .dry_run
        .iter()
        .flatten()
        .map(|d| d.metric_name.as_str())
        .collect();
    let dry = |name: &str| {
        patterns.iter().any(|p| {
            *p == "*"
                || *p == name
                || regex::Regex::new(&format!("^(?:{p})$")).is_ok_and(|r| r.is_match(name))
        })
    };
    AnalysisRunSample {
        namespace: run.namespace().unwrap_or_default(),
        name: run.name_any(),
        phase: status.phase.unwrap_or_default(),
        metrics: run
            .spec
            .metrics
            .iter()
            .map(|m| AnalysisMetricSample {
                name: m.name.clone(),
                provider: metric_provider_type(&m.provider).to_string(),
                dry_run: dry(&m.name),
                phase: results
                    .iter()
                    .find(|r| r.name == m.name)
                    .map(|r| r.phase.clone())
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

/// One AnalysisTemplate or ClusterAnalysisTemplate (namespace empty) as the metrics see it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisTemplateSample {
    pub namespace: String,
    pub name: String,
    /// `(metric name, provider type)` per metric.
    pub metrics: Vec<(String, String)>,
}

/// What `analysis_template_info` and `analysis_template_metric_info` show of a template.
pub fn analysis_template_sample(
    namespace: &str,
    name: &str,
    spec: &AnalysisTemplateSpec,
) -> AnalysisTemplateSample {
    AnalysisTemplateSample {
        namespace: namespace.to_string(),
        name: name.to_string(),
        metrics: spec
            .metrics
            .iter()
            .map(|m| {
                (
                    m.name.clone(),
                    metric_provider_type(&m.provider).to_string(),
                )
            })
            .collect(),
    }
}
