//! What the sync master costs the data plane and the master task: one state change of a
//! connection handed to the master's queue (`SyncQueue::conn`, which the proxy calls
//! through `Director::sync_conn` at ESTABLISHED, FIN_WAIT, CLOSE_WAIT, TIME_WAIT and
//! CLOSE) with no master running and with one, with and without a persistence
//! template; and the master's packing of an entry into a datagram (`wire::Builder`).
//! A short proxied connection makes two or three such changes.

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use uvs::conn::{Conn, ConnTable, NewConn, State};
use uvs::persist::Templates;
use uvs::sync::queue::SyncQueue;
use uvs::sync::wire::Builder;
use uvs::table::{Protocol, Table, Timeouts, UnicastOnly};

use common::{add_server, add_service, service};

/// An open TCP connection of service 0, with its template when `persistent` (the
/// store is returned to keep the template alive).
fn connection(persistent: bool) -> (Templates, ConnTable, Arc<Conn>) {
    let mut table = Table::new();
    table
        .apply(&add_service(0, "rr", true), &UnicastOnly)
        .expect("add service")
        .carry_out();
    table
        .apply(&add_server(0, 0), &UnicastOnly)
        .expect("add server")
        .carry_out();
    let svc = Arc::clone(table.service(&service(0)).expect("service"));
    let real = &svc.servers[0];
    let client = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 10, 0, 1)), 40_000);
    // Service 0's address (benches/common), which no packet is sent to.
    let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000)), 80);
    let dest = SocketAddr::new(real.addr, real.port);
    let templates = Templates::new(Default::default(), uvs::persist::DEFAULT_MAX_TEMPLATES);
    let template = persistent.then(|| {
        templates
            .slot(&svc, client.ip(), local.ip())
            .make(real, 0, 300)
            .expect("a template")
    });
    let conns = ConnTable::new();
    let conn = conns.open(NewConn {
        protocol: Protocol::Tcp,
        client,
        local,
        dest,
        fwmark: 0,
        slot: uvs::table::limit::Slot::take(&real.state).expect("no limit"),
        template,
        state: State::SynRecv,
    });
    (templates, conns, conn)
}

fn hook(c: &mut Criterion) {
    let timeouts = Timeouts::default();
    let mut group = c.benchmark_group("sync hook, one state change");
    for (name, on, persistent) in [
        ("no master", false, true),
        ("master, no template", true, false),
        ("master, with template", true, true),
    ] {
        let (_templates, _conns, conn) = connection(persistent);
        let queue = SyncQueue::default();
        queue.set_on(on);
        let mut taken = Vec::new();
        let mut n = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                queue.conn(black_box(&conn), State::Established, &timeouts);
                // The master takes what waits in batches, as its task does.
                n = n.wrapping_add(1);
                if n.is_multiple_of(64) {
                    taken.clear();
                    queue.take(&mut taken);
                }
            })
        });
    }
    group.finish();
}

fn pack(c: &mut Criterion) {
    let timeouts = Timeouts::default();
    let (_templates, _conns, conn) = connection(false);
    let queue = SyncQueue::default();
    queue.set_on(true);
    queue.conn(&conn, State::Established, &timeouts);
    let mut entries = Vec::new();
    queue.take(&mut entries);
    let entry = entries.pop().expect("an entry");
    let mut builder = Builder::new(0, 1472);
    c.bench_function("sync master, pack one entry (1472-byte datagrams)", |b| {
        b.iter(|| black_box(builder.push(black_box(&entry)).expect("encodable")))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = hook, pack
}
criterion_main!(benches);
