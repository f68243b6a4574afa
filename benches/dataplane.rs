//! Per-connection costs of the data plane, paid on every accepted connection: the
//! scheduler's pick for 10, 100 and 1000 real servers (through the service's algorithm,
//! as the proxy calls it), the persistence template lookup, and opening and closing an
//! entry of the connection table.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};

use uvs::conn::{ConnTable, NewConn, State};
use uvs::persist::Templates;
use uvs::sched::{Packet, Scheduler, schedule};
use uvs::table::{Protocol, Service, Table, Timeouts, UnicastOnly};

use common::{add_server, add_service, service};

/// Service 0 with `servers` real servers under `scheduler`, each carrying a few
/// connections (so the least-connection schedulers compare real numbers).
fn service_with(scheduler: &str, servers: u32, persistent: bool) -> Arc<Service> {
    let mut t = Table::new();
    t.apply(&add_service(0, scheduler, persistent), &UnicastOnly)
        .expect("add service")
        .carry_out();
    for j in 0..servers {
        t.apply(&add_server(0, j), &UnicastOnly)
            .expect("add server")
            .carry_out();
    }
    let svc = Arc::clone(t.service(&service(0)).expect("service"));
    for (j, server) in svc.servers.iter().enumerate() {
        for k in 0..(j * 7 % 13) {
            server.state.bind_connection(k % 3 != 0);
        }
    }
    svc
}

/// The packet of client number `n`: a different address and port each time, so the
/// hashing schedulers do not hit one bucket.
fn packet(n: u32) -> Packet {
    Packet {
        client: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x6440_0000 + (n % 65_536))),
            1024 + (n % 60_000) as u16,
        ),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000)), 80),
    }
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for scheduler in Scheduler::ALL {
        if scheduler == Scheduler::None {
            continue;
        }
        for servers in [10u32, 100, 1000] {
            let svc = service_with(scheduler.name(), servers, false);
            let mut n = 0u32;
            group.bench_function(format!("{scheduler}/{servers}"), |b| {
                b.iter(|| {
                    n = n.wrapping_add(1);
                    black_box(svc.pick(black_box(&packet(n))).is_some())
                })
            });
        }
    }
    group.finish();
}

fn persistence(c: &mut Criterion) {
    const CLIENTS: u32 = 10_000;
    let svc = service_with("wlc", 100, true);
    let templates = Templates::new(Default::default(), uvs::persist::DEFAULT_MAX_TEMPLATES);
    for n in 0..CLIENTS {
        schedule(&templates, &svc, &packet(n))
            .next()
            .expect("a server");
    }
    let mut group = c.benchmark_group("persistence");
    let mut n = 0u32;
    group.bench_function(format!("known client, {CLIENTS} templates"), |b| {
        b.iter(|| {
            n = (n + 1) % CLIENTS;
            black_box(
                schedule(&templates, &svc, black_box(&packet(n)))
                    .next()
                    .is_some(),
            )
        })
    });
    // Every iteration is a client never seen: a pick and a new template. The templates
    // are made afresh per sample so the map does not grow without bound.
    group.bench_function("new client (pick + template)", |b| {
        b.iter_custom(|iters| {
            let templates = Templates::new(Default::default(), uvs::persist::DEFAULT_MAX_TEMPLATES);
            let start = Instant::now();
            for n in 0..iters {
                black_box(
                    schedule(&templates, &svc, &packet(n as u32))
                        .next()
                        .is_some(),
                );
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn conn_table(c: &mut Criterion) {
    const LIVE: u32 = 10_000;
    let svc = service_with("rr", 10, false);
    let server = Arc::clone(&svc.servers[0].state);
    let timeouts = Timeouts::default();
    let new_conn = |n: u32| {
        let p = packet(n);
        NewConn {
            protocol: Protocol::Tcp,
            client: p.client,
            local: p.local,
            dest: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080),
            fwmark: 0,
            slot: uvs::table::limit::Slot::take(&server).expect("no limit"),
            template: None,
            state: State::SynRecv,
        }
    };
    // Closed entries wait out TIME_WAIT, so each sample gets its own table (made and
    // dropped outside the timing) with LIVE connections already open.
    c.bench_function(
        &format!("conn table open + established + close, {LIVE} live"),
        |b| {
            b.iter_custom(|iters| {
                let table = ConnTable::new();
                let open: Vec<_> = (0..LIVE).map(|n| table.open(new_conn(n))).collect();
                let start = Instant::now();
                for n in 0..iters {
                    let conn = table.open(new_conn(n as u32));
                    conn.set_state(State::Established);
                    table.close(&conn, State::TimeWait, &timeouts);
                }
                let took = start.elapsed();
                drop(open);
                took
            })
        },
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = pick, persistence, conn_table
}
criterion_main!(benches);
