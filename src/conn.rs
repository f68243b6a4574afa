//! The connection table: every proxied connection (and UDP flow) with its IPVS state,
//! its idle timeout, and its place in the ActiveConn/InActConn counts of its real server.
//!
//! The data plane opens an entry per connection and moves it through IPVS's states
//! (SYN_RECV while the real server is reached, ESTABLISHED, FIN_WAIT/CLOSE_WAIT after one
//! side closes); when the connection ends the entry stays, as in IPVS, in TIME_WAIT (or
//! CLOSE after a reset) until its timeout, still counted as inactive. A sweeper expires
//! closed entries and closes live connections idle longer than their state's timeout
//! (`--set tcp tcpfin udp`). `uvsadm -L -c` lists the table.
//!
//! A closed entry is a compact record (`closed`), not the live `Conn`: the
//! connection's task and its `Conn` are freed when the connection ends.

mod closed;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

// The table's clock, which the data plane reads too.
pub use crate::clock::Clock;
use crate::lock::Locked;
use crate::persist::Control;
use crate::table::limit::Slot;
use crate::table::{ConnEntry, Protocol, RealServerState, Timeouts};
use closed::{ClosedEntries, Closing};

/// IPVS's connection states (TCP), plus the single UDP state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    SynRecv = 1,
    Established,
    FinWait,
    CloseWait,
    TimeWait,
    Close,
    Udp,
}

impl State {
    fn from_u8(v: u8) -> State {
        match v {
            2 => State::Established,
            3 => State::FinWait,
            4 => State::CloseWait,
            5 => State::TimeWait,
            6 => State::Close,
            7 => State::Udp,
            _ => State::SynRecv,
        }
    }

    /// The name `-L -c` shows.
    pub fn name(self) -> &'static str {
        match self {
            State::SynRecv => "SYN_RECV",
            State::Established => "ESTABLISHED",
            State::FinWait => "FIN_WAIT",
            State::CloseWait => "CLOSE_WAIT",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::Udp => "UDP",
        }
    }

    /// Counted in ActiveConn (IPVS's tcp_state_active_table: ESTABLISHED and the
    /// pre-established states); everything else is InActConn, UDP always.
    pub fn is_active(self) -> bool {
        matches!(self, State::SynRecv | State::Established)
    }

    /// Whether the connection's task has ended (the entry only waits to expire).
    pub fn is_closed(self) -> bool {
        matches!(self, State::TimeWait | State::Close)
    }

    /// Idle timeout in milliseconds. ESTABLISHED, the half-closed states and UDP follow
    /// `--set`; the others are IPVS's fixed timeouts.
    pub fn timeout_ms(self, t: &Timeouts) -> u64 {
        let secs = match self {
            State::SynRecv => 60,
            State::Established => u64::from(t.tcp),
            State::FinWait | State::CloseWait => u64::from(t.tcp_fin),
            State::TimeWait => 120,
            State::Close => 10,
            State::Udp => u64::from(t.udp),
        };
        secs * 1000
    }
}

