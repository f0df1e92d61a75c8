//! Prometheus: an instant query (or a range query), the result handed to the evaluator as a
//! float (scalar) or a list of floats (vector, or every sample of a matrix) so `result[0]` works.

use jiff::Timestamp;
use prometheus_http_query::response::Data;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};

use super::{
    BoxFuture, Provider, ProviderContext, basic_auth, errored, measure_with_timeout, started,
};
use crate::analysis::expr::{MetricValue, eval_value};
use crate::api::analysis::{Measurement, Metric, PrometheusMetric};

pub struct Prometheus;

/// Default query timeout, seconds.
const DEFAULT_TIMEOUT: i64 = 30;

fn client(p: &PrometheusMetric) -> Result<prometheus_http_query::Client, String> {
    let address = p
        .address
        .as_deref()
        .filter(|a| !a.is_empty())
        .ok_or("prometheus address is not set")?;
    let mut headers = HeaderMap::new();
    for h in p.headers.iter().flatten() {
        let name = HeaderName::from_bytes(h.key.as_bytes())
            .map_err(|e| format!("header {}: {e}", h.key))?;
        let value =
            HeaderValue::from_str(&h.value).map_err(|e| format!("header {}: {e}", h.key))?;
        headers.insert(name, value);
    }
    if let Some(b) = p
        .authentication
        .as_ref()
        .and_then(|a| a.basic_auth.as_ref())
    {
        let v = basic_auth(
            b.username.as_deref().unwrap_or(""),
            b.password.as_deref().unwrap_or(""),
        );
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&v).map_err(|e| e.to_string())?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .danger_accept_invalid_certs(p.insecure.unwrap_or(false))
        .build()
        .map_err(|e| e.to_string())?;
    prometheus_http_query::Client::from(http, address).map_err(|e| e.to_string())
}

/// A range-query bound: an expression such as `now() - duration("10m")`, evaluated to seconds.
fn time_bound(expr: &str) -> Result<i64, String> {
    match eval_value(expr, &[]).map_err(|e| format!("rangeQuery {expr:?}: {e}"))? {
        MetricValue::Int(n) => Ok(n),
        MetricValue::Float(f) => Ok(f as i64),
        MetricValue::String(s) => s
            .parse::<Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| format!("rangeQuery {expr:?}: {e}")),
        other => Err(format!(
            "rangeQuery {expr:?}: not a time: {}",
            other.to_go_string()
        )),
    }
}

/// Turn the response into what conditions see.
pub fn to_value(data: &Data) -> MetricValue {
    match data {
        Data::Scalar(s) => MetricValue::Float(s.value()),
        Data::Vector(v) => MetricValue::List(
            v.iter()
                .map(|s| MetricValue::Float(s.sample().value()))
                .collect(),
        ),
        Data::Matrix(m) => MetricValue::List(
            m.iter()
                .flat_map(|r| r.samples().iter().map(|s| MetricValue::Float(s.value())))
                .collect(),
        ),
    }
}

async fn query(p: &PrometheusMetric) -> Result<MetricValue, String> {
    let c = client(p)?;
    let q = p.query.clone().unwrap_or_default();
    let data = if let Some(r) = &p.range_query {
        let start = time_bound(r.start.as_deref().unwrap_or("now()"))?;
        let end = time_bound(r.end.as_deref().unwrap_or("now()"))?;
        let step = r
            .step
            .as_deref()
            .and_then(crate::time::parse_go_duration)
            .map_or(60.0, |d| d.as_secs_f64());
        c.query_range(q, start, end, step)
            .get()
            .await
            .map_err(|e| e.to_string())?
    } else {
        c.query(q).get().await.map_err(|e| e.to_string())?
    };
    Ok(to_value(data.data()))
}

impl Provider for Prometheus {
    fn kind(&self) -> &'static str {
        "prometheus"
    }

    fn run<'a>(
        &'a self,
        _ctx: &'a ProviderContext<'a>,
        metric: &'a Metric,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move {
            let Some(p) = metric.provider.prometheus.as_ref() else {
                return errored(started(Timestamp::now()), "not a prometheus metric");
            };
            let secs = p.timeout.filter(|t| *t > 0).unwrap_or(DEFAULT_TIMEOUT);
            measure_with_timeout(metric, secs, "prometheus query", query(p)).await
        })
    }
}
