//! `kubectl sluice restart` on the controller side (reference §1.12): once `now` passes
//! `spec.restartAt`, pods created before it are evicted — at most max(maxUnavailable, 1) at a
//! time and only while enough others stay available — stable ReplicaSet first, then the new one,
//! then older ones; when none is left, `status.restartedAt = spec.restartAt`. Pure.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use crate::api::consts::REASON_RESTARTING_POD;
use crate::api::rollout::{Rollout, RolloutStatus};
use crate::rollout::ctx::Ctx;
use crate::rollout::observed::RsExt;
use crate::time::{add_seconds, until};

/// Re-check a restart this often while pods remain.
pub const RECHECK: Duration = Duration::from_secs(30);

/// A restart was asked for and has not been completed. Like Argo's `NeedsRestart`, any
/// `restartedAt` other than `restartAt` counts as not done (also one later than it, after a
/// restartAt is moved back), matching the phase's "rollout is restarting" test.
pub fn restart_requested(ro: &Rollout) -> bool {
    let Some(at) = ro.spec.restart_at.as_ref() else {
        return false;
    };
    let done = ro.status.as_ref().and_then(|s| s.restarted_at.as_ref());
    done.is_none_or(|d| d.0 != at.0)
}

/// A restart is due now: the controller must then observe the Rollout's pods.
pub fn restart_due(ro: &Rollout, now: Timestamp) -> bool {
    restart_requested(ro) && ro.spec.restart_at.as_ref().is_some_and(|at| now >= at.0)
}

/// What the restart step decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Restart {
    /// Nothing asked, or not yet due (`wake` says when it is).
    #[default]
    Idle,
    /// Not due yet.
    Later(Duration),
    /// Evict these pods now (and look again in 30 s).
    Evict(Vec<String>),
    /// Pods still need a restart but none can go now.
    Wait,
    /// Every pod is newer than restartAt: record it.
    Done,
}

fn available(p: &Pod, min_ready: i64, now: Timestamp) -> bool {
    if p.metadata.deletion_timestamp.is_some() {
        return false;
    }
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "Ready")
        .is_some_and(|c| {
            c.status == "True"
                && (min_ready <= 0
                    || c.last_transition_time
                        .as_ref()
                        .is_some_and(|t| add_seconds(t.0, min_ready) <= now))
        })
}

/// Decide the restart step. `order` lists the ReplicaSets by priority (stable, new, older by age);
/// `pods` are the pods of those ReplicaSets.
pub fn plan_restart(
    ro: &Rollout,
    order: &[&ReplicaSet],
    pods: &[Pod],
    max_unavailable: i32,
    now: Timestamp,
) -> Restart {
    if !restart_requested(ro) {
        return Restart::Idle;
    }
    let Some(at) = ro.spec.restart_at.as_ref().map(|t| t.0) else {
        return Restart::Idle;
    };
    if now < at {
        return until(now, at).map_or(Restart::Idle, Restart::Later);
    }
    let replicas = ro.spec.replicas.unwrap_or(1);
    let total: i32 = order.iter().map(|rs| rs.spec_replicas()).sum();
    let min_ready = i64::from(ro.spec.min_ready_seconds.unwrap_or(0));
    let avail = pods.iter().filter(|p| available(p, min_ready, now)).count() as i32;
    let concurrent = max_unavailable.max(1);
    let mut can = avail - (replicas.max(total) - concurrent);
    let owner_rank = |p: &Pod| {
        let uid = p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        order
            .iter()
            .position(|rs| rs.metadata.uid.is_some() && rs.metadata.uid == uid)
            .unwrap_or(usize::MAX)
    };
    let mut stale: Vec<&Pod> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .creation_timestamp
                .as_ref()
                .is_some_and(|c| c.0 < at)
        })
        .collect();
    if stale.is_empty() {
        return Restart::Done;
    }
    stale.sort_by_key(|p| {
        (
            owner_rank(p),
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.name.clone(),
        )
    });
    let mut evict = Vec::new();
    for p in stale {
        if can <= 0 {
            break;
        }
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        evict.push(p.metadata.name.clone().unwrap_or_default());
        can -= 1;
    }
    if evict.is_empty() {
        Restart::Wait
    } else {
        Restart::Evict(evict)
    }
}

