//! What the data plane logs at the default level of the traffic that fails: a real
//! server's failed connects (refused, timed out, no route), and connections reset
//! mid-stream by a client or by a real server. Counted where they happen, on the
//! server's or the service's atomics (`rate_limit::Tally`: fixed size, so memory is
//! bounded however many servers and clients there are); the first after a quiet
//! interval is logged at once with its cause, the rest summed up at most every ten
//! seconds per server (per service for resets) by the sweeper ([`flush`], from
//! `Director::sweep`; at once for one that left the table) or by the next failure that finds the interval over.
//! Called by `tcp` (connects, resets) and `udp::flow` (refusals).

use std::fmt::{self, Display};
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use crate::rate_limit::{Line, Tally};
use crate::table::{RealServer, RealServerState, Retired, Service, ServiceKey, TableHandle};
use crate::words::plural;

/// Why a connect to a real server failed, as the log counts it; the index of its count
/// in `ConnectFailures::logged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Refused = 0,
    TimedOut = 1,
    /// No route to the host or its network (EHOSTUNREACH, ENETUNREACH).
    NoRoute = 2,
    Other = 3,
    /// Every source address and port tried was busy (`proxy::source`).
    NoSourcePort = 4,
    /// A source address is not on this host: its bind failed with EADDRNOTAVAIL
    /// (`proxy::source`).
    SourceNotLocal = 5,
}

/// The causes' words in a summary, in index order.
const CAUSES: [&str; 6] = [
    "refused",
    "timed out",
    "no route",
    "other",
    "no free source port",
    "source address not local",
];

impl Cause {
    /// The cause of a connect that failed with `e`.
    pub fn of(e: &io::Error) -> Cause {
        match e.raw_os_error() {
            Some(libc::ECONNREFUSED) => Cause::Refused,
            Some(libc::ETIMEDOUT) => Cause::TimedOut,
            Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => Cause::NoRoute,
            _ if e.kind() == io::ErrorKind::ConnectionRefused => Cause::Refused,
            _ if e.kind() == io::ErrorKind::TimedOut => Cause::TimedOut,
            _ => Cause::Other,
        }
    }
}

/// "refused 7, timed out 2": the kinds counted, in order, without the zeros.
struct Counts<'a, const N: usize>(&'a [u64; N], [&'static str; N]);

impl<const N: usize> Display for Counts<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (n, word) in self.0.iter().zip(self.1) {
            if *n > 0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{word} {n}")?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A connect from `service` (as the log names it: its key, as `uvsadm -L` and the
/// summary name it) to real server `server` (its state, at
/// `dest`) failed: counted, and logged at WARN when its turn says so. `detail` is the
/// cause in words ("connection refused", "timed out after 5 s", the system's error).
pub fn connect_failed(
    service: &dyn Display,
    server: &RealServerState,
    dest: &dyn Display,
    cause: Cause,
    detail: &dyn Display,
) {
    let turn = server.connect_failures.logged.count(cause as usize);
    if turn.is_none() {
        held_back();
    }
    match turn {
        Some(Line::First) => tracing::warn!(
            "real server {dest} of {service}: connect failed: {detail} (further failures \
             of this server are summed up at most every {} s)",
            crate::rate_limit::INTERVAL_SECONDS
        ),
        Some(Line::Summary { counts, seconds }) => {
            connect_summary(service, dest, &counts, Span::Last(seconds));
        }
        None => {}
    }
}

/// Over what a summary counts: the seconds since the line before it, or, for the last
/// word on something that left the table, its whole held time ("in the last 0 s" would
/// be wrong there: the clock is read at the removal, not when the failures came).
#[derive(Debug, Clone, Copy)]
enum Span {
    /// The last so many seconds.
    Last(u64),
    /// Until it was removed (`what`: "it", "the service").
    Removed(&'static str),
}

impl Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Span::Last(seconds) => write!(f, "in the last {seconds} s"),
            Span::Removed(what) => write!(f, "before {what} was removed"),
        }
    }
}

fn connect_summary(service: &dyn Display, dest: &dyn Display, counts: &[u64; 6], span: Span) {
    let n: u64 = counts.iter().sum();
    tracing::warn!(
        "real server {dest} of {service}: {n} more connect {} ({}) {span}",
        plural(n, "failure", "failures"),
        Counts(counts, CAUSES)
    );
}

/// Who reset a connection mid-stream (or failed under it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Client,
    Server,
}

/// A connection of `service` from `client` to real server `server` was reset by
/// `by` (`error`: what the socket said): counted, and logged when its turn says so; at
/// INFO for clients (a client that goes away is the internet's daily weather), at WARN
/// for real servers.
pub fn reset(
    service: &Service,
    by: Peer,
    client: &dyn Display,
    server: &dyn Display,
    error: &io::Error,
) {
    let key = &service.key;
    let turn = tally(service, by).count(0);
    if turn.is_none() {
        held_back();
    }
    match (turn, by) {
        (Some(Line::First), Peer::Client) => tracing::info!(
            "{key}: connection from {client} to real server {server} reset by the client: \
             {error} (further resets by clients are summed up at most every {} s)",
            crate::rate_limit::INTERVAL_SECONDS
        ),
        (Some(Line::First), Peer::Server) => tracing::warn!(
            "{key}: connection from {client} to real server {server} reset by the real \
             server: {error} (further resets by real servers are summed up at most every {} s)",
            crate::rate_limit::INTERVAL_SECONDS
        ),
        (Some(Line::Summary { counts, seconds }), _) => {
            reset_summary(key, by, counts[0], Span::Last(seconds));
        }
        (None, _) => {}
    }
}

