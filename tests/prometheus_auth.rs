//! Prometheus authentication with real parts, all on 127.0.0.1: an OAuth2 token endpoint, and
//! a reverse proxy that checks the credentials (a bearer token, or a SigV4 signature it
//! recomputes from the request it received) in front of a real `prometheus` process (Debian's
//! package, which `e2e/setup.sh` installs) or, for the refusals, a canned stand-in.
//!
//! The SigV4 tests that need credentials run themselves again in a child process with the AWS
//! variables set: the provider reads them from the process environment, and a test may not
//! change its own (`std::env::set_var` is unsafe, and unsafe code is forbidden here).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::{digest, hmac};
use base64::Engine as _;
use jiff::Timestamp;
use sluice::analysis::providers::prometheus::measure;
use sluice::api::analysis::{Measurement, Metric};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 server: one request per connection, answered with `Connection: close`.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Req {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
    fn query(&self) -> &str {
        self.target.split_once('?').map_or("", |(_, q)| q)
    }
}

struct Resp {
    status: u16,
    content_type: String,
    body: Vec<u8>,
}

impl Resp {
    fn json(status: u16, body: impl Into<String>) -> Resp {
        Resp {
            status,
            content_type: "application/json".into(),
            body: body.into().into_bytes(),
        }
    }
    fn text(status: u16, body: &str) -> Resp {
        Resp {
            status,
            content_type: "text/plain; charset=utf-8".into(),
            body: body.as_bytes().to_vec(),
        }
    }
}

async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        target,
        headers,
        body,
    })
}

/// Serve `handler` on a fresh loopback port.
async fn serve<F, Fut>(handler: F) -> SocketAddr
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Resp> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handler = Arc::new(handler);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let handler = handler.clone();
            tokio::spawn(async move {
                let Some(req) = read_request(&mut s).await else {
                    return;
                };
                let r = handler(req).await;
                let head = format!(
                    "HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    r.status,
                    r.content_type,
                    r.body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&r.body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// A real Prometheus on loopback, and what stands in for one.
// ---------------------------------------------------------------------------------------------

/// `prometheus` on a loopback port with a temporary data directory; killed and removed on drop.
struct RealPrometheus {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl RealPrometheus {
    async fn start() -> RealPrometheus {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sluice-prometheus-auth-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("prometheus.yml"),
            "global:\n  scrape_interval: 15s\n",
        )
        .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let bin = ["/usr/bin/prometheus", "prometheus"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| PathBuf::from("prometheus"));
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new(&bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {} failed: {e} (the tests need Debian's prometheus package: \
                     e2e/setup.sh, or apt-get install prometheus)",
                    bin.display()
                )
            });
        let p = RealPrometheus {
            child,
            dir,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/-/ready", p.url)).send().await
                && r.status().is_success()
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "prometheus did not become ready: {}",
            std::fs::read_to_string(p.dir.join("prometheus.log")).unwrap_or_default()
        );
    }
}

impl Drop for RealPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where the proxy sends what it lets through.
#[derive(Clone)]
enum Upstream {
    /// A real Prometheus at this URL; `strip` is taken off the front of the path.
    Real { url: String, strip: &'static str },
    /// A canned one-sample vector answer.
    Canned,
}

impl Upstream {
    async fn forward(&self, req: &Req) -> Resp {
        match self {
            Upstream::Canned => Resp::json(
                200,
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"0.99"]}]}}"#,
            ),
            Upstream::Real { url, strip } => {
                let path = req.path().strip_prefix(strip).unwrap_or(req.path());
                let r = reqwest::Client::new()
                    .get(format!("{url}{path}?{}", req.query()))
                    .send()
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let content_type = r
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("application/json")
                    .to_string();
                Resp {
                    status,
                    content_type,
                    body: r.bytes().await.unwrap().to_vec(),
                }
            }
        }
    }
}

fn metric(yaml: &str) -> Metric {
    serde_saphyr::from_str(yaml).unwrap()
}

fn assert_phase(m: &Measurement, phase: &str) {
    assert_eq!(m.phase, phase, "measurement: {m:?}");
}

// ---------------------------------------------------------------------------------------------
// OAuth2
// ---------------------------------------------------------------------------------------------

