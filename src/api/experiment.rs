//! The `Experiment` custom resource (`argoproj.io/v1alpha1`), field for field compatible with Argo
//! Rollouts: ReplicaSets run side by side for a while, optionally judged by AnalysisRuns. Phases
//! and condition types stay `String`s (see `consts`).

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::analysis::Argument;
use super::schema::{atomic_map, pod_template_schema, without_status_subresource};

// Shared with the Rollout's experiment step; defined once, in `rollout`.
pub use super::rollout::{AnalysisRunMetadata, DryRun, MeasurementRetention, TemplateService};

/// Desired state of an Experiment: the ReplicaSets to run, for how long, and the analyses that
/// judge them.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// clippy mistakes the repeated keys of separate `printcolumn(...)` groups for duplicates
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Experiment",
    plural = "experiments",
    singular = "experiment",
    shortname = "exp",
    namespaced,
    status = "ExperimentStatus",
    derive = "PartialEq",
    doc = "Experiment runs one or more ReplicaSets for a limited time, optionally with AnalysisRuns comparing them, and reports the outcome.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "Experiment status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since resource was created"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentSpec {
    /// The ReplicaSets to run, one per template.
    pub templates: Vec<TemplateSpec>,
    /// How long to run once all templates are available, e.g. `30s`, `5m`, `1h`. Unset runs
    /// until terminated, until an analysis fails, or until the analyses required for
    /// completion complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Seconds a template may go without progress before the experiment fails. Unset means 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// Set to true to end the experiment early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
    /// AnalysisRuns to create while the experiment runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyses: Option<Vec<ExperimentAnalysisTemplateRef>>,
    /// Seconds to wait before the ReplicaSets are scaled down once the experiment ended, so
    /// that traffic stops reaching them first. Unset means 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Metrics (by name, regular expressions allowed) whose results do not decide the analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements the analyses keep per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels and annotations for the created AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

impl Experiment {
    /// The CRD as installed: the derived one without a status subresource, like Argo's, because
    /// Argo writes Experiment status with ordinary updates and patches. This shadows
    /// `CustomResourceExt::crd`, which still includes the subresource.
    pub fn crd() -> CustomResourceDefinition {
        without_status_subresource(<Self as CustomResourceExt>::crd())
    }
}

/// One ReplicaSet of an experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateSpec {
    /// Name of the template, unique within the experiment; part of the ReplicaSet's name.
    pub name: String,
    /// Number of pods. Unset means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Seconds a new pod must be ready, without any container crashing, before it counts as
    /// available. Unset means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Selects the template's pods; it must match the template labels and differ from the
    /// selectors of the other templates.
    #[schemars(transform = atomic_map)]
    pub selector: LabelSelector,
    /// The pods to run. Numeric resource quantities and unknown resource names are kept as
    /// written.
    #[schemars(schema_with = "pod_template_schema")]
    pub template: PodTemplateSpec,
    /// Create a Service for this template's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TemplateService>,
}

/// An AnalysisRun of an experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisTemplateRef {
    /// Name of this analysis within the experiment.
    pub name: String,
    /// Name of the AnalysisTemplate (or ClusterAnalysisTemplate) to instantiate.
    pub template_name: String,
    /// Look the name up among ClusterAnalysisTemplates instead of the namespace's
    /// AnalysisTemplates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Values for the template's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Argument>>,
    /// The experiment does not complete before this analysis does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_for_completion: Option<bool>,
}

// =============================================================================================
// Status
// =============================================================================================

/// Observed state of an Experiment, written by the controller with ordinary updates (the CRD
/// has no status subresource).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentStatus {
    /// `Pending`, `Running`, `Successful`, `Failed`, `Error` or `Inconclusive`, from the
    /// ReplicaSets and the AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the experiment is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// State of each template's ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_statuses: Option<Vec<TemplateStatus>>,
    /// When all templates became available; `duration` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_at: Option<Time>,
    /// Conditions of the experiment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<ExperimentCondition>>,
    /// State of each analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_runs: Option<Vec<ExperimentAnalysisRunStatus>>,
}

/// State of one template's ReplicaSet.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateStatus {
    /// Name of the template.
    pub name: String,
    /// Non-terminated pods selected by the template.
    pub replicas: i32,
    /// Non-terminated pods with the template's current spec.
    pub updated_replicas: i32,
    /// Ready pods.
    pub ready_replicas: i32,
    /// Pods ready for at least `minReadySeconds`.
    pub available_replicas: i32,
    /// Bumped when a ReplicaSet name collides, to derive a different name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// `Progressing`, `Running`, `Successful`, `Failed` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Why the template is in its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the state last changed; the progress deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
    /// Name of the Service created for the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Pod-template hash of the template's ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
}

/// A condition of the experiment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentCondition {
    /// Condition type: `InvalidSpec`, `Completed`, `Progressing`, `Running` or
    /// `ReplicaFailure`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// When the condition was last updated.
    pub last_update_time: Time,
    /// When the status last changed.
    pub last_transition_time: Time,
    /// Machine-readable reason for the last transition.
    pub reason: String,
    /// Human-readable details.
    pub message: String,
}

/// State of one analysis of the experiment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentAnalysisRunStatus {
    /// Name of the analysis within the experiment.
    pub name: String,
    /// Name of the AnalysisRun.
    pub analysis_run: String,
    /// Phase of the AnalysisRun.
    pub phase: String,
    /// Details from the AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

// =============================================================================================
// Tests
// =============================================================================================

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// An Experiment as Argo stores it while running: two templates, analyses, full status.
    const EXPERIMENT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Experiment
metadata:
  name: shop-7c9d8e5f6-2-4
  namespace: shop
