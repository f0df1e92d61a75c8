//! The AnalysisRun state machine (reference §1.15–1.16), pure: which measurements are due, how a
//! finished measurement updates the counters, how metrics and the run are assessed, when to look
//! again, and which measurements to keep. The controller supplies `now` and the measurements.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::analysis::{
    AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, MetricResult, RunSummary,
};
use crate::api::consts::*;
use crate::time::{k8s_time, parse_go_duration};

/// An Error measurement is retried after this long (`DefaultErrorRetryInterval`).
pub const ERROR_RETRY: Duration = Duration::from_secs(10);
/// Measurements kept per metric unless `measurementRetention` says otherwise.
pub const DEFAULT_MEASUREMENT_HISTORY_LIMIT: usize = 10;
/// `consecutiveErrorLimit` when unset.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i32 = 4;

/// A completed phase: Successful, Failed, Error or Inconclusive.
pub fn is_completed(phase: &str) -> bool {
    matches!(
        phase,
        ANALYSIS_PHASE_SUCCESSFUL
            | ANALYSIS_PHASE_FAILED
            | ANALYSIS_PHASE_ERROR
            | ANALYSIS_PHASE_INCONCLUSIVE
    )
}

fn rank(phase: &str) -> u8 {
    match phase {
        ANALYSIS_PHASE_SUCCESSFUL => 0,
        ANALYSIS_PHASE_RUNNING => 1,
        ANALYSIS_PHASE_PENDING => 2,
        ANALYSIS_PHASE_INCONCLUSIVE => 3,
        ANALYSIS_PHASE_ERROR => 4,
        ANALYSIS_PHASE_FAILED => 5,
        _ => 0,
    }
}

/// Is `a` worse than `b` (Successful < Running < Pending < Inconclusive < Error < Failed)?
pub fn is_worse(a: &str, b: &str) -> bool {
    rank(a) > rank(b)
}

fn int_value(v: &Option<IntOrString>) -> Option<i32> {
    match v {
        None => None,
        Some(IntOrString::Int(n)) => Some(*n),
        // After argument substitution a templated value is a decimal string; Go's IntValue()
        // yields 0 for anything unparseable.
        Some(IntOrString::String(s)) => Some(s.trim().parse().unwrap_or(0)),
    }
}

/// `Metric.EffectiveCount`: unset/0 count measures once without an interval, forever with one.
pub fn effective_count(m: &Metric) -> Option<i32> {
    match int_value(&m.count) {
        None | Some(0) => {
            if m.interval.as_deref().unwrap_or("").is_empty() {
                Some(1)
            } else {
                None
            }
        }
        Some(n) => Some(n),
    }
}

fn interval(m: &Metric) -> Option<Duration> {
    m.interval
        .as_deref()
        .filter(|s| !s.is_empty())
        .and_then(parse_go_duration)
}

fn result<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a MetricResult> {
    status
        .metric_results
        .as_ref()?
        .iter()
        .find(|r| r.name == name)
}

fn last_measurement<'a>(status: &'a AnalysisRunStatus, name: &str) -> Option<&'a Measurement> {
    result(status, name)?.measurements.as_ref()?.last()
}

/// Terminating: asked to stop, or a non-dry-run metric already ended Failed, Error or Inconclusive.
pub fn is_terminating(spec: &AnalysisRunSpec, status: &AnalysisRunStatus) -> bool {
    if spec.terminate.unwrap_or(false) {
        return true;
    }
    status.metric_results.iter().flatten().any(|r| {
        matches!(
            r.phase.as_str(),
            ANALYSIS_PHASE_FAILED | ANALYSIS_PHASE_ERROR | ANALYSIS_PHASE_INCONCLUSIVE
        ) && !r.dry_run.unwrap_or(false)
    })
}

/// A measurement to take (`incomplete` is `None`) or to resume or terminate.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub metric: usize,
    pub incomplete: Option<Measurement>,
    /// Resume an in-flight measurement by terminating it (the run is terminating).
    pub terminate: bool,
}

