//! What the data plane logs at the default level of the traffic that fails: a real
//! server's failed connects (refused, timed out, no route), and connections reset
//! mid-stream by a client or by a real server. Counted where they happen, on the
//! server's or the service's atomics (`rate_limit::Tally`: fixed size, so memory is
//! bounded however many servers and clients there are); the first after a quiet
//! interval is logged at once with its cause, the rest summed up at most every ten
//! seconds per server (per service for resets) by the sweeper ([`flush`], from
//! `Director::sweep`) or by the next failure that finds the interval over.
//! Called by `tcp` (connects, resets) and `udp::flow` (refusals).

use std::fmt::{self, Display};
use std::io;

use crate::rate_limit::{Line, Tally};
use crate::table::{RealServerState, Service, ServiceKey, Table};
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
}

/// The causes' words in a summary, in index order.
const CAUSES: [&str; 4] = ["refused", "timed out", "no route", "other"];

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

/// A connect from `service` (as the log names it: its key, or for a UDP flow the
/// protocol and address the client reached) to real server `server` (its state, at
/// `dest`) failed: counted, and logged at WARN when its turn says so. `detail` is the
/// cause in words ("connection refused", "timed out after 5 s", the system's error).
pub fn connect_failed(
    service: &dyn Display,
    server: &RealServerState,
    dest: &dyn Display,
    cause: Cause,
    detail: &dyn Display,
) {
    match server.connect_failures.logged.count(cause as usize) {
        Some(Line::First) => tracing::warn!(
            "real server {dest} of {service}: connect failed: {detail} (further failures \
             of this server are summed up at most every {} s)",
            crate::rate_limit::INTERVAL_SECONDS
        ),
        Some(Line::Summary { counts, seconds }) => {
            connect_summary(service, dest, &counts, seconds);
        }
        None => {}
    }
}

fn connect_summary(service: &dyn Display, dest: &dyn Display, counts: &[u64; 4], seconds: u64) {
    let n: u64 = counts.iter().sum();
    tracing::warn!(
        "real server {dest} of {service}: {n} more connect {} ({}) in the last {seconds} s",
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
    match (tally(service, by).count(0), by) {
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
            reset_summary(key, by, counts[0], seconds);
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

fn reset_summary(key: &ServiceKey, by: Peer, n: u64, seconds: u64) {
    let connections = plural(n, "connection", "connections");
    match by {
        Peer::Client => {
            tracing::info!("{key}: {n} more {connections} reset by clients in the last {seconds} s")
        }
        Peer::Server => tracing::warn!(
            "{key}: {n} more {connections} reset by real servers in the last {seconds} s"
        ),
    }
}

/// Sums up what was held back, for every service and server whose interval is over.
/// Called every second by the sweeper; it reads atomics only.
pub fn flush(table: &Table) {
    for service in table.services() {
        for by in [Peer::Client, Peer::Server] {
            if let Some(Line::Summary { counts, seconds }) = tally(service, by).flush() {
                reset_summary(&service.key, by, counts[0], seconds);
            }
        }
        for server in &service.servers {
            if let Some(Line::Summary { counts, seconds }) =
                server.state.connect_failures.logged.flush()
            {
                connect_summary(&service.key, &server.key(), &counts, seconds);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_and_counts_in_words() {
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert_eq!(Cause::of(&refused), Cause::Refused);
        let no_route = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
        assert_eq!(Cause::of(&no_route), Cause::NoRoute);
        assert_eq!(
            Cause::of(&io::Error::from_raw_os_error(libc::EACCES)),
            Cause::Other
        );
        assert_eq!(
            Counts(&[7, 0, 0, 2], CAUSES).to_string(),
            "refused 7, other 2"
        );
        assert_eq!(Counts(&[0, 3, 0, 0], CAUSES).to_string(), "timed out 3");
    }
}
