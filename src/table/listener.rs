//! Listen rules: extra addresses a service is reached on. In LVS an iptables MARK rule
//! sends packets for several addresses and ports to an fwmark service; a port-0 service
//! catches every port of its VIP. A userspace balancer must listen on concrete
//! addresses, so the table holds these rules: `--add-listener -t VIP:PORT --mark N`
//! (the group of mark N) or without `--mark` (the VIP's port-0 service).
//!
//! `--add-listener` is uvs's own command, so it can be strict where ipvsadm's commands
//! cannot: a rule must lead to a service that exists ([`check`]: add the service
//! first), must name one address (not 0.0.0.0 or ::), and must not take the address of
//! another virtual service. A rule lives no longer than its service: deleting the
//! service deletes its rules ([`ListenRule::leads_to`]), so that every rule in the table
//! (and in `-S`) leads somewhere and `-R` takes it back.
//!
//! `-A` is ipvsadm's command and is never refused for a rule's sake: a service added at
//! an address a rule listens on (or at 0.0.0.0/:: on its port) wins it, and the rule is
//! kept but *shadowed* ([`ListenRule::shadowed_by`]): not listened on, never routed to,
//! until that service is deleted. Called by `Table::apply`, `Table::route`, and by `-S`
//! (which writes shadowing services after the rules, so that `-R` takes both back).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::error::TableError;
use super::key::{Family, Protocol, ServerKey, ServiceKey};

/// An address and port on one transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenAddr {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.switch(),
            ServerKey {
                addr: self.addr,
                port: self.port
            }
        )
    }
}

/// Where connections to a listen address go: the fwmark group `mark`, or (None) the
/// port-0 service of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenRule {
    pub listen: ListenAddr,
    pub mark: Option<u32>,
}

impl fmt::Display for ListenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.listen)?;
        if let Some(mark) = self.mark {
            write!(f, " --mark {mark}")?;
        }
        Ok(())
    }
}

impl ListenRule {
    /// The rule that sends connections to `listen` to fwmark group `mark`, or (None) to
    /// the address's port-0 service.
    pub fn new(listen: ListenAddr, mark: Option<u32>) -> ListenRule {
        ListenRule { listen, mark }
    }

    /// The service connections to this address go to: the fwmark service of the mark
    /// in the address's family, or the address's port-0 service.
    pub fn service(&self) -> ServiceKey {
        match self.mark {
            Some(mark) => ServiceKey::Fwmark {
                mark,
                family: Family::of(&self.listen.addr),
            },
            None => ServiceKey::Inet {
                protocol: self.listen.protocol,
                addr: self.listen.addr,
                port: 0,
            },
        }
    }

    /// Whether this rule leads to `service` (and goes when it is deleted).
    pub fn leads_to(&self, service: &ServiceKey) -> bool {
        self.service() == *service
    }

    /// Whether `service` holds this rule's address as its own: it is a TCP or UDP
    /// service at this very address and port, or at the unspecified address of its
    /// family on this port (a socket on 0.0.0.0:P takes P on every IPv4 address; IPv6
    /// sockets are IPv6-only). The service wins the address, the rule is shadowed.
    pub fn shadowed_by(&self, service: &ServiceKey) -> bool {
        owners(&self.listen).any(|k| k == *service)
    }
}

/// The keys of the services whose own address covers `listen`: the service at that
/// address, and (for a concrete address) the service at the unspecified address of the
/// same family, protocol and port. No allocation: `Table::route` asks per connection.
pub fn owners(listen: &ListenAddr) -> impl Iterator<Item = ServiceKey> {
    let at = |addr| ServiceKey::Inet {
        protocol: listen.protocol,
        addr,
        port: listen.port,
    };
    let wildcard =
        (!listen.addr.is_unspecified()).then(|| at(unspecified(Family::of(&listen.addr))));
    std::iter::once(at(listen.addr)).chain(wildcard)
}

