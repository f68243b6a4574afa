//! Real servers that are the director itself. A userspace balancer connects to its real
//! servers like any client, so a real server that is one of the table's own listen
//! addresses (`-a -t V -r V`, a port-less server on the VIP's own address, two services
//! that point at each other, a wildcard VIP with a server on one of the host's addresses
//! and the same port) would bring every connection back to the daemon, which would
//! connect to itself again until no descriptor is left. Kernel IPVS never loops like
//! this, and uvsadm still accepts such a server as ipvsadm does; the data plane asks
//! [`OwnAddresses::contains`] before it connects and refuses the connection instead, and
//! the listener manager, `uvs check` and every reload name such servers with [`loops`].

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::Table;
use super::key::{Protocol, ServerKey, ServiceKey};
use super::listener::ListenAddr;

/// The addresses a table listens on, for telling whether a destination is one of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OwnAddresses {
    /// Listen addresses bound to one address.
    exact: HashSet<(Protocol, SocketAddr)>,
    /// Wildcard listen addresses (0.0.0.0 or ::): protocol, IPv6, port.
    wildcard: HashSet<(Protocol, bool, u16)>,
    /// The host's own addresses, which a wildcard listener answers on; read only when
    /// there is a wildcard listener.
    local: HashSet<IpAddr>,
}

/// An IPv4-mapped IPv6 address reaches the IPv4 listener.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

impl OwnAddresses {
    /// The listen addresses of `table`; `local` gives the host's addresses, asked only
    /// when a wildcard address is listened on.
    pub fn of(table: &Table, local: impl FnOnce() -> HashSet<IpAddr>) -> OwnAddresses {
        OwnAddresses::from_listeners(table.listen_addresses().into_iter().map(|(l, _)| l), local)
    }

    /// The given listen addresses; see [`OwnAddresses::of`].
    pub fn from_listeners(
        listeners: impl IntoIterator<Item = ListenAddr>,
        local: impl FnOnce() -> HashSet<IpAddr>,
    ) -> OwnAddresses {
        let mut own = OwnAddresses::default();
        for l in listeners {
            if l.addr.is_unspecified() {
                own.wildcard.insert((l.protocol, l.addr.is_ipv6(), l.port));
            } else {
                own.exact
                    .insert((l.protocol, canonical(SocketAddr::new(l.addr, l.port))));
            }
        }
        if !own.wildcard.is_empty() {
            own.local = local();
        }
        own
    }

    /// Whether a `protocol` connection to `dest` would reach one of these addresses.
    pub fn contains(&self, protocol: Protocol, dest: SocketAddr) -> bool {
        let dest = canonical(dest);
        if self.exact.contains(&(protocol, dest)) {
            return true;
        }
        if self.wildcard.is_empty()
            || !self
                .wildcard
                .contains(&(protocol, dest.is_ipv6(), dest.port()))
        {
            return false;
        }
        let ip = dest.ip();
        ip.is_loopback() || ip.is_unspecified() || self.local.contains(&ip)
    }

    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcard.is_empty()
    }
}

/// A real server whose connections would come back to the director.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Loop {
    pub service: ServiceKey,
    pub server: ServerKey,
    /// The listen address the connections arrive on, and the address they would go to.
    pub via: ListenAddr,
    pub dest: SocketAddr,
}

impl fmt::Display for Loop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "real server {} of {}: connections arriving on {} would go to {}, a listen \
             address of this director itself, and loop back into it; they are refused",
            self.server, self.service, self.via, self.dest
        )
    }
}

