//! Argo's condition language for AnalysisRun metrics: `successCondition` / `failureCondition`
//! evaluated against what a provider measured (`result`), and Argo's decision table on top.
//!
//! Argo type-checks conditions (Go expr-lang/expr with an environment typed by `result`) before
//! running them, so `asFloat(result) == "1.1"` is a compile error there. The `expr-lang` crate has
//! no checker, no work or memory bound and no recursion limit, so lexer, parser, checker and a
//! budgeted interpreter are ported here; `expr-lang` still supplies the long tail of builtins and
//! all time/duration arithmetic, with inputs charged to the budget. Each evaluation runs on its
//! own thread with a fixed stack, so neither the caller's stack size nor a panic can hurt the
//! controller.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::rc::Rc;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use regex::Regex;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

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

/// Evaluate one condition against `result`. Bounded by [`Limits::default`] and does no I/O.
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
    let mut interp = Interp {
        budget: Budget::new(*limits),
        vars: &vars,
        result,
        lets: Vec::new(),
        frames: Vec::new(),
        regexes: HashMap::new(),
    };
    match interp.eval(&node) {
        Ok(v) => Ok((v, ty)),
        Err(Stop::Fail(e)) => Err(e),
        Err(Stop::ChainNil) => Ok((Val::Nil, ty)),
    }
}

// ---------------------------------------------------------------------------------------------
// Go formatting
// ---------------------------------------------------------------------------------------------

/// `strconv.FormatFloat(f, 'g', -1, 64)`, which is what `%v` prints.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` gives the same shortest round-trip digits Go uses.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.unsigned_abs());
    }
    let point = exp + 1;
    let nd = digits.len() as i32;
    let body = if point <= 0 {
        format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
    } else if point >= nd {
        format!("{digits}{}", "0".repeat((point - nd) as usize))
    } else {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// `strconv.Quote`.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32)
                } else {
                    write!(out, "\\U{:08x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `time.Duration.String`.
fn go_duration(nanos: i64) -> String {
    fn frac(v: u64, prec: u32) -> (u64, String) {
        let p = 10u64.pow(prec);
        let (int, rem) = (v / p, v % p);
        if rem == 0 {
            return (int, String::new());
        }
        let mut digits = format!("{rem:0width$}", width = prec as usize);
        while digits.ends_with('0') {
            digits.pop();
        }
        (int, format!(".{digits}"))
    }
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".to_owned();
    }
    let body = if u < 1_000_000_000 {
        let (unit, prec) = if u < 1_000 {
            ("ns", 0)
        } else if u < 1_000_000 {
            ("µs", 3)
        } else {
            ("ms", 6)
        };
        let (int, f) = if prec == 0 {
            (u, String::new())
        } else {
            frac(u, prec)
        };
        format!("{int}{f}{unit}")
    } else {
        let (secs, f) = frac(u, 9);
        let (s, mins) = (secs % 60, secs / 60);
        let (m, h) = (mins % 60, mins / 60);
        if h > 0 {
            format!("{h}h{m}m{s}{f}s")
        } else if mins > 0 {
            format!("{m}m{s}{f}s")
        } else {
            format!("{s}{f}s")
        }
    };
    if nanos < 0 { format!("-{body}") } else { body }
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

// ---------------------------------------------------------------------------------------------
// Lexer (a port of expr's state machine, so tokens and their error messages match)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Number,
    Str,
    Bytes,
    Op,
    Bracket,
    Eof,
    /// A lexing error, reported when the parser reaches it (as Go's lazy lexer would).
    Error,
}

#[derive(Clone, Debug)]
struct Token {
    kind: Kind,
    value: String,
    bytes: Vec<u8>,
}

static END: Token = Token {
    kind: Kind::Eof,
    value: String::new(),
    bytes: Vec::new(),
};

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Ident => "Identifier",
            Kind::Number => "Number",
            Kind::Str => "String",
            Kind::Bytes => "Bytes",
            Kind::Op => "Operator",
            Kind::Bracket => "Bracket",
            Kind::Eof | Kind::Error => "EOF",
        };
        if self.value.is_empty() {
            f.write_str(kind)
        } else {
            write!(f, "{kind}({})", go_quote(&self.value))
        }
    }
}

fn is_alpha(c: char) -> bool {
    c == '_' || c == '$' || c.is_alphabetic()
}

fn is_alnum(c: char) -> bool {
    is_alpha(c) || c.is_numeric()
}

fn is_valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_alpha) && chars.all(is_alnum)
}

struct Lexer<'s> {
    src: &'s str,
    start: usize,
    pos: usize,
    out: Vec<Token>,
}

impl<'s> Lexer<'s> {
    fn run(src: &'s str) -> Vec<Token> {
        let mut lx = Lexer {
            src,
            start: 0,
            pos: 0,
            out: Vec::new(),
        };
        loop {
            match lx.root() {
                Ok(true) => {}
                Ok(false) => {
                    lx.push(Kind::Eof, String::new());
                    break;
                }
                Err(msg) => {
                    lx.push(Kind::Error, msg);
                    break;
                }
            }
        }
        lx.out
    }

    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..).and_then(|s| s.chars().next())
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn backup(&mut self, c: char) {
        self.pos -= c.len_utf8();
    }

    fn accept(&mut self, set: &str) -> bool {
        match self.peek() {
            Some(c) if set.contains(c) => {
                self.pos += c.len_utf8();
                true
            }
            _ => false,
        }
    }

    fn accept_run(&mut self, set: &str) {
        while self.accept(set) {}
    }

    fn word(&self) -> &'s str {
        self.src.get(self.start..self.pos).unwrap_or("")
    }

    fn push(&mut self, kind: Kind, value: String) {
        self.out.push(Token {
            kind,
            value,
            bytes: Vec::new(),
        });
        self.start = self.pos;
    }

    fn emit(&mut self, kind: Kind) {
        let word = self.word().to_owned();
        self.push(kind, word);
    }

    fn root(&mut self) -> Result<bool, String> {
        let Some(r) = self.next() else {
            return Ok(false);
        };
        match r {
            c if c.is_whitespace() => self.start = self.pos,
            '\'' | '"' => {
                self.scan_string(r)?;
                let s = unescape(self.word(), false)?;
                self.push(Kind::Str, String::from_utf8_lossy(&s).into_owned());
            }
            '`' => self.scan_raw()?,
            'b' | 'B' if matches!(self.peek(), Some('\'' | '"')) => {
                if let Some(quote) = self.next() {
                    self.scan_string(quote)?;
                }
                let bytes = unescape(self.word().get(1..).unwrap_or(""), true)?;
                self.out.push(Token {
                    kind: Kind::Bytes,
                    value: String::from_utf8_lossy(&bytes).into_owned(),
                    bytes,
                });
                self.start = self.pos;
            }
            '0'..='9' => {
                self.backup(r);
                self.number()?;
            }
            '?' => {
                self.accept(".?");
                self.emit(Kind::Op);
            }
            '/' => {
                if self.accept("/") {
                    while let Some(c) = self.next() {
                        if c == '\n' {
                            break;
                        }
                    }
                    self.start = self.pos;
                } else if self.accept("*") {
                    loop {
                        match self.next() {
                            None => return Err("unclosed comment".to_owned()),
                            Some('*') if self.accept("/") => break,
                            Some(_) => {}
                        }
                    }
                    self.start = self.pos;
                } else {
                    self.emit(Kind::Op);
                }
            }
            '#' => {
                self.accept("#");
                self.emit(Kind::Op);
                while let Some(c) = self.peek() {
                    if !is_alnum(c) {
                        break;
                    }
                    self.pos += c.len_utf8();
                }
                if !self.word().is_empty() {
                    self.emit(Kind::Ident);
                }
            }
            '|' => {
                self.accept("|");
                self.emit(Kind::Op);
            }
            ':' => {
                self.accept(":");
                self.emit(Kind::Op);
            }
            '(' | '[' | '{' | ')' | ']' | '}' => self.emit(Kind::Bracket),
            ',' | ';' | '%' | '+' | '-' | '^' => self.emit(Kind::Op),
            '&' | '!' | '=' | '*' | '<' | '>' => {
                self.accept("&=*");
                self.emit(Kind::Op);
            }
            '.' => {
                if matches!(self.peek(), Some('0'..='9')) {
                    self.number()?;
                } else {
                    self.accept(".");
                    self.emit(Kind::Op);
                }
            }
            c if is_alnum(c) => {
                self.backup(c);
                while let Some(c) = self.peek() {
                    if !is_alnum(c) {
                        break;
                    }
                    self.pos += c.len_utf8();
                }
                let kind = match self.word() {
                    "not" | "in" | "or" | "and" | "matches" | "contains" | "startsWith"
                    | "endsWith" | "let" | "if" | "else" => Kind::Op,
                    _ => Kind::Ident,
                };
                self.emit(kind);
            }
            c => return Err(format!("unrecognized character: U+{:04X} '{c}'", c as u32)),
        }
        Ok(true)
    }

    fn number(&mut self) -> Result<(), String> {
        if !self.scan_number() {
            return Err(format!("bad number syntax: {}", go_quote(self.word())));
        }
        self.emit(Kind::Number);
        Ok(())
    }

    fn scan_number(&mut self) -> bool {
        let mut digits = "0123456789_";
        if self.accept("0") {
            if self.accept("xX") {
                digits = "0123456789abcdefABCDEF_";
            } else if self.accept("oO") {
                digits = "01234567_";
            } else if self.accept("bB") {
                digits = "01_";
            }
        }
        self.accept_run(digits);
        let end = self.pos;
        if self.accept(".") {
            // `1..2` is a range, not the float `1.`.
            if self.peek() == Some('.') {
                self.pos = end;
                return true;
            }
            self.accept_run(digits);
        }
        if self.accept("eE") {
            self.accept("+-");
            self.accept_run(digits);
        }
        if let Some(c) = self.peek()
            && is_alnum(c)
        {
            self.pos += c.len_utf8();
            return false;
        }
        true
    }

    fn scan_string(&mut self, quote: char) -> Result<(), String> {
        loop {
            match self.next() {
                None | Some('\n') => return Err("literal not terminated".to_owned()),
                Some(c) if c == quote => return Ok(()),
                Some('\\') => self.scan_escape(quote)?,
                Some(_) => {}
            }
        }
    }

    fn scan_escape(&mut self, quote: char) -> Result<(), String> {
        let bad = || "invalid char escape".to_owned();
        match self.next() {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => Ok(()),
            Some(c) if c == quote => Ok(()),
            Some(c @ '0'..='7') => self.scan_digits(Some(c), 8, 3),
            Some('x') => {
                let c = self.next();
                self.scan_digits(c, 16, 2)
            }
            Some('u') if self.peek() == Some('{') => {
                self.next();
                let mut digits = 0;
                loop {
                    match self.peek() {
                        Some('}') => break,
                        Some(c) if c.is_ascii_hexdigit() && digits < 6 => {
                            self.next();
                            digits += 1;
                        }
                        _ => return Err(bad()),
                    }
                }
                if digits == 0 {
                    return Err(bad());
                }
                self.next();
                Ok(())
            }
            Some('u') => {
                let c = self.next();
                self.scan_digits(c, 16, 4)
            }
            Some('U') => {
                let c = self.next();
                self.scan_digits(c, 16, 8)
            }
            _ => Err(bad()),
        }
    }

    /// `first` has been consumed already.
    fn scan_digits(&mut self, first: Option<char>, base: u32, n: usize) -> Result<(), String> {
        if !first.is_some_and(|c| c.is_digit(base)) {
            return Err("invalid char escape".to_owned());
        }
        for _ in 1..n {
            match self.peek() {
                Some(c) if c.is_digit(base) => {
                    self.next();
                }
                _ => return Err("invalid char escape".to_owned()),
            }
        }
        Ok(())
    }

    fn scan_raw(&mut self) -> Result<(), String> {
        let mut text = String::new();
        loop {
            match self.next() {
                None => return Err("literal not terminated".to_owned()),
                Some('`') if self.peek() == Some('`') => {
                    self.next();
                    text.push('`');
                }
                Some('`') => break,
                Some(c) => text.push(c),
            }
        }
        self.push(Kind::Str, text);
        Ok(())
    }
}

