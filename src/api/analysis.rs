//! The analysis kinds of `argoproj.io/v1alpha1` — AnalysisTemplate, ClusterAnalysisTemplate and
//! AnalysisRun — field for field compatible with Argo Rollouts, so that existing manifests and
//! stored objects decode and re-encode unchanged. Phases stay `String`s (see `consts`).

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};

use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::schema::{drop_default, free_form_object, job_spec_schema, without_status_subresource};

// Types Argo shares between the Rollout and the analysis kinds are defined once, in `rollout`,
// and re-exported here so the analysis engine finds everything it needs in this module.
pub use super::rollout::{
    AnalysisTemplateRef, DryRun, FieldRef, MeasurementRetention, PodTemplateMetadata,
};

// =============================================================================================
// AnalysisTemplate and ClusterAnalysisTemplate
// =============================================================================================

/// The metrics, arguments and settings of an analysis, instantiated as AnalysisRuns by Rollouts
/// and Experiments.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisTemplate",
    plural = "analysistemplates",
    singular = "analysistemplate",
    shortname = "at",
    namespaced,
    derive = "PartialEq",
    doc = "AnalysisTemplate describes how to measure a release: metrics, providers and success criteria, with arguments filled in by each AnalysisRun created from it.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since resource was created"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    /// The metrics to measure. May be empty when `templates` supplies them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(transform = drop_default)]
    pub metrics: Vec<Metric>,
    /// Arguments the metrics refer to as `{{args.<name>}}`; a value given here is the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Argument>>,
    /// Metrics (by name, regular expressions allowed) whose results do not decide the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric (by name, regular expressions allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// Other templates whose metrics, arguments and settings are merged into this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<Vec<AnalysisTemplateRef>>,
}

/// The metrics, arguments and settings of a cluster-wide analysis; the same fields as an
/// AnalysisTemplate's spec.
// A newtype only because each derived kind needs its own spec type; it is transparent on the
// wire and dereferences to `AnalysisTemplateSpec`.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "ClusterAnalysisTemplate",
    plural = "clusteranalysistemplates",
    singular = "clusteranalysistemplate",
    shortname = "cat",
    derive = "PartialEq",
    doc = "ClusterAnalysisTemplate is an AnalysisTemplate visible from every namespace; Rollouts and Experiments refer to it with `clusterScope: true`.",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since resource was created"
    )
)]
#[serde(transparent)]
pub struct ClusterAnalysisTemplateSpec(pub AnalysisTemplateSpec);

impl Deref for ClusterAnalysisTemplateSpec {
    type Target = AnalysisTemplateSpec;
    fn deref(&self) -> &AnalysisTemplateSpec {
        &self.0
    }
}

impl DerefMut for ClusterAnalysisTemplateSpec {
    fn deref_mut(&mut self) -> &mut AnalysisTemplateSpec {
        &mut self.0
    }
}

impl From<AnalysisTemplateSpec> for ClusterAnalysisTemplateSpec {
    fn from(spec: AnalysisTemplateSpec) -> Self {
        Self(spec)
    }
}

impl From<ClusterAnalysisTemplateSpec> for AnalysisTemplateSpec {
    fn from(spec: ClusterAnalysisTemplateSpec) -> Self {
        spec.0
    }
}

// =============================================================================================
// AnalysisRun
// =============================================================================================

/// One execution of an analysis: the metrics (copied from the templates) with resolved
/// arguments. The controller records measurements in the status until the run completes.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// clippy mistakes the repeated keys of separate `printcolumn(...)` groups for duplicates
#[allow(clippy::duplicated_attributes)]
#[kube(
    group = "argoproj.io",
    version = "v1alpha1",
    kind = "AnalysisRun",
    plural = "analysisruns",
    singular = "analysisrun",
    shortname = "ar",
    namespaced,
    status = "AnalysisRunStatus",
    derive = "PartialEq",
    doc = "AnalysisRun measures metrics until each one is decided, and reports whether the analysis succeeded, failed or was inconclusive.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.phase",
        description = "AnalysisRun status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp",
        description = "Time since resource was created"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    /// The metrics to measure.
    pub metrics: Vec<Metric>,
    /// The arguments with their values, substituted for `{{args.<name>}}` in the metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<Argument>>,
    /// Set to true to stop the run early: no new measurements are started and the run completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate: Option<bool>,
    /// Metrics (by name, regular expressions allowed) whose results do not decide the run; they
    /// are summarised in `status.dryRunSummary`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Vec<DryRun>>,
    /// How many measurements to keep per metric. Unset keeps the 10 most recent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Vec<MeasurementRetention>>,
    /// When to delete the run after it completed: once the whole seconds since
    /// `status.completedAt` exceed the TTL that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_strategy: Option<TTLStrategy>,
}

impl AnalysisRun {
    /// The CRD as installed: the derived one without a status subresource, like Argo's, because
    /// Argo writes AnalysisRun status with ordinary updates and patches. This shadows
    /// `CustomResourceExt::crd`, which still includes the subresource.
    pub fn crd() -> CustomResourceDefinition {
        without_status_subresource(<Self as CustomResourceExt>::crd())
    }
}

