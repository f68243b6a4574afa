//! keepalived's configuration grammar, as lib/parser.c reads it, into a tree of
//! statements for the keepalived importer (`super::import`). A statement is a line's
//! words; `{` after a statement (on its line or the next) opens its block, `}` closes it.
//! Also as keepalived: `!` and `#` start a comment anywhere outside double quotes (`\!`
//! and `\#` are the characters themselves); `include FILE` (and `includer`, `includem`,
//! `includew`, `includeb`, `includea`) reads the files a glob names, relative to the
//! including file's directory, in sorted order; a line `@NAME rest` is for the instance
//! whose config id is NAME and `@^NAME rest` for every other: read as keepalived does
//! when no instance name is set, the first is dropped and the second kept; `$NAME=value`
//! defines a parameter, `$NAME` and `${NAME}` in later lines are replaced by it. Not
//! expanded (reported, the lines left out): multi-line definitions, `${NAME(args)}`
//! parameters, `~SEQ` and `~LST`, brace globs.
//!
//! Everything is bounded: include depth [`MAX_DEPTH`], files [`MAX_FILES`], the bytes of
//! all files together [`crate::config::file::MAX_BYTES`] (each read with
//! `config::file::read_bytes`), block depth [`MAX_NESTING`], a glob's matches [`MAX_FILES`],
//! and a line after parameter replacement [`MAX_LINE`]; what replacement adds counts
//! with the files' bytes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::file;

/// Includes within includes, at most (the top file is depth 0).
pub const MAX_DEPTH: usize = 8;
/// Files read by includes, at most, all together.
pub const MAX_FILES: usize = 256;
/// Blocks within blocks, at most.
pub const MAX_NESTING: usize = 32;
/// A line's length after parameters are replaced, at most, in bytes.
pub const MAX_LINE: usize = 64 << 10;
/// Rounds of parameter replacement on one line (a value may name another parameter).
const MAX_ROUNDS: usize = 8;

/// Where a statement is: its line in the file imported (for an included file's
/// statements, the line of the top file's `include`) and, inside an included file,
/// that file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub inner: Option<(Arc<str>, usize)>,
}

impl Pos {
    /// `FILE:LINE: ` for a place in an included file, else nothing: the prefix of a
    /// message reported at `self.line`.
    pub fn prefix(&self) -> String {
        match &self.inner {
            Some((f, l)) => format!("{f}:{l}: "),
            None => String::new(),
        }
    }
}

/// A statement and, if it opens one, its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub pos: Pos,
    pub words: Vec<String>,
    pub block: Option<Vec<Node>>,
}

impl Node {
    pub fn keyword(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    /// The word after the keyword, or "".
    pub fn arg(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }

    pub fn children(&self) -> &[Node] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// A line the grammar left out, with why; `failing` when what it held may be an LVS
/// setting (the import then fails), not when keepalived leaves it out too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub pos: Pos,
    pub message: String,
    pub failing: bool,
}

/// Why a file cannot be read as keepalived's grammar at all; shown as `LINE: message`
/// (with `FILE:LINE: ` after it for a place in an included file).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {}{message}", pos.line, pos.prefix())]
pub struct GrammarError {
    pub pos: Pos,
    pub message: String,
}

/// What the reader hands on, in the order it is read: a top-level statement once it
/// is whole (with its block), or a line left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Node(Node),
    Note(Note),
}

/// The statements of a file and what was left out, all at once (for tests).
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Parsed {
    pub nodes: Vec<Node>,
    pub notes: Vec<Note>,
}

enum Token {
    Words(Pos, Vec<String>),
    Open(Pos),
    Close(Pos),
}

struct Lexer<'s> {
    builder: Builder,
    /// Where statements and notes go as they are read, so that a file of many holds
    /// one top-level statement at a time, not all.
    sink: &'s mut dyn FnMut(Item),
    defs: HashMap<String, String>,
    files: usize,
    bytes: u64,
}