/// One entry of the connection table.
#[derive(Debug)]
pub struct Conn {
    pub id: u64,
    pub protocol: Protocol,
    pub client: SocketAddr,
    /// The address the client reached (the VIP).
    pub local: SocketAddr,
    /// The real server's address and the port connected to.
    pub dest: SocketAddr,
    /// The packet mark the connection came with, as the kernel's `cp->fwmark`
    /// (ip_vs_conn.c `ip_vs_conn_new` is given `skb->mark`): an fwmark service's mark,
    /// which is what matched its packets, and 0 for an address service. The sync
    /// master sends it, and a backup finds the service by it.
    pub fwmark: u32,
    pub server: Arc<RealServerState>,
    /// The persistence template this connection belongs to (its hold on it, given back
    /// when the entry leaves the table).
    pub template: Option<Control>,
    state: AtomicU8,
    last_activity: AtomicU64,
    /// UDP: the real server has answered (until then the flow lives only as long as
    /// the table's unreplied timeout, as conntrack treats unreplied flows).
    replied: AtomicBool,
    /// Its task has been told to end (idle, or a UDP flow evicted).
    ending: AtomicBool,
    /// The task serving the connection, so an idle one can be closed.
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Conn {
    pub fn state(&self) -> State {
        State::from_u8(self.state.load(Relaxed))
    }

    /// Traffic was seen: the idle timer restarts.
    pub fn touch(&self, now_ms: u64) {
        self.last_activity.store(now_ms, Relaxed);
    }

    pub fn last_activity(&self) -> u64 {
        self.last_activity.load(Relaxed)
    }

    /// The real server answered; true the first time.
    pub fn mark_replied(&self) -> bool {
        !self.replied.load(Relaxed) && !self.replied.swap(true, Relaxed)
    }

    /// Whether the real server has answered (UDP; TCP connections are always taken as
    /// answered once established).
    pub fn is_replied(&self) -> bool {
        self.replied.load(Relaxed)
    }

    /// How long the entry may stay idle in its state, in milliseconds: the state's
    /// timeout, and for a UDP flow its server never answered, at most `unreplied_ms`.
    pub fn timeout_ms(&self, t: &Timeouts, unreplied_ms: u64) -> u64 {
        let state = self.state();
        let timeout = state.timeout_ms(t);
        if state == State::Udp && !self.is_replied() {
            timeout.min(unreplied_ms)
        } else {
            timeout
        }
    }

    /// Moves to `next`, moving the connection between the server's active and inactive
    /// counts when the state's class changes.
    pub fn set_state(&self, next: State) {
        let previous = State::from_u8(self.state.swap(next as u8, Relaxed));
        if previous.is_active() != next.is_active() {
            self.server.set_connection_active(next.is_active());
        }
    }

    /// Registers the task serving this connection.
    pub fn attach(&self, task: tokio::task::AbortHandle) {
        *self.task.locked() = Some(task);
    }

    /// Ends the task serving the connection; false when it was ended before (its task
    /// may take a moment to leave the table, and is ended and counted once).
    pub fn end(&self) -> bool {
        if self.ending.swap(true, Relaxed) {
            return false;
        }
        if let Some(task) = self.task.locked().take() {
            task.abort();
        }
        true
    }

    fn entry(&self, now_ms: u64, timeouts: &Timeouts, unreplied_ms: u64) -> ConnEntry {
        let state = self.state();
        let expires_at = self.last_activity() + self.timeout_ms(timeouts, unreplied_ms);
        ConnEntry {
            protocol: self.protocol.label().to_string(),
            client_addr: self.client.ip(),
            client_port: self.client.port(),
            virtual_addr: self.local.ip(),
            virtual_port: self.local.port(),
            dest_addr: self.dest.ip(),
            dest_port: self.dest.port(),
            state: state.name().to_string(),
            expires: (expires_at.saturating_sub(now_ms) / 1000) as u32,
            pe_name: None,
            pe_data: None,
        }
    }

    /// The entry is gone for good: it leaves its server's counts and its template.
    fn unbind(&self) {
        self.server.unbind_connection(self.state().is_active());
        if let Some(t) = &self.template {
            t.release();
        }
    }
}

/// What a new entry is made of.
#[derive(Debug)]
pub struct NewConn {
    pub protocol: Protocol,
    pub client: SocketAddr,
    pub local: SocketAddr,
    pub dest: SocketAddr,
    /// The mark of the service's packets: its fwmark, or 0 ([`Conn::fwmark`]).
    pub fwmark: u32,
    /// The connection's place on its real server (`table::limit`), which the entry
    /// keeps until it leaves the live connections.
    pub slot: Slot,
    pub template: Option<Control>,
    /// SYN_RECV for TCP, UDP for a flow.
    pub state: State,
}

const SHARDS: usize = 16;

/// How long a UDP flow lives before its real server answers, unless configured.
pub const DEFAULT_UNREPLIED_TIMEOUT_MS: u64 = 5_000;

/// All connections: live ones by id, closed ones (compact records) by the second they
/// expire.
#[derive(Debug)]
pub struct ConnTable {
    pub clock: Clock,
    /// How long an unanswered UDP flow lives, in milliseconds.
    unreplied_ms: AtomicU64,
    live: Vec<Mutex<HashMap<u64, Arc<Conn>>>>,
    closed: ClosedEntries,
    next_id: AtomicU64,
    live_count: AtomicUsize,
    /// Of which UDP flows.
    live_udp: AtomicUsize,
}

impl Default for ConnTable {
    fn default() -> ConnTable {
        ConnTable::new()
    }
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    pub expired: usize,
    pub idle_closed: usize,
    /// Of those, UDP flows whose real server never answered.
    pub unreplied_closed: usize,
    /// Buckets of closed entries taken (each one second's, all due).
    pub buckets: usize,
}

impl ConnTable {
    pub fn new() -> ConnTable {
        ConnTable {
            clock: Clock::new(),
            unreplied_ms: AtomicU64::new(DEFAULT_UNREPLIED_TIMEOUT_MS),
            live: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            closed: ClosedEntries::default(),
            next_id: AtomicU64::new(1),
            live_count: AtomicUsize::new(0),
            live_udp: AtomicUsize::new(0),
        }
    }

