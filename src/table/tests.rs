//! Unit tests of `Table::apply`: IPVS's rules for each command.

use std::net::IpAddr;

use super::*;

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn config(key: ServiceKey, sched: &str) -> ServiceConfig {
    ServiceConfig::new(key, sched)
}

fn server(addr: &str, port: u16, weight: i32) -> ServerConfig {
    ServerConfig::masq(
        std::net::SocketAddr::new(addr.parse().unwrap(), port),
        weight,
    )
}

/// Applies `c` to a table nobody else reads: its effects are carried out right away.
fn apply(t: &mut Table, c: Command) -> Result<(), TableError> {
    t.apply(&c, &UnicastOnly).map(Effects::carry_out)
}

fn with_service() -> (Table, ServiceKey) {
    let mut t = Table::new();
    let key = tcp("172.20.0.24", 80);
    apply(&mut t, Command::AddService(config(key, "rr"))).unwrap();
    (t, key)
}

#[test]
fn duplicate_service_is_refused_before_the_scheduler_is_looked_up() {
    let (mut t, key) = with_service();
    assert_eq!(
        apply(&mut t, Command::AddService(config(key, "bogus"))),
        Err(TableError::ServiceExists)
    );
    assert_eq!(
        apply(
            &mut t,
            Command::AddService(config(tcp("1.2.3.4", 80), "bogus"))
        ),
        Err(TableError::SchedulerNotFound)
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn unknown_persistence_engine_is_refused() {
    let mut t = Table::new();
    let mut c = config(tcp("1.2.3.4", 5060), "rr");
    c.pe = Some("bogus".into());
    assert_eq!(
        apply(&mut t, Command::AddService(c.clone())),
        Err(TableError::SchedulerNotFound)
    );
    c.pe = Some("sip".into());
    apply(&mut t, Command::AddService(c)).unwrap();
}

#[test]
fn ipv6_prefix_must_be_1_to_128() {
    let mut t = Table::new();
    let mut c = config(tcp("2001:db8::1", 80), "rr");
    c.netmask = Netmask::V6(129);
    assert_eq!(
        apply(&mut t, Command::AddService(c.clone())),
        Err(TableError::InvalidOperation)
    );
    c.netmask = Netmask::V4("255.255.255.0".parse().unwrap());
    assert_eq!(
        apply(&mut t, Command::AddService(c)),
        Err(TableError::InvalidOperation)
    );
}

#[test]
fn edit_replaces_every_service_option_and_keeps_servers_and_counters() {
    let (mut t, key) = with_service();
    apply(
        &mut t,
        Command::AddServer {
            service: key,
            server: server("192.168.1.16", 80, 1),
        },
    )
    .unwrap();
    let stats_before = Arc::clone(&t.service(&key).unwrap().state);
    stats_before.stats.add_conn();
    let mut c = config(key, "wlc");
    c.flags = ServiceFlags(ServiceFlags::PERSISTENT);
    c.timeout = 300;
    apply(&mut t, Command::EditService(c)).unwrap();
    let svc = t.service(&key).unwrap();
    assert_eq!(svc.scheduler, Scheduler::Wlc);
    assert!(svc.flags.persistent());
    assert_eq!(svc.servers.len(), 1);
    assert_eq!(svc.state.stats.view().counters.conns, 1);
    // -E without -p turns persistence off again.
    apply(&mut t, Command::EditService(config(key, "wlc"))).unwrap();
    assert!(!t.service(&key).unwrap().flags.persistent());
    assert_eq!(
        apply(
            &mut t,
            Command::EditService(config(tcp("9.9.9.9", 1), "rr"))
        ),
        Err(TableError::NoSuchService)
    );
}

#[test]
fn servers_are_listed_newest_first_and_edits_keep_their_place() {
    let (mut t, key) = with_service();
    for (a, w) in [("10.0.0.1", 1), ("10.0.0.2", 2), ("10.0.0.3", 3)] {
        apply(
            &mut t,
            Command::AddServer {
                service: key,
                server: server(a, 80, w),
            },
        )
        .unwrap();
    }
    apply(
        &mut t,
        Command::EditServer {
            service: key,
            server: server("10.0.0.2", 80, 7),
        },
    )
    .unwrap();
    let order: Vec<(String, u32)> = t
        .service(&key)
        .unwrap()
        .servers
        .iter()
        .map(|s| (s.addr.to_string(), s.weight))
        .collect();
    assert_eq!(
        order,
        vec![
            ("10.0.0.3".to_string(), 3),
            ("10.0.0.2".to_string(), 7),
            ("10.0.0.1".to_string(), 1)
        ]
    );
}

#[test]
fn server_errors_follow_the_kernel() {
    let (mut t, key) = with_service();
    let missing = tcp("172.20.0.99", 80);
    let add = |service, server| Command::AddServer { service, server };
    assert_eq!(
        apply(&mut t, add(missing, server("192.168.1.1", 80, 1))),
        Err(TableError::ServiceNotDefined)
    );
    assert_eq!(
        apply(&mut t, add(key, server("192.168.1.1", 80, -1))),
        Err(TableError::OutOfRange)
    );
    let mut low_above_high = server("192.168.1.1", 80, 1);
    low_above_high.l_threshold = 10;
    low_above_high.u_threshold = 5;
    assert_eq!(
        apply(&mut t, add(key, low_above_high)),
        Err(TableError::OutOfRange)
    );
    assert_eq!(
        apply(&mut t, add(key, server("255.255.255.255", 80, 1))),
        Err(TableError::InvalidOperation)
    );
    assert_eq!(
        apply(&mut t, add(key, server("2001:db8::1", 80, 1))),
        Err(TableError::InvalidOperation),
        "a different family needs tunnelling"
    );
    let mut tunnelled = server("2001:db8::1", 80, 1);
    tunnelled.forward = Forward::Tunnel;
    apply(&mut t, add(key, tunnelled)).unwrap();
    apply(&mut t, add(key, server("192.168.1.1", 80, 1))).unwrap();
    assert_eq!(
        apply(&mut t, add(key, server("192.168.1.1", 80, 5))),
        Err(TableError::ServerExists)
    );
    assert_eq!(
        apply(
            &mut t,
            Command::EditServer {
                service: key,
                server: server("192.168.1.99", 80, 2)
            }
        ),
        Err(TableError::NoSuchServer)
    );
    let gone = ServerKey {
        addr: "192.168.1.99".parse::<IpAddr>().unwrap(),
        port: 80,
    };
    assert_eq!(
        apply(
            &mut t,
            Command::DeleteServer {
                service: key,
                server: gone
            }
        ),
        Err(TableError::NoSuchServer)
    );
    let mut gue = server("192.168.1.2", 80, 1);
    gue.forward = Forward::Tunnel;
    gue.tunnel.kind = TunnelKind::Gue;
    assert_eq!(
        apply(&mut t, add(key, gue)),
        Err(TableError::InvalidOperation)
    );
}

#[test]
fn fwmark_services_are_distinct_per_family() {
    let mut t = Table::new();
    let v4 = ServiceKey::Fwmark {
        mark: 10,
        family: Family::Inet,
    };
    let v6 = ServiceKey::Fwmark {
        mark: 10,
        family: Family::Inet6,
    };
    apply(&mut t, Command::AddService(config(v4, "rr"))).unwrap();
    apply(&mut t, Command::AddService(config(v6, "rr"))).unwrap();
    assert_eq!(
        apply(&mut t, Command::AddService(config(v4, "rr"))),
        Err(TableError::ServiceExists)
    );
    assert_eq!(t.len(), 2);
}

#[test]
fn zero_resets_what_listings_show_and_keeps_totals() {
    let (mut t, key) = with_service();
    apply(
        &mut t,
        Command::AddServer {
            service: key,
            server: server("10.0.0.1", 80, 1),
        },
    )
    .unwrap();
    let svc = Arc::clone(t.service(&key).unwrap());
    svc.state.stats.add_conn();
    svc.servers[0].state.stats.add_in(1, 100);
    t.totals().add_conn();
    apply(&mut t, Command::Zero { service: Some(key) }).unwrap();
    let e = t.entry(&key).unwrap();
    assert_eq!(e.stats.counters.conns, 0);
    assert_eq!(e.servers[0].stats.counters.inbytes, 0);
    assert_eq!(svc.servers[0].state.stats.totals().inbytes, 100);
    assert_eq!(t.totals().view().counters.conns, 1, "-Z svc leaves totals");
    apply(&mut t, Command::Zero { service: None }).unwrap();
    assert_eq!(t.totals().view().counters.conns, 0);
    assert_eq!(
        apply(
            &mut t,
            Command::Zero {
                service: Some(tcp("1.1.1.1", 1))
            }
        ),
        Err(TableError::NoSuchService)
    );
}

#[test]
fn timeouts_and_sync_daemon() {
    let mut t = Table::new();
    apply(
        &mut t,
        Command::SetTimeouts(Timeouts {
            tcp: 7200,
            tcp_fin: 60,
            udp: 0,
        }),
    )
    .unwrap();
    assert_eq!(
        t.timeouts(),
        Timeouts {
            tcp: 7200,
            tcp_fin: 60,
            udp: 300
        }
    );
    assert_eq!(
        apply(
            &mut t,
            Command::StartSyncDaemon {
                role: SyncRole::Master
            }
        ),
        Err(TableError::SyncUnavailable)
    );
}

#[test]
fn handle_publishes_only_successful_changes() {
    let handle = TableHandle::new(Box::new(UnicastOnly));
    let before = handle.snapshot();
    let key = tcp("1.2.3.4", 80);
    handle
        .apply(&Command::AddService(config(key, "rr")))
        .unwrap();
    assert_eq!(before.len(), 0, "old snapshots never change");
    let after = handle.snapshot();
    assert_eq!(
        handle.apply(&Command::AddService(config(key, "rr"))),
        Err(TableError::ServiceExists)
    );
    assert!(Arc::ptr_eq(&after, &handle.snapshot()));
}
