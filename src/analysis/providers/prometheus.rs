//! Prometheus: an instant query (or a range query), the result handed to the evaluator as a
//! float (scalar) or a list of floats (vector, or every sample of a matrix) so `result[0]` works.
//!
//! The HTTP API request is built here and sent with reqwest, one code path for every kind of
//! authentication, so that SigV4 signs exactly the URL that goes on the wire. As in Argo, one
//! scheme sets `Authorization`: SigV4 when the address is Amazon Managed Prometheus'
//! (contains `aps-workspaces`) and `sigv4` is set, else the OAuth2 client-credentials token when
//! `oauth2.tokenUrl` is set, else basic authentication; the metric's `headers` are applied last
//! and win. Errors read as Argo's Prometheus client words them (`client_error: client error:
//! 401`, `bad_data: ...`), with the server's answer appended.

use jiff::Timestamp;
use prometheus_http_query::response::{Data, PromqlResult};
use reqwest::header::{AUTHORIZATION, HOST, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::oauth2::{self, ClientCredentials, OAuth2Error, Token};
use super::sigv4::{self, Sigv4Error};
use super::{
    BoxFuture, Provider, ProviderContext, basic_auth, error_chain, errored, measure_with_timeout,
    started,
};
use crate::analysis::expr::{MetricValue, eval_value};
use crate::api::analysis::{Measurement, Metric, PrometheusMetric, Sigv4Config};

pub struct Prometheus;

/// Default query timeout, seconds.
const DEFAULT_TIMEOUT: i64 = 30;

/// The most of an error body quoted in a message.
const QUOTED_BODY: usize = 256;

/// Why a query produced no value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    #[error("prometheus address is not set")]
    NoAddress,
    #[error("prometheus address {0:?} is not a URL")]
    BadAddress(String),
    #[error("header {key}: {reason}")]
    Header { key: String, reason: String },
    #[error("missing mandatory parameter in metric for basic auth setup: {0}")]
    BasicAuthSetup(&'static str),
    #[error("missing mandatory parameter in metric for OAuth2 setup: {0}")]
    OAuth2Setup(&'static str),
    #[error(transparent)]
    OAuth2(#[from] OAuth2Error),
    #[error(transparent)]
    Sigv4(#[from] Sigv4Error),
    #[error("{0}")]
    RangeQuery(String),
    #[error("building the HTTP client: {0}")]
    Client(String),
    /// The request failed on the way (the message names the URL).
    #[error("{0}")]
    Send(String),
    /// A non-2xx answer that is not a Prometheus API error (a proxy's, an auth layer's).
    #[error("{kind}: {what} {code}{body}")]
    Status {
        kind: &'static str,
        what: &'static str,
        code: u16,
        body: String,
    },
    #[error("bad_response: {0}")]
    BadResponse(String),
    /// The API's own error: `errorType: error`.
    #[error("{error_type}: {message}")]
    Api { error_type: String, message: String },
    #[error("Prometheus metric type not supported: {0}")]
    UnsupportedType(String),
}

/// A range-query bound: an expression such as `now() - duration("10m")`, evaluated to seconds.
fn time_bound(expr: &str) -> Result<i64, QueryError> {
    let bad = |e: String| QueryError::RangeQuery(format!("rangeQuery {expr:?}: {e}"));
    match eval_value(expr, &[]).map_err(|e| bad(e.to_string()))? {
        MetricValue::Int(n) => Ok(n),
        MetricValue::Float(f) => Ok(f as i64),
        MetricValue::String(s) => s
            .parse::<Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| bad(e.to_string())),
        other => Err(bad(format!("not a time: {}", other.to_go_string()))),
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

/// The `Authorization` the query carries.
enum Auth<'a> {
    None,
    Basic(String),
    OAuth2(ClientCredentials<'a>),
    Sigv4 {
        creds: sigv4::Credentials,
        region: String,
    },
}

impl std::fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials themselves.
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic(_) => "Basic",
            Auth::OAuth2(_) => "OAuth2",
            Auth::Sigv4 { .. } => "Sigv4",
        })
    }
}

fn set(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|v| !v.is_empty())
}

