//! Renders `charts/sluice` with the real Helm engine: Helm's own Go SDK (v4), loaded through the
//! `helm-python-sdk` wheel from PyPI, which bundles it as a shared library. No `helm` binary is
//! packaged for Debian, and the wheel needs only python3. It is installed on first use into
//! `target/helm-python` (pinned version; atomic rename so concurrent test binaries do not clash).

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Context as _, Result, anyhow, bail};
use serde_json::Value;

const WHEEL: &str = "helm-python-sdk==0.2.2";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn chart_dir() -> PathBuf {
    root().join("charts/sluice")
}

fn site() -> PathBuf {
    root().join("target/helm-python")
}

static INSTALL: Mutex<()> = Mutex::new(());

fn python() -> Command {
    let mut c = Command::new("python3");
    c.env("PYTHONPATH", site());
    c
}

/// Make sure `helm_python` imports, installing the wheel if needed.
fn ensure_engine() -> Result<()> {
    let _g = INSTALL
        .lock()
        .map_err(|_| anyhow!("install lock poisoned"))?;
    let ok = python()
        .args(["-c", "import helm_python"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if ok {
        return Ok(());
    }
    let tmp = root().join(format!("target/helm-python.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--target",
        ])
        .arg(&tmp)
        .arg(WHEEL)
        .output()
        .context("running python3 -m pip (python3 is needed for the Helm engine)")?;
    if !out.status.success() {
        bail!(
            "pip install {WHEEL} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if std::fs::rename(&tmp, site()).is_err() {
        // Another test binary won the race.
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}

const RENDER: &str = r#"
import json, sys
import helm_python as helm
chart, values, name, namespace = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
with helm.Chart.load(chart) as c:
    out = c.render(values, name=name, namespace=namespace, is_install=True)
print(json.dumps({"version": helm.helm_sdk_version(), "files": out}))
"#;

/// What Helm rendered: template path → manifest text, and the Helm SDK version used.
pub struct Rendered {
    pub helm_version: String,
    pub files: BTreeMap<String, String>,
}

/// `helm template <name> charts/sluice --namespace <namespace> --values <values>`.
pub fn render(values: &Value, name: &str, namespace: &str) -> Result<Rendered> {
    ensure_engine()?;
    let out = python()
        .args(["-c", RENDER])
        .arg(chart_dir())
        .arg(values.to_string())
        .arg(name)
        .arg(namespace)
        .output()?;
    if !out.status.success() {
        bail!(
            "helm render failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let files = v["files"]
        .as_object()
        .ok_or_else(|| anyhow!("no files in render output"))?
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    Ok(Rendered {
        helm_version: v["version"].as_str().unwrap_or_default().to_string(),
        files,
    })
}

const LINT: &str = r#"
import json, sys
import helm_python as helm
print(json.dumps(helm.lint(sys.argv[1], json.loads(sys.argv[2]), strict=True)))
"#;

/// `helm lint --strict`; returns the report (`messages`, `errors`).
pub fn lint(values: &Value) -> Result<Value> {
    ensure_engine()?;
    let out = python()
        .args(["-c", LINT])
        .arg(chart_dir())
        .arg(values.to_string())
        .output()?;
    if !out.status.success() {
        bail!("helm lint failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

impl Rendered {
    /// Every object of every template, as JSON.
    pub fn objects(&self) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        for (file, text) in &self.files {
            if !file.ends_with(".yaml") {
                continue;
            }
            for doc in split_documents(text) {
                let v: Value = serde_saphyr::from_str(&doc).map_err(|e| anyhow!("{file}: {e}"))?;
                if !v.is_null() {
                    all.push(v);
                }
            }
        }
        Ok(all)
    }

    /// The one object of `kind` named `name`.
    pub fn get(&self, kind: &str, name: &str) -> Result<Value> {
        self.objects()?
            .into_iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .ok_or_else(|| anyhow!("no {kind} {name} rendered"))
    }

    pub fn of_kind(&self, kind: &str) -> Result<Vec<Value>> {
        Ok(self
            .objects()?
            .into_iter()
            .filter(|o| o["kind"] == kind)
            .collect())
    }
}

/// Split a multi-document YAML stream, dropping documents that hold only comments.
pub fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") {
            docs.push(String::new());
            continue;
        }
        if let Some(d) = docs.last_mut() {
            d.push_str(line);
            d.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}
