//! Blue-green end to end: one scenario per upstream Argo Rollouts e2e test that exercises the
//! blue-green strategy (test/e2e/bluegreen_test.go, functional_test.go, analysis_test.go), with
//! the same manifests, actions and assertions (digest: notes/bluegreen-e2e.md), plus Service and
//! Endpoints checks of our own.
//!
//! Differences forced by the fake kubelet: readiness probes are played by `slow<N>` image tags
//! (the pod becomes Ready after N ms), an image that never becomes ready by `never-ready`, and
//! the `sleep-job` AnalysisTemplate's `sleep {{args.duration}} && exit {{args.exit-code}}` by
//! the image tag `slow<duration>000-<exit-code>`, where a failing exit code is spelled `fail`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Result, anyhow, bail, ensure};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sluice::api::analysis::{AnalysisRun, AnalysisTemplate};

use crate::harness::{Cluster, Fixture, POD_HASH, View, root};

const T: Duration = Duration::from_secs(60);
const SCALE_DOWN_DEADLINE: &str = "scale-down-deadline";

// ---------------------------------------------------------------------------------------------
// Manifests
// ---------------------------------------------------------------------------------------------

/// A blue-green Rollout as upstream writes them: `top` are lines under `spec:` (2-space indent),
/// `bg` lines under `blueGreen:` (6-space indent).
fn manifest(name: &str, app: &str, top: &str, bg: &str, image: &str, cpu: &str) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {name}
spec:
{top}  strategy:
    blueGreen:
{bg}  selector:
    matchLabels:
      app: {app}
  template:
    metadata:
      labels:
        app: {app}
    spec:
      containers:
      - name: {name}
        image: {image}
        resources:
          requests:
            memory: 16Mi
            cpu: {cpu}
"#
    )
}

fn bg_rollout(name: &str, app: &str, top: &str, bg: &str) -> String {
    manifest(name, app, top, bg, "nginx:1.19-alpine", "1m")
}

/// Upstream's `functional/analysistemplate-sleep-job.yaml`, with the sleep and the exit code
/// carried by the image tag (see the module comment).
const SLEEP_JOB: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: sleep-job
spec:
  args:
  - name: duration
    value: "0"
  - name: exit-code
    value: "0"
  - name: count
    value: "1"
  metrics:
  - name: sleep-job
    count: "{{args.count}}"
    provider:
      job:
        spec:
          backoffLimit: 0
          template:
            spec:
              restartPolicy: Never
              containers:
              - name: sleep-job
                image: "busybox:slow{{args.duration}}000-{{args.exit-code}}"
                command: [sh, -c, -x]
                args: ["sleep {{args.duration}} && exit {{args.exit-code}}"]
"#;

async fn apply_sleep_job(f: &Fixture) -> Result<()> {
    let t: AnalysisTemplate =
        serde_saphyr::from_str(SLEEP_JOB).map_err(|e| anyhow!("template: {e}"))?;
    let api: Api<AnalysisTemplate> = Api::namespaced(f.client.clone(), &f.ns);
    api.patch(
        "sleep-job",
        &PatchParams::apply("e2e-user").force(),
        &Patch::Apply(&t),
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// When
// ---------------------------------------------------------------------------------------------

/// Upstream `UpdateSpec()` without arguments: a new pod-template annotation, hence a new revision.
async fn update_spec(f: &Fixture) -> Result<()> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
        .to_string();
    f.when_spec_patch(json!({"spec": {"template": {"metadata": {"annotations": {"update": now}}}}}))
        .await
}

/// Upstream `PromoteRollout()`: waits for the generation to be observed and for the controller
/// to have set its pause conditions, then clears them as `kubectl argo rollouts promote` does.
async fn promote(f: &Fixture) -> Result<()> {
    f.then("ready to promote", T, |v| {
        v.observed() && !(controller_pause(v) && v.pause_reasons().is_empty())
    })
    .await?;
    f.promote().await
}

/// Upstream `PromoteRolloutFull()`.
async fn promote_full(f: &Fixture) -> Result<()> {
    f.then("ready to promote", T, |v| {
        v.observed() && !(controller_pause(v) && v.pause_reasons().is_empty())
    })
    .await?;
    f.when_status_patch(json!({"status": {"promoteFull": true}}))
        .await
}

async fn abort(f: &Fixture) -> Result<()> {
    f.when_status_patch(json!({"status": {"abort": true}}))
        .await
}

async fn retry(f: &Fixture) -> Result<()> {
    f.when_status_patch(json!({"status": {"abort": false}}))
        .await
}

async fn sleep(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

// ---------------------------------------------------------------------------------------------
// Then
// ---------------------------------------------------------------------------------------------

fn controller_pause(v: &View) -> bool {
    v.ro.status.as_ref().and_then(|s| s.controller_pause) == Some(true)
}

/// Argo's `rolloututil.GetRolloutPhase`, as upstream's Wait/ExpectRolloutStatus read it.
fn phase(v: &View) -> String {
    if !v.observed() {
        return "Progressing".into();
    }
    if controller_pause(v) && v.pause_reasons().is_empty() {
        return "Progressing".into();
    }
    v.phase()
}

/// Upstream `WaitForRolloutStatus`.
async fn wait_phase(f: &Fixture, want: &str) -> Result<View> {
    wait_phase_for(f, want, T).await
}

async fn wait_phase_for(f: &Fixture, want: &str, t: Duration) -> Result<View> {
    f.then(&format!("phase {want}"), t, |v| phase(v) == want)
        .await
}

/// Upstream `ExpectRolloutStatus` (no waiting).
async fn expect_phase(f: &Fixture, want: &str) -> Result<View> {
    let v = f.view().await?;
    ensure!(
        phase(&v) == want,
        "[{}] phase {want} expected, got {} ({:?})",
        f.name,
        phase(&v),
        v.message()
    );
    Ok(v)
}

/// Upstream `ExpectReplicaCounts(desired, current, updated, ready, available)`. Upstream reads
/// once; here the counts get up to 3 s to arrive, because on a loaded two-core machine the chain
/// scale-down → ReplicaSet status → Rollout status can take longer than the upstream sleeps.
async fn expect_counts(f: &Fixture, want: (i32, i32, i32, i32, i32)) -> Result<View> {
    let until = Instant::now() + Duration::from_secs(3);
    let mut v = f.view().await?;
    while v.counts() != want && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
        v = f.view().await?;
    }
    ensure!(
        v.counts() == want,
        "[{}] replica counts (desired, current, updated, ready, available): want {want:?}, got {:?}",
        f.name,
        v.counts()
    );
    Ok(v)
}

/// Upstream `ExpectRevisionPodCount`.
async fn expect_rev_pods(f: &Fixture, rev: u32, want: usize) -> Result<()> {
    let got = f.revision_pods(rev).await?;
    ensure!(
        got == want,
        "[{}] revision {rev}: {want} pods expected, saw {got}",
        f.name
    );
    Ok(())
}

/// Upstream `ExpectRevisionScaleDown`: the revision's ReplicaSet has (or lacks) the
/// `scale-down-deadline` annotation.
async fn expect_scale_down(f: &Fixture, rev: u32, want: bool) -> Result<()> {
    let v = f.view().await?;
    ensure!(v.revision_rs(rev).is_some(), "no revision {rev}");
    let has = v.revision_annotation(rev, SCALE_DOWN_DEADLINE).is_some();
    ensure!(
        has == want,
        "[{}] revision {rev}: scale-down-deadline present={has}, expected {want}",
        f.name
    );
    Ok(())
}

/// Upstream `ExpectStableRevision`.
async fn expect_stable(f: &Fixture, rev: u32) -> Result<()> {
    let v = f.view().await?;
    let hash = v.revision_hash(rev);
    ensure!(
        hash.is_some() && v.stable() == hash,
        "[{}] stableRS {:?} expected to be revision {rev} ({hash:?})",
        f.name,
        v.stable()
    );
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Which {
    Active,
    Preview,
}

/// Upstream `ExpectActiveRevision` / `ExpectPreviewRevision`: within 3 s, the status selector,
/// the Service's `rollouts-pod-template-hash` and the revision's ReplicaSet hash all agree.
/// Also: the Service carries `managed-by-rollouts: <rollout>`.
async fn expect_service_revision(f: &Fixture, which: Which, svc: &str, rev: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let v = f.view().await?;
        let status = match which {
            Which::Active => v.active_selector(),
            Which::Preview => v.preview_selector(),
        };
        let svc_hash = f.service_hash(svc).await?;
        let rs_hash = v.revision_hash(rev);
        let managed = f.service_managed_by(svc).await?;
        if rs_hash.is_some()
            && status == rs_hash
            && svc_hash == rs_hash
            && managed.as_deref() == Some(f.rollout.as_str())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "[{}] {which:?} revision {rev} ({rs_hash:?}) expected: status selector {status:?}, Service {svc} selector hash {svc_hash:?}, managed-by {managed:?}",
                f.name
            );
        }
        sleep(0.2).await;
    }
}

