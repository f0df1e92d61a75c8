//! The public data types: what a provider measured ([`MetricValue`]), what a measurement's
//! conditions decide ([`Outcome`]), why evaluation failed ([`EvalError`]) and its [`Limits`].

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::time::Duration;

use super::gofmt::go_float;

/// What a provider measured.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    /// No data (Go `nil`), e.g. Datadog's empty result.
    Nil,
    /// A boolean.
    Bool(bool),
    /// A float64 — every JSON number, every Prometheus sample.
    Float(f64),
    /// A Go `int`.
    Int(i64),
    /// A string, e.g. a web body that is not JSON.
    String(String),
    /// A slice; Prometheus vectors and matrices become a list of floats (`[]float64` in Go).
    List(Vec<MetricValue>),
    /// A JSON object (`map[string]interface {}` in Go).
    Map(BTreeMap<String, MetricValue>),
}

impl MetricValue {
    /// A JSON value as Go's `json.Unmarshal` into `any` sees it: every number is a float64.
    pub fn from_json(v: &serde_json::Value) -> MetricValue {
        match v {
            serde_json::Value::Null => MetricValue::Nil,
            serde_json::Value::Bool(b) => MetricValue::Bool(*b),
            serde_json::Value::Number(n) => n.as_f64().map_or(MetricValue::Nil, MetricValue::Float),
            serde_json::Value::String(s) => MetricValue::String(s.clone()),
            serde_json::Value::Array(items) => {
                MetricValue::List(items.iter().map(MetricValue::from_json).collect())
            }
            serde_json::Value::Object(map) => MetricValue::Map(
                map.iter()
                    .map(|(k, v)| (k.clone(), MetricValue::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// Go's fmt-like rendering Argo stores in Measurement.value, e.g. "[0.99]", "0.5", "[]",
    /// "map[a:1]". This is `fmt.Sprint` (`%v`): list items separated by spaces, map keys sorted,
    /// floats in `%g` shortest form (`1e+06`). Providers that format their own value string (the
    /// Prometheus provider joins samples with ","; the web provider stores the JSON) should do so.
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        write_go_metric(&mut out, self);
        out
    }

    /// Argo's `isNilOrEmpty`: nil or an empty list. An empty map is data.
    pub fn is_nil_or_empty(&self) -> bool {
        match self {
            MetricValue::Nil => true,
            MetricValue::List(items) => items.is_empty(),
            _ => false,
        }
    }
}

impl From<f64> for MetricValue {
    fn from(v: f64) -> Self {
        MetricValue::Float(v)
    }
}

impl From<i64> for MetricValue {
    fn from(v: i64) -> Self {
        MetricValue::Int(v)
    }
}

impl From<bool> for MetricValue {
    fn from(v: bool) -> Self {
        MetricValue::Bool(v)
    }
}

impl From<&str> for MetricValue {
    fn from(v: &str) -> Self {
        MetricValue::String(v.to_owned())
    }
}

impl From<String> for MetricValue {
    fn from(v: String) -> Self {
        MetricValue::String(v)
    }
}

impl From<Vec<f64>> for MetricValue {
    fn from(v: Vec<f64>) -> Self {
        MetricValue::List(v.into_iter().map(MetricValue::Float).collect())
    }
}

/// The phase one measurement gets from its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The measurement passed.
    Successful,
    /// The measurement failed.
    Failed,
    /// Both conditions were set and neither held.
    Inconclusive,
}

/// Which of a metric's two conditions an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionKind {
    /// `successCondition`.
    Success,
    /// `failureCondition`.
    Failure,
}

impl fmt::Display for ConditionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConditionKind::Success => "successCondition",
            ConditionKind::Failure => "failureCondition",
        })
    }
}

/// Why a condition could not be evaluated. Messages match Argo's where Argo has one.
#[derive(Clone, Debug, thiserror::Error, PartialEq)]
pub enum EvalError {
    /// The expression does not parse or does not type-check against `result` (Go: `expr.Compile`).
    #[error("{0}")]
    Compile(String),
    /// Evaluation failed, e.g. `index out of range: 0 (array length is 0)` (Go: `expr.Run`).
    #[error("{0}")]
    Runtime(String),
    /// The expression yielded something other than a bool; holds the Go type name.
    #[error("expected bool, but got {0}")]
    NotBool(String),
    /// A time expression yielded something other than a time; holds the Go type name.
    #[error("expected time.Time, but got {0}")]
    NotTime(String),
    /// Rejected before evaluation: too long or nested too deeply (a Sluice limit, not Argo's).
    #[error("{0}")]
    TooComplex(String),
    /// The step, memory or time budget ran out (memory: Go's own "memory budget exceeded").
    #[error("{0}")]
    Budget(String),
    /// Argo's message when a condition fails on a nil or empty result.
    #[error(
        "could not evaluate {condition} \"{expression}\": metric result is nil or empty: no data returned from the metric provider"
    )]
    NoData {
        /// Which condition.
        condition: ConditionKind,
        /// The condition's text.
        expression: String,
    },
    /// Argo's wrapping of an evaluation error with the condition it came from.
    #[error("could not evaluate {condition} \"{expression}\": {source}")]
    Condition {
        /// Which condition.
        condition: ConditionKind,
        /// The condition's text.
        expression: String,
        /// What went wrong.
        source: Box<EvalError>,
    },
}

impl EvalError {
    /// A low-cardinality label for metrics.
    pub fn category(&self) -> &'static str {
        match self {
            EvalError::Compile(_) => "compile",
            EvalError::Runtime(_) => "runtime",
            EvalError::NotBool(_) | EvalError::NotTime(_) => "type",
            EvalError::TooComplex(_) => "too_complex",
            EvalError::Budget(_) => "budget",
            EvalError::NoData { .. } => "no_data",
            EvalError::Condition { source, .. } => source.category(),
        }
    }
}

/// Bounds on one evaluation. Conditions are written by whoever may create AnalysisTemplates and
/// run inside a controller shared by every namespace, so none of these is optional.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest expression accepted, in bytes.
    pub max_len: usize,
    /// Deepest nesting accepted, both while parsing and in the syntax tree.
    pub max_depth: usize,
    /// Interpreter steps (nodes evaluated, loop iterations, elements copied by builtins).
    pub max_steps: u64,
    /// Values allocated during evaluation: one unit per element, or per 16 bytes of string.
    pub max_memory: u64,
    /// Wall-clock backstop, checked every 1024 steps.
    pub max_time: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_len: 4096,
            max_depth: 128,
            max_steps: 2_000_000,
            max_memory: 1_000_000,
            max_time: Duration::from_millis(100),
        }
    }
}

fn write_go_metric(out: &mut String, v: &MetricValue) {
    match v {
        MetricValue::Nil => out.push_str("<nil>"),
        MetricValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        MetricValue::Float(f) => out.push_str(&go_float(*f)),
        MetricValue::Int(i) => {
            let _ = write!(out, "{i}");
        }
        MetricValue::String(s) => out.push_str(s),
        MetricValue::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_metric(out, item);
            }
            out.push(']');
        }
        MetricValue::Map(map) => {
            out.push_str("map[");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_metric(out, item);
            }
            out.push(']');
        }
    }
}