/// Every real server of `table` that is one of `own`'s addresses, for each listen
/// address that leads to its service (a port-less server is reached on the port the
/// client used, so it loops on some ports of a group and not on others).
pub fn loops(table: &Table, own: &OwnAddresses) -> Vec<Loop> {
    let mut found = Vec::new();
    if own.is_empty() {
        return found;
    }
    for (via, service) in table.listen_addresses() {
        for server in &service.servers {
            let dest = server.destination(via.port);
            if own.contains(via.protocol, dest) {
                found.push(Loop {
                    service: service.key,
                    server: server.key(),
                    via,
                    dest,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Command, ListenRule, ServerConfig, ServiceConfig, UnicastOnly};

    fn service(key: ServiceKey) -> Command {
        Command::AddService(ServiceConfig::new(key, "rr"))
    }

    fn tcp(addr: &str) -> ServiceKey {
        let a: SocketAddr = addr.parse().unwrap();
        ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: a.ip(),
            port: a.port(),
        }
    }

    fn server(service: ServiceKey, addr: &str) -> Command {
        Command::AddServer {
            service,
            server: ServerConfig::masq(addr.parse().unwrap(), 1),
        }
    }

    fn table(commands: &[Command]) -> Table {
        let mut t = Table::new();
        for c in commands {
            t.apply(c, &UnicastOnly).unwrap().carry_out();
        }
        t
    }

    fn found(t: &Table, local: &[&str]) -> Vec<String> {
        let local: HashSet<IpAddr> = local.iter().map(|a| a.parse().unwrap()).collect();
        let own = OwnAddresses::of(t, || local);
        loops(t, &own)
            .iter()
            .map(|l| format!("{} -> {}", l.via, l.dest))
            .collect()
    }

    #[test]
    fn a_server_that_is_the_vip_itself_loops() {
        let v = tcp("127.0.0.1:8080");
        let t = table(&[
            service(v),
            server(v, "127.0.0.1:8080"),
            server(v, "127.0.0.2:8080"),
        ]);
        assert_eq!(found(&t, &[]), ["-t 127.0.0.1:8080 -> 127.0.0.1:8080"]);
    }

    #[test]
    fn a_portless_server_on_the_vips_address_loops() {
        let v = tcp("127.0.0.1:8080");
        let t = table(&[service(v), server(v, "127.0.0.1:0")]);
        assert_eq!(found(&t, &[]), ["-t 127.0.0.1:8080 -> 127.0.0.1:8080"]);
    }

    #[test]
    fn two_services_pointing_at_each_other_both_loop() {
        let (a, b) = (tcp("127.0.0.1:8080"), tcp("127.0.0.1:8081"));
        let t = table(&[
            service(a),
            service(b),
            server(a, "127.0.0.1:8081"),
            server(b, "127.0.0.1:8080"),
        ]);
        let mut got = found(&t, &[]);
        got.sort();
        assert_eq!(
            got,
            [
                "-t 127.0.0.1:8080 -> 127.0.0.1:8081",
                "-t 127.0.0.1:8081 -> 127.0.0.1:8080"
            ]
        );
    }

    #[test]
    fn a_wildcard_vip_loops_to_any_host_address_on_its_port() {
        let v = tcp("0.0.0.0:8080");
        let t = table(&[
            service(v),
            server(v, "192.0.2.7:8080"),
            server(v, "192.0.2.7:9090"),
            server(v, "198.51.100.1:8080"),
            server(v, "127.0.0.9:8080"),
        ]);
        let mut got = found(&t, &["192.0.2.7"]);
        got.sort();
        assert_eq!(
            got,
            [
                "-t 0.0.0.0:8080 -> 127.0.0.9:8080",
                "-t 0.0.0.0:8080 -> 192.0.2.7:8080"
            ]
        );
    }

    #[test]
    fn a_group_loops_only_on_the_ports_that_reach_itself_and_udp_is_apart() {
        let mark = ServiceKey::Fwmark {
            mark: 7,
            family: crate::table::Family::Inet,
        };
        let listen = |protocol, port| {
            Command::AddListener(ListenRule {
                listen: ListenAddr {
                    protocol,
                    addr: "127.0.0.1".parse().unwrap(),
                    port,
                },
                mark: Some(7),
            })
        };
        let t = table(&[
            service(mark),
            server(mark, "127.0.0.1:0"),
            listen(Protocol::Tcp, 8443),
            listen(Protocol::Udp, 8443),
        ]);
        let mut got = found(&t, &[]);
        got.sort();
        assert_eq!(
            got,
            [
                "-t 127.0.0.1:8443 -> 127.0.0.1:8443",
                "-u 127.0.0.1:8443 -> 127.0.0.1:8443"
            ]
        );
        // A TCP server on a port only UDP listens on is no loop.
        let own = OwnAddresses::of(&t, HashSet::new);
        assert!(!own.contains(Protocol::Tcp, "127.0.0.1:9999".parse().unwrap()));
        assert!(own.contains(Protocol::Tcp, "[::ffff:127.0.0.1]:8443".parse().unwrap()));
    }
}
