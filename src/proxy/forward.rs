//! Moving the bytes of one proxied TCP connection: both directions at once, a half-close
//! passed on as a half-close, bytes counted as they move, the idle timer restarted on
//! activity, packet counts brought up to date every two seconds of activity. Called by
//! the TCP path (`tcp`) once the real server is connected.
//!
//! Two ways to move bytes: read(2) into a pooled buffer and write(2) it out, or
//! splice(2) through a pooled pipe so the bytes never enter userspace (Linux). Splice
//! wins for bulk transfers and loses for small messages (two splices and pipe handling
//! cost more than a read and a write of a few hundred bytes), so the default, `auto`,
//! does what HAProxy's splice-auto does: copy, and splice while reads come in large.
//! `uvs run --forwarding auto|splice|copy` chooses.

use std::fmt;
use std::io::{self, Read as _};
use std::net::Shutdown;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

use tokio::io::Interest;
use tokio::net::TcpStream;

use super::accounting::Accounting;
use super::director::Director;
use super::failure_log::Peer;
use super::pools::Buffer;
use crate::conn::{Conn, State};
use crate::descriptors::Budget;

/// In `auto` mode, a read of at least this many bytes switches a direction to splice,
/// and a splice of fewer switches it back to copying.
const SPLICE_FROM: usize = 16 * 1024;

/// How a [`Transfer`] moves a connection's bytes: the `--forwarding` setting (named so
/// before this type; the setting keeps its name). Not IPVS's forwarding method
/// (masquerading, gatewaying, tunnelling), which is `table::Forward`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// Copy small messages, splice bulk (Linux).
    Auto,
    /// Always splice(2) through a pipe (Linux).
    Splice,
    /// Always read(2) and write(2) through a buffer.
    Copy,
}

impl TransferMode {
    /// `auto` where the system can splice, else `copy`.
    pub fn best() -> TransferMode {
        if cfg!(target_os = "linux") {
            TransferMode::Auto
        } else {
            TransferMode::Copy
        }
    }
}

impl fmt::Display for TransferMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransferMode::Auto => "auto",
            TransferMode::Splice => "splice",
            TransferMode::Copy => "copy",
        })
    }
}

impl FromStr for TransferMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(TransferMode::best()),
            "splice" if cfg!(target_os = "linux") => Ok(TransferMode::Splice),
            "splice" => Err("splice is only available on Linux".into()),
            "copy" => Ok(TransferMode::Copy),
            other => Err(format!(
                "unknown forwarding `{other}' (auto, splice or copy)"
            )),
        }
    }
}

/// The bytes of one connection moving between its two sockets (the TCP path's; a UDP
/// flow is `udp::flow::Flow`).
pub struct Transfer<'a> {
    pub client: &'a TcpStream,
    pub server: &'a TcpStream,
    pub conn: &'a Conn,
    /// Its clock, the descriptors splice pipes take, and the sync master's queue.
    pub director: &'a Director,
    pub accounting: &'a Accounting,
    /// One direction has seen its end of input.
    one_way_ended: AtomicBool,
}

impl<'a> Transfer<'a> {
    pub fn new(
        client: &'a TcpStream,
        server: &'a TcpStream,
        conn: &'a Conn,
        director: &'a Director,
        accounting: &'a Accounting,
    ) -> Transfer<'a> {
        Transfer {
            client,
            server,
            conn,
            director,
            accounting,
            one_way_ended: AtomicBool::new(false),
        }
    }
}

/// How a transfer ended.
#[derive(Debug)]
pub enum End {
    /// Both sides closed in order (FIN both ways).
    Closed,
    /// A side reset or failed; the other is to be reset too. Which side, and what its
    /// socket said (None: neither, the director itself: no pipe could be had).
    Reset(Option<(Peer, io::Error)>),
}

/// An error of one step of a direction, and whose socket it came from: the sender's
/// (read), the receiver's (write), or neither (None: the director's own, a pipe).
struct Failed {
    at: Option<Side>,
    error: io::Error,
}

#[derive(Clone, Copy)]
enum Side {
    Sender,
    Receiver,
}

