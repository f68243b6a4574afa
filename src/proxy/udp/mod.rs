//! The UDP data plane. Each UDP listen address gets one socket per worker
//! (SO_REUSEPORT: the kernel hashes each client's datagrams to one of them, so a flow
//! stays on one thread). A datagram from a client that has no flow yet is scheduled as
//! IPVS schedules a connection (persistence included) and opens a flow: a socket
//! connected to the real server, whose replies go back to the client from the address
//! and port the client spoke to. Datagrams move in batches (recvmmsg / sendmmsg).
//!
//! A listen address the table no longer wants stops taking new flows but keeps serving
//! the ones it has until they expire, as IPVS keeps forwarding the connections of a
//! deleted service; if the address is wanted again meanwhile, the same sockets carry on.
//! Its sockets close once its last flow has gone (at once when it has none), so the
//! address is free again for whatever the table wants there next.
//! Flows themselves live in `flow`; who gets one is decided by `admission`; the PROXY
//! v2 header a service may take in each datagram is read by `proxy_header`. Started and
//! stopped by the listener manager (`listeners`), which also tells each address whether
//! its service takes PROXY headers (`accept_proxy`).

pub mod admission;
pub mod flow;
pub mod proxy_header;

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::atomic::AtomicU8;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use self::flow::{Flow, FlowKey, ProxiedKey};
use crate::descriptors::Held;
use crate::lock::Locked;
use crate::proxy::director::Director;
use crate::proxy::listeners::listen_socket;
use crate::sys::datagram::{Batch, SLOTS};
use crate::table::ListenAddr;

/// How often a draining listen address looks whether its last flow has gone (it looks
/// at once when it starts draining).
const DRAIN_CHECK: Duration = Duration::from_secs(1);
/// Batches taken from one socket before other tasks get a turn.
const ROUNDS: usize = 8;
/// Receive buffer asked for a listening socket: room for bursts of new clients.
const LISTEN_RCVBUF: usize = 4 << 20;

thread_local! {
    /// One batch per worker thread: a batch is filled and emptied within one poll, never
    /// across an await, so every socket of the thread can share it.
    static BATCH: RefCell<Batch> = RefCell::new(Batch::new());
}

/// Makes sure nobody else is bound to `listen` before uvs binds its sockets there. They
/// share the port through SO_REUSEPORT, which the kernel lets any other socket of the
/// same user join, silently taking a share of new clients (a second daemon with the
/// same service would): a socket bound without it finds any earlier one, and the
/// second daemon gets "address already in use" for UDP as it does for TCP.
fn check_unused(listen: &ListenAddr, freebind: bool) -> io::Result<()> {
    let addr = SocketAddr::new(listen.addr, listen.port);
    let probe = listen_socket(listen, freebind)?;
    probe.bind(&addr.into()).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                io::ErrorKind::AddrInUse,
                "Address already in use (another process is bound to it)",
            )
        } else {
            e
        }
    })
}

/// A listening UDP socket for `listen`; one per worker, sharing the port.
pub fn bind_udp(listen: &ListenAddr, freebind: bool) -> io::Result<std::net::UdpSocket> {
    let addr = SocketAddr::new(listen.addr, listen.port);
    let socket = listen_socket(listen, freebind)?;
    socket.set_reuse_port(true)?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(LISTEN_RCVBUF);
    socket.bind(&addr.into())?;
    if listen.addr.is_unspecified() {
        crate::sys::datagram::report_local_address(socket.as_fd(), addr.is_ipv6())?;
    }
    Ok(socket.into())
}

/// One worker's socket for a listen address, and the flows whose clients the kernel
/// sends to it.
#[derive(Debug)]
pub struct ListenSocket {
    pub listen: ListenAddr,
    socket: UdpSocket,
    flows: Mutex<HashMap<FlowKey, Arc<Flow>>>,
    /// The flows of clients named by PROXY headers (`accept_proxy`); empty otherwise.
    proxied: Mutex<HashMap<ProxiedKey, Arc<Flow>>>,
    /// Whether the service takes a PROXY v2 header in each datagram, and from whom (the
    /// group's: a [`ProxyHeaders`] as u8).
    accepts_proxy: Arc<AtomicU8>,
}