/// `generateMetricTasks`: what is due at `now`.
pub fn generate_tasks(
    spec: &AnalysisRunSpec,
    status: &AnalysisRunStatus,
    metrics: &[Metric],
    now: Timestamp,
) -> Vec<Task> {
    let terminating = is_terminating(spec, status);
    let mut tasks = Vec::new();
    for (i, m) in metrics.iter().enumerate() {
        if result(status, &m.name).is_some_and(|r| is_completed(&r.phase)) {
            continue;
        }
        let last = last_measurement(status, &m.name);
        if let Some(last) = last.filter(|l| l.finished_at.is_none()) {
            if !terminating && last.resume_at.as_ref().is_some_and(|r| r.0 > now) {
                continue;
            }
            tasks.push(Task {
                metric: i,
                incomplete: Some(last.clone()),
                terminate: terminating,
            });
            continue;
        }
        if terminating {
            continue;
        }
        let Some(last) = last else {
            if let Some(delay) = m.initial_delay.as_deref().filter(|d| !d.is_empty()) {
                let Some(started) = status.started_at.as_ref() else {
                    continue;
                };
                let Some(d) = parse_go_duration(delay) else {
                    continue;
                };
                if started.0.checked_add(d).is_ok_and(|t| t > now) {
                    continue;
                }
            }
            tasks.push(Task {
                metric: i,
                incomplete: None,
                terminate: false,
            });
            continue;
        };
        let count = result(status, &m.name).and_then(|r| r.count).unwrap_or(0);
        if effective_count(m).is_some_and(|c| count >= c) {
            continue;
        }
        // After an Error, and for counted metrics without an interval, retry after 10 s.
        let wait = if last.phase == ANALYSIS_PHASE_ERROR
            || m.interval.as_deref().unwrap_or("").is_empty()
        {
            ERROR_RETRY
        } else {
            match interval(m) {
                Some(d) => d,
                None => continue,
            }
        };
        let finished = last.finished_at.as_ref().map_or(now, |t| t.0);
        if finished.checked_add(wait).is_ok_and(|t| now > t) {
            tasks.push(Task {
                metric: i,
                incomplete: None,
                terminate: false,
            });
        }
    }
    tasks
}

/// Fold one provider measurement into the metric's result (`runMeasurements`).
pub fn record(
    status: &mut AnalysisRunStatus,
    metric: &Metric,
    dry_run: bool,
    mut m: Measurement,
    replaces_last: bool,
    now: Timestamp,
    metadata: Option<std::collections::BTreeMap<String, String>>,
) {
    let results = status.metric_results.get_or_insert_with(Vec::new);
    let idx = match results.iter().position(|r| r.name == metric.name) {
        Some(i) => i,
        None => {
            results.push(MetricResult {
                name: metric.name.clone(),
                phase: ANALYSIS_PHASE_RUNNING.into(),
                dry_run: dry_run.then_some(true),
                metadata,
                ..Default::default()
            });
            results.len() - 1
        }
    };
    let r = &mut results[idx];
    let inc = |v: &mut Option<i32>| *v = Some(v.unwrap_or(0) + 1);
    if is_completed(&m.phase) {
        if m.finished_at.is_none() {
            m.finished_at = Some(k8s_time(now));
        }
        match m.phase.as_str() {
            ANALYSIS_PHASE_SUCCESSFUL => {
                inc(&mut r.successful);
                inc(&mut r.count);
                r.consecutive_error = Some(0);
                inc(&mut r.consecutive_success);
            }
            ANALYSIS_PHASE_FAILED => {
                inc(&mut r.failed);
                inc(&mut r.count);
                r.consecutive_error = Some(0);
                r.consecutive_success = Some(0);
            }
            ANALYSIS_PHASE_INCONCLUSIVE => {
                inc(&mut r.inconclusive);
                inc(&mut r.count);
                r.consecutive_error = Some(0);
                r.consecutive_success = Some(0);
            }
            _ => {
                inc(&mut r.error);
                inc(&mut r.consecutive_error);
                r.consecutive_success = Some(0);
            }
        }
    }
    let ms = r.measurements.get_or_insert_with(Vec::new);
    if replaces_last && !ms.is_empty() {
        let last = ms.len() - 1;
        ms[last] = m;
    } else {
        ms.push(m);
    }
}

fn limit(v: &Option<IntOrString>, default: i32) -> i32 {
    int_value(v).unwrap_or(default)
}

/// `assessMetricFailureInconclusiveOrError`: a breached limit, checked Failed, Inconclusive, Error
/// with the last one winning.
pub fn breached_limit(m: &Metric, r: &MetricResult) -> Option<(&'static str, String)> {
    let mut out = None;
    let failure_limit = limit(&m.failure_limit, 0);
    let failed = r.failed.unwrap_or(0);
    if failure_limit >= 0 && failed > failure_limit {
        out = Some((
            ANALYSIS_PHASE_FAILED,
            format!("failed ({failed}) > failureLimit ({failure_limit})"),
        ));
    }
    let inconclusive_limit = limit(&m.inconclusive_limit, 0);
    let inconclusive = r.inconclusive.unwrap_or(0);
    if inconclusive > inconclusive_limit {
        out = Some((
            ANALYSIS_PHASE_INCONCLUSIVE,
            format!("inconclusive ({inconclusive}) > inconclusiveLimit ({inconclusive_limit})"),
        ));
    }
    let error_limit = limit(&m.consecutive_error_limit, DEFAULT_CONSECUTIVE_ERROR_LIMIT);
    let errors = r.consecutive_error.unwrap_or(0);
    if errors > error_limit {
        out = Some((
            ANALYSIS_PHASE_ERROR,
            format!("consecutiveErrors ({errors}) > consecutiveErrorLimit ({error_limit})"),
        ));
    }
    out
}

