//! The controller's flags. Sluice's own names, with Argo Rollouts' names
//! (`cmd/rollouts-controller/main.go`) as aliases so that Argo's install manifests and Helm chart
//! run this binary unchanged; the kubectl connection flags Argo binds through client-go; and the
//! Argo flags that have no effect here, accepted with one warning line each (never an error).
//!
//! Argo parses with pflag: `--flag=value` and `--flag value`, bools as `--flag`, `--flag=false`.
//! Clap takes the same forms. pflag has no single-dash long flags, and neither do Argo's manifests.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Parser};
use kube::Config;
use kube::config::KubeConfigOptions;
use sluice::controller::routers::smi::SmiVersion;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Plain,
    Json,
}

/// Progressive-delivery controller for Argo Rollouts-compatible Rollouts.
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
pub struct Args {
    #[command(flatten)]
    pub kube: KubeFlags,
    /// Watch only this namespace (namespaced install). Also the namespace `--namespaced` uses.
    #[arg(long, short = 'n', env = "SLUICE_NAMESPACE")]
    pub namespace: Option<String>,
    /// Watch only the controller's own namespace (Argo's namespaced install): `--namespace`,
    /// else $POD_NAMESPACE, else the kubeconfig context's or the service account's namespace.
    #[arg(long, env = "SLUICE_NAMESPACED", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub namespaced: bool,
    /// Only handle objects labelled argo-rollouts.argoproj.io/controller-instance-id=<id>.
    #[arg(long, env = "SLUICE_INSTANCE_ID", default_value = "")]
    pub instance_id: String,
    /// Port for /metrics (Argo: `--metricsPort`, deprecated `--metricsport`).
    #[arg(
        long,
        visible_alias = "metricsPort",
        alias = "metricsport",
        env = "SLUICE_METRICS_PORT",
        default_value_t = 8090
    )]
    pub metrics_port: u16,
    /// Port for /healthz and /readyz (Argo: `--healthzPort`).
    #[arg(
        long,
        visible_alias = "healthzPort",
        env = "SLUICE_HEALTHZ_PORT",
        default_value_t = 8080
    )]
    pub healthz_port: u16,
    /// Log format: `plain` (Argo's `text`) or `json` (Argo: `--logformat`).
    #[arg(
        long,
        visible_alias = "logformat",
        env = "SLUICE_LOG_FORMAT",
        default_value = "plain"
    )]
    pub log_format: String,
    /// Log level (error, warn, info, debug, trace; Argo's warning, fatal and panic too) or a full
    /// filter such as `info,kube=debug`; RUST_LOG, when set, wins (Argo: `--loglevel`).
    #[arg(
        long,
        visible_alias = "loglevel",
        env = "SLUICE_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
    /// Client-side write rate limit (queries per second).
    #[arg(long, env = "SLUICE_QPS", default_value_t = 40.0)]
    pub qps: f64,
    /// Client-side write burst.
    #[arg(long, env = "SLUICE_BURST", default_value_t = 80)]
    pub burst: u32,
    /// Rollouts reconciled concurrently.
    #[arg(long, env = "SLUICE_ROLLOUT_THREADS", default_value_t = 10)]
    pub rollout_threads: u16,
    /// AnalysisRuns reconciled concurrently.
    #[arg(long, env = "SLUICE_ANALYSIS_THREADS", default_value_t = 10)]
    pub analysis_threads: u16,
    /// Reconcile every Rollout at least this often, in seconds.
    #[arg(long, env = "SLUICE_ROLLOUT_RESYNC", default_value_t = 900)]
    pub rollout_resync: u64,
    /// Run only these controllers; `analysis` is the one Argo supports (the AnalysisRun
    /// controller without the Rollout controller). Default: all.
    #[arg(long, env = "SLUICE_CONTROLLERS", value_delimiter = ',', action = ArgAction::Append)]
    pub controllers: Vec<String>,
    /// Elect a leader among replicas on a coordination.k8s.io Lease; only the leader reconciles.
    #[arg(long, env = "SLUICE_LEADER_ELECT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub leader_elect: bool,
    /// Namespace of the Lease; default: $POD_NAMESPACE, else the watched namespace, else "default".
    #[arg(long, env = "SLUICE_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// How long standbys wait, after last seeing the lease renewed, before taking over (e.g. 15s).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal (e.g. 10s).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,
    /// Interval between attempts to acquire or renew the lease (e.g. 2s).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,
    /// The `split.smi-spec.io` version of the TrafficSplits of SMI routing: v1alpha1, v1alpha2
    /// or v1alpha3.
    #[arg(
        long,
        env = "SLUICE_TRAFFIC_SPLIT_API_VERSION",
        default_value = "v1alpha1"
    )]
    pub traffic_split_api_version: SmiVersion,
    #[command(flatten)]
    pub ignored: Ignored,
}