/// Reads `text`, the file at `path` (None: standard input, whose includes are relative
/// to the working directory), with its includes, handing each top-level statement
/// (once whole) and each line left out to `sink`.
///
/// # Errors
/// Braces that do not balance, blocks nested deeper than [`MAX_NESTING`], includes
/// beyond [`MAX_DEPTH`] or [`MAX_FILES`] or over `file::MAX_BYTES` in all, an included
/// file that cannot be read; each with its line. What was handed on before stands.
pub fn parse(
    text: &str,
    path: Option<&Path>,
    sink: &mut dyn FnMut(Item),
) -> Result<(), GrammarError> {
    let mut lexer = Lexer {
        builder: Builder::default(),
        sink,
        defs: HashMap::new(),
        files: 0,
        bytes: text.len() as u64,
    };
    let dir = path
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    lexer.file(text, &dir, None, 0, 0)?;
    lexer.builder.finish(lexer.sink)
}

/// [`parse`], collected.
#[cfg(test)]
pub fn parse_all(text: &str, path: Option<&Path>) -> Result<Parsed, GrammarError> {
    let mut parsed = Parsed::default();
    parse(text, path, &mut |item| match item {
        Item::Node(n) => parsed.nodes.push(n),
        Item::Note(n) => parsed.notes.push(n),
    })?;
    Ok(parsed)
}