async fn expect_active(f: &Fixture, svc: &str, rev: u32) -> Result<()> {
    expect_service_revision(f, Which::Active, svc, rev).await
}

async fn expect_preview(f: &Fixture, svc: &str, rev: u32) -> Result<()> {
    expect_service_revision(f, Which::Preview, svc, rev).await
}

/// Upstream `WaitForActiveRevision`: status.blueGreen.activeSelector is the revision's hash.
async fn wait_active(f: &Fixture, rev: u32) -> Result<View> {
    f.then(&format!("active revision {rev}"), T, |v| {
        v.revision_hash(rev).is_some() && v.active_selector() == v.revision_hash(rev)
    })
    .await
}

/// Upstream `ExpectAnalysisRunCount`: AnalysisRuns owned by the Rollout.
async fn analysis_runs(f: &Fixture) -> Result<Vec<AnalysisRun>> {
    let ro = f.rollouts().get(&f.rollout).await?;
    let uid = ro.uid().unwrap_or_default();
    let api: Api<AnalysisRun> = Api::namespaced(f.client.clone(), &f.ns);
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
        .collect())
}

async fn expect_runs(f: &Fixture, want: usize) -> Result<()> {
    let runs = analysis_runs(f).await?;
    ensure!(
        runs.len() == want,
        "[{}] {want} AnalysisRuns expected, got {:?}",
        f.name,
        runs.iter().map(|r| r.name_any()).collect::<Vec<_>>()
    );
    Ok(())
}

/// Labels of the (not deleting) pods of a revision.
async fn revision_pod_labels(f: &Fixture, rev: u32) -> Result<Vec<BTreeMap<String, String>>> {
    let v = f.view().await?;
    let hash = v
        .revision_hash(rev)
        .ok_or_else(|| anyhow!("no revision {rev}"))?;
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns);
    Ok(pods
        .list(&ListParams::default().labels(&format!("{POD_HASH}={hash}")))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.metadata.labels.unwrap_or_default())
        .collect())
}

async fn expect_rev_labels<P>(f: &Fixture, rev: u32, what: &str, pred: P) -> Result<()>
where
    P: Fn(&BTreeMap<String, String>) -> bool,
{
    let labels = revision_pod_labels(f, rev).await?;
    ensure!(
        !labels.is_empty() && labels.iter().all(&pred),
        "[{}] revision {rev}: {what}; pod labels {labels:?}",
        f.name
    );
    Ok(())
}

/// The messages of the `SwitchService` events about Service `svc`, in order.
fn switches(events: &[(String, String)], svc: &str) -> Vec<String> {
    let prefix = format!("Switched selector for service '{svc}' ");
    events
        .iter()
        .filter(|(r, m)| r == "SwitchService" && m.starts_with(&prefix))
        .map(|(_, m)| m.clone())
        .collect()
}

fn switch_msg(svc: &str, from: &str, to: &str) -> String {
    format!("Switched selector for service '{svc}' from '{from}' to '{to}'")
}

/// Rollout created, Services created first: the common Given of most scenarios.
async fn given(f: &mut Fixture, services: &[(&str, &str)], yaml: &str) -> Result<()> {
    for (name, app) in services {
        f.given_service(name, app).await?;
    }
    f.given_rollout(yaml).await
}

// ---------------------------------------------------------------------------------------------
// bluegreen_test.go
// ---------------------------------------------------------------------------------------------

