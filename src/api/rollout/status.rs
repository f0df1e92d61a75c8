//! The observed state of a Rollout (`status`), written by the controller and, for a few fields
//! (abort, pauseConditions, promoteFull, currentStepIndex), by users.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::schema::free_form_object;
// =============================================================================================
// Status
// =============================================================================================

/// Observed state of a Rollout, written by the controller. `abort`, `pauseConditions`,
/// `promoteFull` and `currentStepIndex` are also written by users (CLI, Argo CD actions).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// Stop the current update and return to the stable version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<bool>,
    /// Why the controller paused the rollout. Users clear the list to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_conditions: Option<Vec<PauseCondition>>,
    /// True once the controller paused the rollout; true with no pause conditions means a user
    /// resumed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_pause: Option<bool>,
    /// When the controller acted on the abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted_at: Option<Time>,
    /// Hash of the desired pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_pod_hash: Option<String>,
    /// Hash of the canary steps, to notice when they change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_hash: Option<String>,
    /// Non-terminated pods of all the rollout's ReplicaSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Non-terminated pods with the desired template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_replicas: Option<i32>,
    /// Ready pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Pods ready for at least `minReadySeconds` (blue-green: of the active ReplicaSet only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_replicas: Option<i32>,
    /// Index of the canary step being executed; equals the number of steps when all are done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_index: Option<i32>,
    /// Bumped when a ReplicaSet name collides, to derive a different name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collision_count: Option<i32>,
    /// `metadata.generation` last acted on, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<String>,
    /// Conditions of the rollout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<Vec<RolloutCondition>>,
    /// Canary-specific state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Blue-green-specific state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStatus>,
    /// Pods receiving production traffic, for the scale subresource.
    #[serde(
        default,
        rename = "HPAReplicas",
        skip_serializing_if = "Option::is_none"
    )]
    pub hpa_replicas: Option<i32>,
    /// Label selector (in string form) of the pods receiving production traffic, for the scale
    /// subresource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Pod-template hash of the stable ReplicaSet.
    #[serde(default, rename = "stableRS", skip_serializing_if = "Option::is_none")]
    pub stable_rs: Option<String>,
    /// The `restartAt` time of the last completed restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restarted_at: Option<Time>,
    /// Skip the remaining steps, pauses and analysis and promote the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promote_full: Option<bool>,
    /// `Healthy`, `Progressing`, `Paused` or `Degraded`. Only meaningful when
    /// `observedGeneration` equals `metadata.generation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the rollout is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Generation of the `workloadRef` workload last acted on, as a decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_observed_generation: Option<String>,
    /// Load balancer and target groups found for ALB traffic routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alb: Option<ALBStatus>,
    /// Load balancers and target groups found for ALB routing with several Ingresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub albs: Option<Vec<ALBStatus>>,
    /// Timing of the current update attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<RolloutDurationStatus>,
}

/// Why and since when the controller paused the rollout.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PauseCondition {
    /// `CanaryPauseStep`, `BlueGreenPause`, `InconclusiveAnalysisRun` or
    /// `InconclusiveExperiment`.
    pub reason: String,
    /// When the pause began.
    pub start_time: Time,
}

/// A condition of the rollout.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutCondition {
    /// Condition type, e.g. `Progressing`, `Available`, `Completed`, `Healthy`, `Paused`,
    /// `InvalidSpec`, `ReplicaFailure`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// Machine-readable reason for the last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Human-readable details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the condition was last updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,
    /// When the status last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// Canary-specific status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStatus {
    /// The AnalysisRun of the current analysis step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The background AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_background_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// Name of the Experiment of the current step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_experiment: Option<String>,
    /// Weights last set on the traffic provider; only with traffic routing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<TrafficWeights>,
    /// With ping-pong: which Service is stable, `ping` or `pong`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_ping_pong: Option<String>,
    /// State of the step plugins executed so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_plugin_statuses: Option<Vec<StepPluginStatus>>,
}

/// Blue-green-specific status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStatus {
    /// Pod-template hash the preview Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_selector: Option<String>,
    /// Pod-template hash the active Service selects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_selector: Option<String>,
    /// The preview ReplicaSet may be scaled to full size once the rollout is resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up_preview_check_point: Option<bool>,
    /// The pre-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
    /// The post-promotion AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis_run_status: Option<RolloutAnalysisRunStatus>,
}

/// Name and phase of an AnalysisRun the rollout depends on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisRunStatus {
    /// Name of the AnalysisRun.
    pub name: String,
    /// Its phase: `Pending`, `Running`, `Successful`, `Failed`, `Error` or `Inconclusive`.
    pub status: String,
    /// Its message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Traffic split last set on the provider.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficWeights {
    /// Weight of the canary ReplicaSet.
    pub canary: WeightDestination,
    /// Weight of the stable ReplicaSet.
    pub stable: WeightDestination,
    /// Weights of other ReplicaSets, such as experiment templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<Vec<WeightDestination>>,
    /// Whether the weights were verified to be in effect (ALB only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
}

/// One traffic destination and its weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WeightDestination {
    /// Share of traffic, relative to `maxTrafficWeight`.
    pub weight: i32,
    /// Service receiving the traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Pod-template hash of the pods behind it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
}

/// State of one step-plugin operation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepPluginStatus {
    /// Index of the plugin step.
    pub index: i32,
    /// Name of the plugin.
    pub name: String,
    /// The operation: `Run`, `Terminate` or `Abort`.
    pub operation: String,
    /// Result: `Running`, `Successful`, `Failed` or `Error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the operation is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the plugin was first called for the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the plugin was last called for the operation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Time>,
    /// When the operation finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Wait this long (e.g. `30s`) before calling the plugin again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<String>,
    /// How many times the operation was called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executions: Option<i32>,
    /// The plugin is disabled globally.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
    /// The plugin's own state, free-form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub status: Option<Value>,
}

/// AWS resources behind ALB traffic routing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ALBStatus {
    /// The load balancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<AwsResourceRef>,
    /// Target group of the canary Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_target_group: Option<AwsResourceRef>,
    /// Target group of the stable Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_target_group: Option<AwsResourceRef>,
    /// The Ingress these resources belong to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
}

/// Identifies an AWS resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsResourceRef {
    /// Short name.
    pub name: String,
    /// Amazon Resource Name.
    pub arn: String,
    /// Full name, as used in CloudWatch dimensions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name: Option<String>,
}

/// Timing of one update attempt.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutDurationStatus {
    /// When the attempt started (the desired hash diverged from the stable one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_started_at: Option<Time>,
    /// When the current manual pause began; unset when not manually paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual_pause_started_at: Option<Time>,
    /// Seconds spent in manual pauses so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_manual_pause_duration_seconds: Option<i64>,
    /// When the attempt ended: promoted, aborted or superseded. Unset while in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Outcome: `Promoted`, `FastPromoted`, `Aborted`, `Superseded`, `RolledBack` or
    /// `FastRolledBack`. May be set before `finishedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<String>,
}
