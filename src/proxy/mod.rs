//! The data plane: listeners that follow the table (`listeners`), the TCP connection
//! path (`tcp`, with the `congestion` control of its two legs), the byte path
//! (`forward`, with per-thread `pools` of buffers and pipes), the UDP flows (`udp`) and
//! the counting of what moves (`accounting`).

pub mod accounting;
pub mod congestion;
pub mod forward;
pub mod listeners;
pub mod pools;
pub mod tcp;
pub mod udp;

use std::sync::atomic::{AtomicU64, Ordering};

/// Runs `log` at most once every ten seconds per `last` stamp.
pub(crate) fn warn_rarely(last: &AtomicU64, log: impl FnOnce()) {
    let now = crate::conn::unix_seconds();
    let before = last.load(Ordering::Relaxed);
    if now >= before + 10
        && last
            .compare_exchange(before, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        log();
    }
}
