//! The cost of access lists per new connection: `proxy::admit::admit` (what the TCP
//! path and a new UDP flow pay) with no list at all, and with one service access list
//! of 1 000 prefixes (random IPv4 /8 to /32, allow and deny mixed); and
//! `AccessList::check` alone on that list. Figures in README, "Access lists".
//!
//! `cargo bench --bench access`

mod common;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use uvs::proxy::admit::{New, admit};
use uvs::table::admission::{AccessList, Cidr};
use uvs::table::{Command, Table, UnicastOnly};

use common::{add_server, add_service, service};

/// A small deterministic generator (xorshift64*), so each run measures the same list.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `n` random IPv4 prefixes, /8 to /32, every other one denied.
fn list(n: usize) -> AccessList {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut allow, mut deny) = (Vec::new(), Vec::new());
    for i in 0..n {
        let len = 8 + (rng.next() % 25) as u8;
        let addr = IpAddr::V4(Ipv4Addr::from(rng.next() as u32));
        let prefix = Cidr::new(uvs::table::access::masked(addr, len), len).expect("masked");
        if i % 2 == 0 { &mut allow } else { &mut deny }.push(prefix);
    }
    AccessList::new(allow, deny)
}

/// Service 0 with one real server, and `access` as its access list.
fn table(access: Option<AccessList>) -> Table {
    let mut t = Table::new();
    let Command::AddService(mut config) = add_service(0, "rr", false) else {
        unreachable!("add_service adds a service")
    };
    config.options.admission.access = access.map(Arc::new);
    for c in [Command::AddService(config), add_server(0, 0)] {
        t.apply(&c, &UnicastOnly).expect("apply").carry_out();
    }
    t
}

/// Client number `n`: spread over the whole IPv4 space.
fn client(n: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(n.wrapping_mul(2_654_435_761)))
}

fn access(c: &mut Criterion) {
    let mut group = c.benchmark_group("access");
    for (name, access) in [("no list", None), ("1000 prefixes", Some(list(1000)))] {
        let t = table(access);
        let svc = Arc::clone(t.service(&service(0)).expect("service"));
        let mut n = 0u32;
        group.bench_function(format!("admit, {name}"), |b| {
            b.iter(|| {
                n = n.wrapping_add(1);
                black_box(admit(&t, &svc, black_box(client(n)), New::Connection).is_ok())
            })
        });
    }
    let l = list(1000);
    let mut n = 0u32;
    group.bench_function("AccessList::check, 1000 prefixes", |b| {
        b.iter(|| {
            n = n.wrapping_add(1);
            black_box(l.check(black_box(client(n))))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = access
}
criterion_main!(benches);
