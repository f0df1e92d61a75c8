//! The OAuth2 client-credentials grant (RFC 6749 §4.4) as Argo's Prometheus provider uses it
//! through `golang.org/x/oauth2/clientcredentials`: a form POST of
//! `grant_type=client_credentials` (and `scope`, the scopes joined by spaces, when there are
//! any) to the token URL. The client id and secret go in an HTTP Basic `Authorization` header
//! first (each form-encoded, RFC 6749 §2.3.1); when the server refuses that, once more as
//! `client_id` / `client_secret` form parameters, and whichever style worked is remembered per
//! token URL. A JSON or form-encoded answer with `access_token`, `token_type` and `expires_in`.
//!
//! Tokens are cached in the process, per token URL, client id, secret and scopes, until ten
//! seconds before `expires_in` runs out (a token without `expires_in` stays until the server
//! rejects it: [`forget`] drops it). Concurrent measurements wait for one fetch.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;

use super::basic_auth;
use super::sigv4::sha256_hex;

/// A token this close to its expiry is fetched again (x/oauth2's `expiryDelta`).
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// The most of a token response that is read.
const MAX_BODY: usize = 1 << 20;

/// A client-credentials configuration, every part already checked to be set.
#[derive(Clone)]
pub struct ClientCredentials<'a> {
    pub token_url: &'a str,
    pub client_id: &'a str,
    pub client_secret: &'a str,
    pub scopes: &'a [String],
}

impl std::fmt::Debug for ClientCredentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// Why no token was had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OAuth2Error {
    /// The token endpoint could not be reached (the message names the URL).
    #[error("oauth2: cannot fetch token: {0}")]
    Send(String),
    /// The token endpoint answered with an error.
    #[error("oauth2: cannot fetch token from {url}: {status}{detail}")]
    Refused {
        url: String,
        status: String,
        detail: String,
    },
    /// A success answer without a token in it.
    #[error("oauth2: server response missing access_token")]
    MissingToken,
    /// A success answer that is not a token response.
    #[error("oauth2: cannot parse token response: {0}")]
    Parse(String),
}

/// An access token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub access_token: String,
    /// As the server named it; [`Token::authorization`] normalises the common ones.
    pub token_type: String,
    expires_at: Option<Instant>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Token {
    /// The `Authorization` header value: `Bearer <token>` unless the server named another type.
    pub fn authorization(&self) -> String {
        let t = match self.token_type.to_ascii_lowercase().as_str() {
            "" | "bearer" => "Bearer",
            "mac" => "MAC",
            "basic" => "Basic",
            _ => self.token_type.as_str(),
        };
        format!("{t} {}", self.access_token)
    }

    fn valid(&self, now: Instant) -> bool {
        !self.access_token.is_empty() && self.expires_at.is_none_or(|e| now + EXPIRY_DELTA < e)
    }
}

/// Where the client credentials go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthStyle {
    Header,
    Params,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    token_url: String,
    client_id: String,
    secret_sha256: String,
    scopes: Vec<String>,
}

impl Key {
    fn of(c: &ClientCredentials<'_>) -> Key {
        Key {
            token_url: c.token_url.into(),
            client_id: c.client_id.into(),
            secret_sha256: sha256_hex(c.client_secret.as_bytes()),
            scopes: c.scopes.to_vec(),
        }
    }
}

type Slot = Arc<tokio::sync::Mutex<Option<Token>>>;

static TOKENS: LazyLock<Mutex<HashMap<Key, Slot>>> = LazyLock::new(Default::default);
static STYLES: LazyLock<Mutex<HashMap<String, AuthStyle>>> = LazyLock::new(Default::default);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn slot(c: &ClientCredentials<'_>) -> Slot {
    lock(&TOKENS).entry(Key::of(c)).or_default().clone()
}

/// A valid token for `c`, from the cache or fetched with `http`; `true` when it came from the
/// cache.
pub async fn token(
    http: &reqwest::Client,
    c: &ClientCredentials<'_>,
) -> Result<(Token, bool), OAuth2Error> {
    let slot = slot(c);
    let mut cached = slot.lock().await;
    if let Some(t) = cached.as_ref().filter(|t| t.valid(Instant::now())) {
        return Ok((t.clone(), true));
    }
    let t = fetch(http, c).await?;
    *cached = Some(t.clone());
    Ok((t, false))
}

/// Drop `rejected` from the cache (the server refused it), unless it was replaced already.
pub async fn forget(c: &ClientCredentials<'_>, rejected: &Token) {
    let slot = slot(c);
    let mut cached = slot.lock().await;
    if cached.as_ref() == Some(rejected) {
        *cached = None;
    }
}

async fn fetch(http: &reqwest::Client, c: &ClientCredentials<'_>) -> Result<Token, OAuth2Error> {
    let known = lock(&STYLES).get(c.token_url).copied();
    if let Some(style) = known {
        return request(http, c, style).await;
    }
    let mut style = AuthStyle::Header;
    let mut got = request(http, c, style).await;
    if matches!(&got, Err(e) if !matches!(e, OAuth2Error::Send(_))) {
        // Refused in the header: the server may want the credentials in the form instead.
        style = AuthStyle::Params;
        got = request(http, c, style).await;
    }
    if got.is_ok() {
        lock(&STYLES).insert(c.token_url.to_string(), style);
    }
    got
}

