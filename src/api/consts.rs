//! Well-known string values of the Argo Rollouts API: phases, condition types and reasons, pause
//! reasons, labels and annotations. The CRD types keep these fields as plain `String`s so that
//! values we do not know yet never break decoding; code compares against the constants here.

// ---------------------------------------------------------------------------------------------
// API identity
// ---------------------------------------------------------------------------------------------

/// API group shared by every Argo Rollouts kind.
pub const GROUP: &str = "argoproj.io";
/// The only served and stored version of the Argo Rollouts kinds.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the Argo Rollouts kinds.
pub const API_VERSION: &str = "argoproj.io/v1alpha1";

/// The field manager of every write the controller makes.
pub const FIELD_MANAGER: &str = "sluice-controller";

// ---------------------------------------------------------------------------------------------
// status.phase
// ---------------------------------------------------------------------------------------------

/// Phase: the rollout finished its update and all pods are available.
pub const PHASE_HEALTHY: &str = "Healthy";
/// Phase: the rollout is moving towards the desired state.
pub const PHASE_PROGRESSING: &str = "Progressing";
/// Phase: the rollout will not progress until it is resumed or promoted.
pub const PHASE_PAUSED: &str = "Paused";
/// Phase: the rollout is aborted, timed out or has an invalid spec.
pub const PHASE_DEGRADED: &str = "Degraded";

// ---------------------------------------------------------------------------------------------
// status.conditions[].type
// ---------------------------------------------------------------------------------------------

/// Condition type: the spec cannot be acted on until it is fixed.
pub const CONDITION_INVALID_SPEC: &str = "InvalidSpec";
/// Condition type: the rollout has minimum availability.
pub const CONDITION_AVAILABLE: &str = "Available";
/// Condition type: the rollout is making progress (or failed to within the deadline).
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: creating or deleting pods failed (copied from the ReplicaSet).
pub const CONDITION_REPLICA_FAILURE: &str = "ReplicaFailure";
/// Condition type: the rollout is paused.
pub const CONDITION_PAUSED: &str = "Paused";
/// Condition type: the stable ReplicaSet equals the desired one (`stableRS == currentPodHash`).
pub const CONDITION_COMPLETED: &str = "Completed";
/// Condition type: the rollout is completed and all its pods are available.
pub const CONDITION_HEALTHY: &str = "Healthy";
/// Condition type (Sluice's own, not Argo's): the spec uses fields this version of Sluice
/// accepts but does not act on yet; the message names each and what happens instead.
pub const CONDITION_NOT_IMPLEMENTED: &str = "NotImplemented";

/// Condition status `True`.
pub const CONDITION_TRUE: &str = "True";
/// Condition status `False`.
pub const CONDITION_FALSE: &str = "False";
/// Condition status `Unknown`.
pub const CONDITION_UNKNOWN: &str = "Unknown";

// ---------------------------------------------------------------------------------------------
// Condition reasons (also used as event reasons, which are API: notification triggers derive
// from them)
// ---------------------------------------------------------------------------------------------

/// Reason: a new ReplicaSet was created for the desired template.
pub const REASON_NEW_REPLICA_SET_CREATED: &str = "NewReplicaSetCreated";