/// Whether SigV4 signs the query: as in Argo, only for an Amazon Managed Prometheus address
/// and a non-empty `sigv4` block.
pub fn sigv4_applies(address: &str, s: Option<&Sigv4Config>) -> bool {
    address.contains("aps-workspaces")
        && s.is_some_and(|s| {
            set(&s.region)
                .or(set(&s.profile))
                .or(set(&s.role_arn))
                .is_some()
        })
}

/// Pick the scheme and check its settings, before anything is sent.
fn auth<'a>(
    p: &'a PrometheusMetric,
    address: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Auth<'a>, QueryError> {
    let a = p.authentication.as_ref();
    let s = a.and_then(|a| a.sigv4.as_ref());
    if sigv4_applies(address, s)
        && let Some(s) = s
    {
        if let Some(role) = set(&s.role_arn) {
            return Err(Sigv4Error::RoleArnUnsupported(role.into()).into());
        }
        if let Some(profile) = set(&s.profile) {
            return Err(Sigv4Error::ProfileUnsupported(profile.into()).into());
        }
        let region = sigv4::region(set(&s.region), &env)?;
        let creds = sigv4::Credentials::from_lookup(&env)?;
        return Ok(Auth::Sigv4 { creds, region });
    }
    if let Some(o) = a.and_then(|a| a.oauth2.as_ref())
        && let Some(token_url) = set(&o.token_url)
    {
        let client_id = set(&o.client_id).ok_or(QueryError::OAuth2Setup("clientId"))?;
        let client_secret = set(&o.client_secret).ok_or(QueryError::OAuth2Setup("clientSecret"))?;
        return Ok(Auth::OAuth2(ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes: o.scopes.as_deref().unwrap_or(&[]),
        }));
    }
    if let Some(b) = a.and_then(|a| a.basic_auth.as_ref())
        && (set(&b.username).is_some() || set(&b.password).is_some())
    {
        let user = set(&b.username).ok_or(QueryError::BasicAuthSetup("username"))?;
        let password = set(&b.password).ok_or(QueryError::BasicAuthSetup("password"))?;
        return Ok(Auth::Basic(basic_auth(user, password)));
    }
    Ok(Auth::None)
}

/// Query parameters, decoded.
type Params = Vec<(String, String)>;

/// The API endpoint and its parameters.
fn endpoint(p: &PrometheusMetric) -> Result<(&'static str, Params), QueryError> {
    let q = p.query.clone().unwrap_or_default();
    let Some(r) = &p.range_query else {
        return Ok(("api/v1/query", vec![("query".into(), q)]));
    };
    let start = time_bound(r.start.as_deref().unwrap_or("now()"))?;
    let end = time_bound(r.end.as_deref().unwrap_or("now()"))?;
    let step = r
        .step
        .as_deref()
        .and_then(crate::time::parse_go_duration)
        .map_or(60.0, |d| d.as_secs_f64());
    Ok((
        "api/v1/query_range",
        vec![
            ("query".into(), q),
            ("start".into(), start.to_string()),
            ("end".into(), end.to_string()),
            ("step".into(), step.to_string()),
        ],
    ))
}

/// `address` joined with `path`: the address's own path kept, one slash between.
fn url_for(
    address: &str,
    path: &str,
    params: &[(String, String)],
) -> Result<reqwest::Url, QueryError> {
    let mut url = reqwest::Url::parse(address)
        .ok()
        .filter(|u| u.has_host() && matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| QueryError::BadAddress(address.into()))?;
    let base = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base}/{path}"));
    url.set_query(Some(&sigv4::canonical_query(params)));
    url.set_fragment(None);
    Ok(url)
}

/// The `Host` header for `url`, as HTTP clients write it (no default port).
fn host_header(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    }
}

