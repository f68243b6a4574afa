//! Listen rules: extra addresses a service is reached on. In LVS an iptables MARK rule
//! sends packets for several addresses and ports to an fwmark service; a port-0 service
//! catches every port of its VIP. A userspace balancer must listen on concrete
//! addresses, so the table holds these rules: `--add-listener -t VIP:PORT --mark N`
//! (the group of mark N) or without `--mark` (the VIP's port-0 service).
//!
//! `--add-listener` is uvs's own command, so it can be strict where ipvsadm's commands
//! cannot: a rule must lead to a service that exists ([`check`]: add the service
//! first), and must not take the address of another virtual service. A rule lives no
//! longer than its service: deleting the service deletes its rules ([`leads_to`]), so
//! that every rule in the table (and in `-S`) leads somewhere and `-R` takes it back.
//! Called by `Table::apply`.

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
}

/// uvs's checks of a new rule, beyond its shape: the service it leads to must exist
/// (`exists`), and its address must not be a virtual service's own (an fwmark rule
/// there would take that service's connections, a port-0 rule would never be used).
/// Errors: [`TableError::NoListenerService`], [`TableError::ListenerOnService`].
pub fn check(rule: &ListenRule, exists: impl Fn(&ServiceKey) -> bool) -> Result<(), TableError> {
    let own = ServiceKey::Inet {
        protocol: rule.listen.protocol,
        addr: rule.listen.addr,
        port: rule.listen.port,
    };
    if exists(&own) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str, mark: Option<u32>) -> ListenRule {
        let addr: std::net::SocketAddr = text.parse().unwrap();
        ListenRule {
            listen: ListenAddr {
                protocol: Protocol::Tcp,
                addr: addr.ip(),
                port: addr.port(),
            },
            mark,
        }
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
            "tcp 127.0.0.1:0 is not a virtual service: add it first (uvsadm -A -t 127.0.0.1:0), then its listeners"
        );
        assert_eq!(
            check(&rule("127.0.0.1:80", Some(7)), exists)
                .unwrap_err()
                .to_string(),
            "-t 127.0.0.1:80 is the address of virtual service tcp 127.0.0.1:80: a listener there \
             would take its connections (delete the service first, or listen elsewhere)"
        );
        assert!(rule("127.0.0.1:443", Some(7)).leads_to(&fwmark(7, Family::Inet)));
        assert!(!rule("[::1]:443", Some(7)).leads_to(&fwmark(7, Family::Inet)));
    }
}