/// Reason: an existing ReplicaSet was adopted as the desired one.
pub const REASON_FOUND_NEW_REPLICA_SET: &str = "FoundNewReplicaSet";
/// Reason: creating the new ReplicaSet failed.
pub const REASON_REPLICA_SET_CREATE_ERROR: &str = "ReplicaSetCreateError";
/// Reason: the rollout made progress (counts, step, stable or selector changed).
pub const REASON_REPLICA_SET_UPDATED: &str = "ReplicaSetUpdated";
/// Reason: the desired ReplicaSet became available.
pub const REASON_NEW_REPLICA_SET_AVAILABLE: &str = "NewReplicaSetAvailable";
/// Reason: a fully promoted rollout lost availability again.
pub const REASON_REPLICA_SET_NOT_AVAILABLE: &str = "ReplicaSetNotAvailable";
/// Reason: the rollout was paused.
pub const REASON_ROLLOUT_PAUSED: &str = "RolloutPaused";
/// Reason: the rollout was resumed.
pub const REASON_ROLLOUT_RESUMED: &str = "RolloutResumed";
/// Reason: the rollout is retried after an abort.
pub const REASON_ROLLOUT_RETRY: &str = "RolloutRetry";
/// Reason: the update was aborted.
pub const REASON_ROLLOUT_ABORTED: &str = "RolloutAborted";
/// Reason: the rollout did not progress within `progressDeadlineSeconds`.
pub const REASON_PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
/// Reason of the `Available` condition, whatever its status.
pub const REASON_AVAILABLE: &str = "AvailableReason";
/// Reason of the `Completed` condition when the update finished.
pub const REASON_ROLLOUT_COMPLETED: &str = "RolloutCompleted";
/// Reason of the `Completed` condition while an update is in flight.
pub const REASON_ROLLOUT_NOT_COMPLETED: &str = "RolloutNotCompleted";
/// Reason of the `Healthy` condition, whatever its status.
pub const REASON_ROLLOUT_HEALTHY: &str = "RolloutHealthy";
/// Reason of the `InvalidSpec` condition.
pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
/// Event reason: a Service's selector was pointed at another ReplicaSet.
pub const REASON_SWITCH_SERVICE: &str = "SwitchService";
/// Blue-green: the default `scaleDownDelaySeconds` and `abortScaleDownDelaySeconds`.
pub const DEFAULT_SCALE_DOWN_DELAY_SECONDS: i32 = 30;
/// Event reason: a Rollout no controller has reconciled yet was picked up.
pub const REASON_ROLLOUT_ADDED_TO_INFORMER: &str = "RolloutAddedToInformer";
/// Event reason: a pod created before `spec.restartAt` is evicted.
pub const REASON_RESTARTING_POD: &str = "RestartingPod";
/// Reason of the `NotImplemented` condition and of its warning event.
pub const REASON_NOT_IMPLEMENTED: &str = "NotImplemented";
/// Event reason: the spec was updated to a new revision.
pub const REASON_ROLLOUT_UPDATED: &str = "RolloutUpdated";
/// Event reason: a canary step completed.
pub const REASON_ROLLOUT_STEP_COMPLETED: &str = "RolloutStepCompleted";
/// Event reason: the traffic weight was changed.
pub const REASON_TRAFFIC_WEIGHT_UPDATED: &str = "TrafficWeightUpdated";
/// Event reason: an AnalysisRun failed or errored.
pub const REASON_ANALYSIS_RUN_FAILED: &str = "AnalysisRunFailed";
/// Event reason: an Experiment failed or errored.
pub const REASON_EXPERIMENT_FAILED: &str = "ExperimentFailed";
/// Event reason: a reconcile returned an error.
pub const REASON_RECONCILIATION_ERROR: &str = "ReconciliationError";
/// Event reason: a ReplicaSet was scaled.
pub const REASON_SCALING_REPLICA_SET: &str = "ScalingReplicaSet";
/// Event reason: a Service is managed by another Rollout.
pub const REASON_SERVICE_REFERENCE_ERROR: &str = "ServiceReferenceError";

// ---------------------------------------------------------------------------------------------
// status.pauseConditions[].reason
// ---------------------------------------------------------------------------------------------

/// Pause reason: a canary `pause` step.
pub const PAUSE_REASON_CANARY_PAUSE_STEP: &str = "CanaryPauseStep";
/// Pause reason: blue-green waiting for promotion.
pub const PAUSE_REASON_BLUE_GREEN_PAUSE: &str = "BlueGreenPause";
/// Pause reason: an AnalysisRun ended Inconclusive.
pub const PAUSE_REASON_INCONCLUSIVE_ANALYSIS_RUN: &str = "InconclusiveAnalysisRun";
/// Pause reason: an Experiment ended Inconclusive.
pub const PAUSE_REASON_INCONCLUSIVE_EXPERIMENT: &str = "InconclusiveExperiment";

// ---------------------------------------------------------------------------------------------
// Analysis phases: `phase` of AnalysisRuns, their metric results and measurements, and of
// Experiments; `RolloutAnalysisRunStatus.status`
// ---------------------------------------------------------------------------------------------

/// Analysis phase `Pending`.
pub const ANALYSIS_PHASE_PENDING: &str = "Pending";
/// Analysis phase `Running`.
pub const ANALYSIS_PHASE_RUNNING: &str = "Running";
/// Analysis phase `Successful`.
pub const ANALYSIS_PHASE_SUCCESSFUL: &str = "Successful";
/// Analysis phase `Failed`.
pub const ANALYSIS_PHASE_FAILED: &str = "Failed";
/// Analysis phase `Error`.
pub const ANALYSIS_PHASE_ERROR: &str = "Error";
/// Analysis phase `Inconclusive`.
pub const ANALYSIS_PHASE_INCONCLUSIVE: &str = "Inconclusive";

// ---------------------------------------------------------------------------------------------
// Enumerated spec values
// ---------------------------------------------------------------------------------------------

