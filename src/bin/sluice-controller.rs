//! sluice-controller: parse flags, set up logging, metrics and the client, campaign for the leader
//! lease, run the Rollout controller.
//!
//! Lease loss policy: the moment the elector reports the lease lost (renew deadline missed, or
//! another replica holds it), the process exits with status 1 and the Deployment restarts it as a
//! standby. Exiting is the one way to be sure no write that was already under way finishes after
//! another replica could have taken over. A clean shutdown (SIGTERM, SIGINT) instead drains the
//! in-flight reconciles, then releases the lease so the standby takes over at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::{ArgAction, Parser, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sluice::controller::leader::{self, Elector, Leadership, LeaseConfig};
use sluice::controller::server::{self, Serve};
use sluice::controller::{self, Settings};
use sluice::metrics::Metrics;
use tracing::{error, info};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// Also accepted as `text`, Argo's name for it.
    #[value(alias = "text")]
    Plain,
    Json,
}

/// Progressive-delivery controller for Argo Rollouts-compatible Rollouts.
#[derive(Parser, Debug)]
#[command(version, about, args_override_self = true)]
struct Args {
    /// Path to a kubeconfig; in-cluster or $KUBECONFIG when unset.
    #[arg(long, env = "SLUICE_KUBECONFIG")]
    kubeconfig: Option<std::path::PathBuf>,
    /// Watch only this namespace (namespaced install).
    #[arg(long, env = "SLUICE_NAMESPACE")]
    namespace: Option<String>,
    /// Only handle Rollouts labelled argo-rollouts.argoproj.io/controller-instance-id=<id>.
    #[arg(long, env = "SLUICE_INSTANCE_ID", default_value = "")]
    instance_id: String,
    /// Port for /metrics.
    #[arg(long, env = "SLUICE_METRICS_PORT", default_value_t = 8090)]
    metrics_port: u16,
    /// Port for /healthz and /readyz.
    #[arg(long, env = "SLUICE_HEALTHZ_PORT", default_value_t = 8080)]
    healthz_port: u16,
    /// Log format.
    #[arg(long, env = "SLUICE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a full filter such as `info,kube=debug`;
    /// RUST_LOG, when set, wins.
    #[arg(long, env = "SLUICE_LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Client-side write rate limit (queries per second).
    #[arg(long, env = "SLUICE_QPS", default_value_t = 40.0)]
    qps: f64,
    /// Client-side write burst.
    #[arg(long, env = "SLUICE_BURST", default_value_t = 80)]
    burst: u32,
    /// Rollouts reconciled concurrently (Argo's `--rollout-threads`).
    #[arg(long, env = "SLUICE_ROLLOUT_THREADS", default_value_t = 10)]
    rollout_threads: u16,
    /// AnalysisRuns reconciled concurrently (Argo's `--analysis-threads`).
    #[arg(long, env = "SLUICE_ANALYSIS_THREADS", default_value_t = 10)]
    analysis_threads: u16,
    /// Reconcile every Rollout at least this often, in seconds.
    #[arg(long, env = "SLUICE_ROLLOUT_RESYNC", default_value_t = 900)]
    rollout_resync: u64,
    /// Elect a leader among replicas on a coordination.k8s.io Lease; only the leader reconciles.
    #[arg(long, env = "SLUICE_LEADER_ELECT", default_value_t = true, action = ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    leader_elect: bool,
    /// Namespace of the Lease; default: $POD_NAMESPACE, else --namespace, else "default".
    #[arg(long, env = "SLUICE_LEADER_ELECTION_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// How long standbys wait, after last seeing the lease renewed, before taking over (e.g. 15s).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    leader_election_lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal (e.g. 10s).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_RENEW_DEADLINE", default_value = "10s", value_parser = parse_duration)]
    leader_election_renew_deadline: Duration,
    /// Interval between attempts to acquire or renew the lease (e.g. 2s).
    #[arg(long, env = "SLUICE_LEADER_ELECTION_RETRY_PERIOD", default_value = "2s", value_parser = parse_duration)]
    leader_election_retry_period: Duration,
}

/// Go-style durations as Argo's flags take them (`15s`, `1m30s`, `500ms`, `2h`); a bare number is
/// seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    // A bare number is seconds; otherwise a Go duration ("15s", "1m30s"), like Argo's flags.
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    sluice::time::parse_go_duration(s)
        .ok_or_else(|| format!("{s:?}: not a duration (e.g. 15s, 1m30s)"))
}

