//! Reading a TOML document key by key with the position of every value, so that each
//! problem names its file, line and column, the key, what was expected and what was
//! found, and so that all problems of a file come out in one pass instead of one per
//! run. Unknown keys are problems too. Used by the schema (`schema`).

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    /// Where in the document: `service[2].server[0].weight`.
    pub key: String,
    pub message: String,
}

/// Everything wrong with one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems {
    pub file: PathBuf,
    pub list: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.list.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}:{}: ", self.file.display(), p.line, p.column)?;
            if !p.key.is_empty() {
                write!(f, "{}: ", p.key)?;
            }
            write!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// Collects problems against the text they were found in.
pub struct Report<'s> {
    text: &'s str,
    list: RefCell<Vec<Problem>>,
}

impl<'s> Report<'s> {
    pub fn new(text: &'s str) -> Report<'s> {
        Report {
            text,
            list: RefCell::new(Vec::new()),
        }
    }

    /// A problem at byte range `span` of the text.
    pub fn at(&self, span: &Range<usize>, key: &str, message: impl Into<String>) {
        let (line, column) = line_and_column(self.text, span.start);
        self.list.borrow_mut().push(Problem {
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.list.borrow().is_empty()
    }

    /// The problems, in the order of the file.
    pub fn finish(self, file: &Path) -> Result<(), Problems> {
        let mut list = self.list.into_inner();
        if list.is_empty() {
            return Ok(());
        }
        list.sort_by_key(|p| (p.line, p.column));
        Err(Problems {
            file: file.to_path_buf(),
            list,
        })
    }
}

/// 1-based line and column (in characters) of byte `offset`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
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
        let d = match self.value {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(Duration::from_secs),
            DeValue::String(s) => humantime::parse_duration(s).ok(),
            _ => None,
        };
        match d {
            Some(d) if range.contains(&d.as_secs()) => Some(d),
            _ => {
                self.wrong(&expected);
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

    #[test]
    fn positions_are_one_based_lines_and_columns() {
        let text = "a = 1\nbb = \"x\"\n";
        assert_eq!(line_and_column(text, 0), (1, 1));
        assert_eq!(line_and_column(text, 11), (2, 6));
    }
}