fn header(key: &str, value: &str) -> Result<(HeaderName, HeaderValue), QueryError> {
    let bad = |e: String| QueryError::Header {
        key: key.into(),
        reason: e,
    };
    Ok((
        HeaderName::from_bytes(key.as_bytes()).map_err(|e| bad(e.to_string()))?,
        HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?,
    ))
}

/// One request's headers: the scheme's, then the metric's own over them.
fn headers(
    p: &PrometheusMetric,
    url: &reqwest::Url,
    auth: &Auth<'_>,
    token: Option<&Token>,
) -> Result<HeaderMap, QueryError> {
    let mut h = HeaderMap::new();
    match auth {
        Auth::None | Auth::OAuth2(_) => {}
        Auth::Basic(v) => {
            let (k, v) = header(AUTHORIZATION.as_str(), v)?;
            h.insert(k, v);
        }
        Auth::Sigv4 { creds, region } => {
            let host = host_header(url);
            let query: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            let req = sigv4::Request {
                method: "GET",
                host: &host,
                path: url.path(),
                query: &query,
                headers: &[],
                body: b"",
            };
            let signed = sigv4::sign(&req, creds, region, sigv4::APS_SERVICE, Timestamp::now());
            let (k, v) = header(HOST.as_str(), &host)?;
            h.insert(k, v);
            for (k, v) in signed.headers() {
                let (k, v) = header(k, v)?;
                h.insert(k, v);
            }
        }
    }
    if let Some(t) = token {
        let (k, v) = header(AUTHORIZATION.as_str(), &t.authorization())?;
        h.insert(k, v);
    }
    for x in p.headers.iter().flatten() {
        let (k, v) = header(&x.key, &x.value)?;
        h.insert(k, v);
    }
    Ok(h)
}

