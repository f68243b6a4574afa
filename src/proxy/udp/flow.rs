//! UDP flows. A flow is (client addr:port, VIP): its first datagram is scheduled as
//! IPVS schedules a connection (persistence templates included) and the rest follow it
//! over a socket connected to that real server; the server's replies come back on that
//! socket and go to the client from the listening socket. The flow is an IPVS UDP entry
//! in the connection table (InActConn, `-L -c`), expiring after the udp timeout of
//! silence (the sweeper ends it).
//!
//! With one-packet scheduling (`-o`) every datagram is scheduled on its own and counted
//! as a connection; the flow only keeps an unconnected socket so that replies, from
//! whichever server, find their way back. Such flows are not IPVS entries and expire by
//! themselves.
//!
//! A flow ends, and the client's next datagram is scheduled anew, when its server
//! refuses (ICMP port unreachable, seen as ECONNREFUSED: a failure for passive
//! ejection, `proxy::ejection`, which its first reply clears) or leaves the service. A new
//! flow is admitted by `admission` (the flow cap, unanswered flows making room, the
//! per-source limit, a descriptor for its socket); flows not yet answered are kept in
//! creation order per worker, so the oldest of them can make room. A real server that
//! is one of the director's own listen addresses gets no flow (it would loop). Called
//! by the receive loops in `udp`.
//!
//! PROXY protocol v2 over UDP, each way only when the service asks: with
//! `proxy_protocol = "v2"` every datagram goes to the real server behind the flow's
//! header (built once per flow, sent as an iovec of its own: the payload is not
//! copied); with `accept_proxy` every datagram must begin with a header
//! (`proxy_header`), which is cut off, and the client it names is the flow's client for
//! everything (admission, scheduling, persistence, `-L -c`, logs), while replies go
//! back to the peer that sent it (the balancer). Such flows are kept apart, keyed by
//! (peer, VIP, client): a balancer that sends many clients from one port gets a flow per
//! client. Without `accept_proxy` the flows and their keys are as ever.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use socket2::{Domain, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::task::AbortHandle;

use super::admission::Refusal;
use super::{BATCH, ListenSocket, ROUNDS};
use crate::conn::{Conn, State};
use crate::descriptors::Held;
use crate::proxy::accounting::Accounting;
use crate::proxy::admit::New;
use crate::proxy::director::Director;
use crate::proxy::scheduling::Scheduling;
use crate::sched::{Choice, Packet};
use crate::sys::datagram::{Batch, MAX_PAYLOAD_V4, MAX_PAYLOAD_V6, SLOTS};
use crate::table::real_server::locate;
use crate::table::{Protocol, ProxyProtocol, ServerKey, Service, ServiceKey, Table};

/// What a flow is found by: the client, and the address it sent to.
pub type FlowKey = (SocketAddr, IpAddr);

/// What a flow of a service that takes PROXY headers (`accept_proxy`) is found by: the
/// peer that sent the datagram (the balancer), the address it sent to, and the client
/// its header names.
pub type ProxiedKey = (SocketAddr, IpAddr, SocketAddr);

/// Who a run of datagrams is from: the client (the header's, with `accept_proxy`), the
/// address it was sent to, and the peer that sent it when that is not the client.
#[derive(Debug, Clone, Copy)]
struct Who {
    client: SocketAddr,
    local: IpAddr,
    peer: Option<SocketAddr>,
}

/// Where a flow's datagrams go.
#[derive(Debug)]
enum Route {
    /// To one real server, as an IPVS connection entry (which knows whether the server
    /// has answered), which also holds the flow's persistence template.
    Server {
        conn: Arc<Conn>,
        accounting: Accounting,
        /// Its service, as the failure log names it (as `uvsadm -L` does).
        service: ServiceKey,
    },
    /// Each datagram to the server the scheduler picks for it.
    OnePacket {
        last_activity: AtomicU64,
        replied: AtomicBool,
    },
}

#[derive(Debug)]
pub struct Flow {
    pub client: SocketAddr,
    /// The address the client sent to (the VIP).
    pub local: IpAddr,
    upstream: UdpSocket,
    route: Route,
    task: OnceLock<AbortHandle>,
    /// Holds a place in the flow table (given back once, by whoever clears it: the
    /// flow's end, or an eviction that hands the place to a newcomer).
    counted: AtomicBool,
    /// Ended or evicted: its client's next datagram is scheduled anew.
    ended: AtomicBool,
    /// When it was made (the connection table's clock, milliseconds).
    created_ms: u64,
    /// Datagrams from the client, counted only while a sync master runs (the
    /// kernel's `in_pkts`, which decides when a connection is synced again).
    in_packets: AtomicU32,
    /// The socket's descriptor, from the data plane's budget.
    _held: Held,
    /// Its place under its client's per-source limits (`proxy::admit`).
    _admitted: crate::proxy::admit::Admitted,
    /// PROXY protocol over UDP; None (no allocation) when the service neither takes
    /// nor sends headers.
    proxy: Option<Box<FlowProxy>>,
}

