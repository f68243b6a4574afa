//! Reading a TOML document key by key with the position of every value, so that each
//! problem names its file, line and column, the key, what was expected and what was
//! found, and so that all problems of a file come out in one pass instead of one per
//! run. Unknown keys are problems too. Used by the schema (`schema`).
//!
//! A read costs time and memory in proportion to the file, however many problems it
//! has: all are counted, the first [`SHOWN`] in the file's order kept (`capped`), and
//! only those are placed, in one pass over the text; the syntax pass of a large file
//! keeps only its first error ([`RECOVER_BYTES`]).

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::capped::{Capped, SHOWN};

/// Up to this size (256 KiB, a few thousand services) a file has every TOML syntax
/// error reported; a larger one only the first found. toml's recovering parser keeps
/// every error it meets, up to three per two bytes of junk at some 200 bytes each (a
/// 16 MiB file of `=` lines: 25 million errors, gigabytes), and cannot be
/// told to stop; its plain parser keeps one.
pub const RECOVER_BYTES: usize = 256 << 10;

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Where in the document: `service[2].server[0].weight`.
    pub key: String,
    pub message: String,
}

/// Everything wrong with one file, as far as it was looked at: its first problems and
/// how many it has. A file of junk has one per line, tens of millions within the size
/// limit: only the first [`SHOWN`] are kept and shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub file: PathBuf,
    /// The first problems, at most [`SHOWN`], in the order of the file.
    pub list: Vec<Problem>,
    /// How many were found, listed or not.
    pub total: usize,
    /// The file is over [`RECOVER_BYTES`] and its syntax is wrong: only the first
    /// syntax error found was looked for, so there may be more than `total`.
    pub first_syntax_error_only: bool,
}

impl Problems {
    /// How many there are, in words: "1 problem", "4 problems", "at least 1 problem".
    pub fn count(&self) -> String {
        format!(
            "{}{} problem{}",
            if self.first_syntax_error_only {
                "at least "
            } else {
                ""
            },
            self.total,
            if self.total == 1 { "" } else { "s" }
        )
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{file}:{}:{}: ", p.line, p.column)?;
            if !p.key.is_empty() {
                write!(f, "{}: ", p.key)?;
            }
            write!(f, "{}", p.message)?;
        }
        let more = self.total.saturating_sub(self.list.len());
        if more > 0 {
            write!(
                f,
                "\n{file}: {more} more problem{} not shown",
                if more == 1 { "" } else { "s" }
            )?;
        }
        if self.first_syntax_error_only {
            write!(
                f,
                "\n{file}: the file is over {} KiB, so only the first TOML syntax error found is reported",
                RECOVER_BYTES >> 10
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A problem as reported, placed once the first ones are known.
struct Found {
    key: String,
    message: String,
}

/// Collects problems against the text they were found in: all are counted, the first
/// [`SHOWN`] in the file's order kept.
pub struct Report<'s> {
    text: &'s str,
    /// By byte offset in the text.
    found: RefCell<Capped<usize, Found>>,
    first_syntax_error_only: Cell<bool>,
}

impl<'s> Report<'s> {
    pub fn new(text: &'s str) -> Report<'s> {
        Report {
            text,
            found: RefCell::new(Capped::new(SHOWN)),
            first_syntax_error_only: Cell::new(false),
        }
    }

    /// A problem at byte range `span` of the text.
    pub fn at(&self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        // Made only if kept: past the first SHOWN, a problem is only counted.
        self.found
            .borrow_mut()
            .push_with(span.start.min(self.text.len()), || Found {
                key: key.to_string(),
                message: message.into(),
            });
    }

    pub fn is_empty(&self) -> bool {
        self.found.borrow().is_empty()
    }

    /// The problems, in the order of the file, each with its line and column.
    pub fn finish(self, file: &Path) -> Result<(), Problems> {
        let found = self.found.into_inner();
        if found.is_empty() {
            return Ok(());
        }
        let (kept, total) = found.into_sorted();
        let offsets: Vec<usize> = kept.iter().map(|(offset, _)| *offset).collect();
        let list = kept
            .into_iter()
            .zip(place(self.text, &offsets))
            .map(|((_, found), (line, column))| Problem {
                line,
                column,
                key: found.key,
                message: found.message,
            })
            .collect();
        Err(Problems {
            file: file.to_path_buf(),
            list,
            total,
            first_syntax_error_only: self.first_syntax_error_only.get(),
        })
    }
}

/// The document in `text`, or None when its syntax is wrong, the syntax errors
/// reported: every one in a file of up to [`RECOVER_BYTES`], the first found in a
/// larger one.
pub fn document<'i>(text: &'i str, report: &Report<'_>) -> Option<DeTable<'i>> {
    let syntax_error = |e: &toml::de::Error| {
        let span = e.span().unwrap_or(0..0);
        report.at(&span, "", format!("TOML syntax: {}", e.message()));
    };
    if text.len() <= RECOVER_BYTES {
        let (doc, errors) = DeTable::parse_recoverable(text);
        errors.iter().for_each(syntax_error);
        return errors.is_empty().then(|| doc.into_inner());
    }
    match DeTable::parse(text) {
        Ok(doc) => Some(doc.into_inner()),
        Err(e) => {
            syntax_error(&e);
            report.first_syntax_error_only.set(true);
            None
        }
    }
}

/// The 1-based line and column (in characters) of each byte offset of `offsets`, which
/// are in ascending order: one pass over the text, whatever their number, and nothing
/// held per line (a 16 MiB file of empty lines has 16 million). Offsets past the end
/// are placed at the end; one inside a character counts that character.
fn place(text: &str, offsets: &[usize]) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let mut placed = Vec::with_capacity(offsets.len());
    let (mut at, mut line, mut column) = (0, 1, 1);
    for &offset in offsets {
        let offset = offset.clamp(at, bytes.len());
        let between = &bytes[at..offset];
        match between.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                line += between.iter().filter(|&&b| b == b'\n').count();
                column = 1 + chars(&between[last + 1..]);
            }
            None => column += chars(between),
        }
        at = offset;
        placed.push((line, column));
    }
    placed
}

