//! One blocking job at a time, on a thread of its own, with a deadline: how reloads read
//! and parse the configuration file without holding up the control thread (its
//! runtime also serves uvsadm, /metrics and the signals). A job past its deadline is
//! abandoned: the caller hears of it at once and goes on, but the slot stays taken
//! until the job's thread ends, so a file that hangs its readers (a dead network
//! mount) never has more than one thread stuck on it. A job can say that the part that
//! could hang is over ([`Lift`]): what is left is bounded work (parsing a file of at
//! most `file::MAX_BYTES`), which the first deadline does not cut short; a second,
//! longer one still does, should that work never end. Used by the reloader (`reload`).
//!
//! The job runs on a plain thread, not tokio's blocking pool: the runtime waits for its
//! blocking tasks when it shuts down, and a stuck read must not keep the daemon from
//! exiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

/// How a job in the slot ended, as far as the caller is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<T> {
    /// It finished within its deadline (the one in force: see [`Lift`]), with this.
    Finished(T),
    /// Its deadline passed: it is abandoned, and the slot stays busy until it ends.
    /// `lifted`: the job had lifted the first deadline, and passed the second.
    Overdue { lifted: bool },
    /// An abandoned job ended; what it made is dropped. The slot is free.
    Ended,
    /// The job's thread died without an answer (it panicked). The slot is free.
    Lost,
}

struct Running<T> {
    answer: oneshot::Receiver<T>,
    started: Instant,
    /// The deadline in force: the first, then, once the job lifted it, `started` plus
    /// `after_lift`.
    deadline: Instant,
    after_lift: Duration,
    /// Set by the job ([`Lift::lift`]).
    lifted: Arc<AtomicBool>,
    /// The deadline in force is the second.
    extended: bool,
    abandoned: bool,
}

/// Given to a job: [`Lift::lift`] says that the part that could hang (reading a file)
/// is over, and the rest (parsing what was read) is bounded: the slot then waits for
/// the job up to its second, longer deadline (`after_lift`, from the start).
#[derive(Debug)]
pub struct Lift(Arc<AtomicBool>);

impl Lift {
    pub fn lift(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// The slot: empty, or one job running.
pub struct Slot<T> {
    running: Option<Running<T>>,
}

impl<T: Send + 'static> Default for Slot<T> {
    fn default() -> Self {
        Slot { running: None }
    }
}

impl<T: Send + 'static> Slot<T> {
    /// Whether a job is running, in time or abandoned.
    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Whether the running job is one past its deadline.
    pub fn stuck(&self) -> bool {
        self.running.as_ref().is_some_and(|r| r.abandoned)
    }