/// What a flow keeps for the PROXY protocol over UDP.
#[derive(Debug)]
struct FlowProxy {
    /// The peer whose datagrams name this flow's client in their header
    /// (`accept_proxy`): replies go back to it. None: the client sends itself.
    peer: Option<SocketAddr>,
    /// The PROXY v2 header sent in front of each datagram to the real server
    /// (`proxy_protocol = "v2"`); empty: none.
    header: Box<[u8]>,
    /// The largest payload that fits one datagram behind `header` (the UDP limit of
    /// the real server's family less the header).
    max_payload: usize,
}

/// A flow that has carried a datagram either way this long after it was made, having
/// been answered, is in use (conntrack's ASSURED UDP: a stream, not a lone query and
/// its answer) and is never ended to make room.
const ASSURED_AFTER_MS: u64 = 2_000;

thread_local! {
    /// This worker's flows not yet answered, oldest first (some may have been answered
    /// or ended since: they are skipped, or moved on to `UNASSURED`).
    static UNREPLIED: RefCell<VecDeque<Weak<Flow>>> = const { RefCell::new(VecDeque::new()) };
    /// This worker's flows answered but not (yet) in use, oldest first.
    static UNASSURED: RefCell<VecDeque<Weak<Flow>>> = const { RefCell::new(VecDeque::new()) };
}

/// Which flows may make room for a new one, first to last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// Its real server never answered.
    Unanswered,
    /// Answered, and nothing crossed since its first two seconds (a query and its
    /// answer, done).
    AnsweredOnce,
}

impl Flow {
    /// Where its replies go: the client, or the peer that speaks for it.
    fn reply_to(&self) -> SocketAddr {
        match &self.proxy {
            None => self.client,
            Some(p) => p.peer.unwrap_or(self.client),
        }
    }

    /// The peer that sends for the client (`accept_proxy`).
    fn peer(&self) -> Option<SocketAddr> {
        self.proxy.as_ref().and_then(|p| p.peer)
    }

    /// Whether the client's datagrams may still follow this flow: not when its server
    /// has left the service (they are scheduled anew).
    fn is_usable(&self) -> bool {
        !self.ended.load(Relaxed)
            && match &self.route {
                Route::Server { conn, .. } => conn.server.is_available(),
                Route::OnePacket { .. } => true,
            }
    }

    /// Whether the real servers have answered nothing yet.
    fn is_unreplied(&self) -> bool {
        match &self.route {
            Route::Server { conn, .. } => !conn.is_replied(),
            Route::OnePacket { replied, .. } => !replied.load(Relaxed),
        }
    }

    /// Answered, and has carried something since its first two seconds: in use.
    fn is_assured(&self) -> bool {
        let last = match &self.route {
            Route::Server { conn, .. } => conn.last_activity(),
            Route::OnePacket { last_activity, .. } => last_activity.load(Relaxed),
        };
        !self.is_unreplied() && last >= self.created_ms + ASSURED_AFTER_MS
    }

    /// Ends the flow: its task stops, and on its way out takes the flow out of the
    /// tables.
    pub fn end(&self) {
        self.ended.store(true, Relaxed);
        if let Route::Server { conn, .. } = &self.route {
            // Through the entry too, so the sweeper does not end it a second time.
            conn.end();
        }
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }
}

/// Ends `flow` and takes its place in the table; false when it is ending anyway (its
/// place then comes back by itself).
fn take_place_of(flow: &Flow) -> bool {
    if flow.ended.swap(true, Relaxed) {
        return false;
    }
    if let Route::Server { conn, .. } = &flow.route
        && !conn.end()
    {
        // The sweeper ended it a moment ago.
        return false;
    }
    if let Some(task) = flow.task.get() {
        task.abort();
    }
    flow.counted.swap(false, Relaxed)
}

/// Ends this worker's oldest unanswered flow, else its oldest flow answered once and
/// done, and hands its place in the table over; None when it has neither (every flow
/// of this worker is in use).
fn evict() -> Option<Eviction> {
    let unanswered = UNREPLIED.with_borrow_mut(|queue| {
        while let Some(weak) = queue.pop_front() {
            let Some(flow) = weak.upgrade() else { continue };
            if !flow.is_unreplied() {
                answered(&flow);
                continue;
            }
            if take_place_of(&flow) {
                tracing::debug!(client = %flow.client, "unanswered UDP flow ended to make room");
                return true;
            }
        }
        false
    });
    if unanswered {
        return Some(Eviction::Unanswered);
    }
    UNASSURED.with_borrow_mut(|queue| {
        while let Some(weak) = queue.pop_front() {
            let Some(flow) = weak.upgrade() else { continue };
            if flow.is_assured() {
                continue;
            }
            if take_place_of(&flow) {
                tracing::debug!(client = %flow.client, "UDP flow answered once ended to make room");
                return Some(Eviction::AnsweredOnce);
            }
        }
        None
    })
}

