//! The `Rollout` custom resource (`argoproj.io/v1alpha1`), field for field compatible with Argo
//! Rollouts so that existing manifests and stored objects decode and re-encode unchanged.
//! Enumerated values stay `String`s (see `consts`) so unknown values never break decoding.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::api::schema::{atomic_map, drop_default, free_form_object, pod_template_schema};
use crate::time::int_or_string_display;

mod status;
mod traffic;

pub use status::*;
pub use traffic::*;

// =============================================================================================
// Spec
// =============================================================================================

/// Desired state of a Rollout: the pods to run and the strategy that replaces old pods with new
/// ones.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// clippy mistakes the repeated keys of separate `printcolumn(...)` groups for duplicates
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "Rollout",
    plural = "rollouts",
    singular = "rollout",
    shortname = "ro",
    namespaced,
    status = "RolloutStatus",
    derive = "PartialEq",
    doc = "Rollout replaces the pods of a workload progressively (canary or blue-green), optionally gated by analysis and traffic shifting.",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.HPAReplicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "Number of desired pods"
    ),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.replicas",
        description = "Total number of non-terminated pods targeted by this rollout"
    ),
    printcolumn(
        name = "Up-to-date",
        type_ = "integer",
        json_path = ".status.updatedReplicas",
        description = "Total number of non-terminated pods targeted by this rollout that have the desired template spec"
    ),
    printcolumn(
        name = "Available",
        type_ = "integer",
        json_path = ".status.availableReplicas",
        description = "Total number of available pods (ready for at least minReadySeconds) targeted by this rollout"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since resource was created"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Desired number of pods. Unset means 1. The scale subresource (and so an HPA) writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Selects the pods this rollout owns; it must match the template labels. Required unless
    /// `workloadRef` is set, and it must not change after creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = atomic_map)]
    pub selector: Option<LabelSelector>,
    /// The pod template for new ReplicaSets. Must be empty when `workloadRef` is set. Numeric
    /// resource quantities and unknown resource names are kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pod_template_schema")]
    pub template: Option<PodTemplateSpec>,
    /// Takes the pod template (and, for a Deployment, the selector) from another workload
    /// instead of `template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<ObjectRef>,
    /// Seconds a new pod must be ready, without any container crashing, before it counts as
    /// available. Unset means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    /// Rolling back to one of this many most recent revisions skips steps and analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_window: Option<RollbackWindowSpec>,
    /// How new pods replace old ones: exactly one of `canary` or `blueGreen`.
    #[serde(default)]
    #[schemars(transform = drop_default)]
    pub strategy: RolloutStrategy,
    /// How many old ReplicaSets to keep for rollback. Unset means 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i32>,
    /// Set to true to stop the rollout where it is; false or unset lets it continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// Seconds the rollout may go without progress before it is reported as failed
    /// (`ProgressDeadlineExceeded`). Time spent paused does not count. Unset means 600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i32>,
    /// When true, exceeding `progressDeadlineSeconds` during an update also aborts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_abort: Option<bool>,
    /// Pods created before this time are restarted (evicted and recreated), a few at a time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_at: Option<Time>,
    /// How many finished AnalysisRuns and Experiments to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<AnalysisRunStrategy>,
}

/// Points at a workload whose pod template the rollout uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    /// API version of the referenced workload, e.g. `apps/v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Kind of the referenced workload: `Deployment`, `ReplicaSet` or `PodTemplate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Name of the referenced workload, in the rollout's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What to do with the referenced Deployment: `never`, `onsuccess` or `progressively`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<String>,
}

/// The rollback fast-track window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackWindowSpec {
    /// Number of most recent revisions a rollback to which is fast-tracked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<i32>,
}

/// Retention of finished AnalysisRuns and Experiments.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStrategy {
    /// Successful runs to keep. Unset means 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful_run_history_limit: Option<i32>,
    /// Unsuccessful (Failed, Error or Inconclusive) runs to keep. Unset means 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsuccessful_run_history_limit: Option<i32>,
}

/// The update strategy. Exactly one member must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStrategy {
    /// Run the new version beside the old one, switch the active Service at promotion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
    /// Shift replicas (and optionally traffic) to the new version in steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
}

// ---------------------------------------------------------------------------------------------
// Blue-green
// ---------------------------------------------------------------------------------------------

