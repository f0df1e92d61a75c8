//! The shape of `src/`, checked: layers depend downward only, no module imports another module
//! that imports it back (directly or around a longer cycle), and no production file grows past
//! ~1,000 lines. Reads the source as text; test-only code (`#[cfg(test)]` modules) is left out.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/` with its module path (`rollout::canary::scale`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src(), &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src()).unwrap().with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect();
        if parts.first().is_some_and(|p| p == "bin") {
            continue; // binaries sit on top of the library, outside its graph
        }
        if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
            parts.pop();
        }
        out.insert(parts.join("::"), f);
    }
    out
}

/// Modules declared only for tests (`#[cfg(test)] mod x;`) and the text of a file without its
/// inline test module.
fn production_text(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(l) = lines.next() {
        if l.trim() == "#[cfg(test)]" {
            while lines
                .peek()
                .is_some_and(|n| n.trim_start().starts_with("#["))
            {
                lines.next();
            }
            match lines.peek() {
                // An inline test module runs to the end of the file by habit.
                Some(n)
                    if (n.starts_with("mod ") || n.starts_with("pub mod "))
                        && n.trim_end().ends_with('{') =>
                {
                    break;
                }
                Some(_) => {
                    lines.next();
                    continue;
                }
                None => break,
            }
        }
        out.push_str(l);
        out.push('\n');
    }
    out
}

fn test_only_modules(mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (m, f) in mods {
        let text = std::fs::read_to_string(f).unwrap();
        let mut prev_cfg_test = false;
        for l in text.lines() {
            let t = l.trim();
            if prev_cfg_test
                && let Some(rest) = t
                    .strip_prefix("mod ")
                    .or_else(|| t.strip_prefix("pub mod "))
                && let Some(name) = rest.strip_suffix(';')
            {
                out.insert(if m.is_empty() {
                    name.to_string()
                } else {
                    format!("{m}::{name}")
                });
            }
            prev_cfg_test = t == "#[cfg(test)]" || (prev_cfg_test && t.starts_with("#["));
        }
    }
    out
}