fn tally(service: &Service, by: Peer) -> &Tally<1> {
    match by {
        Peer::Client => &service.state.client_resets,
        Peer::Server => &service.state.server_resets,
    }
}

fn reset_summary(key: &ServiceKey, by: Peer, n: u64, span: Span) {
    let connections = plural(n, "connection", "connections");
    match by {
        Peer::Client => {
            tracing::info!("{key}: {n} more {connections} reset by clients {span}")
        }
        Peer::Server => {
            tracing::warn!("{key}: {n} more {connections} reset by real servers {span}")
        }
    }
}

/// Whether a tally of the table may hold events back: set when one is held back (a
/// failure, never a connection that went well), cleared by the sweep that finds none
/// left. Without it the sweep walked every service every second for nothing: at
/// 100 000 services a fifth of the control thread, on a table with no failure at all.
static MAY_HOLD: AtomicBool = AtomicBool::new(false);

fn held_back() {
    MAY_HOLD.store(true, Relaxed);
}

/// Sums up what was held back, for every service and server whose interval is over,
/// and, at once, for those that left the table since (deleted by uvsadm, a reload or
/// a health check: no later sweep would find them, `TableHandle::take_retired`).
/// Called every second by the sweeper (`Director::sweep`); it reads atomics only.
pub fn flush(table: &TableHandle) {
    for retired in table.take_retired() {
        match retired {
            Retired::Server { service, server } => flush_server_now(&service, &server),
            Retired::Service(service) => {
                for by in [Peer::Client, Peer::Server] {
                    if let Some(Line::Summary { counts, .. }) = tally(&service, by).flush_now() {
                        reset_summary(&service.key, by, counts[0], Span::Removed("the service"));
                    }
                }
                for server in &service.servers {
                    flush_server_now(&service.key, server);
                }
            }
        }
    }
    // Cleared before the walk: an event held back during it sets it again.
    if !MAY_HOLD.swap(false, Relaxed) {
        return;
    }
    let mut still = false;
    for service in table.snapshot().each_service() {
        for by in [Peer::Client, Peer::Server] {
            let tally = tally(service, by);
            if let Some(Line::Summary { counts, seconds }) = tally.flush() {
                reset_summary(&service.key, by, counts[0], Span::Last(seconds));
            }
            still |= tally.holds();
        }
        for server in &service.servers {
            let logged = &server.state.connect_failures.logged;
            if let Some(Line::Summary { counts, seconds }) = logged.flush() {
                connect_summary(&service.key, &server.key(), &counts, Span::Last(seconds));
            }
            still |= logged.holds();
        }
    }
    if still {
        held_back();
    }
}

/// The last word on a real server that left its service (or whose service left).
fn flush_server_now(service: &ServiceKey, server: &RealServer) {
    if let Some(Line::Summary { counts, .. }) = server.state.connect_failures.logged.flush_now() {
        connect_summary(service, &server.key(), &counts, Span::Removed("it"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Command, Protocol, ServerConfig, ServiceConfig, UnicastOnly};

    /// A real server deleted (or its service) with failures held back is kept for the
    /// next sweep, which takes what it held (and logs it); one with nothing held is not
    /// kept.
    #[test]
    fn what_a_deleted_server_or_service_held_is_taken_by_the_next_sweep() {
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "172.20.0.24".parse().unwrap(),
            port: 80,
        };
        let table = TableHandle::new(Box::new(UnicastOnly));
        table
            .apply(&Command::AddService(ServiceConfig::new(key, "rr")))
            .unwrap();
        for port in [80, 81] {
            let server =
                ServerConfig::masq(std::net::SocketAddr::from(([172, 20, 0, 25], port)), 1);
            table
                .apply(&Command::AddServer {
                    service: key,
                    server,
                })
                .unwrap();
        }
        let service = std::sync::Arc::clone(table.snapshot().service(&key).unwrap());
        let (failing, quiet) = (&service.servers[0], &service.servers[1]);
        for _ in 0..3 {
            failing
                .state
                .connect_failures
                .logged
                .count(Cause::Refused as usize);
            service.state.client_resets.count(0);
        }
        for server in [quiet, failing] {
            table
                .apply(&Command::DeleteServer {
                    service: key,
                    server: server.key(),
                })
                .unwrap();
        }
        let retired = table.take_retired();
        assert!(
            matches!(&retired[..], [Retired::Server { server, .. }] if server.key() == failing.key()),
            "{retired:?}"
        );
        // Taken as the sweeper takes it.
        table
            .apply(&Command::DeleteService { service: key })
            .unwrap();
        flush(&table);
        assert!(table.take_retired().is_empty());
        assert!(!service.state.client_resets.holds(), "said at once");
        assert!(
            failing.state.connect_failures.logged.holds(),
            "given back above, unsaid"
        );
    }
}