/// Blue-green strategy: the preview Service sees the new ReplicaSet first; promotion points the
/// active Service at it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    /// Service whose selector is switched to the new ReplicaSet at promotion.
    pub active_service: String,
    /// Service whose selector always points at the newest ReplicaSet. Must differ from
    /// `activeService`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    /// Size of the new ReplicaSet before promotion; it is scaled to `replicas` before the
    /// switch. Unset means full size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i32>,
    /// Promote without waiting for a user. Unset means true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    /// With auto-promotion, wait this many seconds after the preview is fully available before
    /// promoting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<i32>,
    /// Maximum pods unavailable during a restart; a number or a percentage. Unset means 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Seconds the previous active ReplicaSet stays up after the switch. Unset means 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Maximum number of old ReplicaSets kept up while waiting for their scale-down delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// Analysis that must succeed before the active Service is switched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    /// Inject an anti-affinity rule so new pods avoid nodes running the old version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Analysis run after the switch; the new ReplicaSet becomes stable only when it succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
    /// Labels and annotations put on pods while they serve as preview, removed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations put on pods while they serve as active, removed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_metadata: Option<PodTemplateMetadata>,
    /// Seconds before the preview ReplicaSet is scaled down after an abort; 0 keeps it.
    /// Unset means 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
}

/// Anti-affinity injected into new pods against the pods of the stable version. Exactly one
/// member must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AntiAffinity {
    /// Inject a soft (preferred) rule with the given weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_during_scheduling_ignored_during_execution:
        Option<PreferredDuringSchedulingIgnoredDuringExecution>,
    /// Inject a hard (required) rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_during_scheduling_ignored_during_execution:
        Option<RequiredDuringSchedulingIgnoredDuringExecution>,
}

/// Soft anti-affinity settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PreferredDuringSchedulingIgnoredDuringExecution {
    /// Weight of the injected preferred term, 1 to 100.
    pub weight: i32,
}

/// Hard anti-affinity; it has no settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequiredDuringSchedulingIgnoredDuringExecution {}

/// Extra labels and annotations for pods or ReplicaSets.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateMetadata {
    /// Labels to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------------
// Canary
// ---------------------------------------------------------------------------------------------

/// Canary strategy: move replicas, and with traffic routing also traffic, to the new version
/// step by step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    /// Service the controller points at the canary pods only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    /// Service the controller points at the stable pods only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    /// The steps of the update, executed in order. Without steps the update behaves like a
    /// rolling update bounded by `maxSurge` and `maxUnavailable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<CanaryStep>>,
    /// Shift traffic with a mesh, ingress or plugin instead of only by replica ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<RolloutTrafficRouting>,
    /// Maximum pods unavailable during the update; a number, or a percentage rounded down.
    /// A string without `%` is also a percentage. Unset means 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Maximum pods above the desired count during the update; a number, or a percentage
    /// rounded up. A string without `%` is also a percentage. Unset means 25%.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    /// Analysis running in the background while the steps execute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    /// Inject an anti-affinity rule so canary pods avoid nodes running stable pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anti_affinity: Option<AntiAffinity>,
    /// Labels and annotations put on pods while they are the canary, removed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_metadata: Option<PodTemplateMetadata>,
    /// Labels and annotations put on pods while they are stable, removed afterwards.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_metadata: Option<PodTemplateMetadata>,
    /// With traffic routing: seconds the previous stable ReplicaSet stays up after the stable
    /// Service moved, so traffic providers can catch up. Unset means 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
    /// Maximum number of old ReplicaSets kept up while waiting for their scale-down delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_revision_limit: Option<i32>,
    /// With traffic routing: seconds before canary pods are scaled down after an abort; 0 keeps
    /// them. Unset means 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i32>,
    /// With traffic routing: scale the stable ReplicaSet down as the canary weight rises.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_stable_scale: Option<bool>,
    /// Alternate the stable role between two Services instead of a stable/canary pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping_pong: Option<PingPongSpec>,
    /// With traffic routing: a non-empty stable or canary ReplicaSet gets at least this many
    /// pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_pods_per_replica_set: Option<i32>,
    /// How many canary pods must be available for a step to count as reached. Unset means all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_progress_threshold: Option<ReplicaProgressThreshold>,
}

/// The two Services of the ping-pong feature.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PingPongSpec {
    /// Name of the ping Service.
    pub ping_service: String,
    /// Name of the pong Service.
    pub pong_service: String,
}

/// Threshold of available canary pods at which a step counts as reached.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaProgressThreshold {
    /// `Percent` (of the desired canary pods) or `Pods`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The threshold; must be greater than 0.
    pub value: i32,
}

