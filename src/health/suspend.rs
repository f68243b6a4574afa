//! keepalived's `ha_suspend`: a service's checks are suspended while its virtual
//! address is not an address of this host (keepalived's check/check_api.c
//! `update_checker_activity`, driven by the netlink reflector's address events, and
//! `register_checkers_thread`, which starts them suspended when the address is absent;
//! check_tcp.c and the other checkers then skip their probe and only reschedule). A
//! suspended server runs no probe and keeps its state; `uvs status` says why, and each
//! change is logged once. Not for fwmark services, which have no address (check_data.c
//! `validate_check_config` clears it). Asked by the check tasks (`checker`) before
//! each probe.
//!
//! "An address of this host" is an address configured on one of its interfaces, exactly
//! (keepalived's `addr_matches` on the addresses netlink reports), read with
//! getifaddrs(3). Binding a socket to the address would be cheaper, but it succeeds for
//! any address with `net.ipv4.ip_nonlocal_bind` (or `net.ipv6.ip_nonlocal_bind`) set,
//! which HA pairs often set so that services can bind VIPs they do not hold yet, and for
//! every address of 127.0.0.0/8.

use std::net::IpAddr;

use super::{Findings, Target};
use crate::config::ServiceSpec;
use crate::table::ServiceKey;

/// The address whose absence suspends `spec`'s checks: its virtual address, when it
/// has `ha_suspend`; None otherwise (and for fwmark services).
pub fn vip_of(spec: &ServiceSpec) -> Option<IpAddr> {
    match spec.service.key {
        ServiceKey::Inet { addr, .. } if spec.health.ha_suspend == Some(true) => Some(addr),
        _ => None,
    }
}

/// Whether `addr` is configured on one of this host's interfaces.
///
/// # Errors
/// The interfaces' addresses could not be read (getifaddrs failed).
pub fn is_local(addr: IpAddr) -> std::io::Result<bool> {
    Ok(if_addrs::get_if_addrs()?
        .iter()
        .any(|interface| interface.ip() == addr))
}

/// Whether `target`'s next probe is to be skipped, because its service's `vip` (from
/// [`vip_of`]) is not an address of this host; keeps the reason in its findings for
/// `uvs status` and logs each change once. Addresses that cannot be read suspend
/// nothing: the checks go on.
pub fn holds(target: Target, vip: Option<IpAddr>, findings: &Findings) -> bool {
    let Some(vip) = vip else {
        // ha_suspend taken away by a reload: no longer suspended.
        if findings.get(&target).is_some_and(|h| h.suspended.is_some()) {
            findings.update(target, |h| h.suspended = None);
        }
        return false;
    };
    let why = match is_local(vip) {
        Ok(true) => None,
        Ok(false) => Some(format!("{vip} is not an address of this host (ha_suspend)")),
        Err(e) => {
            tracing::debug!(%vip, "ha_suspend: cannot read this host's addresses: {e}");
            None
        }
    };
    let suspended = why.is_some();
    let changed = findings.update(target, |h| {
        let changed = h.suspended.is_some() != suspended;
        h.suspended = why;
        changed
    });
    if changed {
        let what = if suspended { "suspended" } else { "resumed" };
        tracing::warn!(
            service = %target.service,
            server = %target.server,
            "checks {what}: {vip} is {}an address of this host (ha_suspend)",
            if suspended { "not " } else { "" }
        );
    }
    suspended
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Protocol, ServerKey};

    fn target(vip: &str) -> Target {
        Target {
            service: ServiceKey::Inet {
                protocol: Protocol::Tcp,
                addr: vip.parse().unwrap(),
                port: 80,
            },
            server: ServerKey {
                addr: "127.0.0.2".parse().unwrap(),
                port: 80,
            },
        }
    }

    #[test]
    fn an_address_is_local_when_an_interface_has_it_exactly() {
        assert!(is_local("127.0.0.1".parse().unwrap()).unwrap());
        assert!(is_local("::1".parse().unwrap()).unwrap());
        // In 127.0.0.0/8, so a socket could bind it, but no interface has it.
        assert!(!is_local("127.0.0.77".parse().unwrap()).unwrap());
    }

    #[test]
    fn a_vip_that_is_not_here_suspends_the_checks_and_says_why() {
        let findings = Findings::default();
        let away = target("127.0.0.77");
        assert!(holds(away, Some("127.0.0.77".parse().unwrap()), &findings));
        let h = findings.get(&away).unwrap();
        assert_eq!(
            h.suspended.as_deref(),
            Some("127.0.0.77 is not an address of this host (ha_suspend)")
        );
        assert!(h.up, "its state is kept");
        assert_eq!(findings.statuses()[0].suspended, h.suspended);
        let here = target("127.0.0.1");
        assert!(!holds(here, Some("127.0.0.1".parse().unwrap()), &findings));
        assert_eq!(findings.get(&here).unwrap().suspended, None);
        assert!(!holds(away, None, &findings), "without ha_suspend");
        assert_eq!(findings.get(&away).unwrap().suspended, None);
    }
}
