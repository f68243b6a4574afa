//! ldirectord's way with a value: its unanchored patterns (the first run of digits,
//! of word characters, of lowercase letters), its yes/no, and how a value it takes is
//! turned into text for the TOML or reported. Used by the directive readers.

use std::sync::LazyLock;

use regex::bytes::Regex;

use super::Importing;

/// uvs's bounds (the schema's), past which a value ldirectord takes is reported.
pub(super) const MAX_INTERVAL: u64 = 86_400;
pub(super) const MAX_TIMEOUT: u64 = 3600;
pub(super) const MAX_FAILURES: u32 = 1000;
pub(super) const MAX_PERSISTENT: u64 = 2_678_400;

pub(super) fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid pattern")
}

pub(super) static VIRTUAL_V4: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^(\d+\.\d+\.\d+\.\d+):([0-9A-Za-z_-]+)"));
pub(super) static VIRTUAL_NAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^([0-9A-Za-z._+-]+):([0-9A-Za-z_-]+)"));
pub(super) static VIRTUAL_MARK: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^(\d+)"));
pub(super) static VIRTUAL_V6: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^\[([0-9A-Fa-f:]+)\]:([0-9A-Za-z_-]+)"));
/// `KEY = VALUE` as each of ldirectord's directive patterns has it: the key at the
/// start, blanks around `=`, the rest of the line the value.
pub(super) static DIRECTIVE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^([A-Za-z0-9_]+)\s*=\s*(.*)"));
pub(super) static QUOTED: LazyLock<Regex> = LazyLock::new(|| re(r#"(?-u)^"(.*)""#));
pub(super) static DIGITS: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)(\d+)"));
pub(super) static WORD: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)(\w+)"));
pub(super) static WORD_DASH: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)([\w-]+)"));
pub(super) static LOWERCASE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)([a-z]+)"));
pub(super) static NETMASK_V4: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\d+\.\d+\.\d+\.\d+$"));
pub(super) static NETMASK_V6: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^\d+$"));
pub(super) static VIRTUALHOST: LazyLock<Regex> = LazyLock::new(|| re(r#"(?-u)"?([^"]*)"?"#));

pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first capture of `pattern` in `value`, as ldirectord's `$1 =~ /(...)/`.
pub(super) fn first<'a>(pattern: &Regex, value: &'a [u8]) -> Option<&'a [u8]> {
    pattern
        .captures(value)
        .and_then(|c| c.get(1))
        .map(|m| m.as_bytes())
}

/// The first run of digits, as a number, if ldirectord would take it (`$1 && ...`:
/// not zero).
pub(super) fn positive(value: &[u8]) -> Option<Result<u64, ()>> {
    let digits = first(&DIGITS, value)?;
    match std::str::from_utf8(digits).ok()?.parse::<u64>() {
        Ok(0) => None,
        Ok(n) => Some(Ok(n)),
        // More digits than fit: ldirectord takes it; uvs cannot.
        Err(_) => Some(Err(())),
    }
}

/// The setting a number of seconds ldirectord took, within uvs's bound.
pub(super) fn bounded_seconds(
    key: &str,
    value: &[u8],
    max: u64,
    line: usize,
    imported: &mut Importing,
    refusal: &str,
) -> Option<u64> {
    match positive(value) {
        None => {
            imported.skip(line, refusal.to_string());
            None
        }
        Some(Ok(n)) if n <= max => Some(n),
        Some(_) => {
            imported.skip_with(line, || {
                format!(
                    "{key}={}: past uvs's limit of {max}; not taken",
                    lossy(first(&DIGITS, value).unwrap_or_default())
                )
            });
            None
        }
    }
}

/// A value ldirectord takes as it is, as text for the TOML.
pub(super) fn utf8(
    key: &str,
    value: &[u8],
    line: usize,
    imported: &mut Importing,
) -> Option<String> {
    match String::from_utf8(value.to_vec()) {
        Ok(s) => Some(s),
        Err(_) => {
            imported.skip(
                line,
                format!("{key}: the value holds bytes that are not UTF-8 (uvs's configuration is UTF-8 text); not taken"),
            );
            None
        }
    }
}

pub(super) fn yes_no(value: &[u8]) -> Option<bool> {
    match value {
        b"yes" => Some(true),
        b"no" => Some(false),
        _ => None,
    }
}

/// The regex crate's message in one line: its last (the first lines draw the pattern).
pub(super) fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A line no directive pattern of ldirectord's matches.
pub(super) fn not_a_directive(text: &[u8], line: usize, imported: &mut Importing) {
    imported.skip_with(line, || {
        format!("`{}': not a key=value directive", lossy(text).trim())
    });
}

/// What no uvs setting holds.
pub(super) fn no_counterpart(key: &str, line: usize, imported: &mut Importing) {
    imported.skip(line, format!("{key}: no uvs counterpart; not taken"));
}
