//! Host and port names, looked up as glibc looks them up for ipvsadm: the hosts file,
//! then DNS (`gethostbyaddr`, `gethostbyname`), and the services file (`getservbyport`,
//! `getservbyname`). Listings without `-n` and `-t host:port` arguments use this.
//!
//! The files and nameservers can be redirected for tests and containers:
//! `UVS_HOSTS` (default /etc/hosts), `UVS_SERVICES` (/etc/services), `UVS_RESOLV_CONF`
//! (/etc/resolv.conf) and `UVS_NAMESERVERS` (comma-separated `ip` or `ip:port`, replacing
//! the nameservers of resolv.conf).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use super::dns::{Resolver, ResolverConfig};

/// The four lookups ipvsadm makes.
pub trait Names {
    /// `gethostbyaddr`: the host's name.
    fn host_name(&mut self, addr: IpAddr) -> Option<String>;
    /// `getservbyport`: the service's official name for a port and protocol ("tcp").
    fn service_name(&mut self, port: u16, protocol: &str) -> Option<String>;
    /// `gethostbyname`: the first IPv4 address of a host name.
    fn host_addr(&mut self, name: &str) -> Option<Ipv4Addr>;
    /// `getservbyname`: the port of a service name or alias.
    fn service_port(&mut self, name: &str, protocol: &str) -> Option<u16>;
}

/// Where the system's names come from.
#[derive(Debug, Clone)]
pub struct NameSources {
    pub hosts: PathBuf,
    pub services: PathBuf,
    pub resolv_conf: PathBuf,
    pub nameservers: Option<Vec<SocketAddr>>,
}

impl NameSources {
    pub fn from_env() -> NameSources {
        let path = |var: &str, default: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(default))
        };
        NameSources {
            hosts: path("UVS_HOSTS", "/etc/hosts"),
            services: path("UVS_SERVICES", "/etc/services"),
            resolv_conf: path("UVS_RESOLV_CONF", "/etc/resolv.conf"),
            nameservers: std::env::var("UVS_NAMESERVERS")
                .ok()
                .map(|v| parse_nameservers(&v)),
        }
    }
}

/// `ip`, `ip:port`, `[v6]:port`, comma-separated; unparsable entries are skipped.
pub fn parse_nameservers(list: &str) -> Vec<SocketAddr> {
    list.split(',')
        .map(str::trim)
        .filter_map(|item| {
            item.parse::<SocketAddr>().ok().or_else(|| {
                item.parse::<IpAddr>()
                    .ok()
                    .map(|ip| SocketAddr::new(ip, 53))
            })
        })
        .collect()
}

#[derive(Debug, Clone)]
struct HostLine {
    addr: IpAddr,
    names: Vec<String>,
}

#[derive(Debug, Clone)]
struct ServiceLine {
    name: String,
    aliases: Vec<String>,
    port: u16,
    protocol: String,
}

/// Lookups against this system's files and DNS, each file read once and every answer
/// cached for the life of the value (one uvsadm invocation).
pub struct SystemNames {
    sources: NameSources,
    hosts: Option<Vec<HostLine>>,
    services: Option<Vec<ServiceLine>>,
    resolver: Option<Resolver>,
    reverse_cache: HashMap<IpAddr, Option<String>>,
    forward_cache: HashMap<String, Option<Ipv4Addr>>,
}

impl SystemNames {
    pub fn new(sources: NameSources) -> SystemNames {
        SystemNames {
            sources,
            hosts: None,
            services: None,
            resolver: None,
            reverse_cache: HashMap::new(),
            forward_cache: HashMap::new(),
        }
    }

    fn hosts(&mut self) -> &[HostLine] {
        let path = &self.sources.hosts;
        self.hosts.get_or_insert_with(|| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            parse_hosts(&text)
        })
    }

    fn services(&mut self) -> &[ServiceLine] {
        let path = &self.sources.services;
        self.services.get_or_insert_with(|| {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            parse_services(&text)
        })
    }

    fn resolver(&mut self) -> &Resolver {
        let sources = &self.sources;
        self.resolver.get_or_insert_with(|| {
            let mut config = ResolverConfig::from_file(&sources.resolv_conf);
            if let Some(servers) = &sources.nameservers {
                config.nameservers = servers.clone();
            }
            Resolver::new(config)
        })
    }
}

impl Names for SystemNames {
    fn host_name(&mut self, addr: IpAddr) -> Option<String> {
        if let Some(hit) = self.reverse_cache.get(&addr) {
            return hit.clone();
        }
        let from_file = self
            .hosts()
            .iter()
            .find(|h| h.addr == addr)
            .and_then(|h| h.names.first().cloned());
        let name = from_file.or_else(|| self.resolver().reverse(addr));
        self.reverse_cache.insert(addr, name.clone());
        name
    }

