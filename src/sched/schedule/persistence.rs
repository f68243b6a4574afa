//! Persistence through `schedule`: stickiness, granularity, PCC, PFWMC, invalid
//! templates. (Here rather than beside `persist`, which `schedule` uses: the templates
//! sit below the schedulers.)

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::clock::Clock;
use crate::persist::*;
use crate::sched::{Choice, Packet, schedule};
use crate::table::{
    Command, Family, Forward, Netmask, Protocol, ServerConfig, ServerKey, Service, ServiceFlags,
    ServiceKey, Table, Tunnel, UnicastOnly,
};

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

/// A table of one persistent rr service `key` with real servers 10.1.0.1 and 10.1.0.2.
fn table(key: ServiceKey, netmask: Netmask) -> Table {
    let addrs: Vec<std::net::IpAddr> = ["10.1.0.1", "10.1.0.2"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let persistent = ServiceFlags(ServiceFlags::PERSISTENT);
    crate::sched::testing::table_of(key, "rr", persistent, netmask, &addrs)
}

/// Persistence by client address alone (a /32 netmask).
const ONE_CLIENT: Netmask = Netmask::V4(Ipv4Addr::BROADCAST);

fn templates() -> Templates {
    Templates::new(Clock::new(), DEFAULT_MAX_TEMPLATES)
}

/// The templates counted on `svc`'s servers (PersistConn).
fn persisted(svc: &Service) -> u32 {
    svc.servers
        .iter()
        .map(|s| s.state.persistent_conns.load(Relaxed))
        .sum()
}

fn packet(client: &str, local: &str) -> Packet {
    Packet {
        client: client.parse().unwrap(),
        local: local.parse().unwrap(),
    }
}

/// A real server's address and port, as a sync master names it.
fn dest(s: &crate::table::RealServer) -> std::net::SocketAddr {
    std::net::SocketAddr::new(s.addr, s.port)
}

fn chosen(t: &Templates, svc: &Service, client: &str, local: &str) -> String {
    schedule(t, svc, &packet(client, local))
        .next()
        .map(|c| c.server.addr.to_string())
        .unwrap_or_default()
}

#[test]
fn clients_stick_to_their_server() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = templates();
    let a = chosen(&t, svc, "127.0.0.2:1000", "10.0.0.1:80");
    let b = chosen(&t, svc, "127.0.0.3:1000", "10.0.0.1:80");
    assert_ne!(a, b, "rr spreads new clients");
    for port in 1001..1010 {
        assert_eq!(
            chosen(&t, svc, &format!("127.0.0.2:{port}"), "10.0.0.1:80"),
            a
        );
        assert_eq!(
            chosen(&t, svc, &format!("127.0.0.3:{port}"), "10.0.0.1:80"),
            b
        );
    }
    assert_eq!(t.len(), 2);
    assert_eq!(
        persisted(svc),
        2,
        "one template per client, counted in PersistConn"
    );
    let listed = t.entries();
    assert!(
        listed
            .iter()
            .all(|e| e.client_port == 0 && e.virtual_port == 80)
    );
    assert!(
        listed
            .iter()
            .all(|e| e.protocol == "TCP" && e.state == "NONE")
    );
}

#[test]
fn the_netmask_groups_clients() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, Netmask::V4("255.255.255.0".parse().unwrap()));
    let svc = table.service(&key).unwrap();
    let t = templates();
    let first = chosen(&t, svc, "127.0.0.2:1000", "10.0.0.1:80");
    for c in 3..9 {
        assert_eq!(
            chosen(&t, svc, &format!("127.0.0.{c}:1000"), "10.0.0.1:80"),
            first
        );
    }
    assert_eq!(t.len(), 1);
    assert_eq!(t.entries()[0].client_addr.to_string(), "127.0.0.0");
}

