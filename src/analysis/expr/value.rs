//! Runtime values: cheap-to-share containers with a bounded nesting depth, their Go type names
//! and `%v` rendering, their size in memory units, and conversion to and from `expr-lang`.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::rc::Rc;

use super::gofmt::{go_duration, go_float};
use super::types::{EvalError, MetricValue};

/// Deeper values would make every recursive walk (equality, conversion, drop) a stack risk.
pub(super) const MAX_VALUE_DEPTH: u16 = 128;

/// A runtime value. Containers are shared (`Rc`), so reading a variable never copies; the `u16`
/// is the container's nesting depth, kept so building a deeper one is an O(1) check.
#[derive(Clone, Debug)]
pub(super) enum Val {
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
    pub(super) fn depth(&self) -> u16 {
        match self {
            Val::Arr(_, d) | Val::Map(_, d) | Val::Ext(_, d) => *d,
            _ => 0,
        }
    }

    pub(super) fn is_nil(&self) -> bool {
        matches!(self, Val::Nil)
    }

    pub(super) fn is_ext(&self) -> bool {
        matches!(self, Val::Ext(..))
    }
}

/// Go's `%T`.
pub(super) fn go_type(v: &Val) -> &'static str {
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
pub(super) fn iface_error(v: &Val, want: &str) -> String {
    let got = if v.is_nil() { "nil" } else { go_type(v) };
    format!("interface conversion: interface {{}} is {got}, not {want}")
}

/// Go's `%v`.
pub(super) fn go_fmt(v: &Val) -> String {
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

pub(super) fn from_metric(m: &MetricValue, level: u16) -> Result<Val, EvalError> {
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

pub(super) fn to_metric(v: &Val) -> MetricValue {
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

pub(super) fn ext_timestamp(e: &expr::Value) -> Option<Result<jiff::Timestamp, EvalError>> {
    let dt = e.as_datetime()?;
    Some(
        jiff::Timestamp::new(dt.timestamp(), dt.timestamp_subsec_nanos() as i32)
            .map_err(|err| EvalError::Runtime(format!("time out of range: {err}"))),
    )
}

pub(super) fn to_expr(v: &Val) -> expr::Value {
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
pub(super) fn from_expr(v: expr::Value, level: u16) -> Result<(Val, u64), EvalError> {
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

pub(super) fn str_units(bytes: usize) -> u64 {
    1 + bytes as u64 / 16
}

/// Memory units a value occupies.
pub(super) fn size(v: &Val) -> u64 {
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
pub(super) fn ext_eval(src: &str, vals: &[&Val]) -> Result<(Val, u64), EvalError> {
    const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];
    let mut ctx = expr::Context::default();
    for (name, v) in NAMES.iter().zip(vals) {
        ctx.insert(*name, to_expr(v));
    }
    let out = expr::eval(src, &ctx).map_err(|e| EvalError::Runtime(e.to_string()))?;
    from_expr(out, 0)
}

/// Go converts an out-of-range float to int64 as amd64 does: the "integer indefinite" value.
pub(super) fn go_f64_to_i64(f: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
        i64::MIN
    } else {
        f.trunc() as i64
    }
}

#[derive(Clone, Copy)]
pub(super) enum Num {
    I(i64),
    F(f64),
}

impl Num {
    pub(super) fn f(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

pub(super) fn num(v: &Val) -> Option<Num> {
    match v {
        Val::Int(i) => Some(Num::I(*i)),
        Val::Float(f) => Some(Num::F(*f)),
        _ => None,
    }
}

/// A sort key with a total order, so a sort can never see an inconsistent comparison.
#[derive(PartialEq, PartialOrd)]
pub(super) enum SortKey {
    Num(TotalF64, u8, i64),
    Str(Rc<str>),
    Time(i64, u32),
    Dur(i64),
}

#[derive(PartialEq)]
pub(super) struct TotalF64(f64);

impl PartialOrd for TotalF64 {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.0.total_cmp(&other.0))
    }
}

pub(super) fn sort_key(v: &Val) -> Option<SortKey> {
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
