//! Binds a connection to a real server to the service's next source (`source`,
//! `source_ports`; `table::source::Pool`) and starts its connect. Called by the TCP
//! connect (`proxy::tcp`) only for services with sources: without, the connect makes
//! no system call more than it did.
//!
//! - **Addresses only**: IP_BIND_ADDRESS_NO_PORT, then bind(addr:0): the kernel still
//!   picks the port at connect, per 4-tuple (`__inet_hash_connect` with `twp` set, so
//!   `tcp_tw_reuse` decides about TIME_WAITs), and N addresses give N times the ports.
//!   2 system calls more per connect (setsockopt, bind). HAProxy's `source addr`.
//! - **With ports**: SO_REUSEADDR, then bind(addr:port), then connect: for a bound
//!   socket `__inet_hash_connect` calls `check_established` with `twp == NULL`, and
//!   `tcp_twsk_unique` lets it take over a TIME_WAIT of the same 4-tuple that has a
//!   timestamp (PAWS keeps old segments out), whatever `tcp_tw_reuse` says. 2 system
//!   calls more (setsockopt, bind). HAProxy's `source addr:low-high`.
//!
//! The sources turn per real server (the cursor is the server's,
//! `RealServerState::source_cursor`), so that each server's connects go through every
//! (address, port) whatever the scheduler's order.
//!
//! Candidates are skipped without a system call when they are the real server's own
//! address and port, or the unspecified address with its port (bind then connect to
//! oneself is TCP's simultaneous open: a socket connected to itself, which would echo
//! the client's bytes back as the reply), and when their address was found not local
//! earlier in the same connect. A bind that fails with EADDRNOTAVAIL means the address
//! is not on this host (a floating address not up here): reported (`not_local`) and
//! that address skipped for the rest of the connect. A source that is busy (bind
//! EADDRINUSE: a socket without SO_REUSEADDR holds the port; connect EADDRNOTAVAIL: the
//! 4-tuple is in use, or the kernel found no port for the address) is given up for the
//! next one. At most [`TRIES`] sockets are made (each a round of system calls), and
//! [`DRAWS`] candidates drawn; then the connect fails with [`SourceError`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use socket2::Socket;

use crate::table::source::Pool;

/// How many sockets (rounds of socket, setsockopt, bind, connect) one connect makes at
/// most before it fails with [`SourceError::NoFreePort`].
pub const TRIES: u32 = 32;

/// How many candidates one connect draws at most: skipped ones cost no system call.
pub const DRAWS: u32 = 4 * TRIES;

/// Why no source could be had: the error inside the `io::Error` that [`connect`]
/// returns, found by [`source_error`].
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Every source tried was busy (or skipped as the server's own address and port).
    #[error("no free source port ({tries} tried; the last: {last})")]
    NoFreePort { tries: u32, last: io::Error },
    /// Every address tried is not on this host (bind EADDRNOTAVAIL); each one was
    /// reported to `not_local` already.
    #[error("source address {address} is not local (bind: {error})")]
    NotLocal { address: IpAddr, error: io::Error },
}

/// The [`SourceError`] in `e`, if that is what it is.
pub fn source_error(e: &io::Error) -> Option<&SourceError> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<SourceError>())
}

/// A socket from `make` (non-blocking, with its options), bound to the next source of
/// `pool` (turned by `cursor`, the real server's) and connecting to `dest` (the
/// connect started: EINPROGRESS is success). `not_local` is told of each address whose
/// bind failed with EADDRNOTAVAIL. Errors: `make`'s, a bind's or connect's other than
/// those above, or [`SourceError`].
pub fn connect(
    pool: &Pool,
    cursor: &AtomicUsize,
    dest: SocketAddr,
    make: impl Fn() -> io::Result<Socket>,
    not_local: impl Fn(IpAddr, &io::Error),
) -> io::Result<Socket> {
    let draws = u64::from(DRAWS).min(pool.slots());
    let mut tries = 0;
    let mut last: Option<io::Error> = None;
    // The addresses found not local in this connect (at most one per try).
    let mut foreign = [None::<IpAddr>; TRIES as usize];
    let mut foreign_count = 0;
    let mut first_foreign: Option<(IpAddr, io::Error)> = None;
    for _ in 0..draws {
        if tries == TRIES {
            break;
        }
        let from = pool.at(cursor.fetch_add(1, Relaxed));
        if from.port() == dest.port() && (from.ip() == dest.ip() || from.ip().is_unspecified()) {
            last = Some(io::Error::new(
                io::ErrorKind::AddrInUse,
                "the real server's own address and port, skipped: a connect to itself",
            ));
            continue;
        }
        if foreign[..foreign_count].contains(&Some(from.ip())) {
            continue;
        }
        tries += 1;
        let socket = make()?;
        if pool.ports.is_some() {
            socket.set_reuse_address(true)?;
        } else {
            use std::os::fd::AsFd;
            crate::sys::set_bind_address_no_port(socket.as_fd())?;
        }
        match socket.bind(&from.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => {
                not_local(from.ip(), &e);
                foreign[foreign_count] = Some(from.ip());
                foreign_count += 1;
                if first_foreign.is_none() {
                    first_foreign = Some((from.ip(), e));
                }
                continue;
            }
            Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
                last = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        }
        match socket.connect(&dest.into()) {
            Ok(()) => return Ok(socket),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => return Ok(socket),
            Err(e) if is_busy(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    let error = match (last, first_foreign) {
        (None, Some((address, error))) => SourceError::NotLocal { address, error },
        (last, _) => SourceError::NoFreePort {
            tries,
            last: last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EADDRNOTAVAIL)),
        },
    };
    Err(io::Error::new(io::ErrorKind::AddrNotAvailable, error))
}

/// A connect's busy: the 4-tuple in use (EADDRNOTAVAIL) or the port (EADDRINUSE).
fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRINUSE | libc::EADDRNOTAVAIL)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::source::{PortRange, Source, SourceConfig};

    fn make(dest: SocketAddr) -> impl Fn() -> io::Result<Socket> {
        move || {
            use socket2::{Domain, Type};
            Socket::new(
                Domain::for_address(dest),
                Type::STREAM.nonblocking(),
                Some(socket2::Protocol::TCP),
            )
        }
    }

    /// The server's own port, on its address or the unspecified one, is never bound:
    /// bind(0.0.0.0:P) then connect(127.0.0.1:P), nothing listening, would connect
    /// the socket to itself.
    #[test]
    fn the_real_servers_own_address_and_port_is_never_a_source() {
        // A port nothing listens on now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dest = SocketAddr::from(([127, 0, 0, 1], port));
        let source = Source::new(SourceConfig {
            addresses: vec![],
            ports: Some(PortRange {
                low: port,
                high: port,
            }),
        });
        let pool = source.pool_for(&dest).unwrap();
        let cursor = AtomicUsize::new(0);
        let e = connect(pool, &cursor, dest, make(dest), |_, _| {}).unwrap_err();
        match source_error(&e) {
            Some(SourceError::NoFreePort { tries: 0, last }) => {
                assert!(last.to_string().contains("a connect to itself"), "{last}");
            }
            other => panic!("{other:?}"),
        }
    }
}
