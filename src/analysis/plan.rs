//! The AnalysisRun planner: everything one reconcile of a run decides, as pure functions of the
//! observed run, its resolved metrics and `now` (no I/O, no clock). The controller's shell resolves
//! the arguments (reading secrets), asks [`due`] which measurements to take, takes them through the
//! providers, and hands them to [`plan`] for the new status, the events and the requeue time. A
//! completed run is only kept or, once its `ttlStrategy` expires, deleted ([`plan_settled`]).

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use crate::analysis::providers::provider_for;
use crate::analysis::run::{
    DEFAULT_MEASUREMENT_HISTORY_LIMIT, Task, assess_run, dry_run_metrics, gc_measurements,
    generate_tasks, is_completed, next_reconcile, record, retention_limits, validate_metrics,
};
use crate::api::analysis::{AnalysisRun, AnalysisRunStatus, Measurement, Metric};
use crate::api::consts::*;
use crate::time::{add_seconds, k8s_time};

/// A run's metrics with the arguments substituted, and the secret values among those arguments
/// (to redact from measurement messages).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resolved {
    pub metrics: Vec<Metric>,
    pub secrets: Vec<String>,
}

/// The arguments resolved, or why they could not be.
pub type Resolution = Result<Resolved, String>;

/// An event to record against the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunEvent {
    pub warning: bool,
    pub reason: String,
    pub message: String,
}

/// What one reconcile writes and when it looks again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunPlan {
    /// The new status; `None` when it is unchanged.
    pub status: Option<AnalysisRunStatus>,
    pub events: Vec<RunEvent>,
    /// When to look again: the next measurement, or for a completed run the expiry of its
    /// `ttlStrategy`; `None` when nothing is due.
    pub requeue_at: Option<Timestamp>,
    /// Delete the run: it completed and its `ttlStrategy` has expired.
    pub delete: bool,
}

/// Has the run completed? Then nothing more is done: no arguments resolved, nothing measured.
pub fn settled(run: &AnalysisRun) -> bool {
    run.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(is_completed)
}

/// Argo's `isAnalysisRunTtlExceeded`: when a completed run is due for deletion under its
/// `spec.ttlStrategy`, if ever. `secondsAfterSuccess` applies to a Successful run and
/// `secondsAfterFailure` to a Failed one when set; otherwise `secondsAfterCompletion` (so an
/// Error or Inconclusive run is only deleted by that one). Argo deletes once the whole seconds
/// elapsed since `status.completedAt` exceed the TTL, that is at `completedAt + ttl + 1s`. A run
/// without `completedAt` is never deleted (Argo cannot tell its age either).
pub fn ttl_expiry(run: &AnalysisRun) -> Option<Timestamp> {
    let ttl = run.spec.ttl_strategy.as_ref()?;
    let status = run.status.as_ref()?;
    let phase = status.phase.as_deref().filter(|p| is_completed(p))?;
    let completed = status.completed_at.as_ref()?.0;
    let secs = match phase {
        ANALYSIS_PHASE_SUCCESSFUL if ttl.seconds_after_success.is_some() => {
            ttl.seconds_after_success
        }
        ANALYSIS_PHASE_FAILED if ttl.seconds_after_failure.is_some() => ttl.seconds_after_failure,
        _ => ttl.seconds_after_completion,
    }?;
    let secs = i64::from(secs);
    // Go truncates the elapsed seconds toward zero before comparing (`int32(elapsed) > ttl`).
    Some(add_seconds(
        completed,
        if secs >= 0 { secs + 1 } else { secs },
    ))
}

/// A completed run at `now`: nothing is measured or written; it is deleted once its
/// `ttlStrategy` has expired, and looked at again exactly when it will. A run already being
/// deleted is left alone.
pub fn plan_settled(run: &AnalysisRun, now: Timestamp) -> RunPlan {
    if run.metadata.deletion_timestamp.is_some() {
        return RunPlan::default();
    }
    match ttl_expiry(run) {
        Some(at) if at <= now => RunPlan {
            delete: true,
            ..RunPlan::default()
        },
        at => RunPlan {
            requeue_at: at,
            ..RunPlan::default()
        },
    }
}

/// The spec's rules over the resolved metrics: which run dry, how many measurements each keeps.
struct Rules {
    dry: BTreeSet<String>,
    keep: BTreeMap<String, usize>,
}

