//! PROXY protocol headers uvs sends to real servers (`proxy_protocol`): version 1
//! (text) or 2 (binary), before the client's first byte on a TCP connection. Built with
//! the `ppp` crate. Called by the TCP path (`tcp::connection`).
//!
//! Behind a balancer that sent uvs a header (`accept_proxy`, `proxy_in`), the header
//! sent on names the original client and the address it connected to, and a v2 header
//! carries the TLVs received, unchanged (but PP2_TYPE_CRC32C, whose checksum would no
//! longer match the header, and those of a type uvs adds itself, which uvs's replace).
//! uvs's own TLVs (`proxy_protocol_tlvs`, v2 only): PP2_TYPE_UNIQUE_ID (0x05), 16 bytes
//! that no other connection of the process gets, and [`SERVICE_NAME_TYPE`], the
//! service's name.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::table::{ProxyProtocol, ProxyTlvs, ServiceKey};

/// PP2_TYPE_UNIQUE_ID.
pub const UNIQUE_ID_TYPE: u8 = 0x05;
/// PP2_TYPE_CRC32C: a checksum of the header it came in, never passed on.
const CRC32C_TYPE: u8 = 0x03;
/// The TLV of the service's name, in the spec's range for applications (0xE0-0xEF):
/// 0xE5, clear of the types the clouds' balancers send (GCP 0xE0, AWS 0xEA, Azure
/// 0xEE). Its value: the service as uvs names it (`ServiceKey`'s Display), in ASCII,
/// e.g. `tcp 127.0.0.1:80`, `tcp [::1]:443`, `fwmark 7`.
pub const SERVICE_NAME_TYPE: u8 = 0xE5;
/// The longest a v2 header's addresses and TLVs may be (its 16-bit length).
const V2_MAX_PAYLOAD: usize = u16::MAX as usize;

/// The header that tells a real server that `client` connected to `local`.
pub fn header(version: ProxyProtocol, client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    Sent {
        client,
        destination: local,
        passed: &[],
        own: ProxyTlvs::default(),
        service: None,
    }
    .bytes(version)
}

/// What a header sent to a real server says.
#[derive(Debug, Clone, Copy)]
pub struct Sent<'a> {
    /// The client (the original one, behind a balancer that sent a header).
    pub client: SocketAddr,
    /// The address it connected to (the balancer's, behind one; else the VIP).
    pub destination: SocketAddr,
    /// TLVs received (`proxy_in::Received::tlvs`), well formed; passed on in v2.
    pub passed: &'a [u8],
    /// uvs's own TLVs (v2).
    pub own: ProxyTlvs,
    /// The service, for [`SERVICE_NAME_TYPE`].
    pub service: Option<&'a ServiceKey>,
}

impl Sent<'_> {
    /// The header in `version`. v1 carries no TLVs.
    pub fn bytes(&self, version: ProxyProtocol) -> Vec<u8> {
        match version {
            ProxyProtocol::V1 => {
                ppp::v1::Addresses::from(one_family(self.client, self.destination))
                    .to_string()
                    .into_bytes()
            }
            ProxyProtocol::V2 => self.v2(),
        }
    }

    fn v2(&self) -> Vec<u8> {
        let addresses = ppp::v2::Addresses::from(one_family(self.client, self.destination));
        let mut tlvs = Vec::new();
        let (id, service_name);
        if self.own.contains(ProxyTlvs::UNIQUE_ID) {
            id = unique_id();
            tlvs.push((UNIQUE_ID_TYPE, &id[..]));
        }
        if self.own.contains(ProxyTlvs::SERVICE_NAME)
            && let Some(key) = self.service
        {
            service_name = key.to_string();
            tlvs.push((SERVICE_NAME_TYPE, service_name.as_bytes()));
        }
        let ours = |kind: u8| tlvs.iter().any(|(k, _)| *k == kind);
        let mut room =
            V2_MAX_PAYLOAD - addresses.len() - tlvs.iter().map(|(_, v)| 3 + v.len()).sum::<usize>();
        let mut passed = Vec::new();
        for tlv in ppp::v2::TypeLengthValues::from(self.passed).flatten() {
            if tlv.kind == CRC32C_TYPE || ours(tlv.kind) {
                continue;
            }
            let len = 3 + tlv.value.len();
            if len > room {
                tracing::debug!(
                    client = %self.client,
                    kind = tlv.kind,
                    len,
                    "a TLV received does not fit in the PROXY v2 header sent on; dropped"
                );
                continue;
            }
            room -= len;
            passed.push(tlv);
        }
        let own = tlvs
            .iter()
            .map(|(kind, value)| ppp::v2::TypeLengthValue::new(*kind, value));
        let built = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            addresses,
        )
        .write_payloads(passed.into_iter().chain(own))
        .and_then(ppp::v2::Builder::build);
        // Cannot fail: the payload was kept within the 16-bit length above.
        built.unwrap_or_default()
    }
}

