//! Argo's condition language for AnalysisRun metrics: `successCondition` / `failureCondition`
//! evaluated against what a provider measured (`result`), and Argo's decision table on top.
//!
//! Argo type-checks conditions (Go expr-lang/expr with an environment typed by `result`) before
//! running them, so `asFloat(result) == "1.1"` is a compile error there. The `expr-lang` crate has
//! no checker, no work or memory bound and no recursion limit, so lexer, parser, checker and a
//! budgeted interpreter are ported here; `expr-lang` still supplies the long tail of builtins and
//! all time/duration arithmetic, with inputs charged to the budget. Sub-modules, bottom up:
//! `gofmt` ← `types` ← `lexer` ← `parser` ← `checker`; `value` and `budget`; `interp`; the entry
//! points are here.
//!
//! **Budget, clock and threads.** An expression may be at most 4,096 bytes long and nest at most
//! 128 levels; values (the metric result included) nest at most 128 levels. Interpretation then
//! runs under [`Limits::default`]: 2,000,000 steps (nodes evaluated, loop iterations, elements
//! compared or copied, builtin inputs), 1,000,000 memory units (one per element, or per 16 bytes
//! of string) and 100 ms of elapsed time on the monotonic clock: `Instant::now()` is read when
//! interpretation starts and compared each time another 1,024 steps have been counted. Lexing,
//! parsing and checking are bounded by the size limits instead; work delegated to `expr-lang` is
//! not interrupted but charged for its input before it runs (and, for the builtins whose output
//! can outgrow their input, size-checked), and for its output after. Every evaluating entry
//! point runs its work on one new scoped thread (`sluice-expr`, 16 MiB stack) and blocks until
//! it has joined it, so the caller's stack size does not matter and a panic (or a failure to
//! spawn) becomes [`EvalError::Runtime`]; nothing outlives the call, and the only state shared
//! between calls is read-only (the builtin table). Steps and memory are counted exactly, so those
//! limits give the same answer on every run; the clock can only replace a result with a
//! time-budget error, which a realistic condition, finishing far inside 100 ms, never meets —
//! only an expression heavy enough to approach the limits may, on a slow or loaded machine, get
//! that error on one run and a result on another. The language reads the outside world in two
//! places only, both as in Argo: `now()` (the wall clock) and the `"Local"` time zone
//! (`timezone("Local")`, `.Local()`: the `TZ` variable, else the system zone,
//! `/etc/localtime`).

mod budget;
mod checker;
mod gofmt;
mod interp;
mod lexer;
mod parser;
mod types;
mod value;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;

pub use types::{ConditionKind, EvalError, Limits, MetricValue, Outcome};

use checker::{Checker, Ty, metric_ty};
use parser::parse;
use value::{Val, ext_timestamp, from_metric, go_type, to_metric};

/// Evaluate one condition against `result`. Bounded by [`Limits::default`]; no network or
/// shared state, and the clock and time zone only as the module doc says.
pub fn eval_condition(expr: &str, result: &MetricValue) -> Result<bool, EvalError> {
    eval_condition_with(expr, result, &Limits::default())
}

/// [`eval_condition`] with explicit limits.
pub fn eval_condition_with(
    expr: &str,
    result: &MetricValue,
    limits: &Limits,
) -> Result<bool, EvalError> {
    isolated(|| condition(expr, result, limits))
}

/// Argo's `EvaluateResult` decision table (reference §1.16). An empty condition counts as unset.
/// The success condition is evaluated first; the first error wins and is wrapped as Argo wraps
/// it, with the "nil or empty" message when `result` has no data.
pub fn evaluate_result(
    result: &MetricValue,
    success: Option<&str>,
    failure: Option<&str>,
) -> Result<Outcome, EvalError> {
    let success = success.filter(|s| !s.is_empty());
    let failure = failure.filter(|s| !s.is_empty());
    isolated(|| {
        let limits = Limits::default();
        let run = |kind: ConditionKind, expr: &str| {
            condition(expr, result, &limits)
                .map_err(|e| wrap_condition_error(kind, expr, result, e))
        };
        let succeeded = match success {
            Some(expr) => run(ConditionKind::Success, expr)?,
            None => false,
        };
        let failed = match failure {
            Some(expr) => run(ConditionKind::Failure, expr)?,
            None => false,
        };
        Ok(decide(
            success.is_some(),
            failure.is_some(),
            succeeded,
            failed,
        ))
    })
}

