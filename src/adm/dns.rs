//! A small stub resolver for uvsadm: PTR queries (addresses to names, for listings
//! without `-n`) and A queries (host names in `-t host:port`), over UDP to the
//! nameservers of resolv.conf, one short timeout per server. Messages are built and
//! parsed with `simple-dns`; this module only does the transport and the rules.

use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::time::Duration;

use simple_dns::rdata::RData;
use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE};

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: u32,
    pub timeout: Duration,
}

/// The longest uvsadm waits for one nameserver: listings must not hang on a dead DNS.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(1);
/// `options timeout:0` would mean "do not wait at all"; wait a little.
const MIN_TIMEOUT: Duration = Duration::from_millis(100);

impl ResolverConfig {
    /// Reads resolv.conf as glibc does (no nameserver line means 127.0.0.1); the
    /// per-server timeout is the file's, capped at [`MAX_TIMEOUT`].
    pub fn from_file(path: &Path) -> ResolverConfig {
        let parsed = std::fs::read(path)
            .ok()
            .and_then(|bytes| resolv_conf::Config::parse(bytes).ok());
        let mut config = ResolverConfig {
            nameservers: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53)],
            search: Vec::new(),
            ndots: 1,
            timeout: MAX_TIMEOUT,
        };
        if let Some(conf) = parsed {
            let servers: Vec<SocketAddr> = conf
                .nameservers
                .iter()
                .map(|ns| SocketAddr::new(IpAddr::from(ns.clone()), 53))
                .collect();
            if !servers.is_empty() {
                config.nameservers = servers;
            }
            config.search = conf.get_search().cloned().unwrap_or_default();
            config.ndots = conf.ndots;
            config.timeout =
                Duration::from_secs(u64::from(conf.timeout)).clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        }
        config
    }
}

/// What one question got.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    Found(String),
    /// The name does not exist or has no record of this type: asking elsewhere is moot.
    NotFound,
    /// No server gave a usable answer.
    Failed,
}

#[derive(Debug, Clone)]
pub struct Resolver {
    config: ResolverConfig,
}

impl Resolver {
    pub fn new(config: ResolverConfig) -> Resolver {
        Resolver { config }
    }

    /// The PTR name of an address, without the trailing dot.
    pub fn reverse(&self, addr: IpAddr) -> Option<String> {
        match self.ask(&reverse_name(addr), TYPE::PTR) {
            Answer::Found(name) => Some(name),
            Answer::NotFound | Answer::Failed => None,
        }
    }

    /// The first IPv4 address of a host name, trying the search list as glibc does.
    pub fn forward(&self, name: &str) -> Option<Ipv4Addr> {
        let candidates: Vec<String> = if let Some(absolute) = name.strip_suffix('.') {
            vec![absolute.to_string()]
        } else {
            let searched = self.config.search.iter().map(|d| format!("{name}.{d}"));
            let dots = name.matches('.').count() as u32;
            if dots >= self.config.ndots {
                std::iter::once(name.to_string()).chain(searched).collect()
            } else {
                searched.chain(std::iter::once(name.to_string())).collect()
            }
        };
        candidates.iter().find_map(|c| match self.ask(c, TYPE::A) {
            Answer::Found(a) => a.parse().ok(),
            Answer::NotFound | Answer::Failed => None,
        })
    }

    fn ask(&self, qname: &str, qtype: TYPE) -> Answer {
        let Ok(name) = Name::new(qname) else {
            return Answer::NotFound;
        };
        for server in &self.config.nameservers {
            match self.ask_one(*server, &name, qtype) {
                Ok(Answer::Failed) | Err(_) => continue,
                Ok(answer) => return answer,
            }
        }
        Answer::Failed
    }

    fn ask_one(&self, server: SocketAddr, name: &Name<'_>, qtype: TYPE) -> io::Result<Answer> {
        let id = random_id();
        let mut query = Packet::new_query(id);
        query.set_flags(PacketFlag::RECURSION_DESIRED);
        query.questions.push(Question::new(
            name.clone(),
            QTYPE::TYPE(qtype),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        let bytes = query
            .build_bytes_vec()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        socket.set_read_timeout(Some(self.config.timeout))?;
        socket.send(&bytes)?;
        let mut buf = [0u8; 1500];
        // A few stray datagrams (late answers to an earlier query) are skipped; the read
        // timeout bounds each wait.
        for _ in 0..4 {
            let n = socket.recv(&mut buf)?;
            let Ok(reply) = Packet::parse(&buf[..n]) else {
                continue;
            };
            if reply.id() != id || !reply.has_flags(PacketFlag::RESPONSE) {
                continue;
            }
            return Ok(read_answer(&reply, qtype));
        }
        Ok(Answer::Failed)
    }
}

fn read_answer(reply: &Packet<'_>, qtype: TYPE) -> Answer {
    match reply.rcode() {
        RCODE::NoError => {}
        RCODE::NameError => return Answer::NotFound,
        _ => return Answer::Failed,
    }
    let found = reply
        .answers
        .iter()
        .find_map(|rr| match (&rr.rdata, qtype) {
            (RData::PTR(ptr), TYPE::PTR) => Some(ptr.0.to_string()),
            (RData::A(a), TYPE::A) => Some(Ipv4Addr::from(a.address).to_string()),
            _ => None,
        });
    match found {
        Some(value) => Answer::Found(value),
        None => Answer::NotFound,
    }
}

/// `4.3.2.1.in-addr.arpa` / nibble-reversed `ip6.arpa`.
pub fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(a) => {
            let mut s = String::with_capacity(72);
            for byte in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", byte & 0xf, byte >> 4));
            }
            s.push_str("ip6.arpa");
            s
        }
    }
}

/// A query ID nobody on the path can guess, from the standard library's random keys.
fn random_id() -> u16 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish() as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("172.20.0.24".parse().unwrap()),
            "24.0.20.172.in-addr.arpa"
        );
        assert_eq!(
            reverse_name("2001:db8::1".parse().unwrap()),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
        );
    }
}