/// Argo's `ValidateMetrics` comes first: an invalid spec never measures.
fn rules(run: &AnalysisRun, metrics: &[Metric]) -> Result<Rules, String> {
    validate_metrics(metrics)?;
    let dry = dry_run_metrics(run.spec.dry_run.as_deref().unwrap_or(&[]), metrics)?;
    let keep = retention_limits(
        run.spec.measurement_retention.as_deref().unwrap_or(&[]),
        metrics,
    )?;
    Ok(Rules { dry, keep })
}

/// The measurements due at `now`: to start, to resume, or to terminate. None for a completed run,
/// unresolved arguments or an invalid spec. `Task::metric` indexes `resolved.metrics`.
pub fn due(run: &AnalysisRun, resolved: &Resolution, now: Timestamp) -> Vec<Task> {
    if settled(run) {
        return Vec::new();
    }
    let Ok(r) = resolved else {
        return Vec::new();
    };
    if rules(run, &r.metrics).is_err() {
        return Vec::new();
    }
    let status = run.status.clone().unwrap_or_default();
    generate_tasks(&run.spec, &status, &r.metrics, now)
}

fn redact(mut m: Measurement, secrets: &[String]) -> Measurement {
    if let Some(msg) = m.message.as_mut() {
        for s in secrets {
            *msg = msg.replace(s.as_str(), "*****");
        }
    }
    m
}

fn run_error() -> RunEvent {
    RunEvent {
        warning: true,
        reason: "AnalysisRunError".into(),
        message: "Analysis Completed. Result: Error".into(),
    }
}

