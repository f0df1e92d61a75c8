//! End-to-end scenarios of `kubectl sluice`: the real binary against the genuine control plane,
//! with a controller per scenario. Each verb must change the Rollout as Argo's CLI does and the
//! controller must react as the reference says.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, Result, bail, ensure};
use jiff::Timestamp;

use crate::harness::{Cluster, Fixture, View, root};

const T: Duration = Duration::from_secs(60);

fn seed() -> String {
    std::fs::read_to_string(root().join("e2e/manifests/seed-rollout.yaml")).unwrap_or_default()
}

/// The result of one `kubectl-sluice` run.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self, what: &str) -> Result<Run> {
        ensure!(
            self.code == 0,
            "`{what}` exited {}: {}",
            self.code,
            self.stderr.trim()
        );
        Ok(self)
    }

    /// A failure must be exactly one `error: …` line (no panic, no backtrace).
    fn failed(self, what: &str, expected: &str) -> Result<Run> {
        ensure!(
            self.code != 0,
            "`{what}` should fail, exited 0: {}",
            self.stdout
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        ensure!(
            lines.len() == 1 && lines[0] == format!("error: {expected}"),
            "`{what}`: stderr {:?}, wanted one line `error: {expected}`",
            self.stderr
        );
        Ok(self)
    }
}