/// Moves a flow that has been answered on from `UNREPLIED` to `UNASSURED`, unless it is
/// in use already or has ended.
fn answered(flow: &Arc<Flow>) {
    if !flow.is_assured() && !flow.ended.load(Relaxed) {
        UNASSURED.with_borrow_mut(|next| next.push_back(Arc::downgrade(flow)));
    }
}

/// Remembers a new flow as unanswered, and moves on the oldest entries that no longer
/// are, so each queue stays about as long as its flows are many.
fn remember_unreplied(flow: &Arc<Flow>) {
    UNREPLIED.with_borrow_mut(|queue| {
        while let Some(front) = queue.front() {
            match front.upgrade() {
                Some(f) if f.is_unreplied() => break,
                Some(f) => answered(&f),
                None => {}
            }
            queue.pop_front();
        }
        queue.push_back(Arc::downgrade(flow));
    });
    UNASSURED.with_borrow_mut(|queue| {
        while queue.front().is_some_and(|w| {
            w.upgrade()
                .is_none_or(|f| f.is_assured() || f.ended.load(Relaxed))
        }) {
            queue.pop_front();
        }
    });
}

/// Everything one batch of client datagrams needs to reach its flows.
struct Delivery<'a> {
    listener: &'a Arc<ListenSocket>,
    director: &'a Arc<Director>,
    batch: &'a Batch,
    /// Loaded when a datagram needs the scheduler.
    table: Option<Arc<Table>>,
    now_ms: u64,
    /// False while the address drains.
    new_flows: bool,
}

impl Delivery<'_> {
    fn table(&mut self) -> Arc<Table> {
        Arc::clone(
            self.table
                .get_or_insert_with(|| self.director.table.snapshot()),
        )
    }

    fn service(&mut self) -> Option<Arc<Service>> {
        self.table().route(&self.listener.listen).cloned()
    }

    fn packet(&self, client: SocketAddr, local: IpAddr) -> Packet {
        Packet {
            client,
            local: SocketAddr::new(local, self.listener.listen.port),
        }
    }
}

/// The address datagram `i` of `batch` was sent to: the listener's own, or on a
/// wildcard listener the one the kernel said (IP_PKTINFO).
fn local_of(listener: &ListenSocket, batch: &Batch, i: usize) -> IpAddr {
    if listener.listen.addr.is_unspecified() {
        batch.local(i).unwrap_or(listener.listen.addr)
    } else {
        listener.listen.addr
    }
}

/// Sends each datagram of `batch` (just received on `listener`) on its client's flow,
/// opening flows for new clients when `new_flows` (a draining address makes none: its
/// datagrams from other clients are dropped). Runs of datagrams from one client go in
/// one call.
pub(super) fn forward(
    listener: &Arc<ListenSocket>,
    batch: &Batch,
    director: &Arc<Director>,
    new_flows: bool,
) {
    let local_of = |i: usize| local_of(listener, batch, i);
    let mut delivery = Delivery {
        listener,
        director,
        batch,
        table: None,
        now_ms: director.conns.clock.now_ms(),
        new_flows,
    };
    let mut flows = listener.flows();
    let n = batch.len();
    let mut i = 0;
    while i < n {
        let (Some(client), local) = (batch.peer(i), local_of(i)) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < n && batch.peer(j) == Some(client) && local_of(j) == local {
            j += 1;
        }
        let who = Who {
            client,
            local,
            peer: None,
        };
        deliver(&mut delivery, &mut flows, (client, local), who, i..j);
        i = j;
    }
}

