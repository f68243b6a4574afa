//! A response body held as a list of fixed-size chunks. The text writer (`text`) fills a
//! [`BodyWriter`]; the HTTP endpoint (`http`) shares the finished [`Body`] by `Arc` among
//! every client of one scrape and writes its chunks as they are. Growing a chunk list
//! never reallocates what is already written, so a body of hundreds of megabytes costs
//! its own size and one partly filled chunk, never a second copy.

use std::fmt;

/// Bytes per chunk: large enough for few writes per response, small enough that the
/// unfilled tail of the last chunk does not matter.
pub const CHUNK: usize = 64 * 1024;

/// A finished body: its chunks, in order. Every chunk but the last is full.
#[derive(Debug, Default)]
pub struct Body {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl Body {
    /// Length in bytes (the Content-Length).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, to be written one after the other.
    pub fn chunks(&self) -> &[Vec<u8>] {
        &self.chunks
    }

    /// The whole body as one vector (a copy: for tests and small bodies only).
    pub fn to_vec(&self) -> Vec<u8> {
        self.chunks.concat()
    }
}

/// Appends bytes to a growing [`Body`], chunk by chunk.
#[derive(Debug, Default)]
pub struct BodyWriter {
    done: Vec<Vec<u8>>,
    current: Vec<u8>,
    len: usize,
}

impl BodyWriter {
    pub fn new() -> BodyWriter {
        BodyWriter::default()
    }

    /// Appends `bytes`, filling the current chunk before starting the next.
    pub fn push(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len();
        loop {
            if self.current.capacity() == 0 {
                self.current = Vec::with_capacity(CHUNK);
            }
            let room = CHUNK - self.current.len();
            if bytes.len() <= room {
                self.current.extend_from_slice(bytes);
                return;
            }
            let (now, later) = bytes.split_at(room);
            self.current.extend_from_slice(now);
            self.done.push(std::mem::take(&mut self.current));
            bytes = later;
        }
    }

    /// Appends an integer in decimal, without going through `fmt`.
    pub fn push_u64(&mut self, value: u64) {
        let mut digits = [0u8; 20];
        self.push(decimal(value, &mut digits).as_bytes());
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The body as written.
    pub fn finish(mut self) -> Body {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        Body {
            chunks: self.done,
            len: self.len,
        }
    }
}

/// `value` in decimal, written into `digits` (20 bytes hold every u64): the hot path of
/// the text writer, where `fmt` costs more than the digits.
pub(crate) fn decimal(mut value: u64, digits: &mut [u8; 20]) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        // `value % 10` is below 10, so the cast loses nothing.
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&digits[at..]).unwrap_or("0")
}

impl fmt::Write for BodyWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_full_but_the_last_and_hold_the_bytes_in_order() {
        let mut w = BodyWriter::new();
        let piece: Vec<u8> = (0..=255u8).cycle().take(CHUNK / 3 + 7).collect();
        let mut expected = Vec::new();
        for _ in 0..10 {
            w.push(&piece);
            expected.extend_from_slice(&piece);
        }
        w.push_u64(0);
        w.push_u64(u64::MAX);
        expected.extend_from_slice(b"018446744073709551615");
        let body = w.finish();
        assert_eq!(body.len(), expected.len());
        assert_eq!(body.to_vec(), expected);
        let (last, full) = body.chunks().split_last().unwrap();
        assert!(full.iter().all(|c| c.len() == CHUNK));
        assert!(!last.is_empty() && last.len() <= CHUNK);
    }

    #[test]
    fn an_empty_body_has_no_chunks() {
        let body = BodyWriter::new().finish();
        assert!(body.is_empty());
        assert!(body.chunks().is_empty());
    }
}
