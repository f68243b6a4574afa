//! Control-plane costs that grow with the size of the table: applying a command (each
//! publishes a new snapshot, so a restore of N rules is O(N^2) in copies), and rendering
//! `-L -n` / `-S -n` of a large table (sorting with ipvsadm's merge sort).

mod common;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use uvs::adm::listing::{self, Format};
use uvs::adm::names::NoNames;
use uvs::table::{TableHandle, UnicastOnly};

use common::{add_server, add_service};

/// A table of `services` services with `servers` real servers each.
fn table(services: u32, servers: u32) -> TableHandle {
    let t = TableHandle::new(Box::new(UnicastOnly));
    for i in 0..services {
        t.apply(&add_service(i, "wlc", false)).unwrap();
        for j in 0..servers {
            t.apply(&add_server(i, j)).unwrap();
        }
    }
    t
}

fn apply(c: &mut Criterion) {
    for size in [10u32, 1000, 10_000] {
        c.bench_function(
            &format!("apply add-server into a table of {size} services"),
            |b| {
                b.iter_batched(
                    || table(size, 0),
                    // Return the table so dropping it is not measured.
                    |t| {
                        t.apply(black_box(&add_server(size / 2, 1))).unwrap();
                        t
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
}

fn render(c: &mut Criterion) {
    let t = table(1000, 4);
    let entries = t.snapshot().entries();
    c.bench_function("render -L -n, 1000 services x 4 servers", |b| {
        b.iter(|| {
            let mut out = String::new();
            listing::services(
                &mut out,
                &mut NoNames,
                black_box(&entries),
                Format(Format::NUMERIC),
            );
            out
        })
    });
    c.bench_function("snapshot entries, 1000 services x 4 servers", |b| {
        b.iter(|| black_box(t.snapshot().entries()))
    });
}

criterion_group!(benches, apply, render);
criterion_main!(benches);
