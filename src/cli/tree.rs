//! `get rollout` as text: a header (status, strategy, step, weights, images, replica counts) and
//! the tree Rollout → revision → ReplicaSet → Pod (and AnalysisRun). A pure function of the
//! objects, `now` and the colour switch, pinned by the golden files in `tests/golden/`.

use std::collections::BTreeSet;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::Value;

use crate::api::consts::{ANNOTATION_SCALE_DOWN_DEADLINE, PAUSE_REASON_CANARY_PAUSE_STEP};
use crate::api::rollout::step_string;
use crate::api::rollout::{CanaryStep, Rollout, RolloutStatus};
use crate::cli::render::*;
use crate::rollout::status::effective_phase;
use crate::time::pause_duration_seconds;

/// Width of the header's label column.
const LABEL: usize = 17;

/// What the tree needs of an AnalysisRun, read from its JSON so the plugin does not depend on
/// the AnalysisRun type's decoding.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnalysisRunInfo {
    pub name: String,
    pub owner_uids: Vec<String>,
    pub revision: i64,
    pub phase: String,
    pub successful: i64,
    pub failed: i64,
    pub inconclusive: i64,
    pub error: i64,
    pub created: Option<Time>,
}

impl AnalysisRunInfo {
    pub fn from_json(v: &Value) -> AnalysisRunInfo {
        let meta = &v["metadata"];
        let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let mut info = AnalysisRunInfo {
            name: str_of(&meta["name"]),
            owner_uids: meta["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| str_of(&o["uid"]))
                .collect(),
            revision: meta["annotations"][crate::api::consts::ANNOTATION_REVISION]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            phase: str_of(&v["status"]["phase"]),
            created: serde_json::from_value(meta["creationTimestamp"].clone()).ok(),
            ..Default::default()
        };
        for m in v["status"]["metricResults"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let n = |k: &str| m[k].as_i64().unwrap_or(0);
            info.successful += n("successful");
            info.failed += n("failed");
            info.inconclusive += n("inconclusive");
            info.error += n("error");
        }
        info
    }
}

/// The objects one `get rollout` frame shows.
#[derive(Clone, Copy, Debug)]
pub struct View<'a> {
    pub rollout: &'a Rollout,
    pub replica_sets: &'a [ReplicaSet],
    pub pods: &'a [Pod],
    pub analysis_runs: &'a [AnalysisRunInfo],
}

/// The current canary step and its index, as Argo's `GetCurrentCanaryStep`: `None` without
/// canary steps; the step is `None` once every step is done.
pub fn current_step(ro: &Rollout) -> Option<(Option<&CanaryStep>, i32)> {
    let steps = ro.spec.strategy.canary.as_ref()?.steps.as_ref()?;
    if steps.is_empty() {
        return None;
    }
    let idx = ro
        .status
        .as_ref()
        .and_then(|s| s.current_step_index)
        .unwrap_or(0);
    Some((usize::try_from(idx).ok().and_then(|i| steps.get(i)), idx))
}

fn max_weight(ro: &Rollout) -> i32 {
    ro.spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.traffic_routing.as_ref())
        .and_then(|t| t.max_traffic_weight)
        .unwrap_or(100)
}

/// The weight the steps ask for now (Argo's `GetCurrentSetWeight`): 0 when aborted, the
/// maximum once the steps are done, else the last `setWeight` at or before the current step.
pub fn set_weight(ro: &Rollout) -> i32 {
    if ro.status.as_ref().and_then(|s| s.abort) == Some(true) {
        return 0;
    }
    let Some((Some(_), idx)) = current_step(ro) else {
        return max_weight(ro);
    };
    let steps = ro.spec.canary_steps();
    steps
        .iter()
        .take(usize::try_from(idx).unwrap_or(0) + 1)
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0)
}

