//! The master's queue: what the data plane hands the sync master (ip_vs_sync.c's
//! `sync_queue`). The data plane pushes an [`Entry`] when a connection reaches a state
//! the kernel's master syncs in, and its template with it; the master task
//! (`sync::master`) takes them in batches. While no master runs the queue is off and a
//! push is one atomic load. The queue is bounded: past [`QUEUE_MAX`] entries a push is
//! dropped and counted (the kernel likewise stops queueing past `sync_qlen_max`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64};

use tokio::sync::Notify;

use super::wire::{Entry, Flags, state_number};
use crate::conn::{Conn, State};
use crate::lock::Locked;
use crate::persist::Template;
use crate::table::Timeouts;

/// Entries waiting for the master at most.
pub const QUEUE_MAX: usize = 65_536;

#[derive(Debug, Default)]
pub struct SyncQueue {
    on: AtomicBool,
    entries: Mutex<VecDeque<Entry>>,
    ready: Notify,
    /// Entries dropped because the queue was full.
    overflow: AtomicU64,
}

impl SyncQueue {
    /// Whether a master takes what is pushed.
    pub fn is_on(&self) -> bool {
        self.on.load(Relaxed)
    }

    /// A master starts (true) or stops (false; what waits is dropped).
    pub fn set_on(&self, on: bool) {
        self.on.store(on, Relaxed);
        if !on {
            self.entries.locked().clear();
        }
    }

    pub fn overflow(&self) -> u64 {
        self.overflow.load(Relaxed)
    }

    fn push(&self, entry: Entry) {
        let mut entries = self.entries.locked();
        if entries.len() >= QUEUE_MAX {
            self.overflow.fetch_add(1, Relaxed);
            return;
        }
        entries.push_back(entry);
        drop(entries);
        self.ready.notify_one();
    }

    /// A connection's state changed: it is queued when the kernel's master would sync
    /// it, with its template (ip_vs_sync.c `ip_vs_sync_conn`, which goes on to the
    /// connection's controlling template). TCP: on reaching ESTABLISHED, FIN_WAIT,
    /// CLOSE_WAIT, TIME_WAIT or CLOSE (`ip_vs_sync_conn_needed`'s forced states; the
    /// kernel syncs ESTABLISHED at the connection's third packet, which a proxy sees
    /// as the connection being established); UDP: when the flow opens. SYN_RECV is not
    /// synced, as in the kernel.
    pub fn conn(&self, conn: &Conn, state: State, timeouts: &Timeouts) {
        if !self.is_on() || state == State::SynRecv {
            return;
        }
        let name = state.name();
        let mut flags = 0;
        if !matches!(state, State::Established | State::Udp) {
            flags |= Flags::INACTIVE;
        }
        let Some(number) = state_number(Some(conn.protocol), false, name) else {
            return;
        };
        self.push(Entry {
            protocol: Some(conn.protocol),
            client: conn.client,
            vip: conn.local,
            real: conn.dest,
            fwmark: 0,
            flags: Flags(flags),
            state: number,
            timeout: (state.timeout_ms(timeouts) / 1000) as u32,
            seq: None,
            pe: None,
        });
        if let Some(t) = &conn.template {
            self.template(t);
        }
    }

    /// A persistence template was made or used: queued (the kernel syncs a template
    /// whenever a connection it controls is synced; templates have no threshold).
    pub fn template(&self, template: &Template) {
        if !self.is_on() {
            return;
        }
        let t = template.synced();
        let protocol = crate::table::Protocol::from_number(t.protocol);
        self.push(Entry {
            protocol,
            client: std::net::SocketAddr::new(t.client, 0),
            vip: t.vaddr,
            real: t.dest,
            fwmark: t.fwmark,
            flags: Flags(Flags::TEMPLATE),
            state: u16::from(t.assured),
            timeout: t.timeout_s,
            seq: None,
            pe: None,
        });
    }

    /// Moves every waiting entry to `out`; the data plane's pushes wait only for a swap.
    pub fn take(&self, out: &mut Vec<Entry>) {
        let taken = std::mem::take(&mut *self.entries.locked());
        out.extend(taken);
    }

    /// Waits until something was pushed since the last wait.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}
