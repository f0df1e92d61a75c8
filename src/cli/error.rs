//! The plugin's errors. Every variant renders as one line that a person can act on; the binary
//! prints it after `error: ` and exits non-zero.

use std::fmt;

/// Why a `kubectl sluice` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The named object does not exist.
    #[error("{kind} '{name}' not found in namespace '{namespace}'")]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: String,
    },
    /// The command cannot act on this object in its current state (not a canary, nothing to
    /// promote, not paused, ...).
    #[error("{0}")]
    Refused(String),
    /// `status`: the rollout ended Degraded.
    #[error("The rollout is in a degraded state with message: {0}")]
    Degraded(String),
    /// `status`: the rollout did not finish within `--timeout`.
    #[error("Rollout status watch exceeded timeout")]
    Timeout,
    /// `lint`: the file has validation errors (already printed, one per line).
    #[error("{0}")]
    Invalid(String),
    /// An object or file could not be decoded.
    #[error("{0}")]
    Decode(String),
    /// Bad arguments that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// Loading the kubeconfig or building the client failed.
    #[error("kubeconfig: {0}")]
    Config(String),
    /// The API server refused or failed a request.
    #[error("{0}")]
    Api(ApiError),
    /// Reading a file or writing the output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A Kubernetes API failure reduced to its message (the server's own words when it sent a
/// `Status`, the transport error otherwise).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status code when the server answered.
    pub code: Option<u16>,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<kube::Error> for CliError {
    fn from(e: kube::Error) -> Self {
        CliError::Api(match e {
            kube::Error::Api(s) => ApiError {
                code: Some(s.code),
                message: if s.message.is_empty() {
                    format!("API request failed: {} {}", s.code, s.reason)
                } else {
                    s.message.clone()
                },
            },
            other => {
                // The transport error's own text is terse ("client error (Connect)"); its causes
                // say what went wrong ("Connection refused").
                let mut message = format!("cannot reach the API server: {other}");
                let mut cause = std::error::Error::source(&other);
                while let Some(c) = cause {
                    let text = c.to_string();
                    if !message.contains(&text) {
                        message.push_str(&format!(": {text}"));
                    }
                    cause = c.source();
                }
                ApiError {
                    code: None,
                    message,
                }
            }
        })
    }
}

impl CliError {
    /// The error as one line: nested causes and multi-line server messages are joined.
    pub fn one_line(&self) -> String {
        self.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Whether a kube error is a 404.
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Whether a kube error is a 409 (optimistic-concurrency conflict).
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Map a 404 on a Rollout to [`CliError::NotFound`], anything else to an API error.
pub fn rollout_error(e: kube::Error, name: &str, namespace: &str) -> CliError {
    if is_not_found(&e) {
        CliError::NotFound {
            kind: "rollout",
            name: name.to_string(),
            namespace: namespace.to_string(),
        }
    } else {
        e.into()
    }
}
