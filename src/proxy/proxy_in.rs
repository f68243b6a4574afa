//! PROXY protocol headers uvs takes from clients (`accept_proxy`): the balancer or proxy
//! in front says who the client is, and that address is the client for everything uvs
//! does (scheduling, persistence, `-L -c`, access lists, limits, logs). Called by the
//! TCP path (`tcp::connection`) before the service's admission; the UDP flows read
//! theirs in `udp/`.
//!
//! The header is peeked at (MSG_PEEK) until its length is known and all of it has come,
//! then exactly that many bytes are read: what the client sent after it (its request)
//! stays in the socket for the real server, and the forwarding path (`forward`) is the
//! same as for a connection without a header. The `ppp` crate parses; this module only
//! tells the versions apart (v1 begins "PROXY ", v2 with its 12-byte signature) and
//! finds where the header ends (v1: its CRLF; v2: 16 bytes plus the length in them).
//! Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::table::AcceptProxy;

/// How long a client has to send its whole header when the service does not say
/// (`accept_proxy_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest v1 header, its CRLF included (the spec's 107 bytes:
/// "PROXY TCP6 " and two full IPv6 addresses and ports).
pub const V1_MAX: usize = 107;

/// The most bytes of addresses and TLVs a v2 header may carry here (after its 16 fixed
/// bytes): IPv6 addresses take 36, leaving room for about 4 KiB of TLVs, far more than
/// balancers send (HAProxy, AWS and GCP send tens of bytes). The spec allows 65535; a
/// longer header is rejected, so that no client makes uvs hold 64 KiB for it.
pub const V2_MAX_PAYLOAD: usize = 4096;

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 header's first 6 bytes.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The v2 header's fixed part: signature, version and command, family and protocol,
/// length.
const V2_FIXED: usize = 16;
/// The first peek's size: any v1 header, a v2 one with IPv6 addresses and 200 bytes of
/// TLVs; a longer v2 header makes the buffer grow to its length.
const FIRST_PEEK: usize = 256;

/// A header taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// PROXY: the connection is for this client.
    Proxy(Received),
    /// The balancer's own connection (v2 LOCAL, v1 UNKNOWN, a v2 PROXY of no address
    /// family or protocol): served as from the real peer, as the spec says.
    Local,
}

/// What a PROXY header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The original client.
    pub client: SocketAddr,
    /// The address the client connected to (the balancer in front's).
    pub destination: SocketAddr,
    /// Its TLVs (v2) as received, each well formed (type, 16-bit length, value); empty
    /// for v1. Passed on to real servers (`proxy_out`).
    pub tlvs: Box<[u8]>,
}