#[derive(Deserialize)]
struct ApiResponse {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

fn quoted(body: &[u8]) -> String {
    let text: String = String::from_utf8_lossy(body)
        .trim()
        .chars()
        .take(QUOTED_BODY)
        .collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

/// Read an answer as Argo's client does: non-2xx other than the API's own error codes (400,
/// 422, 503) is a client or server error; otherwise the JSON envelope decides.
pub fn parse_response(code: u16, body: &[u8]) -> Result<MetricValue, QueryError> {
    if !(200..300).contains(&code) && !matches!(code, 400 | 422 | 503) {
        let (kind, what) = match code / 100 {
            4 => ("client_error", "client error:"),
            5 => ("server_error", "server error:"),
            _ => ("bad_response", "bad response code"),
        };
        return Err(QueryError::Status {
            kind,
            what,
            code,
            body: quoted(body),
        });
    }
    let r: ApiResponse = serde_json::from_slice(body)
        .map_err(|e| QueryError::BadResponse(format!("{e} (HTTP {code}){}", quoted(body))))?;
    if r.status != "success" {
        return Err(QueryError::Api {
            error_type: r.error_type.unwrap_or_else(|| "unknown".into()),
            message: r.error.unwrap_or_default(),
        });
    }
    let data = r.data.unwrap_or_default();
    let kind = data
        .get("resultType")
        .and_then(|t| t.as_str())
        .unwrap_or("")
        .to_string();
    if !matches!(kind.as_str(), "scalar" | "vector" | "matrix") {
        return Err(QueryError::UnsupportedType(kind));
    }
    let result =
        PromqlResult::deserialize(data).map_err(|e| QueryError::BadResponse(e.to_string()))?;
    Ok(to_value(result.data()))
}

/// What one request brought back, with the OAuth2 token it carried (and whether that came
/// from the cache).
struct Answer {
    code: u16,
    body: Vec<u8>,
    token: Option<(Token, bool)>,
}

async fn send(
    http: &reqwest::Client,
    p: &PrometheusMetric,
    url: &reqwest::Url,
    auth: &Auth<'_>,
) -> Result<Answer, QueryError> {
    let token = match auth {
        Auth::OAuth2(c) => Some(oauth2::token(http, c).await?),
        _ => None,
    };
    let h = headers(p, url, auth, token.as_ref().map(|(t, _)| t))?;
    let failed = |e: reqwest::Error| QueryError::Send(error_chain(&e));
    let resp = http
        .get(url.clone())
        .headers(h)
        .send()
        .await
        .map_err(failed)?;
    let code = resp.status().as_u16();
    let body = resp.bytes().await.map_err(failed)?.to_vec();
    if code == 401
        && let (Auth::OAuth2(c), Some((t, _))) = (auth, &token)
    {
        // The server no longer takes this token: the next request fetches a new one.
        oauth2::forget(c, t).await;
    }
    Ok(Answer { code, body, token })
}

async fn query_with(
    p: &PrometheusMetric,
    env: impl Fn(&str) -> Option<String>,
) -> Result<MetricValue, QueryError> {
    let address = set(&p.address).ok_or(QueryError::NoAddress)?;
    let auth = auth(p, address, env)?;
    let (path, params) = endpoint(p)?;
    let url = url_for(address, path, &params)?;
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(p.insecure.unwrap_or(false))
        .build()
        .map_err(|e| QueryError::Client(error_chain(&e)))?;
    let mut a = send(&http, p, &url, &auth).await?;
    if a.code == 401 && matches!(a.token, Some((_, true))) {
        // A cached token refused: once more with a fresh one.
        a = send(&http, p, &url, &auth).await?;
    }
    parse_response(a.code, &a.body)
}

/// Query with credentials from the process environment.
async fn query(p: &PrometheusMetric) -> Result<MetricValue, String> {
    query_with(p, |k| std::env::var(k).ok())
        .await
        .map_err(|e| e.to_string())
}

/// Take one measurement of a Prometheus metric (what [`Provider::run`] does).
pub async fn measure(metric: &Metric) -> Measurement {
    let Some(p) = metric.provider.prometheus.as_ref() else {
        return errored(started(Timestamp::now()), "not a prometheus metric");
    };
    let secs = p.timeout.filter(|t| *t > 0).unwrap_or(DEFAULT_TIMEOUT);
    measure_with_timeout(metric, secs, "prometheus query", query(p)).await
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
        Box::pin(measure(metric))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::api::analysis::{Authentication, BasicAuthConfig, OAuth2Config};

    fn metric(address: &str, auth: Authentication) -> PrometheusMetric {
        PrometheusMetric {
            address: Some(address.into()),
            query: Some("up".into()),
            authentication: Some(auth),
            ..Default::default()
        }
    }

    const AMP: &str = "https://aps-workspaces.eu-west-1.amazonaws.com/workspaces/ws-1";

    fn sigv4(region: &str, profile: &str, role: &str) -> Authentication {
        let s = |v: &str| (!v.is_empty()).then(|| v.to_string());
        Authentication {
            sigv4: Some(Sigv4Config {
                region: s(region),
                profile: s(profile),
                role_arn: s(role),
            }),
            ..Default::default()
        }
    }

    fn keys(k: &str) -> Option<String> {
        match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".into()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".into()),
            _ => None,
        }
    }

    #[test]
    fn sigv4_signs_only_amazon_managed_prometheus_addresses() {
        let s = sigv4("eu-west-1", "", "");
        assert!(sigv4_applies(AMP, s.sigv4.as_ref()));
        assert!(!sigv4_applies("http://prometheus:9090", s.sigv4.as_ref()));
        assert!(!sigv4_applies(AMP, sigv4("", "", "").sigv4.as_ref()));
        assert!(!sigv4_applies(AMP, None));
        let p = metric("http://prometheus:9090", s);
        assert!(matches!(
            auth(&p, "http://prometheus:9090", keys),
            Ok(Auth::None)
        ));
    }

