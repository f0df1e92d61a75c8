//! Sluice's test kit: the tools the end-to-end suite (`tests/e2e`) and the scale benchmark
//! (`benches/scale`) run, kept out of the `sluice` package's binaries. The fake kubelet is this
//! package's binary (`src/bin/fake-kubelet/`); [`fake_kubelet`] builds it for them.

mod process;

use std::path::{Path, PathBuf};

pub use process::fake_kubelet;

/// The repository: the workspace the fake kubelet is built in.
pub fn repo_root() -> PathBuf {
    let testkit = Path::new(env!("CARGO_MANIFEST_DIR"));
    testkit.parent().unwrap_or(testkit).to_path_buf()
}
