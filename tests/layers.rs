//! The layer check: reads every `src/**/*.rs`, collects the imports of other top-level
//! modules (`crate::x`, `use crate::{x, y::z}`, `super::super::x`) and fails, naming file
//! and line, on any that points up a layer or closes a circle between modules.
//!
//! The layers, top to bottom (DESIGN.md, "Layers"):
//!
//! ```text
//! entry    main.rs, bin/                       parse the command line, call the library
//! daemon   daemon/, demo                       wiring, reloader, status report, shutdown
//! writers  config, control, health, status,    turn files, requests, checks into commands
//!          pool                                (pool: drains carried out over time)
//! readers  proxy, kernel, exporter, adm,       serve, mirror, count and list the table,
//!          syncd                               sync it with other directors
//! core     table, sched, persist, conn, stats, the table, its schedulers, connections,
//!          sync, clock, lock, rate_limit,      templates, counters, sync's wire format
//!          words, descriptors, workers,        and small leaves
//!          printable
//! sys      sys                                 the few libc calls
//! ```
//!
//! Decisions, and why:
//! - A module may import any module of a lower layer.
//! - Writers may import readers: writers make commands from what readers define
//!   (config's import speaks ipvsadm's grammar from `adm`, config's schema names the
//!   data plane's forwarding and congestion control, the control protocol carries the
//!   data plane's typed counts, the control client is an `adm` backend). Readers never
//!   import writers: what they serve must not depend on how the table was written.
//! - Within one layer imports are allowed, but no two modules may import each other,
//!   directly or round a longer circle; the only circle allowed is `table` <-> `sched`
//!   (a service holds its scheduler, a scheduler reads the service's servers).
//! - `status` renders the control protocol's answer for `uvs status`: the client side
//!   of `control`, in its layer.
//! - Tests inside `src` count: a test that reaches up a layer ties the layers as much as
//!   the code does.
//!
//! `KNOWN` lists the imports that still point the wrong way, each with its reason; the
//! check fails on any other, and on a known one that is gone (so the list shrinks).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Layer of each top-level module (a file `src/x.rs` or a directory `src/x/`).
const LAYERS: &[(&str, &[&str])] = &[
    ("sys", &["sys"]),
    (
        "core",
        &[
            "table",
            "sched",
            "persist",
            "conn",
            "stats",
            "sync",
            "clock",
            "lock",
            "rate_limit",
            "words",
            "descriptors",
            "workers",
            "printable",
        ],
    ),
    ("readers", &["proxy", "kernel", "exporter", "adm", "syncd"]),
    (
        "writers",
        &["config", "control", "health", "status", "pool"],
    ),
    ("daemon", &["daemon", "demo"]),
    ("entry", &["main", "bin", "lib"]),
];

/// The one circle allowed.
const ALLOWED_CIRCLES: &[(&str, &str)] = &[("table", "sched"), ("sched", "table")];

/// Imports that still point the wrong way: (from module, to module, why it is left).
/// The circles check leaves them out of the graph, so that the other half of a known
/// circle is not reported too.
const KNOWN: &[(&str, &str, &str)] = &[];

/// One import of another top-level module.
#[derive(Debug, Clone)]
struct Import {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
}

