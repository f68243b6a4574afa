//! What several checks do on the wire: name an I/O error as a [`Failure`], exchange one
//! datagram, read an answer to its end. Used by the check kinds of this directory.

use std::net::SocketAddr;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::UdpSocket;

use super::Failure;

/// The most of an answer a check reads.
pub const MAX_ANSWER: usize = 1 << 20;

pub fn io_failure(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Io(e.to_string()),
    }
}

/// Sends one datagram and waits for one answer (the probe's timeout bounds it).
pub async fn udp_exchange(dest: SocketAddr, request: &[u8]) -> Result<Vec<u8>, Failure> {
    let any: SocketAddr = if dest.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).await.map_err(io_failure)?;
    socket.connect(dest).await.map_err(io_failure)?;
    socket.send(request).await.map_err(io_failure)?;
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).await.map_err(io_failure)?;
    buf.truncate(n);
    Ok(buf)
}

/// Reads until the peer closes or `MAX_ANSWER` bytes have come. A TLS peer that
/// closes without saying so ends the answer too.
pub async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, Failure> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => 0,
            Err(e) => return Err(io_failure(e)),
        };
        if n == 0 || answer.len() + n > MAX_ANSWER {
            answer.extend_from_slice(&buf[..n.min(MAX_ANSWER - answer.len())]);
            return Ok(answer);
        }
        answer.extend_from_slice(&buf[..n]);
    }
}
