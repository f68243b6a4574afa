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
//! A source that is busy (bind EADDRINUSE: a socket without SO_REUSEADDR holds the
//! port; connect EADDRNOTAVAIL: the 4-tuple is in use, or the kernel found no port for
//! the address) is given up for the next one, at most [`TRIES`] times; then the
//! connect fails with [`NoFreePort`].

use std::io;
use std::net::SocketAddr;

use socket2::Socket;

use crate::table::source::Pool;

/// How many sources one connect tries before it fails with [`NoFreePort`].
pub const TRIES: u32 = 32;

/// Every source tried was busy: the error inside the `io::Error` that
/// [`connect`] returns, told apart by [`is_no_free_port`].
#[derive(Debug, thiserror::Error)]
#[error("no free source port ({tries} tried; the last: {last})")]
pub struct NoFreePort {
    pub tries: u32,
    pub last: io::Error,
}

/// Whether `e` is [`NoFreePort`].
pub fn is_no_free_port(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<NoFreePort>())
}

/// A socket from `make` (non-blocking, with its options), bound to the next source of
/// `pool` and connecting to `dest` (the connect started: EINPROGRESS is success).
/// Errors: `make`'s, a bind's or connect's other than busy, or [`NoFreePort`].
pub fn connect(
    pool: &Pool,
    dest: SocketAddr,
    make: impl Fn() -> io::Result<Socket>,
) -> io::Result<Socket> {
    let tries = TRIES.min(u32::try_from(pool.slots()).unwrap_or(u32::MAX));
    let mut last = io::Error::from_raw_os_error(libc::EADDRNOTAVAIL);
    for _ in 0..tries {
        let socket = make()?;
        let from = pool.next();
        if pool.ports.is_some() {
            socket.set_reuse_address(true)?;
        } else {
            {
                use std::os::fd::AsFd;
                crate::sys::set_bind_address_no_port(socket.as_fd())?;
            }
        }
        match socket.bind(&from.into()) {
            Ok(()) => {}
            Err(e) if is_busy(&e) => {
                last = e;
                continue;
            }
            Err(e) => return Err(e),
        }
        match socket.connect(&dest.into()) {
            Ok(()) => return Ok(socket),
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => return Ok(socket),
            Err(e) if is_busy(&e) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrNotAvailable,
        NoFreePort { tries, last },
    ))
}

fn is_busy(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EADDRINUSE | libc::EADDRNOTAVAIL)
    )
}