static PROXY_REJECTED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// [`forward`] for a service that takes PROXY headers (`accept_proxy`): each datagram's
/// header is read and cut off, and the datagram goes on the flow of (peer, VIP, the
/// client it names); a datagram without a good header is dropped and counted in the
/// service's `proxy_rejected`, with a warning at most every ten seconds. When
/// `trusted_only` (`accept_proxy_from`), the service of now is looked up once for the
/// batch, and a datagram from a peer not in its list is rejected so, unread.
pub(super) fn forward_proxied(
    listener: &Arc<ListenSocket>,
    batch: &mut Batch,
    director: &Arc<Director>,
    new_flows: bool,
    trusted_only: bool,
) {
    let n = batch.len();
    // Each datagram's client; None: dropped.
    let mut clients: [Option<SocketAddr>; SLOTS] = [None; SLOTS];
    let mut rejected = 0u64;
    let (table, service) = if trusted_only {
        let table = director.table.snapshot();
        let service = table.route(&listener.listen).cloned();
        (Some(table), service)
    } else {
        (None, None)
    };
    for (i, client) in clients.iter_mut().enumerate().take(n) {
        let Some(peer) = batch.peer(i) else { continue };
        let header = match &service {
            Some(s) if !s.options.trusts_proxy_from(peer.ip()) => {
                Err(super::proxy_header::Rejected::Untrusted)
            }
            _ => super::proxy_header::read(batch.data(i)),
        };
        match header {
            Ok(header) => {
                batch.strip(i, header.len);
                *client = Some(header.client.unwrap_or(peer));
            }
            Err(why) => {
                rejected += 1;
                tracing::debug!(listen = %listener.listen, %peer, reason = %why,
                    "UDP datagram without a good PROXY v2 header dropped");
                PROXY_REJECTED.warn(|suppressed| {
                    tracing::warn!(listen = %listener.listen, %peer, reason = %why, suppressed,
                        "UDP datagram without a good PROXY v2 header dropped");
                });
            }
        }
    }
    let batch = &*batch;
    let local_of = |i: usize| local_of(listener, batch, i);
    let mut delivery = Delivery {
        listener,
        director,
        batch,
        table,
        now_ms: director.conns.clock.now_ms(),
        new_flows,
    };
    if rejected > 0
        && let Some(service) = delivery.service()
    {
        service
            .state
            .admission
            .proxy_rejected
            .fetch_add(rejected, Relaxed);
    }
    let mut flows = listener.proxied();
    let mut i = 0;
    while i < n {
        let (Some(peer), Some(client)) = (batch.peer(i), clients[i]) else {
            i += 1;
            continue;
        };
        let local = local_of(i);
        let mut j = i + 1;
        while j < n
            && clients[j] == Some(client)
            && batch.peer(j) == Some(peer)
            && local_of(j) == local
        {
            j += 1;
        }
        let who = Who {
            client,
            local,
            peer: Some(peer),
        };
        deliver(&mut delivery, &mut flows, (peer, local, client), who, i..j);
        i = j;
    }
}

/// Sends datagrams `range` of the batch, all from one client (`who`), on its flow,
/// found in `flows` by `key`.
fn deliver<K: Copy + Eq + Hash>(
    d: &mut Delivery<'_>,
    flows: &mut HashMap<K, Arc<Flow>>,
    key: K,
    who: Who,
    range: std::ops::Range<usize>,
) {
    let mut refused_once = false;
    loop {
        let flow = match flows.get(&key) {
            // A flow whose server left goes on only while its service is gone too, as
            // IPVS forwards the connections of a deleted service.
            Some(flow) if flow.is_usable() || d.service().is_none() => Arc::clone(flow),
            existing => {
                if let Some(stale) = existing {
                    tracing::debug!(client = %who.client, "flow's server left the service: scheduling anew");
                    stale.end();
                    flows.remove(&key);
                }
                if !d.new_flows {
                    return;
                }
                let Some(flow) = open(d, who, range.len()) else {
                    return;
                };
                flows.insert(key, Arc::clone(&flow));
                flow
            }
        };
        let Route::Server {
            conn,
            accounting,
            service,
        } = &flow.route
        else {
            send_one_by_one(d, &flow, range);
            return;
        };
        // Sent straight, not through the runtime's write readiness: a new socket is not
        // known writable until the next turn of the event loop, and a UDP send that
        // finds the buffer full drops the datagram, as the network would.
        match send_upstream(d, &flow, range.clone(), None) {
            Ok((sent, bytes)) => {
                accounting.datagrams_in(sent, bytes);
                conn.touch(d.now_ms);
                if d.director.sync.queue.is_on() {
                    let before = flow.in_packets.fetch_add(sent as u32, Relaxed);
                    if crate::sync::queue::resync_due(before, sent as u32) {
                        d.director.sync_conn(conn, State::Udp);
                    }
                }
                return;
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                // The server answered an earlier datagram with port unreachable.
                conn.server.connect_failures.refused.fetch_add(1, Relaxed);
                tracing::debug!(client = %who.client, server = %conn.dest, "real server refused: scheduling anew");
                log_failure(service, conn, &e);
                server_failed(d.service().as_deref(), conn);
                flow.end();
                flows.remove(&key);
                if refused_once {
                    return;
                }
                refused_once = true;
            }
            Err(e) => {
                tracing::trace!(client = %who.client, error = %e, "datagram dropped");
                return;
            }
        }
    }
}