/// Go-style durations as Argo's flags take them (`15s`, `1m30s`, `500ms`, `2h`); a bare number is
/// seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    sluice::time::parse_go_duration(s)
        .ok_or_else(|| format!("{s:?}: not a duration (e.g. 15s, 1m30s)"))
}

/// How to reach the API server: a kubeconfig (or in-cluster config) and client-go's override
/// flags, which Argo's controller binds as kubectl does.
#[derive(clap::Args, Debug, Default)]
pub struct KubeFlags {
    /// Path to a kubeconfig; in-cluster or $KUBECONFIG when unset.
    #[arg(long, env = "SLUICE_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, env = "SLUICE_CONTEXT")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, env = "SLUICE_CLUSTER")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, env = "SLUICE_USER")]
    pub user: Option<String>,
    /// The address and port of the Kubernetes API server.
    #[arg(long, short = 's', env = "SLUICE_SERVER")]
    pub server: Option<String>,
    /// Bearer token for authentication to the API server.
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Path to a client certificate file for TLS.
    #[arg(long, env = "SLUICE_CLIENT_CERTIFICATE")]
    pub client_certificate: Option<PathBuf>,
    /// Path to a client key file for TLS.
    #[arg(long, env = "SLUICE_CLIENT_KEY")]
    pub client_key: Option<PathBuf>,
    /// Path to a cert file for the certificate authority.
    #[arg(long, env = "SLUICE_CERTIFICATE_AUTHORITY")]
    pub certificate_authority: Option<PathBuf>,
    /// Do not check the server's certificate (insecure).
    #[arg(long, env = "SLUICE_INSECURE_SKIP_TLS_VERIFY", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub insecure_skip_tls_verify: bool,
    /// Name to validate the server certificate against, instead of the server's host name.
    #[arg(long, env = "SLUICE_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// User to impersonate.
    #[arg(long = "as", env = "SLUICE_AS")]
    pub as_user: Option<String>,
    /// Group to impersonate (repeatable).
    #[arg(long = "as-group", action = ArgAction::Append)]
    pub as_group: Vec<String>,
    /// UID to impersonate.
    #[arg(long = "as-uid", env = "SLUICE_AS_UID")]
    pub as_uid: Option<String>,
    /// Username for basic authentication.
    #[arg(long, env = "SLUICE_USERNAME")]
    pub username: Option<String>,
    /// Password for basic authentication.
    #[arg(long, env = "SLUICE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Opt out of response compression (this build never asks for it).
    #[arg(long, env = "SLUICE_DISABLE_COMPRESSION", default_value_t = false, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub disable_compression: bool,
    /// Accepted for Argo compatibility; not applied (see the warning it logs).
    #[arg(long, env = "SLUICE_REQUEST_TIMEOUT", hide = true)]
    pub request_timeout: Option<String>,
    /// Accepted for Argo compatibility; not applied (see the warning it logs).
    #[arg(long, env = "SLUICE_PROXY_URL", hide = true)]
    pub proxy_url: Option<String>,
}

impl KubeFlags {
    pub fn options(&self) -> KubeConfigOptions {
        KubeConfigOptions {
            context: self.context.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
        }
    }

