//! keepalived's FILE_CHECK (keepalived/check/check_file.c, with the `track_file` it
//! names, keepalived/trackers/track_file.c): a number in a file sets the real server's
//! health and weight. keepalived watches the file with inotify; uvs reads it at each
//! check, so a change takes effect within an interval.
//!
//! As `process_track_file` reads it: the file's first 127 bytes as C's `strtol` with
//! base 0 reads them (leading blanks, a sign, then decimal, `0x` hex or `0` octal, up to
//! the first other character; no digits is 0); a missing, unreadable or empty file is
//! 0; a number outside -2^31 to 2^31 is ignored and the last one kept.
//!
//! As `update_track_file_status` and `process_update_checker_track_file_status` use it:
//! with `weight` 0, a number other than 0 is down (with `reverse`, 0 is down) and the
//! weight is left alone; otherwise the number times `weight` (negated with `reverse`,
//! held within i32) is down at -2^31 or less, and is otherwise added to the server's
//! configured weight, the sum held within 0 to 2^31 - 1 (`real_weight`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::Check;

/// The most of the file read (keepalived's `char buf[128]`, less its terminator).
const READ: usize = 127;

/// The file, and what its number is multiplied by.
#[derive(Debug)]
pub struct File {
    path: PathBuf,
    /// track_file's `weight`, 1 without one.
    weight: i64,
    /// -1 with `reverse`, else 1.
    multiplier: i64,
    /// The last number read that was in range, for a read that is not.
    last: AtomicI64,
    /// A read of the file is still running (one that hangs, on a stale mount, outlives
    /// its probe): no other is started while it does, so a check holds at most one
    /// blocking thread.
    reading: Arc<AtomicBool>,
}

