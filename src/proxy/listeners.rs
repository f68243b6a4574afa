//! Listeners follow the table: every address a service is reached on (its own
//! VIP:port, and listen rules for fwmark groups and port-0 services) gets sockets and
//! their loops (TCP: accept loops here, UDP: receive loops in `udp`), each socket a
//! descriptor of the data plane's budget; addresses that leave the table are closed
//! (their established connections and flows go on). A bind that fails (a VIP that is
//! not local yet, a port in use, no descriptors left) is shown by `uvs status` and
//! retried, since the address may appear later (keepalived moving a VIP); the first
//! few failures of every ten seconds are logged with their reason, the rest summed up
//! in one rate-limited line; a port below the unprivileged limit refused also says
//! why and what to do (`low_port`), once per address. The manager also keeps the director's own listen addresses, which no
//! connection may be forwarded to, and names each real server that is one of them
//! once. Run by the daemon.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::congestion::CongestionControl;
use super::low_port;
use super::registry::{ListenerState, Serving};
use super::tcp;
use super::udp::SocketGroup;
use crate::proxy::director::Director;
use crate::rate_limit::RateLimit;
use crate::table::{HostInterfaces, ListenAddr, Loop, OwnAddresses, Protocol};

/// How often failed binds are tried again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(2);
/// How often the host's addresses are read again while a wildcard address is listened
/// on (a real server on one of them would loop).
const ADDRESSES_INTERVAL: Duration = Duration::from_secs(10);
const BACKLOG: i32 = 4096;
/// Failures logged one by one in ten seconds; the rest are summed up.
const LOGGED_ONE_BY_ONE: usize = 8;

