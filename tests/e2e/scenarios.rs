//! The end-to-end scenarios of the proving-ground issue, each against the genuine control plane.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use serde_json::json;

use kube::ResourceExt;

use crate::harness::{Cluster, Fixture, View, root};

const T: Duration = Duration::from_secs(60);

fn seed() -> String {
    std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml")).unwrap_or_default()
}

/// The seed with its 10-minute pauses shortened to `secs` seconds.
fn seed_with_pause(secs: u32) -> String {
    seed().replace("{duration: 10m}", &format!("{{duration: {secs}}}"))
}

fn is_paused_at(v: &View, sizes: (i32, i32)) -> bool {
    v.sizes() == sizes && v.phase() == "Paused" && v.message() == "CanaryPauseStep"
}

async fn deployed(f: &mut Fixture, yaml: &str) -> Result<View> {
    f.given_rollout(yaml).await?;
    f.then("initial deploy healthy", T, |v| {
        v.healthy() && v.sizes() == (0, 5)
    })
    .await
}

/// The seed manifest applied unchanged: after an image change it walks 1/4, 2/3, 3/2, 4/1 (each
/// 10-minute pause promoted, as `kubectl argo rollouts promote` does), then 5 with the old
/// ReplicaSet at 0, stableRS == currentPodHash, Healthy.
pub async fn seed_walk(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "seed-walk").await?;
    let before = deployed(&mut f, &seed()).await?;
    let old_hash = before.stable();
    f.when_image("frontend:v2").await?;
    for sizes in [(1, 4), (2, 3), (3, 2), (4, 1)] {
        f.then(&format!("paused at {sizes:?}"), T, |v| {
            is_paused_at(v, sizes)
        })
        .await?;
        f.promote().await?;
    }
    let v = f.then("fully promoted", T, |v| v.healthy()).await?;
    ensure!(v.stable() != old_hash, "stable moved to the new ReplicaSet");
    let old = v.rss.iter().find(|rs| {
        rs.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("rollouts-pod-template-hash"))
            == old_hash.as_ref()
    });
    ensure!(
        old.and_then(|rs| rs.spec.replicas) == Some(0),
        "old ReplicaSet scaled to 0"
    );
    ensure!(v.sizes() == (0, 5));
    f.cleanup().await
}

/// Timed pauses walk on their own; a settled rollout then makes no writes at all.
pub async fn timed_walk_and_idle(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "timed").await?;
    deployed(&mut f, &seed_with_pause(2)).await?;
    f.when_image("frontend:v2").await?;
    for sizes in [(1, 4), (2, 3), (3, 2), (4, 1)] {
        f.then(&format!("canary at {sizes:?}"), T, |v| v.sizes() == sizes)
            .await?;
    }
    let v = f.then("fully promoted", T, |v| v.healthy()).await?;
    // Idle: neither the Rollout nor its ReplicaSets change for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = f.view().await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let b = f.view().await?;
    let rv = |v: &View| {
        let mut r: Vec<_> = v
            .rss
            .iter()
            .map(|rs| rs.metadata.resource_version.clone())
            .collect();
        r.push(v.ro.metadata.resource_version.clone());
        r.sort();
        r
    };
    ensure!(
        rv(&a) == rv(&b),
        "a settled rollout was written to: {:?} -> {:?}",
        rv(&a),
        rv(&b)
    );
    ensure!(v.rss.len() == 2);
    f.cleanup().await
}

const INDEFINITE: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: pausey}
spec:
  replicas: 5
  selector: {matchLabels: {app: pausey}}
  strategy:
    canary:
      steps:
      - setWeight: 40
      - pause: {}
      - setWeight: 80
      - pause: {duration: 1}
  template:
    metadata: {labels: {app: pausey}}
    spec: {containers: [{name: app, image: "pausey:v1"}]}
"#;

/// An indefinite pause holds in Paused/CanaryPauseStep until pauseConditions are cleared.
pub async fn indefinite_pause_then_promote(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "indefinite").await?;
    f.given_rollout(INDEFINITE).await?;
    f.then("initial deploy", T, |v| v.healthy()).await?;
    f.when_image("pausey:v2").await?;
    f.then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let v = f.view().await?;
    ensure!(
        is_paused_at(&v, (2, 3)) && v.step() == Some(1),
        "still paused: {:?} {:?}",
        v.phase(),
        v.sizes()
    );
    f.promote().await?;
    f.then("completed", T, |v| v.healthy()).await?;
    f.cleanup().await
}

