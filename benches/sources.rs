//! Per-client limits (`uvs::table::sources`): the cost per new connection of the check
//! against a table of 65 536 sources (the default cap), for a source already there and
//! for a new source that makes room by forgetting another; and, printed before the
//! timings, the bytes a tracked source takes, as the allocator counts them.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use criterion::{Criterion, criterion_group, criterion_main};

use uvs::table::admission::ClientLimits;
use uvs::table::sources::{Kind, SourceTable};

/// The system allocator, counting the bytes it hands out and takes back.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call goes to the system allocator unchanged; only a count is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: the caller's layout, as GlobalAlloc::alloc requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: the pointer and layout of an alloc above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const SOURCES: u32 = 65_536;

fn limits() -> ClientLimits {
    ClientLimits {
        connections_per_source: 100,
        new_per_second_per_source: 1_000_000,
        ..ClientLimits::default()
    }
}

fn client(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | i))
}

/// A full table: every one of its sources seen once (and given back).
fn full_table(l: &ClientLimits) -> SourceTable {
    let t = SourceTable::new(l);
    for i in 0..SOURCES {
        if let Ok(s) = t.admit(l, client(i), Kind::Connection, 1) {
            s.release(Kind::Connection);
        }
    }
    t
}

fn bytes_per_source() {
    let l = limits();
    let before = LIVE.load(Relaxed);
    let t = full_table(&l);
    let bytes = LIVE.load(Relaxed) - before;
    println!(
        "{} sources tracked: {bytes} bytes requested from the allocator, {} per source",
        t.len(),
        bytes / t.len() as isize
    );
}

fn check(c: &mut Criterion) {
    bytes_per_source();
    let l = limits();
    let t = full_table(&l);
    let mut i = 0u32;
    c.bench_function("limits check, existing source of 65 536", |b| {
        b.iter(|| {
            i = (i + 1) % SOURCES;
            let s = t.admit(&l, black_box(client(i)), Kind::Connection, 2);
            if let Ok(s) = s {
                s.release(Kind::Connection);
            }
        })
    });
    let mut next = SOURCES;
    c.bench_function("limits check, new source evicting one of 65 536", |b| {
        b.iter(|| {
            next = next.wrapping_add(1);
            let s = t.admit(
                &l,
                black_box(client(next % 0x00ff_ffff)),
                Kind::Connection,
                2,
            );
            if let Ok(s) = s {
                s.release(Kind::Connection);
            }
        })
    });
}

criterion_group!(benches, check);
criterion_main!(benches);
