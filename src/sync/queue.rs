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

/// How many waiting entries wake the master at once: about eight datagrams' worth, as
/// the kernel wakes its master when `IPVS_SYNC_WAKEUP_RATE` (8) buffers wait.
pub const WAKE_AT: usize = 256;

/// How long the master lets entries gather after the first one before it takes them,
/// unless [`WAKE_AT`] come sooner (the kernel's `IPVS_SYNC_SEND_DELAY`, HZ/50). Waking
/// the master for every entry cost a short connection half its CPU again (measured:
/// 97 → 143 µs a request); this wakes it at most 50 times a second plus once per
/// [`WAKE_AT`] entries.
pub const SEND_DELAY: std::time::Duration = std::time::Duration::from_millis(20);

/// The kernel's defaults for syncing a connection again as its packets pass
/// (net.ipv4.vs.sync_threshold "3 50"): at its 3rd packet, then every 50th.
pub const SYNC_THRESHOLD: u32 = 3;
pub const SYNC_PERIOD: u32 = 50;

/// Whether a flow that had passed `before` packets and now passed `more` reached a
/// count the kernel's master syncs at (`ip_vs_sync_conn_needed`: `pkts % sync_period
/// == sync_threshold`).
pub fn resync_due(before: u32, more: u32) -> bool {
    let first = before.wrapping_add(1);
    let next =
        first.wrapping_add((SYNC_PERIOD + SYNC_THRESHOLD - first % SYNC_PERIOD) % SYNC_PERIOD);
    more > 0 && next.wrapping_sub(before) <= more
}

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
        let waiting = entries.len();
        drop(entries);
        // The first entry starts the master's SEND_DELAY; WAKE_AT of them end it.
        if waiting == 1 || waiting == WAKE_AT {
            self.ready.notify_one();
        }
    }

    /// How many entries wait.
    pub fn len(&self) -> usize {
        self.entries.locked().len()
    }

    /// Whether no entry waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A connection's state changed: it is queued when the kernel's master would sync
    /// it, with its template (ip_vs_sync.c `ip_vs_sync_conn`, which goes on to the
    /// connection's controlling template). TCP: on reaching ESTABLISHED, FIN_WAIT,
    /// CLOSE_WAIT, TIME_WAIT or CLOSE (`ip_vs_sync_conn_needed`'s forced states; the
    /// kernel syncs ESTABLISHED at the connection's third packet, which a proxy sees
    /// as the connection being established); UDP: when the flow opens, then at its
    /// client's 3rd datagram and every 50th after ([`resync_due`]). SYN_RECV is not
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
            // The kernel sends cp->fwmark: an fwmark service's connections carry its mark,
            // by which a backup finds the service.
            fwmark: conn.fwmark,
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

    /// Waits until an entry was pushed to an empty queue, or the queue reached
    /// [`WAKE_AT`] entries, since the last wait.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Waits until the entries pushed since the queue was empty had [`SEND_DELAY`] to
    /// gather, or [`WAKE_AT`] of them wait.
    pub async fn gathered(&self) {
        if self.len() >= WAKE_AT {
            return;
        }
        tokio::select! {
            () = self.ready.notified() => {}
            () = tokio::time::sleep(SEND_DELAY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_is_synced_again_at_its_third_packet_and_every_fiftieth_after() {
        // One datagram at a time: the counts that sync are 3, 53, 103.
        let at: Vec<u32> = (0..120)
            .filter(|&n| resync_due(n, 1))
            .map(|n| n + 1)
            .collect();
        assert_eq!(at, [3, 53, 103]);
        // A batch that passes one of them syncs once; one that passes none, not.
        assert!(resync_due(0, 3));
        assert!(!resync_due(3, 49));
        assert!(resync_due(3, 50));
        assert!(resync_due(40, 64));
        assert!(!resync_due(7, 0));
    }

    /// The datagram a master sends for one connection of `fwmark`'s service: client
    /// 127.0.0.9:40000 reached 127.0.0.1:80 and went to 127.0.0.2:8080.
    fn datagram_for(fwmark: u32) -> Vec<u8> {
        use crate::conn::{ConnTable, NewConn, State};
        use crate::table::RealServerState;
        use crate::table::limit::Slot;
        let server = std::sync::Arc::new(RealServerState::default());
        let conns = ConnTable::new();
        let conn = conns.open(NewConn {
            protocol: crate::table::Protocol::Tcp,
            client: "127.0.0.9:40000".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            dest: "127.0.0.2:8080".parse().unwrap(),
            fwmark,
            slot: Slot::take(&server).expect("no limit"),
            template: None,
            state: State::SynRecv,
        });
        let queue = SyncQueue::default();
        queue.set_on(true);
        queue.conn(&conn, State::Established, &Timeouts::default());
        let mut entries = Vec::new();
        queue.take(&mut entries);
        let mut builder = super::super::wire::Builder::new(9, 1472);
        for e in &entries {
            assert!(builder.push(e).expect("encodable").is_none());
        }
        builder.finish().expect("a datagram")
    }

    #[test]
    fn a_connection_of_an_fwmark_service_is_sent_with_its_mark() {
        // ip_vs_sync_conn puts cp->fwmark on the wire, and ip_vs_conn_new took it from
        // skb->mark: the service's mark. A backup finds the service by it
        // (ip_vs_proc_conn -> ip_vs_find_dest -> ip_vs_service_find).
        #[rustfmt::skip]
        let expected: Vec<u8> = vec![
            0, 9, 0, 44, 1, 1, 0, 0,     // header: syncid 9, 44 bytes, 1 entry, version 1
            0, 6, 0x00, 36,              // IPv4, TCP, version 0 | 36 bytes
            0, 0, 0, 0,                  // flags: masquerading, active
            0, 1,                        // ESTABLISHED
            0x9c, 0x40, 0, 80, 0x1f, 0x90, // cport 40000, vport 80, dport 8080
            0, 0, 0, 7,                  // fwmark 7
            0, 0, 0x03, 0x84,            // timeout 900 s
            127, 0, 0, 9, 127, 0, 0, 1, 127, 0, 0, 2,
        ];
        assert_eq!(datagram_for(7), expected);
        // An address service's connections carry no mark.
        let mut unmarked = expected;
        unmarked[27] = 0;
        assert_eq!(datagram_for(0), unmarked);
    }

    fn an_entry(n: u16) -> Entry {
        Entry {
            protocol: Some(crate::table::Protocol::Tcp),
            client: std::net::SocketAddr::from(([127, 0, 0, 9], n)),
            vip: "127.0.0.1:80".parse().unwrap(),
            real: "127.0.0.2:8080".parse().unwrap(),
            fwmark: 0,
            flags: Flags(0),
            state: 1,
            timeout: 900,
            seq: None,
            pe: None,
        }
    }

    /// The master is woken by the first entry, lets more gather for SEND_DELAY, and
    /// is woken at once when WAKE_AT wait; not once per entry.
    #[tokio::test(start_paused = true)]
    async fn the_master_is_woken_by_a_first_entry_and_by_many_not_by_each() {
        use std::time::Duration;
        let queue = SyncQueue::default();
        queue.set_on(true);
        let woken = |queue: &SyncQueue| {
            let mut ready = std::pin::pin!(queue.ready());
            std::future::Future::poll(
                ready.as_mut(),
                &mut std::task::Context::from_waker(std::task::Waker::noop()),
            )
            .is_ready()
        };
        assert!(!woken(&queue));
        queue.push(an_entry(1));
        assert!(woken(&queue));
        // More entries wake nobody until WAKE_AT wait.
        for n in 2..WAKE_AT as u16 {
            queue.push(an_entry(n));
        }
        assert!(!woken(&queue));
        // The master gathers for SEND_DELAY.
        let start = tokio::time::Instant::now();
        queue.gathered().await;
        assert_eq!(start.elapsed(), SEND_DELAY);
        // The WAKE_AT-th entry wakes it at once.
        queue.push(an_entry(WAKE_AT as u16));
        assert!(woken(&queue));
        let start = tokio::time::Instant::now();
        queue.gathered().await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        let mut taken = Vec::new();
        queue.take(&mut taken);
        assert_eq!(taken.len(), WAKE_AT);
        assert!(queue.is_empty());
    }
}
