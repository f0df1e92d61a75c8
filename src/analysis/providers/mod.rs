//! Metric providers behind one trait. A provider turns a metric into a `Measurement`; the
//! decision (Successful / Failed / Inconclusive / Error) comes from the shared evaluator, so every
//! provider judges results the same way.

pub mod job;
pub mod oauth2;
pub mod prometheus;
pub mod sigv4;
pub mod web;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;

use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job as K8sJob;
use kube::Client;

use crate::analysis::expr::{MetricValue, Outcome, evaluate_result};
use crate::api::analysis::{AnalysisRun, Measurement, Metric};
use crate::api::consts::*;
use crate::time::k8s_time;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a provider may use besides the metric: the cluster (job provider) and the run. Reads go
/// through `client`; every write through `writer`, which the controller's one writer implements
/// (rate limit, leader fence, field manager), so this layer never reaches up into the shell.
pub struct ProviderContext<'a> {
    pub client: &'a Client,
    pub writer: &'a dyn JobWriter,
    pub run: &'a AnalysisRun,
}

/// Why a provider's write was not made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteFailure {
    /// The object exists already (HTTP 409).
    Exists,
    /// Anything else, in the API's own words.
    Other(String),
}

/// The writes a provider makes: the Job provider's Jobs.
pub trait JobWriter: Send + Sync {
    /// Create `job` in `ns`.
    fn create_job<'a>(
        &'a self,
        ns: &'a str,
        job: &'a K8sJob,
    ) -> BoxFuture<'a, Result<(), WriteFailure>>;
    /// Delete Job `name` in `ns` (background propagation); one already gone counts as deleted.
    fn delete_job<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<(), WriteFailure>>;
}

/// One metric source.
pub trait Provider: Send + Sync {
    /// The provider key as it appears in the metric (`prometheus`, `web`, `job`).
    fn kind(&self) -> &'static str;
    /// Start a measurement; synchronous providers return a completed one.
    fn run<'a>(
        &'a self,
        ctx: &'a ProviderContext<'a>,
        metric: &'a Metric,
    ) -> BoxFuture<'a, Measurement>;
    /// Look again at an in-flight measurement.
    fn resume<'a>(
        &'a self,
        _ctx: &'a ProviderContext<'a>,
        _metric: &'a Metric,
        m: Measurement,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move { m })
    }
    /// Stop an in-flight measurement because the run is terminating.
    fn terminate<'a>(
        &'a self,
        _ctx: &'a ProviderContext<'a>,
        _metric: &'a Metric,
        m: Measurement,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move { m })
    }
    /// Metadata recorded on the metric result when it is first created.
    fn metadata(&self, _metric: &Metric) -> Option<BTreeMap<String, String>> {
        None
    }
}

/// The provider a metric names, or an error message when it names none we run.
pub fn provider_for(metric: &Metric) -> Result<Box<dyn Provider>, String> {
    let p = &metric.provider;
    if p.prometheus.is_some() {
        return Ok(Box::new(prometheus::Prometheus));
    }
    if p.web.is_some() {
        return Ok(Box::new(web::Web));
    }
    if p.job.is_some() {
        return Ok(Box::new(job::Job));
    }
    Err(format!(
        "metric '{}': no supported provider configured (sluice runs prometheus, web and job)",
        metric.name
    ))
}

/// A fresh measurement started now.
pub fn started(now: Timestamp) -> Measurement {
    Measurement {
        phase: ANALYSIS_PHASE_RUNNING.into(),
        started_at: Some(k8s_time(now)),
        ..Default::default()
    }
}

/// Mark a measurement as an Error with `message`.
pub fn errored(mut m: Measurement, message: impl Into<String>) -> Measurement {
    m.phase = ANALYSIS_PHASE_ERROR.into();
    m.message = Some(message.into());
    m.finished_at = Some(k8s_time(Timestamp::now()));
    m
}

/// Judge a provider result with the metric's conditions and complete the measurement.
pub fn judged(mut m: Measurement, metric: &Metric, value: &MetricValue) -> Measurement {
    m.value = Some(value.to_go_string());
    m.finished_at = Some(k8s_time(Timestamp::now()));
    match evaluate_result(
        value,
        metric.success_condition.as_deref(),
        metric.failure_condition.as_deref(),
    ) {
        Ok(Outcome::Successful) => m.phase = ANALYSIS_PHASE_SUCCESSFUL.into(),
        Ok(Outcome::Failed) => m.phase = ANALYSIS_PHASE_FAILED.into(),
        Ok(Outcome::Inconclusive) => m.phase = ANALYSIS_PHASE_INCONCLUSIVE.into(),
        Err(e) => {
            m.phase = ANALYSIS_PHASE_ERROR.into();
            m.message = Some(e.to_string());
        }
    }
    m
}

/// Run a provider query under a timeout and judge its result: the shared tail of synchronous
/// providers (prometheus, web).
pub async fn measure_with_timeout(
    metric: &Metric,
    secs: i64,
    what: &str,
    query: impl Future<Output = Result<MetricValue, String>>,
) -> Measurement {
    let m = started(Timestamp::now());
    match tokio::time::timeout(std::time::Duration::from_secs(secs.max(1) as u64), query).await {
        Ok(Ok(value)) => judged(m, metric, &value),
        Ok(Err(e)) => errored(m, e),
        Err(_) => errored(m, format!("{what} timed out after {secs}s")),
    }
}

/// `Basic` authorization header value.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// An error with its causes, `outer: inner: ...` (reqwest's own message omits them).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.ends_with(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}