/// A non-blocking, not yet bound socket for `listen`: IPv6 only for IPv6 addresses
/// ([::]:80 and 0.0.0.0:80 are separate services), IP_FREEBIND if asked.
pub fn listen_socket(listen: &ListenAddr, freebind: bool) -> io::Result<Socket> {
    let addr = SocketAddr::new(listen.addr, listen.port);
    let (kind, protocol) = match listen.protocol {
        Protocol::Udp => (Type::DGRAM, socket2::Protocol::UDP),
        _ => (Type::STREAM, socket2::Protocol::TCP),
    };
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    if freebind {
        if addr.is_ipv6() {
            socket.set_freebind_v6(true)?;
        } else {
            socket.set_freebind_v4(true)?;
        }
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A listening TCP socket for `listen`, with the congestion control its connections
/// are to use.
pub fn bind_tcp(
    listen: &ListenAddr,
    freebind: bool,
    congestion: Option<CongestionControl>,
) -> io::Result<std::net::TcpListener> {
    let addr = SocketAddr::new(listen.addr, listen.port);
    let socket = listen_socket(listen, freebind)?;
    socket.set_reuse_address(true)?;
    // Accepted sockets inherit both: one setsockopt per listener, not per connection.
    socket.set_tcp_nodelay(true)?;
    if let Some(cc) = congestion {
        cc.apply(&socket)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    Ok(socket.into())
}

/// Starts an accept loop for `listener` on every worker, each on its own duplicate of
/// the socket.
fn accept_everywhere(
    director: &Arc<Director>,
    listener: std::net::TcpListener,
    listen: ListenAddr,
) -> io::Result<Vec<tokio::task::AbortHandle>> {
    let copies = (0..director.workers.len())
        .map(|_| listener.try_clone())
        .collect::<io::Result<Vec<_>>>()?;
    let mut copies = copies.into_iter();
    Ok(director.workers.spawn_each(|worker| {
        let copy = copies.next();
        let director = Arc::clone(director);
        async move {
            // Registered with the worker's own runtime, so it must be made there.
            match copy.map(crate::sys::poll_listener) {
                Some(Ok(l)) => tcp::accept_loop(l, listen, director, worker).await,
                Some(Err(e)) => {
                    POLL_FAILED.warn(|suppressed| {
                        tracing::error!(%listen, error = %e, suppressed, "cannot poll the listener");
                    });
                }
                None => {}
            }
        }
    }))
}

/// Why a listen address is not served. The same words every time, so that a retry
/// that fails alike is not logged again.
fn no_descriptors(needed: usize) -> io::Error {
    io::Error::other(format!(
        "no descriptors left in the data plane's share for its {needed} sockets \
         (see uvs status; raise the open-files limit)"
    ))
}

/// Starts serving `listen`: a TCP listener, or UDP sockets (the draining ones, if the
/// address left the table only a moment ago), one per worker, each a descriptor of the
/// budget.
fn serve(
    director: &Arc<Director>,
    listen: &ListenAddr,
    options: &crate::table::ServiceOptions,
) -> io::Result<Serving> {
    let (freebind, accept_proxy) = (options.freebind, super::udp::ProxyHeaders::of(options));
    if listen.protocol == Protocol::Udp
        && let Some(group) = director.listeners.take_back_draining(listen)
    {
        group.set_accepts_proxy(accept_proxy);
        return Ok(Serving::Udp(group));
    }
    let needed = director.workers.len();
    let held = director
        .descriptors
        .try_take(needed)
        .ok_or_else(|| no_descriptors(needed))?;
    match listen.protocol {
        Protocol::Udp => {
            SocketGroup::start(director, *listen, freebind, accept_proxy, held).map(Serving::Udp)
        }
        _ => bind_tcp(listen, freebind, director.options.client_congestion)
            .and_then(|l| accept_everywhere(director, l, *listen))
            .map(|tasks| Serving::Tcp(tasks, held)),
    }
}

static POLL_FAILED: RateLimit = RateLimit::new();

/// The log of listen addresses that cannot listen: the first few of every ten seconds
/// one by one with their reason, the rest summed up in one line at the end of a round,
/// at most every ten seconds (a table of 100 000 services over the descriptors must not
/// write 100 000 lines).
struct FailureLog {
    since: tokio::time::Instant,
    told: usize,
    held: usize,
    example: Option<(ListenAddr, String)>,
}

impl FailureLog {
    fn new() -> FailureLog {
        FailureLog {
            since: tokio::time::Instant::now(),
            told: 0,
            held: 0,
            example: None,
        }
    }

    /// Logs (or holds back) a failure; true when it was logged one by one.
    fn failed(&mut self, listen: &ListenAddr, reason: &str) -> bool {
        if self.since.elapsed() >= Duration::from_secs(crate::rate_limit::INTERVAL_SECONDS) {
            self.since = tokio::time::Instant::now();
            self.told = 0;
        }
        if self.told < LOGGED_ONE_BY_ONE {
            self.told += 1;
            tracing::warn!(%listen, error = %reason, "cannot listen; retrying every {} s", RETRY_INTERVAL.as_secs());
            true
        } else {
            self.held += 1;
            self.example
                .get_or_insert_with(|| (*listen, reason.to_string()));
            false
        }
    }

    /// At the end of a round: the sum of what was held back, if it is time.
    fn round_done(&mut self, failing: usize) {
        let Some((listen, reason)) = &self.example else {
            return;
        };
        let more = self.held;
        // `more` counts every address held back since the last sum.
        let said = SUMMED.warn(|_| {
            tracing::warn!(
                more,
                failing,
                "{more} more listen addresses cannot listen (such as {listen}: {reason}); \
                 retrying every {} s, see uvs status",
                RETRY_INTERVAL.as_secs()
            );
        });
        if said {
            self.held = 0;
            self.example = None;
        }
    }
}

static SUMMED: RateLimit = RateLimit::new();

/// Why `listen` cannot listen, from `e`: for an IPv4-mapped IPv6 address (which
/// `uvsadm -A` takes, as ipvsadm does) the cause in words rather than a bare EINVAL,
/// since an IPv6-only socket can never bind it, however often it is retried.
fn why_not(listen: &ListenAddr, e: &io::Error) -> String {
    match crate::table::listener::v4_mapped(&listen.addr) {
        Some(v4) => format!(
            "{e}: an IPv4-mapped IPv6 address cannot be listened on in userspace mode (uvs's \
             IPv6 sockets are IPv6-only); use the IPv4 address, {v4}"
        ),
        None => e.to_string(),
    }
}

/// The own addresses of the table as it stands, and the real servers that would loop,
/// each named once while it stays.
struct Loops {
    named: HashSet<Loop>,
    read_at: Option<tokio::time::Instant>,
}

impl Loops {
    fn follow(&mut self, director: &Director, snapshot: &crate::table::Table) {
        let own = OwnAddresses::of(snapshot, HostInterfaces::addresses);
        let found: HashSet<Loop> = crate::table::loops::loops(snapshot, &own)
            .into_iter()
            .collect();
        for l in found.difference(&self.named) {
            tracing::warn!("{l}");
        }
        self.named = found;
        self.read_at = Some(tokio::time::Instant::now());
        director.set_own_addresses(own);
    }
}

/// Keeps the listeners in line with the table until the task is aborted.
pub async fn manage(director: Arc<Director>) {
    let mut changes = director.table.subscribe();
    // The last error logged per address, so each is logged once.
    let mut logged: HashMap<ListenAddr, String> = HashMap::new();
    let mut loops = Loops {
        named: HashSet::new(),
        read_at: None,
    };
    let mut failures = FailureLog::new();
    // The listen addresses told why a low port is refused, each once.
    let mut hinted: HashSet<ListenAddr> = HashSet::new();
    // The low-port hint of each address failing for want of the privilege, worked out
    // once per new cause and kept in its state (for `uvs demo`'s one-line error).
    let mut hints: HashMap<ListenAddr, String> = HashMap::new();
    let program =
        std::env::current_exe().map_or_else(|_| "uvs".to_string(), |p| p.display().to_string());
    loop {
        let round = std::time::Instant::now();
        let snapshot = director.table.snapshot();
        loops.follow(&director, &snapshot);
        let wildcard = snapshot
            .listen_addresses()
            .iter()
            .any(|(l, _)| l.addr.is_unspecified());
        let wanted: HashMap<ListenAddr, _> = snapshot.listen_addresses().into_iter().collect();
        drop(snapshot);
        for listen in director.listeners.accepting() {
            if !wanted.contains_key(&listen) {
                director.listeners.stop_accepting(&listen);
                tracing::info!(%listen, "stopped listening");
            }
        }
        logged.retain(|l, _| wanted.contains_key(l));
        hinted.retain(|l| wanted.contains_key(l));
        hints.retain(|l, _| wanted.contains_key(l));
        let mut failing = 0usize;
        for (listen, service) in &wanted {
            if director.listeners.is_accepting(listen) {
                director.listeners.set_state(
                    *listen,
                    Some(ListenerState {
                        service: service.key,
                        error: None,
                        hint: None,
                    }),
                );
                if listen.protocol == Protocol::Udp {
                    let accepts = super::udp::ProxyHeaders::of(&service.options);
                    director.listeners.set_accept_proxy(listen, accepts);
                }
                continue;
            }
            match serve(&director, listen, &service.options) {
                Ok(serving) => {
                    director
                        .listeners
                        .start_accepting(*listen, service.key, serving);
                    hints.remove(listen);
                    if logged.remove(listen).is_some() {
                        tracing::info!(%listen, "now listening");
                    } else {
                        tracing::debug!(%listen, "listening");
                    }
                }
                Err(e) => {
                    failing += 1;
                    let reason = why_not(listen, &e);
                    if logged.get(listen) != Some(&reason) {
                        match low_port::unprivileged_port_start()
                            .and_then(|start| low_port::hint(listen, &e, start, &program))
                        {
                            Some(hint) => hints.insert(*listen, hint),
                            None => hints.remove(listen),
                        };
                        let told = failures.failed(listen, &reason);
                        if told
                            && !hinted.contains(listen)
                            && let Some(hint) = hints.get(listen)
                        {
                            tracing::warn!(%listen, "cannot listen: {hint}");
                            hinted.insert(*listen);
                        }
                        logged.insert(*listen, reason.clone());
                    } else {
                        tracing::debug!(%listen, error = %reason, "still cannot listen; retrying");
                    }
                    director.listeners.set_state(
                        *listen,
                        Some(ListenerState {
                            service: service.key,
                            error: Some(reason),
                            hint: hints.get(listen).cloned(),
                        }),
                    );
                }
            }
        }
        failures.round_done(failing);
        // A round walks every listen address on the control thread. When the table is
        // large and changes fast (`uvsadm -R` of many services), rounds back to back
        // would leave uvsadm and /healthz little of it: rest as long as the round took
        // (changes meanwhile are taken together by the next round).
        let took = round.elapsed();
        if took > Duration::from_millis(1) {
            tokio::time::sleep(took.min(Duration::from_secs(1))).await;
        }
        let reread = loops
            .read_at
            .map(|t| t + ADDRESSES_INTERVAL)
            .unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(RETRY_INTERVAL), if failing > 0 => {}
            // The host's addresses may have changed under a wildcard listener.
            () = tokio::time::sleep_until(reread), if wildcard => {}
        }
    }
}