/// abort → canary 0 / stable 5, Degraded, RolloutAborted; clearing abort restarts from step 0.
pub async fn abort_then_retry(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "abort").await?;
    deployed(&mut f, &seed()).await?;
    f.when_image("frontend:v2").await?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    f.promote().await?;
    f.then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    f.when_status_patch(json!({"status": {"abort": true}}))
        .await?;
    let v = f
        .then("aborted", T, |v| {
            v.sizes() == (0, 5) && v.phase() == "Degraded"
        })
        .await?;
    ensure!(
        v.message()
            .starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "message: {}",
        v.message()
    );
    ensure!(v.step() == Some(0));
    // retry
    f.when_status_patch(json!({"status": {"abort": false}}))
        .await?;
    let v = f
        .then("restarted from step 0", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    ensure!(
        v.step() == Some(1),
        "at the first pause again: {:?}",
        v.step()
    );
    f.cleanup().await
}

/// promoteFull completes at once, skipping the remaining steps.
pub async fn promote_full(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "promote-full").await?;
    deployed(&mut f, &seed()).await?;
    f.when_image("frontend:v2").await?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    f.when_status_patch(json!({"status": {"promoteFull": true}}))
        .await?;
    let v = f.then("fully promoted", T, |v| v.healthy()).await?;
    ensure!(v.step() == Some(8));
    f.cleanup().await
}

/// revisionHistoryLimit 2 leaves at most 2 old ReplicaSets after five revisions.
pub async fn revision_history_limit(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "history").await?;
    deployed(&mut f, &seed()).await?;
    for rev in 2..=6 {
        let image = format!("frontend:v{rev}");
        f.when_image(&image).await?;
        f.then(&format!("revision {rev} paused"), T, |v| {
            is_paused_at(v, (1, 4))
        })
        .await?;
        f.when_status_patch(json!({"status": {"promoteFull": true}}))
            .await?;
        f.then(&format!("revision {rev} promoted"), T, |v| v.healthy())
            .await?;
    }
    let v = f
        .then("old ReplicaSets collected", T, |v| v.rss.len() <= 3)
        .await?;
    ensure!(v.rss.len() == 3, "current + 2 old, got {}", v.rss.len());
    f.cleanup().await
}

/// setWeight 150 → InvalidSpec with Argo's message, Degraded; the controller keeps serving others.
pub async fn invalid_spec(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "invalid").await?;
    f.given_rollout(&seed().replace("setWeight: 20", "setWeight: 150"))
        .await?;
    let v = f
        .then("InvalidSpec", T, |v| {
            v.condition_message("InvalidSpec").is_some()
        })
        .await?;
    ensure!(v.phase() == "Degraded", "phase {}", v.phase());
    ensure!(
        v.condition_message("InvalidSpec").as_deref()
            == Some(
                "The Rollout \"frontend\" is invalid: spec.strategy.steps[0].setWeight: Invalid value: 150: SetWeight needs to be between 0 and 100"
            ),
        "{:?}",
        v.condition_message("InvalidSpec")
    );
    ensure!(v.rss.is_empty(), "an invalid rollout creates nothing");
    // A valid sibling in the same namespace is still served by the same controller.
    f.given_rollout(
        &seed()
            .replace("name: frontend", "name: sibling")
            .replace("app: frontend", "app: sibling"),
    )
    .await?;
    f.then("sibling healthy", T, |v| v.healthy()).await?;
    f.cleanup().await
}