impl Lexer<'_> {
    fn note(&mut self, pos: &Pos, message: impl Into<String>, failing: bool) {
        (self.sink)(Item::Note(Note {
            pos: pos.clone(),
            message: message.into(),
            failing,
        }));
    }

    fn token(&mut self, token: Token) -> Result<(), GrammarError> {
        self.builder.push(token, &mut *self.sink)
    }

    /// The lines of one file. `name` is None for the top file; `top_line` is the top
    /// file's include line for an included one.
    fn file(
        &mut self,
        text: &str,
        dir: &Path,
        name: Option<Arc<str>>,
        top_line: usize,
        depth: usize,
    ) -> Result<(), GrammarError> {
        let mut lines = text.lines().enumerate();
        while let Some((i, raw)) = lines.next() {
            let pos = match &name {
                None => Pos {
                    line: i + 1,
                    inner: None,
                },
                Some(n) => Pos {
                    line: top_line,
                    inner: Some((n.clone(), i + 1)),
                },
            };
            let (mut line, quote_open) = decomment(raw);
            if quote_open {
                self.note(
                    &pos,
                    "a double quote is not closed; the line is read to its end",
                    true,
                );
            }
            let mut rounds = 0;
            loop {
                if let Some(rest) = line.strip_prefix('@') {
                    // keepalived without a config id: `@NAME` lines are another
                    // instance's, `@^NAME` lines everyone's.
                    let (keep, rest) = match rest.strip_prefix('^') {
                        Some(r) => (true, r),
                        None => (false, rest),
                    };
                    let after = rest
                        .split_once([' ', '\t'])
                        .map(|(_, a)| a.trim_start().to_string());
                    match after {
                        Some(after) if keep => line = after,
                        Some(_) => {
                            self.note(&pos, "`@' line for a named keepalived instance; read as keepalived does with no instance name set, it is left out", false);
                            line.clear();
                        }
                        None => line.clear(),
                    }
                }
                if line.starts_with('$')
                    && let Some((name, value)) = definition(&line)
                {
                    if value.ends_with('\\') {
                        self.note(&pos, format!("${name}: multi-line definitions are not expanded by uvs; the definition and its lines are left out"), true);
                        // Its continuation lines belong to it.
                        for (_, more) in lines.by_ref() {
                            if !decomment(more).0.ends_with('\\') {
                                break;
                            }
                        }
                    } else {
                        self.defs.insert(name, value);
                    }
                    line.clear();
                }
                if line.starts_with("~SEQ") || line.starts_with("~LST") {
                    self.note(
                        &pos,
                        "~SEQ and ~LST are not expanded by uvs; the line is left out",
                        true,
                    );
                    line.clear();
                }
                if self.defs.is_empty() || !line.contains('$') || rounds == MAX_ROUNDS {
                    break;
                }
                rounds += 1;
                match self.replace(&line) {
                    Ok(Some(replaced)) => {
                        // What parameters add counts with the files' bytes: a few
                        // lines naming a long one must not make gigabytes of words.
                        self.bytes += replaced.len().saturating_sub(line.len()) as u64;
                        if self.bytes > file::MAX_BYTES {
                            return Err(GrammarError {
                                pos,
                                message: format!(
                                    "the files, with their parameters replaced, are over {} bytes",
                                    file::MAX_BYTES
                                ),
                            });
                        }
                        line = decomment(&replaced).0;
                    }
                    Ok(None) => break,
                    Err(message) => {
                        self.note(&pos, message, true);
                        line.clear();
                        break;
                    }
                }
            }
            if line.is_empty() {
                continue;
            }
            if let Some(pattern) = include(&line) {
                self.include(pattern, dir, &pos, depth)?;
                continue;
            }
            self.words(&line, pos)?;
        }
        Ok(())
    }

    /// `line` with the parameters it names replaced, None if it names none defined.
    fn replace(&self, line: &str) -> Result<Option<String>, String> {
        let mut out = String::with_capacity(line.len());
        let mut rest = line;
        let mut changed = false;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, used) = if let Some(braced) = after.strip_prefix('{') {
                // A name holds no `$`: looking no further than the next one keeps a
                // line of many unclosed `${` linear.
                match braced.find(['}', '$']) {
                    Some(end) if braced[end..].starts_with('}') => (&braced[..end], end + 2),
                    _ => ("", 0),
                }
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], end)
            };
            match self.defs.get(name) {
                Some(value) if !name.is_empty() => {
                    out.push_str(value);
                    changed = true;
                    rest = &after[used..];
                }
                _ => {
                    if name.contains('(') {
                        return Err(format!(
                            "${{{name}}}: parameters with arguments are not expanded by uvs; the line is left out"
                        ));
                    }
                    out.push('$');
                    rest = after;
                }
            }
            if out.len() > MAX_LINE {
                return Err(format!(
                    "the line is over {MAX_LINE} bytes once its parameters are replaced; left out"
                ));
            }
        }
        out.push_str(rest);
        Ok(changed.then_some(out))
    }

    fn include(
        &mut self,
        pattern: &str,
        dir: &Path,
        pos: &Pos,
        depth: usize,
    ) -> Result<(), GrammarError> {
        let fail = |message: String| GrammarError {
            pos: pos.clone(),
            message,
        };
        if depth >= MAX_DEPTH {
            return Err(fail(format!(
                "include {pattern}: includes nest deeper than {MAX_DEPTH}"
            )));
        }
        if pattern.contains('{') {
            self.note(
                pos,
                format!("include {pattern}: brace globs are not expanded by uvs; nothing is read"),
                true,
            );
            return Ok(());
        }
        let full = if Path::new(pattern).is_absolute() {
            PathBuf::from(pattern)
        } else {
            dir.join(pattern)
        };
        let matched = glob(&full, MAX_FILES - self.files).map_err(fail)?;
        if matched.is_empty() {
            self.note(
                pos,
                format!("include {pattern}: no file matched (keepalived reads nothing either)"),
                false,
            );
        }
        for path in matched {
            self.files += 1;
            if self.files > MAX_FILES {
                return Err(fail(format!("more than {MAX_FILES} files included")));
            }
            let bytes = file::read_bytes(&path)
                .map_err(|e| fail(format!("include {pattern}: {e}")))?
                .0;
            // Bytes, as keepalived reads them: what is not UTF-8 is in a comment or value.
            let text = String::from_utf8_lossy(&bytes);
            self.bytes += text.len() as u64;
            if self.bytes > file::MAX_BYTES {
                return Err(fail(format!(
                    "the files included are over {} bytes together",
                    file::MAX_BYTES
                )));
            }
            let name: Arc<str> = path.display().to_string().into();
            let sub = path.parent().map(Path::to_path_buf).unwrap_or_default();
            self.file(&text, &sub, Some(name), pos.line, depth + 1)?;
        }
        Ok(())
    }

    /// A line's words, with `{` and `}` outside quotes tokens of their own.
    fn words(&mut self, line: &str, pos: Pos) -> Result<(), GrammarError> {
        let mut words = Vec::new();
        let mut word = String::new();
        let mut in_word = false;
        let mut quoted = false;
        for c in line.chars() {
            if quoted {
                if c == '"' {
                    quoted = false;
                } else {
                    word.push(c);
                }
                continue;
            }
            match c {
                '"' => {
                    quoted = true;
                    in_word = true;
                }
                ' ' | '\t' | '{' | '}' => {
                    if in_word {
                        words.push(std::mem::take(&mut word));
                        in_word = false;
                    }
                    if c == '{' || c == '}' {
                        if !words.is_empty() {
                            self.token(Token::Words(pos.clone(), std::mem::take(&mut words)))?;
                        }
                        self.token(if c == '{' {
                            Token::Open(pos.clone())
                        } else {
                            Token::Close(pos.clone())
                        })?;
                    }
                }
                _ => {
                    word.push(c);
                    in_word = true;
                }
            }
        }
        if in_word {
            words.push(word);
        }
        if !words.is_empty() {
            self.token(Token::Words(pos, words))?;
        }
        Ok(())
    }
}

