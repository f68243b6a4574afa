//! Reading configuration-like files without trusting what the path names: the TOML
//! configuration (`uvs check`, `uvs run -c`, reloads) and the files `uvs import` reads.
//! A path replaced by a FIFO must not hang the reader waiting for a writer, a device
//! must not feed it forever, and a huge file must not be swallowed whole: only regular
//! files are read, opened without blocking, and at most [`MAX_BYTES`]. Also the cheap
//! [`Stamp`] of a file that autoreload compares every second instead of reading it.

use std::fmt;
use std::fs::{Metadata, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::LoadError;

/// The largest configuration file read, in bytes: 16 MiB. A configuration with ten
/// thousand services and their servers is a few megabytes, so this refuses only what
/// is not a configuration (a log, an image, a file that keeps growing) before it is
/// held in memory and parsed; and toml holds up to 80 bytes per byte of a file while it
/// parses it (1.2 GB at this limit, where 64 MiB took 5 GB).
pub const MAX_BYTES: u64 = 16 << 20;

/// What a path names when it is not a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    CharDevice,
    BlockDevice,
    Socket,
    Other,
}

impl FileKind {
    /// The kind of `metadata`'s file, or None for a regular file.
    fn of(metadata: &Metadata) -> Option<FileKind> {
        let t = metadata.file_type();
        Some(if t.is_file() {
            return None;
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else if t.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Other
        })
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Socket => "a socket",
            FileKind::Other => "not a file",
        })
    }
}

/// What identifies a file's state without reading it: a write changes the size or the
/// modification time (kept to the nanosecond), any change the status-change time, which
/// no one can set back; an editor's rename gives another inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    /// Seconds and nanoseconds since the epoch.
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of the file `metadata` describes.
    pub fn of(metadata: &Metadata) -> Stamp {
        Stamp {
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        }
    }

    /// The stamp of what `path` names now (following symbolic links); a stat, no open.
    ///
    /// # Errors
    /// The stat's: the path is missing, or not reachable.
    pub fn at(path: &Path) -> std::io::Result<Stamp> {
        std::fs::metadata(path).map(|m| Stamp::of(&m))
    }
}

/// A file's contents as read, and the file's stamp once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub text: String,
    pub stamp: Stamp,
}

impl Text {
    /// A hash of the contents, to tell a rewrite with the same contents (a `touch`) from
    /// a change. Stable within one process.
    pub fn digest(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.text.hash(&mut h);
        h.finish()
    }
}

/// Reads the regular file at `path`, as UTF-8 text of at most [`MAX_BYTES`].
///
/// # Errors
/// [`LoadError::NotRegular`] for a FIFO, directory, device or socket (refused before
/// any read, without waiting for a FIFO's writer); [`LoadError::TooLarge`] for a file
/// over the limit, or that grows past it while read; [`LoadError::NotText`] for bytes
/// that are not UTF-8; [`LoadError::Read`] when it cannot be opened or read.
pub fn read(path: &Path) -> Result<Text, LoadError> {
    read_at_most(path, MAX_BYTES)
}

/// As [`read`], the bytes as they are, for readers of formats that are not UTF-8 text
/// (ldirectord.cf: a comment may be in GBK or Latin-1); every error but
/// [`LoadError::NotText`].
pub fn read_bytes(path: &Path) -> Result<(Vec<u8>, Stamp), LoadError> {
    read_bytes_at_most(path, MAX_BYTES)
}

fn read_at_most(path: &Path, limit: u64) -> Result<Text, LoadError> {
    let (bytes, stamp) = read_bytes_at_most(path, limit)?;
    let text = String::from_utf8(bytes).map_err(|e| LoadError::NotText {
        path: path.to_path_buf(),
        offset: e.utf8_error().valid_up_to(),
    })?;
    Ok(Text { text, stamp })
}

fn read_bytes_at_most(path: &Path, limit: u64) -> Result<(Vec<u8>, Stamp), LoadError> {
    let failed = |error| LoadError::Read {
        path: path.to_path_buf(),
        error,
    };
    // Refused before opening where possible: opening a device can have effects.
    refuse_special(path, &std::fs::metadata(path).map_err(failed)?)?;
    // O_NONBLOCK: should the path become a FIFO meanwhile, opening it does not wait for
    // a writer. O_NOCTTY: a terminal opened here never becomes the daemon's.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(failed)?;
    // What counts is what was opened, whatever the path names by now.
    let metadata = file.metadata().map_err(failed)?;
    refuse_special(path, &metadata)?;
    refuse_size(path, metadata.len(), limit, false)?;
    // One byte more than the limit is asked for, so a file that grew since the fstat
    // (or that says it is empty, as /proc's do) is caught too.
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0) + 1);
    (&file)
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(failed)?;
    refuse_size(path, bytes.len() as u64, limit, true)?;
    let stamp = Stamp::of(&file.metadata().map_err(failed)?);
    Ok((bytes, stamp))
}

fn refuse_special(path: &Path, metadata: &Metadata) -> Result<(), LoadError> {
    match FileKind::of(metadata) {
        None => Ok(()),
        Some(kind) => Err(LoadError::NotRegular {
            path: path.to_path_buf(),
            kind,
        }),
    }
}

/// `read`: the size is what was read, more than the file said it had.
fn refuse_size(path: &Path, size: u64, limit: u64, read: bool) -> Result<(), LoadError> {
    if size <= limit {
        return Ok(());
    }
    Err(LoadError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
        grew: read,
    })
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn a_regular_file_is_read_with_its_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.toml");
        std::fs::write(&path, "[global]\n").unwrap();
        let text = read(&path).unwrap();
        assert_eq!(text.text, "[global]\n");
        assert_eq!(text.stamp, Stamp::at(&path).unwrap());
        std::fs::write(&path, "[global]\n\n").unwrap();
        assert_ne!(Stamp::at(&path).unwrap(), text.stamp, "a write changes it");
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success());
        // No writer ever comes: a reader that waited would hang the test.
        let e = read(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{} is a FIFO (named pipe), not a regular file",
                path.display()
            )
        );
    }

    #[test]
    fn directories_devices_and_sockets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, kind) in [
            (dir.path(), FileKind::Directory),
            (Path::new("/dev/null"), FileKind::CharDevice),
            (Path::new("/dev/zero"), FileKind::CharDevice),
            (socket.as_path(), FileKind::Socket),
        ] {
            match read(path) {
                Err(LoadError::NotRegular { kind: k, .. }) => assert_eq!(k, kind, "{path:?}"),
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_file_over_the_limit_is_refused_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.toml");
        std::fs::write(&path, "x".repeat(101)).unwrap();
        match read_at_most(&path, 100) {
            Err(LoadError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (101, 100)),
            other => panic!("{other:?}"),
        }
        assert!(
            read_at_most(&path, 101).is_ok(),
            "the limit itself is allowed"
        );
    }

    #[test]
    fn a_file_larger_than_it_says_is_cut_at_the_limit() {
        // /proc's files say they are empty and are not: what is read counts.
        let path = Path::new("/proc/self/status");
        match read_at_most(path, 100) {
            Err(LoadError::TooLarge { size, limit, .. }) => assert_eq!((size, limit), (101, 100)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_placed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.toml");
        std::fs::write(&path, b"# caf\xe9\n").unwrap();
        match read(&path) {
            Err(LoadError::NotText { offset, .. }) => assert_eq!(offset, 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_file_says_so() {
        let e = read(Path::new("/nonexistent/uvs.toml")).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot read /nonexistent/uvs.toml: "),
            "{e}"
        );
    }
}
