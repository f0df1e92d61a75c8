//! The `scale-down-deadline` annotation shared by both strategies: an old (or aborted)
//! ReplicaSet is kept up until the deadline it carries, then scaled to zero. The deadline lives
//! on the ReplicaSet, so a controller restart keeps it.

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;

use crate::api::consts::ANNOTATION_SCALE_DOWN_DEADLINE;
use crate::rollout::observed::RsExt;
use crate::time::add_seconds;

/// The RFC 3339 deadline a ReplicaSet carries, if it has one that parses.
pub fn deadline(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.annotations()
        .get(ANNOTATION_SCALE_DOWN_DEADLINE)
        .filter(|d| !d.is_empty())
        .and_then(|d| d.parse::<Timestamp>().ok())
}

/// The ReplicaSet carries a (non-empty) deadline, readable or not.
pub fn has_deadline(rs: &ReplicaSet) -> bool {
    rs.annotations()
        .get(ANNOTATION_SCALE_DOWN_DEADLINE)
        .is_some_and(|d| !d.is_empty())
}

/// A deadline `secs` from `now`, as Argo writes it (RFC 3339, whole seconds, UTC).
pub fn deadline_from(now: Timestamp, secs: i32) -> String {
    let t = add_seconds(now, i64::from(secs));
    let whole = Timestamp::from_second(t.as_second()).unwrap_or(t);
    whole.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