/// The line without its comment and the blanks around it (keepalived's `decomment`),
/// and whether a double quote is left open.
fn decomment(raw: &str) -> (String, bool) {
    let mut out = String::with_capacity(raw.len());
    let mut quoted = false;
    let mut chars = raw.trim_start().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '\\' if !quoted && matches!(chars.peek(), Some('#' | '!')) => {
                out.extend(chars.next());
            }
            '!' | '#' if !quoted => break,
            _ => out.push(c),
        }
    }
    let trimmed = out.trim_end_matches([' ', '\t', '\r']).len();
    out.truncate(trimmed);
    (out, quoted)
}

/// `$NAME=value` (blanks allowed before `=` and after it): the name and the value.
fn definition(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('$')?;
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let name = &rest[..end];
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let value = rest[end..]
        .trim_start_matches([' ', '\t'])
        .strip_prefix('=')?;
    Some((
        name.to_string(),
        value.trim_start_matches([' ', '\t']).to_string(),
    ))
}

/// The pattern of an include line, if it is one (keepalived's `is_include`).
fn include(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("include")?;
    let rest = match rest.chars().next()? {
        ' ' | '\t' => rest,
        'r' | 'm' | 'w' | 'b' | 'a' if rest[1..].starts_with([' ', '\t']) => &rest[1..],
        _ => return None,
    };
    Some(rest.trim_matches([' ', '\t']))
}

/// The files a glob (`*`, `?`, `[...]` in any component) names, sorted, at most
/// `limit` of them; directories are left out, as keepalived skips them.
///
/// # Errors
/// More than `limit` matches, or a directory on the way that cannot be listed.
fn glob(pattern: &Path, limit: usize) -> Result<Vec<PathBuf>, String> {
    let wild = |s: &str| s.contains(['*', '?', '[']);
    let mut found = vec![PathBuf::new()];
    let parts: Vec<_> = pattern.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let text = part.as_os_str().to_string_lossy();
        let last = i + 1 == parts.len();
        let mut next = Vec::new();
        for base in &found {
            if !wild(&text) {
                let p = base.join(part);
                if last || p.is_dir() {
                    next.push(p);
                }
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let entries = std::fs::read_dir(dir)
                .map_err(|e| format!("include {}: {}: {e}", pattern.display(), dir.display()))?;
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') && matches(&text, n))
                .collect();
            names.sort();
            for n in names {
                next.push(base.join(n));
                if next.len() > limit {
                    return Err(format!(
                        "include {}: more than {limit} files match",
                        pattern.display()
                    ));
                }
            }
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    Ok(found)
}

/// Whether `name` matches the glob component `pattern`. Iterative, with one point to
/// go back to (the last `*`), so it costs at most the product of the two lengths.
fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class(&p[pi..], n[ni])
                .map(|(hit, len)| (hit, pi + len))
                .and_then(|(hit, next)| hit.then_some(next)),
            Some(&c) if c == n[ni] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// A `[...]` class at the start of `p`: whether `c` is in it, and its length; None if
/// the class is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(1), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&y| y != ']') {
            hit |= (x..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            hit |= x == c;
            i += 1;
        }
    }
    None
}

