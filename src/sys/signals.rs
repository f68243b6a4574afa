//! Counting stop signals (SIGINT, SIGTERM) as the kernel delivers them. tokio's
//! `Signal::recv` reports "at least one since the last recv": two SIGINTs that arrive
//! before its driver runs are one event, so a second Ctrl-C (or `kill -INT` twice) could
//! not be told from the first. `main.rs`'s shutdown_signal reads this count to cut the
//! drain (`daemon::cut_drain`). Two signals sent before the first is delivered are
//! merged by the kernel itself (standard signals do not queue); nothing can count those.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

static STOP_SIGNALS: AtomicUsize = AtomicUsize::new(0);
/// Registered once per process, whoever asks first; the outcome is kept for later asks.
static REGISTERED: OnceLock<Result<(), std::io::ErrorKind>> = OnceLock::new();

/// Starts counting SIGINT and SIGTERM deliveries (idempotent). Registered through
/// signal-hook-registry, as tokio's own handlers are: each chains the other, whatever
/// the order. Call it before tokio's `signal()` for the same signals so that the count
/// is raised before tokio's driver hears of a delivery. Errors: sigaction's.
pub fn count_stop_signals() -> std::io::Result<()> {
    let outcome = REGISTERED.get_or_init(|| {
        for signal in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the action only increments an atomic, which is async-signal-safe
            // (no lock, no allocation); SIGINT and SIGTERM are not among the signals
            // register refuses (it panics only for SIGKILL, SIGSTOP, SIGILL, SIGFPE,
            // SIGSEGV).
            unsafe {
                signal_hook_registry::register(signal, || {
                    STOP_SIGNALS.fetch_add(1, Ordering::SeqCst);
                })
            }
            .map_err(|e| e.kind())?;
        }
        Ok(())
    });
    outcome.map_err(std::io::Error::from)
}

/// How many SIGINT and SIGTERM this process received since `count_stop_signals`.
pub fn stop_signals() -> usize {
    STOP_SIGNALS.load(Ordering::SeqCst)
}

/// Sends `signal` to thread `tid` of process `pid` (tgkill): it waits in that thread's
/// own pending set, apart from a process-wide one (kill), so the two are delivered as
/// two. Tests use it to deliver one stop signal twice at once. Refuses (InvalidInput)
/// numbers beyond pid_t, 0, 1 and this process.
pub fn signal_thread(pid: u32, tid: u32, signal: libc::c_int) -> std::io::Result<()> {
    let invalid = || std::io::Error::from(std::io::ErrorKind::InvalidInput);
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1 && p.unsigned_abs() != std::process::id())
        .ok_or_else(invalid)?;
    let tid = libc::pid_t::try_from(tid)
        .ok()
        .filter(|&t| t > 0)
        .ok_or_else(invalid)?;
    // SAFETY: tgkill takes three integers and only sends a signal; it touches no memory
    // of ours. The group id names one process (see above), the thread must be in it.
    if unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, signal) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
