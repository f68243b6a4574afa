//! What several checks do on the wire: name an I/O error as a [`Failure`], connect
//! from a chosen address ([`Bind`]), exchange one datagram, read an answer to its end.
//! Used by the check kinds of this directory.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use super::Failure;
use crate::config::Check;

/// The most of an answer a check reads.
pub const MAX_ANSWER: usize = 1 << 20;

pub fn io_failure(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Io(e.to_string()),
    }
}

/// Where a TCP check connects from: keepalived's `bindto` and `bind_port`
/// (check_api.c's `co_srcip_handler`, `co_srcport_handler`; `tcp_bind_connect`
/// binds the socket before connecting). Unset: the system's choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bind {
    pub source: Option<std::net::IpAddr>,
    pub port: Option<u16>,
}

impl Bind {
    /// The `source` and `source_port` of `settings`.
    pub fn of(settings: &Check) -> Bind {
        Bind {
            source: settings.source,
            port: settings.source_port,
        }
    }

    /// A TCP connection to `dest` from this source. A failure names the source, so the
    /// log says which address could not reach the server.
    pub async fn connect(&self, dest: SocketAddr) -> Result<TcpStream, Failure> {
        if *self == Bind::default() {
            return TcpStream::connect(dest).await.map_err(io_failure);
        }
        let from = self.address(dest);
        let named = |f: Failure| Failure::At(format!("from {from}"), Box::new(f));
        let socket = if dest.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
        .map_err(|e| named(io_failure(e)))?;
        if self.port.is_some() {
            // A check every interval from one port: the last one's TIME_WAIT must not
            // stop the next.
            socket
                .set_reuseaddr(true)
                .map_err(|e| named(io_failure(e)))?;
        }
        socket.bind(from).map_err(|e| named(io_failure(e)))?;
        socket.connect(dest).await.map_err(|e| named(io_failure(e)))
    }

    /// The local address bound for `dest`: the source, or the unspecified address of
    /// `dest`'s family, with the port (0: any).
    pub fn address(&self, dest: SocketAddr) -> SocketAddr {
        let any: std::net::IpAddr = if dest.is_ipv4() {
            std::net::Ipv4Addr::UNSPECIFIED.into()
        } else {
            std::net::Ipv6Addr::UNSPECIFIED.into()
        };
        SocketAddr::new(self.source.unwrap_or(any), self.port.unwrap_or(0))
    }
}

/// Sends one datagram from `bind` and waits for one answer (the probe's timeout
/// bounds it).
pub async fn udp_exchange(
    bind: &Bind,
    dest: SocketAddr,
    request: &[u8],
) -> Result<Vec<u8>, Failure> {
    let socket = UdpSocket::bind(bind.address(dest))
        .await
        .map_err(io_failure)?;
    socket.connect(dest).await.map_err(io_failure)?;
    socket.send(request).await.map_err(io_failure)?;
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).await.map_err(io_failure)?;
    buf.truncate(n);
    Ok(buf)
}

/// Reads until the peer closes (a TLS peer that closes without saying so ends the
/// answer too), keeping the answer's first `MAX_ANSWER` bytes and giving every byte
/// that comes, in order, to `feed`, which says whether it wants more: the reading ends
/// at `MAX_ANSWER` unless it does (then the check's timeout bounds it).
pub async fn read_answer<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut feed: impl FnMut(&[u8]) -> bool,
) -> Result<Vec<u8>, Failure> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => 0,
            Err(e) => return Err(io_failure(e)),
        };
        if n == 0 {
            return Ok(answer);
        }
        let more = feed(&buf[..n]);
        answer.extend_from_slice(&buf[..n.min(MAX_ANSWER - answer.len())]);
        if answer.len() == MAX_ANSWER && !more {
            return Ok(answer);
        }
    }
}