impl Failed {
    fn at(side: Side) -> impl FnOnce(io::Error) -> Failed {
        move |error| Failed {
            at: Some(side),
            error,
        }
    }

    fn local(error: io::Error) -> Failed {
        Failed { at: None, error }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to real server.
    In,
    /// Real server to client.
    Out,
}

impl Transfer<'_> {
    fn moved(&self, way: Way, n: usize) {
        let now = self.director.conns.clock.now_ms();
        self.conn.touch(now);
        match way {
            Way::In => self.accounting.bytes_in(n),
            Way::Out => self.accounting.bytes_out(n),
        }
        if self.accounting.packets_due(now) {
            self.accounting.packets(self.client, self.server, now);
        }
    }

    /// Moves bytes both ways, the `mode` way, until both sides have closed, or one
    /// fails.
    pub async fn run(&self, mode: TransferMode) -> End {
        let inward = direction(mode, self, self.client, self.server, Way::In);
        let outward = direction(mode, self, self.server, self.client, Way::Out);
        tokio::pin!(inward, outward);
        let (mut in_done, mut out_done) = (false, false);
        while !(in_done && out_done) {
            let ended = tokio::select! {
                r = &mut inward, if !in_done => {
                    in_done = true;
                    self.ended(Way::In, r, !out_done)
                }
                r = &mut outward, if !out_done => {
                    out_done = true;
                    self.ended(Way::Out, r, !in_done)
                }
            };
            if let Err(failed) = ended {
                return End::Reset(failed);
            }
        }
        End::Closed
    }

    /// One way is done. Err if it failed: the transfer ends in a reset, and the error
    /// is the peer's whose socket it came from (client or real server). If it closed in
    /// order and `first`, the connection takes the state IPVS gives the first FIN of
    /// that way: CLOSE_WAIT when the client closed first, FIN_WAIT when the real server
    /// did.
    fn ended(
        &self,
        way: Way,
        result: Result<(), Failed>,
        first: bool,
    ) -> Result<(), Option<(Peer, io::Error)>> {
        match result {
            Err(Failed { at, error }) => {
                let peer = at.map(|side| match (way, side) {
                    (Way::In, Side::Sender) | (Way::Out, Side::Receiver) => Peer::Client,
                    (Way::In, Side::Receiver) | (Way::Out, Side::Sender) => Peer::Server,
                });
                match peer {
                    Some(Peer::Client) => {
                        tracing::debug!(client = %self.conn.client, error = %error, "client side failed")
                    }
                    Some(Peer::Server) => {
                        tracing::debug!(server = %self.conn.dest, error = %error, "server side failed")
                    }
                    None => {
                        tracing::debug!(client = %self.conn.client, error = %error, "transfer failed")
                    }
                }
                Err(peer.map(|p| (p, error)))
            }
            Ok(()) => {
                if first {
                    let state = match way {
                        Way::In => State::CloseWait,
                        Way::Out => State::FinWait,
                    };
                    self.conn.set_state(state);
                    self.director.sync_conn(self.conn, state);
                }
                Ok(())
            }
        }
    }
}

fn half_close(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).shutdown(Shutdown::Write);
}

/// What one step of a direction did.
enum Step {
    /// Bytes went across.
    Moved(usize),
    /// The last bytes went across: the sender had closed its side behind them.
    Last(usize),
    /// The sender closed its side (end of input).
    End,
    /// Nothing to read after all.
    Idle,
}

async fn direction(
    mode: TransferMode,
    transfer: &Transfer<'_>,
    from: &TcpStream,
    to: &TcpStream,
    way: Way,
) -> Result<(), Failed> {
    let mut splicing = mode == TransferMode::Splice;
    loop {
        let ready = from
            .ready(Interest::READABLE | Interest::ERROR)
            .await
            .map_err(Failed::at(Side::Sender))?;
        // The sender's FIN is in (and no reset): what can be read now is the last.
        let fin_seen = ready.is_read_closed() && !ready.is_error();
        let spliced = if splicing {
            splice_step(&transfer.director.descriptors, from, to).await?
        } else {
            None
        };
        // Without a pipe (no descriptors left for one), copy.
        let step = match spliced {
            Some(step) => step,
            None => copy_step(from, to, fin_seen).await?,
        };
        match step {
            Step::Moved(n) => {
                transfer.moved(way, n);
                if mode == TransferMode::Auto {
                    splicing = n >= SPLICE_FROM;
                }
                continue;
            }
            Step::Last(n) => transfer.moved(way, n),
            Step::End => {}
            Step::Idle => continue,
        }
        // Pass the half-close on, unless the other way has ended too: then both
        // sockets are about to be closed, and the close sends the FIN.
        if !transfer.one_way_ended.swap(true, Relaxed) {
            half_close(to);
        }
        return Ok(());
    }
}

