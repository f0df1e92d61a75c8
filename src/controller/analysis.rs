//! The AnalysisRun controller: resolve arguments (secrets read on demand, never cached), take the
//! due measurements through the providers, fold them in with the pure planner
//! (`analysis::plan`), write the status only when it changed, and requeue exactly at the next
//! measurement time. Every write goes through the shared [`Writer`].

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::apply::merge_diff;
use super::error::Backoff;
use super::write::Writer;
use super::{Error, Settings};
use crate::analysis::args::resolve_metric;
use crate::analysis::plan::{self, Resolution, Resolved, RunPlan};
use crate::analysis::providers::job::RUN_UID_LABEL;
use crate::analysis::providers::{ProviderContext, errored, provider_for, started};
use crate::api::analysis::{AnalysisRun, Argument, Measurement, Metric};
use crate::api::consts::*;
use crate::time::until;

/// Shared state of AnalysisRun reconciles.
pub struct AnalysisContext {
    /// Reads (secrets, Jobs).
    pub client: Client,
    /// Every write (status, Jobs, events).
    pub writer: Arc<Writer>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Consecutive failures per run, for the error policy.
    backoff: Backoff<AnalysisRun>,
}

impl AnalysisContext {
    pub fn new(client: Client, writer: Arc<Writer>, metrics: Arc<crate::metrics::Metrics>) -> Self {
        AnalysisContext {
            client,
            writer,
            metrics,
            backoff: Backoff::default(),
        }
    }
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
        writer: ctx.writer.as_ref(),
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

/// Resolve the run's arguments and substitute them into its metrics.
async fn resolve(client: &Client, ns: &str, run: &AnalysisRun) -> Resolution {
    let (args, secrets) = resolve_args(client, ns, run.spec.args.as_deref().unwrap_or(&[])).await?;
    let metrics = run
        .spec
        .metrics
        .iter()
        .map(|m| resolve_metric(m, &args))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    Ok(Resolved { metrics, secrets })
}

/// One AnalysisRun reconcile: resolve, measure what is due, plan, write.
#[tracing::instrument(skip_all, fields(namespace = %run.namespace().unwrap_or_default(), analysisrun = %run.name_any()))]
pub(crate) async fn reconcile(
    run: Arc<AnalysisRun>,
    ctx: Arc<AnalysisContext>,
) -> Result<Action, Error> {
    let _timer = ctx
        .metrics
        .analysis_run_reconcile_timer(&run.namespace().unwrap_or_default(), &run.name_any());
    let action = reconcile_run(&run, &ctx).await?;
    ctx.backoff.reset(&ObjectRef::from_obj(run.as_ref()));
    Ok(action)
}

async fn reconcile_run(run: &AnalysisRun, ctx: &AnalysisContext) -> Result<Action, Error> {
    let ns = run
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(run.name_any()))?;
    let now = Timestamp::now();
    if plan::settled(run) {
        let plan = plan::plan_settled(run, now);
        if plan.delete {
            ctx.writer
                .delete::<AnalysisRun>(&ns, &run.name_any())
                .await?;
            info!("deleted: ttlStrategy expired");
        }
        return Ok(requeue(&plan));
    }
    let resolved = resolve(&ctx.client, &ns, run).await;
    let tasks = plan::due(run, &resolved, now);
    let taken = match &resolved {
        Ok(r) if !tasks.is_empty() => {
            info!(count = tasks.len(), "taking measurements");
            let due: Vec<_> = tasks
                .into_iter()
                .filter_map(|t| r.metrics.get(t.metric).map(|m| (t, m)))
                .collect();
            let results = futures::future::join_all(
                due.iter()
                    .map(|(t, m)| measure(ctx, run, m, t.incomplete.clone(), t.terminate)),
            )
            .await;
            due.into_iter().map(|(t, _)| t).zip(results).collect()
        }
        _ => Vec::new(),
    };
    let plan = plan::plan(run, &resolved, taken, now);
    write_status(&ctx.writer, run, &plan).await?;
    Ok(requeue(&plan))
}