    /// Sets how long an unanswered UDP flow lives.
    pub fn set_unreplied_timeout(&self, timeout: std::time::Duration) {
        let ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.unreplied_ms.store(ms, Relaxed);
    }

    pub fn unreplied_ms(&self) -> u64 {
        self.unreplied_ms.load(Relaxed)
    }

    fn shard(&self, id: u64) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.live[(id as usize) % SHARDS].locked()
    }

    /// A new connection, bound to its server in its first state.
    pub fn open(&self, new: NewConn) -> Arc<Conn> {
        let id = self.next_id.fetch_add(1, Relaxed);
        let server = new.slot.into_entry();
        server.bind_connection(new.state.is_active());
        let conn = Arc::new(Conn {
            id,
            protocol: new.protocol,
            client: new.client,
            local: new.local,
            dest: new.dest,
            fwmark: new.fwmark,
            server,
            template: new.template,
            state: AtomicU8::new(new.state as u8),
            last_activity: AtomicU64::new(self.clock.now_ms()),
            replied: AtomicBool::new(false),
            ending: AtomicBool::new(false),
            task: Mutex::new(None),
        });
        self.shard(id).insert(id, Arc::clone(&conn));
        self.count_live(&conn, true);
        conn
    }

    /// The connection's task is over: the entry waits out `state`'s timeout (TIME_WAIT
    /// after an orderly close, CLOSE after a reset), counted as inactive, as a compact
    /// record that takes over the connection's hold on its template (the `Conn` itself
    /// is freed with the task).
    pub fn close(&self, conn: &Arc<Conn>, state: State, timeouts: &Timeouts) {
        if self.shard(conn.id).remove(&conn.id).is_none() {
            return;
        }
        self.count_live(conn, false);
        conn.set_state(state);
        let now = self.clock.now_ms();
        conn.touch(now);
        self.closed.add(Closing {
            protocol: conn.protocol,
            addrs: [conn.client, conn.local, conn.dest],
            state,
            expires_ms: now + state.timeout_ms(timeouts),
            server: &conn.server,
            template: conn.template.as_ref().and_then(Control::hand_over),
        });
    }

    /// A UDP flow ends (idle, refused, its server gone, its listener closed): IPVS keeps
    /// no closing state for UDP, so the entry leaves the table and its counts at once.
    pub fn remove(&self, conn: &Arc<Conn>) {
        if self.shard(conn.id).remove(&conn.id).is_some() {
            self.count_live(conn, false);
            conn.unbind();
        }
    }

    /// Counts the connection in (or out of) the live connections, the table's; out, it
    /// gives its server's slot back (`RealServerState::open`, taken when the server was
    /// chosen and handed over in `open`).
    fn count_live(&self, conn: &Conn, up: bool) {
        if !up {
            conn.server.give_back_slot();
        }
        let counters = [
            Some(&self.live_count),
            (conn.protocol == Protocol::Udp).then_some(&self.live_udp),
        ];
        for counter in counters.into_iter().flatten() {
            if up {
                counter.fetch_add(1, Relaxed);
            } else {
                counter.fetch_sub(1, Relaxed);
            }
        }
    }