/// One canary step. Exactly one member must be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    /// Percentage of replicas (and of traffic, with traffic routing) for the new version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i32>,
    /// Wait, for a duration or until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<RolloutPause>,
    /// Run an Experiment and wait for it to succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<RolloutExperimentStep>,
    /// Run an AnalysisRun and wait for it to succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    /// With traffic routing: size the canary independently of its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    /// Send requests with matching headers to the canary via a managed route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<SetHeaderRoute>,
    /// Mirror matching requests to the canary via a managed route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<SetMirrorRoute>,
    /// Run a step plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<PluginStep>,
}

/// A pause step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPause {
    /// How long to wait: a number of seconds, or a string such as `30s`, `10m` or `1h`. Unset
    /// waits until the rollout is promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<IntOrString>,
}

/// Canary size set independently of traffic weight. Exactly one member should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    /// Canary size as a percentage of `spec.replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Canary size as a pod count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Go back to sizing the canary by its traffic weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_traffic_weight: Option<bool>,
}

/// Routes requests with matching headers entirely to the canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetHeaderRoute {
    /// Name of the route; it must be listed in `trafficRouting.managedRoutes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Header conditions; all must match. No conditions removes the route.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<HeaderRoutingMatch>>,
}

/// One header condition of a header route.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HeaderRoutingMatch {
    /// Name of the request header.
    pub header_name: String,
    /// How the header value must match.
    pub header_value: StringMatch,
}

/// A string condition. Exactly one member should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StringMatch {
    /// The value must equal this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The value must start with this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The value must match this regular expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// Mirrors matching requests to the canary.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetMirrorRoute {
    /// Name of the route; it must be listed in `trafficRouting.managedRoutes`.
    pub name: String,
    /// Request conditions: within one entry all must match, entries are alternatives. No
    /// entries removes the route.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<Vec<RouteMatch>>,
    /// Percentage of the matching requests to mirror.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<i32>,
}

/// Request conditions of a mirror route; all set members must match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteMatch {
    /// Condition on the HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Condition on the URL path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    /// Conditions on request headers, by header name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, StringMatch>>,
}

/// A step-plugin step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PluginStep {
    /// Name of the step plugin as configured for the controller.
    pub name: String,
    /// Free-form configuration handed to the plugin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub config: Option<Value>,
}

// ---------------------------------------------------------------------------------------------
// Analysis references
// ---------------------------------------------------------------------------------------------

/// AnalysisTemplates and arguments for one AnalysisRun.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    /// Templates whose metrics are merged into one AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<AnalysisTemplateRef>>,
    /// Values for the templates' arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// Metrics whose failures are recorded but do not fail the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Labels and annotations for the created AnalysisRun.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
}

/// The background analysis of a canary: a `RolloutAnalysis` plus the step it starts at.
/// Dereferences to the inner `RolloutAnalysis`, like Go's embedded struct.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisBackground {
    /// The templates and arguments, inlined.
    #[serde(flatten)]
    pub rollout_analysis: RolloutAnalysis,
    /// Start once the rollout reaches this step index. Unset means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<i32>,
}

impl Deref for RolloutAnalysisBackground {
    type Target = RolloutAnalysis;
    fn deref(&self) -> &RolloutAnalysis {
        &self.rollout_analysis
    }
}

impl DerefMut for RolloutAnalysisBackground {
    fn deref_mut(&mut self) -> &mut RolloutAnalysis {
        &mut self.rollout_analysis
    }
}

/// Reference to an AnalysisTemplate or ClusterAnalysisTemplate.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    /// Name of the template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_name: Option<String>,
    /// Look the name up among ClusterAnalysisTemplates instead of the namespace's
    /// AnalysisTemplates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
}

/// A value for an AnalysisTemplate argument.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunArgument {
    /// Name of the argument.
    pub name: String,
    /// A literal value. Set this or `valueFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from. Set this or `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ArgumentValueFrom>,
}

/// Source of an argument value. Exactly one member should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArgumentValueFrom {
    /// The pod-template hash of the `Stable` or `Latest` ReplicaSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template_hash_value: Option<String>,
    /// A field of the Rollout, by path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A path into the Rollout object.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// Path of the field, e.g. `metadata.labels['env']`.
    pub field_path: String,
}