#[test]
fn fwmark_persistence_spans_ports_and_protocols() {
    let key = ServiceKey::Fwmark {
        mark: 5,
        family: Family::Inet,
    };
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = templates();
    let first = chosen(&t, svc, "127.0.0.2:1000", "10.0.0.1:80");
    assert_eq!(chosen(&t, svc, "127.0.0.2:1001", "10.0.0.1:443"), first);
    assert_eq!(chosen(&t, svc, "127.0.0.2:1002", "10.0.0.2:8443"), first);
    let e = &t.entries()[0];
    assert_eq!(e.protocol, "IP");
    assert_eq!(e.virtual_addr.to_string(), "0.0.0.5");
    assert_eq!((e.virtual_port, e.dest_port), (0, 8080));
}

#[test]
fn port_zero_services_persist_across_ports() {
    let key = tcp("10.0.0.1", 0);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = templates();
    let first = chosen(&t, svc, "127.0.0.2:1000", "10.0.0.1:80");
    assert_eq!(chosen(&t, svc, "127.0.0.2:1001", "10.0.0.1:443"), first);
    assert_eq!(t.entries()[0].virtual_port, 0);
}

#[test]
fn a_removed_server_is_not_used_and_quiesced_ones_keep_their_clients() {
    let key = tcp("10.0.0.1", 80);
    let mut table = table(key, ONE_CLIENT);
    let t = templates();
    let svc = Arc::clone(table.service(&key).unwrap());
    let home = chosen(&t, &svc, "127.0.0.2:1000", "10.0.0.1:80");
    // Quiesce it: the client keeps it (expire_quiescent_template off).
    let quiesce = |w: i32| Command::EditServer {
        service: key,
        server: ServerConfig {
            options: Default::default(),
            addr: home.parse().unwrap(),
            port: 8080,
            forward: Forward::Masq,
            weight: w,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        },
    };
    table.apply(&quiesce(0), &UnicastOnly).unwrap().carry_out();
    let svc = Arc::clone(table.service(&key).unwrap());
    assert_eq!(chosen(&t, &svc, "127.0.0.2:1001", "10.0.0.1:80"), home);
    t.set_expire_quiescent(true);
    assert_ne!(chosen(&t, &svc, "127.0.0.2:1002", "10.0.0.1:80"), home);
    t.set_expire_quiescent(false);
    // Remove the (new) server: the template pointing at it is void.
    let now_home = chosen(&t, &svc, "127.0.0.2:1003", "10.0.0.1:80");
    table
        .apply(
            &Command::DeleteServer {
                service: key,
                server: ServerKey {
                    addr: now_home.parse().unwrap(),
                    port: 8080,
                },
            },
            &UnicastOnly,
        )
        .unwrap()
        .carry_out();
    table.apply(&quiesce(1), &UnicastOnly).unwrap().carry_out();
    let svc = table.service(&key).unwrap();
    assert_eq!(chosen(&t, svc, "127.0.0.2:1004", "10.0.0.1:80"), home);
}

#[test]
fn at_the_cap_an_unused_template_makes_room_and_templates_in_use_stay() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = Templates::new(Clock::new(), 3);
    let choose = |client: &str| {
        schedule(&t, svc, &packet(client, "10.0.0.1:80"))
            .next()
            .expect("a server")
    };
    // Three clients with a connection each, still open.
    let mut held: Vec<Choice> = ["127.0.0.2:1", "127.0.0.3:1", "127.0.0.4:1"]
        .iter()
        .map(|c| choose(c))
        .collect();
    assert!(held.iter().all(|c| c.template.is_some()));
    // Every template in use: a fourth client is scheduled, without one.
    let fourth = choose("127.0.0.5:1");
    assert!(fourth.template.is_none());
    assert_eq!((t.len(), t.evicted(), t.not_made()), (3, 0, 1));
    // The first client's connection ends: its template makes room for the next client.
    held[0].template = None;
    let fifth = choose("127.0.0.6:1");
    assert!(fifth.template.is_some());
    assert_eq!((t.len(), t.evicted(), t.not_made()), (3, 1, 1));
    // The clients in use kept theirs.
    for (c, h) in ["127.0.0.3:2", "127.0.0.4:2"].iter().zip(&held[1..]) {
        assert_eq!(choose(c).server.addr, h.server.addr);
    }
    assert_eq!(persisted(svc), 3, "PersistConn counts the templates held");
}