/// Unquote and unescape a quoted literal; `bytes` keeps `\x` and octal escapes as raw bytes.
fn unescape(quoted: &str, bytes: bool) -> Result<Vec<u8>, String> {
    let bad = || "unable to unescape string".to_owned();
    let norm = quoted.replace("\r\n", "\n").replace('\r', "\n");
    let mut chars = norm.chars();
    let (Some(open), Some(close)) = (chars.next(), chars.next_back()) else {
        return Err(bad());
    };
    if open != close || !matches!(open, '"' | '\'') {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(norm.len());
    let push = |out: &mut Vec<u8>, c: char| {
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    };
    let mut it = chars.peekable();
    while let Some(c) = it.next() {
        if c != '\\' {
            push(&mut out, c);
            continue;
        }
        let Some(e) = it.next() else {
            return Err("unable to unescape string, found '\\' as last character".to_owned());
        };
        let value: u32 = match e {
            'a' => 7,
            'b' => 8,
            'f' => 12,
            'n' => 10,
            'r' => 13,
            't' => 9,
            'v' => 11,
            '\\' | '\'' | '"' | '`' | '?' => e as u32,
            'u' if it.peek() == Some(&'{') => {
                it.next();
                let mut v = 0u32;
                let mut digits = 0;
                loop {
                    match it.next() {
                        Some('}') if digits > 0 => break,
                        Some(d) if digits < 6 => {
                            v = (v << 4) | d.to_digit(16).ok_or_else(bad)?;
                            digits += 1;
                        }
                        _ => return Err(bad()),
                    }
                }
                v
            }
            'x' | 'X' | 'u' | 'U' => {
                let n = match e {
                    'u' => 4,
                    'U' => 8,
                    _ => 2,
                };
                let mut v = 0u32;
                for _ in 0..n {
                    let d = it.next().and_then(|d| d.to_digit(16)).ok_or_else(bad)?;
                    v = (v << 4) | d;
                }
                if bytes && matches!(e, 'x' | 'X') {
                    out.push(v as u8);
                    continue;
                }
                v
            }
            '0'..='3' => {
                let octal = || "unable to unescape octal sequence in string".to_owned();
                let mut v = e as u32 - '0' as u32;
                for _ in 0..2 {
                    let d = it.next().and_then(|d| d.to_digit(8)).ok_or_else(octal)?;
                    v = v * 8 + d;
                }
                if bytes {
                    out.push(v as u8);
                    continue;
                }
                v
            }
            _ => return Err(bad()),
        };
        if value > 0x10_FFFF {
            return Err(bad());
        }
        push(&mut out, char::from_u32(value).unwrap_or('\u{FFFD}'));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Parser (a port of expr's recursive descent: same precedences, same error messages)
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Node {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<expr::Value>),
    Ident(String),
    /// `#`, `#index`, `#acc` (and the implicit `#` of `.field`) inside a predicate.
    Pointer(String),
    Unary(String, Box<Node>),
    Binary(String, Box<Node>, Box<Node>),
    /// `a.b`, `a?.b`, `a[b]`, `a?.[b]`.
    Member {
        node: Box<Node>,
        prop: Box<Node>,
        optional: bool,
    },
    Slice {
        node: Box<Node>,
        from: Option<Box<Node>>,
        to: Option<Box<Node>>,
    },
    MethodCall {
        node: Box<Node>,
        name: String,
        args: Vec<Node>,
        optional: bool,
    },
    /// A call of an environment function (`asInt`, `isNil`, …).
    Call {
        name: String,
        args: Vec<Node>,
    },
    /// A call of one of expr's builtins.
    Builtin {
        name: String,
        args: Vec<Node>,
    },
    Predicate(Box<Node>),
    Let {
        name: String,
        value: Box<Node>,
        body: Box<Node>,
    },
    Seq(Vec<Node>),
    Cond {
        cond: Box<Node>,
        then: Box<Node>,
        other: Box<Node>,
    },
    Array(Vec<Node>),
    Map(Vec<(Node, Node)>),
    /// The extent an optional `?.` short-circuits to nil.
    Chain(Box<Node>),
}

fn compile(msg: impl Into<String>) -> EvalError {
    EvalError::Compile(msg.into())
}

fn binary_precedence(op: &str) -> Option<(u16, bool)> {
    Some(match op {
        "|" => (0, false),
        "or" | "||" => (10, false),
        "and" | "&&" => (15, false),
        "==" | "!=" | "<" | ">" | ">=" | "<=" | "in" | "matches" | "contains" | "startsWith"
        | "endsWith" => (20, false),
        ".." => (25, false),
        "+" | "-" => (30, false),
        "*" | "/" | "%" => (60, false),
        "**" | "^" => (100, true),
        "??" => (500, false),
        _ => return None,
    })
}

fn unary_precedence(op: &str) -> Option<u16> {
    match op {
        "not" | "!" => Some(50),
        "-" | "+" => Some(90),
        _ => None,
    }
}

fn is_comparison(op: &str) -> bool {
    matches!(op, "<" | ">" | ">=" | "<=")
}

/// expr's builtins that take a predicate: whether each argument is a predicate, and optional.
fn predicate_spec(name: &str) -> Option<&'static [(bool, bool)]> {
    const EP: &[(bool, bool)] = &[(false, false), (true, false)];
    const EP_OPT: &[(bool, bool)] = &[(false, false), (true, true)];
    const EPE_OPT: &[(bool, bool)] = &[(false, false), (true, false), (false, true)];
    match name {
        "all" | "none" | "any" | "one" | "filter" | "map" | "find" | "findIndex" | "findLast"
        | "findLastIndex" | "groupBy" => Some(EP),
        "count" | "sum" => Some(EP_OPT),
        "sortBy" | "reduce" => Some(EPE_OPT),
        _ => None,
    }
}

fn is_builtin(name: &str) -> bool {
    predicate_spec(name).is_some()
        || matches!(
            name,
            "len"
                | "type"
                | "abs"
                | "ceil"
                | "floor"
                | "round"
                | "int"
                | "float"
                | "string"
                | "trim"
                | "trimPrefix"
                | "trimSuffix"
                | "upper"
                | "lower"
                | "split"
                | "splitAfter"
                | "replace"
                | "repeat"
                | "join"
                | "indexOf"
                | "lastIndexOf"
                | "hasPrefix"
                | "hasSuffix"
                | "max"
                | "min"
                | "mean"
                | "median"
                | "toJSON"
                | "fromJSON"
                | "toBase64"
                | "fromBase64"
                | "now"
                | "duration"
                | "date"
                | "timezone"
                | "first"
                | "last"
                | "get"
                | "take"
                | "keys"
                | "values"
                | "toPairs"
                | "fromPairs"
                | "reverse"
                | "uniq"
                | "concat"
                | "flatten"
                | "sort"
                | "bitand"
                | "bitor"
                | "bitxor"
                | "bitnand"
                | "bitnot"
                | "bitshl"
                | "bitshr"
                | "bitushr"
        )
}

/// Argo's environment functions: parameter types (`true` = float64, else any) and result type.
fn argo_function(name: &str) -> Option<(&'static [bool], Ty)> {
    Some(match name {
        "asInt" => (&[false], Ty::Int64),
        "asFloat" => (&[false], Ty::Float),
        "isNaN" | "isInf" => (&[true], Ty::Bool),
        "isNil" => (&[false], Ty::Bool),
        "default" => (&[false, false], Ty::Unknown),
        _ => return None,
    })
}

fn parse(src: &str, limits: &Limits) -> Result<Node, EvalError> {
    if src.len() > limits.max_len {
        return Err(EvalError::TooComplex(format!(
            "expression is {} bytes long; the limit is {}",
            src.len(),
            limits.max_len
        )));
    }
    let mut p = Parser {
        toks: Lexer::run(src),
        pos: 0,
        pred_depth: 0,
        nest: 0,
        max_nest: limits.max_depth,
    };
    p.check_lex_error()?;
    let node = p.sequence()?;
    if p.cur().kind != Kind::Eof {
        return Err(p.unexpected());
    }
    // Left-associative chains (`a+b+c+…`, `a.b.c.…`) grow the tree without recursing in the
    // parser; the checker and interpreter recurse on the tree, so bound that too.
    if too_deep(&node, limits.max_depth) {
        return Err(nested_too_deeply(limits.max_depth));
    }
    Ok(node)
}

fn nested_too_deeply(limit: usize) -> EvalError {
    EvalError::TooComplex(format!("expression nests deeper than {limit} levels"))
}

fn too_deep(node: &Node, remaining: usize) -> bool {
    let Some(r) = remaining.checked_sub(1) else {
        return true;
    };
    let any = |nodes: &[Node]| nodes.iter().any(|n| too_deep(n, r));
    match node {
        Node::Nil
        | Node::Bool(_)
        | Node::Int(_)
        | Node::Float(_)
        | Node::Str(_)
        | Node::Bytes(_)
        | Node::Ident(_)
        | Node::Pointer(_) => false,
        Node::Unary(_, n) | Node::Predicate(n) | Node::Chain(n) => too_deep(n, r),
        Node::Binary(_, a, b) => too_deep(a, r) || too_deep(b, r),
        Node::Member { node, prop, .. } => too_deep(node, r) || too_deep(prop, r),
        Node::Slice { node, from, to } => {
            too_deep(node, r)
                || from.as_deref().is_some_and(|n| too_deep(n, r))
                || to.as_deref().is_some_and(|n| too_deep(n, r))
        }
        Node::MethodCall { node, args, .. } => too_deep(node, r) || any(args),
        Node::Call { args, .. } | Node::Builtin { args, .. } | Node::Array(args) => any(args),
        Node::Seq(nodes) => any(nodes),
        Node::Let { value, body, .. } => too_deep(value, r) || too_deep(body, r),
        Node::Cond { cond, then, other } => {
            too_deep(cond, r) || too_deep(then, r) || too_deep(other, r)
        }
        Node::Map(pairs) => pairs.iter().any(|(k, v)| too_deep(k, r) || too_deep(v, r)),
    }
}

type PResult<T> = Result<T, EvalError>;

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    pred_depth: usize,
    nest: usize,
    max_nest: usize,
}

impl Parser {
    fn cur(&self) -> &Token {
        self.toks.get(self.pos).unwrap_or(&END)
    }

    fn is(&self, kind: Kind, value: &str) -> bool {
        let t = self.cur();
        t.kind == kind && t.value == value
    }

    fn is_op(&self, value: &str) -> bool {
        self.is(Kind::Op, value)
    }

    fn is_bracket(&self, value: &str) -> bool {
        self.is(Kind::Bracket, value)
    }

    fn check_lex_error(&self) -> PResult<()> {
        match self.cur().kind {
            Kind::Error => Err(compile(self.cur().value.clone())),
            _ => Ok(()),
        }
    }

    fn advance(&mut self) -> PResult<()> {
        match self.cur().kind {
            Kind::Eof => return Err(compile("unexpected end of expression")),
            Kind::Error => return Err(compile(self.cur().value.clone())),
            _ => {}
        }
        self.pos += 1;
        self.check_lex_error()
    }

    fn unexpected(&self) -> EvalError {
        compile(format!("unexpected token {}", self.cur()))
    }

    fn expect(&mut self, kind: Kind, value: &str) -> PResult<()> {
        if self.is(kind, value) {
            self.advance()
        } else {
            Err(self.unexpected())
        }
    }

    fn expect_ident(&mut self) -> PResult<String> {
        if self.cur().kind != Kind::Ident {
            return Err(self.unexpected());
        }
        let name = self.cur().value.clone();
        self.advance()?;
        Ok(name)
    }

    fn enter(&mut self) -> PResult<()> {
        self.nest += 1;
        if self.nest > self.max_nest {
            return Err(nested_too_deeply(self.max_nest));
        }
        Ok(())
    }

    fn sequence(&mut self) -> PResult<Node> {
        let mut nodes = vec![self.expression(0)?];
        while self.is_op(";") {
            self.advance()?;
            if self.cur().kind == Kind::Eof {
                break;
            }
            nodes.push(self.expression(0)?);
        }
        if nodes.len() == 1
            && let Some(node) = nodes.pop()
        {
            return Ok(node);
        }
        Ok(Node::Seq(nodes))
    }

    fn expression(&mut self, precedence: u16) -> PResult<Node> {
        self.enter()?;
        let node = self.expression_inner(precedence)?;
        self.nest -= 1;
        Ok(node)
    }

    fn expression_inner(&mut self, precedence: u16) -> PResult<Node> {
        if precedence == 0 && self.is_op("let") {
            return self.let_declaration();
        }
        if precedence == 0 && self.is_op("if") {
            return self.if_else();
        }
        let mut left = self.primary()?;
        let mut prev_op = String::new();
        loop {
            let mut op = self.cur().clone();
            if op.kind != Kind::Op {
                break;
            }
            let negate = op.value == "not";
            if negate {
                let backup = self.pos;
                self.advance()?;
                let next = self.cur().value.clone();
                if !matches!(
                    next.as_str(),
                    "contains" | "matches" | "startsWith" | "endsWith" | "in"
                ) {
                    return Err(self.unexpected());
                }
                if binary_precedence(&next).is_some_and(|(p, _)| p >= precedence) {
                    op = self.cur().clone();
                } else {
                    self.pos = backup;
                    break;
                }
            }
            let Some((prec, right_assoc)) =
                binary_precedence(&op.value).filter(|(p, _)| *p >= precedence)
            else {
                break;
            };
            self.advance()?;
            if op.value == "|" {
                let name = self.expect_ident()?;
                left = self.call(&name, vec![left])?;
                prev_op = op.value;
                continue;
            }
            if prev_op == "??" && op.value != "??" {
                return Err(compile(format!(
                    "Operator ({}) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.",
                    op.value
                )));
            }
            if is_comparison(&op.value) {
                left = self.comparison(left, op.value.clone(), prec)?;
                prev_op = op.value;
                continue;
            }
            let right = self.expression(if right_assoc { prec } else { prec + 1 })?;
            left = Node::Binary(op.value.clone(), Box::new(left), Box::new(right));
            if negate {
                left = Node::Unary("not".to_owned(), Box::new(left));
            }
            prev_op = op.value;
        }
        if precedence == 0 {
            left = self.conditional(left)?;
        }
        Ok(left)
    }

    /// `a < b < c` means `a < b && b < c`.
    fn comparison(&mut self, mut left: Node, mut op: String, prec: u16) -> PResult<Node> {
        let mut root: Option<Node> = None;
        loop {
            let comparator = self.expression(prec + 1)?;
            let cmp = Node::Binary(op.clone(), Box::new(left), Box::new(comparator.clone()));
            root = Some(match root {
                None => cmp,
                Some(r) => Node::Binary("&&".to_owned(), Box::new(r), Box::new(cmp)),
            });
            left = comparator;
            let t = self.cur();
            if !(t.kind == Kind::Op && is_comparison(&t.value)) {
                break;
            }
            op = t.value.clone();
            self.advance()?;
        }
        root.ok_or_else(|| compile("empty comparison"))
    }

    fn conditional(&mut self, mut node: Node) -> PResult<Node> {
        while self.is_op("?") {
            self.advance()?;
            let (then, other) = if !self.is_op(":") {
                let then = self.expression(0)?;
                self.expect(Kind::Op, ":")?;
                (then, self.expression(0)?)
            } else {
                self.advance()?;
                (node.clone(), self.expression(0)?)
            };
            node = Node::Cond {
                cond: Box::new(node),
                then: Box::new(then),
                other: Box::new(other),
            };
        }
        Ok(node)
    }

    fn let_declaration(&mut self) -> PResult<Node> {
        self.expect(Kind::Op, "let")?;
        let name = self.expect_ident()?;
        self.expect(Kind::Op, "=")?;
        let value = self.expression(0)?;
        self.expect(Kind::Op, ";")?;
        let body = self.sequence()?;
        Ok(Node::Let {
            name,
            value: Box::new(value),
            body: Box::new(body),
        })
    }

    fn if_else(&mut self) -> PResult<Node> {
        self.enter()?;
        self.advance()?;
        let cond = self.expression(0)?;
        self.expect(Kind::Bracket, "{")?;
        let then = self.sequence()?;
        self.expect(Kind::Bracket, "}")?;
        self.expect(Kind::Op, "else")?;
        let other = if self.is_op("if") {
            self.if_else()?
        } else {
            self.expect(Kind::Bracket, "{")?;
            let other = self.sequence()?;
            self.expect(Kind::Bracket, "}")?;
            other
        };
        self.nest -= 1;
        Ok(Node::Cond {
            cond: Box::new(cond),
            then: Box::new(then),
            other: Box::new(other),
        })
    }

    fn primary(&mut self) -> PResult<Node> {
        let tok = self.cur().clone();
        if tok.kind == Kind::Op
            && let Some(prec) = unary_precedence(&tok.value)
        {
            self.advance()?;
            let operand = self.expression(prec)?;
            return self.postfix(Node::Unary(tok.value, Box::new(operand)));
        }
        if tok.kind == Kind::Bracket && tok.value == "(" {
            self.advance()?;
            let inner = self.sequence()?;
            self.expect(Kind::Bracket, ")")?;
            return self.postfix(inner);
        }
        if self.pred_depth > 0 && tok.kind == Kind::Op && (tok.value == "#" || tok.value == ".") {
            let mut name = String::new();
            if tok.value == "#" {
                self.advance()?;
                if self.cur().kind == Kind::Ident {
                    name = self.cur().value.clone();
                    self.advance()?;
                }
            }
            return self.postfix(Node::Pointer(name));
        }
        if tok.kind == Kind::Op && tok.value == "::" {
            self.advance()?;
            let name = self.expect_ident()?;
            let call = self.call(&name, Vec::new())?;
            return self.postfix(call);
        }
        self.secondary()
    }

    fn secondary(&mut self) -> PResult<Node> {
        let tok = self.cur().clone();
        let node = match tok.kind {
            Kind::Ident => {
                self.advance()?;
                match tok.value.as_str() {
                    "true" => return Ok(Node::Bool(true)),
                    "false" => return Ok(Node::Bool(false)),
                    "nil" => return Ok(Node::Nil),
                    _ if self.is_bracket("(") => self.call(&tok.value, Vec::new())?,
                    _ => Node::Ident(tok.value),
                }
            }
            Kind::Number => {
                self.advance()?;
                return parse_number(&tok.value);
            }
            Kind::Str => {
                self.advance()?;
                Node::Str(Rc::from(tok.value.as_str()))
            }
            Kind::Bytes => {
                self.advance()?;
                Node::Bytes(Rc::new(expr::Value::Bytes(tok.bytes)))
            }
            Kind::Bracket if tok.value == "[" => self.array()?,
            Kind::Bracket if tok.value == "{" => self.map()?,
            _ => return Err(self.unexpected()),
        };
        self.postfix(node)
    }

    fn call(&mut self, name: &str, mut args: Vec<Node>) -> PResult<Node> {
        let name = name.to_owned();
        if let Some(spec) = predicate_spec(&name) {
            self.expect(Kind::Bracket, "(")?;
            let rest = spec.get(args.len()..).unwrap_or(&[]);
            for (i, (is_predicate, optional)) in rest.iter().enumerate() {
                if self.is_bracket(")") {
                    if *optional {
                        break;
                    }
                    return Err(compile(format!(
                        "expected at least {} arguments",
                        rest.len()
                    )));
                }
                if i > 0 {
                    self.expect(Kind::Op, ",")?;
                }
                args.push(if *is_predicate {
                    self.predicate()?
                } else {
                    self.expression(0)?
                });
            }
            if self.is_op(",") {
                self.advance()?;
            }
            self.expect(Kind::Bracket, ")")?;
            return Ok(Node::Builtin { name, args });
        }
        let args = self.arguments(args)?;
        if is_builtin(&name) {
            Ok(Node::Builtin { name, args })
        } else {
            Ok(Node::Call { name, args })
        }
    }

    fn arguments(&mut self, mut args: Vec<Node>) -> PResult<Vec<Node>> {
        let offset = args.len();
        self.expect(Kind::Bracket, "(")?;
        while !self.is_bracket(")") {
            if args.len() > offset {
                self.expect(Kind::Op, ",")?;
            }
            if self.is_bracket(")") {
                break;
            }
            args.push(self.expression(0)?);
        }
        self.expect(Kind::Bracket, ")")?;
        Ok(args)
    }

    fn predicate(&mut self) -> PResult<Node> {
        let brackets = self.is_bracket("{");
        if brackets {
            self.advance()?;
        }
        self.pred_depth += 1;
        let node = if brackets {
            self.sequence()?
        } else {
            let node = self.expression(0)?;
            if self.is_op(";") {
                return Err(compile("wrap predicate with brackets { and }"));
            }
            node
        };
        self.pred_depth -= 1;
        if brackets {
            self.expect(Kind::Bracket, "}")?;
        }
        Ok(Node::Predicate(Box::new(node)))
    }

    fn array(&mut self) -> PResult<Node> {
        self.expect(Kind::Bracket, "[")?;
        let mut nodes = Vec::new();
        while !self.is_bracket("]") {
            if !nodes.is_empty() {
                self.expect(Kind::Op, ",")?;
                if self.is_bracket("]") {
                    break;
                }
            }
            nodes.push(self.expression(0)?);
        }
        self.expect(Kind::Bracket, "]")?;
        Ok(Node::Array(nodes))
    }

    fn map(&mut self) -> PResult<Node> {
        self.expect(Kind::Bracket, "{")?;
        let mut pairs = Vec::new();
        while !self.is_bracket("}") {
            if !pairs.is_empty() {
                self.expect(Kind::Op, ",")?;
                if self.is_bracket("}") {
                    break;
                }
                if self.is_op(",") {
                    return Err(self.unexpected());
                }
            }
            let t = self.cur().clone();
            let key = match t.kind {
                Kind::Number | Kind::Str | Kind::Ident => {
                    self.advance()?;
                    Node::Str(Rc::from(t.value.as_str()))
                }
                Kind::Bracket if t.value == "(" => self.expression(0)?,
                _ => {
                    return Err(compile(format!(
                        "a map key must be a quoted string, a number, a identifier, or an expression enclosed in parentheses (unexpected token {t})"
                    )));
                }
            };
            self.expect(Kind::Op, ":")?;
            let value = self.expression(0)?;
            pairs.push((key, value));
        }
        self.expect(Kind::Bracket, "}")?;
        Ok(Node::Map(pairs))
    }

    fn postfix(&mut self, mut node: Node) -> PResult<Node> {
        loop {
            let tok = self.cur().clone();
            if !matches!(tok.kind, Kind::Op | Kind::Bracket) {
                break;
            }
            let optional = tok.value == "?.";
            if tok.value == "." || optional {
                self.advance()?;
                let prop = self.cur().clone();
                if optional && prop.kind == Kind::Bracket && prop.value == "[" {
                    node = self.index(node, true)?;
                    continue;
                }
                self.advance()?;
                if prop.kind != Kind::Ident
                    && (prop.kind != Kind::Op || !is_valid_identifier(&prop.value))
                {
                    return Err(compile("expected name"));
                }
                let (base, was_chain) = match node {
                    Node::Chain(inner) => (*inner, true),
                    other => (other, false),
                };
                node = if self.is_bracket("(") {
                    let args = self.arguments(Vec::new())?;
                    Node::MethodCall {
                        node: Box::new(base),
                        name: prop.value,
                        args,
                        optional,
                    }
                } else {
                    Node::Member {
                        node: Box::new(base),
                        prop: Box::new(Node::Str(Rc::from(prop.value.as_str()))),
                        optional,
                    }
                };
                if was_chain || optional {
                    node = Node::Chain(Box::new(node));
                }
            } else if tok.value == "[" {
                node = self.index(node, false)?;
            } else {
                break;
            }
        }
        Ok(node)
    }

    /// At `[`: an index or a slice.
    fn index(&mut self, node: Node, optional: bool) -> PResult<Node> {
        self.advance()?;
        let from = if self.is_op(":") {
            None
        } else {
            Some(Box::new(self.expression(0)?))
        };
        if self.is_op(":") {
            self.advance()?;
            let to = if self.is_bracket("]") {
                None
            } else {
                Some(Box::new(self.expression(0)?))
            };
            self.expect(Kind::Bracket, "]")?;
            return Ok(Node::Slice {
                node: Box::new(node),
                from,
                to,
            });
        }
        let Some(prop) = from else {
            return Err(self.unexpected());
        };
        let mut out = Node::Member {
            node: Box::new(node),
            prop,
            optional,
        };
        if optional {
            out = Node::Chain(Box::new(out));
        }
        self.expect(Kind::Bracket, "]")?;
        Ok(out)
    }
}

fn parse_number(text: &str) -> PResult<Node> {
    let value = text.replace('_', "");
    let lower = value.to_ascii_lowercase();
    let int = |digits: &str, radix: u32, what: &str| -> PResult<Node> {
        i64::from_str_radix(digits, radix)
            .map(Node::Int)
            .map_err(|e| {
                let why = match e.kind() {
                    std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                        "value out of range"
                    }
                    _ => "invalid syntax",
                };
                compile(format!(
                    "invalid {what} literal: strconv.ParseInt: parsing {}: {why}",
                    go_quote(&value)
                ))
            })
    };
    let prefixed = value.get(2..).unwrap_or("");
    if lower.starts_with("0x") {
        int(prefixed, 16, "hex")
    } else if lower.contains('.') || lower.contains('e') {
        match value.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Node::Float(f)),
            Ok(_) => Err(compile(format!(
                "invalid float literal: strconv.ParseFloat: parsing {}: value out of range",
                go_quote(&value)
            ))),
            Err(_) => Err(compile(format!(
                "invalid float literal: strconv.ParseFloat: parsing {}: invalid syntax",
                go_quote(&value)
            ))),
        }
    } else if lower.starts_with("0b") {
        int(prefixed, 2, "binary")
    } else if lower.starts_with("0o") {
        int(prefixed, 8, "octal")
    } else {
        int(&value, 10, "integer")
    }
}

// ---------------------------------------------------------------------------------------------
// Checker (expr's static rules, for the types a metric result can have)
// ---------------------------------------------------------------------------------------------

