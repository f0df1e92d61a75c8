//! AWS Signature Version 4 for the Prometheus provider (Amazon Managed Service for Prometheus,
//! service `aps`): the canonical request, the string to sign and the `Authorization` header,
//! computed with aws-lc-rs's HMAC-SHA256 and SHA-256 (the crypto library rustls already uses
//! here, so no second one). Checked against AWS's published SigV4 test suite in the tests below.
//!
//! Credentials come from the standard environment variables only: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and, for temporary credentials, `AWS_SESSION_TOKEN`. Shared
//! credential files and profiles, web identity (IRSA), instance and container metadata and
//! STS assume-role are not implemented; a metric that asks for a `profile` or a `roleArn` is
//! refused with [`Sigv4Error::ProfileUnsupported`] / [`Sigv4Error::RoleArnUnsupported`] rather
//! than signed with some other identity or sent unsigned.

use aws_lc_rs::{digest, hmac};
use jiff::Timestamp;

/// The service name Amazon Managed Service for Prometheus signs for.
pub const APS_SERVICE: &str = "aps";

/// Why a request could not be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Sigv4Error {
    /// No access key in the environment.
    #[error(
        "could not get SigV4 credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set \
         (sluice signs with credentials from the environment only{hint})"
    )]
    NoCredentials {
        /// Extra advice when another credential source is visibly configured.
        hint: &'static str,
    },
    /// No region in the metric nor in `AWS_REGION` / `AWS_DEFAULT_REGION`.
    #[error("region not configured in sigv4 or in AWS_REGION / AWS_DEFAULT_REGION")]
    NoRegion,
    /// `roleArn` asks for STS assume-role, which sluice does not implement.
    #[error(
        "sigv4.roleArn {0:?} is not supported: sluice does not assume IAM roles (STS); sign with \
         the role's credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN \
         and remove roleArn"
    )]
    RoleArnUnsupported(String),
    /// `profile` asks for the shared credentials files, which sluice does not read.
    #[error(
        "sigv4.profile {0:?} is not supported: sluice does not read AWS shared credential files; \
         provide AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and remove \
         profile"
    )]
    ProfileUnsupported(String),
}

/// An access key, with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Credentials from the process environment.
    pub fn from_env() -> Result<Credentials, Sigv4Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Credentials from `lookup`, which answers like `std::env::var` (empty counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Credentials, Sigv4Error> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
                session_token: get("AWS_SESSION_TOKEN"),
            }),
            _ => Err(Sigv4Error::NoCredentials {
                hint: if get("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
                    "; web identity (IRSA) credentials are not supported"
                } else if get("AWS_PROFILE").is_some() {
                    "; AWS_PROFILE is not read"
                } else {
                    ""
                },
            }),
        }
    }
}

/// The region to sign for: the metric's, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn region(
    spec: Option<&str>,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, Sigv4Error> {
    spec.filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| lookup("AWS_REGION").filter(|r| !r.is_empty()))
        .or_else(|| lookup("AWS_DEFAULT_REGION").filter(|r| !r.is_empty()))
        .ok_or(Sigv4Error::NoRegion)
}

/// What is signed about one request.
#[derive(Clone, Debug)]
pub struct Request<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The `Host` header as sent: host, and `:port` when the port is not the scheme's default.
    pub host: &'a str,
    /// The path as sent on the wire (already percent-encoded), e.g. `/workspaces/ws-1/api/v1/query`.
    pub path: &'a str,
    /// The query parameters, decoded. Send them as [`canonical_query`] renders them, so the
    /// query on the wire is the signed one byte for byte.
    pub query: &'a [(String, String)],
    /// Headers sent and signed besides `host` and the `x-amz-*` ones, e.g. `content-type`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// The headers to add to a request to sign it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signed {
    /// `x-amz-date`.
    pub amz_date: String,
    /// `x-amz-security-token`, for temporary credentials.
    pub security_token: Option<String>,
    /// `authorization`.
    pub authorization: String,
}

impl Signed {
    /// The headers as name/value pairs.
    pub fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("x-amz-date", self.amz_date.as_str())];
        if let Some(t) = &self.security_token {
            out.push(("x-amz-security-token", t.as_str()));
        }
        out.push(("authorization", self.authorization.as_str()));
        out
    }
}