/// The tokens as a tree, without recursion, handed on a top-level statement at a time.
#[derive(Default)]
struct Builder {
    /// The blocks being read: the statement that opened each, and its statements so far.
    open: Vec<(Node, Vec<Node>)>,
    /// The last top-level statement without a block: a `{` may still open one for it.
    pending: Option<Node>,
}

impl Builder {
    fn push(&mut self, token: Token, sink: &mut dyn FnMut(Item)) -> Result<(), GrammarError> {
        match token {
            Token::Words(pos, words) => {
                let node = Node {
                    pos,
                    words,
                    block: None,
                };
                match self.open.last_mut() {
                    Some((_, nodes)) => nodes.push(node),
                    None => {
                        if let Some(done) = self.pending.replace(node) {
                            sink(Item::Node(done));
                        }
                    }
                }
            }
            Token::Open(pos) => {
                let owner = match self.open.last_mut() {
                    Some((_, nodes)) => nodes.pop_if(|n| n.block.is_none()),
                    None => self.pending.take(),
                };
                let Some(owner) = owner else {
                    return Err(GrammarError {
                        pos,
                        message: "`{' without a keyword before it".into(),
                    });
                };
                if self.open.len() >= MAX_NESTING {
                    return Err(GrammarError {
                        pos,
                        message: format!("blocks nest deeper than {MAX_NESTING}"),
                    });
                }
                self.open.push((owner, Vec::new()));
            }
            Token::Close(pos) => {
                let Some((mut owner, nodes)) = self.open.pop() else {
                    return Err(GrammarError {
                        pos,
                        message: "`}' closes no block".into(),
                    });
                };
                owner.block = Some(nodes);
                match self.open.last_mut() {
                    Some((_, nodes)) => nodes.push(owner),
                    None => {
                        if let Some(done) = self.pending.take() {
                            sink(Item::Node(done));
                        }
                        sink(Item::Node(owner));
                    }
                }
            }
        }
        Ok(())
    }