/// A static type, as expr's checker sees it ("nature").
#[derive(Clone, Debug, PartialEq)]
enum Ty {
    /// Unknown or `interface {}`: checked at runtime.
    Unknown,
    /// The literal `nil`, or a nil `result`.
    Nil,
    Bool,
    Int,
    Int64,
    Float,
    Str,
    Bytes,
    Time,
    Duration,
    /// A slice; `true` when Go's type is `[]elem` rather than `[]interface {}`.
    Array(Box<Ty>, bool),
    /// `map[string]interface {}`.
    Map,
    /// `map[interface {}][]interface {}` (from `groupBy`).
    AnyMap,
}

impl Ty {
    fn name(&self) -> String {
        match self {
            Ty::Unknown => "interface {}".to_owned(),
            // Go prints a nil nature as "unknown".
            Ty::Nil => "unknown".to_owned(),
            Ty::Bool => "bool".to_owned(),
            Ty::Int => "int".to_owned(),
            Ty::Int64 => "int64".to_owned(),
            Ty::Float => "float64".to_owned(),
            Ty::Str => "string".to_owned(),
            Ty::Bytes => "[]uint8".to_owned(),
            Ty::Time => "time.Time".to_owned(),
            Ty::Duration => "time.Duration".to_owned(),
            Ty::Array(elem, true) => format!("[]{}", elem.name()),
            Ty::Array(_, false) => "[]interface {}".to_owned(),
            Ty::Map => "map[string]interface {}".to_owned(),
            Ty::AnyMap => "map[interface {}][]interface {}".to_owned(),
        }
    }

    fn unknown(&self) -> bool {
        matches!(self, Ty::Unknown)
    }

    fn integer(&self) -> bool {
        matches!(self, Ty::Int | Ty::Int64)
    }

    fn number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Int64 | Ty::Float)
    }

    fn array(&self) -> bool {
        matches!(self, Ty::Array(..) | Ty::Bytes)
    }

    fn map(&self) -> bool {
        matches!(self, Ty::Map | Ty::AnyMap)
    }

    fn elem(&self) -> Ty {
        match self {
            Ty::Array(elem, _) => (**elem).clone(),
            Ty::Bytes => Ty::Int,
            Ty::AnyMap => Ty::Array(Box::new(Ty::Unknown), false),
            _ => Ty::Unknown,
        }
    }

    fn assignable_to(&self, to: &Ty) -> bool {
        match (self, to) {
            (Ty::Nil, t) => matches!(
                t,
                Ty::Unknown | Ty::Map | Ty::AnyMap | Ty::Array(..) | Ty::Bytes
            ),
            (Ty::Unknown, _) => false,
            (_, Ty::Unknown) => true,
            (a, b) => a.name() == b.name(),
        }
    }

    fn comparable(&self, other: &Ty) -> bool {
        self.unknown()
            || other.unknown()
            || *self == Ty::Nil
            || *other == Ty::Nil
            || self.number() && other.number()
            || *self == Ty::Duration && *other == Ty::Duration
            || *self == Ty::Time && *other == Ty::Time
            || self.array() && other.array()
            || self.assignable_to(other)
    }

    fn is(&self, check: Check) -> bool {
        match check {
            Check::Bool => *self == Ty::Bool,
            Check::Str => *self == Ty::Str,
            Check::Integer => self.integer(),
            Check::Number => self.number(),
            Check::Time => *self == Ty::Time,
            Check::Duration => *self == Ty::Duration,
        }
    }

    fn maybe(&self, other: &Ty, checks: &[Check]) -> bool {
        let any_of = |t: &Ty| checks.iter().any(|c| t.is(*c));
        self.unknown() && other.unknown()
            || self.unknown() && any_of(other)
            || other.unknown() && any_of(self)
    }

    fn promote(&self, other: &Ty) -> Ty {
        if *self == Ty::Float || *other == Ty::Float {
            Ty::Float
        } else {
            Ty::Int
        }
    }
}

#[derive(Clone, Copy)]
enum Check {
    Bool,
    Str,
    Integer,
    Number,
    Time,
    Duration,
}

struct Checker<'a> {
    env: &'a [(String, Ty)],
    lets: Vec<(String, Ty)>,
    /// Predicate scopes: the collection and the `#name` pointers available.
    scopes: Vec<(Ty, Vec<(&'static str, Ty)>)>,
}

impl<'a> Checker<'a> {
    fn new(env: &'a [(String, Ty)]) -> Self {
        Checker {
            env,
            lets: Vec::new(),
            scopes: Vec::new(),
        }
    }

    fn var(&self, name: &str) -> Option<Ty> {
        self.lets
            .iter()
            .rev()
            .chain(self.env.iter())
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.clone())
    }

    fn visit(&mut self, node: &Node) -> PResult<Ty> {
        Ok(match node {
            Node::Nil => Ty::Nil,
            Node::Bool(_) => Ty::Bool,
            Node::Int(_) => Ty::Int,
            Node::Float(_) => Ty::Float,
            Node::Str(_) => Ty::Str,
            Node::Bytes(_) => Ty::Bytes,
            Node::Ident(name) => match self.var(name) {
                Some(t) => t,
                None if name == "$env" => Ty::Unknown,
                None if argo_function(name).is_some() || is_builtin(name) => Ty::Unknown,
                None => return Err(compile(format!("unknown name {name}"))),
            },
            Node::Pointer(name) => self.pointer(name)?,
            Node::Unary(op, inner) => {
                let t = self.visit(inner)?;
                match op.as_str() {
                    "!" | "not" if t == Ty::Bool || t.unknown() => Ty::Bool,
                    "+" | "-" if t.number() || t.unknown() => t,
                    _ => {
                        return Err(compile(format!(
                            "invalid operation: {op} (mismatched type {})",
                            t.name()
                        )));
                    }
                }
            }
            Node::Binary(op, left, right) => self.binary(op, left, right)?,
            Node::Member { node, prop, .. } => self.member(node, prop)?,
            Node::Slice { node, from, to } => {
                let t = self.visit(node)?;
                if t.unknown() {
                    return Ok(Ty::Unknown);
                }
                if !(t == Ty::Str || t.array()) {
                    return Err(compile(format!("cannot slice {}", t.name())));
                }
                for bound in [from, to].into_iter().flatten() {
                    let b = self.visit(bound)?;
                    if !b.integer() && !b.unknown() {
                        return Err(compile(format!("non-integer slice index {}", b.name())));
                    }
                }
                t
            }
            Node::MethodCall {
                node, name, args, ..
            } => {
                let base = self.visit(node)?;
                for arg in args {
                    self.visit(arg)?;
                }
                match base {
                    Ty::Unknown | Ty::Time | Ty::Duration | Ty::Map | Ty::AnyMap => Ty::Unknown,
                    Ty::Nil => return Err(compile(format!("type nil has no field {name}"))),
                    Ty::Array(..) | Ty::Bytes => {
                        return Err(compile(
                            "array elements can only be selected using an integer (got string)",
                        ));
                    }
                    other => {
                        return Err(compile(format!(
                            "type {} has no method {name}",
                            other.name()
                        )));
                    }
                }
            }
            Node::Call { name, args } => self.call(name, args)?,
            Node::Builtin { name, args } => self.builtin(name, args)?,
            Node::Predicate(inner) => self.visit(inner)?,
            Node::Let { name, value, body } => {
                if self.env.iter().any(|(n, _)| n == name) || argo_function(name).is_some() {
                    return Err(compile(format!("cannot redeclare {name}")));
                }
                if is_builtin(name) {
                    return Err(compile(format!("cannot redeclare builtin {name}")));
                }
                if self.lets.iter().any(|(n, _)| n == name) {
                    return Err(compile(format!("cannot redeclare variable {name}")));
                }
                let t = self.visit(value)?;
                self.lets.push((name.clone(), t));
                let out = self.visit(body);
                self.lets.pop();
                out?
            }
            Node::Seq(nodes) => {
                let mut last = Ty::Nil;
                for n in nodes {
                    last = self.visit(n)?;
                }
                last
            }
            Node::Cond { cond, then, other } => {
                let c = self.visit(cond)?;
                if c != Ty::Bool && !c.unknown() {
                    return Err(compile(format!(
                        "non-bool expression (type {}) used as condition",
                        c.name()
                    )));
                }
                let (a, b) = (self.visit(then)?, self.visit(other)?);
                match (&a, &b) {
                    (Ty::Nil, Ty::Nil) => Ty::Nil,
                    (Ty::Nil, _) => b,
                    (_, Ty::Nil) => a,
                    (Ty::Array(x, _), Ty::Array(y, _))
                        if a.assignable_to(&b) && !(x.assignable_to(y) && y.assignable_to(x)) =>
                    {
                        Ty::Array(Box::new(Ty::Unknown), false)
                    }
                    _ if a.assignable_to(&b) => a,
                    _ => Ty::Unknown,
                }
            }
            Node::Array(items) => {
                let mut prev: Option<Ty> = None;
                let mut same = true;
                for item in items {
                    let t = self.visit(item)?;
                    if let Some(p) = &prev {
                        same &= std::mem::discriminant(p) == std::mem::discriminant(&t);
                    }
                    prev = Some(t);
                }
                let elem = if same {
                    prev.unwrap_or(Ty::Unknown)
                } else {
                    Ty::Unknown
                };
                Ty::Array(Box::new(elem), false)
            }
            Node::Map(pairs) => {
                for (k, v) in pairs {
                    self.visit(k)?;
                    self.visit(v)?;
                }
                Ty::Map
            }
            Node::Chain(inner) => self.visit(inner)?,
        })
    }

    fn pointer(&self, name: &str) -> PResult<Ty> {
        let Some((collection, vars)) = self.scopes.last() else {
            return Err(compile("cannot use pointer accessor outside predicate"));
        };
        if name.is_empty() {
            return Ok(if collection.unknown() {
                Ty::Unknown
            } else {
                collection.elem()
            });
        }
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.clone())
            .ok_or_else(|| compile(format!("unknown pointer #{name}")))
    }

    fn binary(&mut self, op: &str, left: &Node, right: &Node) -> PResult<Ty> {
        let l = self.visit(left)?;
        let r = self.visit(right)?;
        let time = |a: &Ty, b: &Ty| *a == Ty::Time && *b == Ty::Time;
        let dur = |a: &Ty, b: &Ty| *a == Ty::Duration && *b == Ty::Duration;
        let ok = match op {
            "==" | "!=" => l.comparable(&r).then_some(Ty::Bool),
            "or" | "||" | "and" | "&&" => {
                (l == Ty::Bool && r == Ty::Bool || l.maybe(&r, &[Check::Bool])).then_some(Ty::Bool)
            }
            "<" | ">" | ">=" | "<=" => (l.number() && r.number()
                || l == Ty::Str && r == Ty::Str
                || time(&l, &r)
                || dur(&l, &r)
                || l.maybe(
                    &r,
                    &[Check::Number, Check::Str, Check::Time, Check::Duration],
                ))
            .then_some(Ty::Bool),
            "-" => {
                if l.number() && r.number() {
                    Some(l.promote(&r))
                } else if time(&l, &r) || dur(&l, &r) {
                    Some(Ty::Duration)
                } else if l == Ty::Time && r == Ty::Duration {
                    Some(Ty::Time)
                } else {
                    l.maybe(&r, &[Check::Number, Check::Time, Check::Duration])
                        .then_some(Ty::Unknown)
                }
            }
            "*" => {
                if l.number() && r.number() {
                    Some(l.promote(&r))
                } else if l.number() && r == Ty::Duration
                    || l == Ty::Duration && (r.number() || r == Ty::Duration)
                {
                    Some(Ty::Duration)
                } else {
                    l.maybe(&r, &[Check::Number, Check::Duration])
                        .then_some(Ty::Unknown)
                }
            }
            "/" | "**" | "^" => {
                (l.number() && r.number() || l.maybe(&r, &[Check::Number])).then_some(Ty::Float)
            }
            "%" => {
                (l.integer() && r.integer() || l.maybe(&r, &[Check::Integer])).then_some(Ty::Int)
            }
            "+" => {
                if l.number() && r.number() {
                    Some(l.promote(&r))
                } else if l == Ty::Str && r == Ty::Str {
                    Some(Ty::Str)
                } else if l == Ty::Time && r == Ty::Duration || l == Ty::Duration && r == Ty::Time {
                    Some(Ty::Time)
                } else if dur(&l, &r) {
                    Some(Ty::Duration)
                } else {
                    l.maybe(
                        &r,
                        &[Check::Number, Check::Str, Check::Time, Check::Duration],
                    )
                    .then_some(Ty::Unknown)
                }
            }
            "in" => {
                if r.map() {
                    let key = if r == Ty::Map { Ty::Str } else { Ty::Unknown };
                    if !l.unknown() && !l.assignable_to(&key) {
                        return Err(compile(format!(
                            "cannot use {} as type {} in map key",
                            l.name(),
                            key.name()
                        )));
                    }
                    Some(Ty::Bool)
                } else if r.array() {
                    let elem = r.elem();
                    if !l.comparable(&elem) {
                        return Err(compile(format!(
                            "cannot use {} as type {} in array",
                            l.name(),
                            elem.name()
                        )));
                    }
                    Some(Ty::Bool)
                } else {
                    (l.unknown() && (r == Ty::Str || r.array() || r.map()) || r.unknown())
                        .then_some(Ty::Bool)
                }
            }
            "matches" => {
                if let Node::Str(pattern) = right {
                    Regex::new(pattern)
                        .map_err(|e| compile(format!("error parsing regexp: {e}")))?;
                }
                ((l == Ty::Str || l == Ty::Bytes) && r == Ty::Str || l.maybe(&r, &[Check::Str]))
                    .then_some(Ty::Bool)
            }
            "contains" | "startsWith" | "endsWith" => {
                (l == Ty::Str && r == Ty::Str || l.maybe(&r, &[Check::Str])).then_some(Ty::Bool)
            }
            ".." => (l.integer() && r.integer() || l.maybe(&r, &[Check::Integer]))
                .then_some(Ty::Array(Box::new(Ty::Int), true)),
            "??" => Some(match (&l, &r) {
                (Ty::Nil, Ty::Nil) => Ty::Nil,
                (Ty::Nil, _) => r.clone(),
                (_, Ty::Nil) => l.clone(),
                _ if r.assignable_to(&l) => l.clone(),
                _ => Ty::Unknown,
            }),
            _ => return Err(compile(format!("unknown operator ({op})"))),
        };
        ok.ok_or_else(|| {
            compile(format!(
                "invalid operation: {op} (mismatched types {} and {})",
                l.name(),
                r.name()
            ))
        })
    }

    fn member(&mut self, node: &Node, prop: &Node) -> PResult<Ty> {
        if let (Node::Ident(base), Node::Str(name)) = (node, prop)
            && base == "$env"
        {
            return Ok(self
                .env
                .iter()
                .find(|(n, _)| **n == **name)
                .map_or(Ty::Unknown, |(_, t)| t.clone()));
        }
        let base = self.visit(node)?;
        let p = self.visit(prop)?;
        if base.unknown() {
            return Ok(Ty::Unknown);
        }
        let field = match prop {
            Node::Str(name) => Some(name.to_string()),
            _ => None,
        };
        if let Some(name) = &field {
            if base == Ty::Nil {
                return Err(compile(format!("type nil has no field {name}")));
            }
            if matches!(base, Ty::Time | Ty::Duration) {
                return Ok(Ty::Unknown);
            }
        }
        match &base {
            Ty::Map => {
                if !p.assignable_to(&Ty::Str) && !p.unknown() {
                    return Err(compile(format!(
                        "cannot use {} to get an element from {}",
                        p.name(),
                        base.name()
                    )));
                }
                Ok(Ty::Unknown)
            }
            Ty::AnyMap => Ok(base.elem()),
            Ty::Array(..) | Ty::Bytes => {
                if !p.integer() && !p.unknown() {
                    return Err(compile(format!(
                        "array elements can only be selected using an integer (got {})",
                        p.name()
                    )));
                }
                Ok(base.elem())
            }
            _ => Err(compile(match field {
                Some(name) => format!("type {} has no field {name}", base.name()),
                None => format!("type {}[{}] is undefined", base.name(), p.name()),
            })),
        }
    }

    fn call(&mut self, name: &str, args: &[Node]) -> PResult<Ty> {
        if let Some(t) = self.var(name) {
            for arg in args {
                self.visit(arg)?;
            }
            return match t {
                Ty::Unknown => Ok(Ty::Unknown),
                Ty::Nil => Err(compile(format!(
                    "{name} is nil; cannot call nil as function"
                ))),
                other => Err(compile(format!("{} is not callable", other.name()))),
            };
        }
        let Some((params, out)) = argo_function(name) else {
            return Err(compile(format!("unknown name {name}")));
        };
        if args.len() != params.len() {
            for arg in args {
                self.visit(arg)?;
            }
            let why = if args.len() > params.len() {
                "too many"
            } else {
                "not enough"
            };
            return Err(compile(format!("{why} arguments to call {name}")));
        }
        for (arg, float) in args.iter().zip(params.iter()) {
            let t = self.visit(arg)?;
            if !*float || t == Ty::Float || t.integer() || t.unknown() {
                continue;
            }
            return Err(compile(if t == Ty::Nil {
                format!("cannot use nil as argument (type float64) to call {name}")
            } else {
                // Go's message has the trailing space.
                format!(
                    "cannot use {} as argument (type float64) to call {name} ",
                    t.name()
                )
            }));
        }
        Ok(out)
    }

    fn builtin(&mut self, name: &str, args: &[Node]) -> PResult<Ty> {
        if predicate_spec(name).is_some() {
            return self.predicate_builtin(name, args);
        }
        match name {
            "len" => {
                if args.len() != 1 {
                    for arg in args {
                        self.visit(arg)?;
                    }
                    return Err(compile(format!(
                        "invalid number of arguments (expected 1, got {})",
                        args.len()
                    )));
                }
                let t = args.first().map(|a| self.visit(a)).transpose()?;
                match t {
                    Some(t) if t.array() || t.map() || t == Ty::Str || t.unknown() => Ok(Ty::Int),
                    Some(Ty::Nil) => Err(compile("invalid argument for len (type <nil>)")),
                    Some(t) => Err(compile(format!(
                        "invalid argument for len (type {})",
                        t.name()
                    ))),
                    None => Ok(Ty::Int),
                }
            }
            "get" => {
                if args.len() != 2 {
                    return Err(compile(format!(
                        "invalid number of arguments (expected 2, got {})",
                        args.len()
                    )));
                }
                let types: Vec<Ty> = args
                    .iter()
                    .map(|a| self.visit(a))
                    .collect::<Result<_, _>>()?;
                let (base, prop) = match types.as_slice() {
                    [b, p] => (b.clone(), p.clone()),
                    _ => return Ok(Ty::Unknown),
                };
                if base.unknown() {
                    Ok(Ty::Unknown)
                } else if base.array() {
                    if !prop.integer() && !prop.unknown() {
                        return Err(compile(format!("non-integer slice index {}", prop.name())));
                    }
                    Ok(base.elem())
                } else if base.map() {
                    if base == Ty::Map && !prop.assignable_to(&Ty::Str) && !prop.unknown() {
                        return Err(compile(format!(
                            "cannot use {} to get an element from {}",
                            prop.name(),
                            base.name()
                        )));
                    }
                    Ok(base.elem())
                } else {
                    Err(compile(format!(
                        "type {} does not support indexing",
                        base.name()
                    )))
                }
            }
            _ => {
                let types: Vec<Ty> = args
                    .iter()
                    .map(|a| self.visit(a))
                    .collect::<Result<_, _>>()?;
                // Only result types we are sure of; the rest are checked at runtime.
                Ok(match name {
                    "int" | "indexOf" | "lastIndexOf" => Ty::Int,
                    "float" => Ty::Float,
                    "string" | "type" | "trim" | "trimPrefix" | "trimSuffix" | "upper"
                    | "lower" | "replace" | "repeat" | "join" | "toJSON" | "toBase64" => Ty::Str,
                    "hasPrefix" | "hasSuffix" => Ty::Bool,
                    "now" | "date" => Ty::Time,
                    "duration" => Ty::Duration,
                    "split" | "splitAfter" => Ty::Array(Box::new(Ty::Str), true),
                    "first" | "last" => match types.first() {
                        Some(t) if t.array() => t.elem(),
                        _ => Ty::Unknown,
                    },
                    _ => Ty::Unknown,
                })
            }
        }
    }

    fn predicate_builtin(&mut self, name: &str, args: &[Node]) -> PResult<Ty> {
        let Some(first) = args.first() else {
            return Err(compile(format!("expected at least 2 arguments to {name}")));
        };
        let collection = self.visit(first)?;
        if !collection.array() && !collection.unknown() {
            return Err(compile(format!(
                "builtin {name} takes only array (got {})",
                collection.name()
            )));
        }
        let vars = match name {
            "map" => vec![("index", Ty::Int)],
            "reduce" => vec![("index", Ty::Int), ("acc", Ty::Unknown)],
            _ => Vec::new(),
        };
        self.scopes.push((collection.clone(), vars));
        let out = args.get(1).map(|p| self.visit(p)).transpose();
        self.scopes.pop();
        let out = out?;
        if let Some(order) = args.get(2) {
            let t = self.visit(order)?;
            if name == "sortBy" && t != Ty::Str && !t.unknown() {
                return Err(compile(format!(
                    "sortBy order argument must be a string (got {})",
                    t.name()
                )));
            }
        }
        let elem = || {
            if collection.unknown() {
                Ty::Unknown
            } else {
                collection.elem()
            }
        };
        let Some(out) = out else {
            // `count(xs)` and `sum(xs)` without a predicate.
            return Ok(if name == "count" { Ty::Int } else { elem() });
        };
        if out == Ty::Nil {
            return Err(compile(
                "predicate should has one input and one output param",
            ));
        }
        let must_be_bool = matches!(
            name,
            "all"
                | "none"
                | "any"
                | "one"
                | "filter"
                | "count"
                | "find"
                | "findIndex"
                | "findLast"
                | "findLastIndex"
        );
        if must_be_bool && out != Ty::Bool && !out.unknown() {
            return Err(compile(format!(
                "predicate should return boolean (got {})",
                out.name()
            )));
        }
        Ok(match name {
            "all" | "none" | "any" | "one" => Ty::Bool,
            "filter" => Ty::Array(Box::new(elem()), false),
            "map" => Ty::Array(Box::new(out), false),
            "count" | "findIndex" | "findLastIndex" => Ty::Int,
            "find" | "findLast" => elem(),
            "groupBy" => Ty::AnyMap,
            "sortBy" => collection,
            // sum with a predicate, reduce
            _ => out,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Deeper values would make every recursive walk (equality, conversion, drop) a stack risk.
const MAX_VALUE_DEPTH: u16 = 128;

/// A runtime value. Containers are shared (`Rc`), so reading a variable never copies; the `u16`
/// is the container's nesting depth, kept so building a deeper one is an O(1) check.
#[derive(Clone, Debug)]
enum Val {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Rc<str>),
    Arr(Rc<Vec<Val>>, u16),
    Map(Rc<BTreeMap<String, Val>>, u16),
    /// Times, durations, bytes, maps with non-string keys: owned and operated on by `expr-lang`.
    Ext(Rc<expr::Value>, u16),
}

impl Val {
    fn depth(&self) -> u16 {
        match self {
            Val::Arr(_, d) | Val::Map(_, d) | Val::Ext(_, d) => *d,
            _ => 0,
        }
    }

    fn is_nil(&self) -> bool {
        matches!(self, Val::Nil)
    }

    fn is_ext(&self) -> bool {
        matches!(self, Val::Ext(..))
    }
}

/// Go's `%T`.
fn go_type(v: &Val) -> &'static str {
    match v {
        Val::Nil => "<nil>",
        Val::Bool(_) => "bool",
        Val::Int(_) => "int",
        Val::Float(_) => "float64",
        Val::Str(_) => "string",
        Val::Arr(..) => "[]interface {}",
        Val::Map(..) => "map[string]interface {}",
        Val::Ext(e, _) => match **e {
            expr::Value::DateTime(_) => "time.Time",
            expr::Value::Duration(_) => "time.Duration",
            expr::Value::Bytes(_) => "[]uint8",
            expr::Value::KeyedMap(_) => "map[interface {}][]interface {}",
            expr::Value::Timezone(_) => "*time.Location",
            expr::Value::Month(_) => "time.Month",
            expr::Value::Weekday(_) => "time.Weekday",
            _ => "interface {}",
        },
    }
}

/// The type in Go's "interface conversion" panics, where nil prints as "nil".
fn iface_error(v: &Val, want: &str) -> String {
    let got = if v.is_nil() { "nil" } else { go_type(v) };
    format!("interface conversion: interface {{}} is {got}, not {want}")
}

/// Go's `%v`.
fn go_fmt(v: &Val) -> String {
    let mut out = String::new();
    write_go_val(&mut out, v);
    out
}

fn write_go_val(out: &mut String, v: &Val) {
    match v {
        Val::Nil => out.push_str("<nil>"),
        Val::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Val::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Val::Float(f) => out.push_str(&go_float(*f)),
        Val::Str(s) => out.push_str(s),
        Val::Arr(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_go_val(out, item);
            }
            out.push(']');
        }
        Val::Map(map, _) => {
            out.push_str("map[");
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_go_val(out, item);
            }
            out.push(']');
        }
        Val::Ext(e, _) => match &**e {
            expr::Value::Duration(n) => out.push_str(&go_duration(*n)),
            other => {
                let _ = write!(out, "{other}");
            }
        },
    }
}