    /// client-go's overrides, on top of the kubeconfig or in-cluster config.
    pub fn apply(&self, config: &mut Config) -> Result<(), String> {
        if let Some(s) = &self.server {
            config.cluster_url = s.parse().map_err(|e| format!("--server {s:?}: {e}"))?;
        }
        if let Some(ca) = &self.certificate_authority {
            config.root_cert_file = Some(ca.clone());
            config.root_cert = None;
        }
        if self.insecure_skip_tls_verify {
            config.accept_invalid_certs = true;
        }
        if let Some(n) = &self.tls_server_name {
            config.tls_server_name = Some(n.clone());
        }
        if self.disable_compression {
            config.disable_compression = true;
        }
        let auth = &mut config.auth_info;
        if let Some(t) = &self.token {
            auth.token = Some(t.clone().into());
            auth.token_file = None;
        }
        if let Some(c) = &self.client_certificate {
            auth.client_certificate = Some(c.to_string_lossy().into_owned());
            auth.client_certificate_data = None;
        }
        if let Some(k) = &self.client_key {
            auth.client_key = Some(k.to_string_lossy().into_owned());
            auth.client_key_data = None;
        }
        if let Some(u) = &self.as_user {
            auth.impersonate = Some(u.clone());
        }
        if !self.as_group.is_empty() {
            auth.impersonate_groups = Some(self.as_group.clone());
        }
        if let Some(u) = &self.as_uid {
            auth.impersonate_uid = Some(u.clone());
        }
        if let Some(u) = &self.username {
            auth.username = Some(u.clone());
        }
        if let Some(p) = &self.password {
            auth.password = Some(p.clone().into());
        }
        Ok(())
    }
}

/// Argo flags with nothing to act on in this version of Sluice. Each one given is accepted and
/// named in one warning line with the reason ([`Args::warnings`]).
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Accepted for Argo Rollouts compatibility, without effect")]
pub struct Ignored {
    /// Klog verbosity of client-go (Sluice has no klog).
    #[arg(long, env = "SLUICE_KLOGLEVEL")]
    pub kloglevel: Option<String>,
    /// Experiment controller workers (no Experiment controller yet).
    #[arg(long, env = "SLUICE_EXPERIMENT_THREADS")]
    pub experiment_threads: Option<String>,
    /// Service controller workers (Services are not managed yet).
    #[arg(long, env = "SLUICE_SERVICE_THREADS")]
    pub service_threads: Option<String>,
    /// Ingress controller workers (Ingresses are not managed yet).
    #[arg(long, env = "SLUICE_INGRESS_THREADS")]
    pub ingress_threads: Option<String>,
    /// Ephemeral metadata workers (no effect: pods are patched within the reconcile).
    #[arg(long, env = "SLUICE_EPHEMERAL_METADATA_THREADS")]
    pub ephemeral_metadata_threads: Option<String>,
    /// Ephemeral metadata pod update retries (no effect: the next reconcile retries).
    #[arg(long, env = "SLUICE_EPHEMERAL_METADATA_UPDATE_POD_RETRIES")]
    pub ephemeral_metadata_update_pod_retries: Option<String>,
    /// AWS TargetGroupBinding API version (no ALB support yet).
    #[arg(long, env = "SLUICE_AWS_TARGET_GROUP_BINDING_API_VERSION")]
    pub aws_target_group_binding_api_version: Option<String>,
    /// ALB tag key for the resource id (no ALB support yet).
    #[arg(long, env = "SLUICE_ALB_TAG_KEY_RESOURCE_ID")]
    pub alb_tag_key_resource_id: Option<String>,
    /// Istio API version (no Istio traffic routing yet).
    #[arg(long, env = "SLUICE_ISTIO_API_VERSION")]
    pub istio_api_version: Option<String>,
    /// Ambassador API version (no Ambassador traffic routing yet).
    #[arg(long, env = "SLUICE_AMBASSADOR_API_VERSION")]
    pub ambassador_api_version: Option<String>,
    /// Traefik API group (no Traefik traffic routing yet).
    #[arg(long, env = "SLUICE_TRAEFIK_API_GROUP")]
    pub traefik_api_group: Option<String>,
    /// Traefik API version (no Traefik traffic routing yet).
    #[arg(long, env = "SLUICE_TRAEFIK_API_VERSION")]
    pub traefik_api_version: Option<String>,
    /// Ingress API version (Ingresses are not managed yet).
    #[arg(long, env = "SLUICE_INGRESS_API_VERSION")]
    pub ingress_api_version: Option<String>,
    /// App Mesh CRD version (no App Mesh traffic routing yet).
    #[arg(long, env = "SLUICE_APPMESH_CRD_VERSION")]
    pub appmesh_crd_version: Option<String>,
    /// Ingress classes of the ALB controller, repeatable (no ALB support yet).
    #[arg(long, action = ArgAction::Append)]
    pub alb_ingress_classes: Vec<String>,
    /// Ingress classes of the NGINX controller, repeatable (no NGINX traffic routing yet).
    #[arg(long, action = ArgAction::Append)]
    pub nginx_ingress_classes: Vec<String>,
    /// Verify ALB target groups (no ALB support yet).
    #[arg(long, env = "SLUICE_AWS_VERIFY_TARGET_GROUP", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub aws_verify_target_group: Option<bool>,
    /// Deprecated name of --aws-verify-target-group (no ALB support yet).
    #[arg(long, env = "SLUICE_ALB_VERIFY_WEIGHT", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub alb_verify_weight: Option<bool>,
    /// Read notification config from the Rollout's namespace (no notifications yet).
    #[arg(long, env = "SLUICE_SELF_SERVICE_NOTIFICATION_ENABLED", num_args = 0..=1,
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub self_service_notification_enabled: Option<bool>,
    /// Go pprof server address (a Go runtime facility; there is no Rust equivalent here).
    #[arg(long, env = "SLUICE_ENABLE_PPROF_ADDRESS")]
    pub enable_pprof_address: Option<String>,
}

