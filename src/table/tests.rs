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

/// A server deleted and added again comes back first, as the kernel's `list_add` puts
/// it (a trashed destination too), and quiescing keeps its place and its last weight:
/// what mh and sh fill their tables from, so what directors must agree on.
#[test]
fn a_server_added_again_comes_back_first_and_a_quiesced_one_keeps_its_place() {
    let (mut t, key) = with_service();
    for a in ["10.0.0.4", "10.0.0.3", "10.0.0.2", "10.0.0.1"] {
        let server = server(a, 80, 2);
        apply(
            &mut t,
            Command::AddServer {
                service: key,
                server,
            },
        )
        .unwrap();
    }
    let order = |t: &Table| -> Vec<(String, u32, u32)> {
        let svc = t.service(&key).unwrap();
        let list = svc.servers.iter();
        list.map(|s| (s.addr.to_string(), s.weight, s.last_weight))
            .collect()
    };
    let gone = server("10.0.0.3", 80, 2).key();
    apply(
        &mut t,
        Command::DeleteServer {
            service: key,
            server: gone,
        },
    )
    .unwrap();
    let back = server("10.0.0.3", 80, 2);
    apply(
        &mut t,
        Command::AddServer {
            service: key,
            server: back,
        },
    )
    .unwrap();
    let quiesced = server("10.0.0.2", 80, 0);
    apply(
        &mut t,
        Command::EditServer {
            service: key,
            server: quiesced,
        },
    )
    .unwrap();
    let want = [
        ("10.0.0.3", 2, 2),
        ("10.0.0.1", 2, 2),
        ("10.0.0.2", 0, 2),
        ("10.0.0.4", 2, 2),
    ];
    let want: Vec<(String, u32, u32)> = want
        .iter()
        .map(|(a, w, l)| (a.to_string(), *w, *l))
        .collect();
    assert_eq!(order(&t), want);
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
    let master = SyncDaemon {
        syncid: 7,
        ..SyncDaemon::new(SyncRole::Master, "lo")
    };
    apply(&mut t, Command::StartSyncDaemon(master.clone())).unwrap();
    // libipvs's words for the kernel's EEXIST and ESRCH.
    let again = apply(&mut t, Command::StartSyncDaemon(master.clone()));
    assert_eq!(again, Err(TableError::SyncDaemonRunning));
    assert_eq!(again.unwrap_err().to_string(), "Daemon has already run");
    let backup = SyncDaemon {
        role: SyncRole::Backup,
        ..master.clone()
    };
    apply(&mut t, Command::StartSyncDaemon(backup.clone())).unwrap();
    assert_eq!(
        t.sync_daemons().iter().collect::<Vec<_>>(),
        [&master, &backup]
    );
    let role = SyncRole::Master;
    apply(&mut t, Command::StopSyncDaemon { role }).unwrap();
    let gone = apply(&mut t, Command::StopSyncDaemon { role });
    assert_eq!(gone.unwrap_err().to_string(), "No daemon is running");
    assert_eq!(t.sync_daemons().iter().collect::<Vec<_>>(), [&backup]);
    // EINVAL from the kernel: no interface, a group that is not multicast.
    for bad in [
        SyncDaemon {
            interface: String::new(),
            ..master.clone()
        },
        SyncDaemon {
            group: Some("10.0.0.1".parse().unwrap()),
            ..master.clone()
        },
    ] {
        assert_eq!(
            apply(&mut t, Command::StartSyncDaemon(bad)),
            Err(TableError::SyncDaemonInvalid)
        );
    }
}