    #[test]
    fn role_arn_and_profile_are_refused_not_ignored() {
        let p = metric(AMP, sigv4("eu-west-1", "", "arn:aws:iam::1:role/amp"));
        let e = auth(&p, AMP, keys).unwrap_err();
        assert!(e.to_string().contains("roleArn"), "{e}");
        assert!(e.to_string().contains("does not assume IAM roles"), "{e}");
        let p = metric(AMP, sigv4("eu-west-1", "default", ""));
        let e = auth(&p, AMP, keys).unwrap_err();
        assert!(e.to_string().contains("sigv4.profile"), "{e}");
        let p = metric(AMP, sigv4("eu-west-1", "", ""));
        assert!(matches!(auth(&p, AMP, keys), Ok(Auth::Sigv4 { .. })));
        let e = auth(&p, AMP, |_| None).unwrap_err();
        assert!(
            e.to_string().starts_with("could not get SigV4 credentials"),
            "{e}"
        );
    }

    #[test]
    fn oauth2_and_basic_auth_need_every_part() {
        let o = |id: &str, secret: &str| Authentication {
            oauth2: Some(OAuth2Config {
                token_url: Some("http://127.0.0.1:1/token".into()),
                client_id: Some(id.into()),
                client_secret: Some(secret.into()),
                scopes: None,
            }),
            basic_auth: Some(BasicAuthConfig {
                username: Some("u".into()),
                password: Some("p".into()),
            }),
            ..Default::default()
        };
        let p = metric("http://p", o("id", ""));
        assert_eq!(
            auth(&p, "http://p", keys).unwrap_err().to_string(),
            "missing mandatory parameter in metric for OAuth2 setup: clientSecret"
        );
        let p = metric("http://p", o("id", "s"));
        assert!(matches!(auth(&p, "http://p", keys), Ok(Auth::OAuth2(_))));
        let p = metric(
            "http://p",
            Authentication {
                basic_auth: Some(BasicAuthConfig {
                    username: Some("u".into()),
                    password: None,
                }),
                ..Default::default()
            },
        );
        assert_eq!(
            auth(&p, "http://p", keys).unwrap_err().to_string(),
            "missing mandatory parameter in metric for basic auth setup: password"
        );
    }

    #[test]
    fn urls_keep_the_address_path_and_carry_the_canonical_query() {
        let params = vec![("query".to_string(), "sum(rate(x[5m])) > 0".to_string())];
        let u = url_for("http://p:9090/prom/", "api/v1/query", &params).unwrap();
        assert_eq!(
            u.as_str(),
            "http://p:9090/prom/api/v1/query?query=sum%28rate%28x%5B5m%5D%29%29%20%3E%200"
        );
        let q: Vec<(String, String)> = u.query_pairs().into_owned().collect();
        assert_eq!(q, params);
        assert_eq!(host_header(&u), "p:9090");
        let u = url_for("https://h/", "api/v1/query", &[]).unwrap();
        assert_eq!(host_header(&u), "h");
        assert!(url_for("prometheus:9090", "x", &[]).is_err());
    }

    #[test]
    fn responses_map_as_argo_maps_them() {
        let ok = br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"0.5"]}]}}"#;
        assert_eq!(
            parse_response(200, ok).unwrap(),
            MetricValue::List(vec![MetricValue::Float(0.5)])
        );
        assert_eq!(
            parse_response(401, b"unauthorized\n")
                .unwrap_err()
                .to_string(),
            "client_error: client error: 401: unauthorized"
        );
        assert_eq!(
            parse_response(502, b"").unwrap_err().to_string(),
            "server_error: server error: 502"
        );
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert_eq!(
            parse_response(400, bad).unwrap_err().to_string(),
            "bad_data: parse error"
        );
        let s = br#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#;
        assert!(matches!(
            parse_response(200, s),
            Err(QueryError::UnsupportedType(_))
        ));
        assert!(matches!(
            parse_response(200, b"<html>"),
            Err(QueryError::BadResponse(_))
        ));
    }
}
