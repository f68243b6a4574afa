//! The thread `/metrics` bodies are rendered on (`scrape`): one, started with the first
//! render and living as long as the endpoint, taking the renders one after the other.
//!
//! One thread rather than Tokio's blocking pool, for memory: the allocator (glibc's
//! malloc) gives each thread an arena of its own and keeps what is freed in it resident
//! for that arena's next allocations. On one thread each new body reuses the memory of
//! the bodies let go before it. On the pool, a render asked for while the previous
//! render's thread is still on its way back to idle starts a new thread, whose arena
//! grows by a whole body while the other arena's free memory sits unused: a body more
//! resident for each such thread.

use std::panic::AssertUnwindSafe;
use std::sync::mpsc;

/// What the thread runs.
pub(super) trait Job: Send + 'static {
    fn run(self);
}

/// The render thread, once started.
pub(super) struct RenderThread<J> {
    jobs: Option<mpsc::Sender<J>>,
}

impl<J: Job> RenderThread<J> {
    /// Hands `job` to the thread, starting it if it has not been (or has gone); gives the
    /// job back with the error when no thread can be started.
    pub(super) fn send(&mut self, job: J) -> Result<(), (J, std::io::Error)> {
        let job = match &self.jobs {
            Some(jobs) => match jobs.send(job) {
                Ok(()) => return Ok(()),
                // The thread is gone (a job's panic is caught, so only if the panic
                // itself failed): start another.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        let (jobs, queue) = mpsc::channel::<J>();
        let started = std::thread::Builder::new()
            .name("uvs-metrics".into())
            .spawn(move || {
                // Until the endpoint, and with it the sender, is gone.
                for job in queue {
                    // A job that panics fails on its own (it cleans up as it unwinds);
                    // the next one still runs.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| job.run()));
                }
            });
        if let Err(e) = started {
            return Err((job, e));
        }
        // The thread holds the receiver until this sender is dropped: it takes the job.
        let sent = jobs.send(job);
        self.jobs = Some(jobs);
        sent.map_err(|mpsc::SendError(job)| {
            let gone = std::io::Error::other("the render thread ended at once");
            (job, gone)
        })
    }
}

impl<J> Default for RenderThread<J> {
    fn default() -> RenderThread<J> {
        RenderThread { jobs: None }
    }
}

impl<J> std::fmt::Debug for RenderThread<J> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderThread")
            .field("started", &self.jobs.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says its number and its thread, or panics if it is 2.
    struct Say(u32, mpsc::Sender<(u32, std::thread::ThreadId)>);

    impl Job for Say {
        fn run(self) {
            assert_ne!(self.0, 2, "job 2 panics");
            let _ = self.1.send((self.0, std::thread::current().id()));
        }
    }

    #[test]
    fn jobs_run_in_order_on_one_thread_and_survive_a_panic() {
        let (tx, rx) = mpsc::channel();
        let mut thread = RenderThread::default();
        for n in 1..=3 {
            assert!(thread.send(Say(n, tx.clone())).is_ok());
        }
        let first = rx.recv().expect("job 1");
        let third = rx.recv().expect("job 3");
        assert_eq!((first.0, third.0), (1, 3));
        assert_eq!(first.1, third.1, "one thread for every job");
        assert_ne!(first.1, std::thread::current().id());
    }
}