/// kill -9 of the controller at arbitrary instants mid-rollout: every restart resumes where the
/// last one stopped — no duplicate ReplicaSet, no surge violation, the step index never goes back.
pub async fn kill9_resume(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "kill9").await?;
    deployed(&mut f, &seed()).await?;
    f.when_image("frontend:v2").await?;
    f.then("paused at 2 steps", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    f.promote().await?;
    let v = f
        .then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    let step = v.step();
    // Kill while paused, restart: same step, same ReplicaSets.
    f.kill_controller()?;
    f.start_controller()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = f.view().await?;
    ensure!(
        v.step() == step && is_paused_at(&v, (2, 3)) && v.rss.len() == 2,
        "resumed at the same step: {:?} {:?} {}",
        v.step(),
        v.sizes(),
        v.rss.len()
    );
    // Now switch to short timed pauses and kill repeatedly while it walks.
    f.when_spec_patch(json!({"spec": {"strategy": {"canary": {"steps": [
        {"setWeight": 20}, {"pause": {"duration": 1}}, {"setWeight": 40}, {"pause": {"duration": 1}},
        {"setWeight": 60}, {"pause": {"duration": 1}}, {"setWeight": 80}, {"pause": {"duration": 1}}]}}}}))
        .await?;
    // A steps change restarts the canary at step 0 (reference trap 4); watch from there.
    let old_hash =
        v.ro.status
            .as_ref()
            .and_then(|s| s.current_step_hash.clone());
    let v = f
        .then("steps change observed", T, |v| {
            v.ro.status
                .as_ref()
                .and_then(|s| s.current_step_hash.clone())
                != old_hash
        })
        .await?;
    let start = Instant::now();
    let mut kills = 0;
    let mut last_step = v.step().unwrap_or(0);
    let mut delays = [700u64, 1300, 400, 900, 1700, 300, 1100].iter().cycle();
    loop {
        let delay = *delays.next().unwrap_or(&1000);
        let until = Instant::now() + Duration::from_millis(delay);
        while Instant::now() < until {
            let v = f.view().await?;
            ensure!(
                v.total() <= 5 + 2,
                "surge violated: {} pods desired (maxSurge 25% of 5 = 2)",
                v.total()
            );
            ensure!(v.rss.len() <= 2, "duplicate ReplicaSet: {}", v.rss.len());
            let s = v.step().unwrap_or(0);
            ensure!(s >= last_step, "step index went back {last_step} -> {s}");
            last_step = s;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if f.view().await?.healthy() {
            break;
        }
        ensure!(
            start.elapsed() < Duration::from_secs(120),
            "did not finish under repeated kills"
        );
        f.kill_controller()?;
        kills += 1;
        f.start_controller()?;
    }
    eprintln!(
        "[kill9] finished after {kills} kill -9 restarts in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    ensure!(
        kills >= 3,
        "the scenario must actually kill the controller mid-rollout"
    );
    f.cleanup().await
}

/// A canary whose pods never become ready hits progressDeadlineSeconds: Degraded; with
/// progressDeadlineAbort it is also aborted (canary 0, stable 5).
pub async fn progress_deadline(c: &Cluster, abort: bool) -> Result<()> {
    let name = if abort { "deadline-abort" } else { "deadline" };
    let mut f = Fixture::new(c, name).await?;
    let yaml = seed().replace(
        "revisionHistoryLimit: 2",
        &format!("revisionHistoryLimit: 2\n  progressDeadlineSeconds: 8\n  progressDeadlineAbort: {abort}"),
    );
    deployed(&mut f, &yaml).await?;
    f.when_image("frontend:never-ready").await?;
    let v = f
        .then("Degraded", Duration::from_secs(40), |v| {
            v.phase() == "Degraded"
        })
        .await?;
    if abort {
        ensure!(
            v.message().starts_with("RolloutAborted: "),
            "{}",
            v.message()
        );
        f.then("rolled back", T, |v| v.sizes() == (0, 5)).await?;
    } else {
        ensure!(
            v.message()
                .starts_with("ProgressDeadlineExceeded: ReplicaSet \"frontend-"),
            "{}",
            v.message()
        );
    }
    f.cleanup().await
}

/// Argo's own `TestMalformedRollout` manifest (`memory: invalid`) becomes Healthy.
pub async fn malformed_rollout(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "malformed").await?;
    f.given_rollout(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: malformed-rollout
spec:
  selector:
    matchLabels:
      app: malformed-rollout
  template:
    metadata:
      labels:
        app: malformed-rollout
    spec:
      containers:
      - name: malformed-rollout
        image: argoproj/rollouts-demo:blue
        resources:
          requests:
            memory: invalid # invalid
  strategy:
    canary: {}
"#,
    )
    .await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    f.cleanup().await
}

