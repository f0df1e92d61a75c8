//! End-to-end suite: one genuine control plane per run, scenarios in parallel, each with its own
//! namespaced controller. Prints `N passed, M failed` and exits non-zero on any failure.

mod analysis;
mod bluegreen;
mod cli;
mod compat;
mod gateway;
mod harness;
mod ops;
mod routers_more;
mod routing;
mod scenarios;
mod traffic;

use std::future::Future;
use std::pin::Pin;
use std::time::Instant;

type Scenario<'a> = (
    &'static str,
    Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>,
);

#[tokio::main]
async fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let cluster = match harness::Cluster::start().await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("e2e: cannot start the control plane: {e:#}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let c = &cluster;
    let signals = match analysis::Signals::start().await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("e2e: cannot start the signals server: {e:#}");
            std::process::exit(1);
        }
    };
    let prometheus = analysis::Prometheus::start(&signals).await;
    let (s, p) = (&signals, prometheus.as_ref());
    fn needs_prometheus<'a>(
        p: Result<&'a analysis::Prometheus, &anyhow::Error>,
    ) -> anyhow::Result<&'a analysis::Prometheus> {
        p.map_err(|e| anyhow::anyhow!("prometheus: {e:#}"))
    }
    let all: Vec<Scenario> = vec![
        ("seed_walk", Box::pin(scenarios::seed_walk(c))),
        (
            "timed_walk_and_idle",
            Box::pin(scenarios::timed_walk_and_idle(c)),
        ),
        (
            "indefinite_pause_then_promote",
            Box::pin(scenarios::indefinite_pause_then_promote(c)),
        ),
        ("abort_then_retry", Box::pin(scenarios::abort_then_retry(c))),
        (
            "scale_subresource_without_replicas",
            Box::pin(scenarios::scale_subresource_without_replicas(c)),
        ),
        (
            "events_abort_retry_promote",
            Box::pin(scenarios::events_abort_retry_promote(c)),
        ),
        ("promote_full", Box::pin(scenarios::promote_full(c))),
        (
            "revision_history_limit",
            Box::pin(scenarios::revision_history_limit(c)),
        ),
        ("invalid_spec", Box::pin(scenarios::invalid_spec(c))),
        (
            "refused_replicaset_is_reported",
            Box::pin(scenarios::refused_replicaset_is_reported(c)),
        ),
        (
            "not_implemented_is_reported",
            Box::pin(scenarios::not_implemented_is_reported(c)),
        ),
        ("kill9_resume", Box::pin(scenarios::kill9_resume(c))),
        (
            "progress_deadline",
            Box::pin(scenarios::progress_deadline(c, false)),
        ),
        (
            "progress_deadline_abort",
            Box::pin(scenarios::progress_deadline(c, true)),
        ),
        ("ha_failover", Box::pin(ops::ha_failover(c))),
        (
            "frozen_leader_is_fenced",
            Box::pin(ops::frozen_leader_is_fenced(c)),
        ),
        (
            "metrics_during_rollout",
            Box::pin(ops::metrics_during_rollout(c)),
        ),
        ("chart_rbac_cluster", Box::pin(ops::chart_rbac(c, false))),
        ("chart_rbac_namespaced", Box::pin(ops::chart_rbac(c, true))),
        (
            "analysis_prometheus_success",
            Box::pin(async move { analysis::prometheus_success(c, s, needs_prometheus(p)?).await }),
        ),
        (
            "analysis_prometheus_failure",
            Box::pin(async move { analysis::prometheus_failure(c, s, needs_prometheus(p)?).await }),
        ),
        (
            "analysis_prometheus_inconclusive",
            Box::pin(
                async move { analysis::prometheus_inconclusive(c, s, needs_prometheus(p)?).await },
            ),
        ),
        (
            "malformed_rollout",
            Box::pin(scenarios::malformed_rollout(c)),
        ),
        (
            "orphaned_replicaset_is_adopted",
            Box::pin(scenarios::orphaned_replicaset_is_adopted(c)),
        ),
        (
            "restart_evicts_old_pods",
            Box::pin(scenarios::restart_evicts_old_pods(c)),
        ),
        (
            "canary_ephemeral_metadata",
            Box::pin(scenarios::canary_ephemeral_metadata(c)),
        ),
        (
            "canary_anti_affinity",
            Box::pin(scenarios::canary_anti_affinity(c)),
        ),
        (
            "adopt_argo_replicaset",
            Box::pin(scenarios::adopt_argo_replicaset(c)),
        ),
        (
            "analysis_prometheus_unreachable",
            Box::pin(analysis::prometheus_unreachable(c)),
        ),
        (
            "analysis_web_provider",
            Box::pin(analysis::web_provider(c, s)),
        ),
        (
            "analysis_deleted_run_is_measured_again",
            Box::pin(analysis::deleted_run_is_measured_again(c)),
        ),
        (
            "analysis_instance_id_filters_runs",
            Box::pin(analysis::instance_id_filters_analysis_runs(c)),
        ),
        (
            "analysis_ttl_strategy",
            Box::pin(analysis::ttl_strategy(c, s)),
        ),
        (
            "analysis_job_success",
            Box::pin(analysis::job_provider(c, true)),
        ),
        (
            "analysis_job_failure",
            Box::pin(analysis::job_provider(c, false)),
        ),
        (
            "bg_ephemeral_metadata",
            Box::pin(bluegreen::bg_ephemeral_metadata(c)),
        ),
        (
            "bg_progress_deadline_exceeded_with_pause",
            Box::pin(bluegreen::bg_progress_deadline_exceeded(c, true)),
        ),
        (
            "bg_progress_deadline_exceeded_without_pause",
            Box::pin(bluegreen::bg_progress_deadline_exceeded(c, false)),
        ),
        (
            "bg_preview_replica_count",
            Box::pin(bluegreen::bg_preview_replica_count(c)),
        ),
        (
            "bg_preview_replica_count_promote_full",
            Box::pin(bluegreen::bg_preview_replica_count_promote_full(c)),
        ),
        ("bg_promote_full", Box::pin(bluegreen::bg_promote_full(c))),
        ("bg_update", Box::pin(bluegreen::bg_update(c))),
        ("bg_to_canary", Box::pin(bluegreen::bg_to_canary(c))),
        (
            "bg_scale_down_delay",
            Box::pin(bluegreen::bg_scale_down_delay(c)),
        ),
        ("bg_kill9_resume", Box::pin(bluegreen::bg_kill9_resume(c))),
        (
            "istio_host_split_walk",
            Box::pin(traffic::istio_host_split_walk(c)),
        ),
        (
            "istio_subset_split",
            Box::pin(traffic::istio_subset_split(c)),
        ),
        (
            "canary_set_canary_scale",
            Box::pin(routing::canary_set_canary_scale(c)),
        ),
        (
            "istio_host_mirror_route",
            Box::pin(traffic::istio_host_mirror_route(c)),
        ),
        (
            "istio_host_header_route",
            Box::pin(traffic::istio_host_header_route(c)),
        ),
        (
            "istio_kill9_weights_never_go_back",
            Box::pin(traffic::istio_kill9_weights_never_go_back(c)),
        ),
        (
            "bg_exceed_progress_deadline_abort",
            Box::pin(bluegreen::bg_exceed_progress_deadline_abort(c)),
        ),
        (
            "bg_scale_down_on_abort",
            Box::pin(bluegreen::bg_scale_down_on_abort(c)),
        ),
        (
            "bg_kubectl_wait_for_paused",
            Box::pin(bluegreen::bg_kubectl_wait_for_paused(c)),
        ),
        (
            "bg_kubectl_wait_for_completed",
            Box::pin(bluegreen::bg_kubectl_wait_for_completed(c)),
        ),
        (
            "bg_workload_ref_template",
            Box::pin(bluegreen::bg_workload_ref_template(c)),
        ),
        ("bg_analysis", Box::pin(bluegreen::bg_analysis(c))),
        (
            "bg_pre_promotion_fail",
            Box::pin(bluegreen::bg_pre_promotion_fail(c)),
        ),
        (
            "bg_post_promotion_fail",
            Box::pin(bluegreen::bg_post_promotion_fail(c)),
        ),
        (
            "bg_abort_and_update",
            Box::pin(bluegreen::bg_abort_and_update(c)),
        ),
        ("bg_kitchen_sink", Box::pin(bluegreen::bg_kitchen_sink(c))),
        (
            "bg_active_always_has_endpoints",
            Box::pin(bluegreen::bg_active_always_has_endpoints(c)),
        ),
        (
            "canary_services_follow_steps",
            Box::pin(bluegreen::canary_services_follow_steps(c)),
        ),
        ("cli_promote", Box::pin(cli::cli_promote(c))),
        ("cli_abort_retry", Box::pin(cli::cli_abort_retry(c))),
        ("cli_pause_resume", Box::pin(cli::cli_pause_resume(c))),
        ("cli_undo", Box::pin(cli::cli_undo(c))),
        ("cli_restart", Box::pin(cli::cli_restart(c))),
        ("cli_lint", Box::pin(cli::cli_lint(c))),
        ("cli_list", Box::pin(cli::cli_list(c))),
        ("cli_get_watch", Box::pin(cli::cli_get_watch(c))),
        (
            "gateway_httproute_walk",
            Box::pin(gateway::gateway_httproute_walk(c)),
        ),
        (
            "gateway_grpcroute_walk",
            Box::pin(gateway::gateway_grpcroute_walk(c)),
        ),
        (
            "gateway_tcproute_walk",
            Box::pin(gateway::gateway_tcproute_walk(c)),
        ),
        (
            "gateway_tlsroute_walk",
            Box::pin(gateway::gateway_tlsroute_walk(c)),
        ),
        (
            "gateway_router_writes_only_differences",
            Box::pin(gateway::gateway_router_writes_only_differences(c)),
        ),
        (
            "argo_install_manifests",
            Box::pin(compat::argo_install_manifests(c)),
        ),
        ("smi_canary_walk", Box::pin(routing::smi_canary_walk(c))),
        ("nginx_canary_walk", Box::pin(routing::nginx_canary_walk(c))),
        ("alb_canary_walk", Box::pin(routing::alb_canary_walk(c))),
        (
            "alb_missing_ingress_is_reported",
            Box::pin(routing::alb_missing_ingress_is_reported(c)),
        ),
        (
            "nginx_missing_ingress_is_reported",
            Box::pin(routing::nginx_missing_ingress_is_reported(c)),
        ),
        (
            "traefik_canary_walk",
            Box::pin(routers_more::traefik_canary_walk(c)),
        ),
        (
            "apisix_canary_walk",
            Box::pin(routers_more::apisix_canary_walk(c)),
        ),
        (
            "ambassador_canary_walk",
            Box::pin(routers_more::ambassador_canary_walk(c)),
        ),
    ];
    let selected: Vec<Scenario> = all
        .into_iter()
        .filter(|(n, _)| filter.is_empty() || filter.iter().any(|f| n.contains(f.as_str())))
        .collect();
    let start = Instant::now();
    let runs = selected.into_iter().map(|(name, fut)| async move {
        let t = Instant::now();
        let r = fut.await;
        match &r {
            Ok(()) => println!(
                "test e2e::{name} ... ok ({:.1}s)",
                t.elapsed().as_secs_f64()
            ),
            Err(e) => println!(
                "test e2e::{name} ... FAILED ({:.1}s): {e:#}",
                t.elapsed().as_secs_f64()
            ),
        }
        r.is_ok()
    });
    // Scenarios share two cores with the control plane, the fake kubelet and one controller
    // each: a bounded number at a time keeps their timings (pods ready within a second or two,
    // scale-down delays of a few seconds) what they would be on their own.
    let parallel = std::env::var("SLUICE_E2E_PARALLEL")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(16);
    let results: Vec<bool> = futures::StreamExt::collect(futures::StreamExt::buffer_unordered(
        futures::stream::iter(runs),
        parallel,
    ))
    .await;
    let passed = results.iter().filter(|ok| **ok).count();
    let failed = results.len() - passed;
    drop(prometheus);
    drop(cluster);
    println!(
        "e2e finished in {:.1}s (logs in target/e2e-logs)",
        start.elapsed().as_secs_f64()
    );
    println!("{passed} passed, {failed} failed");
    if failed > 0 || passed == 0 {
        std::process::exit(1);
    }
}
