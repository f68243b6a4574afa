//! Control-plane costs that grow with the size of the table: applying a command (each
//! publishes a new snapshot, so a restore of N rules is O(N^2) in copies), and rendering
//! `-L -n` / `-S -n` of a large table (sorting with ipvsadm's merge sort), and a reload
//! of a large file that changes one weight (the plan against the running table and its
//! apply: one command, whatever the size).

mod common;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

use uvs::adm::listing::{self, Format};
use uvs::adm::names::NoNames;
use uvs::config::Config;
use uvs::config::plan::{Owned, plan};
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

/// A file of `services` fwmark services with `servers` real servers each, as
/// benches/scale.sh writes it.
fn file(services: u32, servers: u32) -> Config {
    let mut text = String::new();
    for i in 0..services {
        text.push_str(&format!(
            "[[service]]\nfwmark = {}\nscheduler = \"wrr\"\n",
            i + 1
        ));
        for j in 0..servers {
            let k = i * servers + j;
            text.push_str(&format!(
                "[[service.server]]\naddress = \"127.{}.{}.{}:80\"\nweight = 1\n",
                200 + (k >> 16),
                k >> 8 & 255,
                k & 255
            ));
        }
    }
    uvs::config::schema::parse(&text, std::path::Path::new("scale.toml")).unwrap()
}

/// A reload that changes one weight of a file of 1 000, 10 000 and 100 000 services:
/// the plan (the file against the running table) and the apply of the one command it
/// makes. Grows with the file (the plan reads it all), never with a rebuild.
fn reload_one_weight(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload, one weight changed");
    group.sample_size(10);
    for (services, servers) in [(1000u32, 4u32), (10_000, 4), (100_000, 1)] {
        let config = file(services, servers);
        let t = TableHandle::new(Box::new(UnicastOnly));
        t.apply_all(&plan(&config, &t.snapshot(), &Owned::default()))
            .unwrap();
        let owned = Owned::of(&config);
        let mut changed = config.clone();
        let mut weight = 1;
        group.bench_function(format!("{services} services x {servers}"), |b| {
            b.iter(|| {
                // Back and forth, so every iteration changes one weight.
                weight = 3 - weight;
                changed.services.last_mut().unwrap().servers[0].weight = weight;
                let commands = plan(black_box(&changed), &t.snapshot(), &owned);
                assert_eq!(commands.len(), 1);
                t.apply_all(&commands).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, apply, render, reload_one_weight);
criterion_main!(benches);