/// A Rollout taken over from Argo Rollouts: its ReplicaSet (Argo's hash, a defaulted template) is
/// adopted, not recreated, and the next update canaries from it.
pub async fn adopt_argo_replicaset(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::api::PostParams;
    use kube::{Api, ResourceExt};

    let mut f = Fixture::new(c, "adopt").await?;
    f.kill_controller()?;
    f.given_rollout(&seed()).await?;
    let ro = f.rollouts().get("frontend").await?;
    let uid = ro.uid().unwrap_or_default();
    let hash = "7c9d5f8b6d";
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {
            "name": format!("frontend-{hash}"),
            "labels": {"app": "frontend", "rollouts-pod-template-hash": hash},
            "annotations": {"rollout.argoproj.io/revision": "1", "rollout.argoproj.io/desired-replicas": "5"},
            "ownerReferences": [{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "frontend", "uid": uid, "controller": true, "blockOwnerDeletion": true}]
        },
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": "frontend", "rollouts-pod-template-hash": hash}},
            "template": {
                "metadata": {"labels": {"app": "frontend", "rollouts-pod-template-hash": hash}},
                "spec": {"containers": [{"name": "frontend", "image": "frontend:v1",
                    "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"memory": "32Mi", "cpu": "5m"}}}]}
            }
        }
    }))?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(f.client.clone(), &f.ns);
    rs_api.create(&PostParams::default(), &rs).await?;
    // The status Argo would have left behind.
    f.when_status_patch(json!({"status": {
        "stableRS": hash, "currentPodHash": hash, "currentStepIndex": 8, "currentStepHash": "5ffbfbbd64",
        "observedGeneration": ro.metadata.generation.unwrap_or(1).to_string(), "phase": "Healthy"}}))
        .await?;
    f.then("Argo's pods ready", T, |v| {
        v.rss
            .iter()
            .any(|rs| rs.status.as_ref().and_then(|s| s.available_replicas) == Some(5))
    })
    .await?;
    f.start_controller()?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = f
        .then("healthy on the adopted ReplicaSet", T, |v| v.healthy())
        .await?;
    ensure!(
        v.rss.len() == 1,
        "no ReplicaSet created, got {}",
        v.rss.len()
    );
    ensure!(
        v.pod_hash().as_deref() == Some(hash),
        "adopted {hash}, status says {:?}",
        v.pod_hash()
    );
    // The next update canaries from the adopted stable.
    f.when_image("frontend:v2").await?;
    f.then("canary from the adopted stable", T, |v| {
        is_paused_at(v, (1, 4)) && v.stable().as_deref() == Some(hash)
    })
    .await?;
    f.cleanup().await
}

/// `restart`: pods older than spec.restartAt are evicted (one at a time with maxUnavailable 1),
/// replaced by the ReplicaSet, and the controller records status.restartedAt.
pub async fn restart_evicts_old_pods(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use kube::api::ListParams;

    let mut f = Fixture::new(c, "restart").await?;
    deployed(&mut f, &seed()).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let at = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() + 1)?;
    let at_s = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    f.when_spec_patch(json!({"spec": {"restartAt": at_s}}))
        .await?;
    let restart_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(at));
    let v = f
        .then("restartedAt recorded", T, |v| {
            v.ro.status.as_ref().and_then(|s| s.restarted_at.clone()) == restart_at && v.healthy()
        })
        .await?;
    ensure!(v.phase() == "Healthy", "{}", v.phase());
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns);
    let live: Vec<Pod> = pods
        .list(&ListParams::default().labels("app=frontend"))
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    ensure!(live.len() == 5, "5 pods, got {}", live.len());
    ensure!(
        live.iter().all(|p| p
            .metadata
            .creation_timestamp
            .as_ref()
            .is_some_and(|t| t.0 >= at)),
        "every pod was recreated after restartAt"
    );
    f.cleanup().await
}