spec:
  duration: 10m
  progressDeadlineSeconds: 300
  scaleDownDelaySeconds: 5
  terminate: false
  templates:
  - name: baseline
    replicas: 1
    minReadySeconds: 5
    selector:
      matchLabels: {app: shop, exp: baseline}
    service: {name: baseline-svc}
    template:
      metadata:
        labels: {app: shop, exp: baseline}
      spec:
        containers:
        - name: shop
          image: shop:v1
          resources:
            requests: {cpu: 250m, memory: 64Mi}
  - name: canary
    selector:
      matchExpressions:
      - {key: exp, operator: In, values: [canary]}
    template:
      metadata:
        labels: {exp: canary}
      spec:
        containers:
        - name: shop
          image: shop:v2
  analyses:
  - name: compare
    templateName: compare
    clusterScope: true
    requiredForCompletion: true
    args:
    - name: baseline-hash
      value: 6b8f7d9c4
    - name: token
      valueFrom:
        secretKeyRef: {name: tokens, key: compare}
  dryRun:
  - metricName: latency
  measurementRetention:
  - metricName: compare
    limit: 3
  analysisRunMetadata:
    labels: {exp: "true"}
    annotations: {owner: shop}
status:
  phase: Running
  message: all templates available
  availableAt: "2024-05-01T10:01:00Z"
  templateStatuses:
  - name: baseline
    replicas: 1
    updatedReplicas: 1
    readyReplicas: 1
    availableReplicas: 1
    collisionCount: 0
    status: Running
    lastTransitionTime: "2024-05-01T10:01:00Z"
    serviceName: baseline-svc
    podTemplateHash: 5a5a5a5a5
  - name: canary
    replicas: 0
    updatedReplicas: 0
    readyReplicas: 0
    availableReplicas: 0
    status: Progressing
    message: waiting for pods
  conditions:
  - type: Progressing
    status: "True"
    reason: NewReplicaSetAvailable
    message: Experiment "shop-7c9d8e5f6-2-4" is running.
    lastUpdateTime: "2024-05-01T10:01:00Z"
    lastTransitionTime: "2024-05-01T10:00:00Z"
  analysisRuns:
  - name: compare
    analysisRun: shop-7c9d8e5f6-2-4-compare
    phase: Running
    message: ""
"#;

    #[test]
    fn experiment_with_full_status_round_trips() {
        let exp: Experiment = serde_saphyr::from_str(EXPERIMENT).unwrap();
        let raw: Value = serde_saphyr::from_str(EXPERIMENT).unwrap();
        let back = serde_json::to_value(&exp).unwrap();
        assert_eq!(back, raw, "re-encoded Experiment differs from the input");
        assert_eq!(serde_json::from_value::<Experiment>(back).unwrap(), exp);

        assert_eq!(exp.spec.templates.len(), 2);
        let baseline = &exp.spec.templates[0];
        assert_eq!(
            baseline.service.as_ref().unwrap().name.as_deref(),
            Some("baseline-svc")
        );
        let res = baseline.template.spec.as_ref().unwrap().containers[0]
            .resources
            .as_ref()
            .unwrap();
        assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "250m");
        let analysis = &exp.spec.analyses.as_ref().unwrap()[0];
        assert_eq!(analysis.required_for_completion, Some(true));
        let secret = analysis.args.as_ref().unwrap()[1]
            .value_from
            .as_ref()
            .unwrap();
        assert_eq!(secret.secret_key_ref.as_ref().unwrap().key, "compare");
        let status = exp.status.as_ref().unwrap();
        assert_eq!(
            status.template_statuses.as_ref().unwrap()[1]
                .status
                .as_deref(),
            Some("Progressing")
        );
        assert_eq!(
            status.analysis_runs.as_ref().unwrap()[0].analysis_run,
            "shop-7c9d8e5f6-2-4-compare"
        );
        assert_eq!(
            status.conditions.as_ref().unwrap()[0].reason,
            "NewReplicaSetAvailable"
        );
    }

    #[test]
    fn crd_identity_and_schema() {
        let crd = Experiment::crd();
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some("experiments.argoproj.io")
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["exp".to_string()]));
        let v = &crd.spec.versions[0];
        assert!(v.subresources.is_none());
        let cols: Vec<_> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| (c.name.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            cols,
            [
                ("Status", ".status.phase"),
                ("Age", ".metadata.creationTimestamp")
            ]
        );

        let schema =
            serde_json::to_value(v.schema.as_ref().unwrap().open_api_v3_schema.clone()).unwrap();
        let spec = &schema["properties"]["spec"];
        assert_eq!(spec["required"], json!(["templates"]));
        let template = &spec["properties"]["templates"]["items"];
        assert_eq!(
            template["required"],
            json!(["name", "selector", "template"])
        );
        assert_eq!(
            template["properties"]["selector"]["x-kubernetes-map-type"],
            "atomic"
        );
        let pod = &template["properties"]["template"];
        assert_eq!(
            pod["properties"]["metadata"]["properties"]
                .as_object()
                .unwrap()
                .len(),
            2
        );
        let container = &pod["properties"]["spec"]["properties"]["containers"]["items"];
        let limits = &container["properties"]["resources"]["properties"]["limits"];
        assert_eq!(limits["x-kubernetes-preserve-unknown-fields"], json!(true));
        let status = &schema["properties"]["status"]["properties"];
        assert_eq!(
            status["conditions"]["items"]["required"],
            json!([
                "lastTransitionTime",
                "lastUpdateTime",
                "message",
                "reason",
                "status",
                "type"
            ])
        );
        assert_eq!(
            status["templateStatuses"]["items"]["required"],
            json!([
                "availableReplicas",
                "name",
                "readyReplicas",
                "replicas",
                "updatedReplicas"
            ])
        );
    }
}
