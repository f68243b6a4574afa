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
//! getifaddrs(3), at most once a second for all the checks. Binding a socket to the address would be cheaper, but it succeeds for
//! any address with `net.ipv4.ip_nonlocal_bind` (or `net.ipv6.ip_nonlocal_bind`) set,
//! which HA pairs often set so that services can bind VIPs they do not hold yet, and for
//! every address of 127.0.0.0/8.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Findings, Target};
use crate::config::{Config, ServiceSpec};
use crate::lock::Locked;
use crate::table::ServiceKey;

/// The addresses whose absence suspends `spec`'s checks, when it has `ha_suspend`:
/// its virtual address, or every address of its group (`config::group`: the group's
/// checks are its first member's; keepalived's `addr_matches` looks through the
/// group's entries); none otherwise, and none if a member is a fwmark (the schema
/// refuses that, as keepalived clears it).
pub fn vips_of(config: &Config, spec: &ServiceSpec) -> Vec<IpAddr> {
    if spec.health.ha_suspend != Some(true) {
        return Vec::new();
    }
    let members: Vec<&ServiceKey> = match &spec.group {
        Some(g) => config
            .services
            .iter()
            .filter(|s| s.group.as_ref().is_some_and(|o| o.name == g.name))
            .map(|s| &s.service.key)
            .collect(),
        None => vec![&spec.service.key],
    };
    let mut vips = Vec::new();
    for key in members {
        match key {
            ServiceKey::Inet { addr, .. } if !vips.contains(addr) => vips.push(*addr),
            ServiceKey::Inet { .. } => {}
            ServiceKey::Fwmark { .. } => return Vec::new(),
        }
    }
    vips
}

/// How long the host's addresses, once read, answer for every check: keepalived hears
/// of a change at once (netlink); reading them for each probe of each checked server
/// cost a core with 5 000 addresses and 800 checks a second.
const ADDRESSES_FOR: Duration = Duration::from_secs(1);

/// The addresses configured on this host's interfaces, read at most once a second.
///
/// # Errors
/// The interfaces' addresses could not be read (getifaddrs failed).
fn host_addresses() -> std::io::Result<Arc<HashSet<IpAddr>>> {
    static LAST: Mutex<Option<(Instant, Arc<HashSet<IpAddr>>)>> = Mutex::new(None);
    let mut last = LAST.locked();
    if let Some((when, addresses)) = &*last
        && when.elapsed() < ADDRESSES_FOR
    {
        return Ok(Arc::clone(addresses));
    }
    let addresses: Arc<HashSet<IpAddr>> = Arc::new(
        if_addrs::get_if_addrs()?
            .iter()
            .map(if_addrs::Interface::ip)
            .collect(),
    );
    *last = Some((Instant::now(), Arc::clone(&addresses)));
    Ok(addresses)
}

/// Whether `target`'s next probe is to be skipped, because none of its service's
/// `vips` (from [`vips_of`]; empty: no `ha_suspend`) is an address of this host; keeps
/// the reason in its findings for `uvs status` and logs each change once. Addresses
/// that cannot be read suspend nothing: the checks go on.
pub fn holds(target: Target, vips: &[IpAddr], findings: &Findings) -> bool {
    let Some(&vip) = vips.first() else {
        // ha_suspend taken away by a reload: no longer suspended.
        if findings.get(&target).is_some_and(|h| h.suspended.is_some()) {
            findings.update(target, |h| h.suspended = None);
        }
        return false;
    };
    // Read once, however many addresses a group has.
    let here = host_addresses().map(|host| vips.iter().any(|v| host.contains(v)));
    let (absent, present) = match vips.len() {
        1 => (
            format!("{vip} is not an address of this host"),
            format!("{vip} is an address of this host"),
        ),
        n => (
            format!("none of the group's {n} addresses is an address of this host"),
            format!("one of the group's {n} addresses is an address of this host"),
        ),
    };
    let why = match here {
        Ok(true) => None,
        Ok(false) => Some(format!("{absent} (ha_suspend)")),
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
        let (what, because) = if suspended {
            ("suspended", absent)
        } else {
            ("resumed", present)
        };
        tracing::warn!(
            service = %target.service,
            server = %target.server,
            "checks {what}: {because} (ha_suspend)"
        );
    }
    suspended
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `addr` is configured on one of this host's interfaces (as read at most a
    /// second ago).
    ///
    /// # Errors
    /// The interfaces' addresses could not be read (getifaddrs failed).
    fn is_local(addr: IpAddr) -> std::io::Result<bool> {
        Ok(host_addresses()?.contains(&addr))
    }
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
        let (far, near) = ("127.0.0.77".parse().unwrap(), "127.0.0.1".parse().unwrap());
        assert!(holds(away, &[far], &findings));
        let h = findings.get(&away).unwrap();
        assert_eq!(
            h.suspended.as_deref(),
            Some("127.0.0.77 is not an address of this host (ha_suspend)")
        );
        assert!(h.up, "its state is kept");
        assert_eq!(findings.statuses()[0].suspended, h.suspended);
        let here = target("127.0.0.1");
        assert!(!holds(here, &[near], &findings));
        assert_eq!(findings.get(&here).unwrap().suspended, None);
        assert!(holds(here, &[far, far], &findings));
        assert_eq!(
            findings.get(&here).unwrap().suspended.as_deref(),
            Some("none of the group's 2 addresses is an address of this host (ha_suspend)")
        );
        assert!(
            !holds(here, &[far, near], &findings),
            "one of a group's is enough"
        );
        assert!(!holds(away, &[], &findings), "without ha_suspend");
        assert_eq!(findings.get(&away).unwrap().suspended, None);
    }

    #[test]
    fn a_groups_checks_look_for_every_address_of_the_group() {
        let config = crate::config::schema::parse(
            "[[service]]\ngroup = \"g\"\ntcp = [\"127.0.0.77:80\", \"127.0.0.78:81\"]\nha_suspend = true\n[[service.server]]\naddress = \"127.0.0.2\"\n[[service]]\ntcp = \"127.0.0.1:82\"\n[[service.server]]\naddress = \"127.0.0.2\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        let vips: Vec<Vec<IpAddr>> = config
            .services
            .iter()
            .map(|s| vips_of(&config, s))
            .collect();
        let g: Vec<IpAddr> = vec!["127.0.0.77".parse().unwrap(), "127.0.0.78".parse().unwrap()];
        assert_eq!(vips, [g.clone(), g, vec![]]);
    }
}
