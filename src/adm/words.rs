//! The words of one ipvsadm command line as uvsadm is given them: bytes (from argv, or a
//! line of `-R` input), held as text for the parser, with the bytes of every word that is
//! not UTF-8 kept beside it, so that an option whose value ipvsadm passes on as bytes
//! (`--mcast-interface`) sees exactly what was given instead of U+FFFD. Made by
//! `bin/uvsadm.rs` and `restore`; read by `cmdline` and `session`.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};

/// A command line's words, `[0]` the program name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Words {
    /// Each word as text; a word that is not UTF-8 has U+FFFD for its bad bytes.
    text: Vec<String>,
    /// The bytes of each word that is not UTF-8 (None: `text` is the word).
    raw: Vec<Option<Vec<u8>>>,
}

impl Words {
    /// Words given as bytes.
    pub fn from_bytes(words: impl IntoIterator<Item = Vec<u8>>) -> Words {
        let mut out = Words::default();
        for bytes in words {
            out.push_bytes(bytes);
        }
        out
    }

    /// The program's own arguments (`std::env::args_os`).
    pub fn from_os(words: impl IntoIterator<Item = OsString>) -> Words {
        Words::from_bytes(words.into_iter().map(OsStringExt::into_vec))
    }

    /// Adds a word given as bytes.
    pub fn push_bytes(&mut self, bytes: Vec<u8>) {
        match String::from_utf8(bytes) {
            Ok(text) => {
                self.text.push(text);
                self.raw.push(None);
            }
            Err(e) => {
                self.text
                    .push(String::from_utf8_lossy(e.as_bytes()).into_owned());
                self.raw.push(Some(e.into_bytes()));
            }
        }
    }

    /// Every word as text.
    pub fn text(&self) -> &[String] {
        &self.text
    }

    /// The bytes of `value`, which is word `index`'s text or its end (an option's value
    /// after `--name=`, whose ASCII prefix is the same in text and bytes): `value`'s own
    /// bytes when the word is UTF-8.
    pub fn bytes_of<'a>(&'a self, index: usize, value: &'a str) -> &'a [u8] {
        match (self.raw.get(index), self.text.get(index)) {
            (Some(Some(raw)), Some(text)) if text.ends_with(value) => {
                let prefix = text.len() - value.len();
                raw.get(prefix..).unwrap_or(value.as_bytes())
            }
            _ => value.as_bytes(),
        }
    }

    /// Word `index` as the system gave it.
    pub fn os(&self, index: usize) -> Option<OsString> {
        match self.raw.get(index)? {
            Some(raw) => Some(std::ffi::OsStr::from_bytes(raw).to_os_string()),
            None => self.text.get(index).map(OsString::from),
        }
    }

    /// Takes word `index` out.
    pub fn remove(&mut self, index: usize) {
        if index < self.text.len() {
            self.text.remove(index);
            self.raw.remove(index);
        }
    }

    pub fn len(&self) -> usize {
        self.text.len()
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

impl From<Vec<String>> for Words {
    fn from(text: Vec<String>) -> Words {
        let raw = vec![None; text.len()];
        Words { text, raw }
    }
}

impl From<&[String]> for Words {
    fn from(text: &[String]) -> Words {
        Words::from(text.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_that_is_not_utf8_keeps_its_bytes() {
        let w = Words::from_bytes([
            b"uvsadm".to_vec(),
            b"--mcast-interface=e\xfft".to_vec(),
            b"lo".to_vec(),
        ]);
        assert_eq!(w.text()[1], "--mcast-interface=e\u{fffd}t");
        assert_eq!(w.bytes_of(1, "e\u{fffd}t"), b"e\xfft");
        assert_eq!(w.bytes_of(2, "lo"), b"lo");
        assert_eq!(
            w.os(1),
            Some(OsString::from_vec(b"--mcast-interface=e\xfft".to_vec()))
        );
        let mut w = w;
        w.remove(1);
        assert_eq!(w.text(), ["uvsadm", "lo"]);
        assert_eq!(w.bytes_of(1, "lo"), b"lo");
    }
}
