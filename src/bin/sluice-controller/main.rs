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
use clap::Parser;
use flags::{Args, KubeFlags, LogFormat};
use kube::Config;
use kube::client::ClientBuilder;
use kube::config::Kubeconfig;
use sluice::controller::leader::{self, Elector, Leadership, LeaseConfig};
use sluice::controller::server::{self, Serve};
use sluice::controller::{self, Settings};
use sluice::metrics::Metrics;
use tracing::{error, info, warn};

mod flags;
mod json_log;

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

/// The client config: the kubeconfig (`--kubeconfig`, else $KUBECONFIG or ~/.kube/config, with
/// `--context`, `--cluster`, `--user`) or the in-cluster config, then client-go's override flags.
/// With `--server` and nothing to infer from, the overrides alone make the config, as in client-go.
async fn client_config(k: &KubeFlags) -> anyhow::Result<Config> {
    let options = k.options();
    let inferred = match &k.kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(anyhow::Error::from)
        }
        None if options.context.is_some()
            || options.cluster.is_some()
            || options.user.is_some() =>
        {
            Config::from_kubeconfig(&options)
                .await
                .map_err(anyhow::Error::from)
        }
        None => Config::infer().await.map_err(anyhow::Error::from),
    };
    let mut config = match (inferred, &k.server) {
        (Ok(c), _) => c,
        (Err(_), Some(server)) => Config::new(
            server
                .parse()
                .with_context(|| format!("--server {server:?}"))?,
        ),
        (Err(e), None) => return Err(e),
    };
    k.apply(&mut config).map_err(|e| anyhow::anyhow!(e))?;
    Ok(config)
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
    let (format, format_note) = args.log_format();
    init_logging(format, &args.log_level());
    if let Some(note) = format_note {
        info!("{note}");
    }
    for w in args.warnings() {
        warn!("{w}");
    }
    let rollouts = args.rollout_controller().map_err(|e| anyhow::anyhow!(e))?;
    let config = client_config(&args.kube).await?;
    let pod_namespace = std::env::var("POD_NAMESPACE").ok();
    let namespace = args.watch_namespace(pod_namespace.clone(), &config.default_namespace);
    if args.namespaced {
        info!(
            "namespaced: watching only namespace {}",
            namespace.as_deref().unwrap_or("")
        );
    }
    let version = env!("CARGO_PKG_VERSION");
    let metrics = Arc::new(Metrics::new(version));
    // Every request of the controller passes the counting layer
    // (`controller_clientset_k8s_request_total`).
    let client = ClientBuilder::try_from(config)?
        .with_layer(&metrics.request_layer())
        .build();
    let ready = Arc::new(AtomicBool::new(false));

    let lease_name = leader::lease_name(&args.instance_id);
    let leadership = if args.leader_elect {
        Leadership::standby()
    } else {
        Leadership::always()
    };
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
            .or_else(|| pod_namespace.clone().filter(|n| !n.is_empty()))
            .or_else(|| namespace.clone())
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
        namespace: namespace.clone(),
        rollouts,
        instance_id: args.instance_id.clone(),
        threads: args.rollout_threads.max(1),
        analysis_threads: args.analysis_threads.max(1),
        qps: args.qps,
        burst: args.burst,
        resync: Duration::from_secs(args.rollout_resync.max(1)),
        leadership,
        metrics,
        smi_version: args.traffic_split_api_version,
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
