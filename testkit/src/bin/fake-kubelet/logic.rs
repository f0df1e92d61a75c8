//! Pure decision logic of the fake kubelet: given a Pod, when the fake kubelet first saw it, the
//! current time and the configuration, decide what to do (patch its status, delete it, nothing)
//! and when to look at it again. No I/O here, so every cue is unit-tested below.
//!
//! Timeline of a pod (all relative to `first_seen`, the moment this process first saw the pod):
//! - `start = first_seen + delay` where `delay` is the largest `slow<N>` cue of its containers,
//!   else `Config::ready_delay`. Before `start` nothing happens (the pod stays as it is).
//! - Job pods (owned by a Job, or labelled `job-name` / `batch.kubernetes.io/job-name`):
//!   at `start` phase `Succeeded` (containers terminated, exit code 0, reason `Completed`), or
//!   `Failed` if any container has the `fail` cue (exit code 1, reason `Error`).
//! - Other pods: at `start` phase `Running`; every container is running and ready, except
//!   `never-ready` containers (running, never ready) and `crash` containers: ready at `start`,
//!   crashed at `start + crash_after` (waiting `CrashLoopBackOff`, `restartCount` 1), and one more
//!   restart every `crash_period` after that, never ready again. The pod is Ready (and
//!   ContainersReady) only while all its containers are ready.
//! - A pod with a `deletionTimestamp` is deleted with grace period 0 (once: not again when its
//!   grace period already is 0, e.g. while finalizers hold it).
//! - Terminal pods (`Succeeded`/`Failed`) are left alone.
//!
//! Idempotency: the desired state is reduced to a [`Summary`] (phase, Ready, ContainersReady and
//! per container name/ready/restartCount/state) and compared with the same reduction of the pod's
//! current status; a patch is only produced when they differ. Timestamps are derived from
//! `first_seen`, never from `now`, so recomputing gives the same patch.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{Value, json};

/// Knobs of the timeline.
#[derive(Clone, Debug)]
pub struct Config {
    /// Delay between first seeing a pod and making it run (unless a `slow<N>` cue overrides it).
    pub ready_delay: SignedDuration,
    /// How long a `crash` container stays ready before its first crash.
    pub crash_after: SignedDuration,
    /// Interval between two restarts of a `crash` container.
    pub crash_period: SignedDuration,
}

impl Config {
    pub fn new(ready_delay: SignedDuration) -> Self {
        Self {
            ready_delay,
            crash_after: SignedDuration::from_secs(1),
            crash_period: SignedDuration::from_secs(3),
        }
    }
}

/// Behaviour cues read from one container image tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cues {
    pub never_ready: bool,
    pub crash: bool,
    pub fail: bool,
    pub slow_ms: Option<u64>,
}

/// The tag of an image reference: the part after the last `:` that follows the last `/`
/// (a digest `@sha256:…` is ignored). `None` when there is no tag.
pub fn image_tag(image: &str) -> Option<&str> {
    let name = image.split('@').next().unwrap_or(image);
    let tail = match name.rfind('/') {
        Some(i) => &name[i + 1..],
        None => name,
    };
    tail.rfind(':').map(|i| &tail[i + 1..])
}

/// `cue` appears in `tag` as a whole dash-separated part: `crash`, `v2-crash`, `crash-v2`,
/// `v2-crash-x` all match, `crashed` does not.
fn has_part(tag: &str, cue: &str) -> bool {
    tag == cue
        || tag.starts_with(&format!("{cue}-"))
        || tag.ends_with(&format!("-{cue}"))
        || tag.contains(&format!("-{cue}-"))
}

