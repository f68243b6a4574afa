//! Moving the bytes of one proxied TCP connection: both directions at once, a half-close
//! passed on as a half-close, bytes counted as they move (service, real server, totals),
//! the idle timer restarted on activity, and packet counts read from the kernel's
//! per-socket segment counters (TCP_INFO) every two seconds of activity and at the end.
//!
//! On Linux bytes move with splice(2) through a pipe, never entering userspace; the
//! portable path reads into a pooled buffer and writes it out. `uvs run --forwarding`
//! chooses (splice by default on Linux).

use std::fmt;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};

use tokio::net::TcpStream;

use crate::conn::{Clock, Conn, State};
use crate::stats::Stats;
use crate::sys;
use crate::table::{RealServerState, ServiceState};

/// How often a busy connection's packet counts are brought up to date.
const PACKET_INTERVAL_MS: u64 = 2000;
/// Most bytes moved per step.
const CHUNK: usize = 64 * 1024;

/// How bytes are moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// splice(2) through a pipe (Linux).
    Splice,
    /// read(2) and write(2) through a buffer.
    Copy,
}

impl Forwarding {
    /// Splice where the system has it.
    pub fn best() -> Forwarding {
        if cfg!(target_os = "linux") {
            Forwarding::Splice
        } else {
            Forwarding::Copy
        }
    }
}

impl fmt::Display for Forwarding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forwarding::Splice => "splice",
            Forwarding::Copy => "copy",
        })
    }
}

impl FromStr for Forwarding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "splice" if cfg!(target_os = "linux") => Ok(Forwarding::Splice),
            "splice" => Err("splice is only available on Linux".into()),
            "copy" => Ok(Forwarding::Copy),
            other => Err(format!("unknown forwarding `{other}' (splice or copy)")),
        }
    }
}

/// Where one connection's counts go.
#[derive(Debug)]
pub struct Accounting {
    pub service: Arc<ServiceState>,
    pub server: Arc<RealServerState>,
    pub totals: Arc<Stats>,
    client_segments: AtomicU32,
    server_segments: AtomicU32,
    packets_read_at: AtomicU64,
}

impl Accounting {
    pub fn new(
        service: Arc<ServiceState>,
        server: Arc<RealServerState>,
        totals: Arc<Stats>,
    ) -> Accounting {
        Accounting {
            service,
            server,
            totals,
            client_segments: AtomicU32::new(0),
            server_segments: AtomicU32::new(0),
            packets_read_at: AtomicU64::new(0),
        }
    }

    fn each(&self, f: impl Fn(&Stats)) {
        f(&self.service.stats);
        f(&self.server.stats);
        f(&self.totals);
    }

    /// One connection scheduled to this server.
    pub fn connection(&self) {
        self.each(Stats::add_conn);
    }

    fn bytes_in(&self, n: usize) {
        self.each(|s| s.add_in(0, n as u64));
    }

    fn bytes_out(&self, n: usize) {
        self.each(|s| s.add_out(0, n as u64));
    }

    /// Adds the segments both sockets received since the last call: the client's are
    /// IPVS's InPkts, the real server's its OutPkts.
    pub fn packets(&self, client: &TcpStream, server: &TcpStream, now_ms: u64) {
        self.packets_read_at.store(now_ms, Relaxed);
        let delta = |socket: &TcpStream, seen: &AtomicU32| {
            sys::tcp_segments(socket.as_fd())
                .map(|(segs_in, _)| u64::from(segs_in.wrapping_sub(seen.swap(segs_in, Relaxed))))
                .unwrap_or(0)
        };
        let (inward, outward) = (
            delta(client, &self.client_segments),
            delta(server, &self.server_segments),
        );
        self.each(|s| {
            s.add_in(inward, 0);
            s.add_out(outward, 0);
        });
    }

    fn packets_due(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.packets_read_at.load(Relaxed)) >= PACKET_INTERVAL_MS
    }
}

/// One connection being forwarded.
pub struct Flow<'a> {
    pub client: &'a TcpStream,
    pub server: &'a TcpStream,
    pub conn: &'a Conn,
    pub clock: &'a Clock,
    pub accounting: &'a Accounting,
}

/// How forwarding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Both sides closed in order (FIN both ways).
    Closed,
    /// A side reset or failed; the other is to be reset too.
    Reset,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Client to real server.
    In,
    /// Real server to client.
    Out,
}