/// One-packet scheduling: each datagram to the server the scheduler picks for it.
fn send_one_by_one(d: &mut Delivery<'_>, flow: &Arc<Flow>, range: std::ops::Range<usize>) {
    let Route::OnePacket { last_activity, .. } = &flow.route else {
        return;
    };
    last_activity.store(d.now_ms, Relaxed);
    let Some(service) = d.service() else {
        return;
    };
    let packet = d.packet(flow.client, flow.local);
    let table = d.table();
    let totals = table.totals_handle();
    let scheduling = Scheduling::new(d.director, &service, &totals, &packet, Protocol::Udp);
    for i in range {
        // Each datagram is a connection of its own here: the lists of now decide.
        if !crate::proxy::admit::still_allowed(&table, &service, packet.client.ip()) {
            continue;
        }
        let Some(Choice { server, template }) = scheduling.servers().next() else {
            scheduling.unavailable();
            continue;
        };
        // The "connection" ends with its one datagram; its template is synced, as the
        // kernel's master goes on to an OPS connection's template (ip_vs_sync_conn).
        if let Some(t) = &template {
            d.director.sync.queue.template(t);
        }
        drop(template);
        let dest = scheduling.destination(server);
        if scheduling.loops_back(server, dest) {
            continue;
        }
        let accounting = scheduling.count(server, d.now_ms);
        match send_upstream(d, flow, i..i + 1, Some(dest)) {
            Ok((1, bytes)) => accounting.datagrams_in(1, bytes),
            Ok(_) => {}
            Err(e) => tracing::trace!(%dest, error = %e, "datagram dropped"),
        }
    }
}