    /// The end of the input: the last statement handed on, or the block left open.
    fn finish(mut self, sink: &mut dyn FnMut(Item)) -> Result<(), GrammarError> {
        if let Some((owner, _)) = self.open.pop() {
            return Err(GrammarError {
                message: format!("`{}' opens a block that is never closed", owner.keyword()),
                pos: owner.pos,
            });
        }
        if let Some(done) = self.pending.take() {
            sink(Item::Node(done));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree as `line: words {` lines, indented by depth, for assertions.
    fn shape(nodes: &[Node]) -> Vec<String> {
        fn walk(nodes: &[Node], depth: usize, out: &mut Vec<String>) {
            for n in nodes {
                let at = match &n.pos.inner {
                    Some((f, l)) => format!("{}>{}:{l}", n.pos.line, f.rsplit('/').next().unwrap()),
                    None => n.pos.line.to_string(),
                };
                let open = if n.block.is_some() { " {" } else { "" };
                out.push(format!(
                    "{}{at}: {}{open}",
                    "  ".repeat(depth),
                    n.words.join(" ")
                ));
                walk(n.children(), depth + 1, out);
            }
        }
        let mut out = Vec::new();
        walk(nodes, 0, &mut out);
        out
    }

    fn parsed(text: &str) -> Parsed {
        parse_all(text, None).expect("parses")
    }

    #[test]
    fn blocks_nest_and_braces_may_share_a_line_or_take_the_next() {
        let p = parsed(
            "virtual_server 10.0.0.1 80 {\n  real_server 10.0.0.2 80 { weight 2 }\n  real_server 10.0.0.3 80\n  {\n    TCP_CHECK {\n      connect_timeout 3\n}}\n  lb_algo rr\n}\n",
        );
        assert_eq!(
            shape(&p.nodes),
            [
                "1: virtual_server 10.0.0.1 80 {",
                "  2: real_server 10.0.0.2 80 {",
                "    2: weight 2",
                "  3: real_server 10.0.0.3 80 {",
                "    5: TCP_CHECK {",
                "      6: connect_timeout 3",
                "  8: lb_algo rr",
            ]
        );
        assert!(p.notes.is_empty());
    }

    #[test]
    fn comments_start_at_bang_or_hash_outside_quotes() {
        let p = parsed(
            "! a comment\n# another\nvirtual_server 10.0.0.1 80 { # trailing\n  virtualhost \"a#b!c\" ! gone\n  misc_path /bin/x\\#y\n}\n",
        );
        assert_eq!(
            shape(&p.nodes),
            [
                "3: virtual_server 10.0.0.1 80 {",
                "  4: virtualhost a#b!c",
                "  5: misc_path /bin/x#y",
            ]
        );
    }

    #[test]
    fn at_lines_are_read_as_with_no_instance_name() {
        let p = parsed("@lb1 lb_algo rr\n@^lb1 lb_algo wrr\n@lb2\n");
        assert_eq!(shape(&p.nodes), ["2: lb_algo wrr"]);
        assert_eq!(p.notes.len(), 1);
        assert_eq!(p.notes[0].pos.line, 1);
        assert!(!p.notes[0].failing);
    }

    #[test]
    fn parameters_are_defined_and_replaced() {
        let p = parsed(
            "$VIP=10.0.0.1\n$PORT = 80\n$BOTH=$VIP ${PORT}\nvirtual_server $BOTH {\n}\nx $UNSET\n",
        );
        assert_eq!(
            shape(&p.nodes),
            ["4: virtual_server 10.0.0.1 80 {", "6: x $UNSET"]
        );
        let p = parsed("$M=a \\\n  b\nweight 1\n~SEQ(i,1,3) real_server 10.0.0.$i 80\n");
        assert_eq!(shape(&p.nodes), ["3: weight 1"]);
        let lines: Vec<(usize, bool)> = p.notes.iter().map(|n| (n.pos.line, n.failing)).collect();
        assert_eq!(lines, [(1, true), (4, true)]);
    }

    #[test]
    fn a_parameter_that_grows_is_bounded() {
        // A parameter naming itself: eight rounds of replacement, then the line as it
        // stands.
        let p = parsed("$B=$B\nx $B\n");
        assert_eq!(shape(&p.nodes), ["2: x $B"]);
        // One that doubles each round: left out once it is too long.
        let p = parsed("$A=$A$A$A$A\nx $A\n");
        assert!(p.nodes.is_empty());
        assert!(p.notes[0].pos.line == 2 && p.notes[0].message.contains("over 65536 bytes"));
        let p = parsed(
            "$A=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n$B=$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A$A\n$C=$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B$B\n$D=$C$C$C$C$C$C$C$C$C$C$C$C$C$C$C$C$C$C$C$C\nx $D\n",
        );
        assert!(p.nodes.is_empty());
        assert!(
            p.notes
                .iter()
                .any(|n| n.pos.line == 5 && n.message.contains("over 65536 bytes"))
        );
    }

    #[test]
    fn what_parameters_add_counts_with_the_files_bytes() {
        // 30 000 bytes a line, 600 lines: 18 MB of words from an 18 kB file. (Found by
        // a hostile review: 120 kB of such lines took 3.8 GB before.)
        let text = format!(
            "$A={}\nx {{\n{}}}\n",
            "a ".repeat(15_000),
            "$A\n".repeat(600)
        );
        let e = parse_all(&text, None).unwrap_err();
        // The file's own bytes, then 29 998 more for each line from the third.
        let mut bytes = text.len() as u64;
        let mut line = 2;
        while bytes <= file::MAX_BYTES {
            line += 1;
            bytes += 29_998;
        }
        assert_eq!(
            e.to_string(),
            format!(
                "{line}: the files, with their parameters replaced, are over {} bytes",
                file::MAX_BYTES
            )
        );
    }

    #[test]
    fn a_name_ends_at_the_next_dollar_so_unclosed_braces_are_not_searched_again() {
        // Many `${` and one `}` at the end: nothing is a parameter.
        let text = format!("$A=y\nx \"{}}}\"\n", "${".repeat(20_000));
        let p = parsed(&text);
        assert_eq!(p.nodes.len(), 1);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
        assert_eq!(shape(&parsed("$A=y\nx ${A} $A\n").nodes), ["2: x y y"]);
    }

    #[test]
    fn braces_that_do_not_balance_are_errors_with_their_line() {
        let e = parse_all("a {\n  b {\n  }\n", None).unwrap_err();
        assert_eq!(e.to_string(), "1: `a' opens a block that is never closed");
        let e = parse_all("a {\n}\n}\n", None).unwrap_err();
        assert_eq!(e.to_string(), "3: `}' closes no block");
        let e = parse_all("a {\n}\n{\n}\n", None).unwrap_err();
        assert_eq!(e.to_string(), "3: `{' without a keyword before it");
        let deep = "a {\n".repeat(MAX_NESTING + 1);
        let e = parse_all(&deep, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: blocks nest deeper than {MAX_NESTING}", MAX_NESTING + 1)
        );
    }

    #[test]
    fn includes_read_the_files_a_glob_names_in_order_relative_to_the_includer() {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("conf.d");
        std::fs::create_dir(&conf).unwrap();
        std::fs::write(conf.join("b.conf"), "weight 2\n").unwrap();
        std::fs::write(
            conf.join("a.conf"),
            "! first\nweight 1\ninclude ../more/*.inc\n",
        )
        .unwrap();
        std::fs::write(conf.join("c.txt"), "weight 9\n").unwrap();
        std::fs::create_dir(dir.path().join("more")).unwrap();
        std::fs::write(dir.path().join("more").join("x.inc"), "weight 3 {\n").unwrap();
        std::fs::write(dir.path().join("more").join("y.inc"), "}\n").unwrap();
        let top = dir.path().join("keepalived.conf");
        let text = "lb_algo rr\ninclude conf.d/[ab].conf\nincluder nothing/*.conf\n";
        let p = parse_all(text, Some(&top)).unwrap();
        assert_eq!(
            shape(&p.nodes),
            [
                "1: lb_algo rr",
                "2>a.conf:2: weight 1",
                "2>x.inc:1: weight 3 {",
                "2>b.conf:1: weight 2",
            ]
        );
        assert_eq!(p.notes.len(), 1);
        assert_eq!(p.notes[0].pos.line, 3);
        assert_eq!(
            p.notes[0].message,
            "include nothing/*.conf: no file matched (keepalived reads nothing either)"
        );
        // A file that includes itself stops at the depth limit, with the line.
        std::fs::write(conf.join("loop.conf"), "include loop.conf\n").unwrap();
        let e = parse_all("include conf.d/loop.conf\n", Some(&top)).unwrap_err();
        assert!(
            e.to_string().starts_with("1: ")
                && e.to_string()
                    .ends_with(&format!("includes nest deeper than {MAX_DEPTH}")),
            "{e}"
        );
    }

    #[test]
    fn globs_match_as_the_shell_does() {
        assert!(matches("*.conf", "a.conf"));
        assert!(!matches("*.conf", "a.conf~"));
        assert!(matches("a?c", "abc"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[!a-c]x", "bx"));
        assert!(matches("*a*b*", "xxaxxbxx"));
        assert!(!matches("[ab", "a"));
        assert!(matches("**", ""));
    }
}
