//! Which addresses may become real servers. IPVS refuses (EINVAL, "address not unicast")
//! a destination whose address is a broadcast, multicast or "this network" address, or an
//! IPv6 address that is not unicast or is link-local, unless it is one of the host's own
//! (ip_vs_new_dest). `Table::apply` asks an [`AddressClassifier`] when a server is added.

use std::net::{IpAddr, Ipv4Addr};

/// Tells whether an address is acceptable as a real server's address.
pub trait AddressClassifier: Send + Sync {
    fn may_be_real_server(&self, addr: IpAddr) -> bool;

    /// A classifier for one batch of commands (a reload, a `-R`), which may read what
    /// it needs once for the whole batch rather than at each question; None: ask
    /// `self` each time.
    fn for_batch(&self) -> Option<Box<dyn AddressClassifier>> {
        None
    }
}

/// The rules that need no knowledge of the host: rejects what is never unicast.
pub fn never_unicast(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => {
            // inet_addr_type: 0.0.0.0/8 and 255.255.255.255 are broadcast, 224/4 multicast.
            a.octets()[0] == 0 || a == Ipv4Addr::BROADCAST || a.is_multicast()
        }
        IpAddr::V6(a) => {
            let is_link_local = a.segments()[0] & 0xffc0 == 0xfe80;
            let is_v4_mapped = a.to_ipv4_mapped().is_some();
            a.is_unspecified() || a.is_multicast() || is_link_local || is_v4_mapped
        }
    }
}

/// Classifies against this host's interfaces, read afresh at each question, since
/// addresses come and go (keepalived moving a VIP).
#[derive(Debug, Default, Clone, Copy)]
pub struct HostInterfaces;

impl HostInterfaces {
    /// The addresses of this host's interfaces, now (empty if they cannot be read).
    pub fn addresses() -> std::collections::HashSet<IpAddr> {
        if_addrs::get_if_addrs()
            .unwrap_or_default()
            .iter()
            .map(|i| i.ip())
            .collect()
    }
}

impl AddressClassifier for HostInterfaces {
    fn may_be_real_server(&self, addr: IpAddr) -> bool {
        classify(&if_addrs::get_if_addrs().unwrap_or_default(), addr)
    }

    /// The interfaces read once per batch: a reload of 10 000 services x 4 servers
    /// read them (a netlink dump) 40 000 times, most of its start-up.
    fn for_batch(&self) -> Option<Box<dyn AddressClassifier>> {
        Some(Box::new(InterfacesOnce::default()))
    }
}

/// [`HostInterfaces`] for one batch: the interfaces as read at its first question.
#[derive(Debug, Default)]
struct InterfacesOnce {
    interfaces: std::sync::OnceLock<Vec<if_addrs::Interface>>,
}

impl AddressClassifier for InterfacesOnce {
    fn may_be_real_server(&self, addr: IpAddr) -> bool {
        let interfaces = self
            .interfaces
            .get_or_init(|| if_addrs::get_if_addrs().unwrap_or_default());
        classify(interfaces, addr)
    }
}

/// Whether `addr` may be a real server on a host with `interfaces` (ip_vs_new_dest).
fn classify(interfaces: &[if_addrs::Interface], addr: IpAddr) -> bool {
    let is_local = interfaces.iter().any(|i| i.ip() == addr);
    if is_local {
        return true;
    }
    if never_unicast(addr) {
        return false;
    }
    match addr {
        IpAddr::V4(a) => !interfaces.iter().any(|i| match &i.addr {
            if_addrs::IfAddr::V4(v4) => ipv4_broadcasts(v4).contains(&a),
            if_addrs::IfAddr::V6(_) => false,
        }),
        IpAddr::V6(_) => true,
    }
}

/// The broadcast addresses the kernel routes for one interface address: the subnet's last
/// address when the prefix is shorter than /31 (fib_add_ifaddr), and any configured one.
fn ipv4_broadcasts(v4: &if_addrs::Ifv4Addr) -> Vec<Ipv4Addr> {
    let mut out = Vec::with_capacity(2);
    if v4.prefixlen < 31 {
        let mask = u32::from(v4.netmask);
        out.push(Ipv4Addr::from(u32::from(v4.ip) | !mask));
    }
    out.extend(v4.broadcast);
    out
}

/// Applies only the host-independent rules (for tests and offline tools).
#[derive(Debug, Default, Clone, Copy)]
pub struct UnicastOnly;

impl AddressClassifier for UnicastOnly {
    fn may_be_real_server(&self, addr: IpAddr) -> bool {
        !never_unicast(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        UnicastOnly.may_be_real_server(s.parse().unwrap())
    }

    #[test]
    fn host_independent_rules() {
        assert!(ok("192.168.1.16"));
        assert!(ok("255.255.255.253"));
        assert!(!ok("255.255.255.255"));
        assert!(!ok("0.0.0.0"));
        assert!(!ok("0.1.2.3"));
        assert!(!ok("224.0.0.1"));
        assert!(ok("2001:db8::10"));
        assert!(!ok("::"));
        assert!(!ok("ff02::1"));
        assert!(!ok("fe80::1"));
        assert!(!ok("::ffff:10.0.0.1"));
    }

    #[test]
    fn loopback_broadcast_is_refused_on_this_host() {
        // lo carries 127.0.0.1/8 on every Linux host, so 127.255.255.255 is a broadcast
        // route there (this is the reference capture's "address not unicast" case).
        assert!(!HostInterfaces.may_be_real_server("127.255.255.255".parse().unwrap()));
        assert!(HostInterfaces.may_be_real_server("127.0.0.1".parse().unwrap()));
        assert!(HostInterfaces.may_be_real_server("127.0.0.2".parse().unwrap()));
    }

    /// A batch's classifier, which reads the interfaces once, answers as the one that
    /// reads them at each question.
    #[test]
    fn a_batch_answers_as_each_question_would() {
        let batch = HostInterfaces.for_batch().expect("a classifier per batch");
        for a in [
            "127.255.255.255",
            "127.0.0.1",
            "127.0.0.2",
            "0.1.2.3",
            "::1",
            "fe80::1",
        ] {
            let addr = a.parse().unwrap();
            assert_eq!(
                batch.may_be_real_server(addr),
                HostInterfaces.may_be_real_server(addr),
                "{a}"
            );
        }
        assert!(UnicastOnly.for_batch().is_none());
    }
}
