//! The TCP data plane: accept on a listen address (only while the descriptor budget has
//! room for the connection's two sockets), find the service (fwmark group, exact
//! service, port-0 service), take the client's PROXY header when the service wants one
//! (`proxy_in`: its address is the client from then on), choose the real server as
//! IPVS does (persistence template, else the scheduler), connect within the service's
//! connect timeout (on other servers, up to the retry count, if refused or timed out;
//! never to one of the director's own listen addresses, which would loop), send the
//! PROXY header if the service wants one (`proxy_out`), and forward. The connection's
//! IPVS state and counts are kept in the connection table all along. Called by the
//! listener manager, one accept loop per address.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

use super::accounting::Accounting;
use super::admit::New;
use super::congestion::CongestionControl;
use super::forward::{End, Transfer};
use super::queue::Unreached;
use super::scheduling::Scheduling;
use crate::conn::{Conn, State};
use crate::descriptors::Held;
use crate::proxy::director::Director;
use crate::sched::{Choice, Packet};
use crate::stats::Stats;
use crate::table::{ListenAddr, Protocol, RealServer, Service};
use crate::workers::Load;

/// Accepts connections on `listener`, the copy of it that worker `worker` (an index)
/// serves, until the task is aborted. The accepted socket is not registered with this
/// worker's event loop until the worker is known to keep it.
pub async fn accept_loop(
    listener: AsyncFd<std::net::TcpListener>,
    listen: ListenAddr,
    director: Arc<Director>,
    worker: usize,
) {
    loop {
        // Out of room, clients wait in the kernel's backlog until connections end.
        director.descriptors.room_for_connection().await;
        match accept(&listener).await {
            Ok((stream, peer)) => {
                let held = director.descriptors.take_connection();
                serve(stream, peer, listen, &director, worker, held);
            }
            Err(e) if is_resource_shortage(&e) => {
                // Out of descriptors or memory: keep serving what we have, try again soon.
                ACCEPT_WARNED.warn(|suppressed| {
                    tracing::warn!(%listen, error = %e, suppressed, "accept failed; backing off");
                });
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => tracing::debug!(%listen, error = %e, "accept failed"),
        }
    }
}

/// The next connection: a non-blocking socket (TCP_NODELAY, and the congestion control
/// if one was chosen, inherited from the listener) and the client's address.
async fn accept(
    listener: &AsyncFd<std::net::TcpListener>,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        let accepted = ready.try_io(|l| {
            socket2::SockRef::from(l.get_ref()).accept4(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
        });
        let Ok(result) = accepted else {
            continue; // nothing to accept after all
        };
        let (socket, peer) = result?;
        let Some(peer) = peer.as_socket() else {
            continue; // not an internet address: cannot come from a TCP listener
        };
        return Ok((socket.into(), peer));
    }
}

/// Starts the connection's task on the worker it was accepted on (`accepted_on`), or on
/// the least loaded one when that one is too far ahead (`Workers::place`); the socket
/// joins the event loop of the worker that serves it. (Spawned on its own worker, a task goes to that worker's
/// local queue, as tokio::spawn would put it.)
fn serve(
    stream: std::net::TcpStream,
    peer: SocketAddr,
    listen: ListenAddr,
    director: &Arc<Director>,
    accepted_on: usize,
    held: Held,
) {
    let load = director.workers.place(accepted_on);
    let worker = load.worker();
    let (tx, rx) = oneshot::channel();
    let task = connection(stream, peer, listen, Arc::clone(director), rx, (load, held));
    let _ = tx.send(director.workers.spawn_on(worker, task));
}

fn is_resource_shortage(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

static ACCEPT_WARNED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// The address the client reached: the listener's own when it is bound to one address
/// and port (saving a getsockname per connection), else the accepted socket's.
fn local_address(client: &TcpStream, listen: &ListenAddr) -> io::Result<SocketAddr> {
    if listen.addr.is_unspecified() || listen.port == 0 {
        client.local_addr()
    } else {
        Ok(SocketAddr::new(listen.addr, listen.port))
    }
}

/// Closes with a reset (RST), as a refused or failed connection should look.
pub(super) fn reset(stream: &TcpStream) {
    let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
}

/// A TCP connection's entry in the connection table, held by the connection's task:
/// closed into its final state (`end`) however the task ends (an idle timeout aborts
/// it: that is a CLOSE). UDP flows' entries leave with the flow (`udp::flow`).
struct ConnGuard<'a> {
    director: &'a Director,
    conn: Arc<Conn>,
    end: State,
}

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        let timeouts = self.director.table.snapshot().timeouts();
        self.director.conns.close(&self.conn, self.end, &timeouts);
        self.director.sync_conn(&self.conn, self.end);
    }
}