    fn service_name(&mut self, port: u16, protocol: &str) -> Option<String> {
        self.services()
            .iter()
            .find(|s| s.port == port && s.protocol == protocol)
            .map(|s| s.name.clone())
    }

    fn host_addr(&mut self, name: &str) -> Option<Ipv4Addr> {
        if let Some(hit) = self.forward_cache.get(name) {
            return *hit;
        }
        let from_file = self.hosts().iter().find_map(|h| match h.addr {
            IpAddr::V4(a) if h.names.iter().any(|n| n.eq_ignore_ascii_case(name)) => Some(a),
            _ => None,
        });
        // glibc answers names made only of digits and dots (or IPv6-looking ones) itself
        // and does not ask DNS about them.
        let numeric_looking = name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            || name.contains(':')
            || name.is_empty();
        let addr = from_file.or_else(|| {
            if numeric_looking {
                None
            } else {
                self.resolver().forward(name)
            }
        });
        self.forward_cache.insert(name.to_string(), addr);
        addr
    }

    fn service_port(&mut self, name: &str, protocol: &str) -> Option<u16> {
        self.services()
            .iter()
            .find(|s| {
                s.protocol == protocol && (s.name == name || s.aliases.iter().any(|a| a == name))
            })
            .map(|s| s.port)
    }
}

fn without_comment(line: &str) -> &str {
    line.split('#').next().unwrap_or("")
}

fn parse_hosts(text: &str) -> Vec<HostLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = without_comment(line).split_whitespace();
            let addr = fields.next()?.parse().ok()?;
            let names: Vec<String> = fields.map(String::from).collect();
            (!names.is_empty()).then_some(HostLine { addr, names })
        })
        .collect()
}

fn parse_services(text: &str) -> Vec<ServiceLine> {
    text.lines()
        .filter_map(|line| {
            let mut fields = without_comment(line).split_whitespace();
            let name = fields.next()?.to_string();
            let (port, protocol) = fields.next()?.split_once('/')?;
            Some(ServiceLine {
                name,
                port: port.parse().ok()?,
                protocol: protocol.to_string(),
                aliases: fields.map(String::from).collect(),
            })
        })
        .collect()
}

/// Fixed answers, for tests and for listings that must not touch the system.
#[derive(Debug, Default, Clone)]
pub struct NoNames;

impl Names for NoNames {
    fn host_name(&mut self, _: IpAddr) -> Option<String> {
        None
    }
    fn service_name(&mut self, _: u16, _: &str) -> Option<String> {
        None
    }
    fn host_addr(&mut self, _: &str) -> Option<Ipv4Addr> {
        None
    }
    fn service_port(&mut self, _: &str, _: &str) -> Option<u16> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(hosts: &str, services: &str) -> (SystemNames, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), hosts).unwrap();
        std::fs::write(dir.path().join("services"), services).unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "").unwrap();
        let sources = NameSources {
            hosts: dir.path().join("hosts"),
            services: dir.path().join("services"),
            resolv_conf: dir.path().join("resolv.conf"),
            // Nothing listens on the discard port of loopback: every query fails fast.
            nameservers: Some(vec!["127.0.0.1:9".parse().unwrap()]),
        };
        (SystemNames::new(sources), dir)
    }

    #[test]
    fn hosts_and_services_files() {
        let (mut n, _dir) = names(
            "127.0.0.1 localhost\n# comment\n::1 localhost ip6-localhost\n10.0.0.5 web web.example # x\n",
            "http 80/tcp www # WorldWideWeb\nhttp 80/udp\nhttp-alt 8080/tcp webcache\ndomain 53/udp\n",
        );
        assert_eq!(
            n.host_name("127.0.0.1".parse().unwrap()).as_deref(),
            Some("localhost")
        );
        assert_eq!(
            n.host_name("::1".parse().unwrap()).as_deref(),
            Some("localhost")
        );
        assert_eq!(n.host_name("10.9.9.9".parse().unwrap()), None);
        assert_eq!(
            n.host_addr("WEB.example"),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(n.host_addr("300.1.1.1"), None);
        assert_eq!(n.service_name(80, "tcp").as_deref(), Some("http"));
        assert_eq!(n.service_name(8080, "tcp").as_deref(), Some("http-alt"));
        assert_eq!(n.service_name(53, "tcp"), None);
        assert_eq!(n.service_port("www", "tcp"), Some(80));
        assert_eq!(n.service_port("webcache", "tcp"), Some(8080));
        assert_eq!(n.service_port("domain", "tcp"), None);
    }

    #[test]
    fn nameserver_lists() {
        assert_eq!(
            parse_nameservers("127.0.0.1, [::1]:5353,bogus,10.0.0.1:54"),
            vec![
                "127.0.0.1:53".parse::<SocketAddr>().unwrap(),
                "[::1]:5353".parse().unwrap(),
                "10.0.0.1:54".parse().unwrap()
            ]
        );
    }
}
