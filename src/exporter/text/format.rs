//! The four line shapes of the Prometheus text format 0.0.4 (`# HELP`, `# TYPE`, a
//! sample with labels, one without) and their escaping and numbers, written into a
//! [`BodyWriter`]. The family walks of `text` are their only caller.

use std::fmt;
use std::net::IpAddr;

use super::super::body::{BodyWriter, decimal};

/// The Prometheus type of a family.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A sample's value: integers as integers, the rest as Prometheus writes floats.
#[derive(Debug, Clone, Copy)]
pub(super) enum Number {
    Int(u64),
    Float(f64),
}

/// One label value. Only text can hold a character the format escapes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Text(&'a str),
    Ip(IpAddr),
    Int(u64),
    /// A firewall mark as node_exporter reads it from /proc: 8 hex digits.
    Mark(u32),
}

/// A sample's labels, in order, on the stack (a server's six and one more at most).
#[derive(Debug, Clone, Copy)]
pub(super) struct Labels<'a> {
    pairs: [(&'static str, Value<'a>); 8],
    len: usize,
}

impl<'a> Labels<'a> {
    pub(super) const NONE: Labels<'static> = Labels {
        pairs: [("", Value::Text("")); 8],
        len: 0,
    };

    /// These labels and `key="value"` after them.
    pub(super) fn with(mut self, key: &'static str, value: Value<'a>) -> Labels<'a> {
        // The sets built here are fixed and fit; a longer one would be a bug here.
        debug_assert!(self.len < self.pairs.len());
        if let Some(slot) = self.pairs.get_mut(self.len) {
            *slot = (key, value);
            self.len += 1;
        }
        self
    }

    fn pairs(&self) -> &[(&'static str, Value<'a>)] {
        &self.pairs[..self.len]
    }
}

/// A family's `# HELP` and `# TYPE` lines, written before its first sample, and the
/// blank line after its last: a family without samples leaves no trace.
pub(super) struct Header<'n> {
    name: &'n str,
    help: &'n str,
    kind: Kind,
    open: bool,
}

impl<'n> Header<'n> {
    pub(super) fn new(name: &'n str, help: &'n str, kind: Kind) -> Header<'n> {
        Header {
            name,
            help,
            kind,
            open: false,
        }
    }

    pub(super) fn open(&mut self, out: &mut BodyWriter) {
        if self.open {
            return;
        }
        self.open = true;
        out.push(b"# HELP ");
        out.push(self.name.as_bytes());
        out.push(b" ");
        // HELP text escapes backslash and newline (not quotes).
        let _ = escape(out, self.help, false);
        out.push(b"\n# TYPE ");
        out.push(self.name.as_bytes());
        out.push(b" ");
        out.push(self.kind.name().as_bytes());
        out.push(b"\n");
    }

    pub(super) fn close(self, out: &mut BodyWriter) {
        if self.open {
            out.push(b"\n");
        }
    }
}

/// One family of plain samples (a counter or a gauge) under one header.
pub(super) fn family<'a>(
    out: &mut BodyWriter,
    name: &str,
    help: &str,
    kind: Kind,
    samples: impl IntoIterator<Item = (Labels<'a>, Number)>,
) {
    let mut header = Header::new(name, help, kind);
    for (labels, value) in samples {
        header.open(out);
        out.push(name.as_bytes());
        if labels.len > 0 {
            out.push(b"{");
            write_pairs(out, &labels);
            out.push(b"}");
        }
        out.push(b" ");
        write_number(out, value);
        out.push(b"\n");
    }
    header.close(out);
}

/// `key="value",...` without the braces.
pub(super) fn write_pairs<W: fmt::Write>(out: &mut W, labels: &Labels<'_>) {
    let mut digits = [0u8; 20];
    for (i, (key, value)) in labels.pairs().iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        // Writing to a BodyWriter or a String cannot fail.
        let _ = out.write_str(sep);
        let _ = out.write_str(key);
        let _ = out.write_str("=\"");
        let _ = match value {
            Value::Text(text) => escape(out, text, true),
            // Addresses, numbers and marks hold no character the format escapes.
            Value::Ip(addr) => write!(out, "{addr}"),
            Value::Int(n) => out.write_str(decimal(*n, &mut digits)),
            Value::Mark(mark) => write!(out, "{mark:08X}"),
        };
        let _ = out.write_str("\"");
    }
}

/// `text` with backslash, newline and (in label values) double quote escaped, as the
/// format requires.
pub(super) fn escape<W: fmt::Write>(out: &mut W, text: &str, quote: bool) -> fmt::Result {
    let special = |c: char| c == '\\' || c == '\n' || (quote && c == '"');
    let mut rest = text;
    while let Some(at) = rest.find(special) {
        out.write_str(&rest[..at])?;
        let c = rest[at..].chars().next().unwrap_or('\\');
        out.write_str(match c {
            '\n' => "\\n",
            '"' => "\\\"",
            _ => "\\\\",
        })?;
        rest = &rest[at + c.len_utf8()..];
    }
    out.write_str(rest)
}

pub(super) fn write_number(out: &mut BodyWriter, value: Number) {
    match value {
        Number::Int(n) => out.push_u64(n),
        // Writing to a BodyWriter cannot fail.
        Number::Float(v) => {
            let _ = write_float(out, v);
        }
    }
}

/// A float as Prometheus writes it: `+Inf`, `-Inf`, `NaN`, else the shortest decimal
/// that reads back as the same float (Rust never writes an exponent here; Go reads
/// either).
pub(super) fn write_float<W: fmt::Write>(out: &mut W, v: f64) -> fmt::Result {
    if v.is_nan() {
        out.write_str("NaN")
    } else if v == f64::INFINITY {
        out.write_str("+Inf")
    } else if v == f64::NEG_INFINITY {
        out.write_str("-Inf")
    } else {
        write!(out, "{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_numbers_are_as_the_format_requires() {
        let mut s = String::new();
        escape(&mut s, "a\\b\"c\nd é", true).unwrap();
        assert_eq!(s, "a\\\\b\\\"c\\nd é");
        s.clear();
        escape(&mut s, "help \"quoted\" \\ \n", false).unwrap();
        assert_eq!(s, "help \"quoted\" \\\\ \\n");
        let float = |v: f64| {
            let mut s = String::new();
            write_float(&mut s, v).unwrap();
            s
        };
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(0.00025), "0.00025");
        assert_eq!(float(5.0), "5");
        assert_eq!(float(0.0), "0");
    }
}