/// TestEphemeralMetadata (bluegreen_test.go:29).
pub async fn bg_ephemeral_metadata(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-ephemeral-metadata").await?;
    let n = "ephemeral-metadata-bg";
    let yaml = bg_rollout(
        n,
        n,
        "  replicas: 2\n",
        "      previewMetadata:\n        labels:\n          role: preview\n      activeMetadata:\n        labels:\n          role: active\n      activeService: ephemeral-metadata-bg\n      autoPromotionEnabled: false\n",
    );
    given(&mut f, &[(n, n)], &yaml).await?;
    f.then("status.replicas 2", T, |v| v.counts().1 == 2)
        .await?;
    let active = |l: &BTreeMap<String, String>| l.get("role").map(String::as_str) == Some("active");
    expect_rev_labels(&f, 1, "all pods have active metadata", active).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    wait_phase(&f, "Paused").await?;
    expect_rev_labels(&f, 2, "revision 2 has preview metadata", |l| {
        l.get("role").map(String::as_str) == Some("preview")
    })
    .await?;
    expect_rev_labels(&f, 1, "revision 1 has active metadata", active).await?;
    f.when_spec_patch(json!({"spec": {"strategy": {"blueGreen": {"previewMetadata": {"labels": {"role": null, "role2": "preview2"}}}}}}))
        .await?;
    sleep(1.0).await;
    expect_rev_labels(&f, 2, "revision 2 has preview metadata2", |l| {
        !l.contains_key("role") && l.get("role2").map(String::as_str) == Some("preview2")
    })
    .await?;
    promote(&f).await?;
    wait_phase(&f, "Healthy").await?;
    sleep(1.0).await;
    expect_rev_labels(&f, 2, "revision 2 has active metadata", active).await?;
    f.when_spec_patch(json!({"spec": {"strategy": {"blueGreen": {"activeMetadata": {"labels": {"role": null, "role2": "active2"}}}}}}))
        .await?;
    sleep(2.0).await;
    expect_rev_labels(&f, 2, "revision 2 has active metadata2", |l| {
        !l.contains_key("role") && l.get("role2").map(String::as_str) == Some("active2")
    })
    .await?;
    f.cleanup().await
}

/// TestBlueGreenProgressDeadlineExceededWithPause / ...WithoutPause (bluegreen_test.go:161,
/// 220): pods become Ready after 10 s (readinessProbe initialDelaySeconds 10 upstream; the
/// `slow10000` image tag here), past progressDeadlineSeconds 5.
pub async fn bg_progress_deadline_exceeded(c: &Cluster, pause: bool) -> Result<()> {
    let (scenario, n) = if pause {
        (
            "bg-progress-deadline-exceeded-with-pause",
            "rollout-bluegreen-with-pause",
        )
    } else {
        (
            "bg-progress-deadline-exceeded-without-pause",
            "rollout-bluegreen-without-pause",
        )
    };
    let mut f = Fixture::new(c, scenario).await?;
    let yaml = manifest(
        n,
        n,
        "  replicas: 1\n  revisionHistoryLimit: 2\n  progressDeadlineSeconds: 5\n",
        // Paused upstream test: autoPromotionEnabled false; the other: true.
        &format!(
            "      autoPromotionEnabled: {}\n      activeService: {n}\n",
            !pause
        ),
        "nginx:1.19-alpine-slow10000",
        "1m",
    );
    given(&mut f, &[(n, n)], &yaml).await?;
    f.then("status.replicas 1", T, |v| v.counts().1 == 1)
        .await?;
    let v = wait_phase(&f, "Degraded").await?;
    ensure!(
        v.message().starts_with("ProgressDeadlineExceeded: "),
        "message {}",
        v.message()
    );
    wait_phase(&f, "Healthy").await?;
    expect_active(&f, n, 1).await?;
    update_spec(&f).await?;
    wait_phase(&f, "Degraded").await?;
    expect_active(&f, n, 1).await?;
    if pause {
        let v = wait_phase(&f, "Paused").await?;
        ensure!(v.message() == "BlueGreenPause", "message {}", v.message());
        promote(&f).await?;
    }
    wait_phase(&f, "Healthy").await?;
    expect_active(&f, n, 2).await?;
    f.cleanup().await
}

/// TestBlueGreenPreviewReplicaCount (bluegreen_test.go:279).
pub async fn bg_preview_replica_count(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-preview-replica-count").await?;
    let (act, prev) = (
        "bluegreen-preview-replicas-active",
        "bluegreen-preview-replicas-preview",
    );
    let app = "bluegreen-preview-replicas";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 2\n",
        &format!(
            "      activeService: {act}\n      previewService: {prev}\n      previewReplicaCount: 1\n      scaleDownDelaySeconds: 5\n      autoPromotionEnabled: false\n"
        ),
    );
    let events = f.watch_events(app).await?;
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 1).await?;
    update_spec(&f).await?;
    let v = wait_phase(&f, "Paused").await?;
    ensure!(v.message() == "BlueGreenPause", "message {}", v.message());
    expect_rev_pods(&f, 2, 1).await?;
    expect_rev_pods(&f, 1, 2).await?;
    expect_counts(&f, (2, 3, 1, 2, 2)).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    promote(&f).await?;
    wait_phase(&f, "Healthy").await?;
    expect_counts(&f, (2, 4, 2, 2, 2)).await?;
    expect_active(&f, act, 2).await?;
    expect_preview(&f, prev, 2).await?;
    expect_stable(&f, 2).await?;
    expect_scale_down(&f, 1, true).await?;
    // Our addition: the 5 s scaleDownDelay then scales revision 1 to 0.
    f.then(
        "revision 1 scaled down after 5 s",
        Duration::from_secs(20),
        |v| v.revision_replicas(1) == Some(0),
    )
    .await?;
    let v = f
        .then("counts settle", Duration::from_secs(10), |v| {
            v.counts() == (2, 2, 2, 2, 2)
        })
        .await?;
    let (h1, h2) = (
        v.revision_hash(1).unwrap_or_default(),
        v.revision_hash(2).unwrap_or_default(),
    );
    let all = events.all();
    ensure!(
        switches(&all, act) == [switch_msg(act, "", &h1), switch_msg(act, &h1, &h2)],
        "active switches: {:?}; all events {all:?}",
        switches(&all, act)
    );
    ensure!(
        switches(&all, prev) == [switch_msg(prev, "", &h1), switch_msg(prev, &h1, &h2)],
        "preview switches: {:?}; all events {all:?}",
        switches(&all, prev)
    );
    f.cleanup().await
}