/// Deletion of a completed AnalysisRun after a delay.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TTLStrategy {
    /// Seconds to keep the run after it completed, whatever its outcome, unless the TTL for
    /// its outcome below is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_completion: Option<i32>,
    /// Seconds to keep the run after it Failed (Error and Inconclusive runs follow
    /// `secondsAfterCompletion`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_failure: Option<i32>,
    /// Seconds to keep the run after it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_after_success: Option<i32>,
}

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

/// An argument of an analysis.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    /// Name of the argument, as used in `{{args.<name>}}`.
    pub name: String,
    /// The value. In a template it is the default; an argument with neither `value` nor
    /// `valueFrom` must be supplied by the creator of the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Where to read the value from instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

/// Source of an argument value. Exactly one member should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A key of a Secret in the run's namespace. The value is redacted in measurement messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    /// A metadata field of the Rollout that creates the run, by path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

/// A key of a Secret.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

// ---------------------------------------------------------------------------------------------
// Metric
// ---------------------------------------------------------------------------------------------

/// A metric: what to query, how often, and how to judge each result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    /// Name of the metric, unique within the run.
    pub name: String,
    /// Time between measurements, e.g. `30s`, `5m`, `1h`. Unset measures once, unless `count`
    /// asks for more (which then requires an interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Time to wait after the run started before the first measurement, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// Number of measurements to take (errors not counted); may be an argument placeholder.
    /// Unset or 0 means 1 without an interval, and no limit with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    /// Expression over `result` that a successful measurement satisfies, e.g. `result[0] >= 0.95`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// Expression over `result` that marks a measurement failed. With both conditions set, a
    /// measurement satisfying neither is inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// The metric fails once more measurements than this failed. Unset means 0; -1 never fails
    /// on count (for use with `consecutiveSuccessLimit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// The metric is inconclusive once more measurements than this were inconclusive. Unset
    /// means 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// The metric errors once more measurements than this errored in a row. Unset means 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// The metric succeeds once this many measurements in a row succeeded. Unset or 0 disables
    /// this rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success_limit: Option<IntOrString>,
    /// Where the measurements come from: exactly one provider.
    pub provider: MetricProvider,
}

/// The system a metric is measured with. Exactly one member should be set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    /// Query a Prometheus-compatible server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    /// Run a Kayenta canary judgement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kayenta: Option<KayentaMetric>,
    /// Call an HTTP endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    /// Query Datadog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datadog: Option<DatadogMetric>,
    /// Query Wavefront.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wavefront: Option<WavefrontMetric>,
    /// Run an NRQL query against New Relic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_relic: Option<NewRelicMetric>,
    /// Run a Kubernetes Job; its completion is the measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
    /// Query Amazon CloudWatch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_watch: Option<CloudWatchMetric>,
    /// Query Graphite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphite: Option<GraphiteMetric>,
    /// Run a Flux query against InfluxDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub influxdb: Option<InfluxdbMetric>,
    /// Query Apache SkyWalking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skywalking: Option<SkyWalkingMetric>,
    /// A metric plugin, keyed by plugin name, with free-form configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub plugin: Option<BTreeMap<String, Value>>,
}

// ---------------------------------------------------------------------------------------------
// Prometheus and web
// ---------------------------------------------------------------------------------------------

/// A Prometheus query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Base URL of the Prometheus server, e.g. `http://prometheus.monitoring:9090`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The PromQL query. A vector result is a list, hence conditions like `result[0] > 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// How to authenticate to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
    /// Query timeout in seconds. Unset means 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Skip verification of the server's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Extra HTTP headers sent with the query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<WebMetricHeader>>,
    /// Run a range query instead of an instant query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range_query: Option<PrometheusRangeQueryArgs>,
}

/// The window of a Prometheus range query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRangeQueryArgs {
    /// Start of the range as a time expression, e.g. `now() - duration("1h")`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End of the range as a time expression, e.g. `now()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Resolution of the range, e.g. `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
}

/// The name the engine uses for `PrometheusRangeQueryArgs`.
pub type RangeQuery = PrometheusRangeQueryArgs;

/// Credentials for a metric provider. For Prometheus one scheme sets `Authorization`, as in
/// Argo: `sigv4` for an Amazon Managed Prometheus address, else `oauth2` when its `tokenUrl` is
/// set, else `basicAuth`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authentication {
    /// Sign requests with AWS SigV4 (Amazon Managed Service for Prometheus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sigv4: Option<Sigv4Config>,
    /// Fetch a bearer token with the OAuth2 client-credentials flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2Config>,
    /// Send HTTP basic authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuthConfig>,
}

/// AWS SigV4 signing settings. As in Argo, Prometheus queries are signed (service `aps`) only
/// when the address contains `aps-workspaces` (Amazon Managed Service for Prometheus) and a
/// field here is set; otherwise this block is ignored. Credentials come from the controller's
/// environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and, for temporary credentials,
/// `AWS_SESSION_TOKEN`. Shared credential files, web identity (IRSA), instance metadata and STS
/// assume-role are not supported: a metric that sets `profile` or `roleArn` gets an Error
/// measurement saying so, never an unsigned query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Sigv4Config {
    /// AWS region to sign for. Unset means `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// AWS credentials profile to sign with. Not supported by sluice: setting it makes the
    /// measurement an Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// ARN of an IAM role to assume for signing. Not supported by sluice (no STS assume-role):
    /// setting it makes the measurement an Error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// OAuth2 client-credentials settings: the token is fetched from `tokenUrl` with the client id