/// `kubectl delete rollout --cascade=orphan`, then the same Rollout applied again: its running
/// ReplicaSet is adopted and never scaled down (no outage), and no new ReplicaSet appears.
pub async fn orphaned_replicaset_is_adopted(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::apps::v1::ReplicaSet;
    use kube::api::{DeleteParams, ListParams, PropagationPolicy};
    use kube::{Api, ResourceExt};

    let mut f = Fixture::new(c, "orphan").await?;
    let before = deployed(&mut f, &seed()).await?;
    let rs_name = before
        .rss
        .first()
        .map(|rs| rs.name_any())
        .unwrap_or_default();
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    f.rollouts().delete("frontend", &dp).await?;
    let rs_api: Api<ReplicaSet> = Api::namespaced(f.client.clone(), &f.ns);
    let orphaned = || async {
        let rs = rs_api.get(&rs_name).await?;
        anyhow::Ok(rs.owner_references().is_empty())
    };
    // The garbage collector strips the owner reference, then lets the Rollout go.
    for _ in 0..900 {
        if orphaned().await? && f.rollouts().get_opt("frontend").await?.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(orphaned().await?, "the ReplicaSet was orphaned");
    f.given_rollout(&seed()).await?;
    // Sample the ReplicaSet's size while the Rollout is adopted: it must never drop.
    let start = Instant::now();
    let mut min_size = i32::MAX;
    let mut adopted = false;
    while start.elapsed() < T {
        let list = rs_api.list(&ListParams::default()).await?.items;
        ensure!(list.len() == 1, "no second ReplicaSet: {}", list.len());
        let rs = &list[0];
        min_size = min_size.min(rs.spec.replicas.unwrap_or(0));
        let v = f.view().await?;
        if !v.rss.is_empty() && v.healthy() {
            adopted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        adopted,
        "the re-applied Rollout adopted its ReplicaSet and is Healthy"
    );
    ensure!(
        min_size == 5,
        "the adopted ReplicaSet never scaled down (min {min_size})"
    );
    f.cleanup().await
}

/// No silent ignores: a Rollout naming an App Mesh virtual service (which this version does not
/// drive) gets the `NotImplemented` condition and a Warning event naming the field, and still
/// runs as a basic canary.
pub async fn not_implemented_is_reported(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::ListParams;
    let mut f = Fixture::new(c, "not-implemented").await?;
    let yaml = seed().replace(
        "    canary:\n",
        "    canary:\n      canaryService: frontend-canary\n      stableService: frontend-stable\n      trafficRouting:\n        appMesh:\n          virtualService: {name: frontend}\n",
    );
    ensure!(
        yaml.contains("appMesh"),
        "the seed's canary block was not found"
    );
    // Traffic routing needs both Services (Argo's validation); Sluice points them, not the router.
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(f.client.clone(), &f.ns);
    for name in ["frontend-canary", "frontend-stable"] {
        let svc = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"selector": {"app": "frontend"}, "ports": [{"port": 80, "targetPort": 8080}]},
        }))?;
        services.create(&Default::default(), &svc).await?;
    }
    deployed(&mut f, &yaml).await?;
    let v = f
        .then("NotImplemented condition", T, |v| {
            v.condition_message("NotImplemented").is_some()
        })
        .await?;
    let msg = v.condition_message("NotImplemented").unwrap_or_default();
    let field = "spec.strategy.canary.trafficRouting.appMesh (traffic is not shifted";
    ensure!(msg.contains(field), "{field} missing from: {msg}");
    ensure!(!msg.contains("Service"), "Services are managed: {msg}");
    ensure!(v.phase() == "Healthy", "phase {}", v.phase());
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns);
    let mut warned = Vec::new();
    for _ in 0..50 {
        warned = events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("frontend"))
            .filter(|e| e.reason.as_deref() == Some("NotImplemented"))
            .collect();
        if !warned.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(warned.len() == 1, "NotImplemented events: {}", warned.len());
    ensure!(
        warned[0].type_.as_deref() == Some("Warning"),
        "event type {:?}",
        warned[0].type_
    );
    ensure!(
        warned[0].note.as_deref() == Some(msg.as_str()),
        "event note {:?}",
        warned[0].note
    );
    // It still runs, as a basic canary: the first step is one pod of five.
    f.when_image("frontend:v2").await?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    f.cleanup().await
}

