//! The controller's error type and how each kind is retried.

use std::time::Duration;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rollout {0} has no namespace")]
    MissingNamespace(String),
}

impl Error {
    /// A low-cardinality label for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(s)) if s.code == 409 => "conflict",
            Error::Kube(kube::Error::Api(s)) if s.code == 429 => "throttled",
            Error::Kube(kube::Error::Api(s)) if s.code >= 500 => "server",
            Error::Kube(kube::Error::Api(_)) => "api",
            Error::Kube(_) => "transport",
            Error::Json(_) => "serialization",
            Error::MissingNamespace(_) => "invalid",
        }
    }

    /// How long to wait before retrying, given how many times in a row this object failed.
    /// Conflicts mean our cache was behind: retry almost at once. Everything else backs off
    /// exponentially from 1 s to 5 min, with jitter so that a cluster-wide outage does not
    /// make every rollout retry in lockstep.
    pub fn retry_after(&self, failures: u32, jitter_seed: u64) -> Duration {
        if self.category() == "conflict" {
            return Duration::from_millis(250);
        }
        let base_ms = 1000u64.saturating_mul(1u64 << failures.min(9)).min(300_000);
        let jitter = jitter_seed % (base_ms / 5 + 1);
        Duration::from_millis(base_ms - base_ms / 10 + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> Error {
        Error::Kube(kube::Error::Api(Box::new(kube::core::Status {
            code,
            ..Default::default()
        })))
    }

    #[test]
    fn classification_and_backoff() {
        assert_eq!(api(409).category(), "conflict");
        assert_eq!(api(409).retry_after(5, 7), Duration::from_millis(250));
        assert_eq!(api(429).category(), "throttled");
        assert_eq!(api(503).category(), "server");
        let first = api(503).retry_after(0, 0);
        let later = api(503).retry_after(6, 0);
        assert!(first < later);
        assert!(api(500).retry_after(30, u64::MAX) <= Duration::from_millis(330_000));
    }
}