/// `slow` followed (optionally after one `-`) by decimal digits: `slow5000`, `v2-slow-3000`.
fn slow_ms(tag: &str) -> Option<u64> {
    tag.match_indices("slow").find_map(|(i, _)| {
        let rest = &tag[i + "slow".len()..];
        let rest = rest.strip_prefix('-').unwrap_or(rest);
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

/// The cues of one image reference.
pub fn cues(image: &str) -> Cues {
    let Some(tag) = image_tag(image) else {
        return Cues::default();
    };
    Cues {
        never_ready: has_part(tag, "never-ready"),
        crash: has_part(tag, "crash"),
        fail: has_part(tag, "fail"),
        slow_ms: slow_ms(tag),
    }
}

/// A pod belongs to a Job: owned by a `batch/*` Job, or carries a job-name label.
pub fn is_job_pod(pod: &Pod) -> bool {
    let owned = pod
        .metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "Job" && o.api_version.starts_with("batch/"));
    let labelled = pod.metadata.labels.as_ref().is_some_and(|l| {
        l.contains_key("job-name") || l.contains_key("batch.kubernetes.io/job-name")
    });
    owned || labelled
}

/// Reduced state of one container, as compared for idempotency.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum StateKind {
    Running,
    Waiting(String),
    Terminated(i32),
    Unknown,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ContainerSummary {
    pub name: String,
    pub ready: bool,
    pub restart_count: i32,
    pub state: StateKind,
}

/// Reduced pod status, as compared for idempotency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    pub phase: String,
    pub ready: bool,
    pub containers_ready: bool,
    pub containers: Vec<ContainerSummary>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "phase={} ready={}", self.phase, self.ready)?;
        for c in &self.containers {
            let state = match &c.state {
                StateKind::Running => "running".to_string(),
                StateKind::Waiting(r) => format!("waiting:{r}"),
                StateKind::Terminated(code) => format!("terminated:{code}"),
                StateKind::Unknown => "unknown".to_string(),
            };
            write!(
                f,
                " [{} ready={} restarts={} {}]",
                c.name, c.ready, c.restart_count, state
            )?;
        }
        Ok(())
    }
}

fn condition_true(pod: &Pod, type_: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

fn container_summary(cs: &ContainerStatus) -> ContainerSummary {
    let state = match cs.state.as_ref() {
        Some(s) if s.running.is_some() => StateKind::Running,
        Some(s) if s.terminated.is_some() => {
            StateKind::Terminated(s.terminated.as_ref().map_or(0, |t| t.exit_code))
        }
        Some(s) if s.waiting.is_some() => StateKind::Waiting(
            s.waiting
                .as_ref()
                .and_then(|w| w.reason.clone())
                .unwrap_or_default(),
        ),
        _ => StateKind::Unknown,
    };
    ContainerSummary {
        name: cs.name.clone(),
        ready: cs.ready,
        restart_count: cs.restart_count,
        state,
    }
}

/// The reduction of a pod's current status.
pub fn observed(pod: &Pod) -> Summary {
    let status = pod.status.as_ref();
    let mut containers: Vec<ContainerSummary> = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(container_summary)
        .collect();
    containers.sort();
    Summary {
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".to_string()),
        ready: condition_true(pod, "Ready"),
        containers_ready: condition_true(pod, "ContainersReady"),
        containers,
    }
}

/// What to do with the pod now.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Nothing,
    /// Merge-patch the pod's `/status` with `patch`; `summary` is the state it leads to.
    Patch {
        patch: Value,
        summary: Summary,
    },
    /// Delete the pod with grace period 0.
    Delete,
}

/// The decision for one pod: an action now, and when to look again (if ever).
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub action: Action,
    pub wake_at: Option<Timestamp>,
}

impl Plan {
    fn nothing() -> Self {
        Plan {
            action: Action::Nothing,
            wake_at: None,
        }
    }
}

/// RFC 3339 with second precision, as the API server stores `metav1.Time`.
fn time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A stable fake pod IP derived from the UID. Not loopback: Endpoints validation refuses
/// loopback addresses. (Endpoints stay empty anyway while pods have no `spec.nodeName`: the
/// endpoints controller writes `nodeName: ""`, which validation refuses too.)
pub fn pod_ip(uid: &str) -> String {
    // FNV-1a
    let mut h: u32 = 0x811c_9dc5;
    for b in uid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("10.244.{}.{}", (h >> 8) % 256, h % 253 + 2)
}

/// Per-container plan at time `now`.
struct ContainerPlan {
    name: String,
    image: String,
    ready: bool,
    restarts: i32,
    state: StateKind,
    /// Last crash (for `lastState.terminated.finishedAt`).
    last_crash: Option<Timestamp>,
    wake_at: Option<Timestamp>,
}