impl Flow<'_> {
    fn moved(&self, way: Way, n: usize) {
        let now = self.clock.now_ms();
        self.conn.touch(now);
        match way {
            Way::In => self.accounting.bytes_in(n),
            Way::Out => self.accounting.bytes_out(n),
        }
        if self.accounting.packets_due(now) {
            self.accounting.packets(self.client, self.server, now);
        }
    }
}

/// Forwards until both sides have closed, or one fails.
pub async fn forward(mode: Forwarding, flow: &Flow<'_>) -> End {
    let inward = direction(mode, flow, flow.client, flow.server, Way::In);
    let outward = direction(mode, flow, flow.server, flow.client, Way::Out);
    tokio::pin!(inward, outward);
    let (mut in_done, mut out_done) = (false, false);
    while !(in_done && out_done) {
        tokio::select! {
            r = &mut inward, if !in_done => {
                if r.is_err() {
                    return End::Reset;
                }
                in_done = true;
                if !out_done {
                    // The client closed first: IPVS's CLOSE_WAIT.
                    flow.conn.set_state(State::CloseWait);
                }
            }
            r = &mut outward, if !out_done => {
                if r.is_err() {
                    return End::Reset;
                }
                out_done = true;
                if !in_done {
                    // The real server closed first: FIN_WAIT.
                    flow.conn.set_state(State::FinWait);
                }
            }
        }
    }
    End::Closed
}

fn half_close(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).shutdown(Shutdown::Write);
}

async fn direction(
    mode: Forwarding,
    flow: &Flow<'_>,
    from: &TcpStream,
    to: &TcpStream,
    way: Way,
) -> io::Result<()> {
    match mode {
        #[cfg(target_os = "linux")]
        Forwarding::Splice => splice_direction(flow, from, to, way).await,
        #[cfg(not(target_os = "linux"))]
        Forwarding::Splice => copy_direction(flow, from, to, way).await,
        Forwarding::Copy => copy_direction(flow, from, to, way).await,
    }
}

#[cfg(target_os = "linux")]
async fn splice_direction(
    flow: &Flow<'_>,
    from: &TcpStream,
    to: &TcpStream,
    way: Way,
) -> io::Result<()> {
    use super::pipes::PIPES;
    use tokio::io::Interest;

    loop {
        from.readable().await?;
        let pipe = PIPES.take()?;
        let filled = from.try_io(Interest::READABLE, || {
            sys::splice(from.as_fd(), pipe.write_end(), CHUNK)
        });
        let n = match filled {
            Ok(0) => {
                PIPES.give_back(pipe);
                half_close(to);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                PIPES.give_back(pipe);
                continue;
            }
            Err(e) => {
                PIPES.give_back(pipe);
                return Err(e);
            }
        };
        // A pipe that still holds bytes when this fails is dropped, not pooled.
        let mut left = n;
        while left > 0 {
            to.writable().await?;
            match to.try_io(Interest::WRITABLE, || {
                sys::splice(pipe.read_end(), to.as_fd(), left)
            }) {
                Ok(m) => left -= m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        PIPES.give_back(pipe);
        flow.moved(way, n);
    }
}

/// Buffers for the copy path, pooled like the pipes.
static BUFFERS: Mutex<Vec<Box<[u8]>>> = Mutex::new(Vec::new());
const KEEP_BUFFERS: usize = 256;

fn take_buffer() -> Box<[u8]> {
    BUFFERS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .pop()
        .unwrap_or_else(|| vec![0u8; CHUNK].into_boxed_slice())
}

fn give_back_buffer(buf: Box<[u8]>) {
    let mut pool = BUFFERS.lock().unwrap_or_else(|e| e.into_inner());
    if pool.len() < KEEP_BUFFERS {
        pool.push(buf);
    }
}

async fn copy_direction(
    flow: &Flow<'_>,
    from: &TcpStream,
    to: &TcpStream,
    way: Way,
) -> io::Result<()> {
    loop {
        from.readable().await?;
        let mut buf = take_buffer();
        let n = match from.try_read(&mut buf) {
            Ok(0) => {
                give_back_buffer(buf);
                half_close(to);
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_back_buffer(buf);
                continue;
            }
            Err(e) => {
                give_back_buffer(buf);
                return Err(e);
            }
        };
        let mut sent = 0;
        while sent < n {
            to.writable().await?;
            match to.try_write(&buf[sent..n]) {
                Ok(m) => sent += m,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        give_back_buffer(buf);
        flow.moved(way, n);
    }
}