/// TestBlueGreenPreviewReplicaCountPromoteFull (bluegreen_test.go:326).
pub async fn bg_preview_replica_count_promote_full(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-preview-replica-count-promote-full").await?;
    let act = "bluegreen-preview-replicas-active";
    let app = "bluegreen-preview-replicas-promote-full";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 2\n  progressDeadlineSeconds: 1\n",
        &format!(
            "      activeService: {act}\n      previewReplicaCount: 1\n      autoPromotionEnabled: false\n"
        ),
    );
    given(&mut f, &[(act, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    wait_phase(&f, "Paused").await?;
    sleep(2.0).await;
    expect_phase(&f, "Paused").await?;
    expect_counts(&f, (2, 3, 1, 2, 2)).await?;
    expect_active(&f, act, 1).await?;
    promote_full(&f).await?;
    wait_phase(&f, "Healthy").await?;
    expect_counts(&f, (2, 4, 2, 2, 2)).await?;
    expect_active(&f, act, 2).await?;
    f.cleanup().await
}

// ---------------------------------------------------------------------------------------------
// functional_test.go
// ---------------------------------------------------------------------------------------------

/// TestBlueGreenPromoteFull (functional_test.go:192).
pub async fn bg_promote_full(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-promote-full").await?;
    apply_sleep_job(&f).await?;
    let act = "bluegreen-promote-full-active";
    let app = "bluegreen-promote-full";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 3\n",
        &format!(
            "      activeService: {act}\n      autoPromotionEnabled: false\n      prePromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: duration\n          value: \"10\"\n      postPromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n"
        ),
    );
    given(&mut f, &[(act, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    sleep(5.0).await;
    // WaitForPrePromotionAnalysisRunPhase("Running")
    f.then("pre-promotion run Running", T, |v| {
        v.ro.status
            .as_ref()
            .and_then(|s| s.blue_green.as_ref())
            .and_then(|b| b.pre_promotion_analysis_run_status.as_ref())
            .is_some_and(|r| r.status == "Running")
    })
    .await?;
    promote_full(&f).await?;
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 1).await?;
    expect_active(&f, act, 2).await?;
    f.cleanup().await
}

/// TestBlueGreenUpdate (functional_test.go:690), with the manifest of
/// functional/rollout-bluegreen.yaml.
pub async fn bg_update(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-update").await?;
    let n = "bluegreen";
    let yaml = bg_rollout(
        n,
        n,
        "  replicas: 3\n",
        "      activeService: bluegreen\n      scaleDownDelaySeconds: 10\n",
    );
    let events = f.watch_events(n).await?;
    given(&mut f, &[(n, n)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_counts(&f, (3, 3, 3, 3, 3)).await?;
    expect_active(&f, n, 1).await?;
    update_spec(&f).await?;
    wait_phase(&f, "Progressing").await?;
    wait_active(&f, 2).await?;
    expect_counts(&f, (3, 6, 3, 3, 3)).await?;
    wait_phase(&f, "Healthy").await?;
    let v = expect_counts(&f, (3, 6, 3, 3, 3)).await?;
    expect_active(&f, n, 2).await?;
    expect_scale_down(&f, 1, true).await?;
    let want = [
        "RolloutAddedToInformer",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutCompleted",
        "SwitchService",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "RolloutNotCompleted",
        "ScalingReplicaSet",
        "SwitchService",
        "RolloutCompleted",
    ];
    let got = events.settle(&want, Duration::from_secs(3)).await;
    ensure!(
        got == want,
        "event reasons:\n got {got:?}\nwant {want:?}\nevents {:?}",
        events.all()
    );
    let (h1, h2) = (
        v.revision_hash(1).unwrap_or_default(),
        v.revision_hash(2).unwrap_or_default(),
    );
    let all = events.all();
    ensure!(
        switches(&all, n) == [switch_msg(n, "", &h1), switch_msg(n, &h1, &h2)],
        "switches: {:?}",
        switches(&all, n)
    );
    let completed: Vec<_> = all
        .iter()
        .filter(|(r, _)| r == "RolloutCompleted")
        .map(|(_, m)| m.clone())
        .collect();
    ensure!(
        completed
            == [
                format!("Rollout completed update to revision 1 ({h1}): Initial deploy"),
                format!(
                    "Rollout completed update to revision 2 ({h2}): Completed blue-green update"
                ),
            ],
        "RolloutCompleted messages {completed:?}"
    );
    // Our addition: after the 10 s scaleDownDelay revision 1 goes to 0.
    f.then("revision 1 scaled down", Duration::from_secs(25), |v| {
        v.revision_replicas(1) == Some(0) && v.counts() == (3, 3, 3, 3, 3)
    })
    .await?;
    f.cleanup().await
}

/// TestBlueGreenToCanary (functional_test.go:726).
pub async fn bg_to_canary(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-to-canary").await?;
    let n = "bluegreen-to-canary";
    let yaml = bg_rollout(
        n,
        n,
        "  replicas: 2\n",
        "      activeService: bluegreen-to-canary\n      scaleDownDelaySeconds: 5\n",
    );
    given(&mut f, &[(n, n)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_active(&f, n, 1).await?;
    f.when_spec_patch(json!({"spec": {
        "template": {"metadata": {"annotations": {"foo": "bar"}}},
        "strategy": {"blueGreen": null, "canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
    }}))
    .await?;
    wait_phase(&f, "Paused").await?;
    f.then("available 2", T, |v| v.counts().4 == 2).await?;
    expect_counts(&f, (2, 2, 1, 2, 2)).await?;
    let sel = f.service_selector(n).await?;
    let want: BTreeMap<String, String> = [("app".to_string(), n.to_string())].into();
    ensure!(sel == want, "selector of {n}: {sel:?}, expected {want:?}");
    f.cleanup().await
}

/// TestBlueGreenScaleDownDelay (functional_test.go:834).
pub async fn bg_scale_down_delay(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-scale-down-delay").await?;
    let act = "bluegreen-scaledowndelay-active";
    let app = "bluegreen-scaledowndelay";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 1\n",
        &format!(
            "      activeService: {act}\n      scaleDownDelaySeconds: 86400\n      scaleDownDelayRevisionLimit: 2\n"
        ),
    );
    given(&mut f, &[(act, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    wait_phase(&f, "Progressing").await?;
    wait_phase(&f, "Healthy").await?;
    expect_rev_pods(&f, 2, 1).await?;
    expect_rev_pods(&f, 1, 1).await?;
    expect_counts(&f, (1, 2, 1, 1, 1)).await?;
    expect_scale_down(&f, 1, true).await?;
    for _ in 0..2 {
        update_spec(&f).await?;
        wait_phase(&f, "Progressing").await?;
        wait_phase(&f, "Healthy").await?;
    }
    sleep(1.0).await;
    expect_rev_pods(&f, 4, 1).await?;
    expect_rev_pods(&f, 3, 1).await?;
    expect_rev_pods(&f, 2, 1).await?;
    expect_rev_pods(&f, 1, 0).await?;
    expect_counts(&f, (1, 3, 1, 1, 1)).await?;
    expect_active(&f, act, 4).await?;
    f.when_spec_patch(
        json!({"spec": {"strategy": {"blueGreen": {"scaleDownDelayRevisionLimit": 1}}}}),
    )
    .await?;
    sleep(1.0).await;
    expect_rev_pods(&f, 4, 1).await?;
    expect_rev_pods(&f, 3, 1).await?;
    expect_rev_pods(&f, 2, 0).await?;
    expect_rev_pods(&f, 1, 0).await?;
    expect_counts(&f, (1, 2, 1, 1, 1)).await?;
    f.cleanup().await
}

/// TestBlueGreenExceedProgressDeadlineAbort (functional_test.go:906): the new image never
/// becomes ready (`never-ready` tag for upstream's `nginx:1.19-alpine-argo-error`).
pub async fn bg_exceed_progress_deadline_abort(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-exceed-progress-deadline-abort").await?;
    let act = "bluegreen-scaledowndelay-active";
    let app = "bluegreen-scaledowndelay";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 1\n",
        &format!("      activeService: {act}\n      abortScaleDownDelaySeconds: 2\n"),
    );
    given(&mut f, &[(act, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    let bad = |abort: bool| {
        json!({"spec": {
            "progressDeadlineAbort": abort,
            "progressDeadlineSeconds": 1,
            "template": {"spec": {"containers": [{
                "name": app, "image": "nginx:1.19-alpine-argo-error-never-ready",
                "resources": {"requests": {"memory": "16Mi", "cpu": "1m"}},
            }]}},
        }})
    };
    f.when_spec_patch(bad(false)).await?;
    wait_phase(&f, "Degraded").await?;
    sleep(3.0).await;
    expect_rev_pods(&f, 2, 1).await?;
    let v = f.view().await?;
    ensure!(!v.abort(), "status.abort false expected");
    expect_active(&f, act, 1).await?;
    f.when_spec_patch(bad(true)).await?;
    wait_phase(&f, "Degraded").await?;
    sleep(3.0).await;
    expect_rev_pods(&f, 2, 0).await?;
    let v = f.view().await?;
    ensure!(
        v.abort() && v.conditions_len() == 4,
        "abort {} with 4 conditions expected; conditions {:?}",
        v.abort(),
        v.ro.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .map(|c| c
                .iter()
                .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
                .collect::<Vec<_>>())
    );
    expect_active(&f, act, 1).await?;
    f.cleanup().await
}

/// TestBlueGreenScaleDownOnAbort (functional_test.go:977).
pub async fn bg_scale_down_on_abort(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-scale-down-on-abort").await?;
    let (act, prev) = (
        "bluegreen-preview-replicas-active",
        "bluegreen-preview-replicas-preview",
    );
    let app = "bluegreen-preview-replicas";
    let yaml = bg_rollout(
        "bluegreen-scaledown-on-abort",
        app,
        "  replicas: 2\n",
        &format!(
            "      abortScaleDownDelaySeconds: 1\n      activeService: {act}\n      previewService: {prev}\n      previewReplicaCount: 1\n      scaleDownDelaySeconds: 5\n      autoPromotionEnabled: false\n"
        ),
    );
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    wait_phase(&f, "Paused").await?;
    expect_rev_pods(&f, 2, 1).await?;
    expect_rev_pods(&f, 1, 2).await?;
    abort(&f).await?;
    let v = wait_phase(&f, "Degraded").await?;
    ensure!(
        v.message()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "message {}",
        v.message()
    );
    sleep(3.0).await;
    expect_rev_pods(&f, 2, 0).await?;
    expect_active(&f, act, 1).await?;
    expect_rev_pods(&f, 1, 2).await?;
    f.cleanup().await
}

/// TestKubectlWaitForPaused (functional_test.go:1028): `kubectl wait --for=condition=Paused`
/// read as the Rollout's `Paused` condition.
pub async fn bg_kubectl_wait_for_paused(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-kubectl-wait-for-paused").await?;
    let n = "kubectl-wait-paused";
    let yaml = bg_rollout(
        n,
        n,
        "  replicas: 1\n",
        "      activeService: kubectl-wait-paused\n      autoPromotionEnabled: false\n",
    );
    given(&mut f, &[(n, n)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    f.then("condition Paused=True", T, |v| {
        v.condition("Paused").is_some_and(|(s, _)| s == "True")
    })
    .await?;
    expect_phase(&f, "Paused").await?;
    expect_active(&f, n, 1).await?;
    promote(&f).await?;
    f.then("condition Paused=False", T, |v| {
        v.condition("Paused").is_some_and(|(s, _)| s == "False")
    })
    .await?;
    // Upstream checks Healthy right after `kubectl wait` returns; allow the cutover to land.
    wait_phase_for(&f, "Healthy", Duration::from_secs(10)).await?;
    expect_active(&f, n, 2).await?;
    f.cleanup().await
}

/// TestKubectlWaitForCompleted (functional_test.go:1127): `Healthy` condition False during the
/// update (pods Ready after 5 s), True after.
pub async fn bg_kubectl_wait_for_completed(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-kubectl-wait-for-completed").await?;
    let n = "kubectl-wait-healthy";
    let yaml = manifest(
        n,
        n,
        "  replicas: 1\n",
        "      activeService: kubectl-wait-healthy\n      autoPromotionEnabled: true\n",
        "nginx:1.19-alpine-slow5000",
        "1m",
    );
    given(&mut f, &[(n, n)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    f.then("condition Healthy=False", T, |v| {
        v.condition("Healthy").is_some_and(|(s, _)| s == "False")
    })
    .await?;
    expect_phase(&f, "Progressing").await?;
    expect_active(&f, n, 1).await?;
    f.then("condition Healthy=True", T, |v| {
        v.observed() && v.condition("Healthy").is_some_and(|(s, _)| s == "True")
    })
    .await?;
    expect_active(&f, n, 2).await?;
    f.cleanup().await
}

/// TestWorkloadRefTemplate (functional_test.go:1192): workloadRef and a template together.
pub async fn bg_workload_ref_template(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-workload-ref-template").await?;
    let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: rollout-ref-deployment
spec:
  replicas: 1
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: rollout-ref-deployment
  selector:
    matchLabels:
      app: rollout-demo-deploy
  template:
    metadata:
      labels:
        app: rollout-ref-deployment
  strategy:
    blueGreen:
      activeService: rollout-bluegreen-active
"#;
    f.given_rollout(yaml).await?;
    let v = wait_phase(&f, "Degraded").await?;
    let conds: Vec<_> =
        v.ro.status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
    ensure!(
        conds.len() == 1
            && conds[0]
                .message
                .as_deref()
                .unwrap_or("")
                .contains("template must be empty for workload reference rollout"),
        "conditions {conds:?}"
    );
    f.cleanup().await
}

// ---------------------------------------------------------------------------------------------
// analysis_test.go
// ---------------------------------------------------------------------------------------------

/// TestBlueGreenAnalysis (analysis_test.go:165): pre/post analysis, then a fast-tracked rollback.
pub async fn bg_analysis(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-analysis").await?;
    apply_sleep_job(&f).await?;
    let (act, prev) = ("bluegreen-analysis-active", "bluegreen-analysis-preview");
    let app = "bluegreen-analysis";
    let bg = format!(
        "      activeService: {act}\n      previewService: {prev}\n      prePromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: duration\n          value: \"5\"\n      postPromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: duration\n          value: \"5\"\n      autoPromotionEnabled: false\n"
    );
    let original = manifest(app, app, "", &bg, "nginx:1.19-alpine", "5m");
    given(&mut f, &[(act, app), (prev, app)], &original).await?;
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 0).await?;
    f.when_spec_patch(json!({"spec": {"template": {"spec": {"containers": [{
        "name": app, "image": "nginx:1.19-alpine",
        "resources": {"requests": {"memory": "16Mi", "cpu": "4m"}},
    }]}}}}))
    .await?;
    wait_phase(&f, "Progressing").await?;
    wait_phase(&f, "Paused").await?;
    expect_runs(&f, 1).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    sleep(2.0).await;
    promote(&f).await?;
    wait_active(&f, 2).await?;
    sleep(2.0).await;
    expect_runs(&f, 2).await?;
    expect_counts(&f, (1, 2, 1, 1, 1)).await?;
    let v = expect_phase(&f, "Progressing").await?;
    ensure!(
        v.message() == "waiting for analysis to complete",
        "message {}",
        v.message()
    );
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 2).await?;
    expect_active(&f, act, 2).await?;
    expect_preview(&f, prev, 2).await?;
    // Re-apply the original manifest: a fast-tracked rollback to revision 1's template.
    f.given_rollout(&original).await?;
    sleep(2.0).await;
    expect_phase(&f, "Healthy").await?;
    expect_runs(&f, 2).await?;
    expect_stable(&f, 3).await?;
    expect_active(&f, act, 3).await?;
    expect_preview(&f, prev, 3).await?;
    f.cleanup().await
}

/// TestBlueGreenPrePromotionFail (analysis_test.go:262).
pub async fn bg_pre_promotion_fail(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-pre-promotion-fail").await?;
    apply_sleep_job(&f).await?;
    let (act, prev) = ("pre-promotion-fail-active", "pre-promotion-fail-preview");
    let app = "pre-promotion-fail";
    let yaml = manifest(
        app,
        app,
        "  replicas: 2\n",
        &format!(
            "      abortScaleDownDelaySeconds: 0\n      activeService: {act}\n      previewService: {prev}\n      previewReplicaCount: 1\n      prePromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: exit-code\n          value: \"fail\"\n        - name: duration\n          value: \"5\"\n"
        ),
        "nginx:1.19-alpine",
        "5m",
    );
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 0).await?;
    update_spec(&f).await?;
    let v = wait_phase(&f, "Degraded").await?;
    ensure!(
        v.message()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "message {}",
        v.message()
    );
    expect_runs(&f, 1).await?;
    expect_stable(&f, 1).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    // abortScaleDownDelaySeconds 0: the preview ReplicaSet keeps its pod.
    expect_rev_pods(&f, 2, 1).await?;
    f.when_spec_patch(
        json!({"spec": {"strategy": {"blueGreen": {"prePromotionAnalysis": {
            "templates": [{"templateName": "sleep-job"}],
            "args": [{"name": "exit-code", "value": "0"}, {"name": "duration", "value": "5"}],
        }}}}}),
    )
    .await?;
    retry(&f).await?;
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 2).await?;
    expect_stable(&f, 2).await?;
    expect_active(&f, act, 2).await?;
    expect_preview(&f, prev, 2).await?;
    f.cleanup().await
}

/// TestBlueGreenPostPromotionFail (analysis_test.go:343).
pub async fn bg_post_promotion_fail(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-post-promotion-fail").await?;
    apply_sleep_job(&f).await?;
    let (act, prev) = ("post-promotion-fail-active", "post-promotion-fail-preview");
    let app = "post-promotion-fail";
    let yaml = manifest(
        app,
        app,
        "",
        &format!(
            "      activeService: {act}\n      previewService: {prev}\n      autoPromotionEnabled: false\n      postPromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: exit-code\n          value: \"fail\"\n        - name: duration\n          value: \"5\"\n"
        ),
        "nginx:1.19-alpine",
        "5m",
    );
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 0).await?;
    update_spec(&f).await?;
    wait_phase(&f, "Progressing").await?;
    wait_phase(&f, "Paused").await?;
    expect_stable(&f, 1).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    promote(&f).await?;
    sleep(2.0).await;
    expect_stable(&f, 1).await?;
    expect_active(&f, act, 2).await?;
    expect_preview(&f, prev, 2).await?;
    let v = wait_phase(&f, "Degraded").await?;
    ensure!(
        v.message()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "message {}",
        v.message()
    );
    expect_runs(&f, 1).await?;
    expect_stable(&f, 1).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    f.cleanup().await
}

/// TestBlueGreenAbortAndUpdate (analysis_test.go:416).
pub async fn bg_abort_and_update(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-abort-and-update").await?;
    apply_sleep_job(&f).await?;
    let (act, prev) = (
        "bluegreen-abort-and-update-active",
        "bluegreen-abort-and-update-preview",
    );
    let app = "bluegreen-abort-and-update";
    let yaml = manifest(
        app,
        app,
        "",
        &format!(
            "      activeService: {act}\n      previewService: {prev}\n      postPromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: exit-code\n          value: \"fail\"\n"
        ),
        "nginx:1.19-alpine",
        "5m",
    );
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_runs(&f, 0).await?;
    update_spec(&f).await?;
    wait_phase(&f, "Degraded").await?;
    expect_runs(&f, 1).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    f.when_spec_patch(json!({"spec": {
        "template": {"metadata": {"annotations": {"foo": "bar"}}},
        "strategy": {"blueGreen": {
            "autoPromotionEnabled": false,
            "postPromotionAnalysis": {"templates": [{"templateName": "sleep-job"}], "args": null},
        }},
    }}))
    .await?;
    wait_phase(&f, "Paused").await?;
    sleep(2.0).await;
    expect_rev_pods(&f, 1, 1).await?;
    expect_scale_down(&f, 2, true).await?;
    expect_rev_pods(&f, 3, 1).await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 3).await?;
    promote(&f).await?;
    wait_phase(&f, "Healthy").await?;
    sleep(2.0).await;
    expect_rev_pods(&f, 1, 1).await?;
    expect_scale_down(&f, 1, true).await?;
    expect_scale_down(&f, 2, true).await?;
    expect_rev_pods(&f, 3, 1).await?;
    expect_active(&f, act, 3).await?;
    expect_preview(&f, prev, 3).await?;
    expect_runs(&f, 2).await?;
    f.cleanup().await
}

/// TestBlueGreenKitchenSink (analysis_test.go:503).
pub async fn bg_kitchen_sink(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-kitchen-sink").await?;
    apply_sleep_job(&f).await?;
    let (act, prev) = (
        "bluegreen-kitchensink-active",
        "bluegreen-kitchensink-preview",
    );
    let app = "bluegreen-kitchensink";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 2\n",
        &format!(
            "      activeService: {act}\n      previewService: {prev}\n      previewReplicaCount: 1\n      autoPromotionSeconds: 10\n      scaleDownDelaySeconds: 5\n      prePromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: duration\n          value: \"10\"\n      postPromotionAnalysis:\n        templates:\n        - templateName: sleep-job\n        args:\n        - name: exit-code\n          value: \"fail\"\n        - name: duration\n          value: \"10\"\n"
        ),
    );
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    wait_phase(&f, "Paused").await?;
    let check_paused = async |f: &Fixture| -> Result<()> {
        expect_active(f, act, 1).await?;
        expect_stable(f, 1).await?;
        expect_rev_pods(f, 1, 2).await?;
        expect_rev_pods(f, 2, 1).await?;
        expect_counts(f, (2, 3, 1, 2, 2)).await?;
        Ok(())
    };
    expect_preview(&f, prev, 2).await?;
    check_paused(&f).await?;
    expect_runs(&f, 1).await?;
    sleep(5.0).await;
    check_paused(&f).await?;
    wait_active(&f, 2).await?;
    expect_rev_pods(&f, 2, 2).await?;
    expect_rev_pods(&f, 1, 2).await?;
    expect_counts(&f, (2, 4, 2, 2, 2)).await?;
    sleep(1.0).await;
    expect_runs(&f, 2).await?;
    wait_phase(&f, "Degraded").await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    expect_stable(&f, 1).await?;
    expect_rev_pods(&f, 2, 2).await?;
    expect_rev_pods(&f, 1, 2).await?;
    expect_counts(&f, (2, 4, 2, 2, 2)).await?;
    f.cleanup().await
}

// ---------------------------------------------------------------------------------------------
// Ours
// ---------------------------------------------------------------------------------------------

/// The active Service never loses all ready endpoints during a promotion: its Endpoints (filled
/// by kube-controller-manager's endpoints controller) are polled every 100 ms from the first
/// ready address until the old ReplicaSet is scaled down after the promotion.
pub async fn bg_active_always_has_endpoints(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-active-endpoints").await?;
    let (act, prev) = ("endpoints-active", "endpoints-preview");
    let app = "endpoints";
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 3\n",
        &format!(
            "      activeService: {act}\n      previewService: {prev}\n      autoPromotionEnabled: false\n      scaleDownDelaySeconds: 3\n"
        ),
    );
    // Bound to a Node object by name (no scheduler): the endpoints controller publishes only
    // addresses of pods on a node.
    let yaml = yaml.replace(
        "    spec:\n      containers:",
        "    spec:\n      nodeName: e2e-node\n      containers:",
    );
    f.ensure_node("e2e-node").await?;
    given(&mut f, &[(act, app), (prev, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    expect_active(&f, act, 1).await?;
    let first = Instant::now();
    loop {
        if f.endpoints_ready(act).await? == 3 {
            break;
        }
        if first.elapsed() > T {
            let api: Api<k8s_openapi::api::core::v1::Endpoints> =
                Api::namespaced(f.client.clone(), &f.ns);
            bail!(
                "active Service never reached 3 ready endpoints: {:?}; Service {:?}",
                api.get_opt(act).await?,
                f.service(act).await?
            );
        }
        sleep(0.1).await;
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (client, ns, stop) = (f.client.clone(), f.ns.clone(), stop.clone());
        tokio::spawn(async move {
            use k8s_openapi::api::core::v1::Endpoints;
            let api: Api<Endpoints> = Api::namespaced(client, &ns);
            let mut samples = 0usize;
            let mut zero_at = Vec::new();
            let start = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let ready = match api.get_opt(act).await {
                    Ok(Some(ep)) => ep
                        .subsets
                        .unwrap_or_default()
                        .iter()
                        .map(|s| s.addresses.as_ref().map_or(0, Vec::len))
                        .sum::<usize>(),
                    Ok(None) => 0,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                samples += 1;
                if ready == 0 {
                    zero_at.push(start.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (samples, zero_at)
        })
    };
    update_spec(&f).await?;
    wait_phase(&f, "Paused").await?;
    expect_active(&f, act, 1).await?;
    expect_preview(&f, prev, 2).await?;
    promote(&f).await?;
    wait_phase(&f, "Healthy").await?;
    expect_active(&f, act, 2).await?;
    f.then("old ReplicaSet scaled down", Duration::from_secs(20), |v| {
        v.revision_replicas(1) == Some(0)
    })
    .await?;
    sleep(1.0).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (samples, zero_at) = poller.await?;
    ensure!(
        zero_at.is_empty(),
        "active Service had zero ready endpoints in {} of {samples} samples, first at {:?}",
        zero_at.len(),
        zero_at.first()
    );
    ensure!(samples > 20, "only {samples} samples");
    // The endpoints now are the new pods only.
    let v = f.view().await?;
    let h2 = v.revision_hash(2).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ready = f.endpoints_ready(act).await?;
        let new_pods = f.pods_with_hash(&h2).await?;
        if ready == 3 && new_pods == 3 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "active endpoints {ready}, new pods {new_pods}"
        );
        sleep(0.2).await;
    }
    f.cleanup().await
}

/// The seed manifest with `canaryService`/`stableService`: at every step the stable Service
/// selects the stable ReplicaSet's hash and the canary Service the new one's (once it has an
/// available pod); after promotion both select the new hash.
pub async fn canary_services_follow_steps(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "canary-services").await?;
    let (canary, stable) = ("frontend-canary", "frontend-stable");
    let seed = std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml"))?;
    let yaml = seed.replace(
        "    canary:\n",
        &format!("    canary:\n      canaryService: {canary}\n      stableService: {stable}\n"),
    );
    ensure!(
        yaml.contains("canaryService"),
        "seed canary block not found"
    );
    given(&mut f, &[(canary, "frontend"), (stable, "frontend")], &yaml).await?;
    let v = f
        .then("initial deploy healthy", T, |v| {
            v.healthy() && v.sizes() == (0, 5)
        })
        .await?;
    let h1 = v.stable().unwrap_or_default();
    let services_at = async |f: &Fixture, what: &str, want_canary: &str, want_stable: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (c, s) = (f.service_hash(canary).await?, f.service_hash(stable).await?);
            let (mc, ms) = (
                f.service_managed_by(canary).await?,
                f.service_managed_by(stable).await?,
            );
            if c.as_deref() == Some(want_canary)
                && s.as_deref() == Some(want_stable)
                && mc.as_deref() == Some("frontend")
                && ms.as_deref() == Some("frontend")
            {
                return Ok::<(), anyhow::Error>(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{what}: canary Service {c:?} (want {want_canary}), stable Service {s:?} (want {want_stable}), managed-by {mc:?}/{ms:?}"
                );
            }
            sleep(0.2).await;
        }
    };
    services_at(&f, "initial deploy", &h1, &h1).await?;
    f.when_image("frontend:v2").await?;
    for sizes in [(1, 4), (2, 3), (3, 2), (4, 1)] {
        let v = f
            .then(&format!("paused at {sizes:?}"), T, |v| {
                v.sizes() == sizes && v.phase() == "Paused" && v.message() == "CanaryPauseStep"
            })
            .await?;
        let h2 = v.pod_hash().unwrap_or_default();
        ensure!(h2 != h1 && v.stable().as_deref() == Some(h1.as_str()));
        services_at(&f, &format!("at {sizes:?}"), &h2, &h1).await?;
        f.promote().await?;
    }
    let v = f.then("fully promoted", T, |v| v.healthy()).await?;
    let h2 = v.stable().unwrap_or_default();
    ensure!(h2 != h1);
    services_at(&f, "promoted", &h2, &h2).await?;
    f.cleanup().await
}

/// Crash-resume during a blue-green promotion: the controller is killed with SIGKILL at varying
/// instants from the promote until the old ReplicaSet is scaled down. The active Service is
/// switched exactly once and never back, the old ReplicaSet's scale-down deadline is written once
/// and never moved (nor lost), and it is scaled down only once that deadline has passed.
pub async fn bg_kill9_resume(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "bg-kill9").await?;
    let (act, app) = ("bg-kill9-active", "bg-kill9");
    let yaml = bg_rollout(
        app,
        app,
        "  replicas: 2\n",
        &format!(
            "      activeService: {act}\n      autoPromotionEnabled: false\n      scaleDownDelaySeconds: 8\n"
        ),
    );
    given(&mut f, &[(act, app)], &yaml).await?;
    wait_phase(&f, "Healthy").await?;
    update_spec(&f).await?;
    wait_phase(&f, "Paused").await?;
    let events = f.watch_events(app).await?;
    let v = f.view().await?;
    let (Some(h1), Some(h2)) = (v.revision_hash(1), v.revision_hash(2)) else {
        anyhow::bail!("two revisions expected");
    };
    promote(&f).await?;
    let start = Instant::now();
    let mut kills = 0;
    let mut switched = false;
    let mut deadline: Option<String> = None;
    let mut delays = [300u64, 900, 500, 1300, 200, 700, 1100].iter().cycle();
    loop {
        let until = Instant::now() + Duration::from_millis(*delays.next().unwrap_or(&700));
        while Instant::now() < until {
            let v = f.view().await?;
            let active = f.service_hash(act).await?;
            if active.as_deref() == Some(h2.as_str()) {
                switched = true;
            }
            ensure!(
                !switched || active.as_deref() == Some(h2.as_str()),
                "the active Service went back to {active:?} after the switch"
            );
            let d = v.revision_annotation(1, "scale-down-deadline");
            let replicas = v.revision_replicas(1).unwrap_or(0);
            match (&deadline, &d) {
                (None, Some(now)) => deadline = Some(now.clone()),
                (Some(first), Some(now)) => {
                    ensure!(first == now, "deadline moved: {first} -> {now}")
                }
                (Some(first), None) if replicas > 0 => {
                    anyhow::bail!("deadline {first} lost while the old ReplicaSet is up")
                }
                _ => {}
            }
            if replicas == 0
                && let Some(dl) = &deadline
            {
                let at: jiff::Timestamp = dl.parse()?;
                ensure!(
                    jiff::Timestamp::now() >= at,
                    "scaled down before its deadline {dl}"
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let v = f.view().await?;
        if v.revision_replicas(1) == Some(0) && phase(&v) == "Healthy" {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(90),
            "did not finish under repeated kills"
        );
        f.kill_controller()?;
        kills += 1;
        f.start_controller()?;
    }
    eprintln!(
        "[bg-kill9] promoted and scaled down after {kills} kill -9 restarts in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    ensure!(kills >= 3, "the scenario must actually kill the controller");
    ensure!(
        deadline.is_some(),
        "the old ReplicaSet never got a deadline"
    );
    expect_stable(&f, 2).await?;
    let to_h2 = switches(&events.all(), act)
        .into_iter()
        .filter(|m| *m == switch_msg(act, &h1, &h2))
        .count();
    // At most one: a kill between the switch and its event may lose the event, never repeat it.
    ensure!(
        to_h2 <= 1,
        "the active Service was switched {to_h2} times to {h2}"
    );
    ensure!(switched, "the active Service never pointed at {h2}");
    f.cleanup().await
}