/// A metric evaluated in dry-run mode.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    /// Metric names this rule covers: a regular expression matched anywhere in the name (`.*` covers all).
    pub metric_name: String,
}

/// Measurement retention for one metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    /// Metric names this rule covers: a regular expression matched anywhere in the name (`.*` covers all).
    pub metric_name: String,
    /// Number of most recent measurements to keep.
    pub limit: i32,
}

/// Extra labels and annotations for created AnalysisRuns.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunMetadata {
    /// Labels to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations to add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

// ---------------------------------------------------------------------------------------------
// Experiment step
// ---------------------------------------------------------------------------------------------

/// An experiment step: temporary ReplicaSets, optionally with analyses.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStep {
    /// The ReplicaSets to run.
    pub templates: Vec<RolloutExperimentTemplate>,
    /// How long the experiment runs, e.g. `30s`, `5m`, `1h`. Unset runs until its analyses
    /// finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Analyses run alongside the ReplicaSets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analyses: Option<Vec<RolloutExperimentStepAnalysisTemplateRef>>,
    /// Metrics whose failures are recorded but do not fail the analyses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// Labels and annotations for the created AnalysisRuns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_run_metadata: Option<AnalysisRunMetadata>,
    /// Seconds to wait before the experiment's ReplicaSets are scaled down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i32>,
}

/// One analysis of an experiment step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentStepAnalysisTemplateRef {
    /// Name of this analysis within the experiment.
    pub name: String,
    /// Name of the AnalysisTemplate (or ClusterAnalysisTemplate) to run.
    pub template_name: String,
    /// Look the name up among ClusterAnalysisTemplates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_scope: Option<bool>,
    /// Values for the template's arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<AnalysisRunArgument>>,
    /// The experiment does not complete before this analysis does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_for_completion: Option<bool>,
}

/// One ReplicaSet of an experiment step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutExperimentTemplate {
    /// Name of the template within the experiment.
    pub name: String,
    /// Which pod template to copy: `canary` (the new one) or `stable`.
    pub spec_ref: String,
    /// Number of pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Labels and annotations for the template's ReplicaSet and pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// Selector for the template's ReplicaSet. Unset uses the Rollout's selector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(transform = atomic_map)]
    pub selector: Option<LabelSelector>,
    /// With traffic routing: percentage of traffic for this template's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
    /// Create a Service for this template's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<TemplateService>,
}

/// The Service generated for an experiment template.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplateService {
    /// Name of the Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl RolloutSpec {
    /// The canary steps, empty for a blue-green Rollout or a canary without steps.
    pub fn canary_steps(&self) -> &[CanaryStep] {
        self.strategy
            .canary
            .as_ref()
            .and_then(|c| c.steps.as_deref())
            .unwrap_or(&[])
    }
}

/// Argo's `CanaryStepString`, used in step-completed events and by the CLI.
pub fn step_string(step: &CanaryStep) -> String {
    if let Some(w) = step.set_weight {
        return format!("setWeight: {w}");
    }
    if let Some(p) = &step.pause {
        return match &p.duration {
            Some(d) => format!("pause: {}", int_or_string_display(d)),
            None => "pause".into(),
        };
    }
    if step.experiment.is_some() {
        return "experiment".into();
    }
    if step.analysis.is_some() {
        return "analysis".into();
    }
    if let Some(s) = &step.set_canary_scale {
        if let Some(w) = s.weight {
            return format!("setCanaryScale{{weight: {w}}}");
        }
        if s.match_traffic_weight.unwrap_or(false) {
            return "setCanaryScale{matchTrafficWeight: true}".into();
        }
        if let Some(r) = s.replicas {
            return format!("setCanaryScale{{replicas: {r}}}");
        }
    }
    if let Some(p) = &step.plugin {
        return format!("plugin: {}", p.name);
    }
    if let Some(h) = &step.set_header_route {
        return format!("setHeaderRoute: {}", h.name.as_deref().unwrap_or(""));
    }
    if let Some(m) = &step.set_mirror_route {
        return format!("setMirrorRoute: {}", m.name);
    }
    "invalid".into()
}

// =============================================================================================
// Tests
// =============================================================================================

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::json;

    /// The seed manifest, from the project's own copy (e2e/manifests/seed-rollout.yaml).
    const SEED: &str = include_str!("../../../e2e/manifests/seed-rollout.yaml");

    /// An Argo manifest touching most of the spec: blue-green with analysis, and canary steps
    /// of every kind with Istio routing.
    const BLUE_GREEN: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: bg
  namespace: shop
