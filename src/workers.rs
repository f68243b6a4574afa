//! The data plane's threads: one single-threaded tokio runtime per worker, each serving
//! the connections it serves from first byte to last, so a connection's wake-ups
//! never cross threads. (With tokio's work-stealing scheduler, every hop of a proxied
//! request could wake a second thread; on a small box those hand-offs cost as much as
//! the proxying.) Each worker polls its own duplicate of every listening socket, so
//! whichever worker is free takes the next connection, and a bind still fails when the
//! address is taken, as it should. Whichever worker wakes first may take a whole burst
//! of connections, though (seen: all 64 of a keep-alive benchmark's connections on one
//! worker, the other idle), so each worker counts the TCP connections it serves, and
//! one that serves more than twice as many as the least loaded (plus `MARGIN`) hands a
//! new connection over to it (HAProxy's multi-queue accept balances too). Made by the
//! director; the listener manager puts its accept loops here.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
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

/// The slack in "more than twice as many": with it, a steady load of short connections
/// rarely moves one (3% of them in the harness's new-connection load, against 25% with
/// a plain margin of 8: the worker that wins most accepts is the one with time to
/// spare), while a burst that lands on one worker is spread. A hand-over costs a
/// wake-up of the other thread.
const MARGIN: usize = 8;

#[derive(Debug)]
pub struct Workers {
    handles: Vec<Handle>,
    /// TCP connections each worker serves.
    loads: Arc<[AtomicUsize]>,
    /// Connections handed from the worker that accepted them to another.
    handed_over: AtomicU64,
}

/// One connection counted against a worker while it is alive (dropped with the
/// connection's task, even one aborted before it ran).
#[derive(Debug)]
pub struct Load {
    loads: Arc<[AtomicUsize]>,
    worker: usize,
}

impl Load {
    /// The worker serving the connection.
    pub fn worker(&self) -> usize {
        self.worker
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.loads[self.worker].fetch_sub(1, Relaxed);
    }
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
        let loads = (0..handles.len()).map(|_| AtomicUsize::new(0)).collect();
        Ok(Workers {
            handles,
            loads,
            handed_over: AtomicU64::new(0),
        })
    }

    /// Where a connection accepted by worker `me` is to be served, counted against it:
    /// `me`, unless `me` serves at least twice as many connections as the least loaded
    /// worker plus `MARGIN`.
    pub fn place(&self, me: usize) -> Load {
        let load = |i: usize| self.loads[i].load(Relaxed);
        let least = (0..self.loads.len()).min_by_key(|&i| load(i)).unwrap_or(me);
        let worker = if load(me) >= 2 * load(least) + MARGIN {
            self.handed_over.fetch_add(1, Relaxed);
            least
        } else {
            me
        };
        self.loads[worker].fetch_add(1, Relaxed);
        Load {
            loads: Arc::clone(&self.loads),
            worker,
        }
    }

    /// The TCP connections each worker serves.
    pub fn loads(&self) -> Vec<usize> {
        self.loads.iter().map(|l| l.load(Relaxed)).collect()
    }

    /// Connections handed from one worker to another so far.
    pub fn handed_over(&self) -> u64 {
        self.handed_over.load(Relaxed)
    }

    /// Runs `task` on worker `i`.
    pub fn spawn_on<T>(&self, i: usize, task: T) -> AbortHandle
    where
        T: Future<Output = ()> + Send + 'static,
    {
        self.handles[i].spawn(task).abort_handle()
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
