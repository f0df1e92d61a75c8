//! Our CRD schemas carry every property path of Argo Rollouts' own CRDs, so that no field of a
//! manifest written for Argo is pruned by the API server when it is applied against ours.
//!
//! Argo's CRDs are kept as test data under `tests/data/argo-crds/` (see the README there for the
//! upstream commit). The test walks both schemas through `properties`, `items` and
//! `additionalProperties` and lists, per CRD and version, every path of Argo's that ours lacks;
//! paths below an object of ours that keeps unknown fields count as kept (see `missing_from`).
//! Paths we have that Argo lacks are printed for information only (`--nocapture`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

/// Argo's CRD files, as kept under `tests/data/argo-crds/`.
const ARGO_FILES: [&str; 5] = [
    "rollout-crd.yaml",
    "analysis-template-crd.yaml",
    "cluster-analysis-template-crd.yaml",
    "analysis-run-crd.yaml",
    "experiment-crd.yaml",
];

/// The property paths of one schema.
#[derive(Default)]
struct Paths {
    /// Every path, e.g. `.spec.template.spec.containers[].env[].valueFrom`. `[]` stands for
    /// the items of an array, `.*` for the values of a map (`additionalProperties`).
    all: BTreeSet<String>,
    /// Paths marked `x-kubernetes-preserve-unknown-fields: true`: the API server keeps any
    /// field under them, so every path below one of these is kept, declared or not.
    open: BTreeSet<String>,
}

impl Paths {
    fn of(schema: &Value) -> Self {
        let mut paths = Paths::default();
        paths.walk(schema, String::new());
        paths
    }

    fn walk(&mut self, node: &Value, path: String) {
        if node.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
            self.open.insert(path.clone());
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                let p = format!("{path}.{name}");
                self.all.insert(p.clone());
                self.walk(child, p);
            }
        }
        if let Some(items) = node.get("items") {
            let p = format!("{path}[]");
            self.all.insert(p.clone());
            self.walk(items, p);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            let p = format!("{path}.*");
            self.all.insert(p.clone());
            self.walk(values, p);
        }
    }

    /// Whether a field at `path` survives pruning: it is declared, or it lies under an object
    /// that keeps unknown fields (the path itself may then be anything).
    fn keeps(&self, path: &str) -> bool {
        self.all.contains(path) || self.open.iter().any(|o| is_below(path, o))
    }

    /// Whether every field below `path` survives pruning: `path` or an object above it keeps
    /// unknown fields, or `path` is an array whose items do. (Argo's pod template `volumes` is a
    /// bare `x-kubernetes-preserve-unknown-fields: true`; ours is an array of such objects, which
    /// keeps the same fields of every pod template a pod can be created from.)
    fn keeps_anything_below(&self, path: &str) -> bool {
        self.open.contains(path)
            || self.open.iter().any(|o| is_below(path, o))
            || self.open.contains(&format!("{path}[]"))
    }
}

/// Whether `path` lies strictly below `ancestor` (`.a.b` and `.a[]` are below `.a`, `.ab` is not).
fn is_below(path: &str, ancestor: &str) -> bool {
    path.strip_prefix(ancestor)
        .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// `(CRD name, version) -> openAPIV3Schema`.
type Schemas = BTreeMap<(String, String), Value>;

fn schemas_of(crd: &Value, out: &mut Schemas) {
    let name = crd["metadata"]["name"]
        .as_str()
        .expect("CRD name")
        .to_string();
    for version in crd["spec"]["versions"].as_array().expect("versions") {
        let v = version["name"].as_str().expect("version name").to_string();
        let schema = version["schema"]["openAPIV3Schema"].clone();
        assert!(schema.is_object(), "{name} {v}: no openAPIV3Schema");
        out.insert((name.clone(), v), schema);
    }
}

fn argo() -> Schemas {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/argo-crds");
    let mut out = Schemas::new();
    for file in ARGO_FILES {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let crd: Value = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()));
        schemas_of(&crd, &mut out);
    }
    out
}

fn ours() -> Schemas {
    let mut out = Schemas::new();
    for (_, crd) in sluice::api::crd::crds() {
        schemas_of(&serde_json::to_value(crd).expect("CRD as JSON"), &mut out);
    }
    out
}

