use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use super::{Kind, Over, SourceTable, Tables};
use crate::table::admission::ClientLimits;

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn limits() -> ClientLimits {
    ClientLimits {
        connections_per_source: 2,
        ..ClientLimits::default()
    }
}

#[test]
fn connections_are_counted_per_source_and_given_back() {
    let l = limits();
    let t = SourceTable::new(&l);
    let a = v4(10, 0, 0, 1);
    let first = t.admit(&l, a, Kind::Connection, 1).unwrap();
    let second = t.admit(&l, a, Kind::Connection, 1).unwrap();
    assert_eq!(
        t.admit(&l, a, Kind::Connection, 1).unwrap_err(),
        Over::Connections
    );
    assert!(t.admit(&l, v4(10, 0, 0, 2), Kind::Connection, 1).is_ok());
    first.release(Kind::Connection);
    assert!(t.admit(&l, a, Kind::Connection, 1).is_ok());
    assert_eq!(second.connections(), 2);
    assert_eq!(t.len(), 2);
}

#[test]
fn flows_count_apart_from_connections() {
    let l = ClientLimits {
        flows_per_source: 1,
        ..ClientLimits::default()
    };
    let t = SourceTable::new(&l);
    let a = v4(10, 0, 0, 1);
    let flow = t.admit(&l, a, Kind::Flow, 1).unwrap();
    assert_eq!(t.admit(&l, a, Kind::Flow, 1).unwrap_err(), Over::Flows);
    // No connection limit: connections are only counted.
    assert!(t.admit(&l, a, Kind::Connection, 1).is_ok());
    flow.release(Kind::Flow);
    assert!(t.admit(&l, a, Kind::Flow, 1).is_ok());
}

#[test]
fn the_bucket_holds_n_and_refills_n_per_second() {
    let l = ClientLimits {
        new_per_second_per_source: 4,
        ..ClientLimits::default()
    };
    let t = SourceTable::new(&l);
    let a = v4(10, 0, 0, 1);
    let taken = |now| {
        (0..100)
            .filter(|_| t.admit(&l, a, Kind::Connection, now).is_ok())
            .count()
    };
    assert_eq!(taken(1000), 4, "a full bucket at first");
    assert_eq!(taken(1000), 0);
    assert_eq!(taken(1249), 0, "0.996 of a token after 249 ms");
    assert_eq!(taken(1250), 1, "one token per 250 ms");
    assert_eq!(taken(1750), 2);
    assert_eq!(taken(60_000), 4, "never more than the capacity");
    // A clock read before the last refill (another worker's) takes nothing back.
    assert_eq!(taken(59_000), 0);
}

#[test]
fn a_prefix_makes_one_source() {
    let l = ClientLimits {
        source_prefix_v4: 24,
        source_prefix_v6: 64,
        ..limits()
    };
    let t = SourceTable::new(&l);
    assert!(t.admit(&l, v4(10, 0, 0, 1), Kind::Connection, 1).is_ok());
    assert!(t.admit(&l, v4(10, 0, 0, 200), Kind::Connection, 1).is_ok());
    assert!(t.admit(&l, v4(10, 0, 0, 3), Kind::Connection, 1).is_err());
    assert!(t.admit(&l, v4(10, 0, 1, 3), Kind::Connection, 1).is_ok());
    let six = |last| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 7, 0, 0, 0, last));
    assert!(t.admit(&l, six(1), Kind::Connection, 1).is_ok());
    assert!(t.admit(&l, six(2), Kind::Connection, 1).is_ok());
    assert!(t.admit(&l, six(3), Kind::Connection, 1).is_err());
    assert_eq!(t.len(), 3);
}

#[test]
fn the_cap_holds_under_100_000_sources() {
    let l = ClientLimits {
        max_sources: 1000,
        ..limits()
    };
    let t = SourceTable::new(&l);
    let mut held = Vec::new();
    for i in 0..100_000u32 {
        let [_, b, c, d] = i.to_be_bytes();
        let entry = t
            .admit(&l, v4(127, b, c, d), Kind::Connection, 1)
            .expect("a new source is always admitted");
        if i % 10 == 0 {
            held.push(entry);
        }
        assert!(t.len() <= 1000);
    }
    assert_eq!(t.len(), 1000);
    assert_eq!(t.cap(), 1000);
}

#[test]
fn a_new_source_forgets_an_idle_one_first_and_holders_give_back_to_theirs() {
    // One shard of 2: the eviction order is the LRU order.
    let l = ClientLimits {
        max_sources: 2,
        connections_per_source: 1,
        ..ClientLimits::default()
    };
    let t = SourceTable::new(&l);
    let (a, b, c) = (v4(10, 0, 0, 1), v4(10, 0, 0, 2), v4(10, 0, 0, 3));
    let held = t.admit(&l, a, Kind::Connection, 1).unwrap();
    t.admit(&l, b, Kind::Connection, 1)
        .unwrap()
        .release(Kind::Connection);
    // a is the least recently used but holds a connection: b, idle, goes.
    t.admit(&l, c, Kind::Connection, 1)
        .unwrap()
        .release(Kind::Connection);
    assert!(
        t.admit(&l, a, Kind::Connection, 1).is_err(),
        "a kept its count"
    );
    // a (holding) was used after c (idle): a new source forgets c.
    let d = v4(10, 0, 0, 4);
    let held_d = t.admit(&l, d, Kind::Connection, 1).unwrap();
    // Both hold: the least recently used (a) is forgotten anyway, and its holder gives
    // back to the entry it holds, not to the new one of the same source.
    let _e = t.admit(&l, v4(10, 0, 0, 5), Kind::Connection, 1).unwrap();
    let again = t.admit(&l, a, Kind::Connection, 1).unwrap();
    assert!(
        !Arc::ptr_eq(&again, &held),
        "a's count restarted in a new entry"
    );
    held.release(Kind::Connection);
    assert_eq!(held.connections(), 0);
    assert_eq!(again.connections(), 1);
    assert!(t.len() <= 2);
    drop(held_d);
}

#[test]
fn new_numbers_keep_the_table_a_new_prefix_or_cap_makes_one() {
    let kept = Tables::default();
    let l = limits();
    let first = kept.get(&l);
    let held = first
        .admit(&l, v4(10, 0, 0, 1), Kind::Connection, 1)
        .unwrap();
    let more = ClientLimits {
        connections_per_source: 5,
        new_per_second_per_source: 3,
        ..l
    };
    assert!(Arc::ptr_eq(&first, &kept.get(&more)));
    let wider = ClientLimits {
        source_prefix_v4: 24,
        ..l
    };
    let second = kept.get(&wider);
    assert!(!Arc::ptr_eq(&first, &second));
    assert!(Arc::ptr_eq(&second, &kept.get(&wider)));
    assert_eq!(second.len(), 0);
    // The old holder gives back to the old table.
    held.release(Kind::Connection);
    assert_eq!(held.connections(), 0);
    let smaller = ClientLimits {
        max_sources: 10,
        ..wider
    };
    assert!(!Arc::ptr_eq(&second, &kept.get(&smaller)));
}

#[test]
fn shards_share_the_cap_exactly() {
    for cap in [1u32, 2, 1000, 1023, 1024, 5000, 65_536, 100_000] {
        let t = SourceTable::new(&ClientLimits {
            max_sources: cap,
            ..limits()
        });
        let total: usize = t.shards.iter().map(|s| super::lock(s).cap).sum();
        assert_eq!(total, cap as usize);
        assert!(t.shards.len() <= super::MAX_SHARDS);
    }
}