/// The characters that start in `bytes` (UTF-8: every byte but continuation bytes).
fn chars(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
}

/// How a value is described in "found ..." messages.
pub fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::String(s) => format!("the string {s:?}"),
        DeValue::Integer(i) => format!("the integer {i}"),
        DeValue::Float(f) => format!("the number {f}"),
        DeValue::Boolean(b) => format!("{b}"),
        DeValue::Datetime(d) => format!("the date-time {d}"),
        DeValue::Array(_) => "an array".to_string(),
        DeValue::Table(_) => "a table".to_string(),
    }
}

/// One table of the document, read key by key; keys never asked for are reported as
/// unknown when it is dropped.
pub struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    path: String,
    used: RefCell<BTreeSet<String>>,
    report: &'a Report<'a>,
}

/// A value with where it is.
pub struct Item<'a, 'i> {
    pub value: &'a DeValue<'i>,
    pub span: Range<usize>,
    pub key: String,
    pub report: &'a Report<'a>,
}

impl<'a, 'i> Item<'a, 'i> {
    /// Reports that this value is not what `expected` says.
    pub fn wrong(&self, expected: &str) {
        self.report.at(
            &self.span,
            &self.key,
            format!("expected {expected}, found {}", describe(self.value)),
        );
    }

    /// Reports a problem with this value in other words.
    pub fn problem(&self, message: impl Into<String>) {
        self.report.at(&self.span, &self.key, message);
    }