/// The IPv4 address of an IPv4-mapped IPv6 address (`::ffff:127.0.0.1` → 127.0.0.1,
/// RFC 4291 2.5.5.2); None for any other address. IPVS takes such an address as the
/// IPv6 address it is (ip_vs_ctl.c reads an AF_INET6 service's address as it is
/// given), but uvs's IPv6 sockets are IPV6_V6ONLY, and bind(2) refuses a v4-mapped
/// address on them (EINVAL): in userspace mode it can never be listened on.
pub fn v4_mapped(addr: &IpAddr) -> Option<std::net::Ipv4Addr> {
    match addr {
        IpAddr::V6(a) => a.to_ipv4_mapped(),
        IpAddr::V4(_) => None,
    }
}

fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        Family::Inet6 => IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
    }
}

/// uvs's checks of a new rule, beyond its shape: its address must be one address (a
/// socket on 0.0.0.0 or :: would take the port from every address of the host, the
/// VIPs that `-A` adds later included, and the kernel, not the table, would then pick
/// which socket gets a connection), must not be a virtual service's own, exactly or
/// under a service at 0.0.0.0/:: (the rule would be shadowed from its start), and the
/// service it leads to must exist (`exists`). An IPv4-mapped IPv6 address
/// ([`v4_mapped`]) can never be listened on: `::ffff:0.0.0.0` is refused as unspecified,
/// any other as v4-mapped.
/// Errors: [`TableError::ListenerUnspecified`], [`TableError::ListenerV4Mapped`],
/// [`TableError::ListenerOnService`], [`TableError::NoListenerService`].
pub fn check(rule: &ListenRule, exists: impl Fn(&ServiceKey) -> bool) -> Result<(), TableError> {
    let mapped = v4_mapped(&rule.listen.addr);
    if rule.listen.addr.is_unspecified() || mapped.is_some_and(|v4| v4.is_unspecified()) {
        return Err(TableError::ListenerUnspecified {
            listen: rule.listen,
        });
    }
    if let Some(v4) = mapped {
        return Err(TableError::ListenerV4Mapped {
            listen: rule.listen,
            v4,
        });
    }
    if let Some(own) = owners(&rule.listen).find(|k| exists(k)) {
        return Err(TableError::ListenerOnService {
            listen: rule.listen,
            service: own,
        });
    }
    let service = rule.service();
    if !exists(&service) {
        return Err(TableError::NoListenerService { service });
    }
    Ok(())
}

