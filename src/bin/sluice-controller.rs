//! sluice-controller: parse flags, set up logging and the client, run the Rollout controller.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use sluice::controller::{self, Settings, server};
use tracing::{error, info};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

/// Progressive-delivery controller for Argo Rollouts-compatible Rollouts.
#[derive(Parser, Debug)]
#[command(version, about)]
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
    /// Client-side write rate limit (queries per second).
    #[arg(long, env = "SLUICE_QPS", default_value_t = 40.0)]
    qps: f64,
    /// Client-side write burst.
    #[arg(long, env = "SLUICE_BURST", default_value_t = 80)]
    burst: u32,
    /// Rollouts reconciled concurrently.
    #[arg(long, env = "SLUICE_ROLLOUT_THREADS", default_value_t = 10)]
    rollout_threads: u16,
    /// Reconcile every Rollout at least this often, in seconds.
    #[arg(long, env = "SLUICE_ROLLOUT_RESYNC", default_value_t = 900)]
    rollout_resync: u64,
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging(args.log_format);
    let client = client(args.kubeconfig.as_deref()).await?;
    let ready = Arc::new(AtomicBool::new(false));

    let version = env!("CARGO_PKG_VERSION");
    let metrics = Arc::new(move || {
        format!(
            "# TYPE sluice_controller_info gauge\nsluice_controller_info{{version=\"{version}\"}} 1\n# EOF\n"
        )
    });
    let health = server::Endpoints {
        ready: ready.clone(),
        metrics: metrics.clone(),
    };
    for port in [args.healthz_port, args.metrics_port] {
        let ep = health.clone();
        let addr = SocketAddr::from(([0, 0, 0, 0], port));
        tokio::spawn(async move {
            if let Err(e) = server::serve(addr, ep).await {
                error!("cannot serve on {addr}: {e}");
            }
        });
    }

    let settings = Settings {
        namespace: args.namespace.clone(),
        instance_id: args.instance_id.clone(),
        threads: args.rollout_threads.max(1),
        qps: args.qps,
        burst: args.burst,
        resync: Duration::from_secs(args.rollout_resync.max(1)),
    };
    info!(?settings, "starting sluice-controller {version}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    controller::run(client, settings, ready, shutdown).await;
    info!("stopped");
    Ok(())
}
