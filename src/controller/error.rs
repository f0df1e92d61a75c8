//! The controller's error type, how each kind is retried, and the per-object failure counts that
//! make repeated failures of one object back off (shared by the Rollout and AnalysisRun
//! controllers).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubernetes API error: {0}")]
    Kube(#[from] kube::Error),
    #[error("serialization error: {0}")]
    Json(#[from] serde_json::Error),
    #[error("rollout {0} has no namespace")]
    MissingNamespace(String),
    /// The write was refused before it left: this replica does not hold the leader lease.
    #[error("not the leader: the write was not sent")]
    NotLeader,
    /// A traffic router could not be brought to the planned weights; the status (and so the
    /// step) is not advanced.
    #[error("traffic routing: {0}")]
    Traffic(String),
}

/// How soon a replica that was refused a write for not leading looks again. Not an exponential
/// backoff: there is nothing to back off from, and a replica that lost the lease exits anyway.
pub const NOT_LEADER_RETRY: Duration = Duration::from_secs(15);

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
            Error::NotLeader => "not_leader",
            Error::Traffic(_) => "traffic_routing",
        }
    }

    /// A 404 from the API server.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 404)
    }

    /// A 409 from the API server (already exists, or a stale resourceVersion).
    /// The API server refused the request for good (4xx other than a conflict or throttling):
    /// its message, for the object's status.
    pub fn refusal(&self) -> Option<&str> {
        match self {
            Error::Kube(kube::Error::Api(s))
                if (400..500).contains(&s.code) && s.code != 409 && s.code != 429 =>
            {
                Some(s.message.as_str())
            }
            _ => None,
        }
    }

    pub fn is_conflict(&self) -> bool {
        self.category() == "conflict"
    }

    /// How long to wait before retrying, given how many times in a row this object failed.
    /// Conflicts mean our cache was behind: retry almost at once. Everything else backs off
    /// exponentially from 1 s to 5 min, with jitter so that a cluster-wide outage does not
    /// make every rollout retry in lockstep.
    pub fn retry_after(&self, failures: u32, jitter_seed: u64) -> Duration {
        if self.category() == "conflict" {
            return Duration::from_millis(250);
        }
        if matches!(self, Error::NotLeader) {
            return NOT_LEADER_RETRY;
        }
        let base_ms = 1000u64.saturating_mul(1u64 << failures.min(9)).min(300_000);
        let jitter = jitter_seed % (base_ms / 5 + 1);
        Duration::from_millis(base_ms - base_ms / 10 + jitter)
    }
}

/// Consecutive failures per object, so that an object failing again and again is retried less
/// and less often ([`Error::retry_after`]) while others are unaffected. A success resets the count.
pub struct Backoff<K: Resource>
where
    K::DynamicType: Eq + Hash + Clone,
{
    failures: Mutex<HashMap<ObjectRef<K>, u32>>,
}

impl<K: Resource> Default for Backoff<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    fn default() -> Self {
        Backoff {
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Resource> Backoff<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// `key` reconciled successfully: its next failure starts from the shortest delay again.
    pub fn reset(&self, key: &ObjectRef<K>) {
        if let Ok(mut f) = self.failures.lock() {
            f.remove(key);
        }
    }

    /// `key` failed with `err` once more: how long to wait before retrying it. The jitter comes
    /// from the clock's nanoseconds, so that objects failing together spread out.
    pub fn failed(&self, key: ObjectRef<K>, err: &Error) -> Duration {
        let seed = u64::from(jiff::Timestamp::now().subsec_nanosecond().unsigned_abs());
        self.failed_with_seed(key, err, seed)
    }

    /// [`Backoff::failed`] with the jitter seed given.
    pub fn failed_with_seed(&self, key: ObjectRef<K>, err: &Error, jitter_seed: u64) -> Duration {
        if matches!(err, Error::NotLeader) {
            // Not a failure of this object: counting it would only delay the first retry of a
            // real failure once leadership is back.
            return err.retry_after(0, jitter_seed);
        }
        let failures = self
            .failures
            .lock()
            .map(|mut f| {
                let n = f.entry(key).or_insert(0);
                *n = n.saturating_add(1);
                *n
            })
            .unwrap_or(1);
        err.retry_after(failures - 1, jitter_seed)
    }

    /// Consecutive failures of `key` so far.
    pub fn failures(&self, key: &ObjectRef<K>) -> u32 {
        self.failures
            .lock()
            .ok()
            .and_then(|f| f.get(key).copied())
            .unwrap_or(0)
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
        assert_eq!(Error::NotLeader.category(), "not_leader");
        assert!(api(404).is_not_found() && !api(409).is_not_found());
        assert!(api(409).is_conflict() && !api(500).is_conflict());
    }

    #[test]
    fn backoff_grows_per_object_and_resets_on_success() {
        use crate::api::analysis::AnalysisRun;
        let b = Backoff::<AnalysisRun>::default();
        let run = ObjectRef::<AnalysisRun>::new("r").within("ns");
        let other = ObjectRef::<AnalysisRun>::new("o").within("ns");
        let delays: Vec<Duration> = (0..12)
            .map(|_| b.failed_with_seed(run.clone(), &api(500), 0))
            .collect();
        assert!(delays.windows(2).take(8).all(|w| w[0] < w[1]), "{delays:?}");
        assert_eq!(delays[10], delays[11], "capped");
        assert!(delays[11] <= Duration::from_millis(330_000));
        assert_eq!(b.failures(&run), 12);
        // Another object starts from the shortest delay; a conflict retries at once.
        assert_eq!(b.failed_with_seed(other.clone(), &api(500), 0), delays[0]);
        assert_eq!(
            b.failed_with_seed(other.clone(), &api(409), 0),
            Duration::from_millis(250)
        );
        // Not leading is not counted and waits a fixed time.
        assert_eq!(
            b.failed_with_seed(run.clone(), &Error::NotLeader, 0),
            NOT_LEADER_RETRY
        );
        assert_eq!(b.failures(&run), 12);
        b.reset(&run);
        assert_eq!(b.failures(&run), 0);
        assert_eq!(b.failed_with_seed(run, &api(500), 0), delays[0]);
    }
}