/// [`check`] for a rule a configuration reload adds: a virtual service that holds its
/// address (one uvsadm added, which the file does not name) is no error, since a
/// service's own address wins over a rule in either order. Returns that service: the
/// rule is kept, shadowed, as when the service comes second. Errors: as [`check`], but
/// never [`TableError::ListenerOnService`].
pub fn check_shadowable(
    rule: &ListenRule,
    exists: impl Fn(&ServiceKey) -> bool,
) -> Result<Option<ServiceKey>, TableError> {
    match check(rule, &exists) {
        Err(TableError::ListenerOnService { service, .. }) => {
            let leads_to = rule.service();
            if !exists(&leads_to) {
                return Err(TableError::NoListenerService { service: leads_to });
            }
            Ok(Some(service))
        }
        other => other.map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str, mark: Option<u32>) -> ListenRule {
        let addr: std::net::SocketAddr = text.parse().unwrap();
        ListenRule::new(
            ListenAddr {
                protocol: Protocol::Tcp,
                addr: addr.ip(),
                port: addr.port(),
            },
            mark,
        )
    }

    #[test]
    fn a_rule_needs_its_service_and_an_address_of_its_own() {
        let fwmark = |mark, family| ServiceKey::Fwmark { mark, family };
        let vip: ServiceKey = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "127.0.0.1".parse().unwrap(),
            port: 80,
        };
        let table = [fwmark(7, Family::Inet), vip];
        let exists = |k: &ServiceKey| table.contains(k);
        assert_eq!(check(&rule("127.0.0.1:443", Some(7)), exists), Ok(()));
        let missing = check(&rule("127.0.0.1:443", Some(99)), exists).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "fwmark 99 is not a virtual service: add it first (uvsadm -A -f 99), then its listeners"
        );
        // Mark 7 exists for IPv4 only.
        assert_eq!(
            check(&rule("[::1]:443", Some(7)), exists)
                .unwrap_err()
                .to_string(),
            "fwmark 7 IPv6 is not a virtual service: add it first (uvsadm -A -f 7 -6), then its listeners"
        );
        assert_eq!(
            check(&rule("127.0.0.1:443", None), exists)
                .unwrap_err()
                .to_string(),
            "tcp 127.0.0.1:0 is not a virtual service: add it first (uvsadm -A -t 127.0.0.1:0 -p), then its listeners"
        );
        assert_eq!(
            check(&rule("127.0.0.1:80", Some(7)), exists)
                .unwrap_err()
                .to_string(),
            "-t 127.0.0.1:80 is served by virtual service tcp 127.0.0.1:80: the service keeps its \
             address and a listener there would never be used (delete the service first, or \
             listen elsewhere)"
        );
        assert!(rule("127.0.0.1:443", Some(7)).leads_to(&fwmark(7, Family::Inet)));
        assert!(!rule("[::1]:443", Some(7)).leads_to(&fwmark(7, Family::Inet)));
    }

    #[test]
    fn an_unspecified_address_is_refused_and_a_wildcard_service_owns_its_port() {
        let tcp = |text: &str| {
            let a: std::net::SocketAddr = text.parse().unwrap();
            ServiceKey::Inet {
                protocol: Protocol::Tcp,
                addr: a.ip(),
                port: a.port(),
            }
        };
        let fwmark = |family| ServiceKey::Fwmark { mark: 7, family };
        let table = [
            fwmark(Family::Inet),
            fwmark(Family::Inet6),
            tcp("0.0.0.0:9000"),
        ];
        let exists = |k: &ServiceKey| table.contains(k);
        for wildcard in ["0.0.0.0:9001", "[::]:9001"] {
            let refused = check(&rule(wildcard, Some(7)), exists).unwrap_err();
            assert!(
                matches!(refused, TableError::ListenerUnspecified { .. }),
                "{refused}"
            );
        }
        // ::ffff:0.0.0.0 is 0.0.0.0 written in IPv6 (review 6).
        let refused = check(&rule("[::ffff:0.0.0.0]:7001", Some(7)), exists).unwrap_err();
        assert!(
            matches!(refused, TableError::ListenerUnspecified { .. }),
            "{refused}"
        );
        assert_eq!(
            check(&rule("[::ffff:127.0.0.1]:9400", Some(7)), exists)
                .unwrap_err()
                .to_string(),
            "-t [::ffff:127.0.0.1]:9400: an IPv4-mapped IPv6 address cannot be listened on \
             (uvs's IPv6 sockets are IPv6-only): write the IPv4 address, 127.0.0.1"
        );
        assert_eq!(
            check(&rule("0.0.0.0:9001", Some(7)), exists)
                .unwrap_err()
                .to_string(),
            "-t 0.0.0.0:9001: a listener needs one address, not every address of the host \
             (it would hold port 9001 on the VIPs added later too): add a listener for each \
             address"
        );
        // Under a service at 0.0.0.0 on its port, an IPv4 address is that service's.
        assert_eq!(
            check(&rule("127.0.0.71:9000", Some(7)), exists),
            Err(TableError::ListenerOnService {
                listen: rule("127.0.0.71:9000", None).listen,
                service: tcp("0.0.0.0:9000"),
            })
        );
        // Not another port's, nor IPv6's (uvs's IPv6 sockets are IPv6-only).
        assert_eq!(check(&rule("127.0.0.71:9001", Some(7)), exists), Ok(()));
        assert_eq!(check(&rule("[::1]:9000", Some(7)), exists), Ok(()));
        let r = rule("127.0.0.71:9000", Some(7));
        assert!(r.shadowed_by(&tcp("127.0.0.71:9000")));
        assert!(r.shadowed_by(&tcp("0.0.0.0:9000")));
        assert!(!r.shadowed_by(&tcp("127.0.0.72:9000")));
        assert!(!r.shadowed_by(&tcp("[::]:9000")));
        assert!(!r.shadowed_by(&fwmark(Family::Inet)));
    }
}