spec:
  replicas: 3
  revisionHistoryLimit: 3
  minReadySeconds: 5
  progressDeadlineSeconds: 300
  progressDeadlineAbort: true
  restartAt: "2024-05-01T10:00:00Z"
  rollbackWindow: {revisions: 2}
  analysis: {successfulRunHistoryLimit: 3, unsuccessfulRunHistoryLimit: 4}
  selector:
    matchLabels: {app: bg}
  template:
    metadata:
      labels: {app: bg}
      annotations: {team: shop}
    spec:
      containers:
      - name: app
        image: shop:v2
  strategy:
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      previewReplicaCount: 1
      autoPromotionEnabled: false
      autoPromotionSeconds: 30
      maxUnavailable: 1
      scaleDownDelaySeconds: 60
      scaleDownDelayRevisionLimit: 1
      abortScaleDownDelaySeconds: 0
      antiAffinity:
        preferredDuringSchedulingIgnoredDuringExecution: {weight: 50}
      previewMetadata:
        labels: {role: preview}
      activeMetadata:
        annotations: {role: active}
      prePromotionAnalysis:
        templates:
        - templateName: smoke
        - templateName: global-smoke
          clusterScope: true
        args:
        - name: service
          value: bg-preview
        - name: hash
          valueFrom:
            podTemplateHashValue: Latest
        - name: env
          valueFrom:
            fieldRef:
              fieldPath: metadata.labels['env']
        dryRun:
        - metricName: latency
        measurementRetention:
        - metricName: '*'
          limit: 20
        analysisRunMetadata:
          labels: {kind: pre}
          annotations: {note: x}
      postPromotionAnalysis:
        templates:
        - templateName: soak
"#;

    const CANARY_ISTIO: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: istio
spec:
  replicas: 10
  workloadRef:
    apiVersion: apps/v1
    kind: Deployment
    name: istio-app
    scaleDown: progressively
  strategy:
    canary:
      canaryService: istio-canary
      stableService: istio-stable
      maxSurge: "25%"
      maxUnavailable: 0
      dynamicStableScale: true
      minPodsPerReplicaSet: 2
      scaleDownDelaySeconds: 45
      abortScaleDownDelaySeconds: 10
      replicaProgressThreshold: {type: Percent, value: 90}
      pingPong: {pingService: ping, pongService: pong}
      antiAffinity:
        requiredDuringSchedulingIgnoredDuringExecution: {}
      canaryMetadata:
        labels: {role: canary}
      stableMetadata:
        labels: {role: stable}
      analysis:
        startingStep: 2
        templates:
        - templateName: success-rate
        args:
        - name: service
          value: istio-canary
      trafficRouting:
        maxTrafficWeight: 1000
        managedRoutes:
        - name: header-route
        - name: mirror-route
        istio:
          virtualService:
            name: istio-vs
            routes: [primary]
            tlsRoutes:
            - port: 443
              sniHosts: [shop.example.com]
            tcpRoutes:
            - port: 9000
          virtualServices:
          - name: other-vs
          destinationRule:
            name: istio-dr
            canarySubsetName: canary
            stableSubsetName: stable
            additionalSubsetNames: [legacy]
        plugins:
          argoproj-labs/gatewayAPI:
            httpRoute: shop
            namespace: shop
            nested: {list: [1, 2.5, true, null]}
      steps:
      - setCanaryScale: {replicas: 2}
      - setWeight: 10
      - setHeaderRoute:
          name: header-route
          match:
          - headerName: x-canary
            headerValue: {exact: "yes"}
      - setMirrorRoute:
          name: mirror-route
          percentage: 50
          match:
          - method: {exact: GET}
            path: {prefix: /api}
            headers:
              x-user: {regex: "^a.*"}
      - experiment:
          duration: 10m
          scaleDownDelaySeconds: 5
          templates:
          - name: baseline
            specRef: stable
            replicas: 1
            weight: 5
            service: {name: baseline-svc}
            metadata:
              labels: {exp: baseline}
            selector:
              matchLabels: {app: baseline}
          - name: canary
            specRef: canary
          analyses:
          - name: compare
            templateName: compare
            clusterScope: false
            requiredForCompletion: true
            args:
            - name: baseline-hash
              valueFrom: {podTemplateHashValue: Stable}
          dryRun:
          - metricName: errors
          analysisRunMetadata:
            labels: {exp: "true"}
      - analysis:
          templates:
          - templateName: step-check
      - setCanaryScale: {weight: 30}
      - setCanaryScale: {matchTrafficWeight: true}
      - pause: {duration: 30}
      - pause: {}
      - plugin:
          name: argoproj-labs/sample-step
          config: {message: hello, count: 3}
