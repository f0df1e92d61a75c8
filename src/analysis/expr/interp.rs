//! Interpreter: walks a checked tree under a [`Budget`], with expr's runtime semantics and
//! messages; `expr-lang` runs the long tail of builtins and all time/duration arithmetic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::LazyLock;

use regex::Regex;

use super::budget::Budget;
use super::gofmt::{go_quote, parse_go_float, parse_go_int};
use super::parser::{Node, predicate_spec};
use super::types::{EvalError, Limits};
use super::value::{
    MAX_VALUE_DEPTH, Num, SortKey, Val, ext_eval, from_expr, go_f64_to_i64, go_fmt, go_type,
    iface_error, num, size, sort_key, str_units, to_expr,
};

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

struct Frame {
    item: Val,
    index: i64,
    acc: Val,
}

static BUILTINS: LazyLock<expr::Environment<'static>> = LazyLock::new(expr::Environment::new);

/// Evaluate a parsed and checked tree with the given variables; `result` is what `isNil` and
/// `default` test. An optional chain that meets nil at the top yields nil.
pub(super) fn run(
    node: &Node,
    vars: &[(String, Val)],
    result: Val,
    limits: Limits,
) -> Result<Val, EvalError> {
    let mut interp = Interp {
        budget: Budget::new(limits),
        vars,
        result,
        lets: Vec::new(),
        frames: Vec::new(),
        regexes: HashMap::new(),
    };
    match interp.eval(node) {
        Ok(v) => Ok(v),
        Err(Stop::Fail(e)) => Err(e),
        Err(Stop::ChainNil) => Ok(Val::Nil),
    }
}

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
