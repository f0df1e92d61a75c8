//! The AnalysisRun controller: resolve arguments (secrets read on demand, never cached), take the
//! due measurements through the providers, fold them in with the pure engine, write the status
//! only when it changed, and requeue exactly at the next measurement time.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::Error;
use super::apply::merge_diff;
use crate::analysis::args::resolve_metric;
use crate::analysis::providers::job::RUN_UID_LABEL;
use crate::analysis::providers::{ProviderContext, errored, provider_for, started};
use crate::analysis::run::{
    DEFAULT_MEASUREMENT_HISTORY_LIMIT, assess_run, dry_run_metrics, gc_measurements,
    generate_tasks, is_completed, next_reconcile, record, retention_limits, validate_metrics,
};
use crate::api::analysis::{AnalysisRun, Argument, Measurement, Metric};
use crate::api::consts::FIELD_MANAGER;
use crate::api::consts::*;
use crate::time::{k8s_time, until};

/// Shared state of AnalysisRun reconciles.
pub struct AnalysisContext {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Resolve argument values, reading secrets with one GET each. Returns the values and the secret
/// strings to redact from messages.
async fn resolve_args(
    client: &Client,
    ns: &str,
    args: &[Argument],
) -> Result<(Vec<Argument>, Vec<String>), String> {
    let mut out = Vec::with_capacity(args.len());
    let mut secrets = Vec::new();
    for a in args {
        let mut a = a.clone();
        if let Some(r) = a
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let secret = api
                .get(&r.name)
                .await
                .map_err(|e| format!("secret {}: {e}", r.name))?;
            let bytes = secret
                .data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .ok_or_else(|| format!("key '{}' does not exist in secret '{}'", r.key, r.name))?;
            let value = String::from_utf8_lossy(&bytes.0).to_string();
            if !value.is_empty() {
                secrets.push(value.clone());
            }
            a.value = Some(value);
            a.value_from = None;
        } else if let Some(f) = a.value_from.as_ref().and_then(|v| v.field_ref.as_ref()) {
            // Field references are resolved by the Rollout when it builds the run; an unresolved
            // one here is an error like a missing value.
            return Err(format!(
                "argument \"{}\" has an unresolved fieldRef {}",
                a.name, f.field_path
            ));
        }
        out.push(a);
    }
    Ok((out, secrets))
}

fn redact(mut m: Measurement, secrets: &[String]) -> Measurement {
    if let Some(msg) = m.message.as_mut() {
        for s in secrets {
            *msg = msg.replace(s.as_str(), "*****");
        }
    }
    m
}

async fn measure(
    ctx: &AnalysisContext,
    run: &AnalysisRun,
    metric: &Metric,
    incomplete: Option<Measurement>,
    terminate: bool,
) -> Measurement {
    let provider = match provider_for(metric) {
        Ok(p) => p,
        Err(e) => return errored(incomplete.unwrap_or_else(|| started(Timestamp::now())), e),
    };
    let pctx = ProviderContext {
        client: &ctx.client,
        run,
    };
    match incomplete {
        None => provider.run(&pctx, metric).await,
        Some(m) if terminate => {
            let mut m = provider.terminate(&pctx, metric, m).await;
            if m.phase == ANALYSIS_PHASE_SUCCESSFUL || m.phase == ANALYSIS_PHASE_INCONCLUSIVE {
                m.message = Some("Metric Terminated".into());
            }
            m
        }
        Some(m) => provider.resume(&pctx, metric, m).await,
    }
}

async fn event(
    ctx: &AnalysisContext,
    run: &AnalysisRun,
    warning: bool,
    reason: String,
    note: String,
) {
    let ev = Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason,
        note: Some(note),
        action: "Analyze".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &run.object_ref(&())).await {
        warn!("could not record event: {e}");
    }
}