/// Argo's `TestRolloutAbortRetryPromote`, count for count: the same manifest and operations,
/// and the exact sequence of event reasons recorded against the Rollout, collected by a watch
/// started before the Rollout exists (a repeated event is a series update, seen as MODIFIED,
/// and counts again — as Argo's fixture counts every watch event).
pub async fn events_abort_retry_promote(c: &Cluster) -> Result<()> {
    use std::sync::{Arc, Mutex};

    use futures::{StreamExt, TryStreamExt};
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::{WatchEvent, WatchParams};

    let mut f = Fixture::new(c, "events-arp").await?;
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns);
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut stream = events.watch(&WatchParams::default(), "0").await?.boxed();
    let sink = seen.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(Some(ev)) = stream.try_next().await {
            let e = match ev {
                WatchEvent::Added(e) | WatchEvent::Modified(e) => e,
                _ => continue,
            };
            let regarding = e.regarding.as_ref();
            if regarding.and_then(|r| r.kind.as_deref()) == Some("Rollout")
                && regarding.and_then(|r| r.name.as_deref()) == Some("abort-retry-promote")
                && let (Ok(mut s), Some(reason)) = (sink.lock(), e.reason)
            {
                s.push(reason);
            }
        }
    });
    f.given_rollout(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: abort-retry-promote
spec:
  strategy:
    canary:
      steps:
      - setWeight: 50
      - pause: {duration: 3s}
  selector:
    matchLabels:
      app: abort-retry-promote
  template:
    metadata:
      labels:
        app: abort-retry-promote
    spec:
      containers:
      - name: abort-retry-promote
        image: nginx:1.19-alpine
        resources:
          requests:
            memory: 16Mi
            cpu: 1m
"#,
    )
    .await?;
    f.then("healthy", T, |v| v.healthy()).await?;
    f.when_image("nginx:1.20-alpine").await?;
    let revision_pods = |v: &View| v.sizes();
    let v = f.then("paused", T, |v| v.phase() == "Paused").await?;
    ensure!(
        revision_pods(&v) == (1, 1),
        "pods per revision {:?}",
        v.sizes()
    );
    f.when_status_patch(json!({"status": {"abort": true}}))
        .await?;
    f.then("degraded", T, |v| v.phase() == "Degraded").await?;
    f.when_status_patch(json!({"status": {"abort": false}}))
        .await?;
    let v = f.then("paused again", T, |v| v.phase() == "Paused").await?;
    ensure!(
        revision_pods(&v) == (1, 1),
        "pods per revision {:?}",
        v.sizes()
    );
    let v = f
        .then("healthy after the 3s pause", T, |v| v.healthy())
        .await?;
    ensure!(v.sizes() == (0, 1), "pods per revision {:?}", v.sizes());
    let want = [
        "RolloutAddedToInformer",
        "RolloutNotCompleted",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutCompleted",
        "RolloutNotCompleted",
        "RolloutUpdated",
        "NewReplicaSetCreated",
        "ScalingReplicaSet",
        "RolloutStepCompleted",
        "RolloutPaused",
        "ScalingReplicaSet",
        "RolloutAborted",
        "ScalingReplicaSet",
        "RolloutStepCompleted",
        "RolloutPaused",
        "RolloutStepCompleted",
        "RolloutResumed",
        "ScalingReplicaSet",
        "RolloutCompleted",
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        let got = seen.lock().map(|s| s.clone()).unwrap_or_default();
        if got == want || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    watcher.abort();
    ensure!(got == want, "event reasons:\n got {got:?}\nwant {want:?}");
    f.cleanup().await
}

/// A Rollout without `spec.replicas` gets Argo's default of 1 written into it, so the `/scale`
/// subresource (what an HPA and `kubectl scale` use) reports and changes its size.
pub async fn scale_subresource_without_replicas(c: &Cluster) -> Result<()> {
    use kube::api::{Patch, PatchParams};
    let mut f = Fixture::new(c, "scale").await?;
    f.given_rollout(&seed().replace("  replicas: 5\n", ""))
        .await?;
    let v = f
        .then("healthy at the default size", T, |v| {
            v.healthy() && v.ro.spec.replicas == Some(1)
        })
        .await?;
    ensure!(v.total() == 1, "pods {}", v.total());
    let scale = f.rollouts().get_scale(&f.rollout).await?;
    let spec = scale.spec.as_ref().and_then(|s| s.replicas);
    let status = scale
        .status
        .as_ref()
        .map(|s| (s.replicas, s.selector.clone()));
    ensure!(spec == Some(1), "scale spec {spec:?}");
    ensure!(
        status == Some((1, Some("app=frontend".into()))),
        "scale status {status:?}"
    );
    // `kubectl scale rollout frontend --replicas 3`
    f.rollouts()
        .patch_scale(
            &f.rollout,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"replicas": 3}})),
        )
        .await?;
    f.then("scaled to 3", T, |v| v.healthy() && v.total() == 3)
        .await?;
    let scale = f.rollouts().get_scale(&f.rollout).await?;
    ensure!(
        scale.status.map(|s| s.replicas) == Some(3),
        "scale status after scaling"
    );
    f.cleanup().await
}