/// The roles of a ReplicaSet, in display order.
fn roles(ro: &Rollout, status: &RolloutStatus, rs: &ReplicaSet) -> Vec<&'static str> {
    let mut tags = Vec::new();
    let Some(hash) = rs_hash(rs) else {
        return tags;
    };
    let is = |v: &Option<String>| v.as_deref() == Some(hash);
    if let Some(canary) = &ro.spec.strategy.canary {
        let ping_pong = canary.ping_pong.is_some();
        let stable_is_ping = status
            .canary
            .as_ref()
            .and_then(|c| c.stable_ping_pong.as_deref())
            == Some(crate::api::consts::PING_PONG_PING);
        if is(&status.stable_rs) {
            tags.push(TAG_STABLE);
            if ping_pong {
                tags.push(if stable_is_ping { TAG_PING } else { TAG_PONG });
            }
        } else if is(&status.current_pod_hash) {
            tags.push(TAG_CANARY);
            if ping_pong {
                tags.push(if stable_is_ping { TAG_PONG } else { TAG_PING });
            }
        }
    }
    if ro.spec.strategy.blue_green.is_some() {
        if is(&status.stable_rs) {
            tags.push(TAG_STABLE);
        }
        let bg = status.blue_green.as_ref();
        if bg.is_some_and(|b| is(&b.active_selector)) {
            tags.push(TAG_ACTIVE);
        } else if bg.is_some_and(|b| is(&b.preview_selector)) {
            tags.push(TAG_PREVIEW);
        }
    }
    tags
}

fn owned_by(
    owners: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    uid: &str,
) -> bool {
    owners.iter().any(|o| o.uid == uid)
}