/// One AnalysisRun reconcile.
#[tracing::instrument(skip_all, fields(namespace = %run.namespace().unwrap_or_default(), analysisrun = %run.name_any()))]
async fn reconcile(run: Arc<AnalysisRun>, ctx: Arc<AnalysisContext>) -> Result<Action, Error> {
    let _timer = ctx
        .metrics
        .analysis_run_reconcile_timer(&run.namespace().unwrap_or_default(), &run.name_any());
    let prev = run.status.clone().unwrap_or_default();
    if prev.phase.as_deref().is_some_and(is_completed) {
        return Ok(Action::await_change());
    }
    let ns = run
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(run.name_any()))?;
    let now = Timestamp::now();
    let mut status = prev.clone();
    let mut events: Vec<(bool, String, String)> = Vec::new();
    let fail = |status: &mut crate::api::analysis::AnalysisRunStatus, msg: String| {
        status.phase = Some(ANALYSIS_PHASE_ERROR.into());
        status.message = Some(msg);
        status.completed_at = Some(k8s_time(now));
    };
    let resolved =
        match resolve_args(&ctx.client, &ns, run.spec.args.as_deref().unwrap_or(&[])).await {
            Ok((args, secrets)) => run
                .spec
                .metrics
                .iter()
                .map(|m| resolve_metric(m, &args))
                .collect::<Result<Vec<_>, _>>()
                .map(|ms| (ms, secrets))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
    let mut next = None;
    match resolved {
        Err(e) => {
            fail(
                &mut status,
                format!("Unable to resolve metric arguments: {e}"),
            );
            events.push((
                true,
                "AnalysisRunError".into(),
                "Analysis Completed. Result: Error".into(),
            ));
        }
        Ok((metrics, secrets)) => {
            // Argo's `ValidateMetrics` comes first: an invalid spec never measures.
            let rules = validate_metrics(&metrics)
                .and_then(|()| {
                    dry_run_metrics(run.spec.dry_run.as_deref().unwrap_or(&[]), &metrics)
                })
                .and_then(|dry| {
                    retention_limits(
                        run.spec.measurement_retention.as_deref().unwrap_or(&[]),
                        &metrics,
                    )
                    .map(|keep| (dry, keep))
                });
            let (dry, keep) = match rules {
                Ok(r) => r,
                Err(e) => {
                    fail(&mut status, format!("Analysis spec invalid: {e}"));
                    return finish(
                        &ctx,
                        &run,
                        &prev,
                        &status,
                        vec![(
                            true,
                            "AnalysisRunError".into(),
                            "Analysis Completed. Result: Error".into(),
                        )],
                        None,
                    )
                    .await;
                }
            };
            let is_dry = |name: &str| dry.contains(name);
            let tasks = generate_tasks(&run.spec, &status, &metrics, now);
            if !tasks.is_empty() {
                info!(count = tasks.len(), "taking measurements");
            }
            let results = futures::future::join_all(tasks.iter().map(|t| {
                let metric = &metrics[t.metric];
                measure(&ctx, &run, metric, t.incomplete.clone(), t.terminate)
            }))
            .await;
            for (t, m) in tasks.iter().zip(results) {
                let metric = &metrics[t.metric];
                let metadata = provider_for(metric).ok().and_then(|p| p.metadata(metric));
                record(
                    &mut status,
                    metric,
                    is_dry(&metric.name),
                    redact(m, &secrets),
                    t.incomplete.is_some(),
                    now,
                    metadata,
                );
            }
            let (phase, message, transitions) =
                assess_run(&run.spec, &mut status, &metrics, &is_dry, now);
            for t in transitions {
                let warning = t.phase == ANALYSIS_PHASE_ERROR || t.phase == ANALYSIS_PHASE_FAILED;
                events.push((
                    warning,
                    format!("Metric{}", t.phase),
                    format!("Metric '{}' Completed. Result: {}", t.metric, t.phase),
                ));
            }
            if status.phase.as_deref() != Some(phase.as_str()) {
                status.phase = Some(phase.clone());
                status.message = (!message.is_empty()).then_some(message);
                if is_completed(&phase) {
                    if status.completed_at.is_none() {
                        status.completed_at = Some(k8s_time(now));
                    }
                    let warning = phase == ANALYSIS_PHASE_ERROR || phase == ANALYSIS_PHASE_FAILED;
                    events.push((
                        warning,
                        format!("AnalysisRun{phase}"),
                        format!("Analysis Completed. Result: {phase}"),
                    ));
                }
            }
            gc_measurements(&mut status, &|name| {
                keep.get(name)
                    .copied()
                    .unwrap_or(DEFAULT_MEASUREMENT_HISTORY_LIMIT)
            });
            if !status.phase.as_deref().is_some_and(is_completed) {
                next = next_reconcile(&status, &metrics, now);
            }
        }
    }
    finish(&ctx, &run, &prev, &status, events, next).await
}

/// Write the status if it changed, record events, and say when to look again.
async fn finish(
    ctx: &AnalysisContext,
    run: &AnalysisRun,
    prev: &crate::api::analysis::AnalysisRunStatus,
    status: &crate::api::analysis::AnalysisRunStatus,
    events: Vec<(bool, String, String)>,
    next: Option<Timestamp>,
) -> Result<Action, Error> {
    let ns = run.namespace().unwrap_or_default();
    let old = serde_json::to_value(prev)?;
    let new = serde_json::to_value(status)?;
    if let Some(diff) = merge_diff(&old, &new) {
        let api: Api<AnalysisRun> = Api::namespaced(ctx.client.clone(), &ns);
        let mut patch = json!({ "status": diff });
        if let Some(rv) = run.resource_version() {
            patch["metadata"] = json!({ "resourceVersion": rv });
        }
        api.patch(
            &run.name_any(),
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await?;
        if let Some(p) = &status.phase
            && prev.phase.as_ref() != Some(p)
        {
            info!(phase = %p, "analysis run phase");
        }
    }
    for (warning, reason, note) in events {
        event(ctx, run, warning, reason, note).await;
    }
    Ok(match next {
        Some(t) => {
            Action::requeue(until(Timestamp::now(), t).unwrap_or(Duration::from_millis(100)))
        }
        None => Action::await_change(),
    })
}

fn error_policy(run: Arc<AnalysisRun>, err: &Error, ctx: Arc<AnalysisContext>) -> Action {
    ctx.metrics
        .analysis_run_reconcile_error(&run.namespace().unwrap_or_default(), &run.name_any());
    warn!(analysisrun = %run.name_any(), category = err.category(), "analysis reconcile failed: {err}");
    Action::requeue(err.retry_after(1, 0))
}

/// Run the AnalysisRun controller over `runs` (shared with the Rollout controller's reflector)
/// until `shutdown` resolves. Jobs are watched only when they carry the run-uid label.
pub async fn run(
    client: Client,
    namespace: Option<String>,
    runs_stream: impl futures::Stream<Item = Arc<AnalysisRun>> + Send + 'static,
    runs: Store<AnalysisRun>,
    recorder: Recorder,
    metrics: Arc<crate::metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let jobs: Api<Job> = match &namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let job_stream = watcher::watcher(jobs, watcher::Config::default().labels(RUN_UID_LABEL))
        .default_backoff()
        .touched_objects();
    let ctx = Arc::new(AnalysisContext {
        client,
        recorder,
        metrics,
    });
    Controller::for_shared_stream(runs_stream, runs)
        .owns_stream(job_stream)
        .with_config(ControllerConfig::default().concurrency(30))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}