/// Whether a UDP address's service takes a PROXY v2 header in each datagram
/// (`accept_proxy`), and whether only from some peers (`accept_proxy_from`): the
/// receive loop reads it once per batch, so a service without either pays one branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyHeaders {
    Off = 0,
    /// From any peer.
    AnyPeer = 1,
    /// From the peers in `accept_proxy_from` only: the service's list is looked at once
    /// per batch.
    TrustedPeers = 2,
}

impl ProxyHeaders {
    /// What `options` say.
    pub fn of(options: &crate::table::ServiceOptions) -> ProxyHeaders {
        match (&options.accept_proxy, &options.accept_proxy_from) {
            (None, _) => ProxyHeaders::Off,
            (Some(_), None) => ProxyHeaders::AnyPeer,
            (Some(_), Some(_)) => ProxyHeaders::TrustedPeers,
        }
    }
}

impl ListenSocket {
    fn flows(&self) -> MutexGuard<'_, HashMap<FlowKey, Arc<Flow>>> {
        self.flows.locked()
    }

    fn proxied(&self) -> MutexGuard<'_, HashMap<ProxiedKey, Arc<Flow>>> {
        self.proxied.locked()
    }

    /// Flows open on this socket.
    fn flow_count(&self) -> usize {
        self.flows().len() + self.proxied().len()
    }

    /// Sends datagrams `range` of `batch` to `client`, from `local` when the socket is a
    /// wildcard one. Returns how many went (the rest are dropped, as a full socket
    /// buffer drops them).
    fn send_to_client(
        &self,
        batch: &Batch,
        range: std::ops::Range<usize>,
        client: SocketAddr,
        local: IpAddr,
    ) -> usize {
        let from = self.listen.addr.is_unspecified().then_some(local);
        let mut sent = 0;
        // A second try for what one sendmmsg did not take.
        for _ in 0..2 {
            let rest = range.start + sent..range.end;
            if rest.is_empty() {
                break;
            }
            // Straight to the socket (see `flow::deliver`).
            match batch.send(self.socket.as_fd(), rest, Some(client), from) {
                Ok(n) => sent += n,
                Err(e) => {
                    tracing::trace!(%client, error = %e, "reply dropped");
                    break;
                }
            }
        }
        sent
    }

    /// Takes the datagrams waiting on the socket, a batch at a time, and sends each to
    /// its flow, for at most [`ROUNDS`] batches; new clients get a flow only when
    /// `new_flows` (not while the address drains). Returns whether more may be waiting
    /// (the caller then lets other tasks run first).
    fn receive(self: &Arc<Self>, director: &Arc<Director>, new_flows: bool) -> bool {
        BATCH.with_borrow_mut(|batch| {
            for _ in 0..ROUNDS {
                let result = self.socket.try_io(Interest::READABLE, || {
                    let n = batch.receive(self.socket.as_fd())?;
                    // One load per batch: without `accept_proxy` the path is as ever.
                    match self.accepts_proxy.load(Relaxed) {
                        0 => flow::forward(self, batch, director, new_flows),
                        mode => {
                            let trusted_only = mode == ProxyHeaders::TrustedPeers as u8;
                            flow::forward_proxied(self, batch, director, new_flows, trusted_only)
                        }
                    }
                    if n < SLOTS {
                        // The queue is empty: let the readiness go now rather than
                        // after one more system call that finds nothing.
                        return Err(io::ErrorKind::WouldBlock.into());
                    }
                    Ok(())
                });
                match result {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                    Err(e) => {
                        tracing::debug!(listen = %self.listen, error = %e, "receive failed");
                        return false;
                    }
                }
            }
            true
        })
    }
}