fn metric_ty(m: &MetricValue) -> Ty {
    match m {
        MetricValue::Nil => Ty::Nil,
        MetricValue::Bool(_) => Ty::Bool,
        MetricValue::Float(_) => Ty::Float,
        MetricValue::Int(_) => Ty::Int,
        MetricValue::String(_) => Ty::Str,
        // Prometheus hands Argo a []float64 (empty included); other lists come from JSON.
        MetricValue::List(items) if items.iter().all(|i| matches!(i, MetricValue::Float(_))) => {
            Ty::Array(Box::new(Ty::Float), true)
        }
        MetricValue::List(_) => Ty::Array(Box::new(Ty::Unknown), false),
        MetricValue::Map(_) => Ty::Map,
    }
}

fn from_metric(m: &MetricValue, level: u16) -> Result<Val, EvalError> {
    if level > MAX_VALUE_DEPTH {
        return Err(EvalError::Runtime(format!(
            "metric value nests deeper than {MAX_VALUE_DEPTH} levels"
        )));
    }
    Ok(match m {
        MetricValue::Nil => Val::Nil,
        MetricValue::Bool(b) => Val::Bool(*b),
        MetricValue::Float(f) => Val::Float(*f),
        MetricValue::Int(i) => Val::Int(*i),
        MetricValue::String(s) => Val::Str(Rc::from(s.as_str())),
        MetricValue::List(items) => {
            let items: Vec<Val> = items
                .iter()
                .map(|i| from_metric(i, level + 1))
                .collect::<Result<_, _>>()?;
            let depth = 1 + items.iter().map(Val::depth).max().unwrap_or(0);
            Val::Arr(Rc::new(items), depth)
        }
        MetricValue::Map(map) => {
            let map: BTreeMap<String, Val> = map
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_metric(v, level + 1)?)))
                .collect::<Result<_, EvalError>>()?;
            let depth = 1 + map.values().map(Val::depth).max().unwrap_or(0);
            Val::Map(Rc::new(map), depth)
        }
    })
}

fn to_metric(v: &Val) -> MetricValue {
    match v {
        Val::Nil => MetricValue::Nil,
        Val::Bool(b) => MetricValue::Bool(*b),
        Val::Int(i) => MetricValue::Int(*i),
        Val::Float(f) => MetricValue::Float(*f),
        Val::Str(s) => MetricValue::String(s.to_string()),
        Val::Arr(items, _) => MetricValue::List(items.iter().map(to_metric).collect()),
        Val::Map(map, _) => {
            MetricValue::Map(map.iter().map(|(k, v)| (k.clone(), to_metric(v))).collect())
        }
        Val::Ext(e, _) => match ext_timestamp(e) {
            Some(Ok(ts)) => MetricValue::String(ts.to_string()),
            _ => MetricValue::String(go_fmt(v)),
        },
    }
}

fn ext_timestamp(e: &expr::Value) -> Option<Result<jiff::Timestamp, EvalError>> {
    let dt = e.as_datetime()?;
    Some(
        jiff::Timestamp::new(dt.timestamp(), dt.timestamp_subsec_nanos() as i32)
            .map_err(|err| EvalError::Runtime(format!("time out of range: {err}"))),
    )
}

fn to_expr(v: &Val) -> expr::Value {
    match v {
        Val::Nil => expr::Value::Nil,
        Val::Bool(b) => expr::Value::Bool(*b),
        Val::Int(i) => expr::Value::Integer(*i),
        Val::Float(f) => expr::Value::Float(*f),
        Val::Str(s) => expr::Value::String(s.to_string()),
        Val::Arr(items, _) => expr::Value::Array(items.iter().map(to_expr).collect()),
        Val::Map(map, _) => map.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect(),
        Val::Ext(e, _) => (**e).clone(),
    }
}

/// Convert a value made by `expr-lang`; returns it with its size in memory units.
fn from_expr(v: expr::Value, level: u16) -> Result<(Val, u64), EvalError> {
    if level > MAX_VALUE_DEPTH {
        return Err(EvalError::Runtime(format!(
            "value nests deeper than {MAX_VALUE_DEPTH} levels"
        )));
    }
    Ok(match v {
        expr::Value::Nil => (Val::Nil, 1),
        expr::Value::Bool(b) => (Val::Bool(b), 1),
        expr::Value::Integer(i) => (Val::Int(i), 1),
        expr::Value::Float(f) => (Val::Float(f), 1),
        expr::Value::String(s) => {
            let units = str_units(s.len());
            (Val::Str(Rc::from(s)), units)
        }
        expr::Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            let mut units = 1;
            for item in items {
                let (v, u) = from_expr(item, level + 1)?;
                units += u;
                out.push(v);
            }
            let depth = 1 + out.iter().map(Val::depth).max().unwrap_or(0);
            (Val::Arr(Rc::new(out), depth), units)
        }
        expr::Value::Map(map) => {
            let mut out = BTreeMap::new();
            let mut units = 1;
            for (k, item) in map {
                let (v, u) = from_expr(item, level + 1)?;
                units += u + str_units(k.len());
                out.insert(k, v);
            }
            let depth = 1 + out.values().map(Val::depth).max().unwrap_or(0);
            (Val::Map(Rc::new(out), depth), units)
        }
        other => {
            let (units, depth) = ext_size(&other, level)?;
            (Val::Ext(Rc::new(other), depth), units)
        }
    })
}

/// Size and depth of an `expr-lang` value we keep opaque.
fn ext_size(v: &expr::Value, level: u16) -> Result<(u64, u16), EvalError> {
    if level > MAX_VALUE_DEPTH {
        return Err(EvalError::Runtime(format!(
            "value nests deeper than {MAX_VALUE_DEPTH} levels"
        )));
    }
    Ok(match v {
        expr::Value::String(s) => (str_units(s.len()), 0),
        expr::Value::Bytes(b) => (str_units(b.len()), 0),
        expr::Value::Array(items) => {
            let mut units = 1;
            let mut depth = 0;
            for item in items {
                let (u, d) = ext_size(item, level + 1)?;
                units += u;
                depth = depth.max(d);
            }
            (units, depth + 1)
        }
        expr::Value::Map(map) => {
            let mut units = 1;
            let mut depth = 0;
            for item in map.values() {
                let (u, d) = ext_size(item, level + 1)?;
                units += u;
                depth = depth.max(d);
            }
            (units, depth + 1)
        }
        expr::Value::KeyedMap(pairs) => {
            let mut units = 1;
            let mut depth = 0;
            for (k, item) in pairs {
                let (uk, dk) = ext_size(k, level + 1)?;
                let (u, d) = ext_size(item, level + 1)?;
                units += uk + u;
                depth = depth.max(d).max(dk);
            }
            (units, depth + 1)
        }
        _ => (1, 0),
    })
}

fn str_units(bytes: usize) -> u64 {
    1 + bytes as u64 / 16
}

/// Memory units a value occupies.
fn size(v: &Val) -> u64 {
    match v {
        Val::Str(s) => str_units(s.len()),
        Val::Arr(items, _) => 1 + items.iter().map(size).sum::<u64>(),
        Val::Map(map, _) => {
            1 + map
                .iter()
                .map(|(k, v)| str_units(k.len()) + size(v))
                .sum::<u64>()
        }
        Val::Ext(e, _) => ext_size(e, 0).map_or(1, |(u, _)| u),
        _ => 1,
    }
}

/// Evaluate a tiny fixed program over opaque values, e.g. `a - b` on a time and a duration.
fn ext_eval(src: &str, vals: &[&Val]) -> Result<(Val, u64), EvalError> {
    const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut ctx = expr::Context::default();
    for (name, v) in NAMES.iter().zip(vals) {
        ctx.insert(*name, to_expr(v));
    }
    let out = expr::eval(src, &ctx).map_err(|e| EvalError::Runtime(e.to_string()))?;
    from_expr(out, 0)
}

/// Go converts an out-of-range float to int64 as amd64 does: the "integer indefinite" value.
fn go_f64_to_i64(f: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        i64::MIN
    } else {
        f.trunc() as i64
    }
}

// ---------------------------------------------------------------------------------------------
// Interpreter
// ---------------------------------------------------------------------------------------------

struct Budget {
    limits: Limits,
    steps: u64,
    memory: u64,
    started: Instant,
    next_clock: u64,
}

impl Budget {
    fn new(limits: Limits) -> Self {
        Budget {
            limits,
            steps: 0,
            memory: 0,
            started: Instant::now(),
            next_clock: 1024,
        }
    }

    fn step(&mut self, n: u64) -> Result<(), EvalError> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(EvalError::Budget(format!(
                "expression exceeded its evaluation budget of {} steps",
                self.limits.max_steps
            )));
        }
        if self.steps >= self.next_clock {
            self.next_clock = self.steps.saturating_add(1024);
            if self.started.elapsed() > self.limits.max_time {
                return Err(EvalError::Budget(format!(
                    "expression exceeded its time budget of {} ms",
                    self.limits.max_time.as_millis()
                )));
            }
        }
        Ok(())
    }

    fn fits(&self, units: u64) -> Result<(), EvalError> {
        if self.memory.saturating_add(units) > self.limits.max_memory {
            return Err(EvalError::Budget("memory budget exceeded".to_owned()));
        }
        Ok(())
    }

    fn alloc(&mut self, units: u64) -> Result<(), EvalError> {
        self.fits(units)?;
        self.memory += units;
        // Building the value took time too.
        self.step(units / 16)
    }
}

/// How evaluation stops early: an error, or an optional chain (`a?.b`) meeting nil.
enum Stop {
    Fail(EvalError),
    ChainNil,
}

impl From<EvalError> for Stop {
    fn from(e: EvalError) -> Self {
        Stop::Fail(e)
    }
}

type R<T> = Result<T, Stop>;

fn rt<T>(msg: impl Into<String>) -> R<T> {
    Err(Stop::Fail(EvalError::Runtime(msg.into())))
}

#[derive(Clone, Copy)]
enum Num {
    I(i64),
    F(f64),
}

impl Num {
    fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

fn num(v: &Val) -> Option<Num> {
    match v {
        Val::Int(i) => Some(Num::I(*i)),
        Val::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

fn to_int(v: &Val) -> R<i64> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Float(f) => Ok(go_f64_to_i64(*f)),
        other => rt(format!("invalid operation: int({})", go_type(other))),
    }
}

/// An argument the checker let through as an integer for a float64 parameter: Go rewrites
/// integer literals (also inside `+ - *`) to floats at compile time, anything else panics.
fn int_literal_tree(node: &Node) -> bool {
    match node {
        Node::Int(_) => true,
        Node::Unary(_, inner) => int_literal_tree(inner),
        Node::Binary(op, a, b) if matches!(op.as_str(), "+" | "-" | "*") => {
            int_literal_tree(a) || int_literal_tree(b)
        }
        _ => false,
    }
}

fn parse_go_int(s: &str) -> Result<i64, &'static str> {
    s.parse::<i64>().map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
            "value out of range"
        }
        _ => "invalid syntax",
    })
}

fn parse_go_float(s: &str) -> Result<f64, &'static str> {
    let f: f64 = s.parse().map_err(|_| "invalid syntax")?;
    let spelled_inf = s
        .trim_start_matches(['+', '-'])
        .to_ascii_lowercase()
        .starts_with("inf");
    if f.is_infinite() && !spelled_inf {
        return Err("value out of range");
    }
    Ok(f)
}

/// A sort key with a total order, so a sort can never see an inconsistent comparison.
#[derive(PartialEq, PartialOrd)]
enum SortKey {
    Num(TotalF64, u8, i64),
    Str(Rc<str>),
    Time(i64, u32),
    Dur(i64),
}

#[derive(PartialEq)]
struct TotalF64(f64);

impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.0.total_cmp(&other.0))
    }
}

fn sort_key(v: &Val) -> Option<SortKey> {
    Some(match v {
        Val::Int(i) => SortKey::Num(TotalF64(*i as f64), 1, *i),
        Val::Float(f) => SortKey::Num(TotalF64(*f), 0, 0),
        Val::Str(s) => SortKey::Str(s.clone()),
        Val::Ext(e, _) => match (e.as_datetime(), e.as_duration()) {
            (Some(dt), _) => SortKey::Time(dt.timestamp(), dt.timestamp_subsec_nanos()),
            (_, Some(d)) => SortKey::Dur(d),
            _ => return None,
        },
        _ => return None,
    })
}

struct Frame {
    item: Val,
    index: i64,
    acc: Val,
}

static BUILTINS: LazyLock<expr::Environment<'static>> = LazyLock::new(expr::Environment::new);

struct Interp<'e> {
    budget: Budget,
    vars: &'e [(String, Val)],
    /// What `isNil` and `default` test, whatever their first argument.
    result: Val,
    lets: Vec<(String, Val)>,
    frames: Vec<Frame>,
    regexes: HashMap<String, Regex>,
}

