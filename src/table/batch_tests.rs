//! Unit tests of all or nothing: a batch that `TableHandle::apply_all` refuses, at any
//! position, leaves no trace anywhere a reader could look (the snapshot, the live state
//! shared with the data plane, the scheduler's position, the version), and one that it
//! accepts has every command's effect on that state.

use std::net::SocketAddr;

use super::*;
use crate::sched::Packet;
use crate::stats::StatsView;

fn tcp(port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: "127.0.0.1".parse().unwrap(),
        port,
    }
}

fn server(last_octet: u8, weight: i32) -> ServerConfig {
    ServerConfig::masq(SocketAddr::from(([127, 0, 0, last_octet], 80)), weight)
}

fn listen(port: u16) -> ListenAddr {
    ListenAddr {
        protocol: Protocol::Tcp,
        addr: "127.0.0.1".parse().unwrap(),
        port,
    }
}

/// rr on port 80 with servers A (.2), B (.3) and C (.4, upper threshold 2), wlc on port
/// 81 with D (.5), and fwmark group 5 (no servers) with a listen rule for port 8080.
fn build() -> TableHandle {
    let handle = TableHandle::new(Box::new(UnicastOnly));
    let mut c = server(4, 3);
    c.u_threshold = 2;
    let commands = [
        Command::AddService(ServiceConfig::new(tcp(80), "rr")),
        Command::AddServer {
            service: tcp(80),
            server: c,
        },
        Command::AddServer {
            service: tcp(80),
            server: server(3, 2),
        },
        Command::AddServer {
            service: tcp(80),
            server: server(2, 1),
        },
        Command::AddService(ServiceConfig::new(tcp(81), "wlc")),
        Command::AddServer {
            service: tcp(81),
            server: server(5, 1),
        },
        // The group the listen rule leads to (a rule needs its service).
        Command::AddService(ServiceConfig::new(
            ServiceKey::Fwmark {
                mark: 5,
                family: Family::Inet,
            },
            "wlc",
        )),
        Command::AddListener(ListenRule {
            listen: listen(8080),
            mark: Some(5),
        }),
    ];
    handle.apply_all(&commands).unwrap();
    handle
}

/// Traffic as the data plane records it: counters on every service, server and the
/// totals, connections bound (C up to its upper threshold: overloaded), templates
/// counted, failed connects, and two rr picks so the cursor is mid-list.
fn traffic(handle: &TableHandle) {
    use std::sync::atomic::Ordering::Relaxed;
    let table = handle.snapshot();
    for svc in table.services() {
        svc.state.stats.add_conn();
        svc.state.stats.add_in(3, 300);
        svc.state.retries.fetch_add(1, Relaxed);
        for s in &svc.servers {
            s.state.stats.add_conn();
            s.state.stats.add_in(2, 200);
            s.state.stats.add_out(1, 1000);
            s.state.bind_connection(true);
            s.state.persistent_conns.fetch_add(1, Relaxed);
            s.state.connect_failures.refused.fetch_add(1, Relaxed);
        }
    }
    table.totals().add_conn();
    table.totals().add_out(4, 4000);
    let rr = table.service(&tcp(80)).unwrap();
    rr.servers[2].state.bind_connection(false);
    assert!(rr.servers[2].state.is_overloaded(), "C is at its threshold");
    picks(handle, 2);
}

/// The next `n` rr picks on port 80, as server addresses.
fn picks(handle: &TableHandle, n: usize) -> Vec<String> {
    let table = handle.snapshot();
    let svc = table.service(&tcp(80)).unwrap();
    let packet = Packet {
        client: "127.0.0.9:40000".parse().unwrap(),
        local: "127.0.0.1:80".parse().unwrap(),
    };
    (0..n)
        .map(|_| {
            svc.pick(&packet)
                .map(|s| s.addr.to_string())
                .unwrap_or_default()
        })
        .collect()
}

/// One server's live marks: what persistence templates (available, weight: a
/// quiescent server's templates may expire), the schedulers (overloaded, weight) and
/// UDP flows (available) read between snapshots.
#[derive(Debug, PartialEq)]
struct Marks {
    server: ServerKey,
    available: bool,
    overloaded: bool,
    weight: u32,
}

/// Everything a reader can see of the table.
#[derive(Debug, PartialEq)]
struct Seen {
    entries: Vec<ServiceEntry>,
    marks: Vec<Marks>,
    rules: Vec<ListenRule>,
    listening: Vec<ListenAddr>,
    timeouts: Timeouts,
    totals: StatsView,
    version: u64,
}

impl Seen {
    /// The parts of `self` that differ from `other`, by name (a short failure message).
    fn changed(&self, other: &Seen) -> Vec<&'static str> {
        let parts = [
            (
                "services, servers, weights, counters",
                self.entries != other.entries,
            ),
            ("marks", self.marks != other.marks),
            ("listen rules", self.rules != other.rules),
            ("listen set", self.listening != other.listening),
            ("timeouts", self.timeouts != other.timeouts),
            ("totals", self.totals != other.totals),
            ("version", self.version != other.version),
        ];
        parts
            .into_iter()
            .filter_map(|(name, differs)| differs.then_some(name))
            .collect()
    }
}

/// What a reader of `handle` sees, through the servers of `held` (a snapshot taken
/// before the batch: the data plane holds the states of the servers it knew).
fn seen(handle: &TableHandle, held: &Table) -> Seen {
    let table = handle.snapshot();
    Seen {
        entries: table.entries(),
        marks: held
            .services()
            .iter()
            .flat_map(|svc| svc.servers.iter())
            .map(|s| Marks {
                server: s.key(),
                available: s.state.is_available(),
                overloaded: s.state.is_overloaded(),
                weight: s.state.weight(),
            })
            .collect(),
        rules: table.listen_rules(),
        listening: table
            .listen_addresses()
            .into_iter()
            .map(|(l, _)| l)
            .collect(),
        timeouts: table.timeouts(),
        totals: table.totals().view(),
        version: *handle.subscribe().borrow(),
    }
}