/// The full decision. `first_seen` is when this process first saw the pod.
pub fn plan(pod: &Pod, first_seen: Timestamp, now: Timestamp, cfg: &Config) -> Plan {
    let meta = &pod.metadata;
    if meta.deletion_timestamp.is_some() {
        if meta.deletion_grace_period_seconds == Some(0) {
            return Plan::nothing();
        }
        return Plan {
            action: Action::Delete,
            wake_at: None,
        };
    }
    let current = observed(pod);
    if current.phase == "Succeeded" || current.phase == "Failed" {
        return Plan::nothing();
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Plan::nothing();
    };
    let containers: Vec<(String, String, Cues)> = spec
        .containers
        .iter()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            let cues = cues(&image);
            (c.name.clone(), image, cues)
        })
        .collect();
    let delay = containers
        .iter()
        .filter_map(|(_, _, c)| c.slow_ms)
        .max()
        .map_or(cfg.ready_delay, |ms| {
            SignedDuration::from_millis(i64::try_from(ms).unwrap_or(i64::MAX / 2))
        });
    let start = first_seen + delay;
    if now < start {
        return Plan {
            action: Action::Nothing,
            wake_at: Some(start),
        };
    }

    let job = is_job_pod(pod);
    let observed_restarts: BTreeMap<&str, i32> = current
        .containers
        .iter()
        .map(|c| (c.name.as_str(), c.restart_count))
        .collect();
    let crash_at = start + cfg.crash_after;
    let plans: Vec<ContainerPlan> = containers
        .iter()
        .map(|(name, image, cues)| {
            let mut p = ContainerPlan {
                name: name.clone(),
                image: image.clone(),
                ready: true,
                restarts: 0,
                state: StateKind::Running,
                last_crash: None,
                wake_at: None,
            };
            if job {
                p.ready = false;
                p.state = StateKind::Terminated(i32::from(cues.fail));
            } else if cues.never_ready {
                p.ready = false;
            } else if cues.crash {
                if now < crash_at {
                    p.wake_at = Some(crash_at);
                } else {
                    let period = i64::try_from(cfg.crash_period.as_millis())
                        .unwrap_or(i64::MAX)
                        .max(1);
                    let elapsed =
                        i64::try_from(now.duration_since(crash_at).as_millis()).unwrap_or(i64::MAX);
                    let k = elapsed / period;
                    let last_crash = crash_at + SignedDuration::from_millis(k * period);
                    let k = i32::try_from(k).unwrap_or(i32::MAX - 1);
                    p.ready = false;
                    // Never count backwards (e.g. after a restart of the fake kubelet).
                    let seen = observed_restarts.get(name.as_str()).copied().unwrap_or(0);
                    p.restarts = (k + 1).max(seen);
                    p.state = StateKind::Waiting("CrashLoopBackOff".to_string());
                    p.last_crash = Some(last_crash);
                    p.wake_at = Some(last_crash + cfg.crash_period);
                }
            }
            p
        })
        .collect();

    let all_ready = !plans.is_empty() && plans.iter().all(|p| p.ready);
    let phase = if !job {
        "Running"
    } else if plans.iter().any(|p| p.state != StateKind::Terminated(0)) {
        "Failed"
    } else {
        "Succeeded"
    };
    let mut desired_containers: Vec<ContainerSummary> = plans
        .iter()
        .map(|p| ContainerSummary {
            name: p.name.clone(),
            ready: p.ready,
            restart_count: p.restarts,
            state: p.state.clone(),
        })
        .collect();
    desired_containers.sort();
    let desired = Summary {
        phase: phase.to_string(),
        ready: all_ready,
        containers_ready: all_ready,
        containers: desired_containers,
    };
    let wake_at = plans.iter().filter_map(|p| p.wake_at).min();
    if desired == current {
        return Plan {
            action: Action::Nothing,
            wake_at,
        };
    }

    let uid = meta.uid.clone().unwrap_or_default();
    // When did Ready last change: at start, or at the first crash if a crash made it unready.
    let never_ready = containers.iter().any(|(_, _, c)| c.never_ready);
    let ready_since = if job || all_ready || never_ready {
        start
    } else {
        crash_at
    };
    let unready: Vec<&str> = plans
        .iter()
        .filter(|p| !p.ready)
        .map(|p| p.name.as_str())
        .collect();
    let ready_condition = |type_: &str| {
        let mut c = json!({
            "type": type_,
            "status": if all_ready { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": time(ready_since),
        });
        if job {
            c["reason"] = json!("PodCompleted");
        } else if !all_ready {
            c["reason"] = json!("ContainersNotReady");
            c["message"] = json!(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            ));
        }
        c
    };
    let container_statuses: Vec<Value> = plans
        .iter()
        .map(|p| {
            let mut s = json!({
                "name": p.name,
                "image": p.image,
                "imageID": format!("fake-kubelet://{}", p.image),
                "containerID": format!("fake-kubelet://{uid}/{}", p.name),
                "ready": p.ready,
                "started": p.state == StateKind::Running,
                "restartCount": p.restarts,
            });
            s["state"] = match &p.state {
                StateKind::Running => json!({"running": {"startedAt": time(start)}}),
                StateKind::Terminated(code) => json!({"terminated": {
                    "exitCode": code,
                    "reason": if *code == 0 { "Completed" } else { "Error" },
                    "startedAt": time(start),
                    "finishedAt": time(start),
                    "containerID": format!("fake-kubelet://{uid}/{}", p.name),
                }}),
                StateKind::Waiting(reason) => json!({"waiting": {
                    "reason": reason,
                    "message": format!("back-off restarting failed container {} (fake-kubelet crash cue)", p.name),
                }}),
                StateKind::Unknown => json!({}),
            };
            if let Some(last) = p.last_crash {
                s["lastState"] = json!({"terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": time(last - cfg.crash_after),
                    "finishedAt": time(last),
                    "containerID": format!("fake-kubelet://{uid}/{}", p.name),
                }});
            }
            s
        })
        .collect();
    let ip = pod_ip(&uid);
    let mut status = json!({
        "phase": phase,
        "hostIP": "127.0.0.1",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": time(start),
        "conditions": [
            {"type": "Initialized", "status": "True", "lastProbeTime": null,
             "lastTransitionTime": time(start)},
            ready_condition("Ready"),
            ready_condition("ContainersReady"),
            {"type": "PodScheduled", "status": "True", "lastProbeTime": null,
             "lastTransitionTime": time(first_seen)},
        ],
        "containerStatuses": container_statuses,
    });
    let init: Vec<Value> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| {
            let image = c.image.clone().unwrap_or_default();
            json!({
                "name": c.name,
                "image": image,
                "imageID": format!("fake-kubelet://{image}"),
                "containerID": format!("fake-kubelet://{uid}/{}", c.name),
                "ready": true,
                "restartCount": 0,
                "state": {"terminated": {
                    "exitCode": 0, "reason": "Completed",
                    "startedAt": time(start), "finishedAt": time(start),
                }},
            })
        })
        .collect();
    if !init.is_empty() {
        status["initContainerStatuses"] = Value::Array(init);
    }
    let mut metadata = json!({ "uid": uid });
    if let Some(rv) = &meta.resource_version {
        // Optimistic concurrency: a 409 means a newer version is on its way through the watch.
        metadata["resourceVersion"] = json!(rv);
    }
    Plan {
        action: Action::Patch {
            patch: json!({ "metadata": metadata, "status": status }),
            summary: desired,
        },
        wake_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type R = anyhow::Result<()>;

    fn ms(n: i64) -> SignedDuration {
        SignedDuration::from_millis(n)
    }

    fn t0() -> anyhow::Result<Timestamp> {
        Ok("2025-01-02T03:04:05.500Z".parse()?)
    }

    fn cfg() -> Config {
        Config::new(ms(300))
    }

    fn pod_with(images: &[&str], labels: Value, owners: Value) -> anyhow::Result<Pod> {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, img)| json!({"name": format!("c{i}"), "image": img}))
            .collect();
        Ok(serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "default", "uid": "u-1",
                         "resourceVersion": "7", "labels": labels, "ownerReferences": owners},
            "spec": {"containers": containers},
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }))?)
    }

    fn pod(images: &[&str]) -> anyhow::Result<Pod> {
        pod_with(images, json!({"app": "x"}), json!([]))
    }

    /// RFC 7386 merge patch, to play the API server.
    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    fn apply(pod: &Pod, plan: &Plan) -> anyhow::Result<Pod> {
        let Action::Patch { patch, .. } = &plan.action else {
            anyhow::bail!("expected a patch, got {plan:?}");
        };
        let mut v = serde_json::to_value(pod)?;
        merge(&mut v, patch);
        Ok(serde_json::from_value(v)?)
    }

    fn summary(plan: &Plan) -> anyhow::Result<&Summary> {
        match &plan.action {
            Action::Patch { summary, .. } => Ok(summary),
            other => anyhow::bail!("expected a patch, got {other:?}"),
        }
    }

    #[test]
    fn tags() {
        assert_eq!(image_tag("nginx:1"), Some("1"));
        assert_eq!(image_tag("nginx"), None);
        assert_eq!(image_tag("localhost:5000/app"), None);
        assert_eq!(image_tag("localhost:5000/app:crash"), Some("crash"));
        assert_eq!(image_tag("app@sha256:abcd"), None);
        assert_eq!(
            image_tag("reg.io/a/b:v2-never-ready"),
            Some("v2-never-ready")
        );
    }

    #[test]
    fn cue_parsing() {
        assert_eq!(cues("nginx:1"), Cues::default());
        assert!(cues("x:never-ready").never_ready);
        assert!(cues("x:v2-never-ready").never_ready);
        assert!(cues("x:crash").crash);
        assert!(cues("x:v2-crash").crash);
        assert!(!cues("x:crashed").crash);
        assert!(
            !cues("crash:1").crash,
            "the cue is in the tag, not the name"
        );
        assert!(cues("busybox:fail").fail);
        assert!(!cues("busybox:failover").fail);
        assert_eq!(cues("x:slow5000").slow_ms, Some(5000));
        assert_eq!(cues("x:v2-slow-3000").slow_ms, Some(3000));
        assert_eq!(cues("x:slow").slow_ms, None);
        assert_eq!(cues("x:slowpoke").slow_ms, None);
    }

    #[test]
    fn job_detection() -> R {
        assert!(!is_job_pod(&pod(&["a:1"])?));
        assert!(is_job_pod(&pod_with(
            &["a:1"],
            json!({"job-name": "j"}),
            json!([])
        )?));
        assert!(is_job_pod(&pod_with(
            &["a:1"],
            json!({"batch.kubernetes.io/job-name": "j"}),
            json!([])
        )?));
        let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1"}]);
        assert!(is_job_pod(&pod_with(&["a:1"], json!({}), owner)?));
        Ok(())
    }

    #[test]
    fn normal_pod_becomes_ready_after_delay_once() -> R {
        let p = pod(&["nginx:1"])?;
        let seen = t0()?;
        let early = plan(&p, seen, seen + ms(100), &cfg());
        assert_eq!(early.action, Action::Nothing);
        assert_eq!(early.wake_at, Some(seen + ms(300)));

        let due = plan(&p, seen, seen + ms(300), &cfg());
        let s = summary(&due)?;
        assert_eq!(s.phase, "Running");
        assert!(s.ready && s.containers_ready);
        assert_eq!(s.containers[0].state, StateKind::Running);
        assert_eq!(due.wake_at, None);
        let Action::Patch { patch, .. } = &due.action else {
            anyhow::bail!("no patch");
        };
        assert_eq!(patch["metadata"]["uid"], "u-1");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        assert_eq!(patch["status"]["podIP"], json!(pod_ip("u-1")));
        assert_eq!(patch["status"]["startTime"], "2025-01-02T03:04:05Z");
        let conds = patch["status"]["conditions"]
            .as_array()
            .ok_or_else(|| anyhow::anyhow!("conditions"))?;
        for ty in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            let c = conds
                .iter()
                .find(|c| c["type"] == ty)
                .ok_or_else(|| anyhow::anyhow!("missing {ty}"))?;
            assert_eq!(c["status"], "True");
            assert!(c["lastTransitionTime"].is_string());
        }
        let cs = &patch["status"]["containerStatuses"][0];
        assert_eq!(cs["name"], "c0");
        assert_eq!(cs["image"], "nginx:1");
        assert_eq!(cs["ready"], true);
        assert_eq!(cs["started"], true);
        assert_eq!(cs["restartCount"], 0);
        assert!(cs["state"]["running"]["startedAt"].is_string());
        assert!(cs["imageID"].is_string());

        // Once applied, nothing more to do, now or later.
        let after = apply(&p, &due)?;
        assert_eq!(observed(&after), *s);
        assert_eq!(plan(&after, seen, seen + ms(300), &cfg()), Plan::nothing());
        assert_eq!(
            plan(&after, seen, seen + ms(99_000), &cfg()),
            Plan::nothing()
        );
        Ok(())
    }

    #[test]
    fn restarted_kubelet_leaves_a_running_pod_alone() -> R {
        let p = pod(&["nginx:1"])?;
        let seen = t0()?;
        let running = apply(&p, &plan(&p, seen, seen + ms(300), &cfg()))?;
        // A new process sees it later: waits for its delay, then finds nothing to change.
        let seen2 = seen + ms(60_000);
        let early = plan(&running, seen2, seen2, &cfg());
        assert_eq!(early.action, Action::Nothing);
        assert_eq!(
            plan(&running, seen2, seen2 + ms(300), &cfg()),
            Plan::nothing()
        );
        Ok(())
    }

    #[test]
    fn never_ready_runs_but_is_never_ready() -> R {
        let p = pod(&["x:never-ready", "sidecar:1"])?;
        let seen = t0()?;
        let due = plan(&p, seen, seen + ms(300), &cfg());
        let s = summary(&due)?.clone();
        assert_eq!(s.phase, "Running");
        assert!(!s.ready && !s.containers_ready);
        assert!(!s.containers[0].ready, "c0 never ready");
        assert!(s.containers[1].ready, "the sidecar is ready");
        assert_eq!(s.containers[0].state, StateKind::Running);
        assert_eq!(due.wake_at, None);
        let Action::Patch { patch, .. } = &due.action else {
            anyhow::bail!("no patch");
        };
        let ready = &patch["status"]["conditions"][1];
        assert_eq!(ready["type"], "Ready");
        assert_eq!(ready["status"], "False");
        assert_eq!(ready["reason"], "ContainersNotReady");
        let after = apply(&p, &due)?;
        assert_eq!(
            plan(&after, seen, seen + ms(3_600_000), &cfg()),
            Plan::nothing()
        );
        Ok(())
    }

    #[test]
    fn crash_is_ready_then_loops() -> R {
        let p = pod(&["app:crash"])?;
        let seen = t0()?;
        let start = seen + ms(300);
        let c = cfg();

        let ready = plan(&p, seen, start, &c);
        assert!(summary(&ready)?.ready);
        assert_eq!(ready.wake_at, Some(start + ms(1000)));
        let p1 = apply(&p, &ready)?;
        assert_eq!(plan(&p1, seen, start + ms(500), &c).action, Action::Nothing);

        let crash1 = plan(&p1, seen, start + ms(1000), &c);
        let s = summary(&crash1)?;
        assert!(!s.ready);
        assert_eq!(s.containers[0].restart_count, 1);
        assert_eq!(
            s.containers[0].state,
            StateKind::Waiting("CrashLoopBackOff".into())
        );
        assert_eq!(crash1.wake_at, Some(start + ms(4000)));
        let Action::Patch { patch, .. } = &crash1.action else {
            anyhow::bail!("no patch");
        };
        let cs = &patch["status"]["containerStatuses"][0];
        assert_eq!(cs["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
        assert_eq!(patch["status"]["phase"], "Running");
        let p2 = apply(&p1, &crash1)?;
        // Same window: idempotent, but keeps the timer.
        let same = plan(&p2, seen, start + ms(2500), &c);
        assert_eq!(same.action, Action::Nothing);
        assert_eq!(same.wake_at, Some(start + ms(4000)));

        let crash2 = plan(&p2, seen, start + ms(4000), &c);
        assert_eq!(summary(&crash2)?.containers[0].restart_count, 2);
        assert_eq!(crash2.wake_at, Some(start + ms(7000)));
        let later = plan(&p2, seen, start + ms(10_500), &c);
        assert_eq!(summary(&later)?.containers[0].restart_count, 4);
        assert!(!summary(&later)?.ready, "never ready again");
        Ok(())
    }

    #[test]
    fn crash_restart_count_never_goes_down() -> R {
        let p = pod(&["app:crash"])?;
        let seen = t0()?;
        let c = cfg();
        let mut p = apply(&p, &plan(&p, seen, seen + ms(30_000), &c))?;
        assert_eq!(observed(&p).containers[0].restart_count, 10);
        // A restarted fake kubelet computes a smaller count: keeps 10, no patch.
        let seen2 = seen + ms(30_000);
        assert_eq!(
            plan(&p, seen2, seen2 + ms(1500), &c).action,
            Action::Nothing
        );
        // Deletion ends the loop.
        p.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(seen2));
        p.metadata.deletion_grace_period_seconds = Some(30);
        let del = plan(&p, seen2, seen2 + ms(1500), &c);
        assert_eq!(del.action, Action::Delete);
        assert_eq!(del.wake_at, None);
        Ok(())
    }

    #[test]
    fn job_pod_succeeds() -> R {
        let p = pod_with(&["busybox:1"], json!({"job-name": "j"}), json!([]))?;
        let seen = t0()?;
        assert_eq!(
            plan(&p, seen, seen + ms(299), &cfg()).action,
            Action::Nothing
        );
        let due = plan(&p, seen, seen + ms(300), &cfg());
        let s = summary(&due)?;
        assert_eq!(s.phase, "Succeeded");
        assert_eq!(s.containers[0].state, StateKind::Terminated(0));
        let Action::Patch { patch, .. } = &due.action else {
            anyhow::bail!("no patch");
        };
        let term = &patch["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(term["exitCode"], 0);
        assert_eq!(term["reason"], "Completed");
        let done = apply(&p, &due)?;
        assert_eq!(plan(&done, seen, seen + ms(5000), &cfg()), Plan::nothing());
        Ok(())
    }

    #[test]
    fn job_pod_fails() -> R {
        let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j1"}]);
        let p = pod_with(&["busybox:fail"], json!({}), owner)?;
        let seen = t0()?;
        let due = plan(&p, seen, seen + ms(300), &cfg());
        assert_eq!(summary(&due)?.phase, "Failed");
        let Action::Patch { patch, .. } = &due.action else {
            anyhow::bail!("no patch");
        };
        let term = &patch["status"]["containerStatuses"][0]["state"]["terminated"];
        assert_eq!(term["exitCode"], 1);
        assert_eq!(term["reason"], "Error");
        let done = apply(&p, &due)?;
        assert_eq!(plan(&done, seen, seen + ms(5000), &cfg()), Plan::nothing());
        Ok(())
    }

    #[test]
    fn fail_outside_a_job_is_just_running() -> R {
        let p = pod(&["busybox:fail"])?;
        let seen = t0()?;
        let s = summary(&plan(&p, seen, seen + ms(300), &cfg()))?.clone();
        assert_eq!(s.phase, "Running");
        assert!(s.ready);
        Ok(())
    }

    #[test]
    fn slow_overrides_the_delay() -> R {
        let p = pod(&["app:slow5000", "side:1"])?;
        let seen = t0()?;
        let early = plan(&p, seen, seen + ms(4999), &cfg());
        assert_eq!(early.action, Action::Nothing);
        assert_eq!(early.wake_at, Some(seen + ms(5000)));
        assert!(summary(&plan(&p, seen, seen + ms(5000), &cfg()))?.ready);
        // Also shorter than the default.
        let quick = pod(&["app:slow0"])?;
        assert!(summary(&plan(&quick, seen, seen, &cfg()))?.ready);
        Ok(())
    }

    #[test]
    fn deleting_pod_is_deleted_once() -> R {
        let mut p = pod(&["nginx:1"])?;
        let seen = t0()?;
        p.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(seen));
        p.metadata.deletion_grace_period_seconds = Some(30);
        assert_eq!(plan(&p, seen, seen, &cfg()).action, Action::Delete);
        // After our grace-0 delete it only waits for finalizers: leave it.
        p.metadata.deletion_grace_period_seconds = Some(0);
        assert_eq!(plan(&p, seen, seen + ms(1000), &cfg()), Plan::nothing());
        Ok(())
    }

    #[test]
    fn terminal_pods_are_left_alone() -> R {
        let mut p = pod(&["app:crash"])?;
        if let Some(s) = p.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        assert_eq!(plan(&p, t0()?, t0()? + ms(9000), &cfg()), Plan::nothing());
        Ok(())
    }

    #[test]
    fn pod_ips_are_stable_and_not_loopback() {
        assert_eq!(pod_ip("abc"), pod_ip("abc"));
        assert!(pod_ip("abc").starts_with("10.244."));
    }
}
