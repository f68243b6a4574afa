//! PROXY v2 headers at the front of UDP datagrams, on a UDP service that takes them
//! (`accept_proxy`: over UDP only version 2 exists, so "v2" and "any" both mean it): a
//! balancer in front puts one in every datagram, saying which client sent it. Read with
//! the `ppp` crate. Called by the UDP receive path (`flow::forward_proxied`) for every
//! datagram of such a service; what it rejects is dropped and counted there.
//!
//! The spec (HAProxy's proxy-protocol.txt, 2.2): command PROXY with an IPv4 or IPv6
//! source gives the client; command LOCAL (the balancer's own traffic, health checks)
//! and PROXY with the family UNSPEC mean "the sender itself", so the datagram is handled
//! as from the peer; TLVs are skipped.

use std::net::SocketAddr;

use ppp::v2::{Addresses, Command, Header, ParseError, Protocol};

/// A header read off the front of a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// The client it names; None: the datagram is the sender's own (LOCAL, or UNSPEC).
    pub client: Option<SocketAddr>,
    /// The header's length in bytes (TLVs included): the payload follows.
    pub len: usize,
}

/// Why a datagram's header was refused (the datagram is dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("no PROXY v2 header")]
    Missing,
    #[error("a PROXY v2 header longer than the datagram")]
    Truncated,
    #[error("a malformed PROXY v2 header")]
    Malformed,
    #[error("a PROXY v2 header for a stream (TCP), not a datagram")]
    Stream,
    #[error("a PROXY v2 header whose addresses are not IP (AF_UNIX)")]
    NotIp,
    /// The peer is in none of the service's `accept_proxy_from` prefixes (the datagram
    /// was not read).
    #[error("a peer not trusted to send a PROXY header (not in accept_proxy_from)")]
    Untrusted,
}

/// Reads the PROXY v2 header at the front of `datagram`.
///
/// Errors: [`Rejected`], for no header (v1's text included), one cut short, one that
/// does not parse (version, command, family or length wrong), one for STREAM transport
/// or for UNIX sockets.
pub fn read(datagram: &[u8]) -> Result<Read, Rejected> {
    if datagram.is_empty() {
        return Err(Rejected::Missing);
    }
    let header = Header::try_from(datagram).map_err(|e| match e {
        ParseError::Prefix => Rejected::Missing,
        ParseError::Incomplete(_) | ParseError::Partial(..) => Rejected::Truncated,
        _ => Rejected::Malformed,
    })?;
    let len = header.len();
    if header.command == Command::Local {
        return Ok(Read { client: None, len });
    }
    let client = match header.addresses {
        Addresses::Unspecified => None,
        Addresses::Unix(_) => return Err(Rejected::NotIp),
        Addresses::IPv4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        Addresses::IPv6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
    };
    match (client, header.protocol) {
        (_, Protocol::Stream) => Err(Rejected::Stream),
        (None, _) => Ok(Read { client: None, len }),
        (Some(_), Protocol::Unspecified) => Err(Rejected::Malformed),
        // An IPv4 client written as IPv4-mapped IPv6 is that IPv4 client.
        (Some(c), Protocol::Datagram) => Ok(Read {
            client: Some(SocketAddr::new(c.ip().to_canonical(), c.port())),
            len,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Version};

    fn header(command: Command, protocol: Protocol, client: &str, local: &str) -> Vec<u8> {
        let (c, l): (SocketAddr, SocketAddr) = (client.parse().unwrap(), local.parse().unwrap());
        Builder::with_addresses(Version::Two | command, protocol, (c, l))
            .build()
            .unwrap()
    }

    #[test]
    fn a_datagram_header_gives_the_client_and_its_length() {
        let mut d = header(
            Command::Proxy,
            Protocol::Datagram,
            "192.0.2.7:4000",
            "127.0.0.1:53",
        );
        let len = d.len();
        d.extend(b"payload");
        assert_eq!(
            read(&d),
            Ok(Read {
                client: Some("192.0.2.7:4000".parse().unwrap()),
                len
            })
        );
        assert_eq!(&d[len..], b"payload");
        let d6 = header(
            Command::Proxy,
            Protocol::Datagram,
            "[2001:db8::1]:7",
            "[::1]:53",
        );
        assert_eq!(
            read(&d6).unwrap().client,
            Some("[2001:db8::1]:7".parse().unwrap())
        );
        let mapped = header(
            Command::Proxy,
            Protocol::Datagram,
            "[::ffff:10.0.0.1]:7",
            "[::1]:53",
        );
        assert_eq!(
            read(&mapped).unwrap().client,
            Some("10.0.0.1:7".parse().unwrap())
        );
    }

    #[test]
    fn tlvs_are_skipped() {
        let (c, l): (SocketAddr, SocketAddr) =
            ("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap());
        let mut d =
            Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Datagram, (c, l))
                .write_tlv(ppp::v2::Type::NoOp, b"xyz")
                .unwrap()
                .build()
                .unwrap();
        let len = d.len();
        assert_eq!(len, 16 + 12 + 3 + 3);
        d.push(b'!');
        assert_eq!(
            read(&d),
            Ok(Read {
                client: Some(c),
                len
            })
        );
    }

    #[test]
    fn local_and_unspec_are_the_sender_itself() {
        let local = Builder::with_addresses(
            Version::Two | Command::Local,
            Protocol::Unspecified,
            Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(
            read(&local),
            Ok(Read {
                client: None,
                len: 16
            })
        );
        let unspec = Builder::with_addresses(
            Version::Two | Command::Proxy,
            Protocol::Unspecified,
            Addresses::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(
            read(&unspec),
            Ok(Read {
                client: None,
                len: 16
            })
        );
    }

    #[test]
    fn bad_headers_are_rejected_by_reason() {
        assert_eq!(read(b"hello"), Err(Rejected::Missing));
        assert_eq!(read(b""), Err(Rejected::Missing));
        assert_eq!(
            read(b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
            Err(Rejected::Missing),
            "v1 is no UDP header"
        );
        let good = header(
            Command::Proxy,
            Protocol::Datagram,
            "10.0.0.1:1",
            "10.0.0.2:2",
        );
        assert_eq!(read(&good[..20]), Err(Rejected::Truncated));
        assert_eq!(read(&good[..8]), Err(Rejected::Truncated));
        let stream = header(Command::Proxy, Protocol::Stream, "10.0.0.1:1", "10.0.0.2:2");
        assert_eq!(read(&stream), Err(Rejected::Stream));
        let mut version1 = good.clone();
        version1[12] = 0x11;
        assert_eq!(read(&version1), Err(Rejected::Malformed));
        let mut garbage = good.clone();
        garbage[13] = 0x72;
        assert_eq!(read(&garbage), Err(Rejected::Malformed));
    }
}