    pub fn str(&self, expected: &str) -> Option<&'a str> {
        match self.value {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.wrong(expected);
                None
            }
        }
    }

    /// A string that `parse` takes (a name, an address); any other value, or a string
    /// `parse` refuses, is reported as not `expected`.
    pub fn parsed<T>(&self, expected: &str, parse: impl FnOnce(&str) -> Option<T>) -> Option<T> {
        let parsed = parse(self.str(expected)?);
        if parsed.is_none() {
            self.wrong(expected);
        }
        parsed
    }

    pub fn bool(&self) -> Option<bool> {
        match self.value {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong("true or false");
                None
            }
        }
    }

    /// An integer within `range`.
    pub fn integer(&self, range: std::ops::RangeInclusive<i64>) -> Option<i64> {
        let expected = format!("an integer from {} to {}", range.start(), range.end());
        match self.value {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) if range.contains(&n) => Some(n),
                _ => {
                    self.wrong(&expected);
                    None
                }
            },
            _ => {
                self.wrong(&expected);
                None
            }
        }
    }

    /// A duration: `"30s"`, `"5m"`, `"1h 30m"`, or a plain number of seconds (as
    /// ldirectord writes them), within `range` seconds.
    pub fn duration(&self, range: std::ops::RangeInclusive<u64>) -> Option<Duration> {
        let expected = format!(
            "a duration from {} to {} seconds, as \"30s\", \"5m\" or a number of seconds",
            range.start(),
            range.end()
        );
        match self.parsed_duration() {
            Some(d) if range.contains(&d.as_secs()) => Some(d),
            _ => {
                self.wrong(&expected);
                None
            }
        }
    }

    /// The value as a duration, whatever its length; None when it is not one.
    fn parsed_duration(&self) -> Option<Duration> {
        match self.value {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(Duration::from_secs),
            DeValue::String(s) => humantime::parse_duration(s).ok(),
            _ => None,
        }
    }

    /// A duration of at most `max_secs` seconds that is not zero; anything else (zero,
    /// too long, not a duration) is reported as not `expected`, which says the range
    /// (0 is refused, so "from 0" would be wrong).
    pub fn nonzero_duration(&self, max_secs: u64, expected: &str) -> Option<Duration> {
        match self.parsed_duration() {
            Some(d) if !d.is_zero() && d.as_secs() <= max_secs => Some(d),
            _ => {
                self.wrong(expected);
                None
            }
        }
    }

    /// The elements of an array.
    pub fn array(&self, expected: &str) -> Vec<Item<'a, 'i>> {
        match self.value {
            DeValue::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| Item {
                    value: v.get_ref(),
                    span: v.span(),
                    key: format!("{}[{i}]", self.key),
                    report: self.report,
                })
                .collect(),
            _ => {
                self.wrong(expected);
                Vec::new()
            }
        }
    }

    /// This value as a table.
    pub fn table(&self) -> Option<Table<'a, 'i>> {
        match self.value {
            DeValue::Table(t) => Some(Table::new(t, &self.key, self.report)),
            _ => {
                self.wrong("a table");
                None
            }
        }
    }

    /// An array of tables (`[[service]]`), each with its path.
    pub fn tables(&self) -> Vec<(Table<'a, 'i>, Range<usize>)> {
        self.array("an array of tables")
            .into_iter()
            .filter_map(|item| {
                let span = item.span.clone();
                item.table().map(|t| (t, span))
            })
            .collect()
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub fn new(table: &'a DeTable<'i>, path: &str, report: &'a Report<'a>) -> Table<'a, 'i> {
        Table {
            table,
            path: path.to_string(),
            used: RefCell::new(BTreeSet::new()),
            report,
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn report(&self) -> &'a Report<'a> {
        self.report
    }

    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Item<'a, 'i>> {
        let (_, value): (&Spanned<_>, &Spanned<DeValue<'i>>) = self.table.get_key_value(key)?;
        self.used.borrow_mut().insert(key.to_string());
        Some(Item {
            value: value.get_ref(),
            span: value.span(),
            key: self.key_path(key),
            report: self.report,
        })
    }
}

impl Drop for Table<'_, '_> {
    fn drop(&mut self) {
        let used = self.used.borrow();
        for (key, _) in self.table.iter() {
            if !used.contains(key.get_ref().as_ref()) {
                self.report
                    .at(&key.span(), &self.key_path(key.get_ref()), "unknown key");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How positions were found before: the text before the offset scanned for each.
    fn scanned(text: &str, offset: usize) -> (usize, usize) {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn one(text: &str, offset: usize) -> (usize, usize) {
        place(text, &[offset])[0]
    }

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let text = "a = 1\nbb = \"x\"\n";
        assert_eq!(one(text, 0), (1, 1), "the first byte");
        assert_eq!(one(text, 4), (1, 5), "the first line");
        assert_eq!(one(text, 5), (1, 6), "a newline is the end of its line");
        assert_eq!(one(text, 11), (2, 6), "the last line");
        assert_eq!(
            one(text, text.len()),
            (3, 1),
            "the end, after the last newline"
        );
        assert_eq!(one(text, 1000), (3, 1), "past the end: at the end");
        assert_eq!(one("", 0), (1, 1));
    }

    #[test]
    fn a_last_line_without_a_newline() {
        let text = "a = 1\nb = 2";
        assert_eq!(one(text, 10), (2, 5));
        assert_eq!(one(text, text.len()), (2, 6));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        // "é" is two bytes, "→" three, "🦀" four: each one column.
        let text = "# café → 🦀\nk = \"é\" x\n";
        assert_eq!(one(text, text.find('→').unwrap()), (1, 8));
        assert_eq!(one(text, text.find('🦀').unwrap()), (1, 10));
        assert_eq!(one(text, text.find('x').unwrap()), (2, 9));
        // Inside a character (toml never points there): that character is counted.
        assert_eq!(one(text, text.find('→').unwrap() + 1), (1, 9));
    }

    #[test]
    fn crlf_lines_end_at_the_newline() {
        // The carriage return is the last character of its line, as before.
        let text = "a = 1\r\nbb = 2\r\n";
        assert_eq!(one(text, 5), (1, 6));
        assert_eq!(one(text, 7), (2, 1));
        assert_eq!(one(text, 12), (2, 6));
    }

    #[test]
    fn many_offsets_in_one_pass_are_where_a_scan_for_each_puts_them() {
        let text = "x = 1\n\n# é\r\n[t]\r\n  y = \"→→\"\nlast";
        // Every offset, repeated ones too, in ascending order.
        let offsets: Vec<usize> = (0..=text.len() + 2).flat_map(|o| [o, o]).collect();
        let placed = place(text, &offsets);
        for (offset, position) in offsets.iter().zip(&placed) {
            if text.is_char_boundary((*offset).min(text.len())) {
                assert_eq!(*position, scanned(text, *offset), "offset {offset}");
            }
        }
    }

    #[test]
    fn positions_through_the_reader() {
        // Unknown keys, on CRLF lines after multi-byte characters, and on the last
        // line without a newline.
        let text = "# ünïcödé\r\nknown = 1\r\nodd = \"é\"\r\n  late = 2";
        let report = Report::new(text);
        let doc = document(text, &report).unwrap();
        let root = Table::new(&doc, "", &report);
        assert!(root.get("known").is_some());
        drop(root);
        let p = report.finish(Path::new("t.toml")).unwrap_err();
        assert_eq!(
            p.to_string(),
            "t.toml:3:1: odd: unknown key\nt.toml:4:3: late: unknown key"
        );
        assert_eq!((p.total, p.count()), (2, "2 problems".to_string()));
    }

    #[test]
    fn the_first_hundred_problems_are_kept_in_file_order_and_all_counted() {
        let text = "k\n".repeat(250);
        let report = Report::new(&text);
        // Reported last line first: the first of the file are kept all the same.
        for line in (0..250).rev() {
            report.at(&(2 * line..2 * line + 1), "k", format!("problem {line}"));
        }
        let p = report.finish(Path::new("t.toml")).unwrap_err();
        assert_eq!(p.list.len(), SHOWN);
        assert_eq!(p.total, 250);
        assert_eq!(p.count(), "250 problems");
        let shown = p.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), SHOWN + 1);
        assert_eq!(lines[0], "t.toml:1:1: k: problem 0");
        assert_eq!(lines[SHOWN - 1], "t.toml:100:1: k: problem 99");
        assert_eq!(lines[SHOWN], "t.toml: 150 more problems not shown");
    }

    #[test]
    fn one_problem_more_than_shown() {
        let text = "k\n".repeat(SHOWN + 1);
        let report = Report::new(&text);
        for line in 0..=SHOWN {
            report.at(&(2 * line..2 * line), "", "junk");
        }
        let p = report.finish(Path::new("t.toml")).unwrap_err();
        assert!(
            p.to_string()
                .ends_with("t.toml:100:1: junk\nt.toml: 1 more problem not shown"),
            "{p}"
        );
    }

    #[test]
    fn every_syntax_error_of_a_small_file_is_counted() {
        let text = "x\n".repeat(1000);
        let report = Report::new(&text);
        assert!(document(&text, &report).is_none());
        let p = report.finish(Path::new("t.toml")).unwrap_err();
        assert_eq!((p.list.len(), p.total), (SHOWN, 1000));
        assert!(!p.first_syntax_error_only);
        assert_eq!(
            p.list[99].to_owned(),
            Problem {
                line: 100,
                column: 2,
                key: String::new(),
                message: "TOML syntax: key with no value, expected `=`".into()
            }
        );
    }

    #[test]
    fn a_large_file_has_its_first_syntax_error_reported_and_says_so() {
        // Valid lines past the limit, then junk.
        let mut text = "# padding\n".repeat(RECOVER_BYTES / 10 + 1);
        text.push_str("x\ny\n");
        assert!(text.len() > RECOVER_BYTES);
        let report = Report::new(&text);
        assert!(document(&text, &report).is_none());
        let p = report.finish(Path::new("t.toml")).unwrap_err();
        assert_eq!((p.list.len(), p.total), (1, 1));
        assert!(p.first_syntax_error_only);
        assert_eq!(p.count(), "at least 1 problem");
        let line = RECOVER_BYTES / 10 + 2;
        assert_eq!(
            p.to_string(),
            format!(
                "t.toml:{line}:2: TOML syntax: key with no value, expected `=`\n\
                 t.toml: the file is over 256 KiB, so only the first TOML syntax error found is reported"
            )
        );
        // A valid large file reads whole.
        let text = "# padding\n".repeat(RECOVER_BYTES / 10 + 1) + "k = 1\n";
        let report = Report::new(&text);
        assert!(document(&text, &report).is_some_and(|d| d.len() == 1));
        assert!(report.is_empty());
    }
}