/// Why a flag has no effect, by the kind of feature it configures.
const NO_ROUTER: &str = "traffic routers are not implemented in this version of Sluice (such Rollouts walk as a basic canary and say so in their NotImplemented condition)";

impl Ignored {
    /// `(flag=value, why it has no effect)` for every ignored flag given.
    fn given(&self) -> Vec<(String, &'static str)> {
        let mut out = Vec::new();
        let mut one = |flag: &str, v: Option<String>, why: &'static str| {
            if let Some(v) = v {
                out.push((format!("--{flag}={v}"), why));
            }
        };
        let b = |v: Option<bool>| v.map(|b| b.to_string());
        let list = |v: &[String]| (!v.is_empty()).then(|| v.join(","));
        one(
            "kloglevel",
            self.kloglevel.clone(),
            "Sluice has no klog; use --loglevel (e.g. info,kube=debug) for the client's logs",
        );
        one(
            "experiment-threads",
            self.experiment_threads.clone(),
            "there is no Experiment controller in this version of Sluice",
        );
        one(
            "service-threads",
            self.service_threads.clone(),
            "Sluice runs no separate Service controller: Services are not managed in this version",
        );
        one(
            "ingress-threads",
            self.ingress_threads.clone(),
            "Sluice runs no separate Ingress controller: Ingresses are not managed in this version",
        );
        one(
            "ephemeral-metadata-threads",
            self.ephemeral_metadata_threads.clone(),
            "Sluice patches a ReplicaSet's pods in its reconcile, one at a time through the rate-limited writer",
        );
        one(
            "ephemeral-metadata-update-pod-retries",
            self.ephemeral_metadata_update_pod_retries.clone(),
            "a pod patch that conflicts is retried by the next reconcile, which lists the pods again",
        );
        one(
            "aws-target-group-binding-api-version",
            self.aws_target_group_binding_api_version.clone(),
            NO_ROUTER,
        );
        one(
            "alb-tag-key-resource-id",
            self.alb_tag_key_resource_id.clone(),
            NO_ROUTER,
        );
        one(
            "istio-api-version",
            self.istio_api_version.clone(),
            NO_ROUTER,
        );
        one(
            "ambassador-api-version",
            self.ambassador_api_version.clone(),
            NO_ROUTER,
        );
        one(
            "traefik-api-group",
            self.traefik_api_group.clone(),
            NO_ROUTER,
        );
        one(
            "traefik-api-version",
            self.traefik_api_version.clone(),
            NO_ROUTER,
        );
        one(
            "ingress-api-version",
            self.ingress_api_version.clone(),
            NO_ROUTER,
        );
        one(
            "appmesh-crd-version",
            self.appmesh_crd_version.clone(),
            NO_ROUTER,
        );
        one(
            "alb-ingress-classes",
            list(&self.alb_ingress_classes),
            NO_ROUTER,
        );
        one(
            "nginx-ingress-classes",
            list(&self.nginx_ingress_classes),
            NO_ROUTER,
        );
        one(
            "aws-verify-target-group",
            b(self.aws_verify_target_group),
            NO_ROUTER,
        );
        one("alb-verify-weight", b(self.alb_verify_weight), NO_ROUTER);
        one(
            "self-service-notification-enabled",
            b(self.self_service_notification_enabled),
            "notifications are not implemented in this version of Sluice",
        );
        one(
            "enable-pprof-address",
            self.enable_pprof_address.clone(),
            "pprof is Go's profiler; Sluice is not a Go program",
        );
        out
    }
}

