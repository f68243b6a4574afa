//! PROXY protocol headers uvs sends to real servers (`proxy_protocol`): version 1
//! (text) or 2 (binary), before the client's first byte on a TCP connection. Built with
//! the `ppp` crate. Called by the TCP path (`tcp::connection`).

use std::net::SocketAddr;

use crate::table::ProxyProtocol;

/// The header that tells a real server that `client` connected to `local`.
pub fn header(version: ProxyProtocol, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    match version {
        ProxyProtocol::V1 => ppp::v1::Addresses::from((client, local))
            .to_string()
            .into_bytes(),
        ProxyProtocol::V2 => ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, local),
        )
        .build()
        .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_headers() {
        let c: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        let l: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(
            header(ProxyProtocol::V1, c, l),
            b"PROXY TCP4 127.0.0.2 127.0.0.1 40000 8080\r\n"
        );
        let v2 = header(ProxyProtocol::V2, c, l);
        assert_eq!(&v2[..12], b"\r\n\r\n\x00\r\nQUIT\n");
        assert_eq!(v2[12], 0x21, "version 2, PROXY");
        assert_eq!(v2[13], 0x11, "TCP over IPv4");
        assert_eq!(v2.len(), 16 + 12);
    }
}

/// The PROXY v2 header in front of every datagram a UDP flow sends to its real server
/// (`proxy_protocol = "v2"` on a UDP service, `proxy::udp::flow`): command PROXY,
/// transport DGRAM over IPv4 (byte 13 is 0x12) or IPv6 (0x22), source `client`,
/// destination `local` (the VIP and port the client sent to), no TLVs: 28 bytes over
/// IPv4, 52 over IPv6. Addresses of two families are both written as IPv6 (the IPv4
/// one as `::ffff:a.b.c.d`), since a header holds one family. Built once per flow.
pub fn datagram_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    let (client, local) = if client.is_ipv4() == local.is_ipv4() {
        (client, local)
    } else {
        (v6(client), v6(local))
    };
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Datagram,
        (client, local),
    )
    .build()
    .unwrap_or_default()
}

#[cfg(test)]
mod datagram_tests {
    use super::*;

    #[test]
    fn datagram_headers_byte_by_byte() {
        let c: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        let l: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let mut v4 = b"\r\n\r\n\x00\r\nQUIT\n".to_vec();
        v4.extend([0x21, 0x12, 0, 12]);
        v4.extend([127, 0, 0, 2, 127, 0, 0, 1]);
        v4.extend(40000u16.to_be_bytes());
        v4.extend(5353u16.to_be_bytes());
        assert_eq!(datagram_header(c, l), v4);
        let c6: SocketAddr = "[::1]:40000".parse().unwrap();
        let l6: SocketAddr = "[::1]:5353".parse().unwrap();
        let h = datagram_header(c6, l6);
        assert_eq!((h[12], h[13], h.len()), (0x21, 0x22, 16 + 36));
        // Two families: both as IPv6.
        let mixed = datagram_header(c, l6);
        assert_eq!(mixed[13], 0x22);
        assert_eq!(
            &mixed[16..32],
            &"::ffff:127.0.0.2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()
        );
    }
}