/// `assessMetricStatus`.
pub fn assess_metric(m: &Metric, r: &MetricResult, terminating: bool) -> String {
    if is_completed(&r.phase) {
        return r.phase.clone();
    }
    let Some(last) = r.measurements.as_ref().and_then(|ms| ms.last()) else {
        return if terminating {
            ANALYSIS_PHASE_SUCCESSFUL
        } else {
            ANALYSIS_PHASE_PENDING
        }
        .into();
    };
    if !is_completed(&last.phase) {
        return ANALYSIS_PHASE_RUNNING.into();
    }
    if let Some((phase, _)) = breached_limit(m, r) {
        return phase.into();
    }
    let success_limit = limit(&m.consecutive_success_limit, 0);
    if success_limit > 0 && r.consecutive_success.unwrap_or(0) >= success_limit {
        return ANALYSIS_PHASE_SUCCESSFUL.into();
    }
    if let Some(count) = effective_count(m)
        && r.count.unwrap_or(0) >= count
    {
        let failure_applicable = limit(&m.failure_limit, 0) >= 0;
        let success_applicable = success_limit > 0;
        return if failure_applicable && success_applicable {
            ANALYSIS_PHASE_INCONCLUSIVE
        } else if success_applicable {
            ANALYSIS_PHASE_FAILED
        } else {
            ANALYSIS_PHASE_SUCCESSFUL
        }
        .into();
    }
    if terminating {
        return ANALYSIS_PHASE_SUCCESSFUL.into();
    }
    ANALYSIS_PHASE_RUNNING.into()
}

/// A metric's phase change, for events (`Metric<Phase>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricTransition {
    pub metric: String,
    pub phase: String,
}

/// `assessRunStatus`: updates metric phases, summaries and startedAt; returns the run phase and
/// message and the metric transitions to completion.
pub fn assess_run(
    spec: &AnalysisRunSpec,
    status: &mut AnalysisRunStatus,
    metrics: &[Metric],
    is_dry_run: &dyn Fn(&str) -> bool,
    now: Timestamp,
) -> (String, String, Vec<MetricTransition>) {
    let terminating = is_terminating(spec, status);
    if status.started_at.is_none() {
        status.started_at = Some(k8s_time(now));
    }
    let mut worst: Option<String> = None;
    let mut message = if spec.terminate.unwrap_or(false) {
        "Run Terminated".to_string()
    } else {
        String::new()
    };
    let mut everything_completed = true;
    let mut summary = RunSummary {
        count: Some(0),
        successful: Some(0),
        failed: Some(0),
        inconclusive: Some(0),
        error: Some(0),
    };
    let mut dry_summary = summary.clone();
    let mut transitions = Vec::new();
    let bump = |s: &mut RunSummary, phase: Option<&str>| {
        let f = match phase {
            Some(ANALYSIS_PHASE_ERROR) => &mut s.error,
            Some(ANALYSIS_PHASE_FAILED) => &mut s.failed,
            Some(ANALYSIS_PHASE_INCONCLUSIVE) => &mut s.inconclusive,
            _ => &mut s.successful,
        };
        *f = Some(f.unwrap_or(0) + 1);
    };
    for m in metrics {
        let dry = is_dry_run(&m.name);
        {
            let s = if dry { &mut dry_summary } else { &mut summary };
            s.count = Some(s.count.unwrap_or(0) + 1);
        }
        let Some(r) = status
            .metric_results
            .as_mut()
            .and_then(|rs| rs.iter_mut().find(|r| r.name == m.name))
        else {
            everything_completed = false;
            continue;
        };
        let phase = assess_metric(m, r, terminating);
        if r.phase != phase {
            if is_completed(&phase) {
                transitions.push(MetricTransition {
                    metric: m.name.clone(),
                    phase: phase.clone(),
                });
            }
            if let Some(last) = r.measurements.as_ref().and_then(|ms| ms.last()) {
                r.message = last.message.clone();
            }
            r.phase = phase.clone();
        }
        if !is_completed(&phase) {
            everything_completed = false;
            continue;
        }
        let breach = breached_limit(m, r);
        if !dry {
            if worst.as_deref().is_none_or(|w| is_worse(&phase, w)) {
                worst = Some(phase.clone());
                if let Some((_, why)) = &breach {
                    message = format!("Metric \"{}\" assessed {} due to {}", m.name, phase, why);
                    if let Some(rm) = r.message.as_deref().filter(|s| !s.is_empty()) {
                        message.push_str(&format!(": \"Error Message: {rm}\""));
                    }
                }
            }
            bump(&mut summary, breach.as_ref().map(|b| b.0));
        } else {
            if worst.is_none() {
                worst = Some(ANALYSIS_PHASE_SUCCESSFUL.into());
            }
            if let Some((_, why)) = &breach {
                r.message = Some(format!("Metric assessed {phase} due to {why}"));
            }
            bump(&mut dry_summary, breach.as_ref().map(|b| b.0));
        }
    }
    status.run_summary = Some(summary);
    status.dry_run_summary = Some(dry_summary);
    let message = message.trim().to_string();
    if terminating {
        return (
            worst.unwrap_or_else(|| ANALYSIS_PHASE_SUCCESSFUL.into()),
            message,
            transitions,
        );
    }
    match worst {
        Some(w) if everything_completed => (w, message, transitions),
        _ => (ANALYSIS_PHASE_RUNNING.into(), String::new(), transitions),
    }
}