status:
  observedGeneration: "5"
  HPAReplicas: 10
  selector: app=istio
  stableRS: 6b8f7d9c4
  currentPodHash: 7c9d8e5f6
  currentStepHash: 5f7d9c8b
  currentStepIndex: 3
  collisionCount: 1
  replicas: 11
  updatedReplicas: 2
  readyReplicas: 11
  availableReplicas: 11
  abort: true
  abortedAt: "2024-05-01T10:05:00Z"
  controllerPause: true
  promoteFull: false
  restartedAt: "2024-05-01T09:00:00Z"
  phase: Paused
  message: CanaryPauseStep
  workloadObservedGeneration: "7"
  pauseConditions:
  - reason: CanaryPauseStep
    startTime: "2024-05-01T10:01:00Z"
  conditions:
  - type: Progressing
    status: "True"
    reason: ReplicaSetUpdated
    message: ReplicaSet "istio-7c9d8e5f6" is progressing.
    lastUpdateTime: "2024-05-01T10:01:00Z"
    lastTransitionTime: "2024-05-01T10:00:00Z"
  canary:
    currentExperiment: istio-7c9d8e5f6-2-4
    stablePingPong: ping
    currentStepAnalysisRunStatus: {name: istio-7c9d8e5f6-2-5, status: Running}
    currentBackgroundAnalysisRunStatus: {name: istio-7c9d8e5f6-2, status: Inconclusive, message: low data}
    weights:
      canary: {weight: 100, serviceName: istio-canary, podTemplateHash: 7c9d8e5f6}
      stable: {weight: 900, serviceName: istio-stable, podTemplateHash: 6b8f7d9c4}
      additional:
      - {weight: 50, serviceName: baseline-svc, podTemplateHash: 5a5a5a5a5}
      verified: true
    stepPluginStatuses:
    - index: 10
      name: argoproj-labs/sample-step
      operation: Run
      phase: Running
      message: waiting
      startedAt: "2024-05-01T10:02:00Z"
      updatedAt: "2024-05-01T10:03:00Z"
      backoff: 30s
      executions: 2
      disabled: false
      status: {jobId: 42}
  blueGreen:
    activeSelector: 6b8f7d9c4
    previewSelector: 7c9d8e5f6
    scaleUpPreviewCheckPoint: true
    prePromotionAnalysisRunStatus: {name: pre, status: Successful}
    postPromotionAnalysisRunStatus: {name: post, status: Failed, message: boom}
  alb:
    ingress: shop
    loadBalancer: {name: lb, arn: "arn:lb", fullName: app/lb/1}
    canaryTargetGroup: {name: c, arn: "arn:c"}
    stableTargetGroup: {name: s, arn: "arn:s", fullName: tg/s}
  albs:
  - ingress: shop2
    loadBalancer: {name: lb2, arn: "arn:lb2"}
  duration:
    rolloutStartedAt: "2024-05-01T10:00:00Z"
    manualPauseStartedAt: "2024-05-01T10:04:00Z"
    totalManualPauseDurationSeconds: 120
    completionStatus: Aborted