mod json_log {
    //! One JSON object per line, with the fields of every enclosing span flattened in (so each
    //! line of a reconcile carries `namespace` and `rollout`) and logrus-style keys as Argo's
    //! controller writes them: `time`, `level`, `msg`.

    use serde_json::{Map, Value};
    use tracing::field::{Field, Visit};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::fmt::format::Writer;
    use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
    use tracing_subscriber::registry::LookupSpan;

    pub struct FlatJson;

    struct Fields<'a>(&'a mut Map<String, Value>);

    impl Fields<'_> {
        fn put(&mut self, field: &Field, v: Value) {
            let key = match field.name() {
                "message" => "msg",
                k => k,
            };
            self.0.insert(key.to_string(), v);
        }
    }

    impl Visit for Fields<'_> {
        fn record_str(&mut self, f: &Field, v: &str) {
            self.put(f, Value::from(v));
        }
        fn record_i64(&mut self, f: &Field, v: i64) {
            self.put(f, Value::from(v));
        }
        fn record_u64(&mut self, f: &Field, v: u64) {
            self.put(f, Value::from(v));
        }
        fn record_f64(&mut self, f: &Field, v: f64) {
            self.put(f, Value::from(v));
        }
        fn record_bool(&mut self, f: &Field, v: bool) {
            self.put(f, Value::from(v));
        }
        fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
            self.put(f, Value::from(format!("{v:?}")));
        }
    }

    fn level(l: &Level) -> &'static str {
        match *l {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        }
    }

    impl<S, N> FormatEvent<S, N> for FlatJson
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        fn format_event(
            &self,
            ctx: &FmtContext<'_, S, N>,
            mut writer: Writer<'_>,
            event: &Event<'_>,
        ) -> std::fmt::Result {
            let mut obj = Map::new();
            obj.insert(
                "time".into(),
                Value::from(jiff::Timestamp::now().to_string()),
            );
            obj.insert("level".into(), Value::from(level(event.metadata().level())));
            if let Some(scope) = ctx.event_scope() {
                for span in scope.from_root() {
                    let ext = span.extensions();
                    // With `JsonFields` as the field formatter, a span's fields are a JSON object.
                    if let Some(f) = ext.get::<FormattedFields<N>>()
                        && let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&f.fields)
                    {
                        obj.extend(m);
                    }
                }
            }
            event.record(&mut Fields(&mut obj));
            obj.insert("target".into(), Value::from(event.metadata().target()));
            let line = serde_json::to_string(&obj).map_err(|_| std::fmt::Error)?;
            writeln!(writer, "{line}")
        }
    }
}

fn env_filter(level: &str) -> tracing_subscriber::EnvFilter {
    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        let directives = if level.contains('=') || level.contains(',') {
            level.to_string()
        } else {
            format!("{level},kube=warn")
        };
        tracing_subscriber::EnvFilter::try_new(&directives)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"))
    })
}

fn init_logging(format: LogFormat, level: &str) {
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter(level));
    match format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json_log::FlatJson)
            .init(),
        LogFormat::Plain => builder.init(),
    }
}

async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?
        }
        None => Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

/// Resolves on SIGTERM (what the kubelet sends) or SIGINT.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        info!("shutdown requested; draining in-flight reconciles");
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}