/// Fold the measurements `taken` for the [`due`] tasks into the run: metric results, the run's
/// phase, message and completion, the `Metric<Phase>` and `AnalysisRun<Phase>` events, the
/// measurement history limit and the next time to look.
pub fn plan(
    run: &AnalysisRun,
    resolved: &Resolution,
    taken: Vec<(Task, Measurement)>,
    now: Timestamp,
) -> RunPlan {
    let prev = run.status.clone().unwrap_or_default();
    if settled(run) {
        return plan_settled(run, now);
    }
    let mut status = prev.clone();
    let mut events = Vec::new();
    let mut next = None;
    let fail = |status: &mut AnalysisRunStatus, msg: String| {
        status.phase = Some(ANALYSIS_PHASE_ERROR.into());
        status.message = Some(msg);
        status.completed_at = Some(k8s_time(now));
    };
    match resolved {
        Err(e) => {
            fail(
                &mut status,
                format!("Unable to resolve metric arguments: {e}"),
            );
            events.push(run_error());
        }
        Ok(r) => match rules(run, &r.metrics) {
            Err(e) => {
                fail(&mut status, format!("Analysis spec invalid: {e}"));
                events.push(run_error());
            }
            Ok(Rules { dry, keep }) => {
                let metrics = &r.metrics;
                let is_dry = |name: &str| dry.contains(name);
                for (t, m) in taken {
                    let Some(metric) = metrics.get(t.metric) else {
                        continue;
                    };
                    let metadata = provider_for(metric).ok().and_then(|p| p.metadata(metric));
                    record(
                        &mut status,
                        metric,
                        is_dry(&metric.name),
                        redact(m, &r.secrets),
                        t.incomplete.is_some(),
                        now,
                        metadata,
                    );
                }
                let (phase, message, transitions) =
                    assess_run(&run.spec, &mut status, metrics, &is_dry, now);
                for t in transitions {
                    let warning =
                        t.phase == ANALYSIS_PHASE_ERROR || t.phase == ANALYSIS_PHASE_FAILED;
                    events.push(RunEvent {
                        warning,
                        reason: format!("Metric{}", t.phase),
                        message: format!("Metric '{}' Completed. Result: {}", t.metric, t.phase),
                    });
                }
                if status.phase.as_deref() != Some(phase.as_str()) {
                    status.phase = Some(phase.clone());
                    status.message = (!message.is_empty()).then_some(message);
                    if is_completed(&phase) {
                        if status.completed_at.is_none() {
                            status.completed_at = Some(k8s_time(now));
                        }
                        let warning =
                            phase == ANALYSIS_PHASE_ERROR || phase == ANALYSIS_PHASE_FAILED;
                        events.push(RunEvent {
                            warning,
                            reason: format!("AnalysisRun{phase}"),
                            message: format!("Analysis Completed. Result: {phase}"),
                        });
                    }
                }
                gc_measurements(&mut status, &|name| {
                    keep.get(name)
                        .copied()
                        .unwrap_or(DEFAULT_MEASUREMENT_HISTORY_LIMIT)
                });
                if !status.phase.as_deref().is_some_and(is_completed) {
                    next = next_reconcile(&status, metrics, now);
                }
            }
        },
    }
    if status.phase.as_deref().is_some_and(is_completed) {
        // Completed now: look again when the ttlStrategy expires, if it ever does.
        let done = AnalysisRun {
            status: Some(status.clone()),
            ..run.clone()
        };
        next = ttl_expiry(&done);
    }
    RunPlan {
        status: (status != prev).then_some(status),
        events,
        requeue_at: next,
        delete: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;
    use crate::api::analysis::MetricResult;

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn run(spec: serde_json::Value, status: Option<serde_json::Value>) -> AnalysisRun {
        let mut v = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
            "metadata": {"name": "run", "namespace": "ns", "uid": "u-1"},
            "spec": spec,
        });
        if let Some(s) = status {
            v["status"] = s;
        }
        serde_json::from_value(v).unwrap()
    }

    fn web(name: &str, extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({"name": name, "provider": {"web": {"url": "http://x"}},
                           "successCondition": "result == 1"});
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    }

    fn resolved(r: &AnalysisRun) -> Resolution {
        Ok(Resolved {
            metrics: r.spec.metrics.clone(),
            secrets: Vec::new(),
        })
    }

    fn measurement(phase: &str, at: i64, message: Option<&str>) -> Measurement {
        Measurement {
            phase: phase.into(),
            started_at: Some(k8s_time(ts(at))),
            finished_at: Some(k8s_time(ts(at))),
            value: Some("1".into()),
            message: message.map(str::to_string),
            ..Measurement::default()
        }
    }

    fn event(warning: bool, reason: &str, message: &str) -> RunEvent {
        RunEvent {
            warning,
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// One row: the run, the resolution, what the providers returned for the due tasks, and
    /// what the planner must decide.
    struct Case {
        name: &'static str,
        run: AnalysisRun,
        resolution: Option<Resolution>,
        taken: Vec<Measurement>,
        due: usize,
        phase: Option<&'static str>,
        message: Option<&'static str>,
        events: Vec<RunEvent>,
        requeue_at: Option<Timestamp>,
        status_changes: bool,
    }

    #[test]
    fn planner_table() {
        let now = ts(100);
        let running = json!({
            "phase": "Running", "startedAt": k8s_time(ts(0)),
            "runSummary": {"count": 1, "successful": 0, "failed": 0, "inconclusive": 0, "error": 0},
            "dryRunSummary": {"count": 0, "successful": 0, "failed": 0, "inconclusive": 0, "error": 0},
            "metricResults": [{"name": "rate", "phase": "Running", "count": 1, "successful": 1,
                "measurements": [{"phase": "Successful", "startedAt": k8s_time(ts(90)),
                                  "finishedAt": k8s_time(ts(90)), "value": "1"}]}],
        });
        let cases = vec![
            Case {
                name: "invalid spec",
                run: run(json!({"metrics": [web("rate", json!({"count": 2}))]}), None),
                resolution: None,
                taken: vec![],
                due: 0,
                phase: Some("Error"),
                message: Some(
                    "Analysis spec invalid: metrics[0]: interval must be specified when count > 1",
                ),
                events: vec![event(
                    true,
                    "AnalysisRunError",
                    "Analysis Completed. Result: Error",
                )],
                requeue_at: None,
                status_changes: true,
            },
            Case {
                name: "invalid dryRun rule",
                run: run(
                    json!({"metrics": [web("rate", json!({}))], "dryRun": [{"metricName": "nope"}]}),
                    None,
                ),
                resolution: None,
                taken: vec![],
                due: 0,
                phase: Some("Error"),
                message: None,
                events: vec![event(
                    true,
                    "AnalysisRunError",
                    "Analysis Completed. Result: Error",
                )],
                requeue_at: None,
                status_changes: true,
            },
            Case {
                name: "argument resolution error",
                run: run(json!({"metrics": [web("rate", json!({}))]}), None),
                resolution: Some(Err("key 'k' does not exist in secret 's'".into())),
                taken: vec![],
                due: 0,
                phase: Some("Error"),
                message: Some(
                    "Unable to resolve metric arguments: key 'k' does not exist in secret 's'",
                ),
                events: vec![event(
                    true,
                    "AnalysisRunError",
                    "Analysis Completed. Result: Error",
                )],
                requeue_at: None,
                status_changes: true,
            },
            Case {
                name: "a successful measurement completes the run",
                run: run(json!({"metrics": [web("rate", json!({}))]}), None),
                resolution: None,
                taken: vec![measurement("Successful", 100, None)],
                due: 1,
                phase: Some("Successful"),
                message: None,
                events: vec![
                    event(
                        false,
                        "MetricSuccessful",
                        "Metric 'rate' Completed. Result: Successful",
                    ),
                    event(
                        false,
                        "AnalysisRunSuccessful",
                        "Analysis Completed. Result: Successful",
                    ),
                ],
                requeue_at: None,
                status_changes: true,
            },
            Case {
                name: "a failed measurement fails the run",
                run: run(json!({"metrics": [web("rate", json!({}))]}), None),
                resolution: None,
                taken: vec![measurement("Failed", 100, None)],
                due: 1,
                phase: Some("Failed"),
                message: Some(
                    "Metric \"rate\" assessed Failed due to failed (1) > failureLimit (0)",
                ),
                events: vec![
                    event(
                        true,
                        "MetricFailed",
                        "Metric 'rate' Completed. Result: Failed",
                    ),
                    event(
                        true,
                        "AnalysisRunFailed",
                        "Analysis Completed. Result: Failed",
                    ),
                ],
                requeue_at: None,
                status_changes: true,
            },
            Case {
                name: "a measurement of an unfinished metric requeues at the next interval",
                run: run(
                    json!({"metrics": [web("rate", json!({"interval": "30s", "count": 3}))]}),
                    None,
                ),
                resolution: None,
                taken: vec![measurement("Successful", 100, None)],
                due: 1,
                phase: Some("Running"),
                message: None,
                events: vec![],
                requeue_at: Some(ts(130)),
                status_changes: true,
            },
            Case {
                name: "nothing due: no status change, requeue at the next measurement",
                run: run(
                    json!({"metrics": [web("rate", json!({"interval": "30s", "count": 3}))]}),
                    Some(running.clone()),
                ),
                resolution: None,
                taken: vec![],
                due: 0,
                phase: Some("Running"),
                message: None,
                events: vec![],
                requeue_at: Some(ts(120)),
                status_changes: false,
            },
            Case {
                name: "a completed run is left alone",
                run: run(
                    json!({"metrics": [web("rate", json!({}))]}),
                    Some(json!({"phase": "Successful"})),
                ),
                resolution: Some(Err("never read".into())),
                taken: vec![],
                due: 0,
                phase: Some("Successful"),
                message: None,
                events: vec![],
                requeue_at: None,
                status_changes: false,
            },
        ];
        for c in cases {
            let resolution = c.resolution.clone().unwrap_or_else(|| resolved(&c.run));
            let tasks = due(&c.run, &resolution, now);
            assert_eq!(tasks.len(), c.due, "{}: due {tasks:?}", c.name);
            let taken: Vec<(Task, Measurement)> = tasks.into_iter().zip(c.taken).collect();
            let p = plan(&c.run, &resolution, taken, now);
            assert_eq!(p.status.is_some(), c.status_changes, "{}: {p:?}", c.name);
            let status = p
                .status
                .clone()
                .or_else(|| c.run.status.clone())
                .unwrap_or_default();
            assert_eq!(status.phase.as_deref(), c.phase, "{}", c.name);
            if let Some(msg) = c.message {
                assert_eq!(status.message.as_deref(), Some(msg), "{}", c.name);
            }
            if c.phase.is_some_and(is_completed) && c.status_changes {
                assert_eq!(status.completed_at, Some(k8s_time(now)), "{}", c.name);
            }
            assert_eq!(p.events, c.events, "{}", c.name);
            assert_eq!(p.requeue_at, c.requeue_at, "{}", c.name);
        }
    }

    /// ttlStrategy, as Argo's `isAnalysisRunTtlExceeded`: which TTL applies to which phase, and
    /// the run deleted once the whole seconds since completion exceed it — never earlier, and
    /// looked at again exactly then.
    #[test]
    fn ttl_strategy_table() {
        let completed = ts(0);
        let done = |phase: &str, ttl: serde_json::Value, completed_at: Option<Timestamp>| {
            let mut st = json!({"phase": phase});
            if let Some(t) = completed_at {
                st["completedAt"] = json!(k8s_time(t));
            }
            run(
                json!({"metrics": [web("rate", json!({}))], "ttlStrategy": ttl}),
                Some(st),
            )
        };
        let all = json!({"secondsAfterCompletion": 10, "secondsAfterSuccess": 20, "secondsAfterFailure": 30});
        let only_completion = json!({"secondsAfterCompletion": 2});
        let c = Some(completed);
        // (case, run, expiry: the first instant the run is due for deletion)
        let cases: Vec<(&str, AnalysisRun, Option<Timestamp>)> = vec![
            (
                "success uses secondsAfterSuccess",
                done("Successful", all.clone(), c),
                Some(ts(21)),
            ),
            (
                "failure uses secondsAfterFailure",
                done("Failed", all.clone(), c),
                Some(ts(31)),
            ),
            (
                "error falls back to secondsAfterCompletion",
                done("Error", all.clone(), c),
                Some(ts(11)),
            ),
            (
                "inconclusive falls back to secondsAfterCompletion",
                done("Inconclusive", all.clone(), c),
                Some(ts(11)),
            ),
            (
                "success without secondsAfterSuccess",
                done("Successful", only_completion.clone(), c),
                Some(ts(3)),
            ),
            (
                "failure without secondsAfterFailure",
                done("Failed", only_completion.clone(), c),
                Some(ts(3)),
            ),
            (
                "error with only secondsAfterSuccess/Failure: kept",
                done(
                    "Error",
                    json!({"secondsAfterSuccess": 1, "secondsAfterFailure": 1}),
                    c,
                ),
                None,
            ),
            (
                "zero: the next whole second",
                done("Successful", json!({"secondsAfterCompletion": 0}), c),
                Some(ts(1)),
            ),
            (
                "negative: at once",
                done("Failed", json!({"secondsAfterFailure": -5}), c),
                Some(ts(-5)),
            ),
            (
                "empty ttlStrategy: kept",
                done("Successful", json!({}), c),
                None,
            ),
            (
                "no completedAt: kept",
                done("Successful", only_completion.clone(), None),
                None,
            ),
            (
                "running: not yet",
                done("Running", only_completion.clone(), c),
                None,
            ),
            (
                "no ttlStrategy: kept",
                run(
                    json!({"metrics": [web("rate", json!({}))]}),
                    Some(json!({"phase": "Successful", "completedAt": k8s_time(completed)})),
                ),
                None,
            ),
        ];
        for (name, r, expiry) in cases {
            assert_eq!(ttl_expiry(&r), expiry, "{name}");
            if !settled(&r) {
                continue;
            }
            for now in [ts(-10), ts(0), ts(2), ts(3), ts(20), ts(21), ts(100)] {
                let p = plan_settled(&r, now);
                let due = expiry.is_some_and(|e| now >= e);
                assert_eq!(p.delete, due, "{name} at {now}");
                assert_eq!(p.requeue_at, expiry.filter(|_| !due), "{name} at {now}");
                assert_eq!(p.status, None, "{name}: nothing written");
                // `plan` on a settled run is the same decision, and never resolves arguments.
                assert_eq!(
                    plan(&r, &Err("never read".into()), vec![], now),
                    p,
                    "{name}"
                );
            }
        }
        // A run already being deleted is left alone.
        let mut r = done("Successful", only_completion.clone(), c);
        r.metadata.deletion_timestamp = Some(k8s_time(ts(1)));
        assert_eq!(plan_settled(&r, ts(100)), RunPlan::default());
    }

    /// A run that completes in this reconcile is looked at again when its TTL expires.
    #[test]
    fn a_run_completing_now_requeues_at_its_ttl_expiry() {
        let r = run(
            json!({"metrics": [web("rate", json!({}))], "ttlStrategy": {"secondsAfterCompletion": 2}}),
            None,
        );
        let resolution = resolved(&r);
        let tasks = due(&r, &resolution, ts(50));
        let taken = tasks
            .into_iter()
            .map(|t| (t, measurement("Successful", 50, None)))
            .collect();
        let p = plan(&r, &resolution, taken, ts(50));
        assert_eq!(p.status.unwrap().phase.as_deref(), Some("Successful"));
        assert_eq!(p.requeue_at, Some(ts(53)));
        assert!(!p.delete);
    }

    #[test]
    fn secrets_are_redacted_from_measurement_messages() {
        let r = run(json!({"metrics": [web("rate", json!({}))]}), None);
        let resolution = Ok(Resolved {
            metrics: r.spec.metrics.clone(),
            secrets: vec!["hunter2".into()],
        });
        let tasks = due(&r, &resolution, ts(0));
        let m = Measurement {
            phase: "Error".into(),
            message: Some("401 for token hunter2".into()),
            started_at: Some(k8s_time(ts(0))),
            finished_at: Some(k8s_time(ts(0))),
            ..Measurement::default()
        };
        let taken = tasks.into_iter().map(|t| (t, m.clone())).collect();
        let p = plan(&r, &resolution, taken, ts(0));
        let results: Vec<MetricResult> = p.status.unwrap().metric_results.unwrap();
        let msg = results[0].measurements.as_ref().unwrap()[0].message.clone();
        assert_eq!(msg.as_deref(), Some("401 for token *****"));
    }
}