"#;

    /// Decodes YAML into a Rollout, and separately into untyped JSON.
    fn decode(yaml: &str) -> (Rollout, Value) {
        let rollout: Rollout = serde_saphyr::from_str(yaml).expect("decode Rollout");
        let raw: Value = serde_saphyr::from_str(yaml).expect("decode JSON");
        (rollout, raw)
    }

    fn assert_round_trip(yaml: &str) -> Rollout {
        let (rollout, raw) = decode(yaml);
        let back = serde_json::to_value(&rollout).unwrap();
        assert_eq!(back, raw, "re-encoded Rollout differs from the input");
        // and the JSON form decodes to the same value
        let again: Rollout = serde_json::from_value(back).unwrap();
        assert_eq!(again, rollout);
        rollout
    }

    #[test]
    fn seed_manifest_round_trips() {
        let ro = assert_round_trip(SEED);
        assert_eq!(ro.spec.replicas, Some(5));
        assert_eq!(ro.spec.revision_history_limit, Some(2));
        let steps = ro
            .spec
            .strategy
            .canary
            .as_ref()
            .unwrap()
            .steps
            .as_ref()
            .unwrap();
        assert_eq!(steps.len(), 8);
        assert_eq!(steps[0].set_weight, Some(20));
        assert_eq!(
            steps[1].pause.as_ref().unwrap().duration,
            Some(IntOrString::String("10m".into()))
        );
        let template = ro.spec.template.as_ref().unwrap();
        let container = &template.spec.as_ref().unwrap().containers[0];
        let requests = container
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap();
        assert_eq!(requests["cpu"].0, "5m");
    }

    #[test]
    fn blue_green_with_analysis_round_trips() {
        let ro = assert_round_trip(BLUE_GREEN);
        let bg = ro.spec.strategy.blue_green.as_ref().unwrap();
        assert_eq!(bg.active_service, "bg-active");
        assert_eq!(bg.max_unavailable, Some(IntOrString::Int(1)));
        let pre = bg.pre_promotion_analysis.as_ref().unwrap();
        let args = pre.args.as_ref().unwrap();
        assert_eq!(
            args[1]
                .value_from
                .as_ref()
                .unwrap()
                .pod_template_hash_value
                .as_deref(),
            Some(crate::api::consts::POD_TEMPLATE_HASH_LATEST)
        );
        assert_eq!(ro.spec.rollback_window.as_ref().unwrap().revisions, Some(2));
        assert!(ro.spec.restart_at.is_some());
    }

    #[test]
    fn canary_with_istio_experiment_and_full_status_round_trips() {
        let ro = assert_round_trip(CANARY_ISTIO);
        let canary = ro.spec.strategy.canary.as_ref().unwrap();
        // the background analysis reads like the embedded RolloutAnalysis
        let bg = canary.analysis.as_ref().unwrap();
        assert_eq!(bg.starting_step, Some(2));
        assert_eq!(
            bg.templates.as_ref().unwrap()[0].template_name.as_deref(),
            Some("success-rate")
        );
        let tr = canary.traffic_routing.as_ref().unwrap();
        assert_eq!(tr.max_traffic_weight, Some(1000));
        assert!(
            tr.plugins
                .as_ref()
                .unwrap()
                .contains_key("argoproj-labs/gatewayAPI")
        );
        let steps = canary.steps.as_ref().unwrap();
        assert_eq!(
            steps[0].set_canary_scale.as_ref().unwrap().replicas,
            Some(2)
        );
        assert_eq!(steps[4].experiment.as_ref().unwrap().templates.len(), 2);
        assert_eq!(
            steps[8].pause.as_ref().unwrap().duration,
            Some(IntOrString::Int(30))
        );

        let status = ro.status.as_ref().unwrap();
        assert_eq!(status.hpa_replicas, Some(10));
        assert_eq!(status.stable_rs.as_deref(), Some("6b8f7d9c4"));
        let weights = status.canary.as_ref().unwrap().weights.as_ref().unwrap();
        assert_eq!(weights.stable.weight, 900);
        assert_eq!(status.conditions.as_ref().unwrap()[0].type_, "Progressing");
    }

    #[test]
    fn observed_generation_is_a_string() {
        let (ro, _) = decode(CANARY_ISTIO);
        assert_eq!(ro.status.unwrap().observed_generation.as_deref(), Some("5"));
        let status: RolloutStatus =
            serde_json::from_value(json!({"observedGeneration": "12"})).unwrap();
        assert_eq!(status.observed_generation.as_deref(), Some("12"));
        let out = serde_json::to_value(&status).unwrap();
        assert_eq!(out, json!({"observedGeneration": "12"}));
    }

    #[test]
    fn unknown_enumerated_values_decode() {
        let status: RolloutStatus = serde_json::from_value(json!({
            "phase": "SomethingNew",
            "pauseConditions": [{"reason": "FuturePause", "startTime": "2024-01-01T00:00:00Z"}],
            "conditions": [{"type": "Future", "status": "Maybe"}],
        }))
        .unwrap();
        assert_eq!(status.phase.as_deref(), Some("SomethingNew"));
    }

    #[test]
    fn numeric_quantities_decode() {
        let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: numeric}
spec:
  selector: {matchLabels: {app: numeric}}
  template:
    metadata: {labels: {app: numeric}}
    spec:
      initContainers:
      - name: init
        resources:
          limits: {cpu: 2, memory: 1073741824}
      containers:
      - name: app
        resources:
          requests: {cpu: 1, memory: 512}
          limits: {cpu: 0.5, memory: invalid}
  strategy:
    canary: {}