/// `replicaProgressThreshold.type`: the value is a percentage of the desired canary pods.
pub const PROGRESS_TYPE_PERCENT: &str = "Percent";
/// `replicaProgressThreshold.type`: the value is a pod count.
pub const PROGRESS_TYPE_PODS: &str = "Pods";

/// `valueFrom.podTemplateHashValue`: the stable ReplicaSet's hash.
pub const POD_TEMPLATE_HASH_STABLE: &str = "Stable";
/// `valueFrom.podTemplateHashValue`: the newest ReplicaSet's hash.
pub const POD_TEMPLATE_HASH_LATEST: &str = "Latest";

/// Experiment template `specRef`: take the pod template of the canary (new) ReplicaSet.
pub const SPEC_REF_CANARY: &str = "canary";
/// Experiment template `specRef`: take the pod template of the stable ReplicaSet.
pub const SPEC_REF_STABLE: &str = "stable";

/// `workloadRef.scaleDown`: leave the referenced Deployment alone.
pub const SCALE_DOWN_NEVER: &str = "never";
/// `workloadRef.scaleDown`: scale the Deployment to zero once the Rollout is healthy.
pub const SCALE_DOWN_ON_SUCCESS: &str = "onsuccess";
/// `workloadRef.scaleDown`: scale the Deployment down as the Rollout scales up.
pub const SCALE_DOWN_PROGRESSIVELY: &str = "progressively";

/// `status.canary.stablePingPong`: the ping Service is stable.
pub const PING_PONG_PING: &str = "ping";
/// `status.canary.stablePingPong`: the pong Service is stable.
pub const PING_PONG_PONG: &str = "pong";

/// Step plugin operation `Run`.
pub const STEP_PLUGIN_OPERATION_RUN: &str = "Run";
/// Step plugin operation `Terminate`.
pub const STEP_PLUGIN_OPERATION_TERMINATE: &str = "Terminate";
/// Step plugin operation `Abort`.
pub const STEP_PLUGIN_OPERATION_ABORT: &str = "Abort";
/// Step plugin phase `Running`.
pub const STEP_PLUGIN_PHASE_RUNNING: &str = "Running";
/// Step plugin phase `Successful`.
pub const STEP_PLUGIN_PHASE_SUCCESSFUL: &str = "Successful";
/// Step plugin phase `Failed`.
pub const STEP_PLUGIN_PHASE_FAILED: &str = "Failed";
/// Step plugin phase `Error`.
pub const STEP_PLUGIN_PHASE_ERROR: &str = "Error";

/// `status.duration.completionStatus`: promoted by walking the steps.
pub const COMPLETION_PROMOTED: &str = "Promoted";
/// `status.duration.completionStatus`: promoted with `promoteFull`.
pub const COMPLETION_FAST_PROMOTED: &str = "FastPromoted";
/// `status.duration.completionStatus`: aborted.
pub const COMPLETION_ABORTED: &str = "Aborted";
/// `status.duration.completionStatus`: replaced by a newer update.
pub const COMPLETION_SUPERSEDED: &str = "Superseded";
/// `status.duration.completionStatus`: rolled back to an older revision.
pub const COMPLETION_ROLLED_BACK: &str = "RolledBack";
/// `status.duration.completionStatus`: rolled back inside the rollback window.
pub const COMPLETION_FAST_ROLLED_BACK: &str = "FastRolledBack";

// ---------------------------------------------------------------------------------------------
// Labels and annotations
// ---------------------------------------------------------------------------------------------