/// and secret (HTTP basic authentication first, form parameters if the server refuses that),
/// cached until shortly before it expires, and sent as `Authorization: Bearer <token>`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Config {
    /// URL of the token endpoint. OAuth2 is used when this is set; `clientId` and
    /// `clientSecret` are then required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_url: Option<String>,
    /// Client ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Client secret; usually an argument placeholder filled from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// Scopes to request, sent space-separated as the `scope` parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
}

/// HTTP basic authentication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthConfig {
    /// User name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password or access token; usually an argument placeholder filled from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// The name the engine uses for `BasicAuthConfig`.
pub type BasicAuth = BasicAuthConfig;

/// An HTTP header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetricHeader {
    /// Header name.
    pub key: String,
    /// Header value.
    pub value: String,
}

/// An HTTP request whose response is the measurement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// `GET`, `POST` or `PUT`. Unset means `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// URL to call.
    pub url: String,
    /// Extra HTTP headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<WebMetricHeader>>,
    /// Request body as text (`POST` or `PUT` only). Set this or `jsonBody`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Request timeout in seconds. Unset means 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// JSONPath selecting `result` from a JSON response. Unset means `{$}`, the whole body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// Skip verification of the server's TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// Request body as a JSON object (`POST` or `PUT` only). Set this or `body`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "free_form_object")]
    pub json_body: Option<Value>,
    /// How to authenticate to the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

// ---------------------------------------------------------------------------------------------
// Job
// ---------------------------------------------------------------------------------------------

/// A Job run for each measurement: completion is success, failure is failure.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobMetric {
    /// Labels and annotations for the Job. Other metadata fields are dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<PodTemplateMetadata>,
    /// The Job to run. Numeric resource quantities and unknown resource names in its pod
    /// template are kept as written.
    #[schemars(schema_with = "job_spec_schema")]
    pub spec: JobSpec,
}

// ---------------------------------------------------------------------------------------------
// Datadog, New Relic, Wavefront, Graphite, InfluxDB, SkyWalking
// ---------------------------------------------------------------------------------------------

/// A Datadog query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatadogMetric {
    /// Time window the query aggregates over, e.g. `5m` (not the measurement interval). Unset
    /// means `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The query (API v1, or a single query with v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Named queries for `formula` (API v2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<BTreeMap<String, String>>,
    /// Formula combining the named `queries` (API v2 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub formula: Option<String>,
    /// Datadog API version: `v1` or `v2`. Unset means `v1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Aggregation for metric queries (API v2): `avg`, `min`, `max`, `sum`, `last`,
    /// `percentile`, `mean`, `l2norm` or `area`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregator: Option<String>,
    /// The Secret holding the Datadog address and keys. Unset uses the Secret `datadog` in the
    /// controller's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// Timeout of each request to the Datadog API, e.g. `30s`. Unset means `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
}

/// A Secret with provider credentials.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Name of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// True: the Secret is in the namespace of the run; false or unset: in the controller's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced: Option<bool>,
}

/// A New Relic NRQL query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewRelicMetric {
    /// Name of the Secret with the New Relic account settings. Unset means `newrelic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The NRQL query.
    pub query: String,
    /// Query timeout in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// A Wavefront query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WavefrontMetric {
    /// Address of the Wavefront server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Wavefront query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// A Graphite query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GraphiteMetric {
    /// Base URL of the Graphite server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The Graphite target expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// An InfluxDB Flux query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InfluxdbMetric {
    /// Name of the Secret with the InfluxDB address, token and organisation. Unset means
    /// `influxdb`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The Flux query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// An Apache SkyWalking GraphQL query.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SkyWalkingMetric {
    /// Base URL of the SkyWalking OAP server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The GraphQL query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Time window the query covers, e.g. `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// CloudWatch
// ---------------------------------------------------------------------------------------------

/// An Amazon CloudWatch `GetMetricData` request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetric {
    /// Time window the queries cover, ending now, e.g. `5m`. Unset means `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// The metric data queries.
    pub metric_data_queries: Vec<CloudWatchMetricDataQuery>,
}

/// One CloudWatch metric data query: a metric or an expression over other queries.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricDataQuery {
    /// Identifier of the query, referenced by expressions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Math expression over other queries. Set this or `metricStat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Human-readable label of the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The metric and statistic to fetch. Set this or `expression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_stat: Option<CloudWatchMetricStat>,
    /// Granularity in seconds of the returned data points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<IntOrString>,
    /// Whether this query's result is returned (false for intermediate queries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_data: Option<bool>,
}

/// A CloudWatch metric with the statistic to compute.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStat {
    /// The metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<CloudWatchMetricStatMetric>,
    /// Granularity in seconds of the returned data points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<IntOrString>,
    /// Statistic, e.g. `Average`, `Sum`, `p99`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    /// Unit to convert the data points to, e.g. `Seconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Identity of a CloudWatch metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStatMetric {
    /// Dimensions selecting the metric's time series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<Vec<CloudWatchMetricStatMetricDimension>>,
    /// Name of the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// Namespace of the metric, e.g. `AWS/ApplicationELB`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A CloudWatch dimension.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloudWatchMetricStatMetricDimension {
    /// Dimension name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Dimension value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Kayenta
