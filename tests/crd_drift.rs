//! The CRDs committed under `crds/` must be exactly what the Rust types render, so that a type
//! change cannot ship without its CRD. Fix a failure with `cargo run --bin crdgen`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;

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

#[test]
fn rendering_is_deterministic() {
    assert_eq!(sluice::api::crd::crd_yaml(), sluice::api::crd::crd_yaml());
}

#[test]
fn rendered_yaml_parses_back_to_the_same_crd() {
    use kube::CustomResourceExt;
    let rendered = sluice::api::crd::crd_yaml();
    let (_, yaml) = rendered
        .iter()
        .find(|(n, _)| n == "rollout.yaml")
        .expect("rollout.yaml");
    let parsed: CustomResourceDefinition = serde_saphyr::from_str(yaml).expect("valid YAML");
    assert_eq!(parsed, sluice::api::rollout::Rollout::crd());
}

/// Client-side `kubectl apply` stores the whole object in an annotation limited to 256 KiB.
#[test]
fn crds_fit_client_side_apply() {
    for (name, yaml) in sluice::api::crd::crd_yaml() {
        let crd: serde_json::Value = serde_saphyr::from_str(&yaml).expect("valid YAML");
        let size = serde_json::to_vec(&crd).expect("JSON").len();
        assert!(size < 256 * 1024, "crds/{name} is {size} bytes as JSON");
    }
}