impl File {
    /// # Errors
    /// [`BuildError::NoPath`] without a `path`.
    pub fn build(settings: &Check) -> Result<File, BuildError> {
        Ok(File {
            path: settings.path.clone().ok_or(BuildError::NoPath)?,
            weight: settings.file_weight.map_or(1, i64::from),
            multiplier: if settings.reverse == Some(true) {
                -1
            } else {
                1
            },
            last: AtomicI64::new(0),
            reading: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The file's number now (`process_track_file`), or why it cannot be read now.
    async fn status(&self) -> Result<i64, Failure> {
        if self.reading.swap(true, Ordering::AcqRel) {
            return Err(Failure::Io(format!(
                "the last read of {} has not returned",
                self.path.display()
            )));
        }
        let read = head(self.path.clone(), Arc::clone(&self.reading)).await;
        let status = match read {
            Ok(buf) if !buf.is_empty() => match strtol(&buf) {
                Some(n) if (i64::from(i32::MIN)..=i64::from(i32::MAX) + 1).contains(&n) => n,
                _ => return Ok(self.last.load(Ordering::Relaxed)),
            },
            _ => 0,
        };
        self.last.store(status, Ordering::Relaxed);
        Ok(status)
    }
}

impl Probe for File {
    async fn run(&self, at: &Endpoint) -> Outcome {
        let status = self.status().await?;
        let file = self.path.display();
        if self.weight == 0 {
            return if (status != 0) != (self.multiplier == -1) {
                Err(Failure::Garbled(format!("file {file} holds {status}")))
            } else {
                Ok(None)
            };
        }
        let product = status
            .saturating_mul(self.weight)
            .saturating_mul(self.multiplier);
        let product = product.clamp(i64::from(i32::MIN), i64::from(i32::MAX));
        if product <= i64::from(i32::MIN) {
            return Err(Failure::Garbled(format!(
                "file {file} holds {status}, times weight {} is {product}",
                self.weight * self.multiplier
            )));
        }
        let weight = (i64::from(at.weight) + product).clamp(0, i64::from(i32::MAX));
        Ok(Some(weight as u32))
    }
}

/// The first [`READ`] bytes of the file at `path`, opened as keepalived's track_file.c
/// opens it, `O_NONBLOCK` (a FIFO without a writer reads as empty instead of waiting
/// for one), and read on a blocking thread, so that a read that hangs (a stale network
/// mount) holds that thread, never the daemon's; `reading` is cleared when it ends.
async fn head(path: PathBuf, reading: Arc<AtomicBool>) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        // Cleared when the read ends, even one its probe has given up waiting for.
        let _done = Cleared(reading);
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)?;
        let mut buf = Vec::with_capacity(READ);
        file.take(READ as u64).read_to_end(&mut buf)?;
        Ok(buf)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// Clears its flag when dropped.
struct Cleared(Arc<AtomicBool>);

impl Drop for Cleared {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// C's `strtol(text, NULL, 0)`, None where it would overflow a long.
fn strtol(text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text)
        .unwrap_or_else(|e| std::str::from_utf8(&text[..e.valid_up_to()]).unwrap_or(""));
    let text = text.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, text) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = text.to_ascii_lowercase();
    let (radix, digits) =
        if lower.starts_with("0x") && lower[2..].starts_with(|c: char| c.is_ascii_hexdigit()) {
            (16, &text[2..])
        } else if lower.starts_with('0') {
            (8, text)
        } else {
            (10, text)
        };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    if end == 0 {
        return Some(0);
    }
    let magnitude = i128::from_str_radix(&digits[..end], radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build_and_probe, everything};
    use super::*;
    use crate::config::CheckKind;
    use crate::table::Protocol;

    #[tokio::test]
    async fn no_read_starts_while_the_last_one_has_not_returned() {
        // As a read hung on a stale mount leaves it: each probe would otherwise start
        // one more blocking thread, until the pool's 512 held every check's reads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weight");
        std::fs::write(&path, "3\n").unwrap();
        let settings = Check {
            kind: Some(CheckKind::File),
            path: Some(path.clone()),
            ..Check::default()
        };
        let file = File::build(&settings).unwrap();
        let at = super::super::testing::endpoint("127.0.0.1:80".parse().unwrap(), Protocol::Tcp);
        file.reading.store(true, Ordering::Release);
        assert_eq!(
            file.run(&at).await,
            Err(Failure::Io(format!(
                "the last read of {} has not returned",
                path.display()
            )))
        );
        file.reading.store(false, Ordering::Release);
        assert_eq!(file.run(&at).await, Ok(Some(4)), "its weight 1, and 3");
        assert!(
            !file.reading.load(Ordering::Acquire),
            "cleared when the read ended"
        );
    }

    #[test]
    fn a_fifo_reads_as_empty_at_once_instead_of_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("weight");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let check = Check {
            kind: Some(CheckKind::File),
            path: Some(fifo),
            file_weight: Some(2),
            ..Check::default()
        };
        // On a thread of its own, so that a probe that blocks (as one did, holding the
        // daemon's only runtime thread in open(2)) fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let at: std::net::SocketAddr = "127.0.0.1:80".parse().unwrap();
            let _ = tx.send(runtime.block_on(build_and_probe(at, Protocol::Tcp, &check)));
        });
        let outcome = rx
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("the probe of a FIFO came back");
        // Empty is 0: the server's own weight (1), nothing added.
        assert_eq!(outcome, Ok(Some(1)));
    }

    #[test]
    fn keeps_only_its_own_settings() {
        let file = File::build(&everything(CheckKind::File, None)).unwrap();
        assert_eq!(
            (file.path, file.weight, file.multiplier),
            (PathBuf::from("/run/weight"), -3, -1)
        );
    }

    #[test]
    fn a_file_check_without_a_path_cannot_be_built() {
        let settings = Check {
            kind: Some(CheckKind::File),
            ..Check::default()
        };
        assert_eq!(
            super::super::build(&settings, None)
                .unwrap_err()
                .to_string(),
            "a file check needs a path"
        );
    }

    #[test]
    fn numbers_are_read_as_strtol_reads_them() {
        for (text, n) in [
            ("12\n", Some(12)),
            ("  -7 apples", Some(-7)),
            ("+0x1F", Some(31)),
            ("010", Some(8)),
            ("0x", Some(0)),
            ("junk", Some(0)),
            ("", Some(0)),
            ("99999999999999999999", None),
        ] {
            assert_eq!(strtol(text.as_bytes()), n, "{text:?}");
        }
    }

    /// The server of `build_and_probe` has weight 1.
    async fn probe_with(text: Option<&str>, weight: i32, reverse: bool) -> Outcome {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w");
        if let Some(text) = text {
            std::fs::write(&path, text).unwrap();
        }
        let check = Check {
            kind: Some(CheckKind::File),
            path: Some(path),
            file_weight: Some(weight),
            reverse: Some(reverse),
            ..Check::default()
        };
        let unused = "127.0.0.1:1".parse().unwrap();
        build_and_probe(unused, Protocol::Tcp, &check).await
    }

    #[tokio::test]
    async fn weight_zero_is_down_on_any_number_but_zero() {
        assert_eq!(probe_with(Some("0\n"), 0, false).await, Ok(None));
        assert_eq!(probe_with(None, 0, false).await, Ok(None), "no file is 0");
        let Err(failure) = probe_with(Some("3\n"), 0, false).await else {
            panic!("3 with weight 0 is down");
        };
        assert!(failure.to_string().ends_with("/w holds 3"), "{failure}");
        assert!(probe_with(Some("0\n"), 0, true).await.is_err(), "reverse");
        assert_eq!(probe_with(Some("5"), 0, true).await, Ok(None), "reverse");
    }

    #[tokio::test]
    async fn the_number_times_weight_is_added_to_the_servers_weight() {
        assert_eq!(probe_with(Some("10"), 2, false).await, Ok(Some(21)));
        assert_eq!(
            probe_with(Some("10"), 2, true).await,
            Ok(Some(0)),
            "held at 0"
        );
        assert_eq!(probe_with(Some("-1"), 1, true).await, Ok(Some(2)));
        let Err(failure) = probe_with(Some("-2147483648"), 1, false).await else {
            panic!("-2^31 is down");
        };
        assert!(
            failure
                .to_string()
                .ends_with("/w holds -2147483648, times weight 1 is -2147483648"),
            "{failure}"
        );
    }
}