/// The paths of Argo's schema whose fields ours would prune. A path counts as kept when ours
/// declares it or when it lies below an object of ours marked
/// `x-kubernetes-preserve-unknown-fields: true` (the API server keeps anything there, declared
/// or not: our pod templates' `volumes` items, resource `limits`/`requests`, plugin
/// configuration). Where Argo's schema keeps unknown fields, ours must keep them too.
fn missing_from(theirs: &Paths, mine: &Paths) -> Vec<String> {
    let mut missing = Vec::new();
    for path in &theirs.all {
        if !mine.keeps(path) {
            missing.push(path.clone());
        } else if theirs.open.contains(path) && !mine.keeps_anything_below(path) {
            missing.push(format!(
                "{path} (keeps unknown fields in Argo's, not in ours)"
            ));
        }
    }
    missing
}

/// Every property path of Argo's CRDs is kept by ours, per CRD and version.
#[test]
fn every_argo_property_path_is_kept() {
    let argo = argo();
    let ours = ours();
    assert_eq!(argo.len(), 5, "one version per Argo CRD");
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for ((crd, version), theirs) in &argo {
        let key = format!("{crd} {version}");
        let Some(mine) = ours.get(&(crd.clone(), version.clone())) else {
            missing
                .entry(key)
                .or_default()
                .push("(the whole version)".into());
            continue;
        };
        let gaps = missing_from(&Paths::of(theirs), &Paths::of(mine));
        if !gaps.is_empty() {
            missing.insert(key, gaps);
        }
    }
    let total: usize = missing.values().map(Vec::len).sum();
    let report: Vec<String> = missing
        .iter()
        .map(|(crd, paths)| format!("{crd}: {} missing\n  {}", paths.len(), paths.join("\n  ")))
        .collect();
    assert!(
        total == 0,
        "{total} property paths of Argo's CRDs are missing from ours \
         (the API server would prune them):\n{}",
        report.join("\n")
    );
}

/// The other direction, for information only: paths we declare that Argo's CRDs do not (newer
/// Kubernetes fields, fields of our own). Not an error: extra declared fields prune nothing.
#[test]
fn paths_only_we_declare_are_listed() {
    let argo = argo();
    for ((crd, version), mine) in ours() {
        let Some(theirs) = argo.get(&(crd.clone(), version.clone())) else {
            eprintln!("{crd} {version}: not in Argo's CRDs");
            continue;
        };
        let (theirs, mine) = (Paths::of(theirs), Paths::of(&mine));
        let extra: Vec<&String> = mine.all.iter().filter(|p| !theirs.keeps(p)).collect();
        eprintln!("{crd} {version}: {} paths only in ours", extra.len());
        for path in extra {
            eprintln!("  {path}");
        }
    }
}

#[test]
fn the_walk_sees_properties_items_and_maps() {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "a": { "type": "array", "items": { "type": "object", "properties": { "b": {} } } },
            "m": { "type": "object", "additionalProperties": { "type": "string" } },
            "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
        },
    });
    let paths = Paths::of(&schema);
    let all: Vec<&str> = paths.all.iter().map(String::as_str).collect();
    assert_eq!(all, [".a", ".a[]", ".a[].b", ".free", ".m", ".m.*"]);
    assert!(paths.keeps(".free.anything.at[].all"));
    assert!(!paths.keeps(".freedom"));
    assert!(!paths.keeps(".a[].c"));
}

#[test]
fn a_field_ours_would_prune_is_reported() {
    let theirs = serde_json::json!({
        "properties": {
            "spec": { "properties": {
                "kept": { "type": "string" },
                "pruned": { "type": "object", "properties": { "deep": { "type": "string" } } },
                "plugin": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
                "volumes": { "x-kubernetes-preserve-unknown-fields": true },
                "free": { "type": "object", "properties": { "x": { "type": "string" } } },
            } },
        },
    });
    let mine = serde_json::json!({
        "properties": {
            "spec": { "properties": {
                "kept": { "type": "string" },
                "plugin": { "type": "object", "properties": { "only": { "type": "string" } } },
                "volumes": { "type": "array", "items": {
                    "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                } },
                "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            } },
        },
    });
    assert_eq!(
        missing_from(&Paths::of(&theirs), &Paths::of(&mine)),
        [
            ".spec.plugin (keeps unknown fields in Argo's, not in ours)",
            ".spec.pruned",
            ".spec.pruned.deep",
        ]
    );
}
