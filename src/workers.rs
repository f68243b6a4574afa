//! The data plane's threads: one single-threaded tokio runtime per worker, each serving
//! the connections it accepted from first byte to last, so a connection's wake-ups
//! never cross threads. (With tokio's work-stealing scheduler, every hop of a proxied
//! request could wake a second thread; on a small box those hand-offs cost as much as
//! the proxying.) Each worker polls its own duplicate of every listening socket, so
//! whichever worker is free takes the next connection, and a bind still fails when the
//! address is taken, as it should. Made by the director; the listener manager puts its
//! accept loops here.

use std::future::Future;
use std::io;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::task::AbortHandle;

/// Keeps a timer always due within a second. Tokio wakes a runtime's event loop (a
/// write to its eventfd, and one more turn of epoll) whenever a timer is armed that is
/// due before the earliest timer it knew of; every connect arms its timeout, and
/// without this that would be one wake-up per connection.
async fn heartbeat() {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
    }
}

#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
}

impl Workers {
    /// Starts `count` worker threads (at least one). They run until the process exits.
    pub fn start(count: usize) -> io::Result<Workers> {
        let mut handles = Vec::new();
        for i in 0..count.max(1) {
            let runtime = Builder::new_current_thread().enable_all().build()?;
            handles.push(runtime.handle().clone());
            thread::Builder::new()
                .name(format!("uvs-worker-{i}"))
                .spawn(move || runtime.block_on(heartbeat()))?;
        }
        Ok(Workers { handles })
    }

    /// The number of CPUs this process may use.
    pub fn default_count() -> usize {
        thread::available_parallelism().map_or(1, |n| n.get())
    }

    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `task(i)` on every worker `i`; returns the tasks' abort handles.
    pub fn spawn_each<F, T>(&self, mut task: F) -> Vec<AbortHandle>
    where
        F: FnMut(usize) -> T,
        T: Future<Output = ()> + Send + 'static,
    {
        self.handles
            .iter()
            .enumerate()
            .map(|(i, h)| h.spawn(task(i)).abort_handle())
            .collect()
    }
}