impl Args {
    /// The log format, and a note when Argo's fallback for an unknown one applied.
    pub fn log_format(&self) -> (LogFormat, Option<String>) {
        match self.log_format.to_ascii_lowercase().as_str() {
            "json" => (LogFormat::Json, None),
            "plain" | "text" | "" => (LogFormat::Plain, None),
            other => (
                LogFormat::Plain,
                Some(format!("unknown log format {other:?}: using plain text")),
            ),
        }
    }

    /// The log level as an `EnvFilter` directive: logrus's names mapped onto tracing's.
    pub fn log_level(&self) -> String {
        match self.log_level.to_ascii_lowercase().as_str() {
            "warning" => "warn".into(),
            "fatal" | "panic" => "error".into(),
            l if l.contains(['=', ',']) => self.log_level.clone(),
            l => l.to_string(),
        }
    }

    /// Whether the Rollout controller runs (`--controllers=analysis` runs only the AnalysisRun
    /// controller), or why the list is refused (Argo refuses any other name too).
    pub fn rollout_controller(&self) -> Result<bool, String> {
        let mut rollouts = true;
        for c in self.controllers.iter().map(|c| c.trim()) {
            match c {
                "analysis" => rollouts = false,
                "" => {}
                other => return Err(format!("unsupported controller: {other}")),
            }
        }
        Ok(rollouts)
    }