    /// Runs `job` on a new thread named `name`, for at most `deadline` before it is
    /// abandoned, or, once the job lifted that deadline (its [`Lift`]), for at most
    /// `after_lift` in all. The slot must be free.
    ///
    /// # Errors
    /// The thread could not be started (the slot stays free); or the slot was busy
    /// (`WouldBlock`).
    pub fn start(
        &mut self,
        name: &str,
        deadline: Duration,
        after_lift: Duration,
        job: impl FnOnce(&Lift) -> T + Send + 'static,
    ) -> std::io::Result<()> {
        if self.busy() {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let (tx, answer) = oneshot::channel();
        let lifted = Arc::new(AtomicBool::new(false));
        let lift = Lift(Arc::clone(&lifted));
        // Detached: the thread ends when the job does; the answer goes nowhere if the
        // slot gave up on it.
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                let _ = tx.send(job(&lift));
            })?;
        let started = Instant::now();
        self.running = Some(Running {
            answer,
            started,
            deadline: started + deadline,
            after_lift,
            lifted,
            extended: false,
            abandoned: false,
        });
        Ok(())
    }

    /// Waits for the running job to finish, pass its deadline, or (abandoned) end;
    /// never completes while the slot is free. Cancel-safe: dropped before it
    /// completes, nothing is lost.
    pub async fn done(&mut self) -> Outcome<T> {
        let Some(running) = &mut self.running else {
            return std::future::pending().await;
        };
        if running.abandoned {
            let _ = (&mut running.answer).await;
            self.running = None;
            return Outcome::Ended;
        }
        let answer = loop {
            tokio::select! {
                // An answer and a deadline ready together: the answer is taken.
                biased;
                answer = &mut running.answer => break answer,
                () = tokio::time::sleep_until(running.deadline) => {
                    if !running.extended && running.lifted.load(Ordering::Acquire) {
                        running.extended = true;
                        running.deadline = running.started + running.after_lift;
                        continue;
                    }
                    running.abandoned = true;
                    return Outcome::Overdue {
                        lifted: running.extended,
                    };
                }
            }
        };
        self.running = None;
        match answer {
            Ok(value) => Outcome::Finished(value),
            Err(_) => Outcome::Lost,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    }

    #[test]
    fn a_job_in_time_finishes_and_frees_the_slot() {
        runtime().block_on(async {
            let mut slot = Slot::default();
            slot.start("t", Duration::from_secs(30), Duration::from_secs(30), |_| 7)
                .unwrap();
            assert!(slot.busy());
            assert_eq!(slot.done().await, Outcome::Finished(7));
            assert!(!slot.busy());
        });
    }

    #[test]
    fn a_late_job_is_abandoned_and_holds_the_slot_until_it_ends() {
        runtime().block_on(async {
            let mut slot = Slot::default();
            // The job waits for the test's word, so it is late whatever the machine's
            // speed.
            let (release, wait) = mpsc::channel::<()>();
            slot.start(
                "t",
                Duration::from_millis(10),
                Duration::from_secs(30),
                move |_| {
                    let _ = wait.recv_timeout(Duration::from_secs(30));
                    1
                },
            )
            .unwrap();
            assert_eq!(slot.done().await, Outcome::Overdue { lifted: false });
            assert!(slot.busy() && slot.stuck());
            assert!(
                slot.start("t", Duration::from_secs(30), Duration::from_secs(30), |_| 2)
                    .is_err(),
                "one job at a time"
            );
            release.send(()).unwrap();
            assert_eq!(slot.done().await, Outcome::Ended);
            assert!(!slot.busy());
            // The slot takes a job again (with time enough, whatever the load).
            slot.start("t", Duration::from_secs(30), Duration::from_secs(30), |_| 3)
                .unwrap();
            assert_eq!(slot.done().await, Outcome::Finished(3));
        });
    }

    /// Starts a job with a first deadline of 10 ms that lifts it at once, then waits
    /// for the test's word (so it is late whatever the machine's speed) and answers
    /// `value`; returns once the job has lifted (however slow its thread was to
    /// start), with the sender of the word.
    fn start_lifting(slot: &mut Slot<u8>, after_lift: Duration, value: u8) -> mpsc::Sender<()> {
        let (release, wait) = mpsc::channel::<()>();
        let (lifted_tx, lifted) = mpsc::channel::<()>();
        slot.start("t", Duration::from_millis(10), after_lift, move |lift| {
            lift.lift();
            let _ = lifted_tx.send(());
            let _ = wait.recv_timeout(Duration::from_secs(30));
            value
        })
        .unwrap();
        lifted.recv_timeout(Duration::from_secs(30)).unwrap();
        release
    }

    #[test]
    fn a_job_that_lifted_its_deadline_is_waited_for_past_it() {
        runtime().block_on(async {
            let mut slot = Slot::default();
            // The word comes only once the first deadline has passed.
            let started = std::time::Instant::now();
            let release = start_lifting(&mut slot, Duration::from_secs(30), 4);
            let releaser = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                release.send(()).unwrap();
            });
            assert_eq!(slot.done().await, Outcome::Finished(4));
            assert!(
                started.elapsed() >= Duration::from_millis(200),
                "past the deadline"
            );
            assert!(!slot.busy());
            releaser.join().unwrap();
        });
    }

    #[test]
    fn a_lifted_job_that_never_ends_is_abandoned_at_its_second_deadline() {
        runtime().block_on(async {
            let mut slot = Slot::default();
            let release = start_lifting(&mut slot, Duration::from_millis(100), 5);
            assert_eq!(slot.done().await, Outcome::Overdue { lifted: true });
            assert!(slot.busy() && slot.stuck());
            release.send(()).unwrap();
            assert_eq!(slot.done().await, Outcome::Ended);
            assert!(!slot.busy());
        });
    }

    #[test]
    fn a_job_that_panics_is_lost_not_waited_for() {
        runtime().block_on(async {
            let mut slot: Slot<u8> = Slot::default();
            slot.start(
                "t",
                Duration::from_secs(30),
                Duration::from_secs(30),
                |_| panic!("the job fails"),
            )
            .unwrap();
            assert_eq!(slot.done().await, Outcome::Lost);
            assert!(!slot.busy());
        });
    }
}
