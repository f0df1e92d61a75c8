//! Writes the generated CRDs, one YAML file per CRD, into the directories given as arguments
//! (default: `crds/` and the chart's `charts/sluice/crds/`, which must hold the same bytes).

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let mut dirs: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if dirs.is_empty() {
        dirs = vec![PathBuf::from("crds"), PathBuf::from("charts/sluice/crds")];
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (name, yaml) in sluice::api::crd::crd_yaml() {
            let path = dir.join(&name);
            std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