/// Label with the pod-template hash, on ReplicaSets, their selectors and pods, Services,
/// AnalysisRuns and Experiments.
pub const LABEL_POD_TEMPLATE_HASH: &str = "rollouts-pod-template-hash";
/// Annotation with the revision number, on Rollouts, ReplicaSets and AnalysisRuns.
pub const ANNOTATION_REVISION: &str = "rollout.argoproj.io/revision";
/// Annotation on a reused ReplicaSet listing its earlier revisions, comma-separated.
pub const ANNOTATION_REVISION_HISTORY: &str = "rollout.argoproj.io/revision-history";
/// Annotation on a ReplicaSet with `spec.replicas` of the Rollout when it was last scaled.
pub const ANNOTATION_DESIRED_REPLICAS: &str = "rollout.argoproj.io/desired-replicas";
/// Annotation on a ReplicaSet with the JSON of the injected canary/stable metadata.
pub const ANNOTATION_EPHEMERAL_METADATA: &str = "rollout.argoproj.io/ephemeral-metadata";
/// Annotation on a Rollout with the observed generation of its `workloadRef`.
pub const ANNOTATION_WORKLOAD_GENERATION: &str = "rollout.argoproj.io/workload-generation";
/// Annotation on an old ReplicaSet with the RFC 3339 time after which it may be scaled down.
/// It has no prefix (trap 7).
pub const ANNOTATION_SCALE_DOWN_DEADLINE: &str = "scale-down-deadline";
/// Label on every object for sharding between controller instances (`--instance-id`).
pub const LABEL_CONTROLLER_INSTANCE_ID: &str = "argo-rollouts.argoproj.io/controller-instance-id";
/// Annotation on a Service naming the Rollout that manages its selector.
pub const ANNOTATION_MANAGED_BY_ROLLOUTS: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";
/// Annotation declared upstream for restarted ReplicaSets; unused by upstream controllers.
pub const ANNOTATION_RESTARTED_AFTER: &str = "argo-rollouts.argoproj.io/restarted-after";
/// Label on AnalysisRuns telling which part of the rollout created them.
pub const LABEL_ROLLOUT_TYPE: &str = "rollout-type";
/// `rollout-type` value for a canary step analysis.
pub const ROLLOUT_TYPE_STEP: &str = "Step";
/// `rollout-type` value for the background analysis.
pub const ROLLOUT_TYPE_BACKGROUND: &str = "Background";
/// `rollout-type` value for blue-green pre-promotion analysis.
pub const ROLLOUT_TYPE_PRE_PROMOTION: &str = "PrePromotion";
/// `rollout-type` value for blue-green post-promotion analysis.
pub const ROLLOUT_TYPE_POST_PROMOTION: &str = "PostPromotion";
/// Label on step AnalysisRuns with the index of the step that created them.
pub const LABEL_STEP_INDEX: &str = "step-index";
/// Label on Experiment ReplicaSets naming the Experiment.
pub const LABEL_EXPERIMENT_NAME: &str = "experiment.argoproj.io/name";
/// Label on Experiment ReplicaSets naming the template.
pub const LABEL_EXPERIMENT_TEMPLATE_NAME: &str = "experiment.argoproj.io/template-name";

// ---------------------------------------------------------------------------------------------
// AnalysisRun and Experiment values
// ---------------------------------------------------------------------------------------------

/// Experiment condition type: all templates are available and the duration is running.
pub const CONDITION_RUNNING: &str = "Running";

/// Experiment template status: the ReplicaSet is not yet available.
pub const TEMPLATE_STATUS_PROGRESSING: &str = "Progressing";
/// Experiment template status: the ReplicaSet is available.
pub const TEMPLATE_STATUS_RUNNING: &str = "Running";
/// Experiment template status: the template finished successfully (final).
pub const TEMPLATE_STATUS_SUCCESSFUL: &str = "Successful";
/// Experiment template status: the template failed, e.g. missed its progress deadline (final).
pub const TEMPLATE_STATUS_FAILED: &str = "Failed";
/// Experiment template status: the template could not be run (final).
pub const TEMPLATE_STATUS_ERROR: &str = "Error";

/// Web metric `method` `GET` (the default).
pub const WEB_METRIC_METHOD_GET: &str = "GET";
/// Web metric `method` `POST`.
pub const WEB_METRIC_METHOD_POST: &str = "POST";
/// Web metric `method` `PUT`.
pub const WEB_METRIC_METHOD_PUT: &str = "PUT";

/// Datadog metric `apiVersion` `v1` (the default).
pub const DATADOG_API_VERSION_V1: &str = "v1";
/// Datadog metric `apiVersion` `v2`.
pub const DATADOG_API_VERSION_V2: &str = "v2";

/// Label on analysis Jobs with the UID of their AnalysisRun.
pub const LABEL_ANALYSIS_RUN_UID: &str = "analysisrun.argoproj.io/uid";
/// Annotation on analysis Jobs naming their AnalysisRun.
pub const ANNOTATION_ANALYSIS_RUN_NAME: &str = "analysisrun.argoproj.io/name";
/// Annotation on analysis Jobs with the namespace of their AnalysisRun.
pub const ANNOTATION_ANALYSIS_RUN_NAMESPACE: &str = "analysisrun.argoproj.io/namespace";
/// Annotation on analysis Jobs naming the metric they measure.
pub const ANNOTATION_ANALYSIS_RUN_METRIC_NAME: &str = "analysisrun.argoproj.io/metric-name";
/// Measurement `metadata` key with the name of the Job of a Job metric.
pub const MEASUREMENT_METADATA_JOB_NAME: &str = "job-name";
/// Measurement `metadata` key with the namespace of the Job of a Job metric.
pub const MEASUREMENT_METADATA_JOB_NAMESPACE: &str = "job-namespace";
