//! The CRDs committed under `crds/` must be exactly what the Rust types render, so that a type
//! change cannot ship without its CRD. Fix a failure with `cargo run --bin crdgen`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde_json::Value;

const FIX: &str = "run `cargo run --bin crdgen` and commit crds/";

fn committed(name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crds")
        .join(name);
    std::fs::read_to_string(path).ok()
}

#[test]
fn committed_crds_match_the_types() {
    let mut stale = Vec::new();
    for (name, rendered) in sluice::api::crd::crd_yaml() {
        match committed(&name) {
            None => stale.push(format!("crds/{name} is missing")),
            Some(on_disk) if on_disk != rendered => {
                let line = on_disk
                    .lines()
                    .zip(rendered.lines())
                    .position(|(a, b)| a != b)
                    .unwrap_or_else(|| on_disk.lines().count().min(rendered.lines().count()));
                stale.push(format!(
                    "crds/{name} differs from the types (first at line {})",
                    line + 1
                ));
            }
            Some(_) => {}
        }
    }
    assert!(stale.is_empty(), "{}\n{FIX}", stale.join("\n"));
}

/// No CRD file is left behind for a kind that is no longer generated: installers apply every
/// file in `crds/`.
#[test]
fn no_stray_crd_files() {
    let rendered: Vec<String> = sluice::api::crd::crd_yaml()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.ends_with(".yaml") {
            assert!(rendered.contains(&name), "crds/{name} is not generated");
        }
    }
}

#[test]
fn every_kind_is_rendered_once() {
    let crds = sluice::api::crd::crds();
    let mut kinds: Vec<&str> = crds
        .iter()
        .map(|(_, c)| c.spec.names.kind.as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "AnalysisRun",
            "AnalysisTemplate",
            "ClusterAnalysisTemplate",
            "Experiment",
            "Rollout"
        ]
    );
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(sluice::api::crd::crd_yaml(), sluice::api::crd::crd_yaml());
}

#[test]
fn rendered_yaml_parses_back_to_the_same_crd() {
    let rendered = sluice::api::crd::crd_yaml();
    for (name, crd) in sluice::api::crd::crds() {
        let (_, yaml) = rendered
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} rendered"));
        let parsed: CustomResourceDefinition = serde_saphyr::from_str(yaml).expect("valid YAML");
        assert_eq!(parsed, crd, "{name}");
    }
}

/// Client-side `kubectl apply` stores the whole object in an annotation limited to 256 KiB.
#[test]
fn crds_fit_client_side_apply() {
    for (name, yaml) in sluice::api::crd::crd_yaml() {
        let crd: Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
        let size = serde_json::to_vec(&crd).expect("JSON").len();
        assert!(size < 256 * 1024, "crds/{name} is {size} bytes as JSON");
    }
}

fn visit(node: &Value, path: &str, f: &mut dyn FnMut(&str, &serde_json::Map<String, Value>)) {
    match node {
        Value::Object(obj) => {
            f(path, obj);
            for (k, v) in obj {
                visit(v, &format!("{path}/{k}"), f);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                visit(v, &format!("{path}/{i}"), f);
            }
        }
        _ => {}
    }
}

/// Every CRD installs on Kubernetes 1.20 as well as on current clusters: structural schemas
/// only, no CEL rules, no defaults written into stored objects, no schema composition.
#[test]
fn schemas_install_on_old_and_new_apiservers() {
    let mut problems = Vec::new();
    for (name, crd) in sluice::api::crd::crds() {
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .clone();
        let schema = serde_json::to_value(schema).unwrap();
        visit(&schema, "", &mut |path, obj| {
            // inside free-form values any key is data, not schema
            if path.contains("/enum") {
                return;
            }
            for banned in [
                "x-kubernetes-validations",
                "default",
                "$ref",
                "oneOf",
                "anyOf",
                "allOf",
            ] {
                if obj.contains_key(banned) && !path.ends_with("/properties") {
                    problems.push(format!("{name}{path}: {banned}"));
                }
            }
            let is_schema_node = path.ends_with("/items")
                || path
                    .rsplit_once('/')
                    .is_some_and(|(p, _)| p.ends_with("/properties"))
                || path.ends_with("/additionalProperties");
            if is_schema_node
                && !obj.contains_key("type")
                && !obj.contains_key("x-kubernetes-int-or-string")
                && !obj.contains_key("x-kubernetes-preserve-unknown-fields")
            {
                problems.push(format!("{name}{path}: no type"));
            }
            if obj.get("additionalProperties") == Some(&Value::Bool(true)) {
                problems.push(format!("{name}{path}: additionalProperties: true"));
            }
            // every field is documented (kubectl explain), except inside embedded Kubernetes
            // types, which carry Kubernetes' own descriptions
            if let Some(props) = obj.get("properties").and_then(Value::as_object)
                && !path.contains("/template/")
                && !path.contains("/job/properties/spec/")
            {
                for (k, v) in props {
                    let p = format!("{path}/properties/{k}");
                    let root_meta = [
                        "/properties/apiVersion",
                        "/properties/kind",
                        "/properties/metadata",
                    ];
                    if v.get("description").is_none() && !root_meta.contains(&p.as_str()) {
                        problems.push(format!("{name}{p}: no description"));
                    }
                }
            }
        });
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