/// Look again exactly when the plan asks to (a measurement, a TTL expiry).
fn requeue(plan: &RunPlan) -> Action {
    match plan.requeue_at {
        Some(t) => {
            Action::requeue(until(Timestamp::now(), t).unwrap_or(Duration::from_millis(100)))
        }
        None => Action::await_change(),
    }
}

/// Write the status if it changed (a merge patch of the changed fields, guarded by the
/// resourceVersion; AnalysisRun has no status subresource), then record the events.
pub(crate) async fn write_status(
    writer: &Writer,
    run: &AnalysisRun,
    plan: &RunPlan,
) -> Result<(), Error> {
    let ns = run.namespace().unwrap_or_default();
    if let Some(status) = &plan.status {
        let prev = run.status.clone().unwrap_or_default();
        let old = serde_json::to_value(&prev)?;
        let new = serde_json::to_value(status)?;
        if let Some(diff) = merge_diff(&old, &new) {
            let mut patch = json!({ "status": diff });
            if let Some(rv) = run.resource_version() {
                patch["metadata"] = json!({ "resourceVersion": rv });
            }
            writer
                .merge_patch::<AnalysisRun>(&ns, &run.name_any(), &patch)
                .await?;
            if let Some(p) = &status.phase
                && prev.phase.as_ref() != Some(p)
            {
                info!(phase = %p, "analysis run phase");
            }
        }
    }
    let reference = run.object_ref(&());
    for e in &plan.events {
        let ev = Event {
            type_: if e.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: e.reason.clone(),
            note: Some(e.message.clone()),
            action: "Analyze".into(),
            secondary: None,
        };
        writer.event(&reference, &ev).await;
    }
    Ok(())
}

/// The shared error policy: capped, jittered exponential backoff per run ([`Backoff`]).
fn error_policy(run: Arc<AnalysisRun>, err: &Error, ctx: Arc<AnalysisContext>) -> Action {
    Action::requeue(retry_delay(&run, err, &ctx))
}

/// How long `error_policy` waits before retrying `run` after `err`.
fn retry_delay(run: &AnalysisRun, err: &Error, ctx: &AnalysisContext) -> Duration {
    ctx.metrics
        .analysis_run_reconcile_error(&run.namespace().unwrap_or_default(), &run.name_any());
    let after = ctx.backoff.failed(ObjectRef::from_obj(run), err);
    warn!(
        namespace = %run.namespace().unwrap_or_default(),
        analysisrun = %run.name_any(),
        category = err.category(),
        retry_in_ms = after.as_millis() as u64,
        "analysis reconcile failed: {err}"
    );
    after
}

