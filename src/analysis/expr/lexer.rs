//! Lexer: a port of expr's state machine, so tokens and their error messages match. Lexing
//! errors become an `Error` token that the parser reports when it reaches it.

use std::fmt;

use super::gofmt::go_quote;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
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
pub(super) struct Token {
    pub(super) kind: Kind,
    pub(super) value: String,
    pub(super) bytes: Vec<u8>,
}

pub(super) static END: Token = Token {
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

pub(super) fn is_valid_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_alpha) && chars.all(is_alnum)
}

pub(super) struct Lexer<'s> {
    src: &'s str,
    start: usize,
    pos: usize,
    out: Vec<Token>,
}

impl<'s> Lexer<'s> {
    pub(super) fn run(src: &'s str) -> Vec<Token> {
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