/// `calculateNextReconcileTime`: the earliest moment a metric needs attention.
pub fn next_reconcile(
    status: &AnalysisRunStatus,
    metrics: &[Metric],
    now: Timestamp,
) -> Option<Timestamp> {
    let mut next: Option<Timestamp> = None;
    let mut consider = |t: Timestamp| {
        if next.is_none_or(|n| t < n) {
            next = Some(t);
        }
    };
    for m in metrics {
        if result(status, &m.name).is_some_and(|r| is_completed(&r.phase)) {
            continue;
        }
        let Some(last) = last_measurement(status, &m.name) else {
            if let Some(d) = m
                .initial_delay
                .as_deref()
                .filter(|d| !d.is_empty())
                .and_then(parse_go_duration)
            {
                let start = status.started_at.as_ref().map_or(now, |t| t.0);
                if let Ok(t) = start.checked_add(d) {
                    consider(t);
                }
            }
            continue;
        };
        let Some(finished) = last.finished_at.as_ref() else {
            if let Some(r) = &last.resume_at {
                consider(r.0);
            }
            continue;
        };
        let count = result(status, &m.name).and_then(|r| r.count).unwrap_or(0);
        if effective_count(m).is_some_and(|c| count >= c) {
            continue;
        }
        let wait = if last.phase == ANALYSIS_PHASE_ERROR {
            ERROR_RETRY
        } else {
            match interval(m) {
                Some(d) => d,
                None => continue,
            }
        };
        if let Ok(t) = finished.0.checked_add(wait) {
            consider(t);
        }
    }
    next
}

/// Argo's `ValidateMetrics` (utils/analysis/factory.go): run on the resolved metrics before any
/// measurement; an error makes the run Error ("Analysis spec invalid: ..."). Limits are read like
/// Go's `IntOrString.IntValue` (an unparseable string is 0).
pub fn validate_metrics(metrics: &[Metric]) -> Result<(), String> {
    if metrics.is_empty() {
        return Err("no metrics specified".into());
    }
    for (i, m) in metrics.iter().enumerate() {
        if metrics[..i].iter().any(|x| x.name == m.name) {
            return Err(format!("metrics[{i}]: duplicate name '{}'", m.name));
        }
        validate_metric(m).map_err(|e| format!("metrics[{i}]: {e}"))?;
    }
    Ok(())
}