/// Why a client's header was not taken. Each closes the connection with a reset.
#[derive(Debug, thiserror::Error)]
pub enum Rejected {
    #[error("no PROXY header: the first bytes are not one")]
    Missing,
    #[error("a PROXY {found} header where the service accepts {accepted} only")]
    WrongVersion {
        found: &'static str,
        accepted: &'static str,
    },
    #[error("a PROXY {version} header longer than {max} bytes")]
    TooLong { version: &'static str, max: usize },
    #[error("a malformed PROXY header: {0}")]
    Malformed(String),
    #[error("a PROXY header for {0}, of no use on a TCP connection")]
    Unusable(&'static str),
    #[error("the client closed before its whole PROXY header")]
    Closed,
    #[error("no whole PROXY header within {0} ms")]
    TimedOut(u128),
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
    /// The peer is in none of `accept_proxy_from`'s prefixes (nothing of it was read).
    #[error("a peer not trusted to send a PROXY header (not in accept_proxy_from)")]
    Untrusted,
}

/// The deadline of a service's `accept_proxy_timeout_ms` (0: [`DEFAULT_TIMEOUT`]).
pub fn deadline(timeout_ms: u32) -> Duration {
    match timeout_ms {
        0 => DEFAULT_TIMEOUT,
        ms => Duration::from_millis(u64::from(ms)),
    }
}

/// Reads the PROXY header `accept` allows from `stream`, all of it within `within`
/// (however slowly it comes), and not a byte more.
pub async fn read(
    stream: &TcpStream,
    accept: AcceptProxy,
    within: Duration,
) -> Result<Header, Rejected> {
    match tokio::time::timeout(within, read_header(stream, accept)).await {
        Ok(result) => result,
        Err(_) => Err(Rejected::TimedOut(within.as_millis())),
    }
}

/// What one peek found.
enum Step {
    /// The whole header has come: this long.
    Whole(usize),
    /// The header is this long, more than the buffer holds.
    Grow(usize),
    End,
    Rejected(Rejected),
}

async fn read_header(stream: &TcpStream, accept: AcceptProxy) -> Result<Header, Rejected> {
    let mut buf = vec![0u8; FIRST_PEEK];
    let len = loop {
        // A client that half-closed or reset stays readable for good: what the socket
        // holds then is all there will ever be.
        let ready = stream.ready(Interest::READABLE).await?;
        let ended = ready.is_read_closed() || ready.is_error();
        let step = stream.try_io(Interest::READABLE, || {
            let n = crate::sys::peek(stream.as_fd(), &mut buf)?;
            if n == 0 {
                return Ok(Step::End);
            }
            match scan(accept, &buf[..n]) {
                Err(e) => Ok(Step::Rejected(e)),
                Ok(Some(len)) if len <= n => Ok(Step::Whole(len)),
                Ok(Some(len)) if len > buf.len() => Ok(Step::Grow(len)),
                Ok(_) if ended => Ok(Step::End),
                // Not all of it yet: clear the readiness and wait for more bytes.
                Ok(_) => Err(io::ErrorKind::WouldBlock.into()),
            }
        });
        match step {
            Ok(Step::Whole(len)) => break len,
            Ok(Step::Grow(len)) => buf.resize(len, 0),
            Ok(Step::End) => return Err(Rejected::Closed),
            Ok(Step::Rejected(e)) => return Err(e),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    };
    // The header's bytes are all in the socket: take exactly them.
    let mut got = 0;
    while got < len {
        match stream.try_read(&mut buf[got..len]) {
            Ok(0) => return Err(Rejected::Closed),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.readable().await?,
            Err(e) => return Err(e.into()),
        }
    }
    decode(&buf[..len])
}

/// The length of the header `bytes` begin with, once it is known (None: more bytes are
/// needed to tell); an error when they cannot begin a header `accept` allows.
pub fn scan(accept: AcceptProxy, bytes: &[u8]) -> Result<Option<usize>, Rejected> {
    let begins = |prefix: &[u8]| prefix.starts_with(&bytes[..bytes.len().min(prefix.len())]);
    if bytes.is_empty() {
        return Ok(None);
    }
    if begins(V1_PREFIX) {
        if bytes.len() < V1_PREFIX.len() {
            return Ok(None);
        }
        if accept == AcceptProxy::V2 {
            return Err(Rejected::WrongVersion {
                found: "v1",
                accepted: "v2",
            });
        }
        let window = &bytes[..bytes.len().min(V1_MAX)];
        return match window.windows(2).position(|w| w == b"\r\n") {
            Some(at) => Ok(Some(at + 2)),
            None if bytes.len() >= V1_MAX => Err(Rejected::TooLong {
                version: "v1",
                max: V1_MAX,
            }),
            None => Ok(None),
        };
    }
    if begins(V2_SIGNATURE) {
        if bytes.len() < V2_FIXED {
            return Ok(None);
        }
        if accept == AcceptProxy::V1 {
            return Err(Rejected::WrongVersion {
                found: "v2",
                accepted: "v1",
            });
        }
        let payload = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
        if payload > V2_MAX_PAYLOAD {
            return Err(Rejected::TooLong {
                version: "v2",
                max: V2_FIXED + V2_MAX_PAYLOAD,
            });
        }
        return Ok(Some(V2_FIXED + payload));
    }
    Err(Rejected::Missing)
}

/// The header that is exactly `bytes` (as [`scan`] measured it), parsed by `ppp`.
pub fn decode(bytes: &[u8]) -> Result<Header, Rejected> {
    if bytes.starts_with(V1_PREFIX) {
        return decode_v1(bytes);
    }
    decode_v2(bytes)
}

fn decode_v1(bytes: &[u8]) -> Result<Header, Rejected> {
    use ppp::v1::Addresses;
    let header =
        ppp::v1::Header::try_from(bytes).map_err(|e| Rejected::Malformed(e.to_string()))?;
    let (client, destination) = match header.addresses {
        Addresses::Unknown => return Ok(Header::Local),
        Addresses::Tcp4(a) => (
            SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
            SocketAddr::new(IpAddr::V4(a.destination_address), a.destination_port),
        ),
        Addresses::Tcp6(a) => (
            SocketAddr::new(IpAddr::V6(a.source_address).to_canonical(), a.source_port),
            SocketAddr::new(IpAddr::V6(a.destination_address), a.destination_port),
        ),
    };
    Ok(Header::Proxy(Received {
        client,
        destination,
        tlvs: Box::default(),
    }))
}

fn decode_v2(bytes: &[u8]) -> Result<Header, Rejected> {
    use ppp::v2::{Addresses, Command, Protocol};
    // LOCAL (version 2, command 0): its address block is discarded whatever it holds,
    // even a family with no addresses, which ppp's parse refuses.
    if bytes.get(12) == Some(&0x20) {
        return Ok(Header::Local);
    }
    let header =
        ppp::v2::Header::try_from(bytes).map_err(|e| Rejected::Malformed(e.to_string()))?;
    // TLVs that do not add up would be passed on broken (`proxy_out`).
    if let Some(Err(e)) = header.tlvs().find(Result::is_err) {
        return Err(Rejected::Malformed(format!("TLVs: {e}")));
    }
    if header.command == Command::Local {
        // "The receiver must accept this connection as valid and must use the real
        // connection endpoints and discard the protocol block including the family."
        return Ok(Header::Local);
    }
    let (client, destination) = match (header.protocol, header.addresses) {
        (Protocol::Datagram, _) => return Err(Rejected::Unusable("UDP (DGRAM)")),
        (_, Addresses::Unix(_)) => return Err(Rejected::Unusable("AF_UNIX addresses")),
        // Unspecified: "the receiver is free to accept the connection anyway and use
        // the real endpoints addresses".
        (_, Addresses::Unspecified) | (Protocol::Unspecified, _) => return Ok(Header::Local),
        (Protocol::Stream, Addresses::IPv4(a)) => (
            SocketAddr::new(IpAddr::V4(a.source_address), a.source_port),
            SocketAddr::new(IpAddr::V4(a.destination_address), a.destination_port),
        ),
        (Protocol::Stream, Addresses::IPv6(a)) => (
            // An IPv4 client written IPv4-mapped (a dual-stack balancer) is that IPv4
            // client, as over UDP (`udp::proxy_header`).
            SocketAddr::new(IpAddr::V6(a.source_address).to_canonical(), a.source_port),
            SocketAddr::new(IpAddr::V6(a.destination_address), a.destination_port),
        ),
    };
    Ok(Header::Proxy(Received {
        client,
        destination,
        tlvs: header.tlv_bytes().into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(command: ppp::v2::Command, protocol: ppp::v2::Protocol, tlvs: &[(u8, &[u8])]) -> Vec<u8> {
        let c: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        let d: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let mut b =
            ppp::v2::Builder::with_addresses(ppp::v2::Version::Two | command, protocol, (c, d));
        for (kind, value) in tlvs {
            b = b.write_tlv(*kind, value).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn scan_finds_each_version_s_length_and_waits_for_more() {
        let line = b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 80\r\nGET /";
        assert_eq!(scan(AcceptProxy::V1, line).unwrap(), Some(line.len() - 5));
        assert_eq!(scan(AcceptProxy::Any, &line[..20]).unwrap(), None);
        assert_eq!(scan(AcceptProxy::Any, b"PRO").unwrap(), None);
        let block = v2(ppp::v2::Command::Proxy, ppp::v2::Protocol::Stream, &[]);
        assert_eq!(scan(AcceptProxy::V2, &block[..15]).unwrap(), None);
        assert_eq!(scan(AcceptProxy::Any, &block[..16]).unwrap(), Some(28));
        assert_eq!(scan(AcceptProxy::V2, b"\r\n\r").unwrap(), None);
    }

    #[test]
    fn scan_rejects_other_bytes_the_wrong_version_and_too_long() {
        assert!(matches!(
            scan(AcceptProxy::Any, b"GET / HTTP/1.0"),
            Err(Rejected::Missing)
        ));
        assert!(matches!(
            scan(AcceptProxy::Any, b"PROXI"),
            Err(Rejected::Missing)
        ));
        assert!(matches!(
            scan(AcceptProxy::V2, b"PROXY TCP4"),
            Err(Rejected::WrongVersion { found: "v1", .. })
        ));
        let block = v2(ppp::v2::Command::Proxy, ppp::v2::Protocol::Stream, &[]);
        assert!(matches!(
            scan(AcceptProxy::V1, &block),
            Err(Rejected::WrongVersion { found: "v2", .. })
        ));
        let long = [b"PROXY ".as_slice(), &[b'1'; 101]].concat();
        assert_eq!(long.len(), V1_MAX);
        assert!(matches!(
            scan(AcceptProxy::V1, &long),
            Err(Rejected::TooLong { .. })
        ));
        assert_eq!(scan(AcceptProxy::V1, &long[..106]).unwrap(), None);
        let mut big = block.clone();
        big[14..16].copy_from_slice(&((V2_MAX_PAYLOAD + 1) as u16).to_be_bytes());
        assert!(matches!(
            scan(AcceptProxy::V2, &big),
            Err(Rejected::TooLong { .. })
        ));
        big[14..16].copy_from_slice(&(V2_MAX_PAYLOAD as u16).to_be_bytes());
        assert_eq!(
            scan(AcceptProxy::V2, &big).unwrap(),
            Some(16 + V2_MAX_PAYLOAD)
        );
    }

    #[test]
    fn decode_says_who_the_client_is_or_that_it_is_the_balancer_s_own() {
        let proxy = Header::Proxy(Received {
            client: "127.0.0.2:40000".parse().unwrap(),
            destination: "127.0.0.1:80".parse().unwrap(),
            tlvs: Box::default(),
        });
        assert_eq!(
            decode(b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 80\r\n").unwrap(),
            proxy
        );
        assert_eq!(decode(b"PROXY UNKNOWN\r\n").unwrap(), Header::Local);
        let six = decode(b"PROXY TCP6 ::2 ::1 40000 80\r\n").unwrap();
        assert!(matches!(six, Header::Proxy(r) if r.client == "[::2]:40000".parse().unwrap()));
        assert!(matches!(
            decode(b"PROXY TCP4 127.0.0.2 nonsense 40000 80\r\n"),
            Err(Rejected::Malformed(_))
        ));
        let block = v2(ppp::v2::Command::Proxy, ppp::v2::Protocol::Stream, &[]);
        assert_eq!(decode(&block).unwrap(), proxy);
        let local = v2(ppp::v2::Command::Local, ppp::v2::Protocol::Stream, &[]);
        assert_eq!(decode(&local).unwrap(), Header::Local);
        let unspec = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            ppp::v2::Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(decode(&unspec).unwrap(), Header::Local);
        let dgram = v2(ppp::v2::Command::Proxy, ppp::v2::Protocol::Datagram, &[]);
        assert!(matches!(decode(&dgram), Err(Rejected::Unusable(_))));
    }

    #[test]
    fn decode_keeps_the_tlvs_and_refuses_broken_ones() {
        let block = v2(
            ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            &[(0x05, b"abc"), (0xE7, b"x")],
        );
        let Header::Proxy(r) = decode(&block).unwrap() else {
            panic!("not a PROXY header");
        };
        assert_eq!(&*r.tlvs, b"\x05\x00\x03abc\xE7\x00\x01x");
        // A TLV whose length runs past the header's end.
        let mut broken = v2(
            ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            &[(5, b"ab")],
        );
        let n = broken.len();
        broken[n - 3] = 9;
        assert!(matches!(decode(&broken), Err(Rejected::Malformed(_))));
    }

    /// A dual-stack balancer writes an IPv4 client IPv4-mapped: it is that IPv4
    /// client (as over UDP); the destination is kept as written, for what is sent on.
    /// A LOCAL block is discarded whatever it holds, a family with no addresses too.
    #[test]
    fn a_mapped_client_is_ipv4_and_any_local_block_is_the_balancer_s_own() {
        let mapped = decode(b"PROXY TCP6 ::ffff:127.0.0.5 ::ffff:127.0.0.1 40000 80\r\n").unwrap();
        let Header::Proxy(r) = mapped else {
            panic!("{mapped:?}")
        };
        assert_eq!(r.client, "127.0.0.5:40000".parse().unwrap());
        assert_eq!(r.destination, "[::ffff:127.0.0.1]:80".parse().unwrap());
        let mut local = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
        local.extend_from_slice(&[0x20, 0x11, 0x00, 0x00]);
        assert_eq!(decode(&local).unwrap(), Header::Local);
    }

    /// A client that half-closes (or resets) part way through its header is done at
    /// once: its socket stays readable for good, and waiting on it must not spin. Run
    /// on a thread of its own, so that a spinning read fails the test, not hangs it.
    #[test]
    fn a_client_that_ends_mid_header_is_closed_at_once() {
        use std::io::Write as _;
        let (done, result) = std::sync::mpsc::channel();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        client.write_all(b"PROXY TCP4 127.0.0.2").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let got = rt.block_on(async {
                accepted.set_nonblocking(true).unwrap();
                let stream = TcpStream::from_std(accepted).unwrap();
                read(&stream, AcceptProxy::Any, Duration::from_secs(60)).await
            });
            let _ = done.send(got);
        });
        let got = result
            .recv_timeout(Duration::from_secs(20))
            .expect("the read ended, not spun");
        assert!(matches!(got, Err(Rejected::Closed)), "{got:?}");
    }
}