/// Why a connect failed.
enum ConnectError {
    Refused,
    Timeout,
    /// Not tried: the server is one of the director's own listen addresses.
    Loop,
    /// Every source address and port tried was busy (`proxy::source`).
    NoSourcePort(io::Error),
    /// Every source address tried is not on this host (`proxy::source`); each was
    /// counted and logged as it was found.
    SourceNotLocal,
    Other(io::Error),
}

/// Where a connect of a service with sources comes from: its setting, and the real
/// server whose cursor turns over it (`RealServerState::source_cursor`); `not_local`
/// counts and logs an address found not on this host.
struct Sourced<'a> {
    source: &'a crate::table::source::Source,
    cursor: &'a std::sync::atomic::AtomicUsize,
    not_local: &'a (dyn Fn(std::net::IpAddr, &io::Error) + Sync),
}

/// Starts a non-blocking connect to `dest`: the socket (TCP_NODELAY, `congestion`),
/// bound first to the next source of `source` for this server when the service has one
/// for `dest`'s family (`proxy::source`), and registered with this worker's event loop.
/// Synchronous, so that only the wait (`connect`) is part of the connection's future.
fn start_connect(
    dest: SocketAddr,
    congestion: Option<CongestionControl>,
    source: Option<Sourced<'_>>,
) -> io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let make = || {
        let socket = Socket::new(
            Domain::for_address(dest),
            Type::STREAM.nonblocking(),
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_tcp_nodelay(true)?;
        if let Some(cc) = congestion {
            cc.apply(&socket)?;
        }
        Ok(socket)
    };
    let socket = match source.and_then(|s| Some((s.source.pool_for(&dest)?, s))) {
        Some((pool, s)) => super::source::connect(pool, s.cursor, dest, make, s.not_local)?,
        None => {
            let socket = make()?;
            match socket.connect(&dest.into()) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            socket
        }
    };
    TcpStream::from_std(std::net::TcpStream::from(socket))
}

/// Connects to `dest` within `timeout` (from now: making the socket, binding a source
/// and starting the connect count too): these are done at once, and the future
/// returned holds only the wait (the connection's future carries it while it waits,
/// `connection`).
fn connect(
    dest: SocketAddr,
    timeout: Duration,
    congestion: Option<CongestionControl>,
    source: Option<Sourced<'_>>,
) -> impl Future<Output = Result<TcpStream, ConnectError>> + use<> {
    let deadline = tokio::time::Instant::now() + timeout;
    let started = start_connect(dest, congestion, source);
    async move {
        // The stream stays where it is (a second copy would be bytes of the future).
        let stream = match started {
            Ok(ref stream) => stream,
            Err(e) => return Err(connect_error(e)),
        };
        // The socket's error (getsockopt SO_ERROR) is asked for only when the wake-up
        // flagged one: writable with no error or hang-up is a success, and costs no
        // extra system call.
        let writable = stream.ready(tokio::io::Interest::WRITABLE | tokio::io::Interest::ERROR);
        let ready = match tokio::time::timeout_at(deadline, writable).await {
            Ok(ready) => ready.map_err(connect_error)?,
            Err(_) => return Err(ConnectError::Timeout),
        };
        if ready.is_error() || ready.is_write_closed() {
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return Err(connect_error(e)),
                Ok(None) => {}
            }
        }
        started.map_err(connect_error)
    }
}