"#;
        let (ro, _) = decode(yaml);
        let spec = ro.spec.template.unwrap().spec.unwrap();
        let res = spec.containers[0].resources.as_ref().unwrap();
        assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "1");
        assert_eq!(res.requests.as_ref().unwrap()["memory"].0, "512");
        assert_eq!(res.limits.as_ref().unwrap()["cpu"].0, "0.5");
        assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "invalid");
        let init = spec.init_containers.unwrap();
        assert_eq!(
            init[0].resources.as_ref().unwrap().limits.as_ref().unwrap()["cpu"].0,
            "2"
        );

        // the same through JSON, as the apiserver sends it
        let json = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "numeric"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "app", "resources": {"requests": {"cpu": 1, "memory": 512.5}}}
            ]}}}
        });
        let ro: Rollout = serde_json::from_value(json).unwrap();
        let spec = ro.spec.template.unwrap().spec.unwrap();
        let requests = spec.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .clone()
            .unwrap();
        assert_eq!(requests["cpu"].0, "1");
        assert_eq!(requests["memory"].0, "512.5");
    }

    #[test]
    fn empty_spec_decodes_and_strategy_defaults() {
        let ro: Rollout = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "empty"}, "spec": {}
        }))
        .unwrap();
        assert_eq!(ro.spec.strategy, RolloutStrategy::default());
        assert!(ro.status.is_none());
    }

    #[test]
    fn crd_identity_subresources_and_columns() {
        let crd = Rollout::crd();
        assert_eq!(crd.metadata.name.as_deref(), Some("rollouts.argoproj.io"));
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.short_names, Some(vec!["ro".to_string()]));
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, "v1alpha1");
        let scale = v.subresources.as_ref().unwrap().scale.as_ref().unwrap();
        assert_eq!(scale.spec_replicas_path, ".spec.replicas");
        assert_eq!(scale.status_replicas_path, ".status.HPAReplicas");
        assert_eq!(
            scale.label_selector_path.as_deref(),
            Some(".status.selector")
        );
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
                ("Desired", ".spec.replicas"),
                ("Current", ".status.replicas"),
                ("Up-to-date", ".status.updatedReplicas"),
                ("Available", ".status.availableReplicas"),
                ("Age", ".metadata.creationTimestamp"),
            ]
        );
    }

    fn schema_json() -> Value {
        let crd = Rollout::crd();
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .clone();
        serde_json::to_value(schema).unwrap()
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

    #[test]
    fn schema_follows_argo_tolerance() {
        let schema = schema_json();
        let spec = &schema["properties"]["spec"]["properties"];
        let container =
            &spec["template"]["properties"]["spec"]["properties"]["containers"]["items"];
        for key in ["limits", "requests"] {
            let q = &container["properties"]["resources"]["properties"][key];
            assert_eq!(
                q["x-kubernetes-preserve-unknown-fields"],
                json!(true),
                "{key}"
            );
            assert!(q.get("additionalProperties").is_none());
        }
        let meta = &spec["template"]["properties"]["metadata"]["properties"];
        assert_eq!(meta.as_object().unwrap().len(), 2);
        let env_from = &container["properties"]["envFrom"]["items"]["properties"];
        assert!(env_from["configMapRef"].get("required").is_none());
        let plugins = &spec["strategy"]["properties"]["canary"]["properties"]["trafficRouting"]["properties"]
            ["plugins"];
        assert_eq!(plugins["x-kubernetes-preserve-unknown-fields"], json!(true));
        assert_eq!(
            schema["properties"]["status"]["properties"]["observedGeneration"]["type"],
            "string"
        );
        assert_eq!(
            schema["properties"]["status"]["properties"]["HPAReplicas"]["type"],
            "integer"
        );
        assert!(spec["strategy"].get("default").is_none());
        // every field is documented (kubectl explain)
        let mut undocumented = Vec::new();
        visit(&schema, "", &mut |path, obj| {
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    if v.get("description").is_none() && !path.contains("/template/") {
                        undocumented.push(format!("{path}/properties/{k}"));
                    }
                }
            }
        });
        let allowed = [
            "/properties/apiVersion",
            "/properties/kind",
            "/properties/metadata",
        ];
        undocumented.retain(|p| !allowed.contains(&p.as_str()));
        assert!(undocumented.is_empty(), "{undocumented:#?}");
    }
}