/// Percent-encode everything but the unreserved characters `A-Za-z0-9-_.~`, as SigV4 requires.
pub fn uri_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string: pairs encoded with [`uri_encode`] and sorted by name, then value.
/// Sending exactly this string as the URL's query keeps the signature valid.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical URI of a wire path: each segment encoded again (services other than S3).
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(uri_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Lower-case names, trimmed values with inner runs of spaces folded, sorted by name; repeated
/// names joined with commas. Returns the canonical header block and the signed-header list.
fn canonical_headers(headers: &[(String, String)]) -> (String, String) {
    let mut hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.to_ascii_lowercase(),
                v.split_whitespace().collect::<Vec<_>>().join(" "),
            )
        })
        .collect();
    hs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::new();
    for (k, v) in hs {
        match merged.last_mut() {
            Some((lk, lv)) if *lk == k => {
                lv.push(',');
                lv.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let block = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let names = merged
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (block, names)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// `20150830T123600Z`.
pub fn amz_date(at: Timestamp) -> String {
    at.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// Every header that is signed: the request's own, `host`, `x-amz-date` and the session token.
fn signed_header_list(req: &Request<'_>, date: &str, token: Option<&str>) -> Vec<(String, String)> {
    let mut hs: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    hs.push(("host".into(), req.host.into()));
    hs.push(("x-amz-date".into(), date.into()));
    if let Some(t) = token {
        hs.push(("x-amz-security-token".into(), t.into()));
    }
    hs
}

/// The canonical request (step 1 of SigV4).
pub fn canonical_request(req: &Request<'_>, date: &str, token: Option<&str>) -> String {
    let (block, names) = canonical_headers(&signed_header_list(req, date, token));
    format!(
        "{}\n{}\n{}\n{block}\n{names}\n{}",
        req.method,
        canonical_uri(req.path),
        canonical_query(req.query),
        sha256_hex(req.body)
    )
}

/// The string to sign (step 2).
pub fn string_to_sign(canonical_request: &str, date: &str, region: &str, service: &str) -> String {
    let day = date.get(..8).unwrap_or(date);
    format!(
        "AWS4-HMAC-SHA256\n{date}\n{day}/{region}/{service}/aws4_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Sign `req` for `service` in `region` at `at`.
pub fn sign(
    req: &Request<'_>,
    creds: &Credentials,
    region: &str,
    service: &str,
    at: Timestamp,
) -> Signed {
    let date = amz_date(at);
    let day = &date[..8];
    let token = creds.session_token.as_deref();
    let creq = canonical_request(req, &date, token);
    let sts = string_to_sign(&creq, &date, region, service);
    let k_date = hmac_sha256(
        format!("AWS4{}", creds.secret_access_key).as_bytes(),
        day.as_bytes(),
    );
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    let k_signing = hmac_sha256(&k_service, b"aws4_request");
    let signature = hex(&hmac_sha256(&k_signing, sts.as_bytes()));
    let (_, names) = canonical_headers(&signed_header_list(req, &date, token));
    Signed {
        authorization: format!(
            "AWS4-HMAC-SHA256 Credential={}/{day}/{region}/{service}/aws4_request, \
             SignedHeaders={names}, Signature={signature}",
            creds.access_key_id
        ),
        amz_date: date,
        security_token: creds.session_token.clone(),
    }
}

#[cfg(test)]
mod tests {
    //! AWS's published SigV4 test suite (`aws-sig-v4-test-suite`, also shipped as
    //! `awslabs/aws-c-auth` `tests/aws-signing-test-suite/v4/`): credentials `AKIDEXAMPLE` /
    //! `wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY`, 2015-08-30T12:36:00Z, us-east-1, `service`,
    //! host `example.amazonaws.com`. The expected strings are AWS's.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const SCOPE: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            session_token: token.map(str::to_string),
        }
    }

    fn at() -> Timestamp {
        "2015-08-30T12:36:00Z".parse().unwrap()
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn req<'a>(method: &'a str, path: &'a str, query: &'a [(String, String)]) -> Request<'a> {
        Request {
            method,
            host: "example.amazonaws.com",
            path,
            query,
            headers: &[],
            body: b"",
        }
    }

    fn authz(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={signed_headers}, \
             Signature={signature}"
        )
    }

    #[test]
    fn get_vanilla() {
        let r = req("GET", "/", &[]);
        let creq = canonical_request(&r, "20150830T123600Z", None);
        assert_eq!(
            creq,
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                 host;x-amz-date\n{EMPTY}"
            )
        );
        assert_eq!(
            string_to_sign(&creq, "20150830T123600Z", "us-east-1", "service"),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
        let s = sign(&r, &creds(None), "us-east-1", "service", at());
        assert_eq!(s.amz_date, "20150830T123600Z");
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(s.security_token, None);
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let query = q(&[("Param2", "value2"), ("Param1", "value1")]);
        let r = req("GET", "/", &query);
        assert!(
            canonical_request(&r, "20150830T123600Z", None)
                .contains("\n/\nParam1=value1&Param2=value2\n")
        );
        let s = sign(&r, &creds(None), "us-east-1", "service", at());
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
            )
        );
    }

    #[test]
    fn get_vanilla_query_unreserved() {
        let u = "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let query = q(&[(u, u)]);
        let s = sign(
            &req("GET", "/", &query),
            &creds(None),
            "us-east-1",
            "service",
            at(),
        );
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date",
                "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"
            )
        );
    }

    #[test]
    fn get_vanilla_utf8_query() {
        let query = q(&[("ሴ", "bar")]);
        let r = req("GET", "/", &query);
        assert!(canonical_request(&r, "20150830T123600Z", None).contains("\n%E1%88%B4=bar\n"));
        let s = sign(&r, &creds(None), "us-east-1", "service", at());
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date",
                "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"
            )
        );
    }

    #[test]
    fn get_utf8_path() {
        let s = sign(
            &req("GET", "/ሴ", &[]),
            &creds(None),
            "us-east-1",
            "service",
            at(),
        );
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date",
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"
            )
        );
    }

    #[test]
    fn post_vanilla_query() {
        let query = q(&[("Param1", "value1")]);
        let s = sign(
            &req("POST", "/", &query),
            &creds(None),
            "us-east-1",
            "service",
            at(),
        );
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date",
                "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"
            )
        );
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let r = Request {
            headers: &[("Content-Type", "application/x-www-form-urlencoded")],
            body: b"Param1=value1",
            ..req("POST", "/", &[])
        };
        assert_eq!(
            canonical_request(&r, "20150830T123600Z", None),
            "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n\
             host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e"
        );
        let s = sign(&r, &creds(None), "us-east-1", "service", at());
        assert_eq!(
            s.authorization,
            authz(
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"
            )
        );
    }

    /// `get-vanilla-with-session-token`: the token is a signed header.
    #[test]
    fn get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let s = sign(
            &req("GET", "/", &[]),
            &creds(Some(token)),
            "us-east-1",
            "service",
            at(),
        );
        assert_eq!(
            s.authorization,
            authz(
                "host;x-amz-date;x-amz-security-token",
                "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
        assert_eq!(s.security_token.as_deref(), Some(token));
        let names: Vec<&str> = s.headers().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            ["x-amz-date", "x-amz-security-token", "authorization"]
        );
    }

    #[test]
    fn header_values_are_trimmed_and_repeats_joined() {
        let (block, names) = canonical_headers(&[
            ("My-Header1".into(), "  a   b  ".into()),
            ("host".into(), "h".into()),
            ("my-header1".into(), "c".into()),
        ]);
        assert_eq!(block, "host:h\nmy-header1:a b,c\n");
        assert_eq!(names, "host;my-header1");
    }

    #[test]
    fn an_encoded_path_is_encoded_again() {
        assert_eq!(canonical_uri("/a%20b/c"), "/a%2520b/c");
        assert_eq!(
            canonical_uri("/workspaces/ws-1/api/v1/query"),
            "/workspaces/ws-1/api/v1/query"
        );
        assert_eq!(canonical_uri(""), "/");
    }

    #[test]
    fn credentials_come_from_the_standard_variables() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Credentials::from_lookup(env(&[
            ("AWS_ACCESS_KEY_ID", "AK"),
            ("AWS_SECRET_ACCESS_KEY", "SK"),
            ("AWS_SESSION_TOKEN", "T"),
        ]))
        .unwrap();
        assert_eq!(c.session_token.as_deref(), Some("T"));
        assert!(
            !format!("{c:?}").contains("SK"),
            "the secret is not printed"
        );
        let e = Credentials::from_lookup(env(&[("AWS_ACCESS_KEY_ID", "AK")])).unwrap_err();
        assert!(e.to_string().contains("AWS_SECRET_ACCESS_KEY"), "{e}");
        let e =
            Credentials::from_lookup(env(&[("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")])).unwrap_err();
        assert!(e.to_string().contains("IRSA"), "{e}");
        assert_eq!(region(Some("eu-west-1"), env(&[])).unwrap(), "eu-west-1");
        assert_eq!(
            region(None, env(&[("AWS_DEFAULT_REGION", "us-west-2")])).unwrap(),
            "us-west-2"
        );
        assert_eq!(region(Some(""), env(&[])), Err(Sigv4Error::NoRegion));
    }
}