const SERVING: u8 = 0;
const DRAINING: u8 = 1;
const CLOSED: u8 = 2;

/// The sockets of one UDP listen address (one per worker) and their tasks. (Not an
/// fwmark group: a group of sockets.)
#[derive(Debug)]
pub struct SocketGroup {
    pub listen: ListenAddr,
    state: AtomicU8,
    /// Wakes the receive loops when the address starts or stops draining: an idle
    /// socket must notice without a datagram arriving.
    state_changed: Notify,
    /// Whether its service takes a PROXY v2 header in each datagram (`accept_proxy`),
    /// and from whom, as the listener manager last saw the table ([`ProxyHeaders`]).
    accepts_proxy: Arc<AtomicU8>,
    sockets: Mutex<Vec<Arc<ListenSocket>>>,
    tasks: Mutex<Vec<AbortHandle>>,
    /// The sockets' descriptors, from the budget, until the group closes.
    held: Mutex<Option<Held>>,
}

impl SocketGroup {
    /// Binds `listen` once per worker, with the descriptors `held` for them, and starts
    /// serving it (reading a PROXY v2 header in each datagram when `accept_proxy`);
    /// refused when another process is bound to the address, or a draining socket of
    /// uvs's own is (until its last flow has gone).
    pub fn start(
        director: &Arc<Director>,
        listen: ListenAddr,
        freebind: bool,
        accept_proxy: ProxyHeaders,
        held: Held,
    ) -> io::Result<Arc<SocketGroup>> {
        check_unused(&listen, freebind).map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse && director.listeners.draining_over(&listen) {
                io::Error::new(io::ErrorKind::AddrInUse, HELD_BY_DRAINING)
            } else {
                e
            }
        })?;
        let sockets = (0..director.workers.len())
            .map(|_| bind_udp(&listen, freebind))
            .collect::<io::Result<Vec<_>>>()?;
        let group = Arc::new(SocketGroup {
            listen,
            state: AtomicU8::new(SERVING),
            state_changed: Notify::new(),
            accepts_proxy: Arc::new(AtomicU8::new(accept_proxy as u8)),
            sockets: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            held: Mutex::new(Some(held)),
        });
        let mut sockets = sockets.into_iter();
        let tasks = director.workers.spawn_each(|_| {
            let socket = sockets.next();
            let (group, director) = (Arc::clone(&group), Arc::clone(director));
            async move {
                if let Some(socket) = socket {
                    serve(socket, group, director).await;
                }
            }
        });
        *group.tasks.locked() = tasks;
        Ok(group)
    }

    fn sockets(&self) -> Vec<Arc<ListenSocket>> {
        self.sockets.locked().clone()
    }

    /// Flows open on this address.
    pub fn flow_count(&self) -> usize {
        self.sockets().iter().map(|s| s.flow_count()).sum()
    }

    /// Whether its service takes a PROXY v2 header in each datagram (`accept_proxy`):
    /// the receive loops read the next batch so. Flows opened the other way carry
    /// their clients' datagrams no more and expire.
    pub fn set_accepts_proxy(&self, mode: ProxyHeaders) {
        self.accepts_proxy.store(mode as u8, Relaxed);
    }

    /// No new flows; the open ones go on until they expire, then the sockets close
    /// (within [`DRAIN_CHECK`] of the last one's end; at once when there is none).
    pub fn drain(&self) {
        if self
            .state
            .compare_exchange(SERVING, DRAINING, Relaxed, Relaxed)
            .is_ok()
        {
            self.state_changed.notify_waiters();
        }
    }

    /// Takes new flows again, if the sockets are still open. False: they closed.
    pub fn revive(&self) -> bool {
        match self
            .state
            .compare_exchange(DRAINING, SERVING, Relaxed, Relaxed)
        {
            Ok(_) => {
                self.state_changed.notify_waiters();
                true
            }
            Err(state) => state == SERVING,
        }
    }

    pub fn is_draining(&self) -> bool {
        self.state.load(Relaxed) == DRAINING
    }

    pub fn is_closed(&self) -> bool {
        self.state.load(Relaxed) == CLOSED
    }

    /// Closes the sockets and ends every flow now (shutdown).
    pub fn close(&self) {
        self.state.store(CLOSED, Relaxed);
        for task in self.tasks.locked().drain(..) {
            task.abort();
        }
        for socket in self.sockets().iter() {
            for (_, flow) in socket.flows().drain() {
                flow.end();
            }
            for (_, flow) in socket.proxied().drain() {
                flow.end();
            }
        }
        self.sockets.locked().clear();
        self.held.locked().take();
    }

    /// A draining group whose flows are all gone closes.
    fn close_if_drained(&self) -> bool {
        if self.flow_count() == 0
            && self
                .state
                .compare_exchange(DRAINING, CLOSED, Relaxed, Relaxed)
                .is_ok()
        {
            tracing::debug!(listen = %self.listen, "last flow gone: socket closed");
            self.close();
            return true;
        }
        self.is_closed()
    }
}