#[test]
fn a_sweep_looks_only_at_templates_whose_second_has_come() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let clock = Clock::new();
    let t = Templates::new(clock, DEFAULT_MAX_TEMPLATES);
    let now = clock.now_ms();
    let mut in_use = None;
    for i in 0..100u32 {
        let client = format!("127.1.{}.{}:1", i / 200, i % 200 + 1);
        let choice = schedule(&t, svc, &packet(&client, "10.0.0.1:80")).next();
        if i == 0 {
            in_use = choice;
        }
    }
    assert_eq!(t.len(), 100);
    let made = clock.now_ms();
    let timeout_ms = u64::from(svc.timeout) * 1000;
    // Nothing due: nothing looked at.
    let none = t.sweep_at(now + timeout_ms - 1_000);
    assert_eq!((none.expired, none.looked_at), (0, 0));
    // All due: each looked at once; the one in use is re-armed for 60 s.
    let at = made + timeout_ms + 1_000;
    let all = t.sweep_at(at);
    assert_eq!((all.expired, all.looked_at), (99, 100));
    assert_eq!(t.len(), 1);
    assert_eq!(persisted(svc), 1);
    let again = t.sweep_at(at + 1_000);
    assert_eq!((again.expired, again.looked_at), (0, 0));
    drop(in_use);
    let later = t.sweep_at(at + 61_000);
    assert_eq!((later.expired, later.looked_at), (1, 1));
    assert!(t.is_empty());
    assert_eq!(persisted(svc), 0);
}

#[test]
fn a_template_used_since_it_was_filed_is_filed_again_not_expired() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let clock = Clock::new();
    let t = Templates::new(clock, DEFAULT_MAX_TEMPLATES);
    chosen(&t, svc, "127.0.0.2:1", "10.0.0.1:80");
    let made = clock.now_ms();
    let timeout_ms = u64::from(svc.timeout) * 1000;
    // Used again later: its timer restarted, past the second it was filed under.
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    chosen(&t, svc, "127.0.0.2:2", "10.0.0.1:80");
    let filed = made + timeout_ms + 1_000;
    let s = t.sweep_at(filed);
    assert_eq!((s.expired, s.looked_at, t.len()), (0, 1, 1));
    let s = t.sweep_at(filed + 60_000);
    assert_eq!((s.expired, s.looked_at, t.len()), (1, 1, 0));
}

#[test]
fn a_listing_of_many_templates_lists_each_once() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = templates();
    // More than two chunks of the listing.
    let n = 2_600u32;
    for i in 0..n {
        chosen(
            &t,
            svc,
            &format!("127.1.{}.{}:1", i / 200, i % 200 + 1),
            "10.0.0.1:80",
        );
    }
    let mut clients: Vec<_> = t.entries().iter().map(|e| e.client_addr).collect();
    clients.sort_unstable();
    clients.dedup();
    assert_eq!(clients.len(), n as usize);
}

#[test]
fn a_closed_connection_keeps_its_template_until_its_entry_expires() {
    use crate::conn::{ConnTable, NewConn, State};
    use crate::table::limit::Slot;
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let conns = ConnTable::new();
    let t = Templates::new(conns.clock, DEFAULT_MAX_TEMPLATES);
    let choice = schedule(&t, svc, &packet("127.0.0.2:1", "10.0.0.1:80"))
        .next()
        .expect("a server");
    let now = conns.clock.now_ms();
    let conn = conns.open(NewConn {
        protocol: Protocol::Tcp,
        client: "127.0.0.2:1".parse().unwrap(),
        local: "10.0.0.1:80".parse().unwrap(),
        dest: std::net::SocketAddr::new(choice.server.addr, 80),
        fwmark: 0,
        slot: Slot::take(&choice.server.state).expect("no limit"),
        template: choice.template,
        state: State::SynRecv,
    });
    let timeouts = crate::table::Timeouts::default();
    conns.close(&conn, State::TimeWait, &timeouts);
    drop(conn);
    let timeout_ms = u64::from(svc.timeout) * 1000;
    // The template is due, but its connection's TIME_WAIT entry still holds it.
    let s = t.sweep_at(now + timeout_ms + 2_000);
    assert_eq!((s.expired, s.looked_at), (0, 1));
    // The entry expires (TIME_WAIT's 120 s are over), giving the template back.
    assert_eq!(
        conns.sweep_at(now + timeout_ms + 2_000, &timeouts).expired,
        1
    );
    let s = t.sweep_at(now + timeout_ms + 2_000 + 61_000);
    assert_eq!((s.expired, t.len()), (1, 0));
}