/// What a failed connect's error means.
fn connect_error(e: io::Error) -> ConnectError {
    use super::source::{SourceError, source_error};
    if e.kind() == io::ErrorKind::ConnectionRefused {
        return ConnectError::Refused;
    }
    match source_error(&e).map(|s| matches!(s, SourceError::NotLocal { .. })) {
        Some(false) => ConnectError::NoSourcePort(e),
        Some(true) => ConnectError::SourceNotLocal,
        None => ConnectError::Other(e),
    }
}

/// A real server reached for a connection: its socket, the connection's table entry
/// (with its hold on the persistence template) and where its counts go.
struct Reached<'a> {
    server: TcpStream,
    entry: ConnGuard<'a>,
    accounting: Accounting,
}

/// How long a connect of `service` may take: its own timeout, else the daemon's.
fn connect_timeout(service: &Service, director: &Director) -> Duration {
    service
        .options
        .connect_timeout_or(director.options.connect_timeout)
}

/// Counts and logs a failed connect of `service` to `server` (at `dest`) that waited
/// at most `timeout`.
fn connect_failed(
    service: &Service,
    server: &RealServer,
    dest: SocketAddr,
    e: &ConnectError,
    timeout: Duration,
) {
    use super::failure_log::{self, Cause};
    let failures = &server.state.connect_failures;
    let log = |cause: Cause, detail: &dyn std::fmt::Display| {
        failure_log::connect_failed(&service.key, &server.state, &server.key(), cause, detail);
    };
    match e {
        ConnectError::Refused => {
            failures.refused.fetch_add(1, Relaxed);
            tracing::debug!(%dest, "connect refused");
            log(Cause::Refused, &"connection refused");
        }
        ConnectError::Timeout => {
            failures.timeout.fetch_add(1, Relaxed);
            tracing::debug!(%dest, "connect timed out");
            let waited = match timeout.as_millis() {
                ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
                ms => format!("{ms} ms"),
            };
            log(Cause::TimedOut, &format_args!("timed out after {waited}"));
        }
        ConnectError::Loop => {
            // Counted by the check (`Scheduling::loops_back`), and named in the log
            // once, when the table made it so.
            tracing::debug!(%dest, "not connecting to the director's own listen address");
        }
        ConnectError::NoSourcePort(err) => {
            service.state.source_port_exhausted.fetch_add(1, Relaxed);
            failures.source.fetch_add(1, Relaxed);
            tracing::debug!(%dest, error = %err, "connect failed");
            log(Cause::NoSourcePort, err);
        }
        ConnectError::SourceNotLocal => {
            // Counted on the service and logged per address (`source_not_local`).
            failures.source.fetch_add(1, Relaxed);
            tracing::debug!(%dest, "connect failed: no source address is local");
        }
        ConnectError::Other(err) => {
            failures.other.fetch_add(1, Relaxed);
            tracing::debug!(%dest, error = %err, "connect failed");
            log(Cause::of(err), err);
        }
    }
}

/// A bind of a connect of `service` to `server` found source `address` not on this
/// host (EADDRNOTAVAIL, `e`): counted on the service, and logged as the server's
/// failed connects are (the connect goes on from another address, if it has one).
fn source_not_local(
    service: &Service,
    server: &RealServer,
    address: std::net::IpAddr,
    e: &io::Error,
) {
    use super::failure_log::{self, Cause};
    service
        .state
        .source_address_unavailable
        .fetch_add(1, Relaxed);
    tracing::debug!(%address, error = %e, "source address not local");
    failure_log::connect_failed(
        &service.key,
        &server.state,
        &server.key(),
        Cause::SourceNotLocal,
        &format_args!("source address {address} is not local (bind: {e})"),
    );
}

/// What each attempt of a connection to reach a real server works from, passed by
/// reference (each copy of a reference is bytes of the connection's future).
#[derive(Clone, Copy)]
struct Attempt<'a> {
    director: &'a Director,
    /// The table's totals.
    totals: &'a Arc<Stats>,
    packet: &'a Packet,
    /// The connection's own task, which its table entry can end (idle timeout).
    task: Option<&'a AbortHandle>,
}

