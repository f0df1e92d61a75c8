//! Parser: a port of expr's recursive descent (same precedences, same error messages), with
//! Sluice's length and nesting limits applied while parsing and to the finished tree.

use std::rc::Rc;

use super::gofmt::go_quote;
use super::lexer::{END, Kind, Lexer, Token, is_valid_identifier};
use super::types::{EvalError, Limits};

#[derive(Clone, Debug)]
pub(super) enum Node {
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

pub(super) fn compile(msg: impl Into<String>) -> EvalError {
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
pub(super) fn predicate_spec(name: &str) -> Option<&'static [(bool, bool)]> {
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

pub(super) fn is_builtin(name: &str) -> bool {
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

pub(super) fn parse(src: &str, limits: &Limits) -> Result<Node, EvalError> {
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

pub(super) type PResult<T> = Result<T, EvalError>;

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