/// Why a listen address cannot be bound when the socket in the way is uvs's own.
const HELD_BY_DRAINING: &str = "Address already in use (by a socket of uvs's own that \
    stopped taking new flows and closes when its last flow expires)";

static POLL_FAILED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// One worker's receive loop for a listen address.
async fn serve(socket: std::net::UdpSocket, group: Arc<SocketGroup>, director: Arc<Director>) {
    // Registered with the worker's own runtime, so it must be made here.
    let socket = match UdpSocket::from_std(socket) {
        Ok(s) => s,
        Err(e) => {
            POLL_FAILED.warn(|suppressed| {
                tracing::error!(listen = %group.listen, error = %e, suppressed, "cannot poll the socket");
            });
            return;
        }
    };
    let listener = Arc::new(ListenSocket {
        listen: group.listen,
        socket,
        flows: Mutex::new(HashMap::new()),
        proxied: Mutex::new(HashMap::new()),
        accepts_proxy: Arc::clone(&group.accepts_proxy),
    });
    group.sockets.locked().push(Arc::clone(&listener));
    // When a draining address next looks for its last flow: a deadline kept across
    // datagrams, so that traffic does not put the look off.
    let mut drain_check: Option<Instant> = None;
    loop {
        if group.is_closed() {
            return;
        }
        // Registered before the state is read, so a change in between wakes it.
        let state_changed = group.state_changed.notified();
        tokio::pin!(state_changed);
        state_changed.as_mut().enable();
        let draining = group.is_draining();
        let check_at = match (draining, drain_check) {
            (false, _) => {
                drain_check = None;
                Instant::now()
            }
            (true, Some(at)) => at,
            (true, None) => *drain_check.insert(Instant::now()),
        };
        tokio::select! {
            ready = listener.socket.readable() => {
                if let Err(e) = ready {
                    POLL_FAILED.warn(|suppressed| {
                        tracing::error!(listen = %listener.listen, error = %e, suppressed, "cannot poll the socket");
                    });
                    return;
                }
                // The state now, not as it was before the wait: an address wanted again
                // meanwhile takes this datagram's client.
                if listener.receive(&director, !group.is_draining()) {
                    // A flood keeps the socket readable: without this, the tasks it
                    // makes (new flows' relays, ended flows to drop) would wait for
                    // tokio's budget to run out, tens of thousands of datagrams later.
                    tokio::task::yield_now().await;
                }
            }
            () = &mut state_changed => {}
            () = tokio::time::sleep_until(check_at), if draining => {
                if group.close_if_drained() {
                    return;
                }
                drain_check = Some(Instant::now() + DRAIN_CHECK);
            }
        }
    }
}
