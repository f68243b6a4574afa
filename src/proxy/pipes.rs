//! Pipes for splicing, kept in a pool: a pipe is needed only while bytes are moving, so
//! idle connections hold none, short connections reuse them instead of creating and
//! closing two per connection, and an unprivileged daemon stays far from its pipe
//! budget (pipe-user-pages-soft). Used by `forward`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Mutex;

use crate::sys;

/// One pipe: bytes go in at `write`, come out at `read`.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub fn write_end(&self) -> BorrowedFd<'_> {
        self.write.as_fd()
    }
}

/// The pool. Only empty pipes are given back.
#[derive(Debug)]
pub struct PipePool {
    free: Mutex<Vec<Pipe>>,
    keep: usize,
}

impl PipePool {
    /// A pool keeping at most `keep` idle pipes.
    pub const fn new(keep: usize) -> PipePool {
        PipePool {
            free: Mutex::new(Vec::new()),
            keep,
        }
    }

    pub fn take(&self) -> std::io::Result<Pipe> {
        if let Some(p) = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return Ok(p);
        }
        let (read, write) = sys::pipe()?;
        Ok(Pipe { read, write })
    }

    /// Returns an empty pipe (a pipe with bytes in it must be dropped instead).
    pub fn give_back(&self, pipe: Pipe) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(pipe);
        }
    }
}

/// The process's pool.
pub static PIPES: PipePool = PipePool::new(1024);
