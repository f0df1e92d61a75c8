//! Schema helpers the CRD types share for the Kubernetes types embedded in them (pod templates,
//! Job specs, free-form objects). The CRD types use these; `crd.rs` renders the result.

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde_json::Value;

/// Removes the status subresource `#[kube(status = ...)]` always adds. Argo's AnalysisRun and
/// Experiment CRDs have none: Argo writes their status with plain updates and patches of the
/// object, which a status subresource would silently discard.
pub(crate) fn without_status_subresource(
    mut crd: CustomResourceDefinition,
) -> CustomResourceDefinition {
    for version in &mut crd.spec.versions {
        version.subresources = None;
    }
    crd
}

/// Declares the top-level `apiVersion`, `kind` and `metadata` properties of every version's
/// schema, which kube's `CustomResource` derive leaves out. The API server never prunes them,
/// but `kubectl explain` and schema-driven tools (editors, validators) only see declared fields.
/// Declared as in Argo's CRDs: two strings and a bare object (the API server supplies
/// `ObjectMeta`'s own schema for `metadata`).
pub(crate) fn with_type_meta(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let string = |description: &str| JSONSchemaProps {
        description: Some(description.into()),
        type_: Some("string".into()),
        ..JSONSchemaProps::default()
    };
    for version in &mut crd.spec.versions {
        let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        else {
            continue;
        };
        let properties = schema.properties.get_or_insert_with(Default::default);
        properties.insert("apiVersion".into(), string(API_VERSION_DESCRIPTION));
        properties.insert("kind".into(), string(KIND_DESCRIPTION));
        properties.insert(
            "metadata".into(),
            JSONSchemaProps {
                type_: Some("object".into()),
                ..JSONSchemaProps::default()
            },
        );
    }
    crd
}

/// Kubernetes' description of `TypeMeta.apiVersion`.
const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this \
    representation of an object. Servers should convert recognized schemas to the latest \
    internal value, and may reject unrecognized values. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";

/// Kubernetes' description of `TypeMeta.kind`.
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this \
    object represents. Servers may infer this from the endpoint the client submits requests \
    to. Cannot be updated. In CamelCase. More info: \
    https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

// =============================================================================================
// Schema helpers
// =============================================================================================

/// Removes the `default` schemars derives from `#[serde(default)]`: the apiserver would write
/// it into stored objects, which Argo's CRD does not do.
pub(crate) fn drop_default(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("default");
    }
}

/// Marks an object as replaced as a whole by server-side apply, as Kubernetes does for label
/// selectors.
pub(crate) fn atomic_map(schema: &mut Schema) {
    if let Some(obj) = schema.as_object_mut() {
        obj.insert("x-kubernetes-map-type".into(), "atomic".into());
    }
}

/// Schema of a free-form JSON object (plugin configuration and status, web metric bodies).
pub(crate) fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true,
    })
}

/// Schema of an embedded pod template (a Rollout's `spec.template`, an Experiment template's
/// `template`, a Job metric's `spec.template`), loosened the way Argo's CRDs are so that every
/// manifest Argo accepts is accepted here too:
/// - `metadata` only declares `labels` and `annotations` (other keys are pruned);
/// - resource `limits`/`requests` keep any keys and values (`cpu: 1`, `memory: invalid`);
/// - `volumes` items keep unknown fields, as in Argo's CRD;
/// - `ephemeralContainers` items keep unknown fields: pods cannot be created with them anyway,
///   and leaving out their schema keeps the CRD under the 256 KiB that client-side
///   `kubectl apply` can store in its last-applied annotation (Argo's CRD is over it);
/// - names Kubernetes calls "effectively required" but allows empty are not required.
pub(crate) fn pod_template_schema(generator: &mut SchemaGenerator) -> Schema {
    let mut spec = PodSpec::json_schema(generator).to_value();
    loosen_pod_spec(&mut spec);
    let string_map = json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string" },
    });
    json_schema!({
        "type": "object",
        "properties": {
            "metadata": {
                "description": "Labels and annotations of the pods. Other metadata fields are dropped.",
                "type": "object",
                "properties": {
                    "labels": string_map.clone(),
                    "annotations": string_map,
                },
            },
            "spec": spec,
        },
    })
}

fn loosen_pod_spec(spec: &mut Value) {
    for list in ["volumes", "ephemeralContainers"] {
        if let Some(field) = spec.pointer_mut(&format!("/properties/{list}")) {
            let description = field.get("description").cloned();
            *field = serde_json::json!({
                "type": "array",
                "items": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            });
            if let (Some(d), Some(obj)) = (description, field.as_object_mut()) {
                obj.insert("description".into(), d);
            }
        }
    }
    loosen_walk(spec);
}

fn loosen_walk(node: &mut Value) {
    let Some(obj) = node.as_object_mut() else {
        if let Some(items) = node.as_array_mut() {
            items.iter_mut().for_each(loosen_walk);
        }
        return;
    };
    // resource requirements: any map of quantities, kept as written
    if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut)
        && props.contains_key("limits")
        && props.contains_key("requests")
    {
        for key in ["limits", "requests"] {
            if let Some(p) = props.get_mut(key).and_then(Value::as_object_mut) {
                p.remove("additionalProperties");
                p.insert("type".into(), "object".into());
                p.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            }
        }
    }
    // "effectively required" names are allowed to be empty or absent by Kubernetes
    let lax_name = obj
        .get("properties")
        .and_then(|p| p.get("name"))
        .and_then(|n| n.get("description"))
        .and_then(Value::as_str)
        .is_some_and(|d| d.contains("effectively required"));
    if lax_name && let Some(required) = obj.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|r| r != "name");
        if required.is_empty() {
            obj.remove("required");
        }
    }
    obj.values_mut().for_each(loosen_walk);
}

/// Schema of a Job metric's `spec` (`batch/v1` JobSpec): Kubernetes' own, with the pod template
/// loosened like every other embedded pod template (see `pod_template_schema`).
pub(crate) fn job_spec_schema(generator: &mut SchemaGenerator) -> Schema {
    let loose = pod_template_schema(generator).to_value();
    let mut spec = JobSpec::json_schema(generator);
    if let Some(template) = spec.pointer_mut("/properties/template") {
        let description = template.get("description").cloned();
        *template = loose;
        if let (Some(d), Some(obj)) = (description, template.as_object_mut()) {
            obj.insert("description".into(), d);
        }
    }
    spec
}