const CLIENT_ID: &str = "sluice rollouts";
const CLIENT_SECRET: &str = "s3cret:with/odd+chars";
const SCOPES: &str = "metrics.read metrics.write";

/// The token endpoint's state: every request seen, the tokens issued and still honoured.
#[derive(Default)]
struct Tokens {
    requests: AtomicUsize,
    issued: AtomicUsize,
    valid: Mutex<HashSet<String>>,
    /// Which way the credentials came, per request: `basic` or `form`.
    styles: Mutex<Vec<&'static str>>,
}

/// A client-credentials token endpoint at `/token`: checks the grant type, the client id and
/// secret (basic authentication with form-encoded parts, as RFC 6749 §2.3.1 and x/oauth2, or
/// form parameters when `allow_basic` is false) and the scopes.
async fn token_endpoint(state: Arc<Tokens>, allow_basic: bool, expires_in: u64) -> SocketAddr {
    serve(move |req: Req| {
        let state = state.clone();
        async move {
            state.requests.fetch_add(1, Ordering::SeqCst);
            let form: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            if req.method != "POST"
                || req.path() != "/token"
                || req.header("content-type") != Some("application/x-www-form-urlencoded")
            {
                return Resp::json(400, r#"{"error":"invalid_request"}"#);
            }
            if get("grant_type").as_deref() != Some("client_credentials") {
                return Resp::json(400, r#"{"error":"unsupported_grant_type"}"#);
            }
            let basic = req.header("authorization").and_then(|v| v.strip_prefix("Basic "));
            let (id, secret) = match basic {
                Some(b) => {
                    state.styles.lock().unwrap().push("basic");
                    if !allow_basic {
                        return Resp::json(401, r#"{"error":"invalid_client","error_description":"send credentials in the form"}"#);
                    }
                    let raw = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
                    let raw = String::from_utf8(raw).unwrap();
                    let (id, secret) = raw.split_once(':').unwrap();
                    let dec = |s: &str| {
                        form_urlencoded::parse(format!("x={s}").as_bytes())
                            .next()
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default()
                    };
                    (dec(id), dec(secret))
                }
                None => {
                    state.styles.lock().unwrap().push("form");
                    (get("client_id").unwrap_or_default(), get("client_secret").unwrap_or_default())
                }
            };
            if id != CLIENT_ID || secret != CLIENT_SECRET {
                return Resp::json(
                    401,
                    r#"{"error":"invalid_client","error_description":"client authentication failed"}"#,
                );
            }
            if get("scope").as_deref() != Some(SCOPES) {
                return Resp::json(400, r#"{"error":"invalid_scope"}"#);
            }
            let n = state.issued.fetch_add(1, Ordering::SeqCst) + 1;
            let token = format!("token-{n}");
            state.valid.lock().unwrap().insert(token.clone());
            Resp::json(
                200,
                format!(r#"{{"access_token":"{token}","token_type":"bearer","expires_in":{expires_in}}}"#),
            )
        }
    })
    .await
}

/// What the bearer-checking proxy saw.
#[derive(Default)]
struct Gate {
    passed: AtomicUsize,
    refused: AtomicUsize,
}

/// A reverse proxy that answers `/api/v1/query*` only for `Authorization: Bearer <a token the
/// endpoint issued and still honours>`, else 401.
async fn bearer_proxy(tokens: Arc<Tokens>, gate: Arc<Gate>, upstream: Upstream) -> SocketAddr {
    serve(move |req: Req| {
        let (tokens, gate, upstream) = (tokens.clone(), gate.clone(), upstream.clone());
        async move {
            let ok = req
                .header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|t| tokens.valid.lock().unwrap().contains(t));
            if !ok || !req.path().starts_with("/api/v1/query") {
                gate.refused.fetch_add(1, Ordering::SeqCst);
                return Resp::text(401, "unauthorized");
            }
            gate.passed.fetch_add(1, Ordering::SeqCst);
            upstream.forward(&req).await
        }
    })
    .await
}

/// The query for a real Prometheus: an answer the canned stand-in (0.99) cannot give.
const REAL_QUERY: &str = "vector(0.97) > 0.5";
const CANNED_QUERY: &str = "vector(0.99) > 0.5";

fn oauth2_metric(prometheus: SocketAddr, token: SocketAddr, secret: &str, query: &str) -> Metric {
    metric(&format!(
        r#"
name: success-rate
successCondition: result[0] >= 0.9
provider:
  prometheus:
    address: http://{prometheus}
    timeout: 20
    query: {query}
    authentication:
      oauth2:
        tokenUrl: http://{token}/token
        clientId: {CLIENT_ID}
        clientSecret: "{secret}"
        scopes: [metrics.read, metrics.write]
"#
    ))
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_for_two_queries_to_a_real_prometheus() {
    let prom = RealPrometheus::start().await;
    let tokens = Arc::new(Tokens::default());
    let gate = Arc::new(Gate::default());
    let token = token_endpoint(tokens.clone(), true, 3600).await;
    let proxy = bearer_proxy(
        tokens.clone(),
        gate.clone(),
        Upstream::Real {
            url: prom.url.clone(),
            strip: "",
        },
    )
    .await;
    let m = oauth2_metric(proxy, token, CLIENT_SECRET, REAL_QUERY);
    for _ in 0..2 {
        let got = measure(&m).await;
        assert_phase(&got, "Successful");
        assert_eq!(got.value.as_deref(), Some("[0.97]"));
    }
    assert_eq!(
        tokens.requests.load(Ordering::SeqCst),
        1,
        "one token fetch, then cached"
    );
    assert_eq!(*tokens.styles.lock().unwrap(), ["basic"]);
    assert_eq!(gate.passed.load(Ordering::SeqCst), 2);
    assert_eq!(gate.refused.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oauth2_wrong_secret_is_an_error_measurement() {
    let tokens = Arc::new(Tokens::default());
    let gate = Arc::new(Gate::default());
    let token = token_endpoint(tokens.clone(), true, 3600).await;
    let proxy = bearer_proxy(tokens.clone(), gate.clone(), Upstream::Canned).await;
    let got = measure(&oauth2_metric(proxy, token, "not-the-secret", CANNED_QUERY)).await;
    assert_phase(&got, "Error");
    let msg = got.message.unwrap_or_default();
    assert!(
        msg.starts_with(&format!(
            "oauth2: cannot fetch token from http://{token}/token: 401"
        )),
        "{msg}"
    );
    assert!(
        msg.contains(r#""invalid_client" "client authentication failed""#),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-secret"),
        "the secret is not echoed: {msg}"
    );
    // As x/oauth2 probes: basic authentication, then the credentials in the form.
    assert_eq!(*tokens.styles.lock().unwrap(), ["basic", "form"]);
    assert_eq!(
        gate.passed.load(Ordering::SeqCst) + gate.refused.load(Ordering::SeqCst),
        0
    );
}

#[tokio::test]
async fn oauth2_falls_back_to_form_credentials_and_refetches_expiring_tokens() {
    let tokens = Arc::new(Tokens::default());
    let gate = Arc::new(Gate::default());
    // Five seconds is inside the ten-second expiry margin: every measurement fetches anew.
    let token = token_endpoint(tokens.clone(), false, 5).await;
    let proxy = bearer_proxy(tokens.clone(), gate.clone(), Upstream::Canned).await;
    let m = oauth2_metric(proxy, token, CLIENT_SECRET, CANNED_QUERY);
    for _ in 0..2 {
        assert_phase(&measure(&m).await, "Successful");
    }
    // Basic refused once, then the form style is remembered for this token URL.
    assert_eq!(*tokens.styles.lock().unwrap(), ["basic", "form", "form"]);
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_a_cached_token_the_server_refuses_is_replaced() {
    let tokens = Arc::new(Tokens::default());
    let gate = Arc::new(Gate::default());
    let token = token_endpoint(tokens.clone(), true, 3600).await;
    let proxy = bearer_proxy(tokens.clone(), gate.clone(), Upstream::Canned).await;
    let m = oauth2_metric(proxy, token, CLIENT_SECRET, CANNED_QUERY);
    assert_phase(&measure(&m).await, "Successful");
    tokens.valid.lock().unwrap().clear(); // revoked before it expired
    let got = measure(&m).await;
    assert_phase(&got, "Successful");
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 2);
    assert_eq!(gate.refused.load(Ordering::SeqCst), 1);
    assert_eq!(gate.passed.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn oauth2_without_a_client_secret_is_an_error_measurement() {
    let tokens = Arc::new(Tokens::default());
    let token = token_endpoint(tokens.clone(), true, 3600).await;
    let got = measure(&oauth2_metric(token, token, "", CANNED_QUERY)).await;
    assert_phase(&got, "Error");
    assert_eq!(
        got.message.as_deref(),
        Some("missing mandatory parameter in metric for OAuth2 setup: clientSecret")
    );
    assert_eq!(tokens.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn oauth2_unreachable_token_endpoint_is_an_error_measurement() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let got = measure(&oauth2_metric(dead, dead, CLIENT_SECRET, CANNED_QUERY)).await;
    assert_phase(&got, "Error");
    let msg = got.message.unwrap_or_default();
    assert!(
        msg.starts_with(&format!(
            "oauth2: cannot fetch token: error sending request for url (http://{dead}/token): "
        )),
        "{msg}"
    );
    assert!(
        msg.to_lowercase().contains("connect"),
        "the cause is kept: {msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// SigV4
// ---------------------------------------------------------------------------------------------

const ACCESS_KEY: &str = "AKIDEXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SESSION_TOKEN: &str = "session-token/with+odd=chars";
const REGION: &str = "eu-west-1";
/// The workspace path an Amazon Managed Prometheus address carries; with it in the address the
/// provider signs, as Argo does for addresses containing `aps-workspaces`.
const WORKSPACE: &str = "/aps-workspaces/ws-0123";

const AWS_VARS: [&str; 8] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
];

/// In the parent: run `test` again in a child process whose only AWS variables are `env`, and
/// check it passed; returns false. In that child: returns true, and the test does its work.
fn in_child_with_env(test: &str, env: &[(&str, &str)]) -> bool {
    const CHILD: &str = "SLUICE_PROMETHEUS_AUTH_CHILD";
    if std::env::var(CHILD).as_deref() == Ok(test) {
        return true;
    }
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, test);
    for v in AWS_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} in a child process:\n{stdout}\n{stderr}"
    );
    false
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn aws_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn mac(key: &[u8], data: &str) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data.as_bytes())
        .as_ref()
        .to_vec()
}

/// Check a request's SigV4 signature the way AWS does: rebuild the canonical request from the
/// method, path, query, signed headers and body received, derive the signing key from the
/// secret, and compare. Independent of the signer under test.
fn verify_sigv4(req: &Req, secret: &str) -> Result<(), String> {
    let auth = req
        .header("authorization")
        .ok_or("no Authorization header")?;
    let fields = auth
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or("not AWS4-HMAC-SHA256")?;
    let field = |name: &str| {
        fields
            .split(", ")
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .ok_or(format!("no {name}"))
    };
    let credential = field("Credential")?;
    let signed_headers = field("SignedHeaders")?;
    let signature = field("Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key, day, region, service, "aws4_request"] = scope[..] else {
        return Err(format!("bad credential scope {credential}"));
    };
    if key != ACCESS_KEY || region != REGION || service != "aps" {
        return Err(format!("unexpected credential scope {credential}"));
    }
    let date = req.header("x-amz-date").ok_or("no x-amz-date")?;
    if !date.starts_with(day) {
        return Err("x-amz-date is not the credential's day".into());
    }
    let signed_at: Timestamp = jiff::fmt::strtime::parse("%Y%m%dT%H%M%SZ", date)
        .and_then(|t| t.to_datetime())
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp())
        .map_err(|e| e.to_string())?;
    if (Timestamp::now().as_second() - signed_at.as_second()).abs() > 300 {
        return Err("signed more than five minutes away from now".into());
    }
    let names: Vec<&str> = signed_headers.split(';').collect();
    for must in ["host", "x-amz-date", "x-amz-security-token"] {
        if !names.contains(&must) {
            return Err(format!("{must} is not signed"));
        }
    }
    let canonical_uri = req
        .path()
        .split('/')
        .map(aws_encode)
        .collect::<Vec<_>>()
        .join("/");
    let mut query: Vec<(String, String)> = form_urlencoded::parse(req.query().as_bytes())
        .map(|(k, v)| (aws_encode(&k), aws_encode(&v)))
        .collect();
    query.sort();
    let canonical_query = query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut canonical_headers = String::new();
    for n in &names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(format!("signed header {n} is missing"));
        }
        canonical_headers.push_str(&format!("{n}:{}\n", values.join(",")));
    }
    let body_hash = hex(digest::digest(&digest::SHA256, &req.body).as_ref());
    let creq = format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{body_hash}",
        req.method
    );
    let creq_hash = hex(digest::digest(&digest::SHA256, creq.as_bytes()).as_ref());
    let sts =
        format!("AWS4-HMAC-SHA256\n{date}\n{day}/{region}/{service}/aws4_request\n{creq_hash}");
    let k = mac(format!("AWS4{secret}").as_bytes(), day);
    let k = mac(&k, region);
    let k = mac(&k, service);
    let k = mac(&k, "aws4_request");
    if hex(&mac(&k, &sts)) != signature {
        return Err("signature mismatch".into());
    }
    if req.header("x-amz-security-token") != Some(SESSION_TOKEN) {
        return Err("wrong session token".into());
    }
    Ok(())
}

/// What the SigV4-checking proxy saw.
#[derive(Default)]
struct Sigv4Gate {
    passed: AtomicUsize,
    refused: Mutex<Vec<String>>,
}

/// A reverse proxy for `/aps-workspaces/ws-0123/api/v1/query*` that answers only requests
/// whose signature it recomputes with the known test credentials; else 403 with AWS's words.
async fn sigv4_proxy(gate: Arc<Sigv4Gate>, upstream: Upstream) -> SocketAddr {
    serve(move |req: Req| {
        let (gate, upstream) = (gate.clone(), upstream.clone());
        async move {
            let checked = if req.path().starts_with(&format!("{WORKSPACE}/api/v1/query")) {
                verify_sigv4(&req, SECRET_KEY)
            } else {
                Err(format!("unexpected path {}", req.path()))
            };
            match checked {
                Ok(()) => {
                    gate.passed.fetch_add(1, Ordering::SeqCst);
                    upstream.forward(&req).await
                }
                Err(why) => {
                    gate.refused.lock().unwrap().push(why);
                    Resp::json(
                        403,
                        r#"{"message":"The request signature we calculated does not match the signature you provided."}"#,
                    )
                }
            }
        }
    })
    .await
}

fn sigv4_metric(address: &str, query: &str, sigv4: &str, extra: &str) -> Metric {
    metric(&format!(
        r#"
name: success-rate
successCondition: result[0] >= 0.9
provider:
  prometheus:
    address: {address}
    timeout: 20
    query: {query}
{extra}
    authentication:
      sigv4: {sigv4}
"#
    ))
}

fn good_keys() -> [(&'static str, &'static str); 3] {
    [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
    ]
}

#[test]
fn sigv4_signed_queries_reach_a_real_prometheus() {
    if !in_child_with_env("sigv4_signed_queries_reach_a_real_prometheus", &good_keys()) {
        return;
    }
    block_on(async {
        let prom = RealPrometheus::start().await;
        let gate = Arc::new(Sigv4Gate::default());
        let proxy = sigv4_proxy(
            gate.clone(),
            Upstream::Real {
                url: prom.url.clone(),
                strip: WORKSPACE,
            },
        )
        .await;
        let address = format!("http://{proxy}{WORKSPACE}");
        let instant = sigv4_metric(&address, REAL_QUERY, &format!("{{region: {REGION}}}"), "");
        let got = measure(&instant).await;
        assert_phase(&got, "Successful");
        assert_eq!(got.value.as_deref(), Some("[0.97]"));
        // A range query: four parameters, signed in canonical order.
        let range = sigv4_metric(
            &address,
            REAL_QUERY,
            &format!("{{region: {REGION}}}"),
            "    rangeQuery: {start: 'now() - duration(\"1m\")', end: 'now()', step: 30s}",
        );
        let got = measure(&range).await;
        assert_phase(&got, "Successful");
        // Three steps over the minute (how the list is written is the evaluator's business).
        let value = got.value.unwrap_or_default();
        assert_eq!(value.matches("0.97").count(), 3, "{value}");
        assert_eq!(gate.passed.load(Ordering::SeqCst), 2);
        assert!(gate.refused.lock().unwrap().is_empty());
    });
}

#[test]
fn sigv4_with_the_wrong_secret_is_refused_as_an_error_measurement() {
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", "not-the-secret"),
        ("AWS_SESSION_TOKEN", SESSION_TOKEN),
    ];
    if !in_child_with_env(
        "sigv4_with_the_wrong_secret_is_refused_as_an_error_measurement",
        &env,
    ) {
        return;
    }
    block_on(async {
        let gate = Arc::new(Sigv4Gate::default());
        let proxy = sigv4_proxy(gate.clone(), Upstream::Canned).await;
        let m = sigv4_metric(
            &format!("http://{proxy}{WORKSPACE}"),
            CANNED_QUERY,
            &format!("{{region: {REGION}}}"),
            "",
        );
        let got = measure(&m).await;
        assert_phase(&got, "Error");
        let msg = got.message.unwrap_or_default();
        assert!(
            msg.starts_with("client_error: client error: 403: ")
                && msg.contains("The request signature we calculated does not match"),
            "{msg}"
        );
        assert_eq!(*gate.refused.lock().unwrap(), ["signature mismatch"]);
        assert_eq!(gate.passed.load(Ordering::SeqCst), 0);
    });
}

#[test]
fn sigv4_without_credentials_is_an_error_and_nothing_is_sent() {
    if !in_child_with_env(
        "sigv4_without_credentials_is_an_error_and_nothing_is_sent",
        &[],
    ) {
        return;
    }
    block_on(async {
        let gate = Arc::new(Sigv4Gate::default());
        let proxy = sigv4_proxy(gate.clone(), Upstream::Canned).await;
        let m = sigv4_metric(
            &format!("http://{proxy}{WORKSPACE}"),
            CANNED_QUERY,
            &format!("{{region: {REGION}}}"),
            "",
        );
        let got = measure(&m).await;
        assert_phase(&got, "Error");
        let msg = got.message.unwrap_or_default();
        assert!(msg.starts_with("could not get SigV4 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set"), "{msg}");
        assert_eq!(gate.passed.load(Ordering::SeqCst), 0);
        assert!(gate.refused.lock().unwrap().is_empty());
    });
}

#[test]
fn sigv4_role_arn_is_an_error_not_an_unsigned_query() {
    if !in_child_with_env(
        "sigv4_role_arn_is_an_error_not_an_unsigned_query",
        &good_keys(),
    ) {
        return;
    }
    block_on(async {
        let gate = Arc::new(Sigv4Gate::default());
        let proxy = sigv4_proxy(gate.clone(), Upstream::Canned).await;
        let m = sigv4_metric(
            &format!("http://{proxy}{WORKSPACE}"),
            CANNED_QUERY,
            &format!("{{region: {REGION}, roleArn: 'arn:aws:iam::123456789012:role/amp-query'}}"),
            "",
        );
        let got = measure(&m).await;
        assert_phase(&got, "Error");
        let msg = got.message.unwrap_or_default();
        assert!(
            msg.starts_with(
                r#"sigv4.roleArn "arn:aws:iam::123456789012:role/amp-query" is not supported"#
            ),
            "{msg}"
        );
        assert_eq!(gate.passed.load(Ordering::SeqCst), 0);
        assert!(gate.refused.lock().unwrap().is_empty(), "nothing was sent");
    });
}

/// As in Argo: `sigv4` only signs Amazon Managed Prometheus addresses (`aps-workspaces`).
#[tokio::test]
async fn sigv4_is_not_applied_to_other_addresses() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let plain = serve(move |req: Req| {
        s.lock()
            .unwrap()
            .push(req.header("authorization").map(str::to_string));
        async move { Upstream::Canned.forward(&req).await }
    })
    .await;
    let m = sigv4_metric(
        &format!("http://{plain}"),
        CANNED_QUERY,
        &format!("{{region: {REGION}}}"),
        "",
    );
    assert_phase(&measure(&m).await, "Successful");
    assert_eq!(*seen.lock().unwrap(), [None]);
}