/// What the API server refuses when Sluice writes reaches the Rollout: a pod template the
/// server rejects (a CPU request above its limit, which Sluice's own validation does not check)
/// gives Argo's `ReplicaSetCreateError` condition and a Warning event, not only a log line.
pub async fn refused_replicaset_is_reported(c: &Cluster) -> Result<()> {
    use k8s_openapi::api::events::v1::Event;
    use kube::Api;
    use kube::api::ListParams;
    let mut f = Fixture::new(c, "refused").await?;
    let yaml = seed().replace(
        "            cpu: 5m\n",
        "            cpu: 500m\n          limits:\n            cpu: 100m\n",
    );
    ensure!(
        yaml.contains("limits"),
        "the seed's cpu request was not found"
    );
    f.given_rollout(&yaml).await?;
    let v = f
        .then("ReplicaSetCreateError", T, |v| {
            v.ro.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c.type_ == "Progressing"
                            && c.status == "False"
                            && c.reason.as_deref() == Some("ReplicaSetCreateError")
                    })
                })
        })
        .await?;
    let msg = v.condition_message("Progressing").unwrap_or_default();
    ensure!(
        msg.starts_with("Failed to create new replica set \"frontend-") && msg.contains("limit"),
        "condition message: {msg}"
    );
    let events: Api<Event> = Api::namespaced(f.client.clone(), &f.ns);
    let mut found = false;
    for _ in 0..50 {
        found = events
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("ReplicaSetCreateError")
                    && e.type_.as_deref() == Some("Warning")
            });
        if found {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    ensure!(found, "no ReplicaSetCreateError warning event");
    f.cleanup().await
}

const EPHEMERAL: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ephemeral}
spec:
  replicas: 2
  strategy:
    canary:
      canaryMetadata: {labels: {role: canary}}
      stableMetadata: {labels: {role: stable}}
      steps:
      - setWeight: 50
      - pause: {}
  selector: {matchLabels: {app: ephemeral}}
  template:
    metadata: {labels: {app: ephemeral}}
    spec: {containers: [{name: app, image: "ephemeral:v1"}]}
"#;

/// The live pods of the ReplicaSet with pod-template hash `hash`: (uid, labels).
async fn pods_of(
    f: &Fixture,
    hash: &Option<String>,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::Api;
    use kube::api::ListParams;
    let hash = hash.clone().unwrap_or_default();
    let pods: Api<Pod> = Api::namespaced(f.client.clone(), &f.ns);
    let lp = ListParams::default().labels(&format!("rollouts-pod-template-hash={hash}"));
    Ok(pods
        .list(&lp)
        .await?
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            (
                p.metadata.uid.unwrap_or_default(),
                p.metadata.labels.unwrap_or_default(),
            )
        })
        .collect())
}