/// Evaluate any expression with the given variables, e.g. Prometheus `rangeQuery` bounds such as
/// `now() - duration("1h")`. `isNil` and `default` test the variable named `result`, if any.
/// Times come back as RFC 3339 strings in UTC with nanoseconds when present
/// (`2023-08-13T23:00:00Z`); durations as Go duration strings (`1h30m0s`).
pub fn eval_value(expr: &str, env: &[(&str, MetricValue)]) -> Result<MetricValue, EvalError> {
    isolated(|| {
        let env: Vec<(&str, &MetricValue)> = env.iter().map(|(k, v)| (*k, v)).collect();
        let (value, _) = evaluate(expr, &env, &Limits::default())?;
        Ok(to_metric(&value))
    })
}

/// Argo's `EvalTime`: an expression that must yield a time, e.g. `now() - duration("1h")`.
pub fn eval_time(expr: &str) -> Result<jiff::Timestamp, EvalError> {
    isolated(|| {
        let (value, _) = evaluate(expr, &[], &Limits::default())?;
        if let Val::Ext(ext, _) = &value
            && let Some(ts) = ext_timestamp(ext)
        {
            return ts;
        }
        Err(EvalError::NotTime(go_type(&value).to_owned()))
    })
}

fn decide(has_success: bool, has_failure: bool, succeeded: bool, failed: bool) -> Outcome {
    match (has_success, has_failure) {
        (false, false) => Outcome::Successful,
        (true, false) if succeeded => Outcome::Successful,
        (true, false) => Outcome::Failed,
        (false, true) if failed => Outcome::Failed,
        (false, true) => Outcome::Successful,
        (true, true) if failed => Outcome::Failed,
        (true, true) if succeeded => Outcome::Successful,
        (true, true) => Outcome::Inconclusive,
    }
}

fn wrap_condition_error(
    condition: ConditionKind,
    expression: &str,
    result: &MetricValue,
    err: EvalError,
) -> EvalError {
    // Argo replaces every evaluation error on an empty result; our own limits are not Argo
    // errors and would be misreported as missing data, so they keep their message.
    let argo_error = matches!(
        err,
        EvalError::Compile(_) | EvalError::Runtime(_) | EvalError::NotBool(_)
    );
    if argo_error && result.is_nil_or_empty() {
        EvalError::NoData {
            condition,
            expression: expression.to_owned(),
        }
    } else {
        EvalError::Condition {
            condition,
            expression: expression.to_owned(),
            source: Box::new(err),
        }
    }
}

const EVAL_STACK_BYTES: usize = 16 << 20;
const INTERNAL_PANIC: &str = "internal error: the expression evaluator panicked";

/// Run on a fresh thread with a known stack; a panic becomes an error instead of unwinding into
/// the controller.
fn isolated<T: Send>(f: impl FnOnce() -> Result<T, EvalError> + Send) -> Result<T, EvalError> {
    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("sluice-expr".to_owned())
            .stack_size(EVAL_STACK_BYTES)
            .spawn_scoped(scope, f);
        match spawned {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(EvalError::Runtime(INTERNAL_PANIC.to_owned()))),
            Err(e) => Err(EvalError::Runtime(format!(
                "could not start the expression evaluator: {e}"
            ))),
        }
    })
}

fn condition(expr: &str, result: &MetricValue, limits: &Limits) -> Result<bool, EvalError> {
    let (value, ty) = evaluate(expr, &[("result", result)], limits)?;
    match value {
        Val::Bool(b) => Ok(b),
        other => Err(EvalError::NotBool(type_for_message(&ty, &other))),
    }
}

/// Go prints the dynamic type; the static one is needed only where our values are less precise
/// than Go's (`[]float64` vs `[]interface {}`, `int64` vs `int`).
fn type_for_message(ty: &Ty, value: &Val) -> String {
    match (ty, value) {
        (Ty::Array(..), Val::Arr(..)) | (Ty::Int64, Val::Int(_)) => ty.name(),
        _ => go_type(value).to_owned(),
    }
}

fn evaluate(
    src: &str,
    env: &[(&str, &MetricValue)],
    limits: &Limits,
) -> Result<(Val, Ty), EvalError> {
    let mut vars = Vec::with_capacity(env.len());
    let mut types = Vec::with_capacity(env.len());
    for (name, value) in env {
        vars.push(((*name).to_owned(), from_metric(value, 0)?));
        types.push(((*name).to_owned(), metric_ty(value)));
    }
    let result = vars
        .iter()
        .find(|(name, _)| name == "result")
        .map_or(Val::Nil, |(_, v)| v.clone());
    let node = parse(src, limits)?;
    let ty = Checker::new(&types).visit(&node)?;
    let value = interp::run(&node, &vars, result, *limits)?;
    Ok((value, ty))
}