    /// The namespace to watch, given the client config's default one: `--namespace`, or with
    /// `--namespaced` $POD_NAMESPACE, else the config's; all namespaces otherwise.
    pub fn watch_namespace(
        &self,
        pod_namespace: Option<String>,
        config_namespace: &str,
    ) -> Option<String> {
        if let Some(ns) = &self.namespace {
            return Some(ns.clone());
        }
        if !self.namespaced {
            return None;
        }
        Some(
            pod_namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| config_namespace.to_string()),
        )
    }

    /// One line per flag that is accepted but has no effect, naming it and saying why.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .ignored
            .given()
            .into_iter()
            .map(|(flag, why)| format!("flag {flag} has no effect: {why}"))
            .collect();
        if let Some(t) = &self.kube.request_timeout
            && !matches!(t.trim(), "" | "0")
        {
            out.push(format!(
                "flag --request-timeout={t} has no effect: a whole-request timeout would cut the controller's watches; connections time out after 30s"
            ));
        }
        if let Some(p) = &self.kube.proxy_url {
            out.push(format!(
                "flag --proxy-url={p} has no effect: this build of Sluice has no proxy support; the API server is reached directly"
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn parse(args: &[&str]) -> Args {
        let mut argv = vec!["sluice-controller"];
        argv.extend_from_slice(args);
        Args::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn flags_default_like_argo() {
        let a = parse(&[]);
        assert!(a.leader_elect);
        assert!(!a.namespaced);
        assert_eq!(a.leader_election_lease_duration, Duration::from_secs(15));
        assert_eq!(a.leader_election_renew_deadline, Duration::from_secs(10));
        assert_eq!(a.leader_election_retry_period, Duration::from_secs(2));
        assert_eq!((a.metrics_port, a.healthz_port), (8090, 8080));
        assert_eq!((a.rollout_threads, a.analysis_threads), (10, 10));
        assert_eq!((a.qps, a.burst), (40.0, 80));
        assert_eq!(a.log_format(), (LogFormat::Plain, None));
        assert_eq!(a.rollout_controller(), Ok(true));
        assert!(a.warnings().is_empty(), "{:?}", a.warnings());
        let a = parse(&["--rollout-threads=3", "--analysis-threads", "7"]);
        assert_eq!((a.rollout_threads, a.analysis_threads), (3, 7));
        let a = parse(&["--leader-elect=false", "--log-format", "json"]);
        assert!(!a.leader_elect);
        assert_eq!(a.log_format().0, LogFormat::Json);
        assert!(parse(&["--leader-elect"]).leader_elect);
    }

    /// The container `args:` of `manifests/install.yaml` in argoproj/argo-rollouts (HEAD
    /// 9f8d111d, 2026-08-17): the cluster-wide install passes none.
    pub const ARGO_INSTALL_ARGS: &[&str] = &[];
    /// The container `args:` of `manifests/namespace-install.yaml` in argoproj/argo-rollouts
    /// (same commit).
    pub const ARGO_NAMESPACE_INSTALL_ARGS: &[&str] = &["--namespaced"];
    /// What argo-helm's `charts/argo-rollouts/templates/controller/deployment.yaml` renders with
    /// its default values, a namespaced install and two replicas.
    const ARGO_HELM_ARGS: &[&str] = &[
        "--healthzPort=8080",
        "--metricsport=8090",
        "--loglevel=info",
        "--logformat=text",
        "--kloglevel=0",
        "--namespaced",
        "--leader-elect",
    ];

    #[test]
    fn argo_install_manifest_args() {
        let a = parse(ARGO_INSTALL_ARGS);
        assert_eq!(a.watch_namespace(Some("argo-rollouts".into()), "x"), None);
        assert!(a.leader_elect);
        assert!(a.warnings().is_empty());
    }

    #[test]
    fn argo_namespace_install_manifest_args() {
        let a = parse(ARGO_NAMESPACE_INSTALL_ARGS);
        assert!(a.namespaced);
        // In a pod: $POD_NAMESPACE if set, else the service account's namespace (the config's).
        assert_eq!(
            a.watch_namespace(Some("team-a".into()), "sa-ns").as_deref(),
            Some("team-a")
        );
        assert_eq!(a.watch_namespace(None, "sa-ns").as_deref(), Some("sa-ns"));
        assert_eq!(
            a.watch_namespace(Some(String::new()), "sa-ns").as_deref(),
            Some("sa-ns")
        );
        assert!(a.warnings().is_empty());
        let a = parse(&["--namespaced", "--namespace", "b"]);
        assert_eq!(
            a.watch_namespace(Some("a".into()), "c").as_deref(),
            Some("b")
        );
    }

    #[test]
    fn argo_helm_chart_args() {
        let a = parse(ARGO_HELM_ARGS);
        assert_eq!((a.metrics_port, a.healthz_port), (8090, 8080));
        assert_eq!(a.log_level(), "info");
        assert_eq!(a.log_format(), (LogFormat::Plain, None));
        assert!(a.namespaced && a.leader_elect);
        assert_eq!(
            a.warnings(),
            vec![
                "flag --kloglevel=0 has no effect: Sluice has no klog; use --loglevel (e.g. info,kube=debug) for the client's logs"
            ]
        );
    }

    /// Every flag of Argo's `cmd/rollouts-controller/main.go` (HEAD 9f8d111d) and of client-go's
    /// kubectl overrides it binds, in both of pflag's forms, parses; those without effect warn.
    #[test]
    fn every_argo_flag_is_accepted() {
        let valued: &[(&str, &str)] = &[
            ("rollout-resync", "600"),
            ("loglevel", "debug"),
            ("logformat", "json"),
            ("kloglevel", "4"),
            ("metricsPort", "9090"),
            ("metricsport", "9090"),
            ("healthzPort", "9091"),
            ("instance-id", "blue"),
            ("qps", "50.5"),
            ("burst", "100"),
            ("rollout-threads", "4"),
            ("experiment-threads", "4"),
            ("analysis-threads", "4"),
            ("service-threads", "4"),
            ("ingress-threads", "4"),
            ("ephemeral-metadata-threads", "4"),
            ("ephemeral-metadata-update-pod-retries", "4"),
            (
                "aws-target-group-binding-api-version",
                "elbv2.k8s.aws/v1beta1",
            ),
            ("alb-tag-key-resource-id", "ingress.k8s.aws/resource"),
            ("istio-api-version", "v1beta1"),
            ("ambassador-api-version", "getambassador.io/v2"),
            ("traffic-split-api-version", "v1alpha2"),
            ("traefik-api-group", "traefik.io"),
            ("traefik-api-version", "traefik.io/v1alpha1"),
            ("ingress-api-version", "networking.k8s.io/v1"),
            ("appmesh-crd-version", "v1beta2"),
            ("alb-ingress-classes", "alb"),
            ("nginx-ingress-classes", "nginx"),
            ("alb-verify-weight", "true"),
            ("aws-verify-target-group", "false"),
            ("leader-elect", "false"),
            ("leader-election-lease-duration", "20s"),
            ("leader-election-renew-deadline", "15s"),
            ("leader-election-retry-period", "3s"),
            ("self-service-notification-enabled", "true"),
            ("controllers", "analysis"),
            ("enable-pprof-address", "127.0.0.1:6060"),
            ("namespaced", "true"),
            // client-go's kubectl override flags.
            ("kubeconfig", "/tmp/kubeconfig"),
            ("context", "ctx"),
            ("cluster", "c"),
            ("user", "u"),
            ("namespace", "ns"),
            ("server", "https://127.0.0.1:6443"),
            ("token", "t"),
            ("client-certificate", "/tmp/c.crt"),
            ("client-key", "/tmp/c.key"),
            ("certificate-authority", "/tmp/ca.crt"),
            ("insecure-skip-tls-verify", "true"),
            ("tls-server-name", "kubernetes"),
            ("as", "alice"),
            ("as-group", "devs"),
            ("as-uid", "1"),
            ("username", "u"),
            ("password", "p"),
            ("request-timeout", "30s"),
            ("proxy-url", "http://proxy:3128"),
            ("disable-compression", "true"),
        ];
        for (flag, value) in valued {
            let eq = format!("--{flag}={value}");
            parse(&[eq.as_str()]);
            let name = format!("--{flag}");
            // pflag takes a bool's value only after `=`; `--flag value` is for the others.
            if !matches!(
                *flag,
                "alb-verify-weight"
                    | "aws-verify-target-group"
                    | "leader-elect"
                    | "self-service-notification-enabled"
                    | "namespaced"
                    | "insecure-skip-tls-verify"
                    | "disable-compression"
            ) {
                parse(&[name.as_str(), value]);
            } else {
                parse(&[name.as_str()]);
            }
        }
        for short in [["-n", "ns"], ["-s", "https://k:6443"]] {
            parse(&short);
        }
        // Argo's own `--version`.
        let e = Args::try_parse_from(["x", "--version"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::DisplayVersion);

        let all: Vec<String> = valued.iter().map(|(f, v)| format!("--{f}={v}")).collect();
        let a = Args::try_parse_from(std::iter::once("x".to_string()).chain(all)).unwrap();
        let warned: Vec<String> = a
            .warnings()
            .iter()
            .map(|w| {
                w.split('=')
                    .next()
                    .unwrap()
                    .trim_start_matches("flag ")
                    .to_string()
            })
            .collect();
        assert_eq!(
            warned,
            [
                "--kloglevel",
                "--experiment-threads",
                "--service-threads",
                "--ingress-threads",
                "--ephemeral-metadata-threads",
                "--ephemeral-metadata-update-pod-retries",
                "--aws-target-group-binding-api-version",
                "--alb-tag-key-resource-id",
                "--istio-api-version",
                "--ambassador-api-version",
                "--traefik-api-group",
                "--traefik-api-version",
                "--ingress-api-version",
                "--appmesh-crd-version",
                "--alb-ingress-classes",
                "--nginx-ingress-classes",
                "--aws-verify-target-group",
                "--alb-verify-weight",
                "--self-service-notification-enabled",
                "--enable-pprof-address",
                "--request-timeout",
                "--proxy-url",
            ]
        );
        assert!(a.warnings().iter().all(|w| w.contains(" has no effect: ")));
    }

    #[test]
    fn the_traffic_split_version_is_argos_flag_with_argos_default() {
        assert_eq!(parse(&[]).traffic_split_api_version, SmiVersion::V1alpha1);
        assert_eq!(
            parse(&["--traffic-split-api-version=v1alpha3"]).traffic_split_api_version,
            SmiVersion::V1alpha3
        );
        let e = Args::try_parse_from(["sluice-controller", "--traffic-split-api-version=v2"])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Unsupported TrafficSplit API version `v2`"),
            "{e}"
        );
    }

    #[test]
    fn argo_values_mean_the_same() {
        let a = parse(&[
            "--loglevel=warning",
            "--logformat=JSON",
            "--metricsPort=1",
            "--healthzPort=2",
        ]);
        assert_eq!(a.log_level(), "warn");
        assert_eq!(a.log_format().0, LogFormat::Json);
        assert_eq!((a.metrics_port, a.healthz_port), (1, 2));
        assert_eq!(parse(&["--loglevel=fatal"]).log_level(), "error");
        assert_eq!(
            parse(&["--log-level=info,kube=debug"]).log_level(),
            "info,kube=debug"
        );
        // Argo falls back to text for an unknown format, and says so.
        let (f, note) = parse(&["--logformat=fancy"]).log_format();
        assert_eq!(f, LogFormat::Plain);
        assert!(note.is_some());
        assert_eq!(
            parse(&["--logformat="]).log_format(),
            (LogFormat::Plain, None)
        );
        // Repeated and comma-separated like pflag's string slices and arrays.
        let a = parse(&["--alb-ingress-classes=a", "--alb-ingress-classes=b"]);
        assert_eq!(a.ignored.alb_ingress_classes, ["a", "b"]);
        assert_eq!(
            parse(&["--controllers=analysis"]).rollout_controller(),
            Ok(false)
        );
        assert_eq!(
            parse(&["--controllers=rollouts"]).rollout_controller(),
            Err("unsupported controller: rollouts".into())
        );
        assert!(!parse(&["--leader-elect=f"]).leader_elect);
        assert!(parse(&["--namespaced=1"]).namespaced);
    }

    #[test]
    fn kubectl_overrides_apply_to_the_config() {
        let a = parse(&[
            "--server=https://10.0.0.1:6443",
            "--token=secret",
            "--insecure-skip-tls-verify",
            "--tls-server-name=kubernetes",
            "--certificate-authority=/ca.crt",
            "--as=alice",
            "--as-group=a",
            "--as-group=b",
            "--as-uid=7",
            "--context=ctx",
        ]);
        let mut c = Config::new("https://127.0.0.1:1".parse().unwrap());
        a.kube.apply(&mut c).unwrap();
        assert_eq!(c.cluster_url.to_string(), "https://10.0.0.1:6443/");
        assert!(c.accept_invalid_certs);
        assert_eq!(c.tls_server_name.as_deref(), Some("kubernetes"));
        assert_eq!(c.root_cert_file, Some(PathBuf::from("/ca.crt")));
        assert!(c.auth_info.token.is_some());
        assert_eq!(c.auth_info.impersonate.as_deref(), Some("alice"));
        assert_eq!(
            c.auth_info.impersonate_groups,
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(c.auth_info.impersonate_uid.as_deref(), Some("7"));
        assert_eq!(a.kube.options().context.as_deref(), Some("ctx"));
    }
}