// ---------------------------------------------------------------------------------------------

/// A Kayenta canary judgement comparing control and experiment scopes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KayentaMetric {
    /// Base URL of the Kayenta server.
    pub address: String,
    /// Application name passed to Kayenta.
    pub application: String,
    /// Name of the Kayenta canary configuration.
    pub canary_config_name: String,
    /// Kayenta account for the metrics store.
    pub metrics_account_name: String,
    /// Kayenta account for the canary configuration store.
    pub configuration_account_name: String,
    /// Kayenta account for the results store.
    pub storage_account_name: String,
    /// Score thresholds.
    pub threshold: KayentaThreshold,
    /// The scopes to compare.
    pub scopes: Vec<KayentaScope>,
    /// Ask Kayenta for a lookback analysis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookback: Option<bool>,
}

/// Kayenta score thresholds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KayentaThreshold {
    /// Minimum score for success.
    pub pass: i64,
    /// Minimum score for an inconclusive result; below it the measurement fails.
    pub marginal: i64,
}

/// A named pair of scopes for Kayenta.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KayentaScope {
    /// Name of the scope pair.
    pub name: String,
    /// The baseline scope.
    pub control_scope: ScopeDetail,
    /// The canary scope.
    pub experiment_scope: ScopeDetail,
}

/// One Kayenta scope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScopeDetail {
    /// Scope expression, e.g. a pod-template-hash selector.
    pub scope: String,
    /// Region of the scope.
    pub region: String,
    /// Step in seconds.
    pub step: i64,
    /// Start time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

// =============================================================================================
// AnalysisRun status
// =============================================================================================

/// Observed state of an AnalysisRun, written by the controller with ordinary updates (the CRD
/// has no status subresource).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    /// `Pending`, `Running`, `Successful`, `Failed`, `Error` or `Inconclusive`; the last four
    /// are final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Why the run is in its phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Progress and recent measurements of each metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_results: Option<Vec<MetricResult>>,
    /// When the run started; `initialDelay` counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// Outcome counts of the metrics that decide the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_summary: Option<RunSummary>,
    /// Outcome counts of the dry-run metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_summary: Option<RunSummary>,
    /// When the run reached a final phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Time>,
}

/// Numbers of metrics by outcome.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Number of metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Metrics that succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<i32>,
    /// Metrics that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Metrics that were inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<i32>,
    /// Metrics that errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
}

/// Progress of one metric: counters and its most recent measurements.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    /// Name of the metric.
    pub name: String,
    /// Phase of the metric, from its measurements and limits.
    pub phase: String,
    /// The most recent measurements, oldest first (see `measurementRetention`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurements: Option<Vec<Measurement>>,
    /// Details, e.g. the last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Measurements taken without error: successful + failed + inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Successful measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub successful: Option<i32>,
    /// Failed measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<i32>,
    /// Inconclusive measurements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<i32>,
    /// Measurements that errored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<i32>,
    /// Errors in a row; reset by any measurement without error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error: Option<i32>,
    /// True when the metric runs in dry-run mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// Provider state kept across measurements, e.g. the resolved query.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Successes in a row; reset by any other outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success: Option<i32>,
}

/// One measurement of a metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    /// `Running`, `Successful`, `Failed`, `Inconclusive` or `Error`.
    pub phase: String,
    /// Details, e.g. an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the measurement started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When the value was obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// The measured value as text, e.g. `[0.99]` for a Prometheus vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Provider details, e.g. the Job name or the Kayenta run ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// When to check again on a measurement still in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<Time>,
}

// =============================================================================================
// Tests
// =============================================================================================

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An Argo AnalysisTemplate with a Prometheus metric using arguments (one from a Secret) and
    /// a templated count, plus the other spec lists.
    const PROMETHEUS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: success-rate
  namespace: shop