/// The kernel mirror replaces a daemon someone else runs only for a role the file's
/// `[sync]` owns: the table says which roles' daemons a reload started.
#[test]
fn the_table_knows_which_sync_daemons_the_file_started() {
    let mut t = Table::new();
    let master = SyncDaemon::new(SyncRole::Master, "lo");
    let backup = SyncDaemon::new(SyncRole::Backup, "lo");
    let start = |d: &SyncDaemon| Command::StartSyncDaemon(d.clone());
    t.apply_from(&start(&master), &UnicastOnly, Source::File)
        .map(Effects::carry_out)
        .unwrap();
    apply(&mut t, start(&backup)).unwrap();
    let from_file = t.sync_from_file();
    assert_eq!((from_file.master, from_file.backup), (true, false));
    assert!(from_file.get(SyncRole::Master) && !from_file.get(SyncRole::Backup));
    // uvsadm's stop and start of the file's role: uvsadm's from then on.
    apply(
        &mut t,
        Command::StopSyncDaemon {
            role: SyncRole::Master,
        },
    )
    .unwrap();
    assert!(!t.sync_from_file().master);
    t.apply_from(&start(&master), &UnicastOnly, Source::File)
        .map(Effects::carry_out)
        .unwrap();
    apply(
        &mut t,
        Command::StopSyncDaemon {
            role: SyncRole::Master,
        },
    )
    .unwrap();
    apply(&mut t, start(&master)).unwrap();
    assert_eq!(t.sync_from_file(), SyncFromFile::default());
    // A refused start changes nothing.
    let again = t.apply_from(&start(&master), &UnicastOnly, Source::File);
    assert_eq!(again.map(drop), Err(TableError::SyncDaemonRunning));
    assert!(!t.sync_from_file().master);
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

/// ipvsadm 1.31's `process_options`: for `-a` and `-e`, a DR or TUN real server of an
/// address service gets the service's port; NAT servers and fwmark services keep theirs.
#[test]
fn real_servers_take_the_port_ipvsadm_gives_them() {
    let mut t = Table::new();
    let web = tcp("192.0.2.50", 80);
    let any_port = tcp("192.0.2.50", 0);
    let v6 = ServiceKey::Inet {
        protocol: Protocol::Udp,
        addr: "2001:db8::50".parse().unwrap(),
        port: 443,
    };
    let mark = ServiceKey::Fwmark {
        mark: 7,
        family: Family::Inet,
    };
    let mut persistent = config(any_port, "rr");
    persistent.flags = ServiceFlags(ServiceFlags::PERSISTENT);
    persistent.timeout = 300;
    for c in [
        config(web, "rr"),
        persistent,
        config(v6, "rr"),
        config(mark, "rr"),
    ] {
        apply(&mut t, Command::AddService(c)).unwrap();
    }
    let with = |addr: &str, port: u16, forward: Forward| {
        let mut s = server(addr, port, 1);
        s.forward = forward;
        if forward == Forward::Tunnel && addr.ends_with(".54") {
            s.tunnel.kind = TunnelKind::Gue;
            s.tunnel.port = 6080;
        }
        s
    };
    let add = |t: &mut Table, service: ServiceKey, s: ServerConfig| {
        apply(t, Command::AddServer { service, server: s })
    };
    let ports = |t: &Table, service: &ServiceKey| -> Vec<(String, u16)> {
        let mut all: Vec<(String, u16)> = t
            .service(service)
            .unwrap()
            .servers
            .iter()
            .map(|s| (s.addr.to_string(), s.port))
            .collect();
        all.sort();
        all
    };
    let added = [
        ("198.51.100.51", 8080, Forward::Route),
        ("198.51.100.52", 8080, Forward::Masq),
        ("198.51.100.53", 8080, Forward::Tunnel),
        ("198.51.100.54", 8080, Forward::Tunnel),
        ("198.51.100.55", 0, Forward::Masq),
        ("198.51.100.56", 0, Forward::Route),
    ];
    for service in [web, any_port, mark] {
        for (addr, port, forward) in added {
            add(&mut t, service, with(addr, port, forward)).unwrap();
        }
    }
    let expect = |vport: Option<u16>| -> Vec<(String, u16)> {
        added
            .iter()
            .map(|(addr, port, forward)| {
                let port = match (vport, forward) {
                    (Some(v), Forward::Route | Forward::Tunnel) => v,
                    _ => *port,
                };
                (addr.to_string(), port)
            })
            .collect()
    };
    assert_eq!(ports(&t, &web), expect(Some(80)));
    assert_eq!(
        ports(&t, &any_port),
        expect(Some(0)),
        "a persistent port-0 service"
    );
    assert_eq!(
        ports(&t, &mark),
        expect(None),
        "an fwmark service has no port to give"
    );
    add(&mut t, v6, with("2001:db8::51", 8080, Forward::Route)).unwrap();
    assert_eq!(ports(&t, &v6), [("2001:db8::51".to_string(), 443)]);

    // A second DR server on the same address is the same server once normalised.
    assert_eq!(
        add(&mut t, web, with("198.51.100.51", 9090, Forward::Route)),
        Err(TableError::ServerExists)
    );
    // `-e` looks for the server at the normalised port, and keeps it there.
    let mut edit = with("198.51.100.51", 9090, Forward::Tunnel);
    edit.weight = 4;
    apply(
        &mut t,
        Command::EditServer {
            service: web,
            server: edit,
        },
    )
    .unwrap();
    let edited = t
        .service(&web)
        .unwrap()
        .servers
        .iter()
        .find(|s| s.addr.to_string() == "198.51.100.51")
        .map(|s| (s.port, s.weight, s.forward));
    assert_eq!(edited, Some((80, 4, Forward::Tunnel)));
    // A NAT server on another port cannot become DR by an edit: the DR server would be
    // on the service's port, where there is none (ipvsadm: "No such destination").
    assert_eq!(
        apply(
            &mut t,
            Command::EditServer {
                service: web,
                server: with("198.51.100.52", 8080, Forward::Route)
            }
        ),
        Err(TableError::NoSuchServer)
    );
    // `-d` is never rewritten: the DR server is only found where it is.
    let asked = ServerKey {
        addr: "198.51.100.51".parse().unwrap(),
        port: 8080,
    };
    assert_eq!(
        apply(
            &mut t,
            Command::DeleteServer {
                service: web,
                server: asked
            }
        ),
        Err(TableError::NoSuchServer)
    );
    let held = ServerKey { port: 80, ..asked };
    apply(
        &mut t,
        Command::DeleteServer {
            service: web,
            server: held,
        },
    )
    .unwrap();
}

fn listen_at(addr: &str, port: u16) -> ListenAddr {
    ListenAddr {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

/// A service added at a rule's address (after the rule, as ipvsadm's `-A` is never
/// refused for a rule's sake) wins it: the rule is kept, shadowed, not listened on,
/// and said; a service at 0.0.0.0 on the port shadows it alike; deleting the service
/// gives the rule its address back.
#[test]
fn a_service_wins_its_address_over_a_listen_rule_in_either_order() {
    let mut t = Table::new();
    let group = ServiceKey::Fwmark {
        mark: 7,
        family: Family::Inet,
    };
    apply(&mut t, Command::AddService(config(group, "rr"))).unwrap();
    let at = listen_at("127.0.0.71", 8080);
    apply(&mut t, Command::AddListener(ListenRule::new(at, Some(7)))).unwrap();
    assert_eq!(t.route(&at).map(|s| s.key), Some(group));
    assert_eq!(t.listen_addresses().len(), 1);

    let vip = tcp("127.0.0.71", 8080);
    let effects = t
        .apply(&Command::AddService(config(vip, "rr")), &UnicastOnly)
        .unwrap();
    assert_eq!(effects.notes(), ["Shadowed"]);
    effects.carry_out();
    assert_eq!(
        t.route(&at).map(|s| s.key),
        Some(vip),
        "the service's own address"
    );
    assert_eq!(t.shadowed_rules(), [(ListenRule::new(at, Some(7)), vip)]);
    let listening: Vec<_> = t
        .listen_addresses()
        .into_iter()
        .map(|(l, s)| (l, s.key))
        .collect();
    assert_eq!(listening, [(at, vip)]);
    assert_eq!(t.listen_rules(), [ListenRule::new(at, Some(7))], "kept");

    // A service at 0.0.0.0 on the port holds it too: the rule is not listened on.
    let wildcard = tcp("0.0.0.0", 8080);
    let effects = t
        .apply(&Command::AddService(config(wildcard, "rr")), &UnicastOnly)
        .unwrap();
    assert_eq!(effects.notes(), ["Shadowed"]);
    effects.carry_out();
    let effects = t
        .apply(&Command::DeleteService { service: vip }, &UnicastOnly)
        .unwrap();
    assert_eq!(effects.notes(), Vec::<&str>::new(), "still shadowed");
    effects.carry_out();
    assert_eq!(t.route(&at).map(|s| s.key), Some(wildcard));
    assert!(
        t.listen_addresses().iter().all(|(l, _)| *l != at),
        "a wildcard service's socket takes the address"
    );
    let effects = t
        .apply(&Command::DeleteService { service: wildcard }, &UnicastOnly)
        .unwrap();
    assert_eq!(effects.notes(), ["Unshadowed"]);
    effects.carry_out();
    assert_eq!(t.route(&at).map(|s| s.key), Some(group), "the rule's again");
    assert_eq!(t.shadowed_rules(), []);

    // Deleting the group deletes its rule, and says so.
    let effects = t
        .apply(&Command::DeleteService { service: group }, &UnicastOnly)
        .unwrap();
    assert_eq!(effects.notes(), ["RulesDeleted"]);
    effects.carry_out();
    assert_eq!(t.listen_rules(), []);
}

/// The other order: a rule added at a service's own address (exactly, or under one at
/// 0.0.0.0 on its port) is refused from uvsadm, and from a reload kept, shadowed and
/// said; a reload's rule still needs the service it leads to.
#[test]
fn a_reload_keeps_a_listen_rule_at_a_services_address_shadowed() {
    let mut t = Table::new();
    let group = ServiceKey::Fwmark {
        mark: 9,
        family: Family::Inet,
    };
    apply(&mut t, Command::AddService(config(group, "rr"))).unwrap();
    for owner in [tcp("127.0.0.72", 9300), tcp("0.0.0.0", 9300)] {
        let mut t = t.clone();
        apply(&mut t, Command::AddService(config(owner, "rr"))).unwrap();
        let rule = ListenRule::new(listen_at("127.0.0.72", 9300), Some(9));
        assert_eq!(
            apply(&mut t, Command::AddListener(rule)),
            Err(TableError::ListenerOnService {
                listen: rule.listen,
                service: owner
            })
        );
        let effects = t
            .apply_from(&Command::AddListener(rule), &UnicastOnly, Source::File)
            .unwrap();
        assert_eq!(effects.notes(), ["Shadowed"]);
        effects.carry_out();
        assert_eq!(t.shadowed_rules(), [(rule, owner)]);
        assert_eq!(t.route(&rule.listen).map(|s| s.key), Some(owner));

        let nowhere = ListenRule::new(listen_at("127.0.0.72", 9300), Some(10));
        let mut t = Table::new();
        apply(&mut t, Command::AddService(config(owner, "rr"))).unwrap();
        assert_eq!(
            t.apply_from(&Command::AddListener(nowhere), &UnicastOnly, Source::File)
                .map(|_| ()),
            Err(TableError::NoListenerService {
                service: nowhere.service()
            })
        );
    }
}

/// IPVS's trash of destinations: a server deleted while connections are open on it and
/// added again takes its old state back, so those connections still count against its
/// limit; deleted with none open, it comes back fresh.
#[test]
fn a_server_added_back_while_its_connections_are_open_keeps_its_state() {
    let (mut t, svc) = with_service();
    let mut limited = server("10.1.1.1", 80, 1);
    limited.options.max_connections = 2;
    let add = Command::AddServer {
        service: svc,
        server: limited.clone(),
    };
    let delete = Command::DeleteServer {
        service: svc,
        server: limited.key(),
    };
    apply(&mut t, add.clone()).unwrap();
    let state = |t: &Table| Arc::clone(&t.service(&svc).unwrap().servers[0].state);
    let before = state(&t);
    before
        .open_conns
        .fetch_add(2, std::sync::atomic::Ordering::Relaxed);
    apply(&mut t, delete.clone()).unwrap();
    assert!(!before.is_available());
    apply(&mut t, add.clone()).unwrap();
    let after = state(&t);
    assert!(
        Arc::ptr_eq(&before, &after),
        "its old state, from the trash"
    );
    assert!(after.is_available());
    assert_eq!(after.open(), 2, "its open connections still count");
    // With nothing open any more, a delete and an add give a fresh state.
    after
        .open_conns
        .store(0, std::sync::atomic::Ordering::Relaxed);
    apply(&mut t, delete).unwrap();
    apply(&mut t, add).unwrap();
    assert!(
        !Arc::ptr_eq(&after, &state(&t)),
        "nothing open: a new state"
    );
}

/// The unordered walk visits every service once; the listing's order is the kernel's
/// dump order (by hash position, then newest first within a position).
#[test]
fn each_service_visits_what_services_lists() {
    let mut t = Table::new();
    for port in 1..=300u16 {
        apply(
            &mut t,
            Command::AddService(config(tcp("127.0.0.1", port), "rr")),
        )
        .unwrap();
    }
    let listed: Vec<ServiceKey> = t.services().iter().map(|s| s.key).collect();
    let mut walked: Vec<ServiceKey> = t.each_service().map(|s| s.key).collect();
    assert_eq!(listed.len(), 300);
    let keys = |v: &[ServiceKey]| -> std::collections::BTreeSet<String> {
        v.iter().map(ToString::to_string).collect()
    };
    assert_eq!(keys(&listed), keys(&walked));
    walked.sort_by_key(|k| {
        let s = t.service(k).unwrap();
        (super::order::dump_position(k), std::cmp::Reverse(s.created))
    });
    assert_eq!(listed, walked);
}