/// Argo's `ValidateMetric`.
fn validate_metric(m: &Metric) -> Result<(), String> {
    let count = int_value(&m.count).unwrap_or(0);
    let failure_limit = int_value(&m.failure_limit).unwrap_or(0);
    let success_limit = int_value(&m.consecutive_success_limit).unwrap_or(0);
    let inconclusive_limit = int_value(&m.inconclusive_limit).unwrap_or(0);
    if success_limit < 0 {
        return Err("consecutiveSuccessLimit must be >= 0".into());
    }
    if failure_limit < -1 {
        return Err("failureLimit must be >= 0, or -1 to be disabled".into());
    }
    if success_limit == 0 && failure_limit == -1 {
        return Err("failureLimit and consecutiveSuccessLimit cannot both be disabled".into());
    }
    if inconclusive_limit < 0 {
        return Err("inconclusiveLimit must be >= 0".into());
    }
    if int_value(&m.consecutive_error_limit).is_some_and(|l| l < 0) {
        return Err("consecutiveErrorLimit must be >= 0".into());
    }
    if count > 0 {
        if failure_limit >= 0 {
            if count < failure_limit + success_limit {
                return Err(format!(
                    "count ({count}) must be >= failureLimit + consecutiveSuccessLimit ({failure_limit} + {success_limit}) if both >= 0"
                ));
            }
        } else if count < success_limit {
            return Err("count must be >= consecutiveSuccessLimit".into());
        }
        if count < inconclusive_limit {
            return Err("count must be >= inconclusiveLimit".into());
        }
    }
    let interval = m.interval.as_deref().unwrap_or("");
    if count > 1 && interval.is_empty() {
        return Err("interval must be specified when count > 1".into());
    }
    if !interval.is_empty() && parse_go_duration(interval).is_none() {
        return Err(format!(
            "invalid interval string: time: invalid duration {interval:?}"
        ));
    }
    let delay = m.initial_delay.as_deref().unwrap_or("");
    if !delay.is_empty() && parse_go_duration(delay).is_none() {
        return Err(format!(
            "invalid startDelay string: time: invalid duration {delay:?}"
        ));
    }
    let p = &m.provider;
    let providers = [
        p.prometheus.is_some(),
        p.job.is_some(),
        p.web.is_some(),
        p.wavefront.is_some(),
        p.kayenta.is_some(),
        p.datadog.is_some(),
        p.new_relic.is_some(),
        p.cloud_watch.is_some(),
        p.graphite.is_some(),
        p.influxdb.is_some(),
        p.skywalking.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count()
        + p.plugin.as_ref().map_or(0, |x| x.len());
    if providers == 0 {
        return Err("no provider specified".into());
    }
    if providers > 1 {
        return Err("multiple providers specified".into());
    }
    Ok(())
}

/// Keep at most `keep(metric)` measurements per metric (oldest dropped).
pub fn gc_measurements(status: &mut AnalysisRunStatus, keep: &dyn Fn(&str) -> usize) {
    for r in status.metric_results.iter_mut().flatten() {
        let k = keep(&r.name);
        if let Some(ms) = r.measurements.as_mut()
            && ms.len() > k
        {
            let drop = ms.len() - k;
            ms.drain(..drop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metric(v: serde_json::Value) -> Metric {
        let mut base =
            json!({"name": "m", "provider": {"prometheus": {"address": "http://p", "query": "q"}}});
        if let (Some(b), Some(o)) = (base.as_object_mut(), v.as_object()) {
            for (k, x) in o {
                b.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(base).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap_or(Timestamp::UNIX_EPOCH)
    }

    fn measurement(phase: &str, finished: Option<i64>) -> Measurement {
        Measurement {
            phase: phase.into(),
            started_at: Some(k8s_time(ts(finished.unwrap_or(0)))),
            finished_at: finished.map(|f| k8s_time(ts(f))),
            ..Default::default()
        }
    }

    /// Record a sequence of measurement phases for metric `m`, finishing one per second.
    fn status_with(m: &Metric, phases: &[&str]) -> AnalysisRunStatus {
        let mut st = AnalysisRunStatus::default();
        for (i, p) in phases.iter().enumerate() {
            record(
                &mut st,
                m,
                false,
                measurement(p, Some(i as i64)),
                false,
                ts(i as i64),
                None,
            );
        }
        st
    }

    #[test]
    fn effective_count_rules() {
        assert_eq!(effective_count(&metric(json!({}))), Some(1));
        assert_eq!(effective_count(&metric(json!({"interval": "1m"}))), None);
        assert_eq!(
            effective_count(&metric(json!({"interval": "1m", "count": 0}))),
            None
        );
        assert_eq!(
            effective_count(&metric(json!({"count": 3, "interval": "1m"}))),
            Some(3)
        );
        assert_eq!(effective_count(&metric(json!({"count": "5"}))), Some(5));
    }

    #[test]
    fn counters_per_outcome() {
        let m = metric(json!({"interval": "1s", "count": 10}));
        let st = status_with(
            &m,
            &[
                "Successful",
                "Successful",
                "Error",
                "Failed",
                "Inconclusive",
                "Error",
                "Error",
            ],
        );
        let r = &st.metric_results.clone().unwrap_or_default()[0];
        assert_eq!(r.count, Some(4), "errors are not counted");
        assert_eq!(
            (r.successful, r.failed, r.inconclusive, r.error),
            (Some(2), Some(1), Some(1), Some(3))
        );
        assert_eq!(r.consecutive_error, Some(2));
        assert_eq!(r.consecutive_success, Some(0));
    }

    #[test]
    fn metric_assessment_table() {
        let cases: Vec<(serde_json::Value, Vec<&str>, &str)> = vec![
            (json!({}), vec!["Successful"], ANALYSIS_PHASE_SUCCESSFUL),
            (json!({}), vec!["Failed"], ANALYSIS_PHASE_FAILED),
            (
                json!({"interval": "1s", "count": 3, "failureLimit": 1}),
                vec!["Failed"],
                ANALYSIS_PHASE_RUNNING,
            ),
            (
                json!({"interval": "1s", "count": 3, "failureLimit": 1}),
                vec!["Failed", "Failed"],
                ANALYSIS_PHASE_FAILED,
            ),
            (
                json!({"interval": "1s", "count": 3, "failureLimit": -1, "consecutiveSuccessLimit": 2}),
                vec!["Failed", "Failed"],
                ANALYSIS_PHASE_RUNNING,
            ),
            (
                json!({"interval": "1s", "count": 3}),
                vec!["Inconclusive"],
                ANALYSIS_PHASE_INCONCLUSIVE,
            ),
            (
                json!({"interval": "1s", "count": 3, "inconclusiveLimit": 1}),
                vec!["Inconclusive"],
                ANALYSIS_PHASE_RUNNING,
            ),
            // default consecutiveErrorLimit 4: the fifth consecutive error is too many
            (
                json!({"interval": "1s"}),
                vec!["Error"; 4],
                ANALYSIS_PHASE_RUNNING,
            ),
            (
                json!({"interval": "1s"}),
                vec!["Error"; 5],
                ANALYSIS_PHASE_ERROR,
            ),
            (
                json!({"interval": "1s", "consecutiveErrorLimit": 1}),
                vec!["Error", "Error"],
                ANALYSIS_PHASE_ERROR,
            ),
            (
                json!({"interval": "1s"}),
                vec!["Error", "Error", "Successful", "Error", "Error"],
                ANALYSIS_PHASE_RUNNING,
            ),
            (
                json!({"interval": "1s", "count": 2}),
                vec!["Successful", "Successful"],
                ANALYSIS_PHASE_SUCCESSFUL,
            ),
            (
                json!({"interval": "1s", "consecutiveSuccessLimit": 2}),
                vec!["Successful", "Successful"],
                ANALYSIS_PHASE_SUCCESSFUL,
            ),
            // count reached, failure limit not violated, success limit not reached → Inconclusive
            (
                json!({"interval": "1s", "count": 3, "failureLimit": 2, "consecutiveSuccessLimit": 3}),
                vec!["Successful", "Failed", "Successful"],
                ANALYSIS_PHASE_INCONCLUSIVE,
            ),
            // count reached, only the success limit applies → Failed
            (
                json!({"interval": "1s", "count": 2, "failureLimit": -1, "consecutiveSuccessLimit": 3}),
                vec!["Successful", "Successful"],
                ANALYSIS_PHASE_FAILED,
            ),
            // last assignment wins: Error over Failed
            (
                json!({"interval": "1s", "consecutiveErrorLimit": 0}),
                vec!["Failed", "Error"],
                ANALYSIS_PHASE_ERROR,
            ),
        ];
        for (i, (spec, phases, want)) in cases.into_iter().enumerate() {
            let m = metric(spec.clone());
            let st = status_with(&m, &phases);
            let r = &st.metric_results.clone().unwrap_or_default()[0];
            assert_eq!(
                assess_metric(&m, r, false),
                want,
                "case {i}: {spec} {phases:?}"
            );
        }
    }

    #[test]
    fn terminating_metric_without_measurements_is_successful() {
        let m = metric(json!({"interval": "1s"}));
        let r = MetricResult {
            name: "m".into(),
            phase: ANALYSIS_PHASE_RUNNING.into(),
            ..Default::default()
        };
        assert_eq!(assess_metric(&m, &r, true), ANALYSIS_PHASE_SUCCESSFUL);
        assert_eq!(assess_metric(&m, &r, false), ANALYSIS_PHASE_PENDING);
    }

    #[test]
    fn run_phase_is_worst_of_and_ignores_dry_run() {
        let a = metric(json!({"name": "a"}));
        let b = metric(json!({"name": "b"}));
        let mut st = AnalysisRunStatus::default();
        record(
            &mut st,
            &a,
            false,
            measurement("Successful", Some(0)),
            false,
            ts(0),
            None,
        );
        record(
            &mut st,
            &b,
            true,
            measurement("Failed", Some(0)),
            false,
            ts(0),
            None,
        );
        let spec = AnalysisRunSpec::default();
        let dry = |n: &str| n == "b";
        let (phase, _, transitions) =
            assess_run(&spec, &mut st, &[a.clone(), b.clone()], &dry, ts(1));
        assert_eq!(phase, ANALYSIS_PHASE_SUCCESSFUL);
        assert_eq!(transitions.len(), 2);
        assert_eq!(st.dry_run_summary.as_ref().and_then(|s| s.failed), Some(1));
        assert_eq!(st.run_summary.as_ref().and_then(|s| s.successful), Some(1));

        let mut st = AnalysisRunStatus::default();
        record(
            &mut st,
            &a,
            false,
            measurement("Successful", Some(0)),
            false,
            ts(0),
            None,
        );
        record(
            &mut st,
            &b,
            false,
            measurement("Failed", Some(0)),
            false,
            ts(0),
            None,
        );
        let (phase, msg, _) = assess_run(&spec, &mut st, &[a, b], &|_| false, ts(1));
        assert_eq!(phase, ANALYSIS_PHASE_FAILED);
        assert_eq!(
            msg,
            "Metric \"b\" assessed Failed due to failed (1) > failureLimit (0)"
        );
    }

    #[test]
    fn terminate_ends_the_run_successfully() {
        let m = metric(json!({"interval": "1s"}));
        let mut st = status_with(&m, &["Successful"]);
        let spec = AnalysisRunSpec {
            terminate: Some(true),
            ..Default::default()
        };
        let (phase, msg, _) = assess_run(&spec, &mut st, &[m], &|_| false, ts(5));
        assert_eq!(
            (phase.as_str(), msg.as_str()),
            (ANALYSIS_PHASE_SUCCESSFUL, "Run Terminated")
        );
    }

    #[test]
    fn scheduling_and_exact_next_times() {
        let spec = AnalysisRunSpec::default();
        let m = metric(json!({"interval": "30s", "count": 3}));
        let empty = AnalysisRunStatus::default();
        assert_eq!(
            generate_tasks(&spec, &empty, std::slice::from_ref(&m), ts(0)).len(),
            1,
            "first measurement at once"
        );
        let st = status_with(&m, &["Successful"]); // finished at ts(0)
        assert!(
            generate_tasks(&spec, &st, std::slice::from_ref(&m), ts(10)).is_empty(),
            "interval not elapsed"
        );
        assert_eq!(
            next_reconcile(&st, std::slice::from_ref(&m), ts(10)),
            Some(ts(30))
        );
        assert_eq!(
            generate_tasks(&spec, &st, std::slice::from_ref(&m), ts(31)).len(),
            1
        );
        // an Error is retried after 10 s whatever the interval
        let st = status_with(&m, &["Error"]);
        assert_eq!(
            next_reconcile(&st, std::slice::from_ref(&m), ts(1)),
            Some(ts(10))
        );
        // count reached: nothing more, no requeue
        let st = status_with(&m, &["Successful", "Successful", "Successful"]);
        assert!(generate_tasks(&spec, &st, std::slice::from_ref(&m), ts(500)).is_empty());
        assert_eq!(next_reconcile(&st, std::slice::from_ref(&m), ts(500)), None);
        // initialDelay
        let d = metric(json!({"initialDelay": "20s"}));
        let st = AnalysisRunStatus {
            started_at: Some(k8s_time(ts(0))),
            ..Default::default()
        };
        assert!(generate_tasks(&spec, &st, std::slice::from_ref(&d), ts(5)).is_empty());
        assert_eq!(
            next_reconcile(&st, std::slice::from_ref(&d), ts(5)),
            Some(ts(20))
        );
        assert_eq!(
            generate_tasks(&spec, &st, std::slice::from_ref(&d), ts(21)).len(),
            1
        );
    }

    #[test]
    fn terminating_run_resumes_in_flight_measurements_only() {
        let m = metric(json!({"interval": "1s"}));
        let mut st = AnalysisRunStatus::default();
        record(
            &mut st,
            &m,
            false,
            measurement("Running", None),
            false,
            ts(0),
            None,
        );
        let spec = AnalysisRunSpec {
            terminate: Some(true),
            ..Default::default()
        };
        let tasks = generate_tasks(&spec, &st, std::slice::from_ref(&m), ts(100));
        assert_eq!(tasks.len(), 1);
        assert!(tasks[0].terminate && tasks[0].incomplete.is_some());
        let st = status_with(&m, &["Successful"]);
        assert!(generate_tasks(&spec, &st, std::slice::from_ref(&m), ts(100)).is_empty());
    }

    /// Argo's `ValidateMetrics` (utils/analysis/factory.go), checked before any measurement
    /// ("Analysis spec invalid: ..."). Without it a run with no metrics, or `count > 1` without an
    /// interval, or an unparseable interval, stays Running forever: nothing schedules the next
    /// measurement, and the rollout waits on its analysis step.
    #[test]
    fn metric_validation_matches_argo() {
        let ok = |v| validate_metrics(&[metric(v)]);
        assert_eq!(validate_metrics(&[]), Err("no metrics specified".into()));
        assert_eq!(ok(json!({})), Ok(()));
        assert_eq!(ok(json!({"count": 3, "interval": "1m"})), Ok(()));
        assert_eq!(
            validate_metrics(&[metric(json!({})), metric(json!({}))]),
            Err("metrics[1]: duplicate name 'm'".into())
        );
        assert_eq!(
            ok(json!({"count": 2})),
            Err("metrics[0]: interval must be specified when count > 1".into())
        );
        assert!(
            ok(json!({"interval": "soon"}))
                .is_err_and(|e| e.starts_with("metrics[0]: invalid interval string: ")),
        );
        assert!(
            ok(json!({"initialDelay": "later"}))
                .is_err_and(|e| e.starts_with("metrics[0]: invalid startDelay string: ")),
        );
        assert_eq!(
            ok(json!({"failureLimit": -1})),
            Err(
                "metrics[0]: failureLimit and consecutiveSuccessLimit cannot both be disabled"
                    .into()
            )
        );
        assert_eq!(
            ok(json!({"failureLimit": -2})),
            Err("metrics[0]: failureLimit must be >= 0, or -1 to be disabled".into())
        );
        assert_eq!(
            ok(json!({"count": 2, "interval": "1s", "failureLimit": 3})),
            Err("metrics[0]: count (2) must be >= failureLimit + consecutiveSuccessLimit (3 + 0) if both >= 0".into())
        );
        assert_eq!(
            ok(json!({"inconclusiveLimit": -1})),
            Err("metrics[0]: inconclusiveLimit must be >= 0".into())
        );
        assert_eq!(
            ok(json!({"consecutiveErrorLimit": -1})),
            Err("metrics[0]: consecutiveErrorLimit must be >= 0".into())
        );
        let no_provider: Metric = serde_json::from_value(json!({"name": "m", "provider": {}}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            validate_metrics(&[no_provider]),
            Err("metrics[0]: no provider specified".into())
        );
    }

    #[test]
    fn measurement_retention() {
        let m = metric(json!({"interval": "1s"}));
        let mut st = status_with(&m, &["Successful"; 15]);
        gc_measurements(&mut st, &|_| DEFAULT_MEASUREMENT_HISTORY_LIMIT);
        let r = &st.metric_results.clone().unwrap_or_default()[0];
        assert_eq!(r.measurements.as_ref().map(Vec::len), Some(10));
        assert_eq!(r.count, Some(15), "counters survive garbage collection");
    }

    #[test]
    fn worst_order() {
        let order = [
            ANALYSIS_PHASE_SUCCESSFUL,
            ANALYSIS_PHASE_RUNNING,
            ANALYSIS_PHASE_PENDING,
            ANALYSIS_PHASE_INCONCLUSIVE,
            ANALYSIS_PHASE_ERROR,
            ANALYSIS_PHASE_FAILED,
        ];
        for w in order.windows(2) {
            assert!(is_worse(w[1], w[0]) && !is_worse(w[0], w[1]));
        }
    }
}

/// Rule matching for `dryRun` and `measurementRetention`: Argo matches each rule's `metricName`
/// as an unanchored regular expression, and a rule that matches no metric is a spec error.
fn matching<'m>(
    kind: &str,
    index: usize,
    pattern: &str,
    metrics: &'m [Metric],
) -> Result<Vec<&'m str>, String> {
    let matched: Vec<&str> = match regex::Regex::new(pattern) {
        Ok(re) => metrics
            .iter()
            .filter(|m| re.is_match(&m.name))
            .map(|m| m.name.as_str())
            .collect(),
        Err(_) => Vec::new(),
    };
    if matched.is_empty() {
        return Err(format!(
            "{kind}[{index}]: Rule didn't match any metric name(s)"
        ));
    }
    Ok(matched)
}

/// The metrics running in dry-run mode.
pub fn dry_run_metrics(
    rules: &[crate::api::analysis::DryRun],
    metrics: &[Metric],
) -> Result<std::collections::BTreeSet<String>, String> {
    let mut out = std::collections::BTreeSet::new();
    for (i, r) in rules.iter().enumerate() {
        out.extend(
            matching("dryRun", i, &r.metric_name, metrics)?
                .into_iter()
                .map(str::to_string),
        );
    }
    Ok(out)
}

/// Measurements kept per metric (`measurementRetention`, default 10). As in Argo's
/// `garbageCollectMeasurements`, a rule's limit counts only when positive; the last matching rule
/// wins.
pub fn retention_limits(
    rules: &[crate::api::analysis::MeasurementRetention],
    metrics: &[Metric],
) -> Result<std::collections::BTreeMap<String, usize>, String> {
    let mut out = std::collections::BTreeMap::new();
    for (i, r) in rules.iter().enumerate() {
        for m in matching("measurementRetention", i, &r.metric_name, metrics)? {
            let keep = if r.limit > 0 {
                r.limit as usize
            } else {
                DEFAULT_MEASUREMENT_HISTORY_LIMIT
            };
            out.insert(m.to_string(), keep);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod rule_tests {
    use super::*;
    use crate::api::analysis::{DryRun, MeasurementRetention};

    fn metrics() -> Vec<Metric> {
        ["web-rate", "latency"]
            .iter()
            .map(|n| {
                serde_json::from_value(
                    serde_json::json!({"name": n, "provider": {"web": {"url": "http://x"}}}),
                )
                .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    #[test]
    fn dry_run_rules_are_unanchored_regexes() {
        let ms = metrics();
        let dr = |p: &str| {
            vec![DryRun {
                metric_name: p.into(),
            }]
        };
        assert_eq!(dry_run_metrics(&dr(".*"), &ms).map(|s| s.len()), Ok(2));
        assert_eq!(
            dry_run_metrics(&dr("rate"), &ms).map(|s| s.into_iter().collect::<Vec<_>>()),
            Ok(vec!["web-rate".to_string()])
        );
        assert_eq!(
            dry_run_metrics(&dr("*"), &ms),
            Err("dryRun[0]: Rule didn't match any metric name(s)".into())
        );
        assert_eq!(
            dry_run_metrics(&dr("nope"), &ms),
            Err("dryRun[0]: Rule didn't match any metric name(s)".into())
        );
        let keep = retention_limits(
            &[MeasurementRetention {
                metric_name: "lat".into(),
                limit: 3,
            }],
            &ms,
        );
        assert_eq!(keep.map(|k| k.get("latency").copied()), Ok(Some(3)));
    }

    /// Argo's `garbageCollectMeasurements` uses a rule's limit only when it is positive; 0 (or a
    /// negative limit) keeps the default 10. Keeping 0 would drop every measurement, so the metric
    /// would be measured again on every reconcile and never complete.
    #[test]
    fn retention_limit_zero_keeps_the_default() {
        let ms = metrics();
        let rule = |limit| MeasurementRetention {
            metric_name: "lat".into(),
            limit,
        };
        for limit in [0, -1] {
            let keep = retention_limits(&[rule(limit)], &ms);
            assert_eq!(
                keep.map(|k| k.get("latency").copied()),
                Ok(Some(DEFAULT_MEASUREMENT_HISTORY_LIMIT)),
                "limit {limit}"
            );
        }
        // the last matching rule wins, as in Argo's map
        let keep = retention_limits(&[rule(3), rule(0)], &ms);
        assert_eq!(
            keep.map(|k| k.get("latency").copied()),
            Ok(Some(DEFAULT_MEASUREMENT_HISTORY_LIMIT))
        );
    }
}