fn command(c: &Cluster, f: &Fixture, args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-sluice"));
    cmd.arg("--kubeconfig")
        .arg(&c.kubeconfig)
        .arg("-n")
        .arg(&f.ns)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

async fn sluice(c: &Cluster, f: &Fixture, args: &[&str]) -> Result<Run> {
    let out = tokio::time::timeout(Duration::from_secs(90), command(c, f, args).output())
        .await
        .with_context(|| format!("kubectl-sluice {args:?} hung"))??;
    Ok(Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn is_paused_at(v: &View, sizes: (i32, i32)) -> bool {
    v.sizes() == sizes && v.phase() == "Paused" && v.message() == "CanaryPauseStep"
}

fn image(v: &View) -> String {
    v.ro.spec
        .template
        .as_ref()
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

async fn deployed(f: &mut Fixture, yaml: &str) -> Result<View> {
    f.given_rollout(yaml).await?;
    f.then("initial deploy healthy", T, |v| v.healthy()).await
}

/// set image, get rollout, promote, promote --full, status (exit 0), and promote again (a no-op).
pub async fn cli_promote(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-promote").await?;
    deployed(&mut f, &seed()).await?;
    let r = sluice(c, &f, &["set", "image", "frontend", "frontend=frontend:v2"])
        .await?
        .ok("set image")?;
    ensure!(
        r.stdout == "rollout \"frontend\" image updated\n",
        "{}",
        r.stdout
    );
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    let r = sluice(c, &f, &["promote", "frontend"])
        .await?
        .ok("promote")?;
    ensure!(r.stdout == "rollout 'frontend' promoted\n", "{}", r.stdout);
    let v = f
        .then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    ensure!(v.step() == Some(3), "step {:?}", v.step());
    // The tree shows the state the controller reached (once the old pods are gone).
    let mut r = sluice(c, &f, &["get", "rollout", "frontend", "--no-color"])
        .await?
        .ok("get rollout")?;
    for _ in 0..20 {
        if r.stdout
            .lines()
            .filter(|l| l.contains("□ frontend-"))
            .count()
            == 5
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        r = sluice(c, &f, &["get", "rollout", "frontend", "--no-color"])
            .await?
            .ok("get rollout")?;
    }
    for want in [
        "Name:            frontend\n",
        "Status:          ॥ Paused\n",
        "Message:         CanaryPauseStep\n",
        "Strategy:        Canary\n",
        "  Step:          3/8 (pause: 10m, ",
        "  SetWeight:     40\n",
        "  ActualWeight:  40\n",
        "frontend:v1 (stable)",
        "frontend:v2 (canary)",
        "  Desired:       5\n",
        "NAME ",
        "⟳ frontend ",
        "├──# revision:2",
        "└──# revision:1",
    ] {
        ensure!(
            r.stdout.contains(want),
            "get rollout lacks {want:?}:\n{}",
            r.stdout
        );
    }
    ensure!(!r.stdout.contains('\x1b'), "colour codes with --no-color");
    let pods = r
        .stdout
        .lines()
        .filter(|l| l.contains("□ frontend-"))
        .count();
    ensure!(pods == 5, "5 pod rows, got {pods}:\n{}", r.stdout);
    ensure!(
        r.stdout.lines().all(|l| l.chars().count() <= 100),
        "wider than 100 columns"
    );
    let r = sluice(c, &f, &["promote", "frontend", "--full"])
        .await?
        .ok("promote --full")?;
    ensure!(
        r.stdout == "rollout 'frontend' fully promoted\n",
        "{}",
        r.stdout
    );
    let v = f.then("fully promoted", T, |v| v.healthy()).await?;
    ensure!(v.step() == Some(8) && v.sizes() == (0, 5));
    let r = sluice(c, &f, &["status", "frontend", "--timeout", "60s"])
        .await?
        .ok("status")?;
    ensure!(r.stdout.ends_with("Healthy\n"), "{}", r.stdout);
    let r = sluice(c, &f, &["status", "frontend", "--watch=false"])
        .await?
        .ok("status --watch=false")?;
    ensure!(r.stdout == "Healthy\n", "{}", r.stdout);
    // Idempotent as Argo's: promoting a finished rollout again succeeds and changes nothing.
    let before = f.view().await?.ro.metadata.resource_version;
    for (args, said) in [
        (
            &["promote", "frontend"][..],
            "rollout 'frontend' promoted\n",
        ),
        (
            &["promote", "frontend", "--full"][..],
            "rollout 'frontend' fully promoted\n",
        ),
    ] {
        let r = sluice(c, &f, args).await?.ok("promote (healthy)")?;
        ensure!(r.stdout == said, "{args:?}: {}", r.stdout);
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let after = f.view().await?.ro.metadata.resource_version;
    ensure!(before == after, "a no-op promote wrote the rollout");
    sluice(c, &f, &["promote", "ghost"]).await?.failed(
        "promote ghost",
        &format!("rollout 'ghost' not found in namespace '{}'", f.ns),
    )?;
    f.cleanup().await
}

/// abort → Degraded and `status` fails with the message; `retry rollout` starts over.
pub async fn cli_abort_retry(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-abort").await?;
    deployed(&mut f, &seed()).await?;
    sluice(c, &f, &["set", "image", "frontend", "*=frontend:v2"])
        .await?
        .ok("set image *")?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    sluice(c, &f, &["promote", "frontend"])
        .await?
        .ok("promote")?;
    f.then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    let r = sluice(c, &f, &["abort", "frontend"]).await?.ok("abort")?;
    ensure!(r.stdout == "rollout 'frontend' aborted\n", "{}", r.stdout);
    let v = f
        .then("aborted", T, |v| {
            v.sizes() == (0, 5) && v.phase() == "Degraded"
        })
        .await?;
    ensure!(v.ro.status.as_ref().and_then(|s| s.abort) == Some(true));
    ensure!(image(&v) == "frontend:v2", "abort keeps spec.template");
    let r = sluice(c, &f, &["status", "frontend", "--timeout", "30s"]).await?;
    ensure!(
        r.code != 0
            && r.stderr.lines().count() == 1
            && r.stderr.starts_with(
                "error: The rollout is in a degraded state with message: RolloutAborted: Rollout aborted update to revision 2"
            ),
        "status after abort: exit {} stderr {:?}",
        r.code,
        r.stderr
    );
    let r = sluice(c, &f, &["retry", "rollout", "frontend"])
        .await?
        .ok("retry rollout")?;
    ensure!(r.stdout == "rollout 'frontend' retried\n", "{}", r.stdout);
    let v = f
        .then("restarted from step 0", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    ensure!(
        v.step() == Some(1),
        "at the first pause again: {:?}",
        v.step()
    );
    ensure!(v.ro.status.as_ref().and_then(|s| s.abort) != Some(true));
    // A status wait that cannot finish in time reports the timeout.
    sluice(c, &f, &["status", "frontend", "--timeout", "2s"])
        .await?
        .failed("status (paused)", "Rollout status watch exceeded timeout")?;
    f.cleanup().await
}

const PAUSEY: &str = r#"
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
      - pause: {duration: 2}
  template:
    metadata: {labels: {app: pausey}}
    spec: {containers: [{name: app, image: "pausey:v1"}]}
"#;

/// pause holds the rollout; resume only clears spec.paused (no step completed or skipped) and
/// refuses a controller pause, which promote ends.
pub async fn cli_pause_resume(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-pause").await?;
    deployed(&mut f, PAUSEY).await?;
    let r = sluice(c, &f, &["pause", "pausey"]).await?.ok("pause")?;
    ensure!(r.stdout == "rollout 'pausey' paused\n", "{}", r.stdout);
    f.then("manually paused", T, |v| {
        v.phase() == "Paused" && v.message() == "manually paused"
    })
    .await?;
    sluice(c, &f, &["set", "image", "pausey", "app=pausey:v2"])
        .await?
        .ok("set image")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let v = f.view().await?;
    ensure!(
        v.ro.spec.paused == Some(true) && v.sizes().0 == 0 && v.phase() == "Paused",
        "a paused rollout does not progress: {:?} {:?}",
        v.sizes(),
        v.phase()
    );
    let r = sluice(c, &f, &["resume", "pausey"]).await?.ok("resume")?;
    ensure!(r.stdout == "rollout 'pausey' resumed\n", "{}", r.stdout);
    let v = f.view().await?;
    ensure!(v.ro.spec.paused == Some(false), "spec.paused cleared");
    // Resumed from where it stood: the first step (setWeight 40) runs, then the pause step holds.
    let v = f
        .then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    ensure!(v.step() == Some(1), "step {:?}", v.step());
    sluice(c, &f, &["resume", "pausey"]).await?.failed(
        "resume (controller pause)",
        "rollout 'pausey' is paused by the controller (CanaryPauseStep at step 1/4), not manually: only `promote` ends that pause, resume never skips a step",
    )?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = f.view().await?;
    ensure!(
        is_paused_at(&v, (2, 3)) && v.step() == Some(1),
        "a refused resume changes nothing"
    );
    sluice(c, &f, &["promote", "pausey"]).await?.ok("promote")?;
    f.then("completed", T, |v| v.healthy()).await?;
    sluice(c, &f, &["resume", "pausey"])
        .await?
        .failed("resume (not paused)", "rollout 'pausey' is not paused")?;
    f.cleanup().await
}

/// undo: to the previous revision after a full promotion (reusing the old ReplicaSet), and in
/// the middle of an update (fast rollback to stable).
pub async fn cli_undo(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-undo").await?;
    let first = deployed(&mut f, &seed()).await?;
    let v1_hash = first.stable();
    sluice(c, &f, &["set", "image", "frontend", "frontend=frontend:v2"])
        .await?
        .ok("set image")?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    sluice(c, &f, &["promote", "frontend", "--full"])
        .await?
        .ok("promote --full")?;
    f.then("v2 stable", T, |v| v.healthy() && v.stable() != v1_hash)
        .await?;
    let r = sluice(c, &f, &["undo", "frontend"]).await?.ok("undo")?;
    ensure!(
        r.stdout == "rollout 'frontend' undo (to revision 1)\n",
        "{}",
        r.stdout
    );
    let v = f.view().await?;
    ensure!(
        image(&v) == "frontend:v1",
        "template restored: {}",
        image(&v)
    );
    let labels =
        v.ro.spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
    ensure!(
        !labels.contains_key("rollouts-pod-template-hash"),
        "hash label stripped: {labels:?}"
    );
    // Going back to an older revision is an update like any other: steps, then stable.
    let v = f
        .then("rollback reuses the v1 ReplicaSet", T, |v| {
            v.pod_hash() == v1_hash && is_paused_at(v, (1, 4))
        })
        .await?;
    ensure!(v.rss.len() == 2, "no new ReplicaSet: {}", v.rss.len());
    sluice(c, &f, &["promote", "frontend", "--full"])
        .await?
        .ok("promote --full")?;
    f.then("v1 stable again", T, |v| {
        v.healthy() && v.stable() == v1_hash
    })
    .await?;
    // Mid-update undo: back to the stable template, which the controller fast-tracks.
    sluice(c, &f, &["set", "image", "frontend", "frontend=frontend:v3"])
        .await?
        .ok("set image v3")?;
    f.then("v3 paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    let r = sluice(c, &f, &["undo", "frontend"])
        .await?
        .ok("undo mid-update")?;
    ensure!(
        r.stdout
            .starts_with("rollout 'frontend' undo (to revision "),
        "{}",
        r.stdout
    );
    let v = f
        .then("fast rollback to stable", T, |v| {
            v.healthy() && v.stable() == v1_hash && v.sizes() == (0, 5)
        })
        .await?;
    ensure!(v.step() == Some(8), "steps skipped: {:?}", v.step());
    // Undo to the revision already running changes nothing.
    let current = v
        .rss
        .iter()
        .find(|rs| {
            rs.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("rollouts-pod-template-hash"))
                == v1_hash.as_ref()
        })
        .and_then(|rs| rs.metadata.annotations.as_ref())
        .and_then(|a| a.get("rollout.argoproj.io/revision"))
        .cloned()
        .unwrap_or_default();
    let r = sluice(c, &f, &["undo", "frontend", "--to-revision", &current])
        .await?
        .ok("undo to the current revision")?;
    ensure!(
        r.stdout
            == format!("skipped rollback (current template already matches revision {current})\n"),
        "{}",
        r.stdout
    );
    sluice(c, &f, &["undo", "frontend", "--to-revision", "99"])
        .await?
        .failed(
            "undo --to-revision 99",
            "unable to find specified revision 99 in history",
        )?;
    f.cleanup().await
}

/// restart sets spec.restartAt (RFC 3339, now + --in); the controller reports the restart.
pub async fn cli_restart(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-restart").await?;
    deployed(&mut f, &seed()).await?;
    let before = Timestamp::now();
    let r = sluice(c, &f, &["restart", "frontend", "--in", "30s"])
        .await?
        .ok("restart --in 30s")?;
    ensure!(
        r.stdout == "rollout 'frontend' restarts in 30s\n",
        "{}",
        r.stdout
    );
    let v = f.view().await?;
    let raw = serde_json::to_value(&v.ro)?["spec"]["restartAt"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let at: Timestamp = raw.parse()?;
    let d = at.duration_since(before).as_secs();
    ensure!(
        (28..=35).contains(&d),
        "restartAt {raw} is {d}s after the call"
    );
    ensure!(
        raw.ends_with('Z') && !raw.contains('.'),
        "RFC 3339 UTC seconds: {raw}"
    );
    // The controller reacts: Progressing "rollout is restarting" until it records restartedAt.
    let restart_at = v.ro.spec.restart_at.clone();
    f.then("restart observed", T, |v| {
        v.message() == "rollout is restarting"
            || v.ro.status.as_ref().and_then(|s| s.restarted_at.clone()) == restart_at
    })
    .await?;
    sluice(c, &f, &["restart", "ghost"]).await?.failed(
        "restart ghost",
        &format!("rollout 'ghost' not found in namespace '{}'", f.ns),
    )?;
    f.cleanup().await
}

/// lint: the seed is valid; an invalid file prints exactly the controller's InvalidSpec message.
/// Also the offline verbs: version, completion.
pub async fn cli_lint(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-lint").await?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/e2e-logs");
    std::fs::create_dir_all(&dir)?;
    let good = dir.join("cli-lint-valid.yaml");
    let bad = dir.join("cli-lint-invalid.yaml");
    let invalid = seed().replace("setWeight: 20", "setWeight: 150");
    std::fs::write(&good, seed())?;
    std::fs::write(&bad, &invalid)?;
    let good = good.to_string_lossy().into_owned();
    let bad = bad.to_string_lossy().into_owned();
    let r = sluice(c, &f, &["lint", "-f", &good])
        .await?
        .ok("lint valid")?;
    ensure!(r.stdout == "rollout 'frontend' is valid\n", "{}", r.stdout);
    let r = sluice(c, &f, &["lint", "-f", &bad])
        .await?
        .failed("lint invalid", &format!("{bad}: 1 validation error"))?;
    // The same manifest applied: the controller's condition carries the same message.
    f.given_rollout(&invalid).await?;
    let v = f
        .then("InvalidSpec", T, |v| {
            v.condition_message("InvalidSpec").is_some()
        })
        .await?;
    let controller = v.condition_message("InvalidSpec").unwrap_or_default();
    ensure!(
        r.stdout == format!("{controller}\n"),
        "lint said {:?}, the controller {controller:?}",
        r.stdout
    );
    // lint needs no cluster at all.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-sluice"))
        .args(["--kubeconfig", "/nonexistent", "lint", "-f", &good])
        .output()
        .await?;
    ensure!(out.status.success(), "lint is offline");
    let r = sluice(c, &f, &["version"]).await?.ok("version")?;
    ensure!(r.stdout.starts_with("kubectl-sluice: v"), "{}", r.stdout);
    for shell in ["bash", "zsh", "fish"] {
        let r = sluice(c, &f, &["completion", shell])
            .await?
            .ok("completion")?;
        ensure!(
            r.stdout.contains("promote"),
            "{shell} completion mentions the verbs"
        );
    }
    f.cleanup().await
}

/// list rollouts (namespace, -A, --name) and get/set errors.
pub async fn cli_list(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-list").await?;
    deployed(&mut f, &seed()).await?;
    deployed(
        &mut f,
        &seed()
            .replace("name: frontend", "name: backend")
            .replace("app: frontend", "app: backend"),
    )
    .await?;
    let r = sluice(c, &f, &["list", "rollouts"]).await?.ok("list")?;
    let lines: Vec<&str> = r.stdout.lines().collect();
    ensure!(lines.len() == 3, "header + 2 rollouts:\n{}", r.stdout);
    ensure!(
        lines[0].split_whitespace().collect::<Vec<_>>()
            == [
                "NAME",
                "STRATEGY",
                "STATUS",
                "STEP",
                "SET-WEIGHT",
                "READY",
                "DESIRED",
                "UP-TO-DATE",
                "AVAILABLE"
            ],
        "{}",
        lines[0]
    );
    for (line, name) in lines[1..].iter().zip(["backend", "frontend"]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        ensure!(
            cells
                == [
                    name, "Canary", "Healthy", "8/8", "100", "5/5", "5", "5", "5"
                ],
            "{line}"
        );
    }
    let r = sluice(c, &f, &["list", "rollouts", "-A"])
        .await?
        .ok("list -A")?;
    ensure!(r.stdout.starts_with("NAMESPACE "), "{}", r.stdout);
    ensure!(
        r.stdout
            .lines()
            .any(|l| l.starts_with(&format!("{} ", f.ns))),
        "{}",
        r.stdout
    );
    let r = sluice(c, &f, &["list", "rollouts", "--name", "frontend"])
        .await?
        .ok("list --name")?;
    ensure!(r.stdout.lines().count() == 2, "{}", r.stdout);
    sluice(c, &f, &["get", "rollout", "ghost"]).await?.failed(
        "get ghost",
        &format!("rollout 'ghost' not found in namespace '{}'", f.ns),
    )?;
    sluice(c, &f, &["set", "image", "frontend", "nope=x:1"])
        .await?
        .failed("set image nope", "unable to find container named \"nope\"")?;
    f.cleanup().await
}

/// `get rollout --watch` without a terminal prints a snapshot per change, driven by watches.
pub async fn cli_get_watch(c: &Cluster) -> Result<()> {
    let mut f = Fixture::new(c, "cli-watch").await?;
    deployed(&mut f, &seed()).await?;
    let child = command(
        c,
        &f,
        &[
            "get",
            "rollout",
            "frontend",
            "--watch",
            "--timeout-seconds",
            "40",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    sluice(c, &f, &["set", "image", "frontend", "frontend=frontend:v2"])
        .await?
        .ok("set image")?;
    f.then("paused at 1/4", T, |v| is_paused_at(v, (1, 4)))
        .await?;
    // Snapshots come at most once a second: let this state show before moving on.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sluice(c, &f, &["promote", "frontend"])
        .await?
        .ok("promote")?;
    f.then("paused at 2/3", T, |v| is_paused_at(v, (2, 3)))
        .await?;
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .context("get --watch did not stop at --timeout-seconds")??;
    let text = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "get --watch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(!text.contains('\x1b'), "no escape codes without a terminal");
    let frames: Vec<&str> = text.split("\nName:").collect();
    ensure!(
        frames.len() >= 3,
        "several snapshots, got {}:\n{text}",
        frames.len()
    );
    ensure!(text.starts_with("Name:            frontend\n"), "{text}");
    ensure!(
        frames[0].contains("✔ Healthy"),
        "first frame healthy:\n{}",
        frames[0]
    );
    let last = frames.last().copied().unwrap_or_default();
    for want in ["॥ Paused", "  Step:          3/8", "frontend:v2 (canary)"] {
        if !last.contains(want) {
            bail!("last frame lacks {want:?}:\n{last}");
        }
    }
    ensure!(
        text.contains("  Step:          1/8"),
        "an intermediate frame shows the first pause"
    );
    f.cleanup().await
}
