//! Golden-file tests of the static rendering: each `tests/golden/<case>.yaml` (a Rollout with
//! its ReplicaSets, Pods and AnalysisRuns) renders byte for byte to `<case>.txt` (no colour) and
//! `<case>.color.txt` (ANSI colour) at a fixed `now`. `SLUICE_UPDATE_GOLDEN=1 cargo test --lib
//! golden` rewrites the expected files after an intended change.

use std::path::{Path, PathBuf};

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::api::rollout::Rollout;
use crate::cli::list::{render_table, row};
use crate::cli::render::Style;
use crate::cli::tree::{AnalysisRunInfo, View, render};

const CASES: [&str; 8] = [
    "canary-paused",
    "canary-healthy",
    "canary-aborted",
    "canary-analysis",
    "bluegreen-paused",
    "bluegreen-promoted",
    "bluegreen-healthy",
    "bluegreen-aborted",
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z"
        .parse()
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

struct Fixture {
    rollout: Rollout,
    replica_sets: Vec<ReplicaSet>,
    pods: Vec<Pod>,
    analysis_runs: Vec<AnalysisRunInfo>,
}

fn load(case: &str) -> Fixture {
    let path = dir().join(format!("{case}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rollout = None;
    let (mut replica_sets, mut pods, mut analysis_runs) = (vec![], vec![], vec![]);
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let fail = |e: serde_json::Error| -> ! { panic!("{case}: {kind}: {e}") };
        match kind.as_str() {
            "Rollout" => rollout = Some(serde_json::from_value(doc).unwrap_or_else(|e| fail(e))),
            "ReplicaSet" => {
                replica_sets.push(serde_json::from_value(doc).unwrap_or_else(|e| fail(e)))
            }
            "Pod" => pods.push(serde_json::from_value(doc).unwrap_or_else(|e| fail(e))),
            "AnalysisRun" => analysis_runs.push(AnalysisRunInfo::from_json(&doc)),
            other => panic!("{case}: unexpected kind {other}"),
        }
    }
    Fixture {
        rollout: rollout.unwrap_or_else(|| panic!("{case}: no Rollout")),
        replica_sets,
        pods,
        analysis_runs,
    }
}

/// Compare with the golden file, or rewrite it when asked to.
fn check(file: &str, actual: &str) -> Option<String> {
    let path = dir().join(file);
    if std::env::var_os("SLUICE_UPDATE_GOLDEN").is_some() {
        if let Err(e) = std::fs::write(&path, actual) {
            return Some(format!("{}: {e}", path.display()));
        }
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{file} differs from the rendering:\n{actual}\n(if intended: SLUICE_UPDATE_GOLDEN=1 cargo test --lib golden)"
        )
    })
}

#[test]
fn get_rollout_golden() {
    let mut failures = Vec::new();
    for case in CASES {
        let f = load(case);
        let view = View {
            rollout: &f.rollout,
            replica_sets: &f.replica_sets,
            pods: &f.pods,
            analysis_runs: &f.analysis_runs,
        };
        for (suffix, color) in [("txt", false), ("color.txt", true)] {
            let text = render(&view, now(), Style { color });
            if !color {
                assert!(
                    !text.contains('\x1b'),
                    "{case}: escape codes without colour"
                );
                for line in text.lines() {
                    let w = crate::cli::render::visible_width(line);
                    assert!(w <= 100, "{case}: {w} columns: {line}");
                }
            }
            failures.extend(check(&format!("{case}.{suffix}"), &text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn list_rollouts_golden() {
    let rows: Vec<_> = CASES
        .iter()
        .map(|case| {
            let mut ro = load(case).rollout;
            ro.metadata.name = Some((*case).to_string());
            if case.starts_with("bluegreen") {
                ro.metadata.namespace = Some("payments".into());
            }
            row(&ro)
        })
        .collect();
    let mut failures = Vec::new();
    failures.extend(check(
        "list-rollouts.txt",
        &render_table(&rows, false, None),
    ));
    failures.extend(check(
        "list-rollouts-all-namespaces.txt",
        &render_table(&rows, true, Some("2026-01-01T12:00:00Z")),
    ));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