/// The ReplicaSets of the rollout, newest revision first.
fn owned_replica_sets<'a>(v: &View<'a>) -> Vec<&'a ReplicaSet> {
    let uid = v.rollout.metadata.uid.as_deref().unwrap_or_default();
    let mut rss: Vec<&ReplicaSet> = v
        .replica_sets
        .iter()
        .filter(|rs| {
            owned_by(
                rs.metadata.owner_references.as_deref().unwrap_or_default(),
                uid,
            )
        })
        .collect();
    rss.sort_by(|a, b| {
        let ra = revision_of(a.metadata.annotations.as_ref());
        let rb = revision_of(b.metadata.annotations.as_ref());
        rb.cmp(&ra)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    rss
}

fn pods_of<'a>(v: &View<'a>, rs: &ReplicaSet) -> Vec<&'a Pod> {
    let uid = rs.metadata.uid.as_deref().unwrap_or_default();
    let mut pods: Vec<&Pod> = v
        .pods
        .iter()
        .filter(|p| {
            owned_by(
                p.metadata.owner_references.as_deref().unwrap_or_default(),
                uid,
            )
        })
        .collect();
    pods.sort_by(|a, b| {
        let ca = a.metadata.creation_timestamp.as_ref().map(|t| t.0);
        let cb = b.metadata.creation_timestamp.as_ref().map(|t| t.0);
        ca.cmp(&cb)
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    pods
}

/// The images of the ReplicaSets that have pods, with the roles running each (Argo's `Images`).
/// An image's tags keep the order of its ReplicaSet's roles (`stable, active`) until a second
/// ReplicaSet brings the same image; the merged tags are then sorted, as Argo's `mergeTags` does.
fn images(
    v: &View,
    status: &RolloutStatus,
    rss: &[&ReplicaSet],
) -> Vec<(String, Vec<&'static str>)> {
    let mut images: Vec<(String, Vec<&'static str>)> = Vec::new();
    for rs in rss {
        if rs.status.as_ref().map_or(0, |s| s.replicas) <= 0 {
            continue;
        }
        let tags = roles(v.rollout, status, rs);
        let containers = rs
            .spec
            .template
            .as_ref()
            .and_then(|t| t.spec.as_ref())
            .map(|s| s.containers.as_slice())
            .unwrap_or_default();
        for c in containers {
            let image = c.image.clone().unwrap_or_default();
            match images.iter_mut().find(|(i, _)| *i == image) {
                Some((_, t)) => {
                    let merged: BTreeSet<&'static str> =
                        t.iter().chain(tags.iter()).copied().collect();
                    *t = merged.into_iter().collect();
                }
                None => images.push((image, tags.clone())),
            }
        }
    }
    images.sort_by(|a, b| a.0.cmp(&b.0));
    images
}

/// The step column: `i/n`, then what the current step does and, for a timed pause in progress,
/// how long is left.
fn step_text(ro: &Rollout, status: &RolloutStatus, now: Timestamp) -> String {
    let n = ro
        .spec
        .strategy
        .canary
        .as_ref()
        .and_then(|c| c.steps.as_ref())
        .map_or(0, Vec::len);
    let (Some(idx), true) = (status.current_step_index, n > 0) else {
        return "-".into();
    };
    let mut text = format!("{idx}/{n}");
    // An aborted rollout is not executing its step; describing it would mislead.
    if status.abort == Some(true) {
        return text;
    }
    if let Some((Some(step), _)) = current_step(ro) {
        let mut what = step_string(step);
        let started = status
            .pause_conditions
            .iter()
            .flatten()
            .find(|c| c.reason == PAUSE_REASON_CANARY_PAUSE_STEP)
            .map(|c| c.start_time.0);
        if let (Some(d), Some(start)) = (
            step.pause.as_ref().and_then(|p| p.duration.as_ref()),
            started,
        ) {
            let left = pause_duration_seconds(d) - now.duration_since(start).as_secs();
            what.push_str(&format!(", {} left", human_duration(left.max(0))));
        }
        text.push_str(&format!(" ({what})"));
    }
    text
}

fn actual_weight(ro: &Rollout, status: &RolloutStatus, rss: &[&ReplicaSet]) -> i32 {
    let Some(canary) = &ro.spec.strategy.canary else {
        return 0;
    };
    if !matches!(current_step(ro), Some((Some(_), _))) {
        return max_weight(ro);
    }
    let available = status.available_replicas.unwrap_or(0);
    if available <= 0 {
        return 0;
    }
    if canary.traffic_routing.is_none() {
        rss.iter()
            .filter(|rs| roles(ro, status, rs).contains(&TAG_CANARY))
            .map(|rs| {
                rs.status
                    .as_ref()
                    .and_then(|s| s.available_replicas)
                    .unwrap_or(0)
                    * max_weight(ro)
                    / available
            })
            .next_back()
            .unwrap_or(0)
    } else {
        status
            .canary
            .as_ref()
            .and_then(|c| c.weights.as_ref())
            .map_or_else(|| set_weight(ro), |w| w.canary.weight)
    }
}

fn line(out: &mut String, label: &str, value: &str) {
    out.push_str(&format!("{label:<LABEL$}{value}\n"));
}

/// Tree prefixes for a child: its own (`├──`/`└──`) and the one its children continue with.
fn prefixes(last: bool, parent: &str) -> (String, String) {
    if last {
        (format!("{parent}└──"), format!("{parent}   "))
    } else {
        (format!("{parent}├──"), format!("{parent}│  "))
    }
}

/// The phase a client shows for the rollout (generation and unpause overrides included).
pub fn phase_of(ro: &Rollout) -> (String, String) {
    let status = ro.status.clone().unwrap_or_default();
    effective_phase(ro.metadata.generation, &ro.spec, &status)
}

/// The whole `get rollout` output.
pub fn render(v: &View, now: Timestamp, style: Style) -> String {
    let ro = v.rollout;
    let status = ro.status.clone().unwrap_or_default();
    let (phase, message) = phase_of(ro);
    let rss = owned_replica_sets(v);
    let mut out = String::new();
    line(
        &mut out,
        "Name:",
        ro.metadata.name.as_deref().unwrap_or_default(),
    );
    line(
        &mut out,
        "Namespace:",
        ro.metadata.namespace.as_deref().unwrap_or_default(),
    );
    line(
        &mut out,
        "Status:",
        &format!("{} {phase}", style.icon(phase_icon(&phase))),
    );
    if !message.is_empty() {
        line(&mut out, "Message:", &message);
    }
    // Argo leaves the strategy empty when neither is set (an InvalidSpec rollout).
    let strategy = if ro.spec.strategy.canary.is_some() {
        "Canary"
    } else if ro.spec.strategy.blue_green.is_some() {
        "BlueGreen"
    } else {
        ""
    };
    line(&mut out, "Strategy:", strategy);
    if ro.spec.strategy.canary.is_some() {
        line(&mut out, "  Step:", &step_text(ro, &status, now));
        line(&mut out, "  SetWeight:", &set_weight(ro).to_string());
        line(
            &mut out,
            "  ActualWeight:",
            &actual_weight(ro, &status, &rss).to_string(),
        );
    }
    for (i, (image, tags)) in images(v, &status, &rss).iter().enumerate() {
        let label = if i == 0 { "Images:" } else { "" };
        let text = if tags.is_empty() {
            image.clone()
        } else {
            let tags: Vec<String> = tags.iter().map(|t| style.tagged(t, t)).collect();
            format!("{image} ({})", tags.join(", "))
        };
        line(&mut out, label, &text);
    }
    out.push_str("Replicas:\n");
    let count = |n: Option<i32>| n.unwrap_or(0).to_string();
    line(
        &mut out,
        "  Desired:",
        &ro.spec.replicas.unwrap_or(1).to_string(),
    );
    line(&mut out, "  Current:", &count(status.replicas));
    line(&mut out, "  Updated:", &count(status.updated_replicas));
    line(&mut out, "  Ready:", &count(status.ready_replicas));
    line(&mut out, "  Available:", &count(status.available_replicas));
    out.push('\n');
    out.push_str(&align(&tree_rows(v, &status, &rss, &phase, now, style)));
    out
}

fn tree_rows(
    v: &View,
    status: &RolloutStatus,
    rss: &[&ReplicaSet],
    phase: &str,
    now: Timestamp,
    style: Style,
) -> Vec<Vec<String>> {
    let ro = v.rollout;
    let uid = ro.metadata.uid.as_deref().unwrap_or_default();
    let mut rows = vec![
        ["NAME", "KIND", "STATUS", "AGE", "INFO"]
            .map(String::from)
            .to_vec(),
        vec![
            format!(
                "{ICON_ROLLOUT} {}",
                ro.metadata.name.as_deref().unwrap_or_default()
            ),
            "Rollout".into(),
            format!("{} {phase}", style.icon(phase_icon(phase))),
            age(ro.metadata.creation_timestamp.as_ref(), now),
            String::new(),
        ],
    ];
    let mut runs: Vec<&AnalysisRunInfo> = v
        .analysis_runs
        .iter()
        .filter(|a| a.owner_uids.iter().any(|u| u == uid))
        .collect();
    runs.sort_by(|a, b| {
        let ca = a.created.as_ref().map(|t| t.0);
        let cb = b.created.as_ref().map(|t| t.0);
        ca.cmp(&cb).then_with(|| a.name.cmp(&b.name))
    });
    let mut revisions: Vec<i64> = rss
        .iter()
        .map(|rs| revision_of(rs.metadata.annotations.as_ref()))
        .chain(runs.iter().map(|a| a.revision))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    revisions.reverse();
    for (ri, rev) in revisions.iter().enumerate() {
        let (prefix, sub) = prefixes(ri + 1 == revisions.len(), "");
        rows.push(vec![
            format!("{prefix}{ICON_REVISION} revision:{rev}"),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        let rev_rss: Vec<&&ReplicaSet> = rss
            .iter()
            .filter(|rs| revision_of(rs.metadata.annotations.as_ref()) == *rev)
            .collect();
        let rev_runs: Vec<&&AnalysisRunInfo> = runs.iter().filter(|a| a.revision == *rev).collect();
        let total = rev_rss.len() + rev_runs.len();
        for (ci, rs) in rev_rss.iter().enumerate() {
            let (prefix, child_sub) = prefixes(ci + 1 == total, &sub);
            replica_set_rows(&mut rows, v, status, rs, &prefix, &child_sub, now, style);
        }
        for (ai, run) in rev_runs.iter().enumerate() {
            let (prefix, _) = prefixes(rev_rss.len() + ai + 1 == total, &sub);
            let mut info = Vec::new();
            for (icon, n) in [
                (ICON_OK, run.successful),
                (ICON_BAD, run.failed),
                (ICON_UNKNOWN, run.inconclusive),
                (ICON_WARNING, run.error),
            ] {
                if n > 0 {
                    info.push(format!("{} {n}", style.icon(icon)));
                }
            }
            let phase = if run.phase.is_empty() {
                "Pending"
            } else {
                run.phase.as_str()
            };
            rows.push(vec![
                format!(
                    "{prefix}{ICON_ANALYSIS} {}",
                    style.analysis(&run.name, phase)
                ),
                "AnalysisRun".into(),
                format!("{} {phase}", style.icon(analysis_icon(phase))),
                age(run.created.as_ref(), now),
                info.join(","),
            ]);
        }
    }
    rows
}

#[allow(clippy::too_many_arguments)]
fn replica_set_rows(
    rows: &mut Vec<Vec<String>>,
    v: &View,
    status: &RolloutStatus,
    rs: &ReplicaSet,
    prefix: &str,
    sub: &str,
    now: Timestamp,
    style: Style,
) {
    let tags = roles(v.rollout, status, rs);
    let raw_name = rs.metadata.name.as_deref().unwrap_or_default();
    let name = match tags.first() {
        Some(t) => style.tagged(raw_name, t),
        None => raw_name.to_string(),
    };
    let mut info: Vec<String> = tags.iter().map(|t| style.tagged(t, t)).collect();
    if let Some(deadline) = rs
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_SCALE_DOWN_DEADLINE))
    {
        info.push(format!("delay:{}", scale_down_delay(deadline, now)));
    }
    let health = replica_set_status(rs);
    rows.push(vec![
        format!("{prefix}{ICON_REPLICA_SET} {name}"),
        "ReplicaSet".into(),
        format!("{} {health}", style.icon(replica_set_icon(health))),
        age(rs.metadata.creation_timestamp.as_ref(), now),
        info.join(","),
    ]);
    let pods = pods_of(v, rs);
    for (i, pod) in pods.iter().enumerate() {
        let (prefix, _) = prefixes(i + 1 == pods.len(), sub);
        let st = pod_state(pod);
        let mut info = format!("ready:{}", st.ready);
        if st.restarts > 0 {
            info.push_str(&format!(",restarts:{}", st.restarts));
        }
        rows.push(vec![
            format!(
                "{prefix}{ICON_POD} {}",
                pod.metadata.name.as_deref().unwrap_or_default()
            ),
            "Pod".into(),
            format!("{} {}", style.icon(pod_icon(&st.status)), st.status),
            age(pod.metadata.creation_timestamp.as_ref(), now),
            info,
        ]);
    }
}

/// What is left of a ReplicaSet's scale-down delay (Argo's `ScaleDownDelay`): `passed` once the
/// deadline is behind `now`, empty when the annotation is not a timestamp.
fn scale_down_delay(deadline: &str, now: Timestamp) -> String {
    match deadline.parse::<Timestamp>() {
        Ok(d) if d < now => "passed".into(),
        Ok(d) => human_duration(d.duration_since(now).as_secs()),
        Err(_) => String::new(),
    }
}

/// The frame shown when the rollout is gone (deleted while watching).
pub fn render_missing(name: &str, namespace: &str) -> String {
    format!("Rollout '{name}' not found in namespace '{namespace}' (deleted?)\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rs(hash: &str, image: &str) -> ReplicaSet {
        serde_json::from_value(json!({
            "metadata": {"name": format!("frontend-{hash}"), "uid": format!("uid-{hash}"),
                "labels": {"rollouts-pod-template-hash": hash},
                "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                    "name": "frontend", "uid": "uid-ro"}]},
            "spec": {"replicas": 1, "selector": {}, "template": {"spec": {"containers": [
                {"name": "app", "image": image}]}}},
            "status": {"replicas": 1}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn blue_green(active: &str, preview: &str, stable: &str) -> Rollout {
        serde_json::from_value(json!({
            "metadata": {"name": "frontend", "uid": "uid-ro"},
            "spec": {"selector": {}, "template": {}, "strategy": {"blueGreen": {"activeService": "a"}}},
            "status": {"stableRS": stable,
                "blueGreen": {"activeSelector": active, "previewSelector": preview}}
        }))
        .unwrap_or_else(|e| panic!("fixture: {e}"))
    }

    fn image_tags(ro: &Rollout, rss: &[ReplicaSet]) -> Vec<(String, Vec<&'static str>)> {
        let v = View {
            rollout: ro,
            replica_sets: rss,
            pods: &[],
            analysis_runs: &[],
        };
        let status = ro.status.clone().unwrap_or_default();
        images(&v, &status, &rss.iter().collect::<Vec<_>>())
    }

    #[test]
    fn image_tags_keep_role_order_until_merged() {
        let ro = blue_green("old", "new", "old");
        // Each image from one ReplicaSet: the roles in Argo's order, stable before active.
        let tags = image_tags(&ro, &[rs("new", "app:v2"), rs("old", "app:v1")]);
        assert_eq!(
            tags,
            vec![
                ("app:v1".to_string(), vec![TAG_STABLE, TAG_ACTIVE]),
                ("app:v2".to_string(), vec![TAG_PREVIEW]),
            ]
        );
        // One image in both ReplicaSets (a template change that kept the image): merged and
        // sorted, as Argo's mergeTags leaves them.
        let tags = image_tags(&ro, &[rs("new", "app:v1"), rs("old", "app:v1")]);
        assert_eq!(
            tags,
            vec![(
                "app:v1".to_string(),
                vec![TAG_ACTIVE, TAG_PREVIEW, TAG_STABLE]
            )]
        );
    }

    #[test]
    fn scale_down_delay_as_argo_prints_it() {
        let now: Timestamp = "2026-01-01T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        assert_eq!(scale_down_delay("2026-01-01T12:00:25Z", now), "25s");
        assert_eq!(scale_down_delay("2026-01-01T16:00:00Z", now), "4h");
        assert_eq!(scale_down_delay("2026-01-01T12:00:00Z", now), "0s");
        assert_eq!(scale_down_delay("2026-01-01T11:59:59Z", now), "passed");
        assert_eq!(scale_down_delay("soon", now), "");
    }
}