/// Wait until the `n` live pods of `hash` all satisfy `pred`; returns them.
async fn pods_until<P>(
    f: &Fixture,
    what: &str,
    hash: &Option<String>,
    n: usize,
    pred: P,
) -> Result<Vec<(String, std::collections::BTreeMap<String, String>)>>
where
    P: Fn(&std::collections::BTreeMap<String, String>) -> bool,
{
    let start = Instant::now();
    loop {
        let pods = pods_of(f, hash).await?;
        if pods.len() == n && pods.iter().all(|(_, l)| pred(l)) {
            return Ok(pods);
        }
        ensure!(
            start.elapsed() < T,
            "[{}] timed out waiting for {what}: {pods:?}",
            f.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn role_is(want: &'static str) -> impl Fn(&std::collections::BTreeMap<String, String>) -> bool {
    move |l| l.get("role").map(String::as_str) == Some(want)
}

/// Argo's e2e `TestEphemeralMetadata` (canary): stable pods carry `role: stable`, canary pods
/// `role: canary`; a change of either metadata reaches the running pods (removed keys removed);
/// promotion swaps the canary's pods to the stable metadata without replacing any of them.
pub async fn canary_ephemeral_metadata(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "ephemeral").await?;
    f.given_rollout(EPHEMERAL).await?;
    let v = f.then("initial deploy", T, |v| v.healthy()).await?;
    let rev1 = v.stable();
    pods_until(
        &f,
        "stable metadata on revision 1",
        &rev1,
        2,
        role_is("stable"),
    )
    .await?;
    f.when_image("ephemeral:v2").await?;
    let v = f
        .then("paused at 1/1", T, |v| is_paused_at(v, (1, 1)))
        .await?;
    let rev2 = v.pod_hash();
    let canary = pods_until(
        &f,
        "canary metadata on revision 2",
        &rev2,
        1,
        role_is("canary"),
    )
    .await?;
    pods_until(
        &f,
        "stable metadata on revision 1",
        &rev1,
        1,
        role_is("stable"),
    )
    .await?;
    // New canary metadata: the old key goes, the new one comes, on the running pod.
    f.when_spec_patch(json!({"spec": {"strategy": {"canary": {
        "canaryMetadata": {"labels": {"role": null, "role2": "canary2"}}
    }}}}))
    .await?;
    let again = pods_until(&f, "canary metadata 2 on revision 2", &rev2, 1, |l| {
        !l.contains_key("role") && l.get("role2").map(String::as_str) == Some("canary2")
    })
    .await?;
    ensure!(again[0].0 == canary[0].0, "the canary pod was replaced");
    f.promote().await?;
    f.then("fully promoted", T, |v| v.healthy()).await?;
    let promoted = pods_until(&f, "stable metadata on revision 2", &rev2, 2, |l| {
        role_is("stable")(l) && !l.contains_key("role2")
    })
    .await?;
    ensure!(
        promoted.iter().any(|(uid, _)| *uid == canary[0].0),
        "the canary pod was kept through promotion: {promoted:?} vs {canary:?}"
    );
    // New stable metadata reaches the stable pods.
    f.when_spec_patch(json!({"spec": {"strategy": {"canary": {
        "stableMetadata": {"labels": {"role": null, "role2": "stable2"}}
    }}}}))
    .await?;
    let last = pods_until(&f, "stable metadata 2 on revision 2", &rev2, 2, |l| {
        !l.contains_key("role") && l.get("role2").map(String::as_str) == Some("stable2")
    })
    .await?;
    let mut a: Vec<_> = promoted.iter().map(|(u, _)| u.clone()).collect();
    let mut b: Vec<_> = last.iter().map(|(u, _)| u.clone()).collect();
    a.sort();
    b.sort();
    ensure!(a == b, "pods were replaced: {a:?} -> {b:?}");
    // The ReplicaSet records what it injected, as Argo's does (written once its pods are done).
    let record = |v: &View| {
        v.rss
            .iter()
            .find(|rs| rs.labels().get("rollouts-pod-template-hash") == rev2.as_ref())
            .and_then(|rs| {
                rs.annotations()
                    .get("rollout.argoproj.io/ephemeral-metadata")
                    .cloned()
            })
    };
    f.then("revision 2 records its metadata", T, |v| {
        record(v).as_deref() == Some(r#"{"labels":{"role2":"stable2"}}"#)
    })
    .await?;
    f.cleanup().await
}

/// `antiAffinity`: the canary ReplicaSet's pods avoid nodes running the stable pods (Argo's
/// `GenerateReplicaSetAffinity`); the first revision, with no stable to avoid, gets nothing.
pub async fn canary_anti_affinity(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "anti-affinity").await?;
    let yaml = EPHEMERAL
        .replace("name: ephemeral}", "name: anti}")
        .replace("app: ephemeral}", "app: anti}")
        .replace(
            "      canaryMetadata: {labels: {role: canary}}\n      stableMetadata: {labels: {role: stable}}\n",
            "      antiAffinity:\n        preferredDuringSchedulingIgnoredDuringExecution: {weight: 40}\n",
        );
    f.given_rollout(&yaml).await?;
    let v = f.then("initial deploy", T, |v| v.healthy()).await?;
    let affinity = |rs: &k8s_openapi::api::apps::v1::ReplicaSet| {
        serde_json::to_value(
            rs.spec
                .template
                .as_ref()
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.affinity.clone()),
        )
        .unwrap_or_default()
    };
    ensure!(
        v.rss.len() == 1 && affinity(&v.rss[0]).is_null(),
        "{:?}",
        v.rss.first().map(affinity)
    );
    let stable = v.stable().unwrap_or_default();
    f.when_image("ephemeral:v2").await?;
    let v = f
        .then("paused at 1/1", T, |v| is_paused_at(v, (1, 1)))
        .await?;
    let new = v
        .rss
        .iter()
        .find(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("rollouts-pod-template-hash"))
                == v.pod_hash().as_ref()
        })
        .ok_or_else(|| anyhow::anyhow!("the canary ReplicaSet"))?;
    let want = json!({"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{
        "weight": 40,
        "podAffinityTerm": {
            "labelSelector": {"matchExpressions": [
                {"key": "rollouts-pod-template-hash", "operator": "In", "values": [stable]}
            ]},
            "namespaces": [f.ns.clone()],
            "topologyKey": "kubernetes.io/hostname",
        }
    }]}});
    ensure!(affinity(new) == want, "affinity: {}", affinity(new));
    f.cleanup().await
}