/// Chooses the real server as IPVS would and connects to it, and when that fails, on
/// up to `connect_retries` other servers (every other one with passive ejection:
/// `ejection::retries`), in the schedule's retry order. An error: no server could
/// be had (`Full`: every usable one is at its connection limit, and the connection
/// may wait in the queue, `proxy::queue`).
async fn reach_server<'a>(
    context: &Attempt<'a>,
    service: &Service,
) -> Result<Reached<'a>, Unreached> {
    let scheduling = Scheduling::new(
        context.director,
        service,
        context.totals,
        context.packet,
        Protocol::Tcp,
    );
    let mut servers = scheduling.servers();
    let retries = super::ejection::retries(service, context.director.options.connect_retries);
    for _ in 0..=retries {
        let retrying = servers.retrying();
        let Some((Choice { server, template }, slot)) = scheduling.next(&mut servers) else {
            tracing::debug!(client = %context.packet.client, "no real server available");
            return Err(super::queue::no_server(&scheduling));
        };
        if retrying {
            service.state.retries.fetch_add(1, Relaxed);
        }
        let dest = scheduling.destination(server);
        let opened = scheduling.open(
            server,
            slot,
            template,
            dest,
            State::SynRecv,
            context.director.conns.clock.now_ms(),
        );
        if let Some(task) = context.task {
            opened.conn.attach(task.clone());
        }
        let entry = ConnGuard {
            director: context.director,
            conn: opened.conn,
            end: State::Close,
        };
        let started = std::time::Instant::now();
        let reached = if scheduling.loops_back(server, dest) {
            Err(ConnectError::Loop)
        } else {
            // The connect is started here, and what it started from is not kept
            // while it waits (memory per connection, `connection`).
            let connecting = {
                let not_local =
                    |address, e: &io::Error| source_not_local(service, server, address, e);
                let source = service.options.source.as_deref().map(|source| Sourced {
                    source,
                    cursor: &server.state.source_cursor,
                    not_local: &not_local,
                });
                connect(
                    dest,
                    connect_timeout(service, context.director),
                    context.director.options.server_congestion,
                    source,
                )
            };
            connecting.await
        };
        match reached {
            Ok(stream) => {
                server.state.connect_latency.record(started.elapsed());
                super::ejection::answered(service, &server.state);
                return Ok(Reached {
                    server: stream,
                    entry,
                    accounting: opened.accounting,
                });
            }
            Err(e) => {
                connect_failed(
                    service,
                    server,
                    dest,
                    &e,
                    connect_timeout(service, context.director),
                );
                drop(entry);
                if matches!(e, ConnectError::Refused | ConnectError::Timeout) {
                    super::ejection::failed(
                        service,
                        server,
                        &dest,
                        super::ejection::Failure::Connect,
                    );
                }
            }
        }
    }
    scheduling.unavailable();
    tracing::debug!(client = %context.packet.client, "no real server reachable");
    Err(Unreached::NoServer)
}

/// Resolves when the client goes away (its FIN or reset arrives) while its connection
/// waits in the queue. Bytes it sent meanwhile stay in the socket for the real server:
/// they are only peeked at, and the readiness they raised cleared, so the wait does not
/// spin on them.
async fn client_gone(client: &TcpStream) {
    loop {
        let Ok(ready) = client.ready(tokio::io::Interest::READABLE).await else {
            return;
        };
        if ready.is_read_closed() || ready.is_error() {
            return;
        }
        let peeked = client.try_io(tokio::io::Interest::READABLE, || {
            let mut byte = [std::mem::MaybeUninit::<u8>::uninit()];
            match socket2::SockRef::from(client).peek(&mut byte)? {
                0 => Ok(()),
                // Data, not an end: clear the readiness and wait for the next event.
                _ => Err(io::ErrorKind::WouldBlock.into()),
            }
        });
        match peeked {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return, // reset
        }
    }
}