/// Reads what `from` holds into `buf`: Some(0) at end of input, None if there was
/// nothing. A short read means the socket is drained, so its readiness is cleared then
/// and there (as HAProxy does), which saves the read that would only say EAGAIN. No
/// wake-up is lost: data or a FIN arriving after the read is a new readiness event
/// (tokio clears only the event the read began under), and tokio never clears the
/// read-closed state.
fn read_drained(from: &TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut got = None;
    let read = from.try_io(Interest::READABLE, || {
        let n = (&*socket2::SockRef::from(from)).read(buf)?;
        got = Some(n);
        if n > 0 && n < buf.len() {
            Err(io::ErrorKind::WouldBlock.into())
        } else {
            Ok(())
        }
    });
    match read {
        Ok(()) => Ok(got),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(got),
        Err(e) => Err(e),
    }
}

/// Copies what `from` holds to `to`. When the sender's FIN is known to be in and the
/// read drains the socket, those bytes are the last: they are sent with MSG_MORE so the
/// half-close that follows rides on the same segment, and the read that would only say
/// "end of input" is saved (HAProxy does the same).
async fn copy_step(from: &TcpStream, to: &TcpStream, fin_seen: bool) -> Result<Step, Failed> {
    let mut buf = Buffer::take();
    let n = match read_drained(from, &mut buf).map_err(Failed::at(Side::Sender))? {
        Some(0) => return Ok(Step::End),
        Some(n) => n,
        None => return Ok(Step::Idle),
    };
    let last = fin_seen && n < buf.len();
    let flags = if last { libc::MSG_MORE } else { 0 };
    let mut sent = 0;
    while sent < n {
        to.writable().await.map_err(Failed::at(Side::Receiver))?;
        match to.try_io(Interest::WRITABLE, || {
            socket2::SockRef::from(to).send_with_flags(&buf[sent..n], flags)
        }) {
            Ok(m) => sent += m,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failed::at(Side::Receiver)(e)),
        }
    }
    Ok(if last { Step::Last(n) } else { Step::Moved(n) })
}

/// One step through a pipe; None when no pipe could be had.
#[cfg(target_os = "linux")]
async fn splice_step(
    budget: &std::sync::Arc<Budget>,
    from: &TcpStream,
    to: &TcpStream,
) -> Result<Option<Step>, Failed> {
    use super::pools::PooledPipe;
    use std::os::fd::AsFd;

    let Some(mut pipe) = PooledPipe::take(budget).map_err(Failed::local)? else {
        return Ok(None);
    };
    // Until it is empty again, a dropped pipe is closed, not pooled.
    let n = match from.try_io(Interest::READABLE, || pipe.splice_in(from.as_fd())) {
        Ok(0) => return Ok(Some(Step::End)),
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(Step::Idle)),
        Err(e) => return Err(Failed::at(Side::Sender)(e)),
    };
    while pipe.holds() > 0 {
        to.writable().await.map_err(Failed::at(Side::Receiver))?;
        match to.try_io(Interest::WRITABLE, || pipe.splice_out(to.as_fd())) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(Failed::at(Side::Receiver)(e)),
        }
    }
    Ok(Some(Step::Moved(n)))
}

#[cfg(not(target_os = "linux"))]
async fn splice_step(
    _budget: &std::sync::Arc<Budget>,
    _from: &TcpStream,
    _to: &TcpStream,
) -> Result<Option<Step>, Failed> {
    Ok(None)
}