/// `application/x-www-form-urlencoded`, as Go's `url.QueryEscape` (space as `+`).
pub fn form_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut sorted = pairs.to_vec();
    sorted.sort();
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", form_escape(k), form_escape(v)))
        .collect::<Vec<_>>()
        .join("&")
}

#[derive(Deserialize)]
struct TokenJson {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    token_type: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
}

#[derive(Deserialize, Default)]
struct ErrorJson {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

async fn request(
    http: &reqwest::Client,
    c: &ClientCredentials<'_>,
    style: AuthStyle,
) -> Result<Token, OAuth2Error> {
    let scope = c.scopes.join(" ");
    let mut pairs = vec![("grant_type", "client_credentials")];
    if !c.scopes.is_empty() {
        pairs.push(("scope", scope.as_str()));
    }
    let mut req = http
        .post(c.token_url)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded");
    match style {
        AuthStyle::Header => {
            req = req.header(
                AUTHORIZATION,
                basic_auth(&form_escape(c.client_id), &form_escape(c.client_secret)),
            );
        }
        AuthStyle::Params => {
            pairs.push(("client_id", c.client_id));
            if !c.client_secret.is_empty() {
                pairs.push(("client_secret", c.client_secret));
            }
        }
    }
    let send = |e: reqwest::Error| OAuth2Error::Send(super::error_chain(&e));
    let resp = req.body(form(&pairs)).send().await.map_err(send)?;
    let status = resp.status();
    let form_body = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/x-www-form-urlencoded" || t == "text/plain");
    let body = resp.bytes().await.map_err(send)?;
    let body = &body[..body.len().min(MAX_BODY)];
    if !status.is_success() {
        let e: ErrorJson = if form_body {
            let mut e = ErrorJson::default();
            for (k, v) in form_urlencoded::parse(body) {
                match k.as_ref() {
                    "error" => e.error = v.into_owned(),
                    "error_description" => e.error_description = v.into_owned(),
                    _ => {}
                }
            }
            e
        } else {
            serde_json::from_slice(body).unwrap_or_default()
        };
        let detail = if !e.error.is_empty() {
            let mut d = format!(": {:?}", e.error);
            if !e.error_description.is_empty() {
                d.push_str(&format!(" {:?}", e.error_description));
            }
            d
        } else {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(256).collect();
            if text.is_empty() {
                String::new()
            } else {
                format!(": {text}")
            }
        };
        return Err(OAuth2Error::Refused {
            url: c.token_url.to_string(),
            status: status.to_string(),
            detail,
        });
    }
    let parsed = if form_body {
        let mut t = TokenJson {
            access_token: String::new(),
            token_type: String::new(),
            expires_in: None,
        };
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "access_token" => t.access_token = v.into_owned(),
                "token_type" => t.token_type = v.into_owned(),
                "expires_in" => t.expires_in = Some(serde_json::Value::String(v.into_owned())),
                _ => {}
            }
        }
        t
    } else {
        serde_json::from_slice::<TokenJson>(body).map_err(|e| OAuth2Error::Parse(e.to_string()))?
    };
    if parsed.access_token.is_empty() {
        return Err(OAuth2Error::MissingToken);
    }
    let secs = match parsed.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_f64().unwrap_or(0.0),
        Some(serde_json::Value::String(s)) => s.trim().parse::<f64>().unwrap_or(0.0),
        _ => 0.0,
    };
    Ok(Token {
        access_token: parsed.access_token,
        token_type: parsed.token_type,
        expires_at: (secs >= 1.0)
            .then(|| Instant::now() + Duration::from_secs(secs.min(1e9) as u64)),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn token(t: &str, expires_in: Option<u64>) -> Token {
        Token {
            access_token: "abc".into(),
            token_type: t.into(),
            expires_at: expires_in.map(|s| Instant::now() + Duration::from_secs(s)),
        }
    }

    #[test]
    fn the_authorization_header_normalises_the_type() {
        assert_eq!(token("", None).authorization(), "Bearer abc");
        assert_eq!(token("bearer", None).authorization(), "Bearer abc");
        assert_eq!(token("DPoP", None).authorization(), "DPoP abc");
    }

    #[test]
    fn a_token_is_valid_until_ten_seconds_before_it_expires() {
        let now = Instant::now();
        assert!(token("", None).valid(now));
        assert!(token("", Some(3600)).valid(now));
        assert!(!token("", Some(5)).valid(now));
    }

    #[test]
    fn forms_encode_as_go_does() {
        assert_eq!(form_escape("a b+c/é"), "a+b%2Bc%2F%C3%A9");
        assert_eq!(
            form(&[("scope", "a b"), ("grant_type", "client_credentials")]),
            "grant_type=client_credentials&scope=a+b"
        );
    }

    #[test]
    fn a_secret_is_not_printed() {
        assert!(!format!("{:?}", token("", None)).contains("abc"));
    }
}