fn serve(port: u16, ep: server::Endpoints) {
    let addr = SocketAddr::from(([0, 0, 0, 0], port));
    tokio::spawn(async move {
        if let Err(e) = server::serve(addr, ep).await {
            error!("cannot serve on {addr}: {e}");
        }
    });
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format, &args.log_level);
    let client = client(args.kubeconfig.as_deref()).await?;
    let ready = Arc::new(AtomicBool::new(false));
    let version = env!("CARGO_PKG_VERSION");

    let lease_name = leader::lease_name(&args.instance_id);
    let leadership = if args.leader_elect {
        Leadership::standby()
    } else {
        Leadership::always()
    };
    let metrics = Arc::new(Metrics::new(version));
    {
        let l = leadership.clone();
        metrics.set_leader_probe(&lease_name, move || l.is_leading());
    }
    let render = {
        let m = metrics.clone();
        Arc::new(move || m.render())
    };
    let endpoints = |serve| server::Endpoints {
        ready: ready.clone(),
        metrics: render.clone(),
        serve,
    };
    if args.healthz_port == args.metrics_port {
        serve(args.healthz_port, endpoints(Serve::All));
    } else {
        serve(args.healthz_port, endpoints(Serve::Health));
        serve(args.metrics_port, endpoints(Serve::Metrics));
    }

    let elector = if args.leader_elect {
        let namespace = args
            .leader_election_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|n| !n.is_empty())
            })
            .or_else(|| args.namespace.clone())
            .unwrap_or_else(|| "default".into());
        let cfg = LeaseConfig {
            namespace,
            name: lease_name.clone(),
            identity: leader::default_identity(),
            lease_duration: args.leader_election_lease_duration,
            renew_deadline: args.leader_election_renew_deadline,
            retry_period: args.leader_election_retry_period,
        };
        cfg.validate().map_err(|e| anyhow::anyhow!(e))?;
        info!(lease = %format!("{}/{}", cfg.namespace, cfg.name), identity = %cfg.identity,
              lease_duration = ?cfg.lease_duration, renew_deadline = ?cfg.renew_deadline,
              retry_period = ?cfg.retry_period, "leader election enabled");
        Some(Arc::new(Elector::new(
            client.clone(),
            cfg,
            leadership.clone(),
        )))
    } else {
        info!("leader election disabled: running as the only writer");
        None
    };

    let settings = Settings {
        namespace: args.namespace.clone(),
        instance_id: args.instance_id.clone(),
        threads: args.rollout_threads.max(1),
        analysis_threads: args.analysis_threads.max(1),
        qps: args.qps,
        burst: args.burst,
        resync: Duration::from_secs(args.rollout_resync.max(1)),
        leadership,
        metrics,
    };
    info!(?settings, "starting sluice-controller {version}");
    let mut run = tokio::spawn(controller::run(
        client,
        settings,
        ready.clone(),
        shutdown_signal(),
    ));
    let Some(elector) = elector else {
        run.await?;
        info!("stopped");
        return Ok(());
    };
    let campaign = {
        let e = elector.clone();
        let ready = ready.clone();
        async move { e.run(ready).await }
    };
    let mut campaign = tokio::spawn(campaign);
    tokio::select! {
        lost = &mut campaign => {
            match lost {
                Ok(why) => error!("lost leadership ({why}); exiting so that no write can follow"),
                Err(e) => error!("leader election task failed ({e}); exiting"),
            }
            std::process::exit(1);
        }
        done = &mut run => {
            campaign.abort();
            // Every reconcile has finished: hand the lease over instead of letting it expire.
            elector.release().await;
            done?;
        }
    }
    info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::io::Write;
    use std::sync::Mutex;

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
        let a = Args::try_parse_from(["sluice-controller"]).unwrap();
        assert!(a.leader_elect);
        assert_eq!(a.leader_election_lease_duration, Duration::from_secs(15));
        assert_eq!(a.leader_election_renew_deadline, Duration::from_secs(10));
        assert_eq!(a.leader_election_retry_period, Duration::from_secs(2));
        assert_eq!((a.metrics_port, a.healthz_port), (8090, 8080));
        assert_eq!((a.rollout_threads, a.analysis_threads), (10, 10));
        let a =
            Args::try_parse_from(["x", "--rollout-threads=3", "--analysis-threads", "7"]).unwrap();
        assert_eq!((a.rollout_threads, a.analysis_threads), (3, 7));
        let a =
            Args::try_parse_from(["x", "--leader-elect=false", "--log-format", "json"]).unwrap();
        assert!(!a.leader_elect);
        assert_eq!(a.log_format, LogFormat::Json);
        let a = Args::try_parse_from(["x", "--leader-elect"]).unwrap();
        assert!(a.leader_elect);
    }

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_the_rollout() {
        let buf = Buf::default();
        let out = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_env_filter("info")
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(json_log::FlatJson)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!("reconcile", namespace = "prod", rollout = "web");
            let _g = span.enter();
            tracing::info!(replicaset = "web-abc", "created ReplicaSet");
            tracing::warn!(updates = 2, "applying \"plan\"");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        for l in &lines {
            assert_eq!(l["namespace"], "prod", "{l}");
            assert_eq!(l["rollout"], "web", "{l}");
            assert!(l["time"].is_string());
        }
        assert_eq!(lines[0]["msg"], "created ReplicaSet");
        assert_eq!(lines[0]["level"], "info");
        assert_eq!(lines[0]["replicaset"], "web-abc");
        assert_eq!(lines[1]["level"], "warning");
        assert_eq!(lines[1]["updates"], 2);
        assert_eq!(lines[1]["msg"], "applying \"plan\"");
    }
}
