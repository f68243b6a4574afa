//! 1 000 to 1 000 000 persistence templates and closed connection entries: what the
//! data plane pays (a known client's template found; a connection closed into the
//! table) and what the once-a-second sweep costs, for 1k, 100k and 1M entries, so that
//! flatness shows; then, before the criterion groups, the longest the data plane waits
//! on the table's locks while a sweep or a `-L -c` listing of 1M entries runs
//! (`pauses`, printed). README, "Memory per entry".
//!
//! `cargo bench --bench scale_entries` (all), or `-- template_lookup` and so on for one
//! group; `UVS_BENCH_PAUSES=0` skips the pause figures.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::Criterion;

use uvs::clock::Clock;
use uvs::conn::{ConnTable, NewConn, State};
use uvs::persist::Templates;
use uvs::sched::{Packet, schedule};
use uvs::table::limit::Slot;
use uvs::table::{
    Command, Netmask, RealServerState, Service, ServiceConfig, ServiceFlags, Table, Timeouts,
    UnicastOnly,
};

use common::{add_server, add_service, service};

const SIZES: [usize; 3] = [1_000, 100_000, 1_000_000];

/// Service 0 (persistent for 300 s) and service 1 (persistent for 1 s), two real
/// servers each.
fn services() -> (Arc<Service>, Arc<Service>) {
    let mut t = Table::new();
    t.apply(&add_service(0, "rr", true), &UnicastOnly)
        .expect("add service")
        .carry_out();
    let key = service(1);
    let short = Command::AddService(ServiceConfig {
        key,
        scheduler: "rr".into(),
        flags: ServiceFlags(ServiceFlags::PERSISTENT),
        timeout: 1,
        netmask: Netmask::full(key.family()),
        pe: None,
        options: Default::default(),
    });
    t.apply(&short, &UnicastOnly).expect("add").carry_out();
    for i in 0..2 {
        for j in 0..2 {
            t.apply(&add_server(i, j), &UnicastOnly)
                .expect("add server")
                .carry_out();
        }
    }
    let get = |i| Arc::clone(t.service(&service(i)).expect("service"));
    (get(0), get(1))
}

/// Client `n`'s packet to service `svc` (a different address for each n < 4M).
fn packet(n: usize, svc: u32) -> Packet {
    Packet {
        client: SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x6440_0000 + n as u32)),
            1024 + (n % 60_000) as u16,
        ),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + svc)), 80),
    }
}

/// `n` templates of service 0, none in use, on `clock`.
fn templates(n: usize, svc: &Service, clock: Clock) -> Templates {
    let t = Templates::new(clock, 4 * n);
    for i in 0..n {
        schedule(&t, svc, &packet(i, 0)).next().expect("a server");
    }
    t
}

fn new_conn(n: usize, server: &Arc<RealServerState>) -> NewConn {
    let p = packet(n, 0);
    NewConn {
        protocol: uvs::table::Protocol::Tcp,
        client: p.client,
        local: p.local,
        dest: "192.168.0.1:8080".parse().expect("address"),
        fwmark: 0,
        slot: Slot::take(server).expect("no limit"),
        template: None,
        state: State::SynRecv,
    }
}

/// A table of `n` closed (TIME_WAIT) entries.
fn closed(n: usize, server: &Arc<RealServerState>) -> ConnTable {
    let table = ConnTable::new();
    let t = Timeouts::default();
    for i in 0..n {
        let c = table.open(new_conn(i, server));
        table.close(&c, State::TimeWait, &t);
    }
    table
}

fn template_lookup(c: &mut Criterion) {
    let (svc, _) = services();
    let mut group = c.benchmark_group("template_lookup");
    for n in SIZES {
        let t = templates(n, &svc, Clock::default());
        let mut i = 0;
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                i = (i + 7919) % n;
                black_box(schedule(&t, &svc, &packet(i, 0)).next())
            });
        });
    }
    group.finish();
}

/// Templates due each sweep: 100 of service 1 (1 s), among `n` of service 0 (300 s).
fn template_sweep(c: &mut Criterion) {
    let (long, short) = services();
    let mut group = c.benchmark_group("template_sweep");
    for n in SIZES {
        let clock = Clock::default();
        let t = templates(n, &long, clock);
        let mut next = n;
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                for _ in 0..100 {
                    next += 1;
                    schedule(&t, &short, &packet(next, 1)).next();
                }
                // Their second (1 s ahead) has come; the others' (300 s) has not.
                let s = t.sweep_at(clock.now_ms() + 2_100);
                assert_eq!(s.expired, 100);
                s
            });
        });
    }
    group.finish();
}