/// The restart stage of a reconcile, for either strategy. Returns true when pods are being
/// evicted this reconcile: availability counts are then stale and the reconcile stops.
pub fn reconcile_restart(cx: &mut Ctx, st: &mut RolloutStatus, max_unavailable: i32) -> bool {
    if !restart_requested(cx.ro) {
        return false;
    }
    let mut order: Vec<&ReplicaSet> = cx.rs.stable_rs.into_iter().chain(cx.rs.new_rs).collect();
    let mut older = cx.rs.others.clone();
    older.sort_by_key(|rs| rs.created());
    order.extend(older);
    order.dedup_by_key(|rs| rs.name().to_string());
    let decision = match cx.obs.pods {
        Some(pods) => plan_restart(cx.ro, &order, pods, max_unavailable, cx.now),
        None if restart_due(cx.ro, cx.now) => Restart::Wait,
        None => plan_restart(cx.ro, &order, &[], max_unavailable, cx.now),
    };
    match decision {
        Restart::Idle => false,
        Restart::Later(d) => {
            cx.requeue.push(d);
            false
        }
        Restart::Wait => {
            cx.requeue.push(RECHECK);
            false
        }
        Restart::Done => {
            st.restarted_at = cx.ro.spec.restart_at.clone();
            false
        }
        Restart::Evict(pods) => {
            for p in &pods {
                cx.event(
                    false,
                    REASON_RESTARTING_POD,
                    format!("Evicting pod {p} created before restartAt"),
                );
            }
            cx.plan.evict = pods;
            cx.requeue.push(RECHECK);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ro(restart_at: &str, restarted: Option<&str>) -> Rollout {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "r", "namespace": "d"},
            "spec": {"replicas": 3, "restartAt": restart_at, "strategy": {"canary": {}},
                     "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": []}}},
            "status": {"restartedAt": restarted}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn rs(uid: &str, replicas: i32) -> ReplicaSet {
        serde_json::from_value(json!({"metadata": {"name": uid, "uid": uid}, "spec": {"replicas": replicas, "selector": {}}}))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn pod(name: &str, owner: &str, created: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created,
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner, "uid": owner, "controller": true}]},
            "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}, "lastTransitionTime": created}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn waits_until_due_then_evicts_one_at_a_time_stable_first() {
        let r = ro("2026-01-01T00:10:00Z", None);
        let (stable, new) = (rs("stable", 2), rs("new", 1));
        let order = [&stable, &new];
        let pods = vec![
            pod("n1", "new", "2026-01-01T00:00:00Z", true),
            pod("s1", "stable", "2026-01-01T00:01:00Z", true),
            pod("s2", "stable", "2026-01-01T00:02:00Z", true),
        ];
        assert_eq!(
            plan_restart(&r, &order, &pods, 0, t("2026-01-01T00:09:00Z")),
            Restart::Later(Duration::from_secs(60))
        );
        // maxUnavailable 0 → one at a time, as available (3) - (3 - 1) = 1
        assert_eq!(
            plan_restart(&r, &order, &pods, 0, t("2026-01-01T00:11:00Z")),
            Restart::Evict(vec!["s1".into()])
        );
        // an unavailable pod blocks further evictions
        let mut busy = pods.clone();
        busy[1] = pod("s1-new", "stable", "2026-01-01T00:11:30Z", false);
        assert_eq!(
            plan_restart(&r, &order, &busy, 0, t("2026-01-01T00:12:00Z")),
            Restart::Wait
        );
        // all pods newer than restartAt: done
        let fresh = vec![pod("x", "stable", "2026-01-01T00:20:00Z", true)];
        assert_eq!(
            plan_restart(&r, &order, &fresh, 0, t("2026-01-01T00:21:00Z")),
            Restart::Done
        );
        // already recorded
        let done = ro("2026-01-01T00:10:00Z", Some("2026-01-01T00:10:00Z"));
        assert_eq!(
            plan_restart(&done, &order, &pods, 0, t("2026-01-01T00:21:00Z")),
            Restart::Idle
        );
    }

    /// Argo's `NeedsRestart` compares `restartAt` and `restartedAt` for equality: a restartAt
    /// moved back before the last completed restart (a GitOps revert) is still carried out and
    /// recorded, so the phase does not stay "rollout is restarting".
    #[test]
    fn restart_at_moved_back_is_still_recorded() {
        let r = ro("2026-01-01T00:10:00Z", Some("2026-01-02T00:00:00Z"));
        assert!(restart_requested(&r));
        let stable = rs("stable", 1);
        let fresh = vec![pod("x", "stable", "2026-01-02T00:01:00Z", true)];
        assert_eq!(
            plan_restart(&r, &[&stable], &fresh, 0, t("2026-01-03T00:00:00Z")),
            Restart::Done
        );
    }
}