impl std::fmt::Display for Import {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: {} imports {}",
            self.file.display(),
            self.line,
            self.from,
            self.to
        )
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file below `src`: `proxy/udp/mod.rs` is `[proxy, udp]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("a file name");
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// The text with comments and string literals blanked (newlines kept, so lines count
/// the same): doc links such as [`crate::x`] and messages are not imports.
fn code_only(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i] == '/' && bytes.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if bytes[i] == '*' && bytes.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !ident_before(&out) {
            // A raw string: r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            for _ in i..=j {
                out.push(' ');
            }
            i = j + 1;
            while i < bytes.len() {
                if bytes[i] == '"' && (0..hashes).all(|k| bytes.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(bytes[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < bytes.len() {
                    out.push(blank(bytes[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&bytes, i) {
            // A char literal ('"' would open a string otherwise); lifetimes stay.
            let end = (i + 1..bytes.len())
                .find(|&k| bytes[k] == '\'' && (bytes[k - 1] != '\\' || bytes[k - 2] == '\\'))
                .unwrap_or(i);
            for _ in i..=end {
                out.push(' ');
            }
            i = end + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(out: &str) -> bool {
    out.chars()
        .last()
        .is_some_and(|c| c.is_alphanumeric() || c == '_')
}

fn is_char_literal(bytes: &[char], i: usize) -> bool {
    // '\n', '\'' and the like, or one character and its closing quote.
    bytes.get(i + 1) == Some(&'\\')
        || (bytes.get(i + 1).is_some() && bytes.get(i + 2) == Some(&'\''))
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The identifiers that open each path of a `{...}` group starting at `at` (just after
/// the `{`), with the offset of each: `{a::b, c, d::{e, f}}` gives a, c, d.
fn group_heads(code: &[char], mut at: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = true;
    while at < code.len() {
        let c = code[at];
        match c {
            '{' => {
                depth += 1;
                at += 1;
            }
            '}' if depth == 0 => break,
            '}' => {
                depth -= 1;
                at += 1;
            }
            ',' if depth == 0 => {
                expect_head = true;
                at += 1;
            }
            c if is_ident(c) && expect_head => {
                let start = at;
                while at < code.len() && is_ident(code[at]) {
                    at += 1;
                }
                heads.push((code[start..at].iter().collect(), start));
                expect_head = false;
            }
            _ => at += 1,
        }
    }
    heads
}

/// The top-level modules a file's code names: `crate::x...` and, from deep enough,
/// `super::super::x...`.
fn imports(file: &Path, relative: &Path, text: &str) -> Vec<Import> {
    let code: Vec<char> = code_only(text).chars().collect();
    let module = module_path(relative);
    let from = module[0].clone();
    let line_of = |at: usize| code[..at].iter().filter(|&&c| c == '\n').count() + 1;
    let mut found = Vec::new();
    let mut push = |name: String, at: usize| {
        if name != from && name != "self" && name != "super" && name != "crate" {
            found.push(Import {
                file: file.to_path_buf(),
                line: line_of(at),
                from: from.clone(),
                to: name,
            });
        }
    };
    let text: String = code.iter().collect();
    // Byte offsets of `text` are char offsets of `code` only for ASCII: map them.
    let char_at: Vec<usize> = {
        let mut map = vec![0; text.len() + 1];
        for (n, (b, _)) in text.char_indices().enumerate() {
            map[b] = n;
        }
        map[text.len()] = code.len();
        map
    };
    for (prefix, depth) in [("crate::", 0usize), ("super::super::", 2)] {
        let mut from_byte = 0;
        while let Some(found_at) = text[from_byte..].find(prefix) {
            let start = from_byte + found_at;
            from_byte = start + prefix.len();
            let before = text[..start].chars().last();
            if before.is_some_and(|c| is_ident(c) || c == ':') {
                continue;
            }
            if depth > 0 {
                // `super::super` from `a::b` is the crate; from deeper it stays inside
                // `a`. (A test module inside a file adds a level: `a::b::tests`.)
                let in_test_module = text[..start].contains("mod tests");
                let level = module.len() + usize::from(in_test_module);
                if level != 2 {
                    continue;
                }
            }
            let at = char_at[from_byte];
            if code.get(at) == Some(&'{') {
                for (name, pos) in group_heads(&code, at + 1) {
                    push(name, pos);
                }
            } else {
                let end = (at..code.len())
                    .find(|&k| !is_ident(code[k]))
                    .unwrap_or(code.len());
                push(code[at..end].iter().collect(), at);
            }
        }
    }
    found
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn all_imports() -> Vec<Import> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut all = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("below src").to_path_buf();
        let text = fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        let shown = Path::new("src").join(&relative);
        all.extend(imports(&shown, &relative, &text));
    }
    all
}

fn known(i: &Import) -> bool {
    KNOWN
        .iter()
        .any(|(from, to, _)| *from == i.from && *to == i.to)
}

/// Imports of a module that points up a layer, or a reader that imports a writer.
fn upward(all: &[Import]) -> Vec<&Import> {
    all.iter().filter(|i| points_up(i)).collect()
}

fn points_up(i: &Import) -> bool {
    matches!((layer_of(&i.from), layer_of(&i.to)), (Some(from), Some(to)) if to > from)
}

/// Imports that close a circle between two units of one layer (or more, round a
/// longer circle), but for the ones allowed.
fn circles(all: &[Import]) -> Vec<&Import> {
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    // Upward imports are reported as such: leaving them out here keeps one wrong import
    // from being reported again as every circle it closes.
    for i in all.iter().filter(|i| !known(i) && !points_up(i)) {
        let (a, b) = (i.from.as_str(), i.to.as_str());
        if a != b && !ALLOWED_CIRCLES.contains(&(a, b)) {
            edges.entry(a).or_default().insert(b);
        }
    }
    let reaches = |start: &str, goal: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![start.to_string()];
        while let Some(m) = todo.pop() {
            if m == goal {
                return true;
            }
            if seen.insert(m.clone()) {
                for n in edges.get(m.as_str()).into_iter().flatten() {
                    todo.push(n.to_string());
                }
            }
        }
        false
    };
    all.iter()
        .filter(|i| {
            let (a, b) = (i.from.as_str(), i.to.as_str());
            a != b && !points_up(i) && !ALLOWED_CIRCLES.contains(&(a, b)) && reaches(b, a)
        })
        .collect()
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for entry in fs::read_dir(&src).expect("src") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("a name")
            .to_string_lossy()
            .into_owned();
        if layer_of(&name).is_none() {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/layers.rs: {missing:?}"
    );
}

#[test]
fn imports_look_down_only() {
    let all = all_imports();
    let wrong: Vec<String> = upward(&all)
        .into_iter()
        .chain(circles(&all))
        .filter(|i| !known(i))
        .map(|i| {
            let why = if layer_of(&i.to) > layer_of(&i.from) {
                format!(
                    "up from {} to {}",
                    LAYERS[layer_of(&i.from).unwrap_or(0)].0,
                    LAYERS[layer_of(&i.to).unwrap_or(0)].0
                )
            } else {
                format!("a circle: {} also reaches {}", i.to, i.from)
            };
            format!("{i} ({why})")
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "imports that point the wrong way:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn known_exceptions_are_still_there() {
    let all = all_imports();
    let bad: BTreeSet<(&str, &str)> = upward(&all)
        .into_iter()
        .chain(circles(&all))
        .map(|i| (i.from.as_str(), i.to.as_str()))
        .collect();
    let gone: Vec<_> = KNOWN
        .iter()
        .filter(|(from, to, _)| !bad.contains(&(*from, *to)))
        .collect();
    assert!(gone.is_empty(), "fixed, take them out of KNOWN: {gone:?}");
}

#[test]
fn the_check_sees_what_it_must() {
    let text = "//! see [`crate::daemon`]\nuse crate::{table::X, daemon::{a, b}};\n\
                fn f() { let s = \"crate::control\"; crate::health::go(); }\n";
    let found = imports(Path::new("src/conn.rs"), Path::new("conn.rs"), text);
    let names: Vec<(&str, usize)> = found.iter().map(|i| (i.to.as_str(), i.line)).collect();
    assert_eq!(names, [("table", 2), ("daemon", 2), ("health", 3)]);
    let nested = "use super::super::control::x;\n";
    let found = imports(
        Path::new("src/proxy/udp.rs"),
        Path::new("proxy/udp.rs"),
        nested,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].to, "control");
    assert_eq!(upward(&found).len(), 1);
}
