//! Which characters of outside text are never shown as themselves: text a real server
//! or a command put into a check's failure (a hostile SMTP banner), a file's path or
//! error. Control characters (Cc) could move a terminal's cursor or retitle its window;
//! format characters (Cf: bidi overrides and isolates such as U+202E, zero-width ones
//! such as U+200B, U+FEFF) and the line and paragraph separators (U+2028, U+2029) could
//! reorder or hide what is shown around them, on a terminal or in a browser. One rule
//! for every place that shows such text: [`Printable`] for terminals and logs
//! (`health::check`'s failures, hence `uvs status`), and the status page's escaper
//! (`exporter::page::escape`), which shows them as U+FFFD.

use std::fmt;

/// Whether `c` must not be shown as itself: a control character (Cc, newline and tab
/// too), a format character (Cf, [`is_format`]), or U+2028/U+2029.
pub fn is_hidden(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` is of Unicode's general category Cf (format), as of Unicode 16.0
/// (DerivedGeneralCategory.txt): invisible characters that change how the text around
/// them is laid out or joined.
pub fn is_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

/// `text` as it may be shown on a terminal or in a log line: every [`is_hidden`]
/// character escaped as Rust writes it (`\u{202e}`, `\u{1b}`, `\r`, `\n`), so it is
/// visible and does nothing; everything else as itself.
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.0.chars() {
            if is_hidden(c) {
                write!(f, "{}", c.escape_default())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_and_format_characters_are_escaped_the_rest_is_kept() {
        let hostile =
            "220 ok\u{202e}gnp.exe\u{200b}\u{feff}\u{2066}x\u{2069}\u{1b}[2J\r\n\u{2028}é 日本";
        assert_eq!(
            Printable(hostile).to_string(),
            "220 ok\\u{202e}gnp.exe\\u{200b}\\u{feff}\\u{2066}x\\u{2069}\\u{1b}[2J\\r\\n\\u{2028}é 日本"
        );
    }

    #[test]
    fn the_format_category_is_covered_and_letters_are_not() {
        for c in [
            '\u{ad}',
            '\u{61c}',
            '\u{200e}',
            '\u{200f}',
            '\u{202a}',
            '\u{2060}',
            '\u{2064}',
            '\u{206f}',
            '\u{fff9}',
            '\u{e0001}',
            '\u{e007f}',
        ] {
            assert!(is_format(c), "{c:?}");
            assert!(is_hidden(c), "{c:?}");
        }
        for c in ['a', 'é', 'א', 'ع', '\u{2065}', '\u{2070}', '\u{fffd}', ' '] {
            assert!(!is_hidden(c), "{c:?}");
        }
    }
}
