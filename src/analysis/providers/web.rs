//! Web: an HTTP request; a JSON body is narrowed with a Kubernetes-style JSONPath (`{$.data.ok}`),
//! any other body is the raw string. Non-2xx is an Error.

use jiff::Timestamp;
use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};
use serde_json::Value;

use super::{
    BoxFuture, Provider, ProviderContext, basic_auth, errored, measure_with_timeout, started,
};
use crate::analysis::expr::MetricValue;
use crate::api::analysis::{Measurement, Metric, WebMetric};

pub struct Web;

const DEFAULT_TIMEOUT: i64 = 10;

/// Evaluate the supported JSONPath subset: `{$}`, `{$.a.b}`, `{$.a[0]}`, `{$['a']}`, `$.a`.
pub fn json_path<'v>(v: &'v Value, path: &str) -> Result<&'v Value, String> {
    let p = path.trim();
    let p = p
        .strip_prefix('{')
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or(p)
        .trim();
    let mut rest = p
        .strip_prefix('$')
        .ok_or_else(|| format!("unsupported jsonPath {path:?}"))?;
    let mut cur = v;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            let key = &r[..end];
            cur = cur
                .get(key)
                .ok_or_else(|| format!("{path}: {key} is not found"))?;
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r
                .find(']')
                .ok_or_else(|| format!("unsupported jsonPath {path:?}"))?;
            let inner = r[..end].trim();
            cur = if let Ok(i) = inner.parse::<usize>() {
                cur.get(i)
                    .ok_or_else(|| format!("{path}: index {i} out of range"))?
            } else {
                let key = inner.trim_matches(|c| c == '\'' || c == '"');
                cur.get(key)
                    .ok_or_else(|| format!("{path}: {key} is not found"))?
            };
            rest = &r[end + 1..];
        } else {
            return Err(format!("unsupported jsonPath {path:?}"));
        }
    }
    Ok(cur)
}

async fn fetch(w: &WebMetric) -> Result<MetricValue, String> {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(w.insecure.unwrap_or(false))
        .build()
        .map_err(|e| e.to_string())?;
    let method = w.method.as_deref().unwrap_or("GET").to_uppercase();
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client.request(method, &w.url);
    for h in w.headers.iter().flatten() {
        let name = HeaderName::from_bytes(h.key.as_bytes())
            .map_err(|e| format!("header {}: {e}", h.key))?;
        let value =
            HeaderValue::from_str(&h.value).map_err(|e| format!("header {}: {e}", h.key))?;
        req = req.header(name, value);
    }
    if let Some(b) = w
        .authentication
        .as_ref()
        .and_then(|a| a.basic_auth.as_ref())
    {
        req = req.header(
            AUTHORIZATION,
            basic_auth(
                b.username.as_deref().unwrap_or(""),
                b.password.as_deref().unwrap_or(""),
            ),
        );
    }
    if let Some(j) = &w.json_body {
        req = req
            .header("Content-Type", "application/json")
            .body(j.to_string());
    } else if let Some(b) = &w.body {
        req = req.body(b.clone());
    }
    let resp = req.send().await.map_err(|e| e.to_string())?;
    let code = resp.status();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if !code.is_success() {
        return Err(format!("received non 2xx response code: {}", code.as_u16()));
    }
    match serde_json::from_str::<Value>(&body) {
        Ok(json) => {
            let path = w.json_path.as_deref().unwrap_or("{$}");
            Ok(MetricValue::from_json(json_path(&json, path)?))
        }
        Err(_) => Ok(MetricValue::String(body)),
    }
}

impl Provider for Web {
    fn kind(&self) -> &'static str {
        "web"
    }

    fn run<'a>(
        &'a self,
        _ctx: &'a ProviderContext<'a>,
        metric: &'a Metric,
    ) -> BoxFuture<'a, Measurement> {
        Box::pin(async move {
            let Some(w) = metric.provider.web.as_ref() else {
                return errored(started(Timestamp::now()), "not a web metric");
            };
            let secs = w
                .timeout_seconds
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_TIMEOUT);
            measure_with_timeout(metric, secs, "web request", fetch(w)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths() {
        let v = json!({"data": {"ok": true, "rates": [0.5, 0.9]}, "a b": 1});
        assert_eq!(json_path(&v, "{$}"), Ok(&v));
        assert_eq!(json_path(&v, "{$.data.ok}"), Ok(&json!(true)));
        assert_eq!(json_path(&v, "{$.data.rates[1]}"), Ok(&json!(0.9)));
        assert_eq!(json_path(&v, "$['a b']"), Ok(&json!(1)));
        assert!(json_path(&v, "{$.nope}").is_err());
        assert!(json_path(&v, "data").is_err());
    }
}