/// Run the AnalysisRun controller over `runs` (shared with the Rollout controller's reflector)
/// until `shutdown` resolves. Jobs are watched only when they carry the run-uid label.
/// `settings.analysis_threads` runs are reconciled at once.
pub async fn run(
    client: Client,
    writer: Arc<Writer>,
    settings: &Settings,
    runs_stream: impl futures::Stream<Item = Arc<AnalysisRun>> + Send + 'static,
    runs: Store<AnalysisRun>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let jobs: Api<Job> = match &settings.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let job_stream = watcher::watcher(jobs, watcher::Config::default().labels(RUN_UID_LABEL))
        .default_backoff()
        .touched_objects();
    let ctx = Arc::new(AnalysisContext::new(
        client,
        writer,
        settings.metrics.clone(),
    ));
    Controller::for_shared_stream(runs_stream, runs)
        .owns_stream(job_stream)
        .with_config(ControllerConfig::default().concurrency(settings.analysis_threads))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::controller::leader::Leadership;
    use crate::controller::write::testing::{self, job_run, job_run_json};

    /// A completed run whose ttlStrategy has expired is deleted through the writer, once; one
    /// not yet expired is requeued for its expiry and nothing is written.
    #[tokio::test]
    async fn an_expired_run_is_deleted_and_a_live_one_requeued() {
        let (client, seen) =
            testing::client(|_, _| Ok(json!({"kind": "Status", "status": "Success"})));
        let writer = Arc::new(testing::writer(client.clone(), Leadership::always()));
        let ctx = Arc::new(AnalysisContext::new(client, writer, Arc::default()));
        let completed = |secs_ago: i64, ttl: i32| {
            let mut v = job_run_json();
            v["spec"]["ttlStrategy"] = json!({"secondsAfterCompletion": ttl});
            let at = Timestamp::now() - jiff::SignedDuration::from_secs(secs_ago);
            v["status"] = json!({"phase": "Successful", "completedAt": crate::time::k8s_time(at)});
            Arc::new(serde_json::from_value::<AnalysisRun>(v).unwrap())
        };
        let a = reconcile(completed(3600, 2), ctx.clone()).await.unwrap();
        assert_eq!(a, Action::await_change());
        assert_eq!(
            seen.writes(),
            vec!["DELETE /apis/argoproj.io/v1alpha1/namespaces/ns/analysisruns/run?"]
        );
        let a = reconcile(completed(0, 600), ctx.clone()).await.unwrap();
        assert_ne!(a, Action::await_change(), "requeued for the expiry");
        assert_eq!(seen.writes().len(), 1, "nothing more written");
    }

    /// The real reconcile against an API server that refuses every PATCH: each reconcile starts
    /// the Job measurement (its create is answered), then fails writing the status. The error
    /// policy's delays grow, are capped, and reset once a write succeeds.
    #[tokio::test]
    async fn a_failing_status_write_backs_off_with_growing_capped_delays() {
        let failing = Arc::new(AtomicBool::new(true));
        let f = failing.clone();
        let (client, seen) = testing::client(move |method, path| match method {
            "PATCH" if f.load(Ordering::SeqCst) => Err(500),
            "PATCH" => Ok(job_run_json()),
            _ if path.contains("/jobs") => {
                Ok(json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"}}))
            }
            _ => Err(404),
        });
        let writer = Arc::new(testing::writer(client.clone(), Leadership::always()));
        let ctx = Arc::new(AnalysisContext::new(client, writer, Arc::default()));
        let run = Arc::new(job_run());
        let key = ObjectRef::from_obj(run.as_ref());
        let mut delays = Vec::new();
        for _ in 0..12 {
            let err = reconcile(run.clone(), ctx.clone()).await.unwrap_err();
            assert_eq!(err.category(), "server", "{err}");
            delays.push(retry_delay(&run, &err, &ctx));
        }
        // ±10 % jitter cannot undo a doubling: strictly growing until the cap (5 min ± 10 %).
        assert!(delays[..9].windows(2).all(|w| w[0] < w[1]), "{delays:?}");
        assert!(delays[0] < Duration::from_millis(1200), "{delays:?}");
        for d in &delays[9..] {
            assert!(
                (Duration::from_secs(270)..=Duration::from_secs(330)).contains(d),
                "capped: {delays:?}"
            );
        }
        assert_eq!(ctx.backoff.failures(&key), 12);
        assert_ne!(
            error_policy(run.clone(), &Error::NotLeader, ctx.clone()),
            Action::await_change()
        );
        assert_eq!(ctx.backoff.failures(&key), 12, "not leading is no failure");
        let patches = seen
            .all()
            .iter()
            .filter(|r| {
                r.starts_with("PATCH /apis/argoproj.io/v1alpha1/namespaces/ns/analysisruns/run")
            })
            .count();
        assert_eq!(patches, 12, "{:?}", seen.all());

        failing.store(false, Ordering::SeqCst);
        reconcile(run.clone(), ctx.clone()).await.unwrap();
        assert_eq!(ctx.backoff.failures(&key), 0, "a success resets the count");
    }
}
