//! ldirectord's `service = dns` negotiate check: a query for an A record of `request`
//! ("." without one), over UDP, or over TCP for TCP services; the server is up when it
//! answers with at least one record and, given `receive`, one of them (an address in
//! dotted form, another record as its debug text) matches it.
//!
//! keepalived's DNS_CHECK (keepalived/check/check_dns.c) adds `query_type` (its `type`:
//! A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY, `DNS_TYPE`) and takes any answer
//! with the query's id, the response bit and rcode 0 as up, records or not
//! (`dns_recv_thread`): `require_answer = false`; and it always asks over UDP, whatever
//! the service's protocol (`dns_connect_thread`): `transport = "udp"`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::io::{Bind, io_failure};
use super::receive::Receive;
use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::{Check, DnsType};
use crate::table::Protocol;

/// The name and type asked for, and what an answer must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dns {
    name: String,
    receive: Option<Receive>,
    query_type: DnsType,
    /// An answer without records is down (ldirectord) or up (keepalived).
    require_answer: bool,
    /// The transport asked over; None: the service's.
    transport: Option<Protocol>,
    bind: Bind,
}

impl Dns {
    /// # Errors
    /// A `receive` that is not a regular expression; a name that cannot be asked for
    /// ([`crate::config::dns_name_fault`]).
    pub fn build(settings: &Check) -> Result<Dns, BuildError> {
        let name = settings.request.clone().unwrap_or_else(|| ".".into());
        if let Some(fault) = crate::config::dns_name_fault(&name) {
            return Err(BuildError::DnsName(fault));
        }
        Ok(Dns {
            name,
            receive: Receive::of(settings)?,
            query_type: settings.query_type.unwrap_or(DnsType::A),
            require_answer: settings.require_answer.unwrap_or(true),
            transport: settings.transport,
            bind: Bind::of(settings),
        })
    }
}

impl Probe for Dns {
    async fn run(&self, at: &Endpoint) -> Outcome {
        use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE};
        // A new id for each query, as keepalived's `random()`: now that a bare header
        // answers, a fixed one would let a forger off the path keep a dead server up.
        let id = {
            use std::hash::{BuildHasher, Hasher};
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish() as u16
        };
        let mut query = Packet::new_query(id);
        query.set_flags(PacketFlag::RECURSION_DESIRED);
        let qname = Name::new(self.name.trim_end_matches('.'))
            .map_err(|e| Failure::Garbled(e.to_string()))?;
        query.questions.push(Question::new(
            qname,
            QTYPE::TYPE(TYPE::from(self.query_type.code())),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let bytes = query
            .build_bytes_vec()
            .map_err(|e| Failure::Garbled(e.to_string()))?;
        let answer = if self.transport.unwrap_or(at.protocol) == Protocol::Tcp {
            let mut stream = self.bind.connect(at.dest).await?;
            let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&bytes);
            stream.write_all(&framed).await.map_err(io_failure)?;
            let len = stream.read_u16().await.map_err(io_failure)?;
            let mut body = vec![0u8; usize::from(len)];
            stream.read_exact(&mut body).await.map_err(io_failure)?;
            body
        } else {
            udp_answer(&self.bind, at, &bytes, id).await?
        };
        // What keepalived looks at (`dns_recv_thread`): the header's id, answer bit and
        // rcode; the records only where they are asked for.
        let what = match self.query_type {
            DnsType::A => "DNS".to_string(),
            other => format!("DNS {}", other.name()),
        };
        let header = Header::of(&answer).ok_or_else(|| {
            Failure::Garbled(format!("{what}: an answer of {} bytes", answer.len()))
        })?;
        if header.id != id {
            return Err(Failure::Garbled("DNS answer to another query".into()));
        }
        if !header.response {
            return Err(Failure::Garbled(format!("{what}: a query, not an answer")));
        }
        if !self.require_answer && self.receive.is_none() {
            return match header.rcode {
                0 => Ok(None),
                rcode => Err(Failure::Garbled(format!(
                    "{what}: {:?}, {} answers",
                    RCODE::from(u16::from(rcode)),
                    header.answers
                ))),
            };
        }
        let reply = Packet::parse(&answer).map_err(|e| Failure::Garbled(format!("DNS: {e}")))?;
        if reply.rcode() != RCODE::NoError || (self.require_answer && reply.answers.is_empty()) {
            return Err(Failure::Garbled(format!(
                "{what}: {:?}, {} answers",
                reply.rcode(),
                reply.answers.len()
            )));
        }
        let Some(re) = &self.receive else {
            return Ok(None);
        };
        let found = reply.answers.iter().any(|rr| {
            let text = match &rr.rdata {
                simple_dns::rdata::RData::A(a) => std::net::Ipv4Addr::from(a.address).to_string(),
                simple_dns::rdata::RData::AAAA(a) => {
                    std::net::Ipv6Addr::from(a.address).to_string()
                }
                other => format!("{other:?}"),
            };
            re.is_match(text.as_bytes())
        });
        if found {
            Ok(None)
        } else {
            Err(Failure::NoMatch)
        }
    }
}