impl Interp<'_> {
    fn eval(&mut self, node: &Node) -> R<Val> {
        self.budget.step(1)?;
        Ok(match node {
            Node::Nil => Val::Nil,
            Node::Bool(b) => Val::Bool(*b),
            Node::Int(i) => Val::Int(*i),
            Node::Float(f) => Val::Float(*f),
            Node::Str(s) => Val::Str(s.clone()),
            Node::Bytes(b) => Val::Ext(b.clone(), 0),
            Node::Ident(name) => self.ident(name)?,
            Node::Pointer(name) => {
                let Some(frame) = self.frames.last() else {
                    return rt("cannot use pointer accessor outside predicate");
                };
                match name.as_str() {
                    "" => frame.item.clone(),
                    "index" => Val::Int(frame.index),
                    "acc" => frame.acc.clone(),
                    _ => return rt(format!("unknown pointer #{name}")),
                }
            }
            Node::Unary(op, inner) => {
                let v = self.eval(inner)?;
                match (op.as_str(), v) {
                    ("!" | "not", Val::Bool(b)) => Val::Bool(!b),
                    ("!" | "not", v) => return rt(iface_error(&v, "bool")),
                    ("-", Val::Int(i)) => Val::Int(i.wrapping_neg()),
                    ("-", Val::Float(f)) => Val::Float(-f),
                    ("-", v) => return rt(format!("invalid operation: - {}", go_type(&v))),
                    (_, v) => v,
                }
            }
            Node::Binary(op, left, right) => self.binary(op, left, right)?,
            Node::Member {
                node,
                prop,
                optional,
            } => {
                let base = self.eval(node)?;
                if *optional && base.is_nil() {
                    return Err(Stop::ChainNil);
                }
                let key = self.eval(prop)?;
                self.fetch(&base, &key)?
            }
            Node::Slice { node, from, to } => {
                let base = self.eval(node)?;
                let from = from.as_deref().map(|n| self.eval(n)).transpose()?;
                let to = to.as_deref().map(|n| self.eval(n)).transpose()?;
                self.slice(&base, from.as_ref(), to.as_ref())?
            }
            Node::MethodCall {
                node,
                name,
                args,
                optional,
            } => {
                let base = self.eval(node)?;
                if *optional && base.is_nil() {
                    return Err(Stop::ChainNil);
                }
                let mut vals = Vec::with_capacity(args.len());
                for arg in args {
                    vals.push(self.eval(arg)?);
                }
                self.method(&base, name, &vals)?
            }
            Node::Call { name, args } => self.call(name, args)?,
            Node::Builtin { name, args } => self.builtin(name, args)?,
            Node::Predicate(_) => return rt("predicate used outside of a builtin"),
            Node::Let { name, value, body } => {
                let v = self.eval(value)?;
                self.lets.push((name.clone(), v));
                let out = self.eval(body);
                self.lets.pop();
                out?
            }
            Node::Seq(nodes) => {
                let mut last = Val::Nil;
                for n in nodes {
                    last = self.eval(n)?;
                }
                last
            }
            Node::Cond { cond, then, other } => match self.eval(cond)? {
                Val::Bool(true) => self.eval(then)?,
                Val::Bool(false) => self.eval(other)?,
                v => return rt(iface_error(&v, "bool")),
            },
            Node::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    out.push(self.eval(item)?);
                }
                self.mk_arr(out)?
            }
            Node::Map(pairs) => {
                let mut out = BTreeMap::new();
                for (k, v) in pairs {
                    let key = match self.eval(k)? {
                        Val::Str(s) => s.to_string(),
                        other => return rt(iface_error(&other, "string")),
                    };
                    let value = self.eval(v)?;
                    out.insert(key, value);
                }
                self.mk_map(out)?
            }
            Node::Chain(inner) => match self.eval(inner) {
                Err(Stop::ChainNil) => Val::Nil,
                other => other?,
            },
        })
    }

    fn mk_arr(&mut self, items: Vec<Val>) -> R<Val> {
        self.budget.alloc(1 + items.len() as u64)?;
        let depth = 1 + items.iter().map(Val::depth).max().unwrap_or(0);
        if depth > MAX_VALUE_DEPTH {
            return rt(format!("value nests deeper than {MAX_VALUE_DEPTH} levels"));
        }
        Ok(Val::Arr(Rc::new(items), depth))
    }

    fn mk_map(&mut self, map: BTreeMap<String, Val>) -> R<Val> {
        self.budget.alloc(1 + map.len() as u64)?;
        let depth = 1 + map.values().map(Val::depth).max().unwrap_or(0);
        if depth > MAX_VALUE_DEPTH {
            return rt(format!("value nests deeper than {MAX_VALUE_DEPTH} levels"));
        }
        Ok(Val::Map(Rc::new(map), depth))
    }

    fn ext(&mut self, src: &str, vals: &[&Val]) -> R<Val> {
        self.budget
            .step(vals.iter().map(|v| size(v)).sum::<u64>())?;
        let (v, units) = ext_eval(src, vals)?;
        self.budget.alloc(units)?;
        Ok(v)
    }

    fn ident(&mut self, name: &str) -> R<Val> {
        if let Some((_, v)) = self.lets.iter().rev().find(|(n, _)| n == name) {
            return Ok(v.clone());
        }
        if let Some((_, v)) = self.vars.iter().find(|(n, _)| n == name) {
            return Ok(v.clone());
        }
        if name == "$env" {
            let map: BTreeMap<String, Val> = self.vars.iter().cloned().collect();
            return self.mk_map(map);
        }
        rt(format!("unknown name {name}"))
    }

    fn binary(&mut self, op: &str, left: &Node, right: &Node) -> R<Val> {
        match op {
            "&&" | "and" | "||" | "or" => {
                let short = matches!(op, "||" | "or");
                // Go asserts the left operand is a bool and returns the right one unchecked.
                return match self.eval(left)? {
                    Val::Bool(b) if b == short => Ok(Val::Bool(b)),
                    Val::Bool(_) => self.eval(right),
                    v => rt(iface_error(&v, "bool")),
                };
            }
            "??" => {
                let v = self.eval(left)?;
                return if v.is_nil() { self.eval(right) } else { Ok(v) };
            }
            _ => {}
        }
        let a = self.eval(left)?;
        let b = self.eval(right)?;
        match op {
            "==" => Ok(Val::Bool(self.equal(&a, &b)?)),
            "!=" => Ok(Val::Bool(!self.equal(&a, &b)?)),
            "<" | ">" | "<=" | ">=" => self.compare(op, &a, &b),
            "+" | "-" | "*" | "/" | "%" | "**" | "^" => self.arith(op, &a, &b),
            "in" => self.contains_item(&a, &b),
            "matches" => self.matches(&a, &b),
            "contains" | "startsWith" | "endsWith" => {
                if a.is_nil() || b.is_nil() {
                    return Ok(Val::Bool(false));
                }
                let Val::Str(x) = &a else {
                    return rt(iface_error(&a, "string"));
                };
                let Val::Str(y) = &b else {
                    return rt(iface_error(&b, "string"));
                };
                self.budget.step(str_units(x.len()))?;
                Ok(Val::Bool(match op {
                    "contains" => x.contains(&**y),
                    "startsWith" => x.starts_with(&**y),
                    _ => x.ends_with(&**y),
                }))
            }
            ".." => {
                let (lo, hi) = (to_int(&a)?, to_int(&b)?);
                let len = (i128::from(hi) - i128::from(lo) + 1).max(0);
                let len = u64::try_from(len).unwrap_or(u64::MAX);
                self.budget.fits(len.saturating_add(1))?;
                let items: Vec<Val> = (0..len)
                    .map(|i| Val::Int(lo.wrapping_add(i as i64)))
                    .collect();
                self.mk_arr(items)
            }
            _ => rt(format!("unknown operator ({op})")),
        }
    }

    fn equal(&mut self, a: &Val, b: &Val) -> R<bool> {
        Ok(match (a, b) {
            (Val::Int(x), Val::Int(y)) => x == y,
            (Val::Int(_) | Val::Float(_), Val::Int(_) | Val::Float(_)) => {
                num(a).map(Num::f) == num(b).map(Num::f)
            }
            (Val::Str(x), Val::Str(y)) => {
                self.budget.step(str_units(x.len()))?;
                x == y
            }
            (Val::Bool(x), Val::Bool(y)) => x == y,
            (Val::Nil, Val::Nil) => true,
            (Val::Arr(x, _), Val::Arr(y, _)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (p, q) in x.iter().zip(y.iter()) {
                    self.budget.step(1)?;
                    if !self.equal(p, q)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Val::Map(x, _), Val::Map(y, _)) => {
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (k, p) in x.iter() {
                    self.budget.step(1)?;
                    match y.get(k) {
                        Some(q) if self.equal(p, q)? => {}
                        _ => return Ok(false),
                    }
                }
                true
            }
            (Val::Ext(..), Val::Ext(..)) => matches!(self.ext("a == b", &[a, b])?, Val::Bool(true)),
            _ => false,
        })
    }

    fn compare(&mut self, op: &str, a: &Val, b: &Val) -> R<Val> {
        let ord = match (num(a), num(b), a, b) {
            (Some(Num::I(x)), Some(Num::I(y)), ..) => Some(x.cmp(&y)),
            (Some(x), Some(y), ..) => x.f().partial_cmp(&y.f()),
            (_, _, Val::Str(x), Val::Str(y)) => {
                self.budget.step(str_units(x.len()))?;
                Some(x.as_bytes().cmp(y.as_bytes()))
            }
            _ if a.is_ext() || b.is_ext() => return self.ext(&format!("a {op} b"), &[a, b]),
            _ => {
                return rt(format!(
                    "invalid operation: {} {op} {}",
                    go_type(a),
                    go_type(b)
                ));
            }
        };
        // NaN is unordered: every comparison with it is false, as in Go.
        Ok(Val::Bool(ord.is_some_and(|o| match op {
            "<" => o.is_lt(),
            ">" => o.is_gt(),
            "<=" => o.is_le(),
            _ => o.is_ge(),
        })))
    }

    fn arith(&mut self, op: &str, a: &Val, b: &Val) -> R<Val> {
        if let (Some(x), Some(y)) = (num(a), num(b)) {
            return Ok(match (op, x, y) {
                ("+", Num::I(x), Num::I(y)) => Val::Int(x.wrapping_add(y)),
                ("-", Num::I(x), Num::I(y)) => Val::Int(x.wrapping_sub(y)),
                ("*", Num::I(x), Num::I(y)) => Val::Int(x.wrapping_mul(y)),
                ("%", Num::I(_), Num::I(0)) => {
                    return rt("runtime error: integer divide by zero");
                }
                ("%", Num::I(x), Num::I(y)) => Val::Int(x.wrapping_rem(y)),
                ("%", ..) => {
                    return rt(format!(
                        "invalid operation: {} % {}",
                        go_type(a),
                        go_type(b)
                    ));
                }
                ("+", x, y) => Val::Float(x.f() + y.f()),
                ("-", x, y) => Val::Float(x.f() - y.f()),
                ("*", x, y) => Val::Float(x.f() * y.f()),
                ("/", x, y) => Val::Float(x.f() / y.f()),
                (_, x, y) => Val::Float(x.f().powf(y.f())),
            });
        }
        if let (Val::Str(x), Val::Str(y), "+") = (a, b, op) {
            self.budget.alloc(str_units(x.len() + y.len()))?;
            let mut s = String::with_capacity(x.len() + y.len());
            s.push_str(x);
            s.push_str(y);
            return Ok(Val::Str(Rc::from(s)));
        }
        if matches!(op, "**" | "^") {
            for v in [a, b] {
                if num(v).is_none() {
                    return rt(format!("invalid operation: float({})", go_type(v)));
                }
            }
        }
        if a.is_ext() || b.is_ext() {
            return self.ext(&format!("a {op} b"), &[a, b]);
        }
        rt(format!(
            "invalid operation: {} {op} {}",
            go_type(a),
            go_type(b)
        ))
    }

    fn contains_item(&mut self, needle: &Val, hay: &Val) -> R<Val> {
        Ok(Val::Bool(match hay {
            Val::Nil => false,
            Val::Arr(items, _) => {
                for item in items.iter() {
                    self.budget.step(1)?;
                    if self.equal(item, needle)? {
                        return Ok(Val::Bool(true));
                    }
                }
                false
            }
            Val::Map(map, _) => match needle {
                Val::Str(k) => map.contains_key(&**k),
                Val::Nil => map.contains_key(""),
                other => {
                    return rt(format!(
                        "reflect.Value.MapIndex: value of type {} is not assignable to type string",
                        go_type(other)
                    ));
                }
            },
            Val::Ext(..) => return self.ext("a in b", &[needle, hay]),
            other => return rt(format!("operator \"in\" not defined on {}", go_type(other))),
        }))
    }

    fn matches(&mut self, a: &Val, b: &Val) -> R<Val> {
        if a.is_nil() || b.is_nil() {
            return Ok(Val::Bool(false));
        }
        let Val::Str(pattern) = b else {
            return rt(iface_error(b, "string"));
        };
        let text = match a {
            Val::Str(s) => s.clone(),
            Val::Ext(..) => return self.ext("a matches b", &[a, b]),
            other => return rt(iface_error(other, "[]uint8")),
        };
        self.budget
            .step(str_units(text.len()) + str_units(pattern.len()))?;
        if !self.regexes.contains_key(&**pattern) {
            if pattern.len() > self.budget.limits.max_len {
                return rt("regular expression is too long");
            }
            let re = Regex::new(pattern).map_err(|e| {
                Stop::Fail(EvalError::Runtime(format!("error parsing regexp: {e}")))
            })?;
            if self.regexes.len() >= 32 {
                self.regexes.clear();
            }
            self.regexes.insert(pattern.to_string(), re);
        }
        Ok(Val::Bool(
            self.regexes
                .get(&**pattern)
                .is_some_and(|re| re.is_match(&text)),
        ))
    }

    fn fetch(&mut self, base: &Val, key: &Val) -> R<Val> {
        match base {
            Val::Arr(items, _) => {
                let i = self.index(to_int(key)?, items.len())?;
                Ok(items.get(i).cloned().unwrap_or(Val::Nil))
            }
            Val::Str(s) => {
                let i = self.index(to_int(key)?, s.len())?;
                Ok(s.as_bytes()
                    .get(i)
                    .map_or(Val::Nil, |b| Val::Int(i64::from(*b))))
            }
            Val::Map(map, _) => match key {
                Val::Str(k) => Ok(map.get(&**k).cloned().unwrap_or(Val::Nil)),
                Val::Nil => Ok(map.get("").cloned().unwrap_or(Val::Nil)),
                other => rt(format!(
                    "reflect.Value.MapIndex: value of type {} is not assignable to type string",
                    go_type(other)
                )),
            },
            Val::Ext(..) => self.ext("a[b]", &[base, key]),
            Val::Nil => rt(format!("cannot fetch {} from <nil>", go_fmt(key))),
            other => rt(format!(
                "cannot fetch {} from {}",
                go_fmt(key),
                go_type(other)
            )),
        }
    }

    fn index(&self, index: i64, len: usize) -> R<usize> {
        let len_i = len as i64;
        let index = if index < 0 {
            len_i.wrapping_add(index)
        } else {
            index
        };
        if index < 0 || index >= len_i {
            return rt(format!(
                "index out of range: {index} (array length is {len})"
            ));
        }
        Ok(index as usize)
    }

    fn slice(&mut self, base: &Val, from: Option<&Val>, to: Option<&Val>) -> R<Val> {
        let len = match base {
            Val::Arr(items, _) => items.len(),
            Val::Str(s) => s.len(),
            Val::Ext(..) => {
                let src = match (from, to) {
                    (Some(_), Some(_)) => "a[b:c]",
                    (Some(_), None) => "a[b:]",
                    (None, Some(_)) => "a[:c]",
                    (None, None) => "a[:]",
                };
                let nil = Val::Nil;
                return self.ext(src, &[base, from.unwrap_or(&nil), to.unwrap_or(&nil)]);
            }
            _ => {
                return rt(format!(
                    "cannot slice {}",
                    from.map_or("<nil>".to_owned(), go_fmt)
                ));
            }
        };
        let len_i = len as i64;
        let clamp = |v: i64| {
            let v = if v < 0 { len_i.saturating_add(v) } else { v };
            v.clamp(0, len_i) as usize
        };
        let hi = clamp(to.map(to_int).transpose()?.unwrap_or(len_i));
        let lo = clamp(from.map(to_int).transpose()?.unwrap_or(0)).min(hi);
        match base {
            Val::Arr(items, _) => self.mk_arr(items.get(lo..hi).unwrap_or(&[]).to_vec()),
            Val::Str(s) => {
                let bytes = s.as_bytes().get(lo..hi).unwrap_or(&[]);
                self.budget.alloc(str_units(bytes.len()))?;
                Ok(Val::Str(Rc::from(String::from_utf8_lossy(bytes).as_ref())))
            }
            _ => Ok(Val::Nil),
        }
    }

    fn method(&mut self, base: &Val, name: &str, args: &[Val]) -> R<Val> {
        match base {
            Val::Ext(..) => {
                const PARAMS: [&str; 7] = ["b", "c", "d", "e", "f", "g", "h"];
                if args.len() > PARAMS.len() {
                    return rt(format!("too many arguments to call {name}"));
                }
                let params = PARAMS.get(..args.len()).unwrap_or(&[]).join(", ");
                let mut vals = vec![base];
                vals.extend(args.iter());
                self.ext(&format!("a.{name}({params})"), &vals)
            }
            Val::Nil => rt(format!("cannot fetch {name} from <nil>")),
            Val::Map(map, _) if map.contains_key(name) => rt(format!("{name} is not a function")),
            other => rt(format!("cannot fetch {name} from {}", go_type(other))),
        }
    }

    fn call(&mut self, name: &str, args: &[Node]) -> R<Val> {
        let mut vals = Vec::with_capacity(args.len());
        for arg in args {
            vals.push(self.eval(arg)?);
        }
        match (name, vals.as_slice(), args.first()) {
            ("asInt", [v], _) => match v {
                Val::Float(f) => Ok(Val::Int(go_f64_to_i64(*f))),
                Val::Int(i) => Ok(Val::Int(*i)),
                Val::Str(s) => parse_go_int(s)
                    .map(Val::Int)
                    .or_else(|why| rt(format!("strconv.ParseInt: parsing {}: {why}", go_quote(s)))),
                other => rt(format!(
                    "asInt() not supported on {} {}",
                    go_type(other),
                    go_fmt(other)
                )),
            },
            ("asFloat", [v], _) => match v {
                Val::Float(f) => Ok(Val::Float(*f)),
                Val::Int(i) => Ok(Val::Float(*i as f64)),
                Val::Str(s) => parse_go_float(s).map(Val::Float).or_else(|why| {
                    rt(format!(
                        "strconv.ParseFloat: parsing {}: {why}",
                        go_quote(s)
                    ))
                }),
                other => rt(format!(
                    "asFloat() not supported on {} {}",
                    go_type(other),
                    go_fmt(other)
                )),
            },
            ("isNaN" | "isInf", [v], Some(arg)) => {
                let f = match v {
                    Val::Float(f) => *f,
                    Val::Int(i) if int_literal_tree(arg) => *i as f64,
                    other => return rt(iface_error(other, "float64")),
                };
                Ok(Val::Bool(if name == "isNaN" {
                    f.is_nan()
                } else {
                    f.is_infinite()
                }))
            }
            ("isNil", [_], _) => Ok(Val::Bool(self.result.is_nil())),
            ("default", [_, fallback], _) => Ok(if self.result.is_nil() {
                fallback.clone()
            } else {
                self.result.clone()
            }),
            _ => rt(format!("unknown name {name}")),
        }
    }

    fn builtin(&mut self, name: &str, args: &[Node]) -> R<Val> {
        if predicate_spec(name).is_some() {
            return self.predicate_builtin(name, args);
        }
        let mut vals = Vec::with_capacity(args.len());
        for arg in args {
            vals.push(self.eval(arg)?);
        }
        if name == "len" {
            // expr-lang counts characters; Go counts bytes.
            return match vals.as_slice() {
                [Val::Str(s)] => Ok(Val::Int(s.len() as i64)),
                [Val::Arr(items, _)] => Ok(Val::Int(items.len() as i64)),
                [Val::Map(map, _)] => Ok(Val::Int(map.len() as i64)),
                [v @ Val::Ext(..)] => self.ext("len(a)", &[v]),
                [other] => rt(format!(
                    "invalid argument for len (type {})",
                    go_type(other)
                )),
                _ => rt(format!(
                    "invalid number of arguments (expected 1, got {})",
                    vals.len()
                )),
            };
        }
        self.delegate(name, vals)
    }

    /// Call one of `expr-lang`'s builtins, after checking that its output cannot outgrow the
    /// budget (the few builtins whose output is not linear in their input).
    fn delegate(&mut self, name: &str, args: Vec<Val>) -> R<Val> {
        let input: u64 = args.iter().map(size).sum();
        self.budget.step(1 + input)?;
        match (name, args.as_slice()) {
            ("repeat", [Val::Str(s), Val::Int(n)]) => {
                let n = usize::try_from(*n).unwrap_or(0);
                self.budget.fits(str_units(s.len().saturating_mul(n)))?;
            }
            ("replace", [Val::Str(s), Val::Str(old), Val::Str(new)]) => {
                let hits = if old.is_empty() {
                    s.chars().count() + 1
                } else {
                    s.len() / old.len()
                };
                self.budget.fits(str_units(
                    s.len().saturating_add(hits.saturating_mul(new.len())),
                ))?;
            }
            ("join", [Val::Arr(items, _), rest @ ..]) => {
                let sep = match rest.first() {
                    Some(Val::Str(sep)) => sep.len(),
                    _ => 0,
                };
                let est = items.len().saturating_mul(sep.saturating_add(24));
                self.budget.fits(str_units(est).saturating_add(input))?;
            }
            ("split" | "splitAfter", [Val::Str(s), Val::Str(sep), ..]) => {
                let pieces = if sep.is_empty() {
                    s.chars().count()
                } else {
                    s.len() / sep.len()
                };
                self.budget
                    .fits((pieces as u64 + 1).saturating_add(input))?;
            }
            ("toJSON" | "string", [v]) => self.budget.fits(size(v).saturating_mul(2))?,
            ("fromJSON", [Val::Str(s)]) => self.budget.fits(s.len() as u64 / 2)?,
            ("uniq", [Val::Arr(items, _)]) => {
                let n = items.len() as u64;
                self.budget.step(n.saturating_mul(n) / 16)?;
            }
            ("sort", [Val::Arr(items, _), ..]) => {
                let n = items.len() as u64;
                self.budget
                    .step(n.saturating_mul(u64::from(64 - n.leading_zeros())))?;
            }
            _ => {}
        }
        let xargs = args.iter().map(to_expr).collect();
        let out = BUILTINS
            .eval_func(&expr::Context::default(), name, xargs, None)
            .map_err(|e| Stop::Fail(EvalError::Runtime(e.to_string())))?;
        let (v, units) = from_expr(out, 0)?;
        self.budget.alloc(units)?;
        Ok(v)
    }

    fn apply(&mut self, pred: &Node, item: &Val, index: usize, acc: Val) -> R<Val> {
        self.budget.step(1)?;
        self.frames.push(Frame {
            item: item.clone(),
            index: index as i64,
            acc,
        });
        let out = self.eval(pred);
        self.frames.pop();
        out
    }

    fn test(&mut self, pred: Option<&Node>, item: &Val, index: usize) -> R<bool> {
        let v = match pred {
            Some(p) => self.apply(p, item, index, Val::Nil)?,
            None => item.clone(),
        };
        match v {
            Val::Bool(b) => Ok(b),
            other => rt(iface_error(&other, "bool")),
        }
    }

    fn predicate_builtin<'a>(&mut self, name: &str, args: &'a [Node]) -> R<Val> {
        let Some(first) = args.first() else {
            return rt(format!("expected at least 2 arguments to {name}"));
        };
        let items = match self.eval(first)? {
            Val::Arr(items, _) => items,
            other => {
                return rt(format!(
                    "invalid argument for len (type {})",
                    go_type(&other)
                ));
            }
        };
        let pred = match args.get(1) {
            Some(Node::Predicate(p)) => Some(&**p),
            _ => None,
        };
        let need = |p: Option<&'a Node>| -> R<&'a Node> {
            p.map_or_else(|| rt(format!("{name} requires a predicate")), Ok)
        };
        match name {
            "all" | "any" | "none" | "one" => {
                let mut hits = 0usize;
                for (i, item) in items.iter().enumerate() {
                    let hit = self.test(Some(need(pred)?), item, i)?;
                    match (name, hit) {
                        ("all", false) | ("none", true) => return Ok(Val::Bool(false)),
                        ("any", true) => return Ok(Val::Bool(true)),
                        _ => {}
                    }
                    hits += usize::from(hit);
                }
                Ok(Val::Bool(match name {
                    "all" | "none" => true,
                    "any" => false,
                    _ => hits == 1,
                }))
            }
            "filter" => {
                let mut out = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    if self.test(Some(need(pred)?), item, i)? {
                        out.push(item.clone());
                    }
                }
                self.mk_arr(out)
            }
            "map" => {
                let p = need(pred)?;
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    out.push(self.apply(p, item, i, Val::Nil)?);
                }
                self.mk_arr(out)
            }
            "count" => {
                let mut n = 0i64;
                for (i, item) in items.iter().enumerate() {
                    n += i64::from(self.test(pred, item, i)?);
                }
                Ok(Val::Int(n))
            }
            "sum" => {
                let mut acc = Val::Int(0);
                for (i, item) in items.iter().enumerate() {
                    let v = match pred {
                        Some(p) => self.apply(p, item, i, Val::Nil)?,
                        None => item.clone(),
                    };
                    acc = self.arith("+", &v, &acc)?;
                }
                Ok(acc)
            }
            "find" | "findIndex" | "findLast" | "findLastIndex" => {
                let p = need(pred)?;
                let backwards = name.starts_with("findLast");
                let order: Box<dyn Iterator<Item = usize>> = if backwards {
                    Box::new((0..items.len()).rev())
                } else {
                    Box::new(0..items.len())
                };
                for i in order {
                    let Some(item) = items.get(i) else { continue };
                    if self.test(Some(p), item, i)? {
                        return Ok(if name.ends_with("Index") {
                            Val::Int(i as i64)
                        } else {
                            item.clone()
                        });
                    }
                }
                Ok(if name.ends_with("Index") {
                    Val::Int(-1)
                } else {
                    Val::Nil
                })
            }
            "groupBy" => self.group_by(need(pred)?, &items),
            "sortBy" => {
                let p = need(pred)?;
                let order = match args.get(2) {
                    Some(n) => self.eval(n)?,
                    None => Val::Str(Rc::from("asc")),
                };
                let descending = match &order {
                    Val::Str(s) if &**s == "asc" => false,
                    Val::Str(s) if &**s == "desc" => true,
                    _ => return rt("unknown order, use asc or desc"),
                };
                let mut keyed = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let key = self.apply(p, item, i, Val::Nil)?;
                    keyed.push((key, item.clone()));
                }
                let mut sortable = Vec::with_capacity(keyed.len());
                for (key, item) in keyed {
                    match sort_key(&key) {
                        Some(k) => sortable.push((k, item)),
                        None => {
                            return rt(format!(
                                "invalid operation: {} < {}",
                                go_type(&key),
                                go_type(&key)
                            ));
                        }
                    }
                }
                let kinds = |k: &SortKey| std::mem::discriminant(k);
                if let Some((first, _)) = sortable.first() {
                    let kind = kinds(first);
                    if sortable.iter().any(|(k, _)| kinds(k) != kind) {
                        return rt("invalid operation: mismatched types in sortBy keys");
                    }
                }
                let n = sortable.len() as u64;
                self.budget
                    .step(n.saturating_mul(u64::from(64 - n.leading_zeros())))?;
                sortable.sort_by(|(a, _), (b, _)| {
                    let o = a.partial_cmp(b).unwrap_or(Ordering::Equal);
                    if descending { o.reverse() } else { o }
                });
                self.mk_arr(sortable.into_iter().map(|(_, v)| v).collect())
            }
            "reduce" => {
                let p = need(pred)?;
                let (mut acc, start) = match args.get(2) {
                    Some(init) => (self.eval(init)?, 0),
                    None => match items.first() {
                        Some(first) => (first.clone(), 1),
                        None => return rt("reduce of empty array with no initial value"),
                    },
                };
                for (i, item) in items.iter().enumerate().skip(start) {
                    acc = self.apply(p, item, i, acc)?;
                }
                Ok(acc)
            }
            _ => rt(format!("unknown builtin {name}")),
        }
    }

    fn group_by(&mut self, pred: &Node, items: &[Val]) -> R<Val> {
        let mut groups: Vec<(Val, Vec<Val>)> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let key = self.apply(pred, item, i, Val::Nil)?;
            if matches!(key, Val::Arr(..) | Val::Map(..)) {
                return rt(format!(
                    "runtime error: hash of unhashable type {}",
                    go_type(&key)
                ));
            }
            self.budget.step(groups.len() as u64)?;
            let same = |k: &Val| match (k, &key) {
                (Val::Int(a), Val::Int(b)) => a == b,
                (Val::Float(a), Val::Float(b)) => a == b,
                (Val::Str(a), Val::Str(b)) => a == b,
                (Val::Bool(a), Val::Bool(b)) => a == b,
                (Val::Nil, Val::Nil) => true,
                (Val::Ext(a, _), Val::Ext(b, _)) => a == b,
                _ => false,
            };
            match groups.iter_mut().find(|(k, _)| same(k)) {
                Some((_, members)) => members.push(item.clone()),
                None => groups.push((key, vec![item.clone()])),
            }
        }
        self.budget
            .alloc(1 + 2 * groups.len() as u64 + items.len() as u64)?;
        let depth = 1 + items.iter().map(Val::depth).max().unwrap_or(0);
        if groups.iter().all(|(k, _)| matches!(k, Val::Str(_))) {
            let mut map = BTreeMap::new();
            for (k, members) in groups {
                let group = Val::Arr(Rc::new(members), depth);
                if let Val::Str(k) = k {
                    map.insert(k.to_string(), group);
                }
            }
            return self.mk_map(map);
        }
        let pairs = groups
            .into_iter()
            .map(|(k, members)| {
                (
                    to_expr(&k),
                    expr::Value::Array(members.iter().map(to_expr).collect()),
                )
            })
            .collect();
        Ok(Val::Ext(Rc::new(expr::Value::KeyedMap(pairs)), depth + 1))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn f(x: f64) -> MetricValue {
        MetricValue::Float(x)
    }
    fn s(x: &str) -> MetricValue {
        MetricValue::String(x.to_owned())
    }
    fn list(xs: &[f64]) -> MetricValue {
        MetricValue::from(xs.to_vec())
    }
    fn js(v: serde_json::Value) -> MetricValue {
        MetricValue::from_json(&v)
    }
    const NIL: MetricValue = MetricValue::Nil;
    const TRUE: MetricValue = MetricValue::Bool(true);

    #[derive(Debug)]
    enum Want {
        Yes,
        No,
        /// The exact error message.
        Fails(&'static str),
        /// An error whose message contains this.
        Mentions(&'static str),
    }
    use Want::*;

    /// Runs every row and reports all mismatches at once.
    fn table(rows: &[(&str, MetricValue, Want)]) {
        let mut failures = Vec::new();
        for (expr, result, want) in rows {
            let got = eval_condition(expr, result);
            let ok = match (want, &got) {
                (Yes, Ok(true)) | (No, Ok(false)) => true,
                (Fails(msg), Err(e)) => e.to_string() == *msg,
                (Mentions(msg), Err(e)) => e.to_string().contains(msg),
                _ => false,
            };
            if !ok {
                failures.push(format!(
                    "{expr:?} on {result:?}: want {want:?}, got {got:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failing rows:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn result_indexing_and_slicing() {
        table(&[
            ("result", TRUE, Yes),
            ("result", MetricValue::Bool(false), No),
            // upstream TestEvaluateConditionWithSuccess / WithFailure / TestEvaluateFloat64
            ("result == true", TRUE, Yes),
            ("result == false", TRUE, No),
            ("result > 1", f(5.0), Yes),
            // Prometheus vector: result is []float64
            ("result[0] >= 0.95", list(&[0.99]), Yes),
            ("result[0] >= 0.95", list(&[0.5]), No),
            ("result[1] == 2", list(&[1.0, 2.0]), Yes),
            ("result[-1] == 2", list(&[1.0, 2.0]), Yes),
            (
                "result[0] >= 0.95",
                list(&[]),
                Fails("index out of range: 0 (array length is 0)"),
            ),
            (
                "result[2] > 0",
                list(&[1.0]),
                Fails("index out of range: 2 (array length is 1)"),
            ),
            ("result[0:1] == [1]", list(&[1.0, 2.0]), Yes),
            ("result[1:] == [2]", list(&[1.0, 2.0]), Yes),
            ("result[:1][0] == 1", list(&[1.0, 2.0]), Yes),
            ("result[5:] == []", list(&[1.0, 2.0]), Yes),
            // upstream TestEvaluateInOperator
            ("2 in result", list(&[2.0, 2.0]), Yes),
            ("3 in result", list(&[2.0, 2.0]), No),
            ("3 not in result", list(&[2.0, 2.0]), Yes),
            (
                "result[0] == 'x'",
                list(&[1.0]),
                Fails("invalid operation: == (mismatched types float64 and string)"),
            ),
            (
                "result['a'] > 0",
                list(&[1.0]),
                Fails("array elements can only be selected using an integer (got string)"),
            ),
            (
                "'x' in result",
                list(&[1.0]),
                Fails("cannot use string as type float64 in array"),
            ),
            (
                "result[0] > 0",
                f(1.0),
                Fails("type float64[int] is undefined"),
            ),
        ]);
    }

    #[test]
    fn len() {
        table(&[
            ("len(result) == 2", list(&[1.0, 2.0]), Yes),
            ("len(result) == 0", list(&[]), Yes),
            ("len(result) > 0", list(&[]), No),
            // Go counts bytes.
            ("len(result) == 6", s("héllo"), Yes),
            ("len(result) == 1", js(json!({"a": 1})), Yes),
            ("len(result.a) == 3", js(json!({"a": "abc"})), Yes),
            (
                "len(result) > 0",
                f(1.0),
                Fails("invalid argument for len (type float64)"),
            ),
            (
                "len(result.a) > 0",
                js(json!({"a": 1})),
                Fails("invalid argument for len (type float64)"),
            ),
            (
                "len(result, 1) > 0",
                list(&[]),
                Fails("invalid number of arguments (expected 1, got 2)"),
            ),
            ("result | len() == 1", list(&[1.0]), Yes),
        ]);
    }

    #[test]
    fn predicates() {
        table(&[
            ("all(result, {# > 0.9})", list(&[0.95, 0.99]), Yes),
            ("all(result, {# > 0.9})", list(&[0.95, 0.5]), No),
            ("all(result, {# > 0.9})", list(&[]), Yes),
            ("all(result, # > 0.9)", list(&[0.95]), Yes),
            ("any(result, {# > 0.9})", list(&[0.1, 0.95]), Yes),
            ("any(result, {# > 0.9})", list(&[0.1]), No),
            ("any(result, {# > 0.9})", list(&[]), No),
            ("none(result, {# > 0.9})", list(&[0.1]), Yes),
            ("one(result, {# > 0.9})", list(&[0.95, 0.1]), Yes),
            ("one(result, {# > 0.9})", list(&[0.95, 0.99]), No),
            (
                "len(filter(result, {# > 0.5})) == 1",
                list(&[0.4, 0.6]),
                Yes,
            ),
            ("map(result, {# * 2}) == [2, 4]", list(&[1.0, 2.0]), Yes),
            ("map(result, {#index}) == [0, 1]", list(&[1.0, 2.0]), Yes),
            ("count(result, {# > 1}) == 1", list(&[1.0, 2.0]), Yes),
            ("count([true, false, true]) == 2", NIL, Yes),
            ("sum(result) == 3", list(&[1.0, 2.0]), Yes),
            ("sum(result, {# * 2}) == 6", list(&[1.0, 2.0]), Yes),
            ("find(result, {# > 1}) == 2", list(&[1.0, 2.0, 3.0]), Yes),
            (
                "findIndex(result, {# > 1}) == 1",
                list(&[1.0, 2.0, 3.0]),
                Yes,
            ),
            (
                "findLast(result, {# > 1}) == 3",
                list(&[1.0, 2.0, 3.0]),
                Yes,
            ),
            (
                "findLastIndex(result, {# > 5}) == -1",
                list(&[1.0, 2.0, 3.0]),
                Yes,
            ),
            ("find(result, {# > 5}) == nil", list(&[1.0]), Yes),
            (
                "reduce(result, #acc + #, 0) == 6",
                list(&[1.0, 2.0, 3.0]),
                Yes,
            ),
            ("reduce(result, #acc + #) == 6", list(&[1.0, 2.0, 3.0]), Yes),
            ("sortBy(result, #)[0] == 1", list(&[3.0, 1.0, 2.0]), Yes),
            (
                "sortBy(result, #, 'desc')[0] == 3",
                list(&[3.0, 1.0, 2.0]),
                Yes,
            ),
            (
                "sortBy(result, -#) == [3, 2, 1]",
                list(&[1.0, 3.0, 2.0]),
                Yes,
            ),
            (
                "groupBy(result.items, .kind).a[0].v == 1",
                js(json!({"items": [{"kind": "a", "v": 1}, {"kind": "b", "v": 2}]})),
                Yes,
            ),
            (
                "all(result.items, .v > 0)",
                js(json!({"items": [{"v": 1}, {"v": 2}]})),
                Yes,
            ),
            (
                "all(result, {all(result, {# > 0})})",
                list(&[1.0, 2.0]),
                Yes,
            ),
            ("result | all(# > 0.5)", list(&[0.6]), Yes),
            ("result | map(# + 1) | sum() == 5", list(&[1.0, 2.0]), Yes),
            // upstream TestEvaluateArray
            (
                "all(result.service_apdex.values.values, {# > 1})",
                js(json!({"service_apdex": {"label": null, "values": {"values": [2, 2]}}})),
                Yes,
            ),
            (
                "all(result, {# > '0'})",
                list(&[1.0]),
                Fails("invalid operation: > (mismatched types float64 and string)"),
            ),
            (
                "all(result, {#})",
                list(&[1.0]),
                Fails("predicate should return boolean (got float64)"),
            ),
            (
                "all(result, {# > 0})",
                f(1.0),
                Fails("builtin all takes only array (got float64)"),
            ),
            (
                "all(result.a, {#})",
                js(json!({"a": [1]})),
                Fails("interface conversion: interface {} is float64, not bool"),
            ),
            (
                "map(result, {#acc})",
                list(&[1.0]),
                Fails("unknown pointer #acc"),
            ),
            (
                "all(result)",
                list(&[1.0]),
                Fails("expected at least 2 arguments"),
            ),
        ]);
    }

    #[test]
    fn comparisons() {
        table(&[
            ("result < 1", f(0.5), Yes),
            ("result <= 0.5", f(0.5), Yes),
            ("result > 0.5", f(0.5), No),
            ("result >= 0.5", f(0.5), Yes),
            ("result == 0.5", f(0.5), Yes),
            ("result != 0.5", f(0.5), No),
            ("result == 1", f(1.0), Yes),
            ("1 < 2", NIL, Yes),
            ("2 <= 2", NIL, Yes),
            ("3 > 4", NIL, No),
            ("3 >= 4", NIL, No),
            ("1 == 1", NIL, Yes),
            ("1 != 1", NIL, No),
            ("result == 3", MetricValue::Int(3), Yes),
            ("result == 3.0", MetricValue::Int(3), Yes),
            ("result < 4", MetricValue::Int(3), Yes),
            ("asInt(result) < 3", s("2"), Yes),
            ("result == 'ok'", s("ok"), Yes),
            ("result != 'ok'", s("ok"), No),
            ("result < 'b'", s("a"), Yes),
            ("result >= 'b'", s("a"), No),
            ("result <= 'a'", s("a"), Yes),
            ("result > 'A'", s("a"), Yes),
            ("0 < result < 1", f(0.5), Yes),
            ("0 < result < 1", f(1.5), No),
            ("result == nil", NIL, Yes),
            ("result != nil", f(1.0), Yes),
            (
                "result > 1",
                s("a"),
                Fails("invalid operation: > (mismatched types string and int)"),
            ),
            (
                "result.a < 1",
                js(json!({"a": "x"})),
                Fails("invalid operation: string < int"),
            ),
            ("result.a == 'x'", js(json!({"a": 1})), No),
        ]);
    }

    #[test]
    fn logic() {
        table(&[
            ("result > 0.5 && result < 1", f(0.7), Yes),
            ("result > 0.5 and result < 0.6", f(0.7), No),
            ("result < 0.5 || result > 0.9", f(0.95), Yes),
            ("result < 0.5 or result > 0.9", f(0.7), No),
            ("!(result > 0.5)", f(0.7), No),
            ("not (result > 0.5)", f(0.3), Yes),
            ("!result", MetricValue::Bool(false), Yes),
            ("not result", TRUE, No),
            ("not false", NIL, Yes),
            ("!!true", NIL, Yes),
            // short-circuit: the right side is never evaluated
            ("false && result[5] > 0", list(&[]), No),
            ("true || result[5] > 0", list(&[]), Yes),
            (
                "!result",
                f(1.0),
                Fails("invalid operation: ! (mismatched type float64)"),
            ),
            (
                "result > 0 && 1",
                f(1.0),
                Fails("invalid operation: && (mismatched types bool and int)"),
            ),
            (
                "result.a && true",
                js(json!({"a": 1})),
                Fails("interface conversion: interface {} is float64, not bool"),
            ),
            ("result > 0.5 ? true : false", f(0.7), Yes),
            ("result > 0.5 ? false : true", f(0.7), No),
            ("if result > 0.5 { true } else { false }", f(0.7), Yes),
            (
                "if result > 0.9 { true } else if result > 0.5 { true } else { false }",
                f(0.7),
                Yes,
            ),
            ("(result ?? 2) > 1", NIL, Yes),
            ("(result.missing ?? 2) > 1", js(json!({})), Yes),
            ("let x = result * 2; x > 1", f(0.7), Yes),
            ("let x = 1; let y = x + 1; y == 2", NIL, Yes),
        ]);
    }

    #[test]
    fn arithmetic() {
        table(&[
            ("result + 1 == 1.5", f(0.5), Yes),
            ("result - 0.25 == 0.25", f(0.5), Yes),
            ("result * 2 == 1", f(0.5), Yes),
            ("result / 2 == 0.25", f(0.5), Yes),
            ("7 % 3 == 1", NIL, Yes),
            ("-7 % 3 == -1", NIL, Yes),
            ("2 ** 10 == 1024", NIL, Yes),
            ("2 ^ 3 == 8", NIL, Yes),
            ("2 ** 3 ** 2 == 512", NIL, Yes),
            ("-2 ** 2 == -4", NIL, Yes),
            ("10 / 4 == 2.5", NIL, Yes),
            ("1 / 0 > 1e308", NIL, Yes),
            ("1 + 2 * 3 == 7", NIL, Yes),
            ("(1 + 2) * 3 == 9", NIL, Yes),
            ("-result == -0.5", f(0.5), Yes),
            ("+result == 0.5", f(0.5), Yes),
            ("'a' + 'b' == 'ab'", NIL, Yes),
            ("9223372036854775807 + 1 < 0", NIL, Yes),
            ("0x10 + 0b11 + 0o7 + 1_000 == 1026", NIL, Yes),
            ("1e3 == 1000 && .5 == 0.5", NIL, Yes),
            (
                "5 % 0 == 0",
                NIL,
                Fails("runtime error: integer divide by zero"),
            ),
            (
                "result % 2 == 0",
                f(4.0),
                Fails("invalid operation: % (mismatched types float64 and int)"),
            ),
            (
                "result.a % 2 == 0",
                js(json!({"a": 4})),
                Fails("invalid operation: float64 % int"),
            ),
            (
                "result + 'a'",
                f(1.0),
                Fails("invalid operation: + (mismatched types float64 and string)"),
            ),
        ]);
    }

    #[test]
    fn argo_functions() {
        table(&[
            ("isNaN(result)", f(f64::NAN), Yes),
            ("isNaN(result)", f(0.5), No),
            ("isNaN(result[0])", list(&[f64::NAN]), Yes),
            ("isNaN(1)", NIL, No),
            ("isNaN(1 + 2)", NIL, No),
            ("isInf(result)", f(f64::INFINITY), Yes),
            ("isInf(result)", f(f64::NEG_INFINITY), Yes),
            ("isInf(result)", f(1.0), No),
            (
                "isNaN(result)",
                s("x"),
                Fails("cannot use string as argument (type float64) to call isNaN "),
            ),
            (
                "isNaN(result)",
                NIL,
                Fails("cannot use nil as argument (type float64) to call isNaN"),
            ),
            (
                "isNaN(result.a)",
                js(json!({"a": "x"})),
                Fails("interface conversion: interface {} is string, not float64"),
            ),
            (
                "isNaN()",
                f(1.0),
                Fails("not enough arguments to call isNaN"),
            ),
            (
                "isInf(1, 2)",
                f(1.0),
                Fails("too many arguments to call isInf"),
            ),
            // isNil and default ignore their first argument and test the result.
            ("isNil(result)", NIL, Yes),
            ("isNil(result)", f(0.5), No),
            ("isNil(42)", NIL, Yes),
            ("isNil(nil)", f(1.0), No),
            ("isNil(result)", list(&[]), No),
            ("default(result, 0) >= 0.95", NIL, No),
            ("default(result, 1) == 1", NIL, Yes),
            ("default(result, 0) >= 0.95", f(0.99), Yes),
            ("default(nil, 5) == 5", NIL, Yes),
            ("default(result.missing, 5) == 5", js(json!({"a": 1})), No),
            // upstream TestEvaluateAsInt, TestEvaluateAsIntPanic, TestAsInt
            ("asInt(result) == 1", s("1"), Yes),
            ("asInt(result) == 1", MetricValue::Int(1), Yes),
            ("asInt(result) == 1", f(1.123), Yes),
            ("asInt(result) == -2", f(-2.9), Yes),
            (
                "asInt(result) == 1.1",
                s("1.1"),
                Fails("strconv.ParseInt: parsing \"1.1\": invalid syntax"),
            ),
            (
                "asInt(result) == 1",
                s("notint"),
                Fails("strconv.ParseInt: parsing \"notint\": invalid syntax"),
            ),
            (
                "asInt(result) > 0",
                s("99999999999999999999"),
                Fails("strconv.ParseInt: parsing \"99999999999999999999\": value out of range"),
            ),
            (
                "asInt(result) == 1",
                TRUE,
                Fails("asInt() not supported on bool true"),
            ),
            (
                "asInt(result) == 1",
                NIL,
                Fails("asInt() not supported on <nil> <nil>"),
            ),
            (
                "asInt(result) == 1",
                js(json!([1])),
                Fails("asInt() not supported on []interface {} [1]"),
            ),
            // upstream TestEvaluateAsFloat, TestEvaluateAsFloatError, TestAsFloat
            ("asFloat(result) == 1.1", s("1.1"), Yes),
            ("asFloat(result) >= 1.1", s("1.1"), Yes),
            ("asFloat(result) <= 1.1", s("1.1"), Yes),
            ("asFloat(result) == 1.1", f(1.1), Yes),
            ("asFloat(result) == 1", MetricValue::Int(1), Yes),
            ("asFloat(result) >= 1", MetricValue::Int(1), Yes),
            ("asFloat(result) == 1", s("1"), Yes),
            ("asFloat(result) == 0.5", s("0.5"), Yes),
            ("isInf(asFloat(result))", s("+Inf"), Yes),
            ("isNaN(asFloat(result))", s("NaN"), Yes),
            (
                "asFloat(result) == 1.1",
                s("NotANum"),
                Fails("strconv.ParseFloat: parsing \"NotANum\": invalid syntax"),
            ),
            (
                "asFloat(result) == \"1.1\"",
                s("1.1"),
                Fails("invalid operation: == (mismatched types float64 and string)"),
            ),
            (
                "asFloat(result) > 0",
                s("1e400"),
                Fails("strconv.ParseFloat: parsing \"1e400\": value out of range"),
            ),
            (
                "asFloat(result) == 1",
                TRUE,
                Fails("asFloat() not supported on bool true"),
            ),
        ]);
    }

    #[test]
    fn web_provider_json() {
        let body = js(json!({
            "status": "ok",
            "count": 3,
            "data": {"value": 0.97, "tags": ["a", "b"]},
        }));
        table(&[
            ("result.status == 'ok'", body.clone(), Yes),
            ("result[\"status\"] == 'ok'", body.clone(), Yes),
            ("result.data.value > 0.95", body.clone(), Yes),
            ("result['data']['value'] > 0.95", body.clone(), Yes),
            ("result.data.tags[1] == 'b'", body.clone(), Yes),
            ("result.data.tags == ['a', 'b']", body.clone(), Yes),
            ("len(result.data.tags) == 2", body.clone(), Yes),
            ("result.count == 3", body.clone(), Yes),
            ("result.count + 1 == 4", body.clone(), Yes),
            ("result.missing == nil", body.clone(), Yes),
            ("result.missing?.deeper == nil", body.clone(), Yes),
            ("result?.data?.value > 0.9", body.clone(), Yes),
            ("result.data?.missing?.x == nil", body.clone(), Yes),
            (
                "result.missing.deeper == nil",
                body.clone(),
                Fails("cannot fetch deeper from <nil>"),
            ),
            ("'status' in result", body.clone(), Yes),
            ("'nope' in result", body.clone(), No),
            ("'nope' not in result", body.clone(), Yes),
            ("result.status matches '^o'", body.clone(), Yes),
            ("result.status contains 'k'", body.clone(), Yes),
            ("result.status startsWith 'o'", body.clone(), Yes),
            ("result.status endsWith 'x'", body.clone(), No),
            ("result.status not contains 'x'", body.clone(), Yes),
            ("result.status not matches 'x'", body.clone(), Yes),
            ("$env.result.count == 3", body.clone(), Yes),
            ("keys(result.data) == ['tags', 'value']", body.clone(), Yes),
            ("result.count == 'x'", body.clone(), No),
            (
                "result[1] == nil",
                body.clone(),
                Fails("cannot use int to get an element from map[string]interface {}"),
            ),
            // A body that is not JSON arrives as a string.
            ("result == 'OK body'", s("OK body"), Yes),
            ("result contains 'OK'", s("OK body"), Yes),
            (
                "result matches '('",
                s("a"),
                Mentions("error parsing regexp"),
            ),
        ]);
    }

    #[test]
    fn delegated_builtins() {
        table(&[
            ("abs(-2) == 2", NIL, Yes),
            ("max(1, 3, 2) == 3 && min(1, 3, 2) == 1", NIL, Yes),
            (
                "upper('a') == 'A' && lower('A') == 'a' && trim(' a ') == 'a'",
                NIL,
                Yes,
            ),
            ("string(1) == '1'", NIL, Yes),
            ("int('2') == 2 && float('2.5') == 2.5", NIL, Yes),
            (
                "round(1.5) == 2 && floor(1.5) == 1 && ceil(1.5) == 2",
                NIL,
                Yes,
            ),
            ("toJSON([1]) == '[1]'", NIL, Yes),
            ("fromJSON('{\"a\":1}').a == 1", NIL, Yes),
            ("join(['a', 'b'], ',') == 'a,b'", NIL, Yes),
            ("split('a,b', ',')[1] == 'b'", NIL, Yes),
            ("replace('aXa', 'X', 'b') == 'aba'", NIL, Yes),
            ("repeat('ab', 2) == 'abab'", NIL, Yes),
            (
                "first(result) == 1 && last(result) == 2",
                list(&[1.0, 2.0]),
                Yes,
            ),
            ("mean(result) == 1.5", list(&[1.0, 2.0]), Yes),
            ("1..3 == [1, 2, 3]", NIL, Yes),
            ("result in [0.5, 0.7]", f(0.7), Yes),
            ("now() > date('2020-01-01')", NIL, Yes),
            ("duration('1h') > duration('30m')", NIL, Yes),
            ("now() - duration('1h') < now()", NIL, Yes),
            ("date('2023-08-14').Year() == 2023", NIL, Yes),
            ("{'a': 1}.a == 1", NIL, Yes),
            ("{a: 1, 'b': 2, 3: 3}['3'] == 3", NIL, Yes),
            ("`raw \\n` == 'raw \\\\n'", NIL, Yes),
            ("'\\u00e9' == 'é' && \"\\x41\" == 'A'", NIL, Yes),
            ("/* comment */ true // trailing", NIL, Yes),
        ]);
    }

    #[test]
    fn nan() {
        table(&[
            ("result >= 0.95", f(f64::NAN), No),
            ("result < 0.95", f(f64::NAN), No),
            ("result == result", f(f64::NAN), No),
            ("result != result", f(f64::NAN), Yes),
            ("result[0] >= 0.95", list(&[f64::NAN]), No),
            ("all(result, {# >= 0.95})", list(&[0.99, f64::NAN]), No),
        ]);
    }

    #[test]
    fn errors() {
        table(&[
            // upstream TestErrorWithNonBoolReturn, TestErrorWithInvalidReference
            ("1", TRUE, Fails("expected bool, but got int")),
            (
                "invalidVariable",
                TRUE,
                Fails("unknown name invalidVariable"),
            ),
            ("a == true", TRUE, Fails("unknown name a")),
            ("foo(1)", TRUE, Fails("unknown name foo")),
            // upstream TestEvaluateInvalidStruct
            (
                "result.Name() == 'hi'",
                TRUE,
                Fails("type bool has no method Name"),
            ),
            ("result.x", TRUE, Fails("type bool has no field x")),
            ("result?.a == nil", NIL, Fails("type nil has no field a")),
            ("result", f(0.5), Fails("expected bool, but got float64")),
            (
                "result",
                list(&[0.99]),
                Fails("expected bool, but got []float64"),
            ),
            (
                "result",
                js(json!([1, "a"])),
                Fails("expected bool, but got []interface {}"),
            ),
            (
                "result",
                js(json!({"a": 1})),
                Fails("expected bool, but got map[string]interface {}"),
            ),
            ("result", s("x"), Fails("expected bool, but got string")),
            ("result", NIL, Fails("expected bool, but got <nil>")),
            ("nil", f(1.0), Fails("expected bool, but got <nil>")),
            (
                "asInt(result)",
                f(1.0),
                Fails("expected bool, but got int64"),
            ),
            (
                "asFloat(result)",
                f(1.0),
                Fails("expected bool, but got float64"),
            ),
            (
                "result.a",
                js(json!({"a": "x"})),
                Fails("expected bool, but got string"),
            ),
            (
                "result + 1",
                f(1.0),
                Fails("expected bool, but got float64"),
            ),
            ("[1]", NIL, Fails("expected bool, but got []interface {}")),
            (
                "{'a': 1}",
                NIL,
                Fails("expected bool, but got map[string]interface {}"),
            ),
            (
                "default(result, 0)",
                NIL,
                Fails("expected bool, but got int"),
            ),
            ("now()", NIL, Fails("expected bool, but got time.Time")),
            // syntax
            ("", f(1.0), Fails("unexpected token EOF")),
            ("result >", f(1.0), Fails("unexpected token EOF")),
            ("(result > 1", f(1.0), Fails("unexpected token EOF")),
            (
                "result > 1)",
                f(1.0),
                Fails("unexpected token Bracket(\")\")"),
            ),
            (
                "result @ 1",
                f(1.0),
                Fails("unrecognized character: U+0040 '@'"),
            ),
            ("'abc", f(1.0), Fails("literal not terminated")),
            ("'\\q'", f(1.0), Fails("invalid char escape")),
            ("result.", f(1.0), Fails("unexpected end of expression")),
            ("# > 1", f(1.0), Fails("unexpected token Operator(\"#\")")),
            ("1a > 0", f(1.0), Fails("bad number syntax: \"1a\"")),
            (
                "0x > 0",
                f(1.0),
                Fails("invalid hex literal: strconv.ParseInt: parsing \"0x\": invalid syntax"),
            ),
            (
                "1e999 > 0",
                f(1.0),
                Fails(
                    "invalid float literal: strconv.ParseFloat: parsing \"1e999\": value out of range",
                ),
            ),
            ("/* open", f(1.0), Fails("unclosed comment")),
            (
                "result not 1",
                f(1.0),
                Fails("unexpected token Number(\"1\")"),
            ),
            (
                "1 ?? 2 + 3 > 0",
                f(1.0),
                Fails(
                    "Operator (+) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses.",
                ),
            ),
            (
                "let result = 1; true",
                f(1.0),
                Fails("cannot redeclare result"),
            ),
            (
                "let len = 1; true",
                f(1.0),
                Fails("cannot redeclare builtin len"),
            ),
            (
                "let x = 1; let x = 2; true",
                f(1.0),
                Fails("cannot redeclare variable x"),
            ),
            (
                "result ? true : false",
                f(1.0),
                Fails("non-bool expression (type float64) used as condition"),
            ),
            ("result()", f(1.0), Fails("float64 is not callable")),
        ]);
    }

    #[test]
    fn decision_table() {
        use Outcome::*;
        // Argo's EvaluateResult table; includes upstream TestEvaluateResult* vectors.
        let rows: &[(Option<&str>, Option<&str>, Outcome)] = &[
            (None, None, Successful),
            (Some(""), Some(""), Successful),
            (Some("true"), None, Successful),
            (Some("false"), None, Failed),
            (Some("false"), Some(""), Failed),
            (None, Some("true"), Failed),
            (None, Some("false"), Successful),
            (Some(""), Some("false"), Successful),
            (Some("true"), Some("false"), Successful),
            (Some("true"), Some("true"), Failed),
            (Some("false"), Some("true"), Failed),
            (Some("false"), Some("false"), Inconclusive),
        ];
        for (success, failure, want) in rows {
            assert_eq!(
                evaluate_result(&TRUE, *success, *failure),
                Ok(*want),
                "success={success:?} failure={failure:?}"
            );
        }
        // Neither set: Successful whatever the value, even with no data.
        assert_eq!(evaluate_result(&NIL, None, None), Ok(Successful));
        assert_eq!(evaluate_result(&list(&[]), None, None), Ok(Successful));

        let (ok, bad) = (Some("result >= 0.95"), Some("result < 0.9"));
        assert_eq!(evaluate_result(&f(0.99), ok, bad), Ok(Successful));
        assert_eq!(evaluate_result(&f(0.92), ok, bad), Ok(Inconclusive));
        assert_eq!(evaluate_result(&f(0.5), ok, bad), Ok(Failed));
        assert_eq!(evaluate_result(&f(0.5), ok, None), Ok(Failed));
        assert_eq!(evaluate_result(&f(0.99), None, bad), Ok(Successful));
        // NaN: ordinary comparisons are false.
        let nan = f(f64::NAN);
        assert_eq!(
            evaluate_result(&nan, ok, Some("result < 0.95")),
            Ok(Inconclusive)
        );
        assert_eq!(evaluate_result(&nan, ok, None), Ok(Failed));
        assert_eq!(evaluate_result(&nan, None, bad), Ok(Successful));
        // Datadog returns nil for no data; default() handles it.
        assert_eq!(
            evaluate_result(&NIL, Some("default(result, 0) >= 0.95"), None),
            Ok(Failed)
        );
        let vector = Some("result[0] >= 0.95");
        assert_eq!(
            evaluate_result(&list(&[0.99]), vector, None),
            Ok(Successful)
        );
    }

    #[test]
    fn decision_table_errors() {
        // upstream TestEvaluateResultWithErrorOnSuccessCondition / ...OnFailureCondition
        let err = evaluate_result(&TRUE, Some("a == true"), Some("true"));
        assert_eq!(
            err.as_ref().map_err(ToString::to_string),
            Err("could not evaluate successCondition \"a == true\": unknown name a".to_owned())
        );
        assert_eq!(err.map_err(|e| e.category()), Err("compile"));
        let err = evaluate_result(&TRUE, Some("true"), Some("invalidVar == true"));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("could not evaluate failureCondition \"invalidVar == true\": unknown name invalidVar"
                .to_owned())
        );
        // The success condition's error wins; the failure condition is not evaluated.
        let err = evaluate_result(&f(1.0), Some("result["), Some("oops"));
        assert!(matches!(
            err,
            Err(EvalError::Condition {
                condition: ConditionKind::Success,
                ..
            })
        ));

        // upstream TestEvaluateResultErrorMessageWithNilResult / WithEmptySlice
        let no_data = "could not evaluate successCondition \"result[0] >= 0.95\": metric result is nil or empty: no data returned from the metric provider";
        for empty in [NIL, list(&[])] {
            let err = evaluate_result(&empty, Some("result[0] >= 0.95"), None);
            assert_eq!(
                err,
                Err(EvalError::NoData {
                    condition: ConditionKind::Success,
                    expression: "result[0] >= 0.95".to_owned()
                })
            );
            assert_eq!(err.map_err(|e| e.to_string()), Err(no_data.to_owned()));
        }
        let err = evaluate_result(&NIL, None, Some("result > 1"));
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("could not evaluate failureCondition \"result > 1\": metric result is nil or empty: no data returned from the metric provider".to_owned())
        );
        assert_eq!(
            evaluate_result(&NIL, Some("result"), None).map_err(|e| e.category()),
            Err("no_data")
        );
        // Sluice's own limits are not reported as missing data.
        let deep = format!("{}1{}", "(".repeat(300), ")".repeat(300));
        let err = evaluate_result(&list(&[]), Some(&deep), None);
        assert_eq!(err.map_err(|e| e.category()), Err("too_complex"));
    }

    #[test]
    fn eval_time_matches_upstream() {
        // upstream TestEvalTimeWithSuccessExpr / WithNotTimeResult / WithInvalidExpression
        let want: jiff::Timestamp = "2023-08-13T23:00:00Z".parse().unwrap();
        assert_eq!(
            eval_time(
                r#"date("2023-08-14 00:00:00", "2006-01-02 15:04:05", "UTC") - duration("1h")"#
            ),
            Ok(want)
        );
        assert_eq!(
            eval_time("hello"),
            Err(EvalError::Compile("unknown name hello".to_owned()))
        );
        assert!(eval_time("now() -- ?").is_err());
        assert_eq!(eval_time("1"), Err(EvalError::NotTime("int".to_owned())));
        let got = eval_time(r#"now() - duration("1h")"#).unwrap();
        let expected = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        assert!(got.duration_until(expected).abs() < jiff::SignedDuration::from_secs(60));
    }

    #[test]
    fn eval_value_for_range_queries() {
        let start = eval_value(r#"now() - duration("1h")"#, &[]).unwrap();
        let MetricValue::String(text) = &start else {
            panic!("want an RFC 3339 string, got {start:?}");
        };
        let ts: jiff::Timestamp = text.parse().unwrap();
        let expected = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
        assert!(ts.duration_until(expected).abs() < jiff::SignedDuration::from_secs(60));
        assert_eq!(
            eval_value(r#"date("2023-08-14T00:00:00Z")"#, &[]),
            Ok(s("2023-08-14T00:00:00Z"))
        );
        assert_eq!(eval_value(r#"duration("90m")"#, &[]), Ok(s("1h30m0s")));
        assert_eq!(eval_value("x * 2", &[("x", f(2.0))]), Ok(f(4.0)));
        assert_eq!(
            eval_value("[1, 'a']", &[]),
            Ok(MetricValue::List(vec![MetricValue::Int(1), s("a")]))
        );
        assert_eq!(
            eval_value("{'k': result}", &[("result", s("v"))]),
            Ok(MetricValue::Map(BTreeMap::from([("k".to_owned(), s("v"))])))
        );
        assert_eq!(eval_value("isNil(1)", &[]), Ok(MetricValue::Bool(true)));
        assert_eq!(
            eval_value("y", &[("x", f(1.0))]),
            Err(EvalError::Compile("unknown name y".to_owned()))
        );
    }

    #[test]
    fn go_string_rendering() {
        let cases: &[(MetricValue, &str)] = &[
            (list(&[0.99]), "[0.99]"),
            (f(0.5), "0.5"),
            (list(&[]), "[]"),
            (js(json!({"a": 1})), "map[a:1]"),
            (
                js(json!({"b": [1, "x"], "a": null})),
                "map[a:<nil> b:[1 x]]",
            ),
            (list(&[1.0, 2.5]), "[1 2.5]"),
            (f(1e6), "1e+06"),
            (f(123456.0), "123456"),
            (f(1234567.0), "1.234567e+06"),
            (f(1e-5), "1e-05"),
            (f(0.0001), "0.0001"),
            (f(1e21), "1e+21"),
            (f(100.0), "100"),
            (f(-2.5), "-2.5"),
            (f(-0.0), "-0"),
            (f(f64::NAN), "NaN"),
            (f(f64::INFINITY), "+Inf"),
            (f(f64::NEG_INFINITY), "-Inf"),
            (MetricValue::Int(-3), "-3"),
            (TRUE, "true"),
            (NIL, "<nil>"),
            (s("x y"), "x y"),
        ];
        for (value, want) in cases {
            assert_eq!(value.to_go_string(), *want, "{value:?}");
        }
        let durations: &[(i64, &str)] = &[
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (1_500_000, "1.5ms"),
            (1_500_000_000, "1.5s"),
            (61_000_000_000, "1m1s"),
            (5_400_000_000_000, "1h30m0s"),
            (-1_000_000_000, "-1s"),
        ];
        for (nanos, want) in durations {
            assert_eq!(go_duration(*nanos), *want);
        }
    }

    #[test]
    fn json_numbers_are_float64_like_go() {
        assert_eq!(
            js(json!({"n": 3, "l": [1, true, null, "s"]})),
            MetricValue::Map(BTreeMap::from([
                ("n".to_owned(), f(3.0)),
                (
                    "l".to_owned(),
                    MetricValue::List(vec![f(1.0), TRUE, NIL, s("s")])
                ),
            ]))
        );
        assert!(NIL.is_nil_or_empty());
        assert!(list(&[]).is_nil_or_empty());
        assert!(!js(json!({})).is_nil_or_empty());
    }

    fn category(expr: &str) -> &'static str {
        match eval_condition(expr, &list(&[1.0, 2.0])) {
            Ok(_) => "ok",
            Err(e) => e.category(),
        }
    }

    #[test]
    fn budgets_stop_runaway_expressions() {
        let runaway = [
            "len(map(1..1000000, {#})) > 0",
            "all(1..1000, {all(1..1000, {all(1..1000, {true})})})",
            "len(repeat('a', 1000000000)) > 0",
            "len(replace(repeat('a', 10000), '', repeat('b', 10000))) > 0",
            "len(join(map(1..50000, {'x'}), repeat('y', 100000))) > 0",
            "let a = [1,2,3,4,5,6,7,8]; let b = concat(a,a,a,a,a,a,a,a); let c = concat(b,b,b,b,b,b,b,b); \
             let d = concat(c,c,c,c,c,c,c,c); let e = concat(d,d,d,d,d,d,d,d); let g = concat(e,e,e,e,e,e,e,e); \
             let h = concat(g,g,g,g,g,g,g,g); len(h) > 0",
            "let a = 'xxxxxxxxxxxxxxxx'; let b = a+a+a+a+a+a+a+a; let c = b+b+b+b+b+b+b+b; let d = c+c+c+c+c+c+c+c; \
             let e = d+d+d+d+d+d+d+d; let g = e+e+e+e+e+e+e+e; let h = g+g+g+g+g+g+g+g; let i = h+h+h+h+h+h+h+h; len(i) > 0",
            "len(toJSON(map(1..100000, {[#, #, #, #, #, #, #, #, #, #]}))) > 0",
            "sum(map(1..2000, {len(uniq(1..2000))})) > 0",
        ];
        for expr in runaway {
            let started = Instant::now();
            assert_eq!(category(expr), "budget", "{expr}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{expr} took {:?}",
                started.elapsed()
            );
        }
        assert_eq!(
            eval_condition("len(map(1..1000000, {#})) > 0", &NIL),
            Err(EvalError::Budget("memory budget exceeded".to_owned()))
        );
        let tight = Limits {
            max_steps: 50,
            ..Limits::default()
        };
        assert_eq!(
            eval_condition_with("all(1..100, {true})", &NIL, &tight),
            Err(EvalError::Budget(
                "expression exceeded its evaluation budget of 50 steps".to_owned()
            ))
        );
        let no_time = Limits {
            max_time: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(
            eval_condition_with("all(1..10000, {true})", &NIL, &no_time),
            Err(EvalError::Budget(
                "expression exceeded its time budget of 0 ms".to_owned()
            ))
        );
        // Values cannot nest without bound (every walk over them recurses).
        assert_eq!(
            eval_condition("len(reduce(1..1000, {[#acc]}, [])) > 0", &NIL),
            Err(EvalError::Runtime(
                "value nests deeper than 128 levels".to_owned()
            ))
        );
        // Realistic sizes stay well inside the budget: a 10k-sample matrix.
        let matrix = list(&vec![0.99; 10_000]);
        assert_eq!(
            eval_condition("all(result, {# >= 0.95})", &matrix),
            Ok(true)
        );
        assert_eq!(
            eval_condition("len(filter(result, {# < 0.95})) == 0", &matrix),
            Ok(true)
        );
    }

    #[test]
    fn input_guards_reject_deep_or_long_expressions() {
        let repeat = |unit: &str, n: usize, tail: &str| format!("{}{tail}", unit.repeat(n));
        let deep = [
            format!("{}1{}", "(".repeat(2000), ")".repeat(2000)),
            repeat("!", 4000, "true"),
            repeat("-", 4000, "1 > 0"),
            repeat("1+", 2000, "1 > 0"),
            repeat("result.a", 400, " == nil"),
            format!("{}{}", "[".repeat(2000), "]".repeat(2000)),
            repeat("all(result, {", 300, "true"),
            repeat("1 ? ", 1000, "1"),
            repeat("let x = 1; ", 300, "true"),
            repeat("if true { ", 300, "true"),
            repeat("1 < ", 1000, "2"),
        ];
        for expr in &deep {
            let got = eval_condition(expr, &list(&[1.0]));
            assert!(
                matches!(&got, Err(EvalError::TooComplex(m)) if m.contains("nests deeper")),
                "{}…: {got:?}",
                expr.get(..40).unwrap_or(expr)
            );
        }
        let long = "true && ".repeat(600) + "true";
        assert_eq!(
            eval_condition(&long, &NIL),
            Err(EvalError::TooComplex(
                "expression is 4804 bytes long; the limit is 4096".to_owned()
            ))
        );
        // Just under the limits evaluates, without exhausting the stack.
        let parens = format!("{}result{} > 0", "(".repeat(100), ")".repeat(100));
        assert_eq!(eval_condition(&parens, &f(1.0)), Ok(true));
        let sum = format!("{}1 == 101", "1 + ".repeat(100));
        assert_eq!(eval_condition(&sum, &NIL), Ok(true));
        let nots = format!("{}true", "!".repeat(100));
        assert_eq!(eval_condition(&nots, &NIL), Ok(true));
        let preds = format!("{}true{}", "all([1], {".repeat(30), "})".repeat(30));
        assert_eq!(eval_condition(&preds, &NIL), Ok(true));
        // A result nested deeper than any walk should recurse is refused.
        let mut nested = f(1.0);
        for _ in 0..200 {
            nested = MetricValue::List(vec![nested]);
        }
        assert_eq!(
            eval_condition("true", &nested),
            Err(EvalError::Runtime(
                "metric value nests deeper than 128 levels".to_owned()
            ))
        );
    }

    #[test]
    fn categories() {
        assert_eq!(category("result["), "compile");
        assert_eq!(category("result[9] > 0"), "runtime");
        assert_eq!(category("1"), "type");
        assert_eq!(category("len(repeat('a', 1000000000)) > 0"), "budget");
        assert_eq!(category(&"(".repeat(500)), "too_complex");
        assert_eq!(category("result[0] == 1"), "ok");
    }

    fn arb_metric() -> impl Strategy<Value = MetricValue> {
        let leaf = prop_oneof![
            Just(MetricValue::Nil),
            any::<bool>().prop_map(MetricValue::Bool),
            any::<f64>().prop_map(MetricValue::Float),
            prop_oneof![Just(0.5), Just(f64::NAN), Just(f64::INFINITY), Just(-1.0)]
                .prop_map(MetricValue::Float),
            any::<i64>().prop_map(MetricValue::Int),
            "(?s).{0,8}".prop_map(MetricValue::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(MetricValue::List),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..6).prop_map(MetricValue::Map),
            ]
        })
    }

    /// Fragments that tend to parse, so the interpreter and builtins get exercised too.
    fn arb_soup() -> impl Strategy<Value = String> {
        let token = prop::sample::select(vec![
            "result",
            "result[0]",
            "result.a",
            "result?.a",
            "#",
            "#index",
            "#acc",
            ".a",
            "1",
            "0",
            "-1",
            "0.5",
            "1e308",
            "9223372036854775807",
            "\"s\"",
            "'a'",
            "``",
            "nil",
            "true",
            "false",
            "-",
            "+",
            "*",
            "/",
            "%",
            "**",
            "^",
            "==",
            "!=",
            "<",
            "<=",
            ">",
            ">=",
            "&&",
            "||",
            "!",
            "not",
            "and",
            "or",
            "in",
            "not in",
            "matches",
            "contains",
            "startsWith",
            "??",
            "?",
            ":",
            "..",
            "|",
            ";",
            ",",
            "(",
            ")",
            "[",
            "]",
            "{",
            "}",
            "let x =",
            "x",
            "if",
            "else",
            "1..1000",
            "len(",
            "all(",
            "any(",
            "none(",
            "one(",
            "map(",
            "filter(",
            "count(",
            "sum(",
            "find(",
            "findLastIndex(",
            "reduce(",
            "sortBy(",
            "groupBy(",
            "asInt(",
            "asFloat(",
            "isNaN(",
            "isInf(",
            "isNil(",
            "default(",
            "repeat(",
            "replace(",
            "join(",
            "concat(",
            "flatten(",
            "uniq(",
            "sort(",
            "max(",
            "min(",
            "abs(",
            "int(",
            "float(",
            "string(",
            "toJSON(",
            "fromJSON(",
            "upper(",
            "split(",
            "keys(",
            "values(",
            "first(",
            "last(",
            "get(",
            "take(",
            "bitshl(",
            "now()",
            "duration(\"1h\")",
            "date(\"2023-01-01\")",
            ".Year()",
            ".Add(",
            "$env",
        ]);
        prop::collection::vec(token, 0..40).prop_map(|v| v.join(" "))
    }

    fn bounded(expr: &str, result: &MetricValue) -> Result<(), TestCaseError> {
        let started = Instant::now();
        let got = eval_condition(expr, result);
        prop_assert!(
            !matches!(&got, Err(EvalError::Runtime(m)) if m == INTERNAL_PANIC),
            "{expr:?} panicked on {result:?}"
        );
        let outcome = evaluate_result(result, Some(expr), Some("true"));
        prop_assert!(
            !matches!(&outcome, Err(EvalError::Condition { source, .. }) if **source == EvalError::Runtime(INTERNAL_PANIC.to_owned())),
            "{expr:?} panicked in evaluate_result on {result:?}"
        );
        let value = eval_value(expr, &[("result", result.clone())]);
        prop_assert!(
            !matches!(&value, Err(EvalError::Runtime(m)) if m == INTERNAL_PANIC),
            "{expr:?} panicked in eval_value on {result:?}"
        );
        let elapsed = started.elapsed();
        prop_assert!(
            elapsed < Duration::from_secs(3),
            "{expr:?} took {elapsed:?}"
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn never_panics_on_arbitrary_text(expr in "(?s).{0,200}", result in arb_metric()) {
            bounded(&expr, &result)?;
        }

        #[test]
        fn never_panics_on_token_soup(expr in arb_soup(), result in arb_metric()) {
            bounded(&expr, &result)?;
        }

        #[test]
        fn never_panics_on_deep_or_huge_input(
            unit in prop::sample::select(vec![
                "(", "[", "{a:", "!", "-", "not ", "1+", "result.a", "all(result, {", "f(",
                "1 ? ", "let x = 1; ", "if true { ", "[1,", "'", "\\", "#", "?.", "1 < ",
            ]),
            n in 0usize..6000,
            tail in prop::sample::select(vec!["", "1", "true", "result", ")", "]", "}"]),
            result in arb_metric(),
        ) {
            bounded(&format!("{}{tail}", unit.repeat(n)), &result)?;
        }
    }
}