/// The client's PROXY header (`accept_proxy`), within the service's deadline; None when
/// it was rejected: then the client is reset, and the rejection counted and logged.
async fn take_header(
    client: &TcpStream,
    service: &Service,
    accept: crate::table::AcceptProxy,
    peer: SocketAddr,
) -> Option<super::proxy_in::Header> {
    // A peer not trusted to send the header (`accept_proxy_from`) is refused as one
    // with a bad header, before a byte of it is read.
    let header = if service.options.trusts_proxy_from(peer.ip()) {
        let within = super::proxy_in::deadline(service.options.accept_proxy_timeout_ms);
        super::proxy_in::read(client, accept, within).await
    } else {
        Err(super::proxy_in::Rejected::Untrusted)
    };
    match header {
        Ok(header) => Some(header),
        Err(e) => {
            service.state.admission.proxy_rejected.fetch_add(1, Relaxed);
            tracing::debug!(service = %service.key, %peer, error = %e, "PROXY header rejected");
            PROXY_WARNED.warn(|suppressed| {
                tracing::warn!(
                    service = %service.key,
                    %peer,
                    error = %e,
                    suppressed,
                    "PROXY header rejected; connection reset"
                );
            });
            reset(client);
            None
        }
    }
}

static PROXY_WARNED: crate::rate_limit::RateLimit = crate::rate_limit::RateLimit::new();