    /// Connections and flows whose task is still running.
    pub fn live(&self) -> usize {
        self.live_count.load(Relaxed)
    }

    /// Connections (not UDP flows) whose task is still running: what a stopping daemon
    /// waits for.
    pub fn live_streams(&self) -> usize {
        self.live().saturating_sub(self.live_udp.load(Relaxed))
    }

    /// Expires closed entries whose time has come, and closes live connections idle
    /// longer than their state allows (their task ends and closes them).
    pub fn sweep(&self, timeouts: &Timeouts) -> Sweep {
        self.sweep_at(self.clock.now_ms(), timeouts)
    }

    /// [`ConnTable::sweep`] as of `now` (milliseconds on the table's clock; benches and
    /// tests move time on with it). Closed entries: only the due seconds' buckets are
    /// taken, each under the lock for O(log buckets), and unbound after it is released.
    pub fn sweep_at(&self, now: u64, timeouts: &Timeouts) -> Sweep {
        let unreplied_ms = self.unreplied_ms();
        let mut result = Sweep::default();
        (result.expired, result.buckets) = self.closed.sweep(now);
        for shard in &self.live {
            let idle: Vec<Arc<Conn>> = shard
                .locked()
                .values()
                .filter(|c| now >= c.last_activity() + c.timeout_ms(timeouts, unreplied_ms))
                .cloned()
                .collect();
            for conn in idle {
                // Counted once: an ended task may take a moment to leave the table.
                if !conn.end() {
                    continue;
                }
                result.idle_closed += 1;
                if conn.state() == State::Udp && !conn.is_replied() {
                    result.unreplied_closed += 1;
                }
            }
        }
        result
    }

    /// The table as `-L -c` lists it: each live shard's connections are copied out
    /// (an Arc each) under its lock and formatted after; closed entries a chunk at a
    /// time (`closed::LIST_CHUNK`), the lock released in between.
    pub fn entries(&self, timeouts: &Timeouts) -> Vec<ConnEntry> {
        let now = self.clock.now_ms();
        let unreplied_ms = self.unreplied_ms();
        let mut out = Vec::new();
        for shard in &self.live {
            let conns: Vec<Arc<Conn>> = shard.locked().values().cloned().collect();
            out.extend(conns.iter().map(|c| c.entry(now, timeouts, unreplied_ms)));
        }
        self.closed.entries(now, &mut out);
        out
    }

