//! One control plane per run: `e2e/k8s-local.sh up <base>/run-<pid>`, with its own etcd, stopped
//! and its directory removed when the [`ControlPlane`] drops (on success, on error, and on a
//! Ctrl-C that drops it). The directory of a run whose process is gone (killed before it could
//! clean up) is stopped and removed by the next run; those of runs still alive are left alone.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use kube::Client;

use crate::{client_for, repo_root};

/// How a run wants its control plane.
#[derive(Clone, Debug)]
pub struct Options<'a> {
    /// Holds one `run-<pid>` directory per run (`target/e2e-cluster`, `target/bench-cluster`).
    pub base: PathBuf,
    /// Prefix of what is printed on stderr (`e2e`, `bench`).
    pub label: &'a str,
    /// kube-controller-manager's `--controllers` (`K8S_KCM_CONTROLLERS` of k8s-local.sh).
    pub kcm_controllers: &'a str,
    /// Extra kube-controller-manager flags (`K8S_KCM_ARGS`); `None` leaves the environment's.
    pub kcm_args: Option<&'a str>,
    /// Leave the control plane running, and its directory, when the run ends.
    pub keep: bool,
}

/// A running control plane: etcd, kube-apiserver and kube-controller-manager.
pub struct ControlPlane {
    /// `DIR/kubeconfig`: a system:masters token and the CA of the serving certificate.
    pub kubeconfig: PathBuf,
    pub client: Client,
    guard: DirGuard,
}

fn script() -> PathBuf {
    repo_root().join("e2e/k8s-local.sh")
}

/// Written into the run directory: `<pid> <start time>`, so that a later run can tell the
/// process that owns the directory from another one that got the same pid since.
const OWNER: &str = "owner";

impl ControlPlane {
    pub async fn start(opts: Options<'_>) -> Result<ControlPlane> {
        std::fs::create_dir_all(&opts.base)?;
        remove_stale(&opts.base, opts.label);
        let pid = std::process::id();
        let guard = DirGuard {
            dir: opts.base.join(format!("run-{pid}")),
            keep: opts.keep,
            label: opts.label.to_string(),
        };
        std::fs::create_dir_all(&guard.dir)?;
        if let Some(started) = start_time(pid) {
            std::fs::write(guard.dir.join(OWNER), format!("{pid} {started}\n"))?;
        }
        let t = Instant::now();
        let mut up = Command::new("bash");
        up.arg(script())
            .arg("up")
            .arg(&guard.dir)
            .env("K8S_KCM_CONTROLLERS", opts.kcm_controllers)
            // It prints the kubeconfig's path; its progress goes to stderr.
            .stdout(Stdio::null());
        if let Some(args) = opts.kcm_args {
            up.env("K8S_KCM_ARGS", args);
        }
        let status = up.status().context("running e2e/k8s-local.sh up")?;
        if !status.success() {
            bail!("control plane did not start: {status}");
        }
        eprintln!(
            "{}: control plane up in {:.1}s ({})",
            opts.label,
            t.elapsed().as_secs_f64(),
            guard.dir.display()
        );
        let kubeconfig = guard.dir.join("kubeconfig");
        let client = client_for(&kubeconfig).await?;
        Ok(ControlPlane {
            kubeconfig,
            client,
            guard,
        })
    }

    /// This run's directory (`ports.env`, `pki/`, `logs/`, `pids` of k8s-local.sh).
    pub fn dir(&self) -> &Path {
        &self.guard.dir
    }

    /// Install the project's CRDs (`crds/*.yaml`) and wait until they are Established.
    pub async fn install_crds(&self, field_manager: &str) -> Result<()> {
        crate::install_crds(&self.client, &repo_root().join("crds"), field_manager).await
    }

    /// `(name, pid)` of etcd, kube-apiserver and kube-controller-manager.
    pub fn pids(&self) -> Vec<(String, u32)> {
        std::fs::read_to_string(self.guard.dir.join("pids"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (name, pid) = l.split_once(' ')?;
                Some((name.to_string(), pid.trim().parse().ok()?))
            })
            .collect()
    }
}

/// Stops the control plane recorded in `dir` and deletes `dir` when dropped, unless kept. It
/// exists before `up` runs, so a start that fails half-way is cleaned up too.
struct DirGuard {
    dir: PathBuf,
    keep: bool,
    label: String,
}

impl Drop for DirGuard {
    fn drop(&mut self) {
        if self.keep {
            eprintln!(
                "{}: control plane kept running in {} (stop: bash e2e/k8s-local.sh down {1})",
                self.label,
                self.dir.display()
            );
            return;
        }
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&self.dir)
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Clusters of earlier runs whose process is gone (killed without cleanup, or kept): stop and
/// remove. Directories of runs still alive (a concurrent run's) are left alone.
fn remove_stale(base: &Path, label: &str) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(pid) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("run-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if owner_alive(&dir, pid) {
            continue;
        }
        eprintln!(
            "{label}: removing the cluster of an earlier run (interrupted, or kept): {}",
            dir.display()
        );
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .arg(&dir)
            .status();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Whether the process that created `dir` (`run-<pid>`) still runs.
fn owner_alive(dir: &Path, pid: u32) -> bool {
    let Some(started) = start_time(pid) else {
        return false;
    };
    match std::fs::read_to_string(dir.join(OWNER)) {
        Ok(owner) => owner.trim() == format!("{pid} {started}"),
        // No owner file (written by an older harness): a live pid other than ours counts.
        Err(_) => pid != std::process::id(),
    }
}

/// The start time of process `pid` (clock ticks since boot, field 22 of /proc/<pid>/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces: the first
    // of these is field 3.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
    }

    #[test]
    fn a_run_directory_belongs_to_the_process_that_wrote_its_owner_file() -> Result<()> {
        let base =
            std::env::temp_dir().join(format!("sluice-testkit-owner-{}", std::process::id()));
        let dir = base.join("run-x");
        std::fs::create_dir_all(&dir)?;
        let me = std::process::id();
        let started = start_time(me).unwrap_or_default();
        // No owner file: our own pid means a leftover of an earlier process with our pid.
        assert!(!owner_alive(&dir, me));
        std::fs::write(dir.join(OWNER), format!("{me} {started}\n"))?;
        assert!(owner_alive(&dir, me));
        // Same pid, another start time: the pid was reused, the owner is gone.
        std::fs::write(dir.join(OWNER), format!("{me} {}\n", started + 1))?;
        assert!(!owner_alive(&dir, me));
        // pid 1 without an owner file: alive, so left alone.
        std::fs::remove_file(dir.join(OWNER))?;
        assert!(owner_alive(&dir, 1));
        std::fs::remove_dir_all(&base)?;
        Ok(())
    }
}
