//! Job: a batch/v1 Job from the metric's template, labelled with the run's uid and owned by the
//! run. Complete → Successful, Failed → Failed; terminating deletes the Job (Inconclusive).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job as K8sJob;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Api, ResourceExt};

use super::{BoxFuture, Provider, ProviderContext, WriteFailure, errored, started};
use crate::api::analysis::{AnalysisRun, Measurement, Metric};
use crate::api::consts::*;
use crate::time::{add_seconds, k8s_time};

pub struct Job;

/// Label carrying the AnalysisRun uid on Jobs and their pods (the Job watch filters on it).
pub const RUN_UID_LABEL: &str = "analysisrun.argoproj.io/uid";
const JOB_NAME_KEY: &str = "job-name";
const JOB_NAMESPACE_KEY: &str = "job-namespace";
const DNS_LIMIT: usize = 63;

fn job_name(run: &AnalysisRun, metric: &str, n: usize) -> String {
    let uid = run.uid().unwrap_or_default();
    let name = format!("{uid}.{metric}.{n}");
    if name.len() <= DNS_LIMIT {
        return name;
    }
    let over = name.len() - DNS_LIMIT;
    let keep = metric.len().saturating_sub(over);
    format!("{uid}.{}.{n}", &metric[..keep])
}

/// The Job for the `n`th measurement of `metric`.
pub fn build_job(run: &AnalysisRun, metric: &Metric, n: usize) -> Option<K8sJob> {
    let jm = metric.provider.job.as_ref()?;
    let uid = run.uid().unwrap_or_default();
    let mut labels: BTreeMap<String, String> = jm
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(RUN_UID_LABEL.into(), uid.clone());
    let mut annotations: BTreeMap<String, String> = jm
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default();
    annotations.insert("analysisrun.argoproj.io/name".into(), run.name_any());
    annotations.insert(
        "analysisrun.argoproj.io/namespace".into(),
        run.namespace().unwrap_or_default(),
    );
    annotations.insert(
        "analysisrun.argoproj.io/metric-name".into(),
        metric.name.clone(),
    );
    let mut spec = jm.spec.clone();
    spec.template
        .metadata
        .get_or_insert_with(ObjectMeta::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(RUN_UID_LABEL.into(), uid.clone());
    Some(K8sJob {
        metadata: ObjectMeta {
            name: Some(job_name(run, &metric.name, n)),
            namespace: run.namespace(),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: API_VERSION.into(),
                kind: "AnalysisRun".into(),
                name: run.name_any(),
                uid,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    })
}

fn measurement_count(run: &AnalysisRun, metric: &str) -> usize {
    run.status
        .as_ref()
        .and_then(|s| s.metric_results.as_ref())
        .and_then(|rs| rs.iter().find(|r| r.name == metric))
        .and_then(|r| r.measurements.as_ref())
        .map_or(0, Vec::len)
}

fn job_ref(m: &Measurement, run: &AnalysisRun) -> Option<(String, String)> {
    let md = m.metadata.as_ref()?;
    let name = md.get(JOB_NAME_KEY)?.clone();
    let ns = md
        .get(JOB_NAMESPACE_KEY)
        .cloned()
        .or_else(|| run.namespace())?;
    Some((ns, name))
}

impl Provider for Job {
    fn kind(&self) -> &'static str {
        "job"
    }

    fn run<'a>(
        &'a self,
        ctx: &'a ProviderContext<'a>,
        metric: &'a Metric,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move {
            let now = Timestamp::now();
            let mut m = started(now);
            let Some(job) = build_job(
                ctx.run,
                metric,
                measurement_count(ctx.run, &metric.name) + 1,
            ) else {
                return errored(m, "not a job metric");
            };
            let ns = job.namespace().unwrap_or_default();
            let name = job.name_any();
            match ctx.writer.create_job(&ns, &job).await {
                Ok(()) => {}
                Err(WriteFailure::Exists) => {
                    // Created by an earlier attempt of ours (same uid in the name); keep it.
                }
                Err(WriteFailure::Other(e)) => {
                    return errored(m, format!("job create {name} failed: {e}"));
                }
            }
            m.metadata = Some(BTreeMap::from([
                (JOB_NAME_KEY.into(), name),
                (JOB_NAMESPACE_KEY.into(), ns),
            ]));
            m.resume_at = Some(k8s_time(add_seconds(now, 1)));
            m
        })
    }

    fn resume<'a>(
        &'a self,
        ctx: &'a ProviderContext<'a>,
        _metric: &'a Metric,
        mut m: Measurement,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move {
            let Some((ns, name)) = job_ref(&m, ctx.run) else {
                return errored(m, "measurement has no job reference");
            };
            let api: Api<K8sJob> = Api::namespaced(ctx.client.clone(), &ns);
            let job = match api.get(&name).await {
                Ok(j) => j,
                Err(e) => return errored(m, format!("job {name}: {e}")),
            };
            let now = Timestamp::now();
            for c in job
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
            {
                if c.status != "True" {
                    continue;
                }
                match c.type_.as_str() {
                    "Complete" => m.phase = ANALYSIS_PHASE_SUCCESSFUL.into(),
                    "Failed" => m.phase = ANALYSIS_PHASE_FAILED.into(),
                    _ => {}
                }
            }
            if crate::analysis::run::is_completed(&m.phase) {
                m.finished_at = Some(k8s_time(now));
                m.resume_at = None;
                return m;
            }
            // Not done: look again after a delay growing with the job's age (the Job watch
            // usually wakes us first).
            let age = m
                .started_at
                .as_ref()
                .map_or(0, |s| (now.as_second() - s.0.as_second()).max(0));
            let delay = ((2.0 * age as f64).sqrt() as i64).clamp(1, 30);
            m.resume_at = Some(k8s_time(add_seconds(now, delay)));
            m
        })
    }

    fn terminate<'a>(
        &'a self,
        ctx: &'a ProviderContext<'a>,
        _metric: &'a Metric,
        mut m: Measurement,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move {
            if let Some((ns, name)) = job_ref(&m, ctx.run)
                && let Err(e) = ctx.writer.delete_job(&ns, &name).await
            {
                let e = match e {
                    WriteFailure::Exists => "conflict".to_string(),
                    WriteFailure::Other(e) => e,
                };
                return errored(m, format!("job delete {name}: {e}"));
            }
            m.phase = ANALYSIS_PHASE_INCONCLUSIVE.into();
            m.finished_at = Some(k8s_time(Timestamp::now()));
            m.resume_at = None;
            m
        })
    }
}