/// Sends datagrams `range` of the batch on the flow's socket (to `to`; None: the
/// server it is connected to), behind the flow's PROXY v2 header when it has one.
/// Returns the datagrams sent and their bytes, counted as the client sent them (no
/// header: IPVS counts what the client sent). A datagram too large to carry the header
/// (over 65 507 bytes with it over IPv4, 65 527 over IPv6) is dropped and counted
/// (`udp::admission`, `uvs status`).
fn send_upstream(
    d: &Delivery<'_>,
    flow: &Flow,
    range: std::ops::Range<usize>,
    to: Option<SocketAddr>,
) -> io::Result<(usize, usize)> {
    let batch = d.batch;
    let bytes = |r: std::ops::Range<usize>| r.map(|i| batch.payload_len(i)).sum::<usize>();
    let socket = flow.upstream.as_fd();
    let Some(proxy) = flow.proxy.as_deref().filter(|p| !p.header.is_empty()) else {
        let sent = batch.send(socket, range.clone(), to, None)?;
        return Ok((sent, bytes(range.start..range.start + sent)));
    };
    let (mut sent, mut total) = (0, 0);
    let mut i = range.start;
    while i < range.end {
        if batch.payload_len(i) > proxy.max_payload {
            d.director.udp_flows.oversized();
            tracing::trace!(client = %flow.client, bytes = batch.payload_len(i),
                "datagram too large for its PROXY v2 header: dropped");
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < range.end && batch.payload_len(j) <= proxy.max_payload {
            j += 1;
        }
        match batch.send_prefixed(socket, i..j, to, None, &proxy.header) {
            Ok(n) => {
                sent += n;
                total += bytes(i..i + n);
                if i + n < j {
                    // The socket took no more: the rest are dropped, as a full buffer
                    // drops them.
                    break;
                }
            }
            Err(e) if sent == 0 => return Err(e),
            Err(_) => break,
        }
        i = j;
    }
    Ok((sent, total))
}

/// A socket towards real servers of `family_of`'s address family, connected to `dest`
/// when given.
fn upstream_socket(family_of: SocketAddr, dest: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let socket = Socket::new(
        Domain::for_address(family_of),
        Type::DGRAM.nonblocking().cloexec(),
        Some(socket2::Protocol::UDP),
    )?;
    match dest {
        // connect binds an ephemeral port and filters what comes back to the server's.
        Some(dest) => socket.connect(&dest.into())?,
        None => {
            let any: SocketAddr = if family_of.is_ipv4() {
                (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            socket.bind(&any.into())?;
        }
    }
    UdpSocket::from_std(socket.into())
}

/// A new flow's admission: its client within the per-source limit, a place in the
/// table (an unanswered flow making room if need be), a descriptor for its socket.
/// What it took is given back when it is dropped, unless a flow is made with it
/// (`into_flow`): then `FlowEnd` gives it back.
struct Admitted<'a> {
    director: &'a Director,
    client: IpAddr,
    /// Counted against the client's per-source limit.
    source: bool,
    /// Holds a place in the table.
    place: bool,
    held: Option<Held>,
}

impl<'a> Admitted<'a> {
    fn new(director: &'a Director, service: &Service, client: IpAddr) -> Option<Admitted<'a>> {
        let admission = &director.udp_flows;
        let mut admitted = Admitted {
            director,
            client,
            source: false,
            place: false,
            held: None,
        };
        if !admission.admit_source(client) {
            admission.refused(Refusal::PerSource);
            return None;
        }
        admitted.source = true;
        if !admission.take_place() {
            let Some(how) = evict() else {
                service.state.flows_dropped.fetch_add(1, Relaxed);
                admission.refused(Refusal::Full);
                return None;
            };
            // The evicted flow's place is this one's now.
            admission.evicted(how);
        }
        admitted.place = true;
        match director.descriptors.try_take(1) {
            Some(held) => admitted.held = Some(held),
            None => {
                admission.refused(Refusal::Descriptors);
                return None;
            }
        }
        Some(admitted)
    }

    /// A flow is made: from now on it holds the place, the source's count and the
    /// descriptor.
    fn into_flow(mut self) -> Option<Held> {
        self.source = false;
        self.place = false;
        self.held.take()
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        let admission = &self.director.udp_flows;
        if self.place {
            admission.release_place();
        }
        if self.source {
            admission.release_source(self.client);
        }
    }
}

/// Opens a flow for a client's first datagram: schedules it (or, for one-packet
/// scheduling, only makes the reply path), if it is admitted. None: the datagram is
/// dropped (no service, no room, no server, no socket), each counted where it belongs.
fn open(d: &mut Delivery<'_>, who: Who, datagrams: usize) -> Option<Arc<Flow>> {
    let service = d.service()?;
    if service.options.accept_proxy.is_some() != who.peer.is_some() {
        // The listener has not caught up with a change of `accept_proxy` yet (its
        // manager follows the table): a datagram read the other way is dropped.
        tracing::debug!(client = %who.client, "accept_proxy changed a moment ago: datagram dropped");
        return None;
    }
    if let Some(peer) = who.peer
        && !service.options.trusts_proxy_from(peer.ip())
    {
        // `accept_proxy_from` was set a moment ago and the listener has not caught up
        // (it checks every batch once it has): no flow for an untrusted peer meanwhile.
        let rejected = u64::try_from(datagrams).unwrap_or(u64::MAX);
        service
            .state
            .admission
            .proxy_rejected
            .fetch_add(rejected, Relaxed);
        tracing::debug!(%peer, "PROXY header from a peer not in accept_proxy_from: datagram dropped");
        return None;
    }
    let table = d.table();
    let admit = || crate::proxy::admit::admit(&table, &service, who.client.ip(), New::Flow);
    let Ok(client) = admit() else {
        // A refusal is counted per datagram dropped, however the datagrams fell into
        // batches: the rest of this run is asked about (and counted) too.
        for _ in 1..datagrams {
            let _ = admit();
        }
        return None;
    };
    let admitted = Admitted::new(d.director, &service, who.client.ip())?;
    let packet = d.packet(who.client, who.local);
    let route = if service.flags.one_packet() {
        let upstream = match upstream_socket(packet.local, None) {
            Ok(s) => s,
            Err(e) => {
                d.director.udp_flows.socket_failed(&e);
                return None;
            }
        };
        (
            upstream,
            Route::OnePacket {
                last_activity: AtomicU64::new(d.now_ms),
                replied: AtomicBool::new(false),
            },
        )
    } else {
        let totals = d.table().totals_handle();
        let scheduling = Scheduling::new(d.director, &service, &totals, &packet, Protocol::Udp);
        let Some((Choice { server, template }, slot)) = scheduling.next(&mut scheduling.servers())
        else {
            if scheduling.at_limit() {
                // Datagrams have no queue: the flow is dropped, and counted.
                crate::proxy::queue::flow_refused(&service);
            } else {
                scheduling.unavailable();
            }
            tracing::debug!(client = %who.client, "no real server available");
            return None;
        };
        let dest = scheduling.destination(server);
        if scheduling.loops_back(server, dest) {
            scheduling.unavailable();
            tracing::debug!(client = %who.client, %dest, "not forwarding to the director's own listen address");
            return None;
        }
        let upstream = match upstream_socket(dest, Some(dest)) {
            Ok(s) => s,
            Err(e) => {
                // Our shortage (descriptors, memory), not the server's fault: logged,
                // not counted against it.
                d.director.udp_flows.socket_failed(&e);
                return None;
            }
        };
        let opened = scheduling.open(server, slot, template, dest, State::Udp, d.now_ms);
        (
            upstream,
            Route::Server {
                conn: opened.conn,
                accounting: opened.accounting,
                service: service.key,
            },
        )
    };
    // Over UDP only v2 exists: a fwmark service's "v1" (for its TCP listeners) sends
    // nothing on its UDP ones.
    let header = match service.options.proxy_protocol {
        Some(ProxyProtocol::V2) => {
            crate::proxy::proxy_out::datagram_header(who.client, packet.local)
        }
        _ => Vec::new(),
    };
    let proxy = (who.peer.is_some() || !header.is_empty()).then(|| {
        let server_v6 = match &route.1 {
            Route::Server { conn, .. } => conn.dest.is_ipv6(),
            Route::OnePacket { .. } => packet.local.is_ipv6(),
        };
        let limit = if server_v6 {
            MAX_PAYLOAD_V6
        } else {
            MAX_PAYLOAD_V4
        };
        Box::new(FlowProxy {
            peer: who.peer,
            max_payload: limit.saturating_sub(header.len()),
            header: header.into_boxed_slice(),
        })
    });
    let held = admitted.into_flow()?;
    let flow = Arc::new(Flow {
        client: who.client,
        local: who.local,
        upstream: route.0,
        route: route.1,
        task: OnceLock::new(),
        counted: AtomicBool::new(true),
        in_packets: AtomicU32::new(0),
        ended: AtomicBool::new(false),
        created_ms: d.now_ms,
        _held: held,
        _admitted: client,
        proxy,
    });
    remember_unreplied(&flow);
    let end = FlowEnd {
        flow: Arc::clone(&flow),
        listener: Arc::clone(d.listener),
        director: Arc::clone(d.director),
    };
    let task = tokio::spawn(relay(end)).abort_handle();
    if let Route::Server { conn, .. } = &flow.route {
        conn.attach(task.clone());
    }
    let _ = flow.task.set(task);
    Some(flow)
}

/// Takes a flow out of its listener's map, the connection table and the flow count when
/// its task ends, however it ends (idle, refused, aborted before it ever ran).
struct FlowEnd {
    flow: Arc<Flow>,
    listener: Arc<ListenSocket>,
    director: Arc<Director>,
}

impl Drop for FlowEnd {
    fn drop(&mut self) {
        let (client, local) = (self.flow.client, self.flow.local);
        match self.flow.peer() {
            None => forget(&mut self.listener.flows(), (client, local), &self.flow),
            Some(peer) => forget(
                &mut self.listener.proxied(),
                (peer, local, client),
                &self.flow,
            ),
        }
        if let Route::Server { conn, .. } = &self.flow.route {
            self.director.conns.remove(conn);
        }
        let admission = &self.director.udp_flows;
        if self.flow.counted.swap(false, Relaxed) {
            admission.release_place();
        }
        admission.release_source(self.flow.client.ip());
    }
}

/// Takes `flow` out of `flows` (by `key`), if it is still the one there.
fn forget<K: Eq + Hash>(flows: &mut HashMap<K, Arc<Flow>>, key: K, flow: &Arc<Flow>) {
    if flows.get(&key).is_some_and(|f| Arc::ptr_eq(f, flow)) {
        flows.remove(&key);
    }
}

/// Brings the real servers' replies back to the client until the flow ends.
async fn relay(end: FlowEnd) {
    let flow = &end.flow;
    loop {
        let ready = match &flow.route {
            Route::Server { .. } => {
                flow.upstream
                    .ready(Interest::READABLE | Interest::ERROR)
                    .await
            }
            Route::OnePacket {
                last_activity,
                replied,
            } => {
                let mut timeout_ms = u64::from(end.director.table.snapshot().timeouts().udp) * 1000;
                if !replied.load(Relaxed) {
                    timeout_ms = timeout_ms.min(end.director.conns.unreplied_ms());
                }
                let idle_ms = end
                    .director
                    .conns
                    .clock
                    .now_ms()
                    .saturating_sub(last_activity.load(Relaxed));
                if idle_ms >= timeout_ms {
                    return;
                }
                let left = Duration::from_millis(timeout_ms - idle_ms);
                tokio::select! {
                    ready = flow.upstream.ready(Interest::READABLE | Interest::ERROR) => ready,
                    () = tokio::time::sleep(left) => continue,
                }
            }
        };
        let ready = match ready {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "cannot poll a flow's socket");
                return;
            }
        };
        if ready.is_error() {
            let error = flow.upstream.take_error().ok().flatten();
            if let Some(e) = error {
                flow_error(flow, &e, &end);
                if matches!(flow.route, Route::Server { .. }) {
                    return;
                }
            }
            // The error is taken (here, or by a send that reported it): forget the
            // readiness, or the next wait would return at once, forever.
            let _ = flow.upstream.try_io(Interest::ERROR, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
        match BATCH.with_borrow_mut(|batch| relay_replies(flow, batch, &end)) {
            None => return,
            // Other tasks first: a server that floods its client must not hold the worker.
            Some(true) => tokio::task::yield_now().await,
            Some(false) => {}
        }
    }
}

/// Counts an error a flow's socket reported (an ICMP error from the server's side),
/// for the log and for passive ejection.
fn flow_error(flow: &Flow, e: &io::Error, end: &FlowEnd) {
    if let Route::Server { conn, service, .. } = &flow.route {
        let snapshot = end.director.table.snapshot();
        server_failed(
            snapshot.route(&end.listener.listen).map(|s| s.as_ref()),
            conn,
        );
        let failures = &conn.server.connect_failures;
        if e.kind() == io::ErrorKind::ConnectionRefused {
            failures.refused.fetch_add(1, Relaxed);
        } else {
            failures.other.fetch_add(1, Relaxed);
        }
        tracing::debug!(client = %flow.client, server = %conn.dest, error = %e, "flow ended by its real server");
        log_failure(service, conn, e);
    }
}

/// An ICMP error from `conn`'s real server ended a flow of `service` (as the table has
/// it now): one more failure in a row for passive ejection, when the service ejects.
fn server_failed(service: Option<&Service>, conn: &Conn) {
    let Some(service) = service.filter(|s| s.options.ejection.is_some()) else {
        return;
    };
    if let Some(server) = service
        .servers
        .iter()
        .find(|s| Arc::ptr_eq(&s.state, &conn.server))
    {
        crate::proxy::ejection::failed(
            service,
            server,
            &conn.dest,
            crate::proxy::ejection::Failure::Icmp,
        );
    }
}

/// Logs (rate-limited, with counts: `failure_log`) an error from a flow's real server
/// of `service`, named by its key in every line (a fwmark service's too), as the
/// summaries name it and `uvsadm -L` shows it.
fn log_failure(service: &ServiceKey, conn: &Conn, e: &io::Error) {
    use crate::proxy::failure_log::{Cause, connect_failed};
    let cause = Cause::of(e);
    if cause == Cause::Refused {
        let detail = "connection refused (ICMP port unreachable)";
        connect_failed(service, &conn.server, &conn.dest, cause, &detail);
    } else {
        connect_failed(service, &conn.server, &conn.dest, cause, e);
    }
}

/// Moves the replies waiting on the flow's socket to the client, at most [`ROUNDS`]
/// batches. None: the flow ends; else whether more may be waiting.
fn relay_replies(flow: &Flow, batch: &mut Batch, end: &FlowEnd) -> Option<bool> {
    for _ in 0..ROUNDS {
        let result = flow.upstream.try_io(Interest::READABLE, || {
            let n = batch.receive(flow.upstream.as_fd())?;
            reply(flow, batch, end);
            if n < SLOTS {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(false),
            Err(e) => {
                flow_error(flow, &e, end);
                // An unconnected socket's errors say nothing about one server.
                return matches!(flow.route, Route::OnePacket { .. }).then_some(false);
            }
        }
    }
    Some(true)
}

/// Sends a batch of replies to the client and counts them.
fn reply(flow: &Flow, batch: &Batch, end: &FlowEnd) {
    let now = end.director.conns.clock.now_ms();
    match &flow.route {
        Route::Server {
            conn, accounting, ..
        } => {
            // The socket is connected: what it receives comes from the real server.
            let sent =
                end.listener
                    .send_to_client(batch, 0..batch.len(), flow.reply_to(), flow.local);
            let bytes = (0..sent).map(|i| batch.data(i).len()).sum();
            accounting.datagrams_out(sent, bytes);
            conn.touch(now);
            if conn.mark_replied() {
                // The server answers: its run of failures (passive ejection) is over.
                conn.server.ejection.succeeded();
                if let Some(t) = &conn.template {
                    t.assure();
                }
            }
        }
        Route::OnePacket {
            last_activity,
            replied,
        } => {
            last_activity.store(now, Relaxed);
            if reply_one_by_one(flow, batch, end) {
                replied.store(true, Relaxed);
            }
        }
    }
}

/// Replies on a one-packet flow's unconnected socket: each is passed on and counted
/// only if it comes from a real server of the service, as IPVS translates only what
/// matches a connection; anything else reaching the socket's port is dropped. Returns
/// whether any reply was passed on.
fn reply_one_by_one(flow: &Flow, batch: &Batch, end: &FlowEnd) -> bool {
    let snapshot = end.director.table.snapshot();
    let Some(service) = snapshot.route(&end.listener.listen) else {
        return false;
    };
    let totals = snapshot.totals_handle();
    let mut passed = false;
    for i in 0..batch.len() {
        let Some(from) = batch.peer(i) else { continue };
        // The server as listed: with its port, or without one (the VIP's port).
        let server = [from.port(), 0].into_iter().find_map(|port| {
            let key = ServerKey {
                addr: from.ip(),
                port,
            };
            locate(&service.servers, &key, 0)
        });
        let Some(server) = server else {
            tracing::trace!(%from, "datagram from a stranger dropped");
            continue;
        };
        if end
            .listener
            .send_to_client(batch, i..i + 1, flow.reply_to(), flow.local)
            == 1
        {
            passed = true;
            Accounting::new(
                Arc::clone(&service.state),
                Arc::clone(&service.servers[server].state),
                Arc::clone(&totals),
                0,
            )
            .datagrams_out(1, batch.data(i).len());
        }
    }
    passed
}
