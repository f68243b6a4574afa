//! Kernel mode's listings (`-L`, `-S`, `-L -t`): what ipvsadm lists, the kernel's whole
//! table, including services uvs did not create. uvs's own services (those the mirror
//! created, `Mirror::owns`) are listed as the table has them (their counters and
//! connection counts are the kernel's, copied by the mirror), the others as the
//! kernel's dumps give them, in the kernel's dump order (so `--nosort` prints
//! ipvsadm's order too). A service of the table's at the key of someone else's (one
//! that was in the kernel before uvs, which the mirror leaves alone) is listed as the
//! kernel has it: that is what runs. uvs's services the kernel does not hold yet (a
//! change the mirror has still to send, or one the kernel refused) come after.
//! Reloads and uvsadm's commands still change only uvs's services
//! (`kernel::others`).

use std::collections::{HashMap, HashSet};

use super::ipvs::{KernelServer, KernelService};
use crate::stats::StatsView;
use crate::table::entry::AdmissionCounts;
use crate::table::{
    EjectionCounts, FailureCounts, QueueCounts, ServerEntry, ServiceEntry, ServiceKey,
};

/// A service of the kernel's, with its servers in the kernel's order, as a listing sees
/// it; what only uvs counts is zero.
pub fn entry(service: &KernelService, servers: &[KernelServer]) -> ServiceEntry {
    let c = &service.config;
    ServiceEntry {
        key: c.key,
        scheduler: c.scheduler.clone(),
        flags: c.flags,
        timeout: c.timeout,
        netmask: c.netmask,
        pe: c.pe.clone(),
        options: c.options.clone(),
        stats: StatsView {
            counters: service.stats,
            rates: service.rates,
        },
        retries: 0,
        unavailable: 0,
        flows_dropped: 0,
        source_port_exhausted: 0,
        source_address_unavailable: 0,
        queue: QueueCounts::default(),
        admission: AdmissionCounts::default(),
        access_rules: Vec::new(),
        drained_out: Vec::new(),
        servers: servers
            .iter()
            .map(|s| ServerEntry {
                addr: s.config.addr,
                port: s.config.port,
                forward: s.config.forward,
                weight: u32::try_from(s.config.weight).unwrap_or(0),
                u_threshold: s.config.u_threshold,
                l_threshold: s.config.l_threshold,
                active_conns: s.active,
                inactive_conns: s.inactive,
                persistent_conns: s.persistent,
                tunnel: s.config.tunnel,
                stats: StatsView {
                    counters: s.stats,
                    rates: s.rates,
                },
                connect_failures: FailureCounts::default(),
                draining: None,
                open_conns: 0,
                max_connections: 0,
                ejection: EjectionCounts::default(),
                slow_start: None,
            })
            .collect(),
    }
}

/// The listing: the kernel's services in its dump order, each of uvs's (in `table`,
/// the table's entries, and in `owned`, the keys uvs created in the kernel) as the
/// table has it and any other made by `other` (which reads its servers from the
/// kernel); then the table's services the kernel lacks, in the table's order.
pub fn merge<E>(
    kernel: &[KernelService],
    table: Vec<ServiceEntry>,
    owned: &HashSet<ServiceKey>,
    mut other: impl FnMut(&KernelService) -> Result<ServiceEntry, E>,
) -> Result<Vec<ServiceEntry>, E> {
    let order: Vec<ServiceKey> = table.iter().map(|e| e.key).collect();
    let mut ours: HashMap<ServiceKey, ServiceEntry> =
        table.into_iter().map(|e| (e.key, e)).collect();
    let mut out = Vec::with_capacity(kernel.len() + ours.len());
    for k in kernel {
        // The table's entry at someone else's key is not what runs: not listed.
        match ours.remove(&k.config.key) {
            Some(e) if owned.contains(&e.key) => out.push(e),
            _ => out.push(other(k)?),
        }
    }
    out.extend(order.iter().filter_map(|key| ours.remove(key)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Counters, Rates};
    use crate::table::{Forward, Netmask, Protocol, ServerConfig, ServiceConfig, ServiceFlags};

    fn kernel_service(port: u16) -> KernelService {
        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "127.0.0.99".parse().unwrap(),
            port,
        };
        KernelService {
            config: ServiceConfig {
                key,
                scheduler: "rr".into(),
                flags: ServiceFlags::default(),
                timeout: 0,
                netmask: Netmask::full(key.family()),
                pe: None,
                options: Default::default(),
            },
            stats: Counters {
                conns: 3,
                ..Counters::default()
            },
            rates: Rates::default(),
        }
    }

    #[test]
    fn the_kernels_order_with_uvss_entries_and_the_others_from_the_kernel() {
        let server = KernelServer {
            config: ServerConfig::new("127.0.0.1".parse().unwrap(), 8080, Forward::Masq),
            active: 2,
            inactive: 1,
            persistent: 0,
            stats: Counters::default(),
            rates: Rates::default(),
        };
        let (a, b, c) = (kernel_service(1), kernel_service(2), kernel_service(3));
        let theirs = entry(&b, std::slice::from_ref(&server));
        assert_eq!(theirs.stats.counters.conns, 3);
        assert_eq!(
            (theirs.servers[0].active_conns, theirs.servers[0].weight),
            (2, 1)
        );
        // uvs's: a (in the kernel) and c (not yet); b is someone else's.
        let mut ours_a = entry(&a, &[]);
        ours_a.retries = 7;
        let ours_c = entry(&c, &[]);
        let owned: HashSet<ServiceKey> = [a.config.key].into();
        let listed = merge::<()>(
            &[b.clone(), a.clone()],
            vec![ours_c.clone(), ours_a.clone()],
            &owned,
            |k| Ok(entry(k, std::slice::from_ref(&server))),
        )
        .unwrap();
        assert_eq!(listed, [theirs.clone(), ours_a.clone(), ours_c.clone()]);
    }

    #[test]
    fn a_service_of_the_tables_at_someone_elses_key_is_listed_as_the_kernel_has_it() {
        let server = KernelServer {
            config: ServerConfig::new("127.0.0.1".parse().unwrap(), 8080, Forward::Masq),
            active: 0,
            inactive: 0,
            persistent: 0,
            stats: Counters::default(),
            rates: Rates::default(),
        };
        let (a, b) = (kernel_service(1), kernel_service(2));
        // The table (the file) has b with wlc and another server; the kernel's b was
        // made by ipvsadm before uvs, and the mirror did not take it over.
        let mut files_b = entry(&b, &[]);
        files_b.scheduler = "wlc".into();
        files_b.retries = 7;
        let ours_a = entry(&a, &[]);
        let owned: HashSet<ServiceKey> = [a.config.key].into();
        let listed = merge::<()>(
            &[a.clone(), b.clone()],
            vec![ours_a.clone(), files_b],
            &owned,
            |k| Ok(entry(k, std::slice::from_ref(&server))),
        )
        .unwrap();
        let kernels_b = entry(&b, std::slice::from_ref(&server));
        assert_eq!(kernels_b.scheduler, "rr");
        assert_eq!(listed, [ours_a, kernels_b]);
    }
}