/// The modules `text` (module `me`) refers to through `crate::…` and `super::…` paths, resolved
/// to the longest module prefix that exists.
fn references(me: &str, text: &str, mods: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes: Vec<char> = text.chars().collect();
    let ident = |c: char| c.is_alphanumeric() || c == '_' || c == ':' || c == '{' || c == ',';
    let mut i = 0;
    while i < bytes.len() {
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        let start_ok = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        if start_ok && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut j = i;
            while j < bytes.len() && ident(bytes[j]) {
                j += 1;
            }
            let path: String = bytes[i..j].iter().collect();
            // `use a::{b, c::d}` names several paths; take the common stem and each branch.
            let (stem, branches) = match path.split_once('{') {
                Some((s, b)) => (
                    s.trim_end_matches("::").to_string(),
                    b.split(',')
                        .map(|x| x.trim().trim_matches('}').to_string())
                        .collect::<Vec<_>>(),
                ),
                None => (path.trim_end_matches("::").to_string(), vec![String::new()]),
            };
            for b in branches {
                let full = if b.is_empty() {
                    stem.clone()
                } else {
                    format!("{stem}::{b}")
                };
                let mut segs: Vec<&str> = full.split("::").filter(|s| !s.is_empty()).collect();
                let mut base: Vec<String> = if me.is_empty() {
                    Vec::new()
                } else {
                    me.split("::").map(str::to_string).collect()
                };
                if segs.first() == Some(&"crate") {
                    base.clear();
                    segs.remove(0);
                } else {
                    // `super` from a file module `a::b` (b.rs) is `a`; from `a/b/mod.rs` also `a`.
                    while segs.first() == Some(&"super") {
                        segs.remove(0);
                        base.pop();
                    }
                }
                let mut best = None;
                for k in 0..=segs.len() {
                    let mut cand = base.clone();
                    cand.extend(segs[..k].iter().map(|s| s.to_string()));
                    let name = cand.join("::");
                    if mods.contains_key(&name) {
                        best = Some(name);
                    }
                }
                if let Some(b) = best
                    && b != me
                    && !b.is_empty()
                {
                    out.insert(b);
                }
            }
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let tests = test_only_modules(&mods);
    let mut g = BTreeMap::new();
    for (m, f) in &mods {
        if m.is_empty()
            || tests
                .iter()
                .any(|t| m == t || m.starts_with(&format!("{t}::")))
        {
            continue;
        }
        let text = production_text(&std::fs::read_to_string(f).unwrap());
        // Doc links in comments are not imports.
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .map(|l| format!("{l}\n"))
            .collect();
        let refs = references(m, &code, &mods)
            .into_iter()
            .filter(|r| !tests.contains(r))
            .collect();
        g.insert(m.clone(), refs);
    }
    g
}

#[test]
fn no_module_import_cycles() {
    let g = graph();
    // Tarjan's strongly connected components; any component of two or more is a cycle.
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        n: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.n);
        t.low.insert(v, t.n);
        t.n += 1;
        t.stack.push(v);
        t.on.insert(v);
        if let Some(es) = t.g.get(v) {
            for w in es {
                let w = w.as_str();
                if !t.g.contains_key(w) {
                    continue;
                }
                if !t.index.contains_key(w) {
                    visit(t, w);
                    let lw = t.low[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(lw));
                } else if t.on.contains(w) {
                    let iw = t.index[w];
                    let lv = t.low[v];
                    t.low.insert(v, lv.min(iw));
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        g: &g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        n: 0,
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    let mut report = String::new();
    for comp in &t.out {
        report.push_str(&format!("cycle among {comp:?}:\n"));
        for a in comp {
            for b in &g[a] {
                if comp.contains(b) {
                    report.push_str(&format!("  {a} -> {b}\n"));
                }
            }
        }
    }
    assert!(t.out.is_empty(), "module import cycles in src/:\n{report}");
}

/// Layers depend downward only: `cli`, `controller` → `metrics` → `rollout` → `analysis` →
/// `api` → `time`.
#[test]
fn layers_depend_downward() {
    let rank = |m: &str| -> u8 {
        match m.split("::").next().unwrap_or("") {
            "time" => 0,
            "api" => 1,
            "analysis" => 2,
            "rollout" => 3,
            "metrics" => 4,
            "controller" | "cli" => 5,
            _ => 6,
        }
    };
    let mut bad = Vec::new();
    for (m, refs) in graph() {
        for r in refs {
            let top_m = m.split("::").next().unwrap_or("");
            let top_r = r.split("::").next().unwrap_or("");
            if top_m != top_r && rank(&r) >= rank(&m) {
                bad.push(format!("{m} -> {r}"));
            }
        }
    }
    // The pure core never reaches the I/O shell or the CLI, and the API layer reaches nothing.
    assert!(bad.is_empty(), "upward or sideways imports: {bad:#?}");
}

#[test]
fn production_files_stay_under_a_thousand_lines() {
    let mut big = Vec::new();
    let tests = test_only_modules(&modules());
    for (m, f) in modules() {
        if tests.contains(&m) {
            continue;
        }
        let text = production_text(&std::fs::read_to_string(&f).unwrap());
        let n = text.lines().count();
        if n > 1_050 {
            big.push(format!("{} ({n} lines)", f.display()));
        }
    }
    assert!(
        big.is_empty(),
        "production files over ~1,000 lines: {big:#?}"
    );
}

#[test]
fn the_checker_sees_a_cycle() {
    // The checker must be able to fail: two modules naming each other are one cycle.
    let mut mods = BTreeMap::new();
    mods.insert("a".to_string(), PathBuf::from("a.rs"));
    mods.insert("b".to_string(), PathBuf::from("b.rs"));
    assert!(references("a", "use crate::b::X;", &mods).contains("b"));
    assert!(references("b", "use super::a::{Y, Z};", &mods).contains("a"));
    assert!(production_text("fn x() {}\n#[cfg(test)]\nmod tests {\nuse crate::b;\n}\n").len() < 12);
}
