//! Checker: expr's static rules for the types a metric result can have, so a condition Argo
//! rejects at compile time (`asFloat(result) == "1.1"`) is rejected here before it runs.

use regex::Regex;

use super::parser::{Node, PResult, compile, is_builtin, predicate_spec};
use super::types::MetricValue;

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

/// A static type, as expr's checker sees it ("nature").
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Ty {
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
    pub(super) fn name(&self) -> String {
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

pub(super) struct Checker<'a> {
    env: &'a [(String, Ty)],
    lets: Vec<(String, Ty)>,
    /// Predicate scopes: the collection and the `#name` pointers available.
    scopes: Vec<(Ty, Vec<(&'static str, Ty)>)>,
}

impl<'a> Checker<'a> {
    pub(super) fn new(env: &'a [(String, Ty)]) -> Self {
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

    pub(super) fn visit(&mut self, node: &Node) -> PResult<Ty> {
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

pub(super) fn metric_ty(m: &MetricValue) -> Ty {
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