/// A PP2_TYPE_UNIQUE_ID value: 16 bytes, binary, the process's random 8 bytes (drawn
/// once, from the standard library's OS-seeded hash keys) then a count of the ids
/// given, big-endian: unique within the process, and across processes but by chance
/// (one in 2^64).
pub fn unique_id() -> [u8; 16] {
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let prefix = *PREFIX.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&prefix.to_be_bytes());
    id[8..].copy_from_slice(&COUNT.fetch_add(1, Relaxed).to_be_bytes());
    id
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

    fn tlvs_of(header: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let h = ppp::v2::Header::try_from(header).unwrap();
        h.tlvs()
            .map(|t| {
                let t = t.unwrap();
                (t.kind, t.value.to_vec())
            })
            .collect()
    }

    #[test]
    fn received_tlvs_go_on_and_uvs_s_own_replace_theirs() {
        let key: ServiceKey = ServiceKey::Inet {
            protocol: crate::table::Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let passed = b"\x01\x00\x02h2\x03\x00\x04abcd\x05\x00\x01z\xE5\x00\x01y";
        let sent = Sent {
            client: "127.0.0.2:40000".parse().unwrap(),
            destination: "127.0.0.9:443".parse().unwrap(),
            passed,
            own: ProxyTlvs::default().with(ProxyTlvs::SERVICE_NAME),
            service: Some(&key),
        };
        let bytes = sent.bytes(ProxyProtocol::V2);
        assert_eq!(
            tlvs_of(&bytes),
            vec![
                (0x01, b"h2".to_vec()),
                (0x05, b"z".to_vec()),
                (0xE5, b"tcp 127.0.0.1:80".to_vec())
            ],
            "ALPN and the unique id passed on, the CRC dropped, the name replaced"
        );
        let h = ppp::v2::Header::try_from(&bytes[..]).unwrap();
        assert_eq!(
            h.addresses,
            ppp::v2::Addresses::from((sent.client, sent.destination))
        );
        let with_id = Sent {
            own: sent.own.with(ProxyTlvs::UNIQUE_ID),
            ..sent
        };
        let (a, b) = (
            tlvs_of(&with_id.bytes(ProxyProtocol::V2)),
            tlvs_of(&with_id.bytes(ProxyProtocol::V2)),
        );
        let id = |t: &[(u8, Vec<u8>)]| t.iter().find(|(k, _)| *k == 5).unwrap().1.clone();
        assert_eq!(id(&a).len(), 16);
        assert_ne!(id(&a), id(&b), "never the same id twice");
        assert_eq!(a.iter().filter(|(k, _)| *k == 5).count(), 1, "replaced");
        assert_eq!(
            sent.bytes(ProxyProtocol::V1),
            b"PROXY TCP4 127.0.0.2 127.0.0.9 40000 443\r\n",
            "v1: no TLVs"
        );
    }

    #[test]
    fn what_does_not_fit_is_dropped() {
        let big = vec![7u8; 40_000];
        let mut passed = Vec::new();
        for _ in 0..2 {
            passed.push(0xE1);
            passed.extend_from_slice(&(big.len() as u16).to_be_bytes());
            passed.extend_from_slice(&big);
        }
        let sent = Sent {
            client: "127.0.0.2:1".parse().unwrap(),
            destination: "127.0.0.1:2".parse().unwrap(),
            passed: &passed,
            own: ProxyTlvs::default().with(ProxyTlvs::UNIQUE_ID),
            service: None,
        };
        let bytes = sent.bytes(ProxyProtocol::V2);
        let t = tlvs_of(&bytes);
        assert_eq!(t.len(), 2, "one big TLV and the id");
        assert!(bytes.len() <= 16 + 65535);
    }
}

/// The PROXY v2 header in front of every datagram a UDP flow sends to its real server
/// (`proxy_protocol = "v2"` on a UDP service, `proxy::udp::flow`): command PROXY,
/// transport DGRAM over IPv4 (byte 13 is 0x12) or IPv6 (0x22), source `client`,
/// destination `local` (the VIP and port the client sent to), no TLVs: 28 bytes over
/// IPv4, 52 over IPv6. Addresses of two families are both written as IPv6 (the IPv4
/// one as `::ffff:a.b.c.d`), since a header holds one family. Built once per flow.
pub fn datagram_header(client: SocketAddr, local: SocketAddr) -> Vec<u8> {
    let (client, local) = one_family(client, local);
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

/// `a` and `b` in one family, as a header holds them: both as they are when they are
/// of one, else both IPv6 (the IPv4 one as `::ffff:a.b.c.d`). Two families meet when a
/// PROXY header names an IPv4 client (or one IPv4-mapped, which uvs takes as IPv4) of
/// an IPv6 address; ppp would write such a pair as UNKNOWN, losing the client.
fn one_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    let v6 = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port()),
        v6 => v6,
    };
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (v6(a), v6(b))
    }
}

#[cfg(test)]
mod family_tests {
    use super::*;

    /// An IPv4 client of an IPv6 address (a mapped client taken as IPv4) goes on as
    /// IPv6, the client mapped: never as UNKNOWN.
    #[test]
    fn two_families_are_written_as_ipv6() {
        let sent = Sent {
            client: "127.0.0.2:40000".parse().unwrap(),
            destination: "[::1]:80".parse().unwrap(),
            passed: &[],
            own: ProxyTlvs::default(),
            service: None,
        };
        assert_eq!(
            sent.bytes(ProxyProtocol::V1),
            b"PROXY TCP6 ::ffff:127.0.0.2 ::1 40000 80\r\n"
        );
        let v2 = sent.bytes(ProxyProtocol::V2);
        assert_eq!(v2[13], 0x21, "TCP over IPv6");
        assert_eq!(v2.len(), 16 + 36);
    }
}
