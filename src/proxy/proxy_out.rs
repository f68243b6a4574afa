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