/// A connection opened and closed (TIME_WAIT) into a table of `n` closed entries.
fn closed_close(c: &mut Criterion) {
    let server = Arc::new(RealServerState::default());
    let t = Timeouts::default();
    let mut group = c.benchmark_group("closed_close");
    for n in SIZES {
        let table = closed(n, &server);
        let mut i = n;
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                i += 1;
                let conn = table.open(new_conn(i, &server));
                table.close(&conn, State::TimeWait, &t);
            });
        });
    }
    group.finish();
}

/// 100 connections closed (CLOSE, 10 s) and swept once due, in a table of `n`
/// TIME_WAIT entries (120 s, not due).
fn closed_sweep(c: &mut Criterion) {
    let server = Arc::new(RealServerState::default());
    let t = Timeouts::default();
    let mut group = c.benchmark_group("closed_sweep");
    for n in SIZES {
        let table = closed(n, &server);
        let mut i = n;
        group.bench_function(format!("{n}"), |b| {
            b.iter(|| {
                for _ in 0..100 {
                    i += 1;
                    let conn = table.open(new_conn(i, &server));
                    table.close(&conn, State::Close, &t);
                }
                let s = table.sweep_at(table.clock.now_ms() + 11_000, &t);
                assert_eq!(s.expired, 100);
                s
            });
        });
    }
    group.finish();
}

/// One data-plane call every 10 µs at most (100 000 a second, eight times the issue's
/// 12 000 new connections a second), so the table does not grow without bound.
const PACE: Duration = Duration::from_micros(10);

/// How long `work` took, and the longest call of `data_plane` (and how many were made)
/// while it ran on another thread.
fn longest_wait(
    mut data_plane: impl FnMut(usize) + Send,
    work: impl FnOnce(),
) -> (Duration, usize, Duration) {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            let (mut longest, mut calls) = (Duration::ZERO, 0);
            while !done.load(Relaxed) {
                let started = Instant::now();
                data_plane(calls);
                longest = longest.max(started.elapsed());
                calls += 1;
                while started.elapsed() < PACE {
                    std::hint::spin_loop();
                }
            }
            (longest, calls)
        });
        // Let the watcher start.
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        work();
        let took = started.elapsed();
        done.store(true, Relaxed);
        let (longest, calls) = watcher.join().expect("watcher");
        (longest, calls, took)
    })
}

/// Prints the data plane's longest wait on the locks while 1M entries are listed or
/// swept.
fn pauses() {
    const N: usize = 1_000_000;
    let report = |what: &str, (longest, calls, took): (Duration, usize, Duration)| {
        println!(
            "pause: {what}: took {took:.1?}; data plane's longest call {longest:.1?} ({calls} calls)"
        );
    };
    let server = Arc::new(RealServerState::default());
    let t = Timeouts::default();
    let table = closed(N, &server);
    let mut i = N;
    let mut close_one = |_| {
        i += 1;
        let conn = table.open(new_conn(i, &server));
        table.close(&conn, State::TimeWait, &t);
    };
    // The noise floor: the longest call while the other thread only sleeps (on a busy
    // machine, mostly the watcher's time off the CPU).
    report(
        "nothing for 1 s (noise floor), a connection closed meanwhile",
        longest_wait(&mut close_one, || {
            std::thread::sleep(Duration::from_secs(1))
        }),
    );
    report(
        "-L -c of 1M closed entries, a connection closed meanwhile",
        longest_wait(&mut close_one, || {
            black_box(table.entries(&t).len());
        }),
    );
    report(
        "sweep of 1M due closed entries, a connection closed meanwhile",
        longest_wait(&mut close_one, || {
            let swept = table.sweep_at(table.clock.now_ms() + 121_000, &t);
            assert!(swept.expired >= N);
        }),
    );
    let (svc, _) = services();
    let clock = Clock::default();
    let templates = templates(N, &svc, clock);
    let found = |k: usize| {
        black_box(schedule(&templates, &svc, &packet(k * 7919 % N, 0)).next());
    };
    report(
        "-L -c of 1M templates, a known client scheduled meanwhile",
        longest_wait(found, || {
            black_box(templates.entries().len());
        }),
    );
    report(
        "sweep of 1M due templates, a known client scheduled meanwhile",
        longest_wait(found, || {
            let swept = templates.sweep_at(clock.now_ms() + 302_000);
            black_box(swept);
        }),
    );
}

fn main() {
    if std::env::var("UVS_BENCH_PAUSES").map_or(true, |v| v != "0") {
        pauses();
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    template_lookup(&mut c);
    template_sweep(&mut c);
    closed_close(&mut c);
    closed_sweep(&mut c);
    c.final_summary();
}