    /// Every live connection (for shutdown and tests).
    pub fn live_connections(&self) -> Vec<Arc<Conn>> {
        self.live
            .iter()
            .flat_map(|s| s.locked().values().cloned().collect::<Vec<_>>())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Client 10.0.0.9:40000 to 10.0.0.1:`port`, scheduled to 10.0.0.2:`port`.
    fn new_conn(
        protocol: Protocol,
        port: u16,
        server: &Arc<RealServerState>,
        state: State,
    ) -> NewConn {
        NewConn {
            protocol,
            client: addr("10.0.0.9:40000"),
            local: addr(&format!("10.0.0.1:{port}")),
            dest: addr(&format!("10.0.0.2:{port}")),
            fwmark: 0,
            slot: Slot::take(server).expect("no limit"),
            template: None,
            state,
        }
    }

    #[test]
    fn states_move_between_active_and_inactive_counts() {
        let table = ConnTable::new();
        let server = Arc::new(RealServerState::default());
        let t = Timeouts::default();
        let c = table.open(new_conn(Protocol::Tcp, 80, &server, State::SynRecv));
        assert_eq!(
            (server.active(), server.inactive()),
            (1, 0),
            "SYN_RECV is active"
        );
        c.set_state(State::Established);
        assert_eq!((server.active(), server.inactive()), (1, 0));
        c.set_state(State::FinWait);
        assert_eq!((server.active(), server.inactive()), (0, 1));
        table.close(&c, State::TimeWait, &t);
        assert_eq!(table.live(), 0);
        assert_eq!(
            (server.active(), server.inactive()),
            (0, 1),
            "TIME_WAIT still counts"
        );
        let listed = table.entries(&t);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].state, "TIME_WAIT");
        assert!((119..=120).contains(&listed[0].expires));
        // Not yet due.
        assert_eq!(table.sweep(&t).expired, 0);
        assert_eq!(server.inactive(), 1);
    }

    #[test]
    fn expired_entries_leave_the_counts() {
        let table = ConnTable::new();
        let server = Arc::new(RealServerState::default());
        let zero = Timeouts {
            tcp: 0,
            tcp_fin: 0,
            udp: 0,
        };
        let c = table.open(new_conn(Protocol::Udp, 53, &server, State::Udp));
        assert_eq!(
            (server.active(), server.inactive()),
            (0, 1),
            "UDP is inactive"
        );
        assert_eq!(
            table.sweep(&zero).idle_closed,
            1,
            "idle past a zero timeout"
        );
        table.close(&c, State::Close, &zero);
        // CLOSE waits 10 s; pretend the time has passed by sweeping a table whose clock
        // is behind: move the entry to an expired bucket instead.
        table.closed.refile_all(0);
        assert_eq!(table.sweep(&zero).expired, 1);
        assert_eq!((server.active(), server.inactive()), (0, 0));
        assert!(table.entries(&zero).is_empty());
    }

    #[test]
    fn a_sweep_takes_only_the_due_seconds() {
        let table = ConnTable::new();
        let server = Arc::new(RealServerState::default());
        let t = Timeouts::default();
        let now = table.clock.now_ms();
        for (port, state) in [(1, State::Close), (2, State::TimeWait), (3, State::Close)] {
            let c = table.open(new_conn(Protocol::Tcp, port, &server, State::SynRecv));
            table.close(&c, state, &t);
        }
        assert_eq!((server.active(), server.inactive()), (0, 3));
        let before = table.closed.seconds();
        // CLOSE's 10 s are over, TIME_WAIT's 120 s are not.
        let at = now + 60_000;
        let due = before.iter().filter(|&&s| s * 1000 <= at).count();
        let swept = table.sweep_at(at, &t);
        assert_eq!((swept.expired, swept.buckets), (2, due));
        let after = table.closed.seconds();
        assert_eq!(after, before[due..], "the buckets not due are untouched");
        assert_eq!((server.active(), server.inactive()), (0, 1));
        let listed = table.entries(&t);
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].state.as_str(), listed[0].virtual_port),
            ("TIME_WAIT", 2)
        );
    }

    #[test]
    fn a_listing_copies_a_chunk_at_a_time_and_lists_each_entry_once() {
        let table = ConnTable::new();
        let server = Arc::new(RealServerState::default());
        let t = Timeouts::default();
        let n = closed::LIST_CHUNK * 5 / 2;
        for port in 0..n {
            let c = table.open(new_conn(
                Protocol::Tcp,
                port as u16,
                &server,
                State::SynRecv,
            ));
            table.close(&c, State::TimeWait, &t);
        }
        let until = table.closed.end();
        let mut cursor = Some(Default::default());
        let mut chunks = 0;
        let mut ports = Vec::new();
        while let Some(from) = cursor {
            let mut chunk = Vec::new();
            cursor = table.closed.chunk(from, until, &mut chunk);
            assert!(chunk.len() <= closed::LIST_CHUNK);
            ports.extend(chunk.iter().map(|(s, r)| r.entry(*s, 0).virtual_port));
            chunks += 1;
            // Connections closing while the listing goes on are not waited for.
            let c = table.open(new_conn(Protocol::Tcp, 0, &server, State::SynRecv));
            table.close(&c, State::TimeWait, &t);
        }
        assert_eq!(chunks, 3);
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), n, "every entry, once");
        assert_eq!(table.entries(&t).len(), n + chunks);
    }
}
