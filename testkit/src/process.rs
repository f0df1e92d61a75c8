//! Child processes of a run (fake kubelet, controllers), and the fake kubelet's binary.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::repo_root;

/// A child process with its output in `log`; killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    /// Start `cmd` with stdin closed and stdout and stderr written to `log` (truncated).
    pub fn spawn(name: impl Into<String>, mut cmd: Command, log: PathBuf) -> Result<Proc> {
        let name = name.into();
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Proc { name, child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fail if the process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({}); see {}",
                self.name,
                status,
                self.log.display()
            ),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fake kubelet's binary, up to date: built by cargo into the directory of `next_to`, a
/// binary cargo built for the caller's own package (pass `env!("CARGO_BIN_EXE_sluice-controller")`),
/// so with the same target directory, profile and target triple as the test or bench itself.
///
/// Cargo builds a package's own binaries for its tests and benches, never another package's:
/// this does for the fake kubelet what `CARGO_BIN_EXE_*` does for the package's own binaries.
/// `SLUICE_FAKE_KUBELET=<path>` runs that binary instead and builds nothing.
pub fn fake_kubelet(next_to: &Path) -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("SLUICE_FAKE_KUBELET") {
        return Ok(PathBuf::from(bin));
    }
    // <target-dir>/<profile dir>/, or <target-dir>/<triple>/<profile dir>/ with --target.
    let out = next_to
        .parent()
        .ok_or_else(|| anyhow!("{} is not in a directory", next_to.display()))?;
    let bin = out.join(format!("fake-kubelet{}", std::env::consts::EXE_SUFFIX));
    let profile = match out.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(dir) => dir,
        None => bail!("no cargo profile directory in {}", out.display()),
    };
    let above = out
        .parent()
        .ok_or_else(|| anyhow!("{} is not in a target directory", out.display()))?;
    let (target_dir, triple) = if above.join("CACHEDIR.TAG").exists() {
        (above, None)
    } else {
        let root = above
            .parent()
            .ok_or_else(|| anyhow!("{} is not in a target directory", above.display()))?;
        (root, above.file_name())
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(&cargo);
    // `--workspace` resolves dependency features for the whole workspace, as the test build did
    // (but for the dev-dependencies, which change two small crates), so the fake kubelet reuses
    // the dependencies already compiled; with `-p sluice-testkit` alone, kube and most of its
    // tree would be compiled a second time. When it is up to date this takes a fraction of a second.
    build
        .current_dir(repo_root())
        .args([
            "build",
            "--workspace",
            "--bin",
            "fake-kubelet",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(triple) = triple {
        build.arg("--target").arg(triple);
    }
    match build.status() {
        Ok(s) if s.success() => Ok(bin),
        Ok(s) => bail!("building the fake kubelet (cargo build --bin fake-kubelet) failed: {s}"),
        Err(e) if bin.exists() => {
            eprintln!(
                "warning: cannot run {} ({e}); using {} as it is",
                cargo.to_string_lossy(),
                bin.display()
            );
            Ok(bin)
        }
        Err(e) => Err(e).with_context(|| {
            format!(
                "running {} to build the fake kubelet (or set SLUICE_FAKE_KUBELET)",
                cargo.to_string_lossy()
            )
        }),
    }
}
