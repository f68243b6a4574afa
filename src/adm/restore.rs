//! Splits `ipvsadm -R` input into command lines exactly as ipvsadm's config_stream does:
//! words are separated by blanks, a line ends at a newline, every word "ipvsadm" is
//! dropped (so `ipvsadm -A ...` lines work), a word is at most 4096 bytes, and there are
//! no comments (a "#" is a word like any other, and ipvsadm rejects it). A line that ends
//! in blanks at the very end of input without a newline is lost, as in ipvsadm.

use std::io::BufRead;

const MAX_WORD: usize = 4096;

/// The words of one command line, without argv[0], as bytes (ipvsadm's are C strings;
/// `words::Words` keeps the bytes of a word that is not UTF-8).
pub type Line = Vec<Vec<u8>>;

pub struct RestoreReader<R> {
    input: R,
    /// Words this reader drops wherever they appear (the program's own names).
    dropped: Vec<String>,
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl<R: BufRead> RestoreReader<R> {
    /// `dropped`: words to ignore, ipvsadm drops "ipvsadm"; uvsadm drops "uvsadm" too.
    pub fn new(input: R, dropped: &[&str]) -> RestoreReader<R> {
        RestoreReader {
            input,
            dropped: dropped.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn peek(&mut self) -> Option<u8> {
        match self.input.fill_buf() {
            Ok(buf) => buf.first().copied(),
            Err(_) => None,
        }
    }

    /// The next line: Some(words) (possibly empty), or None at the end of input.
    pub fn next_line(&mut self) -> Option<Line> {
        let mut words: Line = Vec::new();
        while let Some(first) = self.peek() {
            if is_blank(first) {
                // The word conversion fails on a blank: skip blanks, a newline ends the
                // line, the end of input loses it.
                loop {
                    match self.peek() {
                        None => return None,
                        Some(b'\n') => {
                            self.input.consume(1);
                            return Some(words);
                        }
                        Some(b) if is_blank(b) => self.input.consume(1),
                        Some(_) => break,
                    }
                }
                continue;
            }
            let mut word = Vec::new();
            while word.len() < MAX_WORD {
                match self.peek() {
                    Some(b) if !is_blank(b) => {
                        word.push(b);
                        self.input.consume(1);
                    }
                    _ => break,
                }
            }
            let separator = self.peek().filter(|b| is_blank(*b));
            if separator.is_some() {
                self.input.consume(1);
            }
            if !self.dropped.iter().any(|d| d.as_bytes() == word) {
                words.push(word);
            }
            if separator == Some(b'\n') {
                return Some(words);
            }
        }
        (!words.is_empty()).then_some(words)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &str) -> Vec<Line> {
        let mut r = RestoreReader::new(input.as_bytes(), &["ipvsadm"]);
        let mut out = Vec::new();
        while let Some(l) = r.next_line() {
            out.push(l);
        }
        out
    }

    fn words(s: &[&str]) -> Line {
        s.iter().map(|w| w.as_bytes().to_vec()).collect()
    }

    #[test]
    fn splits_lines_and_drops_the_program_name() {
        assert_eq!(
            lines("-A -t 1.2.3.4:80 -s rr\nipvsadm -a -t 1.2.3.4:80 -r 5.6.7.8\n"),
            vec![
                words(&["-A", "-t", "1.2.3.4:80", "-s", "rr"]),
                words(&["-a", "-t", "1.2.3.4:80", "-r", "5.6.7.8"])
            ]
        );
    }

    #[test]
    fn blank_lines_and_spacing() {
        assert_eq!(
            lines("\n  -C  \n\t\n-Z"),
            vec![words(&[]), words(&["-C"]), words(&[]), words(&["-Z"])]
        );
    }

    #[test]
    fn a_last_line_ending_in_blanks_without_newline_is_lost() {
        assert_eq!(lines("-C\n-Z  "), vec![words(&["-C"])]);
        assert_eq!(lines("-C\n-Z "), vec![words(&["-C"]), words(&["-Z"])]);
    }

    #[test]
    fn words_are_bytes() {
        let mut r = RestoreReader::new(&b"--mcast-interface e\xfft\0x\n"[..], &["ipvsadm"]);
        assert_eq!(
            r.next_line(),
            Some(vec![b"--mcast-interface".to_vec(), b"e\xfft\0x".to_vec()])
        );
    }

    #[test]
    fn hash_is_a_word() {
        assert_eq!(lines("# comment\n"), vec![words(&["#", "comment"])]);
    }
}