/// One proxied connection, from the accepted client socket to the close of both, on
/// the worker that runs it (whose event loop the socket joins here). `held` counts it
/// against that worker, and its two descriptors against the budget, for as long as it
/// lives.
///
/// Memory: the task is as large as the largest state of this future, and an idle
/// connection keeps it for hours, so what is held across the connect is kept small
/// (the rare states, a wait in the queue and a received PROXY header, are on the heap
/// while they last; `tests::a_connection_future_fits_its_task_size`).
// An async block, not an async fn: an async fn's future keeps a second copy of each
// argument it moves into its body.
#[allow(clippy::manual_async_fn)]
fn connection(
    client: std::net::TcpStream,
    peer: SocketAddr,
    listen: ListenAddr,
    director: Arc<Director>,
    own_task: oneshot::Receiver<AbortHandle>,
    held: (Load, Held),
) -> impl Future<Output = ()> + Send + 'static {
    async move {
        // Named, so the block owns it (an upvar, not a local): it is given back with the
        // future, after the sockets it counts are closed.
        let _ = &held;
        let client = match TcpStream::from_std(client) {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(client = %peer, error = %e, "cannot poll the connection");
                return;
            }
        };
        // TCP_NODELAY came from the listener.
        let Ok(local) = local_address(&client, &listen) else {
            return;
        };
        let mut snapshot = director.table.snapshot();
        let Some(mut service) = snapshot.route(&listen).cloned() else {
            reset(&client);
            return;
        };
        // Who connected: the PROXY header, when the service takes one, says who the client
        // is (`proxy_in`), before anything about the client is decided.
        let mut received = None;
        let mut client_addr = peer;
        if let Some(accept) = service.options.accept_proxy {
            // No table held while the client takes its time.
            drop(snapshot);
            match take_header(&client, &service, accept, peer).await {
                Some(super::proxy_in::Header::Proxy(r)) => {
                    client_addr = r.client;
                    // Boxed: it is rare, and the future's every state would carry its
                    // bytes (memory per connection, `connection`).
                    received = Some(Box::new(r));
                }
                Some(super::proxy_in::Header::Local) => {}
                None => return,
            }
            snapshot = director.table.snapshot();
            // The table of now: the service may have changed, or gone, while the client
            // took its time.
            let Some(current) = snapshot.route(&listen).cloned() else {
                reset(&client);
                return;
            };
            service = current;
        }
        let packet = Packet {
            client: client_addr,
            local,
        };
        let _admitted =
            match super::admit::admit(&snapshot, &service, packet.client.ip(), New::Connection) {
                Ok(admitted) => admitted,
                Err(refused) => {
                    super::admit::refuse(&client, refused.action);
                    return;
                }
            };
        let totals = snapshot.totals_handle();
        drop(snapshot);
        let own_task = own_task.await.ok();
        let context = Attempt {
            director: &director,
            totals: &totals,
            packet: &packet,
            task: own_task.as_ref(),
        };
        let (d, context) = (&*director, &context);
        // The service as the running table has it: a connection that waited in the queue
        // tries the servers of now, not those of when it came.
        let current = || d.table.snapshot().route(&listen).cloned();
        let (now, mut first) = (&current, Some(&service));
        // Owns its references, and is passed by reference: each copy of a reference is
        // bytes of the future (memory per connection, above).
        let mut attempt = move || {
            let svc = match first.take() {
                Some(svc) => Some(std::borrow::Cow::Borrowed(svc)),
                None => now().map(std::borrow::Cow::Owned),
            };
            async move {
                match svc {
                    Some(svc) => reach_server(context, &svc).await,
                    None => Err(super::queue::Unreached::NoServer),
                }
            }
        };
        let Some(Reached {
            mut server,
            mut entry,
            accounting,
        }) = super::queue::reach(&service, &current, || client_gone(&client), &mut attempt).await
        else {
            reset(&client);
            return;
        };
        entry.conn.set_state(State::Established);
        if let Some(t) = &entry.conn.template {
            t.assure();
        }
        director.sync_conn(&entry.conn, State::Established);
        if let Some(version) = service.options.proxy_protocol {
            let header = super::proxy_out::Sent {
                client: packet.client,
                destination: received.as_ref().map_or(packet.local, |r| r.destination),
                passed: received.as_ref().map_or(&[][..], |r| &r.tlvs),
                own: service.options.proxy_protocol_tlvs,
                service: Some(&service.key),
            }
            .bytes(version);
            if server.write_all(&header).await.is_err() {
                reset(&client);
                reset(&server);
                return;
            }
        }
        // Its TLVs are said; the connection may last hours.
        drop(received);
        let transfer = Transfer::new(&client, &server, &entry.conn, &director, &accounting);
        let end = transfer.run(director.options.forwarding).await;
        accounting.packets(&client, &server, director.conns.clock.now_ms());
        tracing::debug!(client = %packet.client, server = %entry.conn.dest, ?end, "connection ended");
        entry.end = match end {
            End::Closed => State::TimeWait,
            End::Reset(failure) => {
                if let Some((by, error)) = failure {
                    super::failure_log::reset(
                        &service,
                        by,
                        &packet.client,
                        &entry.conn.dest,
                        &error,
                    );
                }
                reset(&client);
                reset(&server);
                State::Close
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::director::PlaneOptions;
    use crate::table::{TableHandle, UnicastOnly};

    /// The largest a connection's future may be and still fit a 1 408-byte task in the
    /// release build, with tokio 1.5x's task layout (128-byte aligned: header 32,
    /// scheduler and id 16, the future and its stage tag, trailer 48). Each open
    /// connection keeps its task for as long as it lasts, so one step more is 128 bytes
    /// more per connection (README, "Memory per entry"). That bound is checked by
    /// `cargo test --release` (1 240 bytes today); an unoptimized build lays the same
    /// future out 16 bytes larger, so `cargo test` checks that figure of today, which
    /// catches most growth but is not itself a step. To see where the bytes are:
    /// `RUSTFLAGS=-Zprint-type-sizes cargo +nightly build --release --lib`, and look
    /// for the task `Cell` of the `async block@src/proxy/tcp.rs` that `connection`
    /// returns.
    const LARGEST_CONNECTION_FUTURE: usize = if cfg!(debug_assertions) { 1256 } else { 1304 };

    #[test]
    fn a_connection_future_fits_its_task_size() {
        let table = Arc::new(TableHandle::new(Box::new(UnicastOnly)));
        let options = PlaneOptions {
            threads: 1,
            ..PlaneOptions::default()
        };
        let director = Director::new(table, options).expect("director");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        let _client = std::net::TcpStream::connect(addr).expect("connect");
        let (stream, peer) = listener.accept().expect("accept");
        let listen = ListenAddr {
            protocol: Protocol::Tcp,
            addr: addr.ip(),
            port: addr.port(),
        };
        let held = (
            director.workers.place(0),
            director.descriptors.take_connection(),
        );
        let (_tx, rx) = oneshot::channel();
        let future = connection(stream, peer, listen, Arc::clone(&director), rx, held);
        let size = std::mem::size_of_val(&future);
        assert!(
            size <= LARGEST_CONNECTION_FUTURE,
            "a connection's future is {size} bytes, above {LARGEST_CONNECTION_FUTURE}: \
             every open connection would cost 128 bytes more"
        );
    }
}