/// Commands that each succeed on the table `build` makes, in this order, and each
/// touch something: a mark, a counter, the scheduler, the listen set, the timeouts.
fn accepted() -> Vec<Command> {
    let mut quiesce_c = server(4, 0);
    quiesce_c.u_threshold = 0;
    vec![
        Command::DeleteServer {
            service: tcp(80),
            server: server(2, 1).key(),
        },
        Command::EditServer {
            service: tcp(80),
            server: quiesce_c,
        },
        Command::Zero {
            service: Some(tcp(80)),
        },
        Command::Zero { service: None },
        Command::EditService(ServiceConfig::new(tcp(80), "wrr")),
        Command::AddServer {
            service: tcp(80),
            server: server(6, 4),
        },
        Command::SetTimeouts(Timeouts {
            tcp: 60,
            tcp_fin: 0,
            udp: 10,
        }),
        Command::AddListener(ListenRule {
            listen: listen(8081),
            mark: Some(5),
        }),
        Command::DeleteListener {
            listen: listen(8080),
        },
        Command::DeleteService { service: tcp(81) },
        Command::Flush {},
    ]
}

/// A command the table refuses whatever came before it.
fn refused() -> Command {
    Command::DeleteService { service: tcp(99) }
}

/// `batch` is refused at `at`, and afterwards nothing differs from a twin table that
/// never saw it: not what readers see, not the rr sequence.
fn leaves_no_trace(batch: &[Command], at: usize) {
    let (handle, twin) = (build(), build());
    traffic(&handle);
    traffic(&twin);
    let held = handle.snapshot();
    let before = seen(&handle, &held);
    assert_eq!(before, seen(&twin, &twin.snapshot()), "twins start alike");

    assert_eq!(
        handle.apply_all(batch),
        Err((at, TableError::NoSuchService))
    );

    assert!(Arc::ptr_eq(&held, &handle.snapshot()), "nothing published");
    let after = seen(&handle, &held);
    assert_eq!(
        after.changed(&before),
        Vec::<&str>::new(),
        "refused at {at}: {}",
        batch[..at]
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    );
    assert_eq!(picks(&handle, 7), picks(&twin, 7), "rr goes on as it was");
}

#[test]
fn a_batch_refused_at_its_third_command_leaves_no_trace() {
    let mut batch = accepted();
    batch.insert(2, refused());
    leaves_no_trace(&batch, 2);
}

#[test]
fn a_batch_refused_at_its_first_command_leaves_no_trace() {
    let mut batch = accepted();
    batch.insert(0, refused());
    leaves_no_trace(&batch, 0);
}

#[test]
fn a_batch_refused_at_its_last_command_leaves_no_trace() {
    let mut batch = accepted();
    batch.push(refused());
    let last = batch.len() - 1;
    leaves_no_trace(&batch, last);
}

#[test]
fn every_accepted_command_alone_then_a_refusal_leaves_no_trace() {
    // Each effect on its own, so a trace left by one command is named by the failure.
    for command in accepted() {
        leaves_no_trace(&[command, refused()], 1);
    }
}

#[test]
fn an_accepted_batch_has_each_commands_effect_once_published() {
    let handle = build();
    traffic(&handle);
    let held = handle.snapshot();
    let rr = held.service(&tcp(80)).unwrap();
    let (c, a) = (&rr.servers[2].state, &rr.servers[0].state);
    assert_eq!(
        rr.servers[0].addr.to_string(),
        "127.0.0.2",
        "A heads the list"
    );
    handle.apply_all(&accepted()[..5]).unwrap();

    assert!(!a.is_available(), "A was deleted: its templates are void");
    assert!(
        !c.is_overloaded(),
        "removing C's threshold cleared the overload"
    );
    assert_eq!(c.weight(), 0, "C is quiescent");
    assert_eq!(c.stats.view().counters.conns, 0, "-Z zeroed C");
    assert_eq!(
        rr.state.stats.view().counters.inbytes,
        0,
        "-Z zeroed the service"
    );
    assert_eq!(handle.snapshot().totals().view().counters.conns, 0);
    assert_eq!(*handle.subscribe().borrow(), 2, "build, then one batch");
}

#[test]
fn a_single_apply_is_a_batch_of_one() {
    let (one, batch) = (build(), build());
    traffic(&one);
    traffic(&batch);
    let (held_one, held_batch) = (one.snapshot(), batch.snapshot());
    for command in accepted() {
        assert_eq!(
            one.apply(&command),
            batch.apply_all(&[command]).map_err(|e| e.1)
        );
        assert_eq!(seen(&one, &held_one), seen(&batch, &held_batch));
    }
    assert_eq!(one.apply(&refused()), Err(TableError::NoSuchService));
    assert_eq!(seen(&one, &held_one), seen(&batch, &held_batch));
}

#[test]
fn applying_to_a_copy_of_a_snapshot_touches_nothing_the_snapshot_shares() {
    let handle = build();
    traffic(&handle);
    let held = handle.snapshot();
    let before = seen(&handle, &held);
    let mut copy = Table::clone(&held);
    for command in accepted() {
        assert!(copy.apply(&command, &UnicastOnly).is_ok(), "{command}");
    }
    assert!(copy.is_empty(), "the copy was flushed");
    assert_eq!(seen(&handle, &held).changed(&before), Vec::<&str>::new());
}