spec:
  args:
  - name: service-name
  - name: count
    value: "5"
  - name: api-token
    valueFrom:
      secretKeyRef:
        name: prometheus-token
        key: token
  - name: env
    valueFrom:
      fieldRef:
        fieldPath: metadata.labels['env']
  metrics:
  - name: success-rate
    interval: 1m
    initialDelay: 30s
    count: "{{args.count}}"
    successCondition: result[0] >= 0.95
    failureCondition: result[0] < 0.5
    failureLimit: 3
    inconclusiveLimit: "{{args.count}}"
    consecutiveErrorLimit: 2
    consecutiveSuccessLimit: 0
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        timeout: 20
        insecure: true
        headers:
        - key: Authorization
          value: "Bearer {{args.api-token}}"
        authentication:
          sigv4:
            region: eu-west-1
            profile: default
            roleArn: arn:aws:iam::123456789012:role/amp
          oauth2:
            tokenUrl: https://auth.example.com/token
            clientId: rollouts
            clientSecret: "{{args.api-token}}"
            scopes: [metrics.read]
          basicAuth:
            username: grafana
            password: "{{args.api-token}}"
        rangeQuery:
          start: now() - duration("1h")
          end: now()
          step: 1m
        query: |
          sum(irate(istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}",response_code!~"5.*"}[5m])) /
          sum(irate(istio_requests_total{reporter="source",destination_service=~"{{args.service-name}}"}[5m]))
  dryRun:
  - metricName: ".*"
  measurementRetention:
  - metricName: success-rate
    limit: 20
  templates:
  - templateName: shared-checks
    clusterScope: true
"#;

    /// A web metric with a JSON body and headers, and the remaining providers.
    const WEB_AND_OTHERS: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: web
spec:
  metrics:
  - name: webmetric
    successCondition: result.ok == true && result.latency < 200
    provider:
      web:
        method: POST
        url: "http://checks.shop.svc/api/v1/verify?service={{args.service}}"
        timeoutSeconds: 20
        jsonPath: "{$.data}"
        insecure: false
        headers:
        - key: Authorization
          value: Bearer token
        - key: Content-Type
          value: application/json
        jsonBody:
          service: "{{args.service}}"
          thresholds: {latency: 200, errors: 0.01}
          tags: [canary, eu]
          dryRun: false
          nested: {empty: {}, none: null}
  - name: plain-body
    provider:
      web:
        method: PUT
        url: http://checks.shop.svc/put
        body: '{"raw": true}'
        authentication:
          basicAuth: {username: u, password: p}
  - name: datadog
    interval: 5m
    successCondition: default(result, 0) < 0.05
    provider:
      datadog:
        apiVersion: v2
        interval: 10m
        queries:
          a: sum:requests.error.count{service:shop}
          b: sum:requests.count{service:shop}
        formula: a / b
        aggregator: avg
        requestTimeout: 30s
        secretRef: {name: dd-creds, namespaced: true}
  - name: newrelic
    provider:
      newRelic:
        profile: nr
        timeout: 30
        query: SELECT percentage(count(*), WHERE httpResponseCode != 500) FROM Transaction
  - name: wavefront
    provider:
      wavefront: {address: example.wavefront.com, query: ts(requests)}
  - name: graphite
    provider:
      graphite: {address: http://graphite:8080, query: target=summarize(x)}
  - name: influx
    provider:
      influxdb: {profile: influx, query: 'from(bucket: "app")'}
  - name: skywalking
    provider:
      skywalking: {address: http://oap:12800, query: "query { x }", interval: 3m}
  - name: cloudwatch
    provider:
      cloudWatch:
        interval: 10m
        metricDataQueries:
        - id: rate
          expression: errors / requests
          label: error rate
          returnData: true
        - id: errors
          returnData: false
          period: 300
          metricStat:
            period: "300"
            stat: Sum
            unit: Count
            metric:
              namespace: AWS/ApplicationELB
              metricName: HTTPCode_Target_5XX_Count
              dimensions:
              - {name: LoadBalancer, value: app/shop/123}
  - name: kayenta
    provider:
      kayenta:
        address: http://kayenta:8090
        application: shop
        canaryConfigName: shop-config
        metricsAccountName: prom
        configurationAccountName: config
        storageAccountName: storage
        lookback: true
        threshold: {pass: 90, marginal: 75}
        scopes:
        - name: default
          controlScope: {scope: app=shop-stable, region: eu, step: 60, start: "2024-05-01T10:00:00Z", end: "2024-05-01T11:00:00Z"}
          experimentScope: {scope: app=shop-canary, region: eu, step: 60}
  - name: plugin
    provider:
      plugin:
        argoproj-labs/sample-prometheus:
          address: http://prometheus:9090
          query: up
          nested: {list: [1, 2.5, true, null]}
"#;

    /// A Job metric.
    const JOB: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: smoke
spec:
  args:
  - name: url
  metrics:
  - name: smoke
    failureLimit: 0
    provider:
      job:
        metadata:
          labels: {team: shop}
          annotations: {note: smoke}
        spec:
          backoffLimit: 1
          activeDeadlineSeconds: 300
          ttlSecondsAfterFinished: 600
          template:
            metadata:
              labels: {job: smoke}
            spec:
              restartPolicy: Never
              containers:
              - name: smoke
                image: curlimages/curl:8.7.1
                args: [-fsS, "{{args.url}}"]
                env:
                - name: TOKEN
                  valueFrom:
                    secretKeyRef: {name: smoke, key: token}
                resources:
                  requests: {cpu: 100m, memory: 64Mi}
                  limits: {cpu: "1"}
"#;

    const CLUSTER: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ClusterAnalysisTemplate
metadata:
  name: shared-checks
spec:
  args:
  - name: service
  metrics:
  - name: error-rate
    interval: 30s
    count: 10
    failureLimit: "{{args.failures}}"
    successCondition: result < 0.01
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum(rate(errors{service="{{args.service}}"}[1m]))
"#;

    /// An AnalysisRun as Argo stores it while running, with measurements of every phase.
    const RUN: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: shop-7c9d8e5f6-2-1
  namespace: shop
  labels:
    rollout-type: Step
    step-index: "2"
    rollouts-pod-template-hash: 7c9d8e5f6
spec:
  terminate: false
  args:
  - name: service-name
    value: shop-canary
  - name: api-token
    valueFrom:
      secretKeyRef: {name: prometheus-token, key: token}
  dryRun:
  - metricName: latency
  measurementRetention:
  - metricName: ".*"
    limit: 5
  ttlStrategy:
    secondsAfterCompletion: 3600
    secondsAfterFailure: 7200
    secondsAfterSuccess: 600
  metrics:
  - name: success-rate
    interval: 1m
    count: 3
    successCondition: result[0] >= 0.95
    provider:
      prometheus:
        address: http://prometheus.monitoring:9090
        query: sum(rate(ok{service="{{args.service-name}}"}[1m]))
  - name: latency
    provider:
      web:
        url: http://checks/latency
        jsonPath: "{$.p99}"
status:
  phase: Running
  message: ""
  startedAt: "2024-05-01T10:00:00Z"
  runSummary:
    count: 2
    successful: 1
  dryRunSummary:
    count: 1
    inconclusive: 1
  metricResults:
  - name: success-rate
    phase: Running
    count: 2
    successful: 1
    failed: 1
    error: 1
    consecutiveError: 0
    consecutiveSuccess: 1
    metadata:
      ResolvedPrometheusQuery: sum(rate(ok{service="shop-canary"}[1m]))
    measurements:
    - phase: Successful
      startedAt: "2024-05-01T10:00:00Z"
      finishedAt: "2024-05-01T10:00:01Z"
      value: "[0.99]"
    - phase: Failed
      startedAt: "2024-05-01T10:01:00Z"
      finishedAt: "2024-05-01T10:01:01Z"
      value: "[0.42]"
    - phase: Error
      message: "Post \"http://prometheus.monitoring:9090/api/v1/query\": dial tcp: connection refused"
      startedAt: "2024-05-01T10:02:00Z"
      finishedAt: "2024-05-01T10:02:00Z"
    - phase: Running
      startedAt: "2024-05-01T10:03:00Z"
      resumeAt: "2024-05-01T10:03:10Z"
      metadata: {job-name: smoke-1, job-namespace: shop}
  - name: latency
    phase: Inconclusive
    dryRun: true
    message: no data
    count: 1
    inconclusive: 1
    measurements:
    - phase: Inconclusive
      value: "null"
      startedAt: "2024-05-01T10:00:00Z"
      finishedAt: "2024-05-01T10:00:02Z"
"#;

    /// A completed run as Argo's Go code writes it: zero counters and empty strings present.
    const RUN_COMPLETED: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: done
spec:
  terminate: true
  metrics:
  - name: m
    provider:
      job:
        spec:
          template:
            spec:
              restartPolicy: Never
              containers: [{name: c, image: busybox}]
status:
  phase: Successful
  message: Run Terminated
  startedAt: "2024-05-01T10:00:00Z"
  completedAt: "2024-05-01T10:05:00Z"
  runSummary: {count: 1, successful: 1, failed: 0, inconclusive: 0, error: 0}
  metricResults:
  - name: m
    phase: Successful
    count: 0
    dryRun: false
    measurements: []
"#;

    fn assert_round_trip<K>(yaml: &str) -> K
    where
        K: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let typed: K = serde_saphyr::from_str(yaml).expect("decode");
        let raw: Value = serde_saphyr::from_str(yaml).expect("decode JSON");
        let back = serde_json::to_value(&typed).unwrap();
        assert_eq!(back, raw, "re-encoded object differs from the input");
        let again: K = serde_json::from_value(back).unwrap();
        assert_eq!(again, typed);
        typed
    }

    #[test]
    fn prometheus_template_round_trips() {
        let at: AnalysisTemplate = assert_round_trip(PROMETHEUS);
        let m = &at.spec.metrics[0];
        assert_eq!(m.count, Some(IntOrString::String("{{args.count}}".into())));
        assert_eq!(m.failure_limit, Some(IntOrString::Int(3)));
        assert_eq!(m.success_condition.as_deref(), Some("result[0] >= 0.95"));
        let prom = m.provider.prometheus.as_ref().unwrap();
        assert_eq!(prom.timeout, Some(20));
        assert!(
            prom.query
                .as_deref()
                .unwrap()
                .contains("{{args.service-name}}")
        );
        let auth = prom.authentication.as_ref().unwrap();
        let basic: &BasicAuth = auth.basic_auth.as_ref().unwrap();
        assert_eq!(basic.username.as_deref(), Some("grafana"));
        let range: &RangeQuery = prom.range_query.as_ref().unwrap();
        assert_eq!(range.step.as_deref(), Some("1m"));
        let args = at.spec.args.as_ref().unwrap();
        assert_eq!(args[0].value, None);
        let secret = args[2]
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.key.as_str()),
            ("prometheus-token", "token")
        );
        assert_eq!(
            args[3]
                .value_from
                .as_ref()
                .unwrap()
                .field_ref
                .as_ref()
                .unwrap()
                .field_path,
            "metadata.labels['env']"
        );
        assert_eq!(at.spec.dry_run.as_ref().unwrap()[0].metric_name, ".*");
        assert_eq!(at.spec.measurement_retention.as_ref().unwrap()[0].limit, 20);
        assert_eq!(
            at.spec.templates.as_ref().unwrap()[0].cluster_scope,
            Some(true)
        );
    }

    #[test]
    fn web_and_other_providers_round_trip() {
        let at: AnalysisTemplate = assert_round_trip(WEB_AND_OTHERS);
        let web = at.spec.metrics[0].provider.web.as_ref().unwrap();
        assert_eq!(web.method.as_deref(), Some("POST"));
        assert_eq!(web.headers.as_ref().unwrap()[1].value, "application/json");
        assert_eq!(
            web.json_body.as_ref().unwrap()["thresholds"]["latency"],
            json!(200)
        );
        assert_eq!(web.json_path.as_deref(), Some("{$.data}"));
        let kinds: Vec<bool> = at
            .spec
            .metrics
            .iter()
            .map(|m| {
                let p = &m.provider;
                [
                    p.prometheus.is_some(),
                    p.web.is_some(),
                    p.datadog.is_some(),
                    p.new_relic.is_some(),
                    p.wavefront.is_some(),
                    p.graphite.is_some(),
                    p.influxdb.is_some(),
                    p.skywalking.is_some(),
                    p.cloud_watch.is_some(),
                    p.kayenta.is_some(),
                    p.plugin.is_some(),
                    p.job.is_some(),
                ]
                .iter()
                .filter(|&&b| b)
                .count()
                    == 1
            })
            .collect();
        assert!(
            kinds.iter().all(|&k| k),
            "one provider per metric: {kinds:?}"
        );
        let cw = at.spec.metrics[8].provider.cloud_watch.as_ref().unwrap();
        let stat = cw.metric_data_queries[1].metric_stat.as_ref().unwrap();
        assert_eq!(stat.period, Some(IntOrString::String("300".into())));
        assert_eq!(
            cw.metric_data_queries[1].period,
            Some(IntOrString::Int(300))
        );
        let kayenta = at.spec.metrics[9].provider.kayenta.as_ref().unwrap();
        assert_eq!(kayenta.threshold.marginal, 75);
        assert!(
            at.spec.metrics[10]
                .provider
                .plugin
                .as_ref()
                .unwrap()
                .contains_key("argoproj-labs/sample-prometheus")
        );
    }

    #[test]
    fn job_template_round_trips() {
        let at: AnalysisTemplate = assert_round_trip(JOB);
        let job = at.spec.metrics[0].provider.job.as_ref().unwrap();
        assert_eq!(
            job.metadata.as_ref().unwrap().labels.as_ref().unwrap()["team"],
            "shop"
        );
        assert_eq!(job.spec.backoff_limit, Some(1));
        let pod = job.spec.template.spec.as_ref().unwrap();
        let res = pod.containers[0].resources.as_ref().unwrap();
        assert_eq!(res.requests.as_ref().unwrap()["cpu"].0, "100m");

        // numeric quantities, which Argo's CRD lets through, decode (and re-encode as strings,
        // as Argo's Go types do)
        let numeric = JOB.replace("{cpu: 100m, memory: 64Mi}", "{cpu: 1, memory: 0.5}");
        let at: AnalysisTemplate = serde_saphyr::from_str(&numeric).unwrap();
        let job = at.spec.metrics[0].provider.job.as_ref().unwrap();
        let pod = job.spec.template.spec.as_ref().unwrap();
        let requests = pod.containers[0]
            .resources
            .as_ref()
            .unwrap()
            .requests
            .clone()
            .unwrap();
        assert_eq!(
            (requests["cpu"].0.as_str(), requests["memory"].0.as_str()),
            ("1", "0.5")
        );
    }

    #[test]
    fn cluster_template_round_trips_and_reads_like_a_template() {
        let cat: ClusterAnalysisTemplate = assert_round_trip(CLUSTER);
        // the spec dereferences to the shared AnalysisTemplateSpec
        let spec: &AnalysisTemplateSpec = &cat.spec;
        assert_eq!(spec.metrics[0].count, Some(IntOrString::Int(10)));
        assert_eq!(
            cat.spec.metrics[0].failure_limit,
            Some(IntOrString::String("{{args.failures}}".into()))
        );
    }

    #[test]
    fn run_with_full_status_round_trips() {
        let ar: AnalysisRun = assert_round_trip(RUN);
        assert_eq!(ar.spec.terminate, Some(false));
        assert_eq!(
            ar.spec.ttl_strategy.as_ref().unwrap().seconds_after_success,
            Some(600)
        );
        let status = ar.status.as_ref().unwrap();
        assert_eq!(
            status.phase.as_deref(),
            Some(crate::api::consts::ANALYSIS_PHASE_RUNNING)
        );
        assert_eq!(status.message.as_deref(), Some(""));
        let results = status.metric_results.as_ref().unwrap();
        let measurements = results[0].measurements.as_ref().unwrap();
        assert_eq!(measurements.len(), 4);
        assert_eq!(measurements[0].value.as_deref(), Some("[0.99]"));
        assert!(measurements[3].resume_at.is_some());
        assert_eq!(results[0].consecutive_success, Some(1));
        assert_eq!(results[1].dry_run, Some(true));
        assert_eq!(
            status.dry_run_summary.as_ref().unwrap().inconclusive,
            Some(1)
        );

        let done: AnalysisRun = assert_round_trip(RUN_COMPLETED);
        let status = done.status.unwrap();
        assert_eq!(status.run_summary.unwrap().failed, Some(0));
        assert!(status.completed_at.is_some());
    }

    #[test]
    fn sparse_objects_decode() {
        // an AnalysisTemplate that only combines other templates, and a status Argo has not
        // filled yet
        let at: AnalysisTemplate = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
            "metadata": {"name": "combined"},
            "spec": {"templates": [{"templateName": "a"}, {"templateName": "b"}]}
        }))
        .unwrap();
        assert!(at.spec.metrics.is_empty());
        assert_eq!(
            serde_json::to_value(&at.spec).unwrap(),
            json!({"templates": [{"templateName": "a"}, {"templateName": "b"}]})
        );
        let status: AnalysisRunStatus =
            serde_json::from_value(json!({"phase": "SomethingNew"})).unwrap();
        assert_eq!(status.phase.as_deref(), Some("SomethingNew"));
    }

    #[test]
    fn crd_identity_and_columns() {
        let cases = [
            (
                AnalysisTemplate::crd(),
                "analysistemplates.argoproj.io",
                "Namespaced",
                "at",
            ),
            (
                ClusterAnalysisTemplate::crd(),
                "clusteranalysistemplates.argoproj.io",
                "Cluster",
                "cat",
            ),
            (
                AnalysisRun::crd(),
                "analysisruns.argoproj.io",
                "Namespaced",
                "ar",
            ),
        ];
        for (crd, name, scope, short) in cases {
            assert_eq!(crd.metadata.name.as_deref(), Some(name));
            assert_eq!(crd.spec.scope, scope, "{name}");
            assert_eq!(crd.spec.names.short_names, Some(vec![short.to_string()]));
            let v = &crd.spec.versions[0];
            assert_eq!(v.name, "v1alpha1");
            assert!(v.subresources.is_none(), "{name} has subresources");
            let cols: Vec<_> = v
                .additional_printer_columns
                .as_ref()
                .unwrap()
                .iter()
                .map(|c| (c.name.as_str(), c.json_path.as_str()))
                .collect();
            let expected: &[(&str, &str)] = if name.starts_with("analysisruns") {
                &[
                    ("Status", ".status.phase"),
                    ("Age", ".metadata.creationTimestamp"),
                ]
            } else {
                &[("Age", ".metadata.creationTimestamp")]
            };
            assert_eq!(cols, expected, "{name}");
        }
    }

    fn spec_schema(crd: &CustomResourceDefinition) -> Value {
        let schema = crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .clone();
        serde_json::to_value(schema).unwrap()["properties"]["spec"].clone()
    }

    #[test]
    fn schema_follows_argo() {
        for crd in [
            AnalysisTemplate::crd(),
            ClusterAnalysisTemplate::crd(),
            AnalysisRun::crd(),
        ] {
            let spec = spec_schema(&crd);
            let name = crd.metadata.name.clone().unwrap();
            let metric = &spec["properties"]["metrics"]["items"];
            assert_eq!(metric["required"], json!(["name", "provider"]), "{name}");
            for limit in [
                "count",
                "failureLimit",
                "inconclusiveLimit",
                "consecutiveErrorLimit",
                "consecutiveSuccessLimit",
            ] {
                assert_eq!(
                    metric["properties"][limit]["x-kubernetes-int-or-string"],
                    json!(true),
                    "{name} {limit}"
                );
            }
            let provider = &metric["properties"]["provider"]["properties"];
            assert_eq!(
                provider["plugin"]["x-kubernetes-preserve-unknown-fields"],
                json!(true)
            );
            let web = &provider["web"];
            assert_eq!(web["required"], json!(["url"]));
            assert_eq!(web["properties"]["jsonBody"]["type"], "object");
            assert_eq!(
                web["properties"]["jsonBody"]["x-kubernetes-preserve-unknown-fields"],
                json!(true)
            );
            // the Job's pod template gets the same treatment as a Rollout's
            let job = &provider["job"];
            assert_eq!(job["required"], json!(["spec"]));
            let job_spec = &job["properties"]["spec"];
            assert_eq!(job_spec["required"], json!(["template"]));
            let template = &job_spec["properties"]["template"];
            assert!(template["description"].is_string());
            let meta = template["properties"]["metadata"]["properties"]
                .as_object()
                .unwrap();
            assert_eq!(meta.len(), 2);
            let container = &template["properties"]["spec"]["properties"]["containers"]["items"];
            for key in ["limits", "requests"] {
                let q = &container["properties"]["resources"]["properties"][key];
                assert_eq!(
                    q["x-kubernetes-preserve-unknown-fields"],
                    json!(true),
                    "{name} {key}"
                );
                assert!(q.get("additionalProperties").is_none());
            }
            let env_from = &container["properties"]["envFrom"]["items"]["properties"];
            assert!(env_from["configMapRef"].get("required").is_none());
            assert!(spec["properties"]["metrics"].get("default").is_none());
        }
        let run = spec_schema(&AnalysisRun::crd());
        assert_eq!(run["required"], json!(["metrics"]));
        let template = spec_schema(&AnalysisTemplate::crd());
        assert!(template.get("required").is_none());
    }
}