/// A DNS message's header, as far as a check reads it.
struct Header {
    id: u16,
    response: bool,
    rcode: u8,
    answers: u16,
}

impl Header {
    /// None for a message shorter than a header (12 bytes).
    fn of(message: &[u8]) -> Option<Header> {
        let head = message.get(..12)?;
        Some(Header {
            id: u16::from_be_bytes([head[0], head[1]]),
            response: head[2] & 0x80 != 0,
            rcode: head[3] & 0x0f,
            answers: u16::from_be_bytes([head[6], head[7]]),
        })
    }
}

/// Sends `query` over UDP to `at` and waits for its answer: datagrams too short to be
/// one, answers to another query and queries are passed over, as keepalived's
/// `dns_recv_thread` passes them over, until the probe's timeout.
async fn udp_answer(bind: &Bind, at: &Endpoint, query: &[u8], id: u16) -> Result<Vec<u8>, Failure> {
    let socket = tokio::net::UdpSocket::bind(bind.address(at.dest))
        .await
        .map_err(io_failure)?;
    socket.connect(at.dest).await.map_err(io_failure)?;
    socket.send(query).await.map_err(io_failure)?;
    let mut buf = vec![0u8; 65536];
    loop {
        let n = socket.recv(&mut buf).await.map_err(io_failure)?;
        if Header::of(&buf[..n]).is_some_and(|h| h.id == id && h.response) {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::net::UdpSocket;

    use super::super::testing::{build_and_probe, built_from_everything, negotiate};
    use super::*;
    use crate::config::NegotiateService;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            built_from_everything(NegotiateService::Dns, Dns::build),
            Dns {
                name: "health".into(),
                receive: Some(Receive::new("^ok").unwrap()),
                query_type: DnsType::Aaaa,
                require_answer: false,
                transport: Some(Protocol::Udp),
                bind: super::super::testing::everything_bind(),
            }
        );
    }

    #[tokio::test]
    async fn a_header_is_all_keepalived_reads_and_foreign_answers_are_passed_over() {
        // Answers to the first query: a 5-byte scrap, an answer to another id, then
        // the bare 12-byte header with NOERROR and garbage after it. To the second:
        // the header with SERVFAIL.
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for rcode in [0u8, 2] {
                let Ok((_, from)) = server.recv_from(&mut buf).await else {
                    return;
                };
                let (id0, id1) = (buf[0], buf[1]);
                let _ = server.send_to(b"scrap", from).await;
                let other = [id0 ^ 0xff, id1, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0];
                let _ = server.send_to(&other, from).await;
                let mut header = vec![id0, id1, 0x81, 0x80 | rcode, 0, 1, 0, 9, 0, 0, 0, 0];
                header.extend_from_slice(b"\xff\xfe not records");
                let _ = server.send_to(&header, from).await;
            }
        });
        let check = Check {
            require_answer: Some(false),
            ..negotiate(NegotiateService::Dns)
        };
        assert_eq!(build_and_probe(addr, Protocol::Udp, &check).await, Ok(None));
        assert_eq!(
            build_and_probe(addr, Protocol::Udp, &check).await,
            Err(Failure::Garbled("DNS: ServerFailure, 9 answers".into()))
        );
    }

    #[test]
    fn a_name_that_cannot_be_asked_for_is_not_built() {
        for (name, fault) in [
            ("a..b", "the name \"a..b\" has an empty label"),
            (".a", "the name \".a\" has an empty label"),
        ] {
            let check = Check {
                request: Some(name.into()),
                ..negotiate(NegotiateService::Dns)
            };
            assert!(
                matches!(Dns::build(&check), Err(BuildError::DnsName(f)) if f == fault),
                "{name}"
            );
        }
        let long = format!("{}.example", "a".repeat(70));
        assert_eq!(
            crate::config::dns_name_fault(&long),
            Some(format!(
                "the name {long:?} has a label of 70 bytes, past DNS's 63"
            ))
        );
        for good in [".", "example.test", "example.test.", "_sip._udp.example"] {
            assert_eq!(crate::config::dns_name_fault(good), None, "{good}");
        }
    }

    #[tokio::test]
    async fn dns_wants_an_answer_over_udp() {
        use simple_dns::rdata::{A, RData};
        use simple_dns::{CLASS, Packet, ResourceRecord};
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for answer_it in [true, false] {
                let Ok((n, from)) = server.recv_from(&mut buf).await else {
                    return;
                };
                let query = Packet::parse(&buf[..n]).unwrap();
                let mut reply = query.into_reply();
                if answer_it {
                    reply.answers.push(ResourceRecord::new(
                        reply.questions[0].qname.clone(),
                        CLASS::IN,
                        60,
                        RData::A(A {
                            address: u32::from(Ipv4Addr::new(192, 0, 2, 7)),
                        }),
                    ));
                }
                let bytes = reply.build_bytes_vec().unwrap();
                let _ = server.send_to(&bytes, from).await;
            }
        });
        let check = Check {
            request: Some("www.example.com".into()),
            receive: Some("^192\\.0\\.2\\.7$".into()),
            ..negotiate(NegotiateService::Dns)
        };
        assert_eq!(build_and_probe(addr, Protocol::Udp, &check).await, Ok(None));
        assert!(
            matches!(
                build_and_probe(addr, Protocol::Udp, &check).await,
                Err(Failure::Garbled(e)) if e.contains("0 answers")
            ),
            "no answer is down"
        );
    }

    /// A DNS server on UDP that answers its first `replies` queries, each with an AAAA
    /// record of 2001:db8::7 when the question is for AAAA, and none otherwise; it
    /// sends back the type it was asked for.
    async fn aaaa_server(
        replies: usize,
    ) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<u16>) {
        use simple_dns::rdata::{AAAA, RData};
        use simple_dns::{CLASS, Packet, QTYPE, ResourceRecord, TYPE};
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let (asked, types) = tokio::sync::mpsc::channel(replies.max(1));
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for _ in 0..replies {
                let Ok((n, from)) = server.recv_from(&mut buf).await else {
                    return;
                };
                let query = Packet::parse(&buf[..n]).unwrap();
                let qtype = match query.questions[0].qtype {
                    QTYPE::TYPE(t) => u16::from(t),
                    _ => 0,
                };
                let _ = asked.send(qtype).await;
                let mut reply = query.into_reply();
                if qtype == u16::from(TYPE::AAAA) {
                    reply.answers.push(ResourceRecord::new(
                        reply.questions[0].qname.clone(),
                        CLASS::IN,
                        60,
                        RData::AAAA(AAAA {
                            address: u128::from(std::net::Ipv6Addr::new(
                                0x2001, 0xdb8, 0, 0, 0, 0, 0, 7,
                            )),
                        }),
                    ));
                }
                let bytes = reply.build_bytes_vec().unwrap();
                let _ = server.send_to(&bytes, from).await;
            }
        });
        (addr, types)
    }

    #[tokio::test]
    async fn a_query_type_is_asked_for_and_its_records_matched() {
        let (addr, mut asked) = aaaa_server(2).await;
        let check = Check {
            request: Some("www.example.com".into()),
            query_type: Some(DnsType::Aaaa),
            receive: Some("^2001:db8::7$".into()),
            ..negotiate(NegotiateService::Dns)
        };
        assert_eq!(build_and_probe(addr, Protocol::Udp, &check).await, Ok(None));
        assert_eq!(asked.recv().await, Some(28), "AAAA is type 28");
        let mx = Check {
            query_type: Some(DnsType::Mx),
            ..check
        };
        assert_eq!(
            build_and_probe(addr, Protocol::Udp, &mx).await,
            Err(Failure::Garbled("DNS MX: NoError, 0 answers".into())),
            "ldirectord's: no record is down"
        );
        assert_eq!(asked.recv().await, Some(15), "MX is type 15");
    }

    #[tokio::test]
    async fn without_require_answer_any_noerror_answer_is_up_as_keepalived_takes_it() {
        let (addr, _asked) = aaaa_server(1).await;
        let check = Check {
            query_type: Some(DnsType::Txt),
            require_answer: Some(false),
            ..negotiate(NegotiateService::Dns)
        };
        assert_eq!(build_and_probe(addr, Protocol::Udp, &check).await, Ok(None));
    }

    /// keepalived's DNS_CHECK of a TCP service still asks over UDP: nothing listens on
    /// TCP there, so the service's own transport would be refused.
    #[tokio::test]
    async fn a_transport_is_used_whatever_the_services_protocol() {
        let (addr, mut asked) = aaaa_server(1).await;
        let check = Check {
            query_type: Some(DnsType::Aaaa),
            ..negotiate(NegotiateService::Dns)
        };
        assert!(
            build_and_probe(addr, Protocol::Tcp, &check).await.is_err(),
            "without it, over TCP"
        );
        let udp = Check {
            transport: Some(Protocol::Udp),
            ..check
        };
        assert_eq!(build_and_probe(addr, Protocol::Tcp, &udp).await, Ok(None));
        assert_eq!(asked.recv().await, Some(28));
    }

    #[tokio::test]
    async fn an_error_rcode_is_down_with_or_without_require_answer() {
        use simple_dns::{Packet, RCODE};
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            let Ok((n, from)) = server.recv_from(&mut buf).await else {
                return;
            };
            let mut reply = Packet::parse(&buf[..n]).unwrap().into_reply();
            *reply.rcode_mut() = RCODE::ServerFailure;
            let _ = server
                .send_to(&reply.build_bytes_vec().unwrap(), from)
                .await;
        });
        let check = Check {
            query_type: Some(DnsType::Soa),
            require_answer: Some(false),
            ..negotiate(NegotiateService::Dns)
        };
        assert_eq!(
            build_and_probe(addr, Protocol::Udp, &check).await,
            Err(Failure::Garbled("DNS SOA: ServerFailure, 0 answers".into()))
        );
    }
}
