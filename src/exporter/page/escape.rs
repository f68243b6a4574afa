//! HTML escaping for the status page (`page::html`): every text that comes from outside
//! the daemon's own code (a check's error, which may quote a hostile real server's
//! answer; a configuration file's path or its error) goes through [`Escaped`], bounded in
//! length, so that it is shown as text and can neither run nor load anything.

use std::fmt;

/// The most characters of one outside text the page shows; the rest is cut, with `…`.
pub const MAX_TEXT: usize = 600;

/// `text` as HTML text or attribute value: `& < > " '` as character references,
/// control characters (but newline and tab), bidi, zero-width and other format
/// characters (`printable::is_hidden`) as `�`, at most [`MAX_TEXT`] characters.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, c) in self.0.chars().enumerate() {
            if n == MAX_TEXT {
                return f.write_str("…");
            }
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                '\n' | '\t' => f.write_fmt(format_args!("{c}"))?,
                c if crate::printable::is_hidden(c) => f.write_str("\u{fffd}")?,
                c => f.write_fmt(format_args!("{c}"))?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_become_text() {
        let hostile = "554 <script>alert('x')</script> & \"<img src=x onerror=y>\"\u{7}";
        assert_eq!(
            Escaped(hostile).to_string(),
            "554 &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; \
             &quot;&lt;img src=x onerror=y&gt;&quot;\u{fffd}"
        );
    }

    #[test]
    fn bidi_and_zero_width_characters_become_the_replacement_character() {
        let hostile = "554 abc\u{202e}lmth.exe\u{200b}\u{2066}\u{feff}\u{61c}\u{2028}x\ny";
        assert_eq!(
            Escaped(hostile).to_string(),
            "554 abc\u{fffd}lmth.exe\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}x\ny"
        );
    }

    #[test]
    fn a_long_text_is_cut() {
        let long = "é".repeat(MAX_TEXT + 50);
        let shown = Escaped(&long).to_string();
        assert_eq!(shown.chars().count(), MAX_TEXT + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(Escaped("short").to_string(), "short");
    }
}