#[test]
fn a_synced_template_leads_its_client_and_an_existing_one_keeps_its_server() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = templates();
    let client: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let vip = "10.0.0.1".parse().unwrap();
    let at = |a: &str| {
        let i = svc.servers.iter().position(|s| s.addr.to_string() == a);
        i.expect("a server")
    };
    // Whatever rr would pick, the master's template says 10.1.0.2.
    let (i, j) = (at("10.1.0.2"), at("10.1.0.1"));
    let (second, first) = (&svc.servers[i], &svc.servers[j]);
    assert_eq!(
        t.install(svc, client, vip, dest(second), 600, true),
        Installed::New
    );
    assert_eq!(persisted(svc), 1, "counted in PersistConn");
    let listed = t.entries();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].state.as_str(), listed[0].expires),
        ("ASSURED", 600)
    );
    assert_eq!(chosen(&t, svc, "127.0.0.2:1000", "10.0.0.1:80"), "10.1.0.2");
    // Sent again naming the other server: the kernel keeps the template's server.
    assert_eq!(
        t.install(svc, client, vip, dest(first), 600, false),
        Installed::Refreshed
    );
    assert_eq!(chosen(&t, svc, "127.0.0.2:1001", "10.0.0.1:80"), "10.1.0.2");
    assert_eq!(t.len(), 1);
    let stranger = "127.0.0.1:9".parse().unwrap();
    assert_eq!(
        t.install(svc, client, vip, stranger, 600, false),
        Installed::NoServer
    );
    // At the cap with every template in use, none is made.
    let full = Templates::new(Clock::new(), 1);
    let _held = schedule(&full, svc, &packet("127.0.0.3:1", "10.0.0.1:80"))
        .next()
        .expect("a server");
    assert_eq!(
        full.install(svc, client, vip, dest(second), 600, false),
        Installed::Full
    );
}

#[test]
fn a_listing_of_exactly_a_chunk_of_templates_ends() {
    // 1024 is the listing's chunk: a list of exactly that many once asked past its end.
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    for n in [1024u32, 2048] {
        let t = Templates::new(Clock::new(), 4096);
        for i in 0..n {
            let client = std::net::IpAddr::V4(Ipv4Addr::from(0x7f01_0000 + i));
            let vip = "10.0.0.1".parse().unwrap();
            let installed = t.install(svc, client, vip, dest(&svc.servers[0]), 600, false);
            assert_eq!(installed, Installed::New);
        }
        assert_eq!(t.entries().len(), n as usize);
    }
}

#[test]
fn a_synced_template_never_ends_a_clients_own_to_make_room() {
    let key = tcp("10.0.0.1", 80);
    let table = table(key, ONE_CLIENT);
    let svc = table.service(&key).unwrap();
    let t = Templates::new(Clock::new(), 2);
    // Two clients' templates, no longer in use: a new client's would push one out.
    for c in ["127.0.0.2:1", "127.0.0.3:1"] {
        drop(schedule(&t, svc, &packet(c, "10.0.0.1:80")).next());
    }
    let vip = "10.0.0.1".parse().unwrap();
    let stranger = "127.0.0.9".parse().unwrap();
    assert_eq!(
        t.install(svc, stranger, vip, dest(&svc.servers[0]), 600, false),
        Installed::Full
    );
    assert_eq!((t.len(), t.evicted()), (2, 0));
}
