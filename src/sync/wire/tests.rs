//! Byte vectors written from the kernel's struct layouts (ip_vs_sync.c), every drop
//! rule of `ip_vs_process_message` and its helpers, and round trips.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use proptest::prelude::*;

use super::*;

/// A master's datagram limit for an IPv4 group when none is given.
const MAXLEN: usize = 1472;
use crate::conn::State;

fn v4(a: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::from(a), port)
}

fn v6(a: &str, port: u16) -> SocketAddr {
    SocketAddr::new(a.parse::<Ipv6Addr>().expect("address").into(), port)
}

/// Every entry of `datagrams`, built from `entries` by one builder.
fn build(syncid: u8, maxlen: usize, entries: &[Entry]) -> Vec<Vec<u8>> {
    let mut b = Builder::new(syncid, maxlen);
    let mut out: Vec<Vec<u8>> = entries
        .iter()
        .filter_map(|e| b.push(e).expect("encodable"))
        .collect();
    out.extend(b.finish());
    out
}

fn one(bytes: &[u8], syncid: u8) -> Message {
    parse(bytes, syncid).expect("accepted")
}

// ---- vectors ----

/// A version 1 message with one IPv4 TCP connection.
const TCP_V4: [u8; 44] = [
    0x00, // reserved: 0, so a version 0 receiver reads nr_conns 0
    0x07, // syncid 7
    0x00, 0x2c, // size: 44 = 8 + 36
    0x01, // nr_conns
    0x01, // version: SYNC_PROTO_VER
    0x00, 0x00, // spare
    // struct ip_vs_sync_v4
    0x00, // type 0: IPv4
    0x06, // protocol: TCP
    0x00, 0x24, // ver_size: version 0, size 36
    0x00, 0x00, 0x00, 0x00, // flags: masq
    0x00, 0x01, // state 1: ESTABLISHED
    0xc3, 0x50, // cport 50000
    0x00, 0x50, // vport 80
    0x1f, 0x90, // dport 8080
    0x00, 0x00, 0x00, 0x00, // fwmark 0
    0x00, 0x00, 0x03, 0x84, // timeout 900 s
    192, 168, 1, 10, // caddr
    10, 0, 0, 1, // vaddr
    10, 0, 1, 2, // daddr
];

fn tcp_v4() -> Entry {
    Entry {
        protocol: Some(Protocol::Tcp),
        client: v4([192, 168, 1, 10], 50000),
        vip: v4([10, 0, 0, 1], 80),
        real: v4([10, 0, 1, 2], 8080),
        fwmark: 0,
        flags: Flags(0),
        state: 1,
        timeout: 900,
        seq: None,
        pe: None,
    }
}

#[test]
fn a_v1_ipv4_tcp_connection() {
    let m = one(&TCP_V4, 0);
    assert_eq!((m.version, m.syncid), (Version::V1, 7));
    assert_eq!(m.entries, vec![tcp_v4()]);
    assert!(m.skipped.is_empty());
    let e = &m.entries[0];
    assert_eq!(e.state_name(), "ESTABLISHED");
    assert_eq!(e.flags.forward(), Some(Forward::Masq));
    assert!(!e.flags.is_template() && !e.flags.is_inactive());
    assert_eq!(build(7, MAXLEN, &[tcp_v4()]), vec![TCP_V4.to_vec()]);
}

const UDP_V6: [u8; 80] = [
    0x00, 0x01, // reserved, syncid 1
    0x00, 0x50, // size: 80 = 8 + 72
    0x01, 0x01, 0x00, 0x00, // nr_conns 1, version 1, spare
    // struct ip_vs_sync_v6
    0x01, // type: STYPE_F_INET6
    0x11, // protocol: UDP (17)
    0x00, 0x48, // ver_size: version 0, size 72
    0x00, 0x00, 0x01, 0x03, // flags: INACTIVE | DROUTE
    0x00, 0x00, // state 0: UDP
    0x30, 0x39, // cport 12345
    0x00, 0x35, // vport 53
    0x00, 0x35, // dport 53
    0x00, 0x00, 0x00, 0x00, // fwmark 0
    0x00, 0x00, 0x01, 0x2c, // timeout 300 s
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // caddr 2001:db8::10
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // vaddr 2001:db8::1
    0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, // daddr 2001:db8:1::2
];

fn udp_v6() -> Entry {
    Entry {
        protocol: Some(Protocol::Udp),
        client: v6("2001:db8::10", 12345),
        vip: v6("2001:db8::1", 53),
        real: v6("2001:db8:1::2", 53),
        fwmark: 0,
        flags: Flags(Flags::INACTIVE | 3),
        state: 0,
        timeout: 300,
        seq: None,
        pe: None,
    }
}

#[test]
fn a_v1_ipv6_udp_connection() {
    let m = one(&UDP_V6, 1);
    assert_eq!((m.version, m.syncid), (Version::V1, 1));
    assert_eq!(m.entries, vec![udp_v6()]);
    let e = &m.entries[0];
    assert_eq!(e.state_name(), "UDP");
    assert_eq!(e.flags.forward(), Some(Forward::Route));
    assert!(e.flags.is_inactive());
    assert_eq!(build(1, MAXLEN, &[udp_v6()]), vec![UDP_V6.to_vec()]);
}

/// Two templates: an fwmark service's and a TCP port's (`ip_vs_sched_persist`).
const TEMPLATES: [u8; 80] = [
    0x00, 0x02, 0x00, 0x50, // reserved, syncid 2, size 80 = 8 + 36 + 36
    0x02, 0x01, 0x00, 0x00, // nr_conns 2, version 1, spare
    // fwmark template <IPPROTO_IP, cnet, 0, fwmark, 0, daddr, 0>
    0x00, // type: IPv4
    0x00, // protocol: IPPROTO_IP
    0x00, 0x24, // size 36
    0x00, 0x00, 0x10, 0x03, // flags: TEMPLATE | DROUTE
    0x00, 0x00, // state: NONE
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // cport, vport, dport: 0
    0x00, 0x00, 0x00, 0x05, // fwmark 5
    0x00, 0x00, 0x01, 0x2c, // timeout 300 s (the service's -p)
    192, 168, 1, 0, // caddr: the client's network (-M 255.255.255.0)
    0, 0, 0, 5, // vaddr: the mark as an IPv4 address
    10, 0, 1, 2, // daddr
    // TCP port template <TCP, caddr, 0, vaddr, vport, daddr, dport>
    0x00, 0x06, 0x00, 0x24, // IPv4, TCP, size 36
    0x00, 0x00, 0x10, 0x00, // flags: TEMPLATE | masq
    0x00, 0x01, // state: ASSURED
    0x00, 0x00, // cport 0
    0x01, 0xbb, // vport 443
    0x01, 0xbb, // dport 443
    0x00, 0x00, 0x00, 0x00, // fwmark 0
    0x00, 0x00, 0x01, 0x68, // timeout 360 s
    192, 168, 1, 10, // caddr
    10, 0, 0, 1, // vaddr
    10, 0, 1, 3, // daddr
];

fn templates() -> [Entry; 2] {
    [
        Entry {
            protocol: None,
            client: v4([192, 168, 1, 0], 0),
            vip: v4([0, 0, 0, 5], 0),
            real: v4([10, 0, 1, 2], 0),
            fwmark: 5,
            flags: Flags(Flags::TEMPLATE | 3),
            state: 0,
            timeout: 300,
            seq: None,
            pe: None,
        },
        Entry {
            protocol: Some(Protocol::Tcp),
            client: v4([192, 168, 1, 10], 0),
            vip: v4([10, 0, 0, 1], 443),
            real: v4([10, 0, 1, 3], 443),
            fwmark: 0,
            flags: Flags(Flags::TEMPLATE),
            state: 1,
            timeout: 360,
            seq: None,
            pe: None,
        },
    ]
}

#[test]
fn v1_persistence_templates_fwmark_and_port() {
    let m = one(&TEMPLATES, 2);
    assert_eq!(m.entries, templates().to_vec());
    let [fwmark, port] = &m.entries[..] else {
        panic!("two entries")
    };
    assert!(fwmark.flags.is_template() && port.flags.is_template());
    assert_eq!(
        (fwmark.state_name(), port.state_name()),
        ("NONE", "ASSURED")
    );
    assert_eq!(build(2, MAXLEN, &templates()), vec![TEMPLATES.to_vec()]);
}

/// A sip template with engine data and name (46 bytes, so 2 bytes of padding), then a
/// UDP connection.
const PE_AND_PADDING: [u8; 92] = [
    0x00, 0x03, 0x00, 0x5c, // reserved, syncid 3, size 92 = 8 + 46 + 2 + 36
    0x02, 0x01, 0x00, 0x00, // nr_conns 2, version 1, spare
    0x00, 0x11, 0x00, 0x2e, // IPv4, UDP, size 46 = 36 + 2 + 3 + 2 + 3
    0x00, 0x00, 0x10, 0x00, // flags: TEMPLATE
    0x00, 0x00, // state: NONE
    0x00, 0x00, 0x13, 0xc4, 0x13, 0xc4, // cport 0, vport 5060, dport 5060
    0x00, 0x00, 0x00, 0x00, // fwmark 0
    0x00, 0x00, 0x01, 0x2c, // timeout 300 s
    192, 168, 1, 10, 10, 0, 0, 1, 10, 0, 1, 2, // caddr, vaddr, daddr
    0x02, 0x03, b'a', b'b', b'c', // IPVS_OPT_PE_DATA, 3 bytes: the Call-ID
    0x03, 0x03, b's', b'i', b'p', // IPVS_OPT_PE_NAME, 3 bytes
    0x00, 0x00, // padding: the next entry starts at 56, a multiple of 4
    0x00, 0x11, 0x00, 0x24, // IPv4, UDP, size 36
    0x00, 0x00, 0x00, 0x00, // flags: masq
    0x00, 0x00, // state: UDP
    0x13, 0xc4, 0x13, 0xc4, 0x13, 0xc4, // cport, vport, dport 5060
    0x00, 0x00, 0x00, 0x00, // fwmark 0
    0x00, 0x00, 0x01, 0x2c, // timeout 300 s
    192, 168, 1, 10, 10, 0, 0, 1, 10, 0, 1, 2, // caddr, vaddr, daddr
];

fn sip() -> [Entry; 2] {
    let template = Entry {
        protocol: Some(Protocol::Udp),
        client: v4([192, 168, 1, 10], 0),
        vip: v4([10, 0, 0, 1], 5060),
        real: v4([10, 0, 1, 2], 5060),
        fwmark: 0,
        flags: Flags(Flags::TEMPLATE),
        state: 0,
        timeout: 300,
        seq: None,
        pe: PeData::new("sip", b"abc"),
    };
    let conn = Entry {
        protocol: Some(Protocol::Udp),
        client: v4([192, 168, 1, 10], 5060),
        flags: Flags(0),
        pe: None,
        ..template.clone()
    };
    [template, conn]
}

#[test]
fn persistence_engine_options_and_alignment() {
    let m = one(&PE_AND_PADDING, 0);
    assert_eq!(m.entries, sip().to_vec());
    let pe = m.entries[0].pe.as_ref().expect("engine data");
    assert_eq!((pe.name(), pe.data()), ("sip", &b"abc"[..]));
    assert_eq!(build(3, MAXLEN, &sip()), vec![PE_AND_PADDING.to_vec()]);
}

/// A version 0 message with two entries.
const V0_TWO: [u8; 52] = [
    0x02, // nr_conns 2
    0x03, // syncid 3
    0x00, 0x34, // size 52 = 4 + 24 + 24
    // struct ip_vs_sync_conn_v0
    0x00, // reserved
    0x06, // protocol: TCP
    0x9c, 0x40, // cport 40000
    0x00, 0x50, // vport 80
    0x00, 0x50, // dport 80
    192, 168, 1, 10, // caddr
    10, 0, 0, 1, // vaddr
    10, 0, 1, 2, // daddr
    0x00, 0x03, // flags (16 bits): DROUTE
    0x00, 0x01, // state: ESTABLISHED
    0x00, 0x11, // reserved, protocol: UDP
    0x14, 0xe9, 0x00, 0x35, 0x00, 0x35, // cport 5353, vport 53, dport 53
    192, 168, 1, 11, 10, 0, 0, 1, 10, 0, 1, 3, // caddr, vaddr, daddr
    0x01, 0x00, // flags: INACTIVE
    0x00, 0x00, // state: UDP
];

#[test]
fn a_v0_message_with_two_entries() {
    let m = one(&V0_TWO, 3);
    assert_eq!((m.version, m.syncid), (Version::V0, 3));
    let tcp = Entry {
        protocol: Some(Protocol::Tcp),
        client: v4([192, 168, 1, 10], 40000),
        vip: v4([10, 0, 0, 1], 80),
        real: v4([10, 0, 1, 2], 80),
        fwmark: 0,
        flags: Flags(3),
        state: 1,
        timeout: 0,
        seq: None,
        pe: None,
    };
    let udp = Entry {
        protocol: Some(Protocol::Udp),
        client: v4([192, 168, 1, 11], 5353),
        vip: v4([10, 0, 0, 1], 53),
        real: v4([10, 0, 1, 3], 53),
        flags: Flags(Flags::INACTIVE),
        state: 0,
        ..tcp.clone()
    };
    assert_eq!(m.entries, vec![tcp, udp]);
    assert_eq!(m.entries[1].state_name(), "UDP");
}

/// Version 0 copies the sequence options in the master's memory order.
fn ne(n: u32) -> [u8; 4] {
    n.to_ne_bytes()
}

#[test]
fn a_v0_entry_with_sequence_options() {
    let head: [u8; 28] = [
        0x01, 0x00, 0x00, 0x34, // nr_conns 1, syncid 0, size 52 = 4 + 24 + 24
        0x00, 0x06, // reserved, TCP
        0x9c, 0x41, 0x00, 0x15, 0x00, 0x15, // cport 40001, vport 21, dport 21
        192, 168, 1, 10, 10, 0, 0, 1, 10, 0, 1, 2, // caddr, vaddr, daddr
        0x06, 0x00, // flags: IN_SEQ | OUT_SEQ, masq
        0x00, 0x01, // state: ESTABLISHED
    ];
    let bytes = [
        &head[..],
        &ne(1000)[..],        // in_seq.init_seq
        &ne(5)[..],           // in_seq.delta
        &ne(0)[..],           // in_seq.previous_delta
        &ne(2000)[..],        // out_seq.init_seq
        &ne(0xffff_fffb)[..], // out_seq.delta: -5
        &ne(3)[..],           // out_seq.previous_delta
    ]
    .concat();
    let m = one(&bytes, 0);
    assert_eq!(m.entries.len(), 1);
    let e = &m.entries[0];
    assert_eq!(e.flags.bits(), Flags::SEQ_MASK);
    assert!(e.flags.has_seq());
    assert_eq!(
        (e.client, e.vip),
        (v4([192, 168, 1, 10], 40001), v4([10, 0, 0, 1], 21))
    );
    assert_eq!(
        e.seq,
        Some(SeqOptions {
            in_seq: Seq {
                init_seq: 1000,
                delta: 5,
                previous_delta: 0
            },
            out_seq: Seq {
                init_seq: 2000,
                delta: 0xffff_fffb,
                previous_delta: 3
            },
        })
    );
}

#[test]
fn v1_sequence_options_are_in_network_order_and_built_as_the_kernel_places_them() {
    let mut e = tcp_v4();
    e.flags = Flags(Flags::SEQ_MASK);
    e.seq = Some(SeqOptions {
        in_seq: Seq {
            init_seq: 0x0102_0304,
            delta: 5,
            previous_delta: 6,
        },
        out_seq: Seq {
            init_seq: 7,
            delta: 8,
            previous_delta: 9,
        },
    });
    let [d] = &build(7, MAXLEN, std::slice::from_ref(&e))[..] else {
        panic!("one datagram")
    };
    assert_eq!(d.len(), 8 + 36 + 2 + 24);
    assert_eq!(&d[10..12], &[0x00, 62]); // entry size 36 + 26
    assert_eq!(&d[44..50], &[1, 24, 1, 2, 3, 4]); // IPVS_OPT_SEQ_DATA, 24, init_seq
    assert_eq!(one(d, 0).entries, vec![e]);
}

// ---- what drops a datagram ----

/// A version 1 datagram: header with `count`, then `body` as given.
fn v1(count: u8, body: &[u8]) -> Vec<u8> {
    let size = u16::try_from(HEADER_LEN + body.len()).expect("small");
    let mut d = vec![0, 7];
    d.extend_from_slice(&size.to_be_bytes());
    d.extend_from_slice(&[count, 1, 0, 0]);
    d.extend_from_slice(body);
    d
}

/// The TCP entry of [`TCP_V4`], 36 bytes.
fn tcp_entry() -> Vec<u8> {
    TCP_V4[8..].to_vec()
}

/// [`tcp_entry`] followed by `options`, its size set to match.
fn with_options(options: &[u8]) -> Vec<u8> {
    let mut e = tcp_entry();
    e.extend_from_slice(options);
    let size = u16::try_from(e.len()).expect("small");
    e[2..4].copy_from_slice(&size.to_be_bytes());
    e
}

fn dropped(bytes: &[u8]) -> Malformed {
    parse(bytes, 0).expect_err("dropped")
}

#[test]
fn shorter_than_a_header() {
    for len in 0..4 {
        assert_eq!(dropped(&TCP_V4[..len]), Malformed::Short { len });
    }
    assert_eq!(Malformed::Short { len: 0 }.reason(), "short");
}

#[test]
fn the_size_field_must_be_the_datagram_length() {
    let cut = &TCP_V4[..43];
    let e = dropped(cut);
    assert_eq!(e, Malformed::SizeMismatch { size: 44, len: 43 });
    assert_eq!(e.reason(), "bad_size");
    let mut long = TCP_V4.to_vec();
    long.push(0);
    assert_eq!(
        dropped(&long),
        Malformed::SizeMismatch { size: 44, len: 45 }
    );
}

#[test]
fn a_backup_with_a_syncid_takes_only_its_own_and_zero_takes_all() {
    let e = parse(&TCP_V4, 5).expect_err("foreign");
    assert_eq!(e, Malformed::ForeignSyncid { syncid: 7 });
    assert_eq!(e.reason(), "foreign_syncid");
    assert!(parse(&TCP_V4, 7).is_ok());
    assert!(parse(&TCP_V4, 0).is_ok());
    // Checked before the body, so a foreign datagram is foreign whatever it holds.
    let broken = v1(9, &tcp_entry());
    assert_eq!(
        parse(&broken, 5),
        Err(Malformed::ForeignSyncid { syncid: 7 })
    );
}

#[test]
fn nr_conns_promises_more_than_the_datagram_holds() {
    let e = dropped(&v1(2, &tcp_entry()));
    assert_eq!(
        e,
        Malformed::Truncated {
            index: 1,
            offset: 44
        }
    );
    assert_eq!(e.reason(), "truncated");
    // The fixed IPv4 part (36 bytes) must be there before the size is read.
    assert_eq!(
        dropped(&v1(1, &tcp_entry()[..35])),
        Malformed::Truncated {
            index: 0,
            offset: 8
        }
    );
}

#[test]
fn an_entry_size_past_the_end() {
    let mut e = tcp_entry();
    e[3] = 40;
    let m = dropped(&v1(1, &e));
    assert_eq!(
        m,
        Malformed::EntryOverrun {
            index: 0,
            offset: 8,
            size: 40
        }
    );
    assert_eq!(m.reason(), "entry_overrun");
}

#[test]
fn an_entry_version_other_than_0() {
    let mut e = tcp_entry();
    e[2] = 0x10; // version 1 in the top 4 bits, size 36
    let m = dropped(&v1(1, &e));
    assert_eq!(
        m,
        Malformed::BadVersion {
            index: 0,
            version: 1
        }
    );
    assert_eq!(m.reason(), "bad_version");
}

#[test]
fn an_entry_type_neither_ipv4_nor_ipv6() {
    let mut e = tcp_entry();
    e[0] = 2;
    let m = dropped(&v1(1, &e));
    assert_eq!(m, Malformed::BadType { index: 0, kind: 2 });
    assert_eq!(m.reason(), "bad_type");
    // Bit 0 alone decides IPv6, whatever else is set: then 36 bytes are too few.
    e[0] = 3;
    assert_eq!(
        dropped(&v1(1, &e)),
        Malformed::EntrySize {
            index: 0,
            size: 36,
            needed: 72
        }
    );
}

#[test]
fn an_entry_size_below_its_fixed_part() {
    let mut e = tcp_entry();
    e[3] = 20;
    let m = dropped(&v1(1, &e));
    assert_eq!(
        m,
        Malformed::EntrySize {
            index: 0,
            size: 20,
            needed: 36
        }
    );
    assert_eq!(m.reason(), "bad_entry_size");
    // A size of 0 too (the kernel then reads the type from the bytes that follow).
    e[3] = 0;
    assert_eq!(
        dropped(&v1(1, &e)),
        Malformed::EntrySize {
            index: 0,
            size: 0,
            needed: 36
        }
    );
}

#[test]
fn one_byte_where_an_option_header_should_be() {
    let m = dropped(&v1(1, &with_options(&[2])));
    assert_eq!(m, Malformed::OptionTruncated { index: 0 });
    assert_eq!(m.reason(), "option_truncated");
}

#[test]
fn an_option_of_length_0_or_past_its_entry() {
    let m = dropped(&v1(1, &with_options(&[2, 0])));
    assert_eq!(
        m,
        Malformed::OptionLength {
            index: 0,
            kind: 2,
            len: 0
        }
    );
    assert_eq!(m.reason(), "bad_option_length");
    // Past the entry's end even though the datagram goes on.
    let mut body = with_options(&[2, 5, b'a', b'b']);
    body.extend_from_slice(&[0; 8]);
    assert_eq!(
        dropped(&v1(1, &body)),
        Malformed::OptionLength {
            index: 0,
            kind: 2,
            len: 5
        }
    );
}

#[test]
fn sequence_options_not_24_bytes() {
    let m = dropped(&v1(1, &with_options(&[1, 4, 0, 0, 0, 0])));
    assert_eq!(m, Malformed::SeqOptionLength { index: 0, len: 4 });
    assert_eq!(m.reason(), "bad_seq_option");
}

#[test]
fn a_persistence_engine_name_over_16_bytes() {
    let mut options = vec![2, 1, b'x', 3, 17];
    options.extend_from_slice(b"seventeen-bytes!!");
    let m = dropped(&v1(1, &with_options(&options)));
    assert_eq!(m, Malformed::PeNameTooLong { index: 0, len: 17 });
    assert_eq!(m.reason(), "pe_name_too_long");
}

#[test]
fn the_same_option_twice() {
    let data_twice = with_options(&[2, 1, b'x', 2, 1, b'y']);
    let m = dropped(&v1(1, &data_twice));
    assert_eq!(m, Malformed::DuplicateOption { index: 0, kind: 2 });
    assert_eq!(m.reason(), "duplicate_option");
    let name_twice = with_options(&[3, 1, b'x', 3, 1, b'y']);
    assert_eq!(
        dropped(&v1(1, &name_twice)),
        Malformed::DuplicateOption { index: 0, kind: 3 }
    );
    // The "may be ignored" bit does not make a known option another one.
    let mut seq_twice = vec![1 | 64, 24];
    seq_twice.extend_from_slice(&[0; 24]);
    seq_twice.extend_from_slice(&[1, 24]);
    seq_twice.extend_from_slice(&[0; 24]);
    assert_eq!(
        dropped(&v1(1, &with_options(&seq_twice))),
        Malformed::DuplicateOption { index: 0, kind: 1 }
    );
}

#[test]
fn a_fault_in_a_later_entry_drops_the_earlier_ones_too() {
    let mut body = tcp_entry();
    let mut bad = tcp_entry();
    bad[0] = 4;
    body.extend_from_slice(&bad);
    assert_eq!(
        dropped(&v1(2, &body)),
        Malformed::BadType { index: 1, kind: 4 }
    );
}

#[test]
fn v0_entries_past_the_end() {
    let m = dropped(&[1, 0, 0, 4]);
    assert_eq!(
        m,
        Malformed::Truncated {
            index: 0,
            offset: 4
        }
    );
    // The second of two promised.
    let mut two = V0_TWO[..28].to_vec();
    two[3] = 28;
    assert_eq!(
        dropped(&two),
        Malformed::Truncated {
            index: 1,
            offset: 28
        }
    );
    // Sequence options announced by the flags but missing.
    let mut seq = V0_TWO[..28].to_vec();
    seq[0] = 1;
    seq[3] = 28;
    seq[24] = 0x06;
    assert_eq!(
        dropped(&seq),
        Malformed::Truncated {
            index: 0,
            offset: 4
        }
    );
}

// ---- what drops one entry ----

fn skipped(bytes: &[u8]) -> Vec<Skipped> {
    let m = one(bytes, 0);
    assert!(m.entries.is_empty(), "{:?}", m.entries);
    m.skipped
}

#[test]
fn a_protocol_ipvs_does_not_balance_or_uvs_cannot_hold() {
    for protocol in [1, 0, 50, 51] {
        let mut e = tcp_entry();
        e[1] = protocol;
        let s = skipped(&v1(1, &e));
        assert_eq!(s, vec![Skipped::UnsupportedProtocol { protocol }]);
        assert_eq!(s[0].reason(), "unsupported_protocol");
    }
    // A template of any protocol passes the kernel's checks; uvs has no GRE.
    let mut t = tcp_entry();
    t[1] = 47;
    t[6] = 0x10;
    t[9] = 0;
    assert_eq!(
        skipped(&v1(1, &t)),
        vec![Skipped::UnsupportedProtocol { protocol: 47 }]
    );
    let mut old = V0_TWO.to_vec();
    old[5] = 1;
    assert_eq!(
        one(&old, 0).skipped,
        vec![Skipped::UnsupportedProtocol { protocol: 1 }]
    );
}

#[test]
fn a_state_past_its_protocol_table() {
    let cases = [
        (6, false, 10u16, true), // TCP SYNACK
        (6, false, 11, false),
        (17, false, 0, true), // UDP
        (17, false, 1, false),
        (132, false, 13, true), // SCTP CLOSED
        (132, false, 14, false),
        (6, true, 1, true), // template ASSURED
        (6, true, 2, false),
        (0, true, 2, false),
    ];
    for (protocol, template, state, kept) in cases {
        let mut e = tcp_entry();
        e[1] = protocol;
        e[6] = if template { 0x10 } else { 0 };
        e[8..10].copy_from_slice(&state.to_be_bytes());
        let m = one(&v1(1, &e), 0);
        let want = Skipped::BadState {
            protocol,
            state,
            template,
        };
        if kept {
            assert_eq!((m.entries.len(), m.skipped), (1, vec![]));
        } else {
            assert_eq!((m.entries.len(), m.skipped), (0, vec![want]));
        }
    }
    let mut old = V0_TWO.to_vec();
    old[27] = 11;
    let m = one(&old, 0);
    assert_eq!(m.entries.len(), 1);
    assert_eq!(m.skipped[0].reason(), "bad_state");
}

#[test]
fn an_unknown_option_skips_the_entry_unless_it_may_be_ignored() {
    let s = skipped(&v1(1, &with_options(&[9, 1, 0])));
    assert_eq!(s, vec![Skipped::UnknownOption { kind: 9 }]);
    assert_eq!(s[0].reason(), "unknown_option");
    // The kernel stops reading there: a broken option after it does not drop the
    // datagram.
    assert_eq!(
        skipped(&v1(1, &with_options(&[9, 1, 0, 2, 0]))),
        vec![Skipped::UnknownOption { kind: 9 }]
    );
    let m = one(&v1(1, &with_options(&[9 | 64, 2, 0, 0])), 0);
    assert_eq!(m.entries, vec![tcp_v4()]);
    // A known one with that bit is still itself.
    let m = one(
        &v1(1, &with_options(&[2 | 64, 1, b'x', 3, 3, b's', b'i', b'p'])),
        0,
    );
    assert_eq!(m.entries[0].pe, PeData::new("sip", b"x"));
}

#[test]
fn engine_data_without_a_name_skips_a_name_without_data_is_ignored() {
    let s = skipped(&v1(1, &with_options(&[2, 1, b'x'])));
    assert_eq!(s, vec![Skipped::PeWithoutName]);
    assert_eq!(s[0].reason(), "pe_without_name");
    let m = one(&v1(1, &with_options(&[3, 3, b's', b'i', b'p'])), 0);
    assert_eq!(m.entries, vec![tcp_v4()]);
}

#[test]
fn an_engine_name_no_engine_can_have() {
    let s = skipped(&v1(1, &with_options(&[2, 1, b'x', 3, 2, 0xff, 0xfe])));
    assert_eq!(
        s,
        vec![Skipped::BadPeName {
            name: vec![0xff, 0xfe]
        }]
    );
    assert_eq!(s[0].reason(), "bad_pe_name");
    assert_eq!(
        skipped(&v1(1, &with_options(&[2, 1, b'x', 3, 1, 0]))),
        vec![Skipped::BadPeName { name: vec![] }]
    );
    // A NUL ends the name, as in the kernel's C string.
    let m = one(
        &v1(
            1,
            &with_options(&[2, 1, b'x', 3, 5, b's', b'i', b'p', 0, b'!']),
        ),
        0,
    );
    assert_eq!(m.entries[0].pe, PeData::new("sip", b"x"));
}

#[test]
fn a_skipped_entry_leaves_the_next_one() {
    let mut body = tcp_entry();
    body[9] = 99; // TCP state 99
    body.extend_from_slice(&tcp_entry());
    let m = one(&v1(2, &body), 0);
    assert_eq!(m.entries, vec![tcp_v4()]);
    assert_eq!(m.skipped.len(), 1);
}

// ---- what the kernel takes without complaint ----

#[test]
fn bytes_after_the_last_entry_are_ignored() {
    let mut body = tcp_entry();
    body.extend_from_slice(&[0xaa; 7]);
    assert_eq!(one(&v1(1, &body), 0).entries, vec![tcp_v4()]);
}

#[test]
fn a_header_not_version_1_is_version_0() {
    // Version byte 2: reserved 0 is then nr_conns 0, an empty version 0 message.
    let mut other = TCP_V4;
    other[5] = 2;
    let m = one(&other, 0);
    assert_eq!((m.version, m.entries.len()), (Version::V0, 0));
    // Spare not 0: likewise.
    let mut spare = TCP_V4;
    spare[7] = 1;
    assert_eq!(one(&spare, 0).version, Version::V0);
    // A bare version 0 header.
    let m = one(&[0, 9, 0, 4], 0);
    assert_eq!((m.version, m.syncid, m.entries.len()), (Version::V0, 9, 0));
}

// ---- the builder ----

#[test]
fn a_datagram_holds_what_fits_in_maxlen_exactly() {
    let entries = vec![tcp_v4(); 4];
    // 8 + 3 * 36 = 116: three fit exactly, the fourth opens the next datagram.
    let out = build(7, 116, &entries);
    assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![116, 44]);
    assert_eq!(out[0][4], 3);
    // One byte less: two at a time.
    let out = build(7, 115, &entries);
    assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![80, 80]);
}

#[test]
fn padding_counts_against_maxlen() {
    let [template, conn] = sip();
    // 8 + 46 + 2 + 36 = 92: one byte less and the connection goes on its own.
    assert_eq!(build(3, 92, &[template.clone(), conn.clone()]).len(), 1);
    let out = build(3, 91, &[template, conn]);
    assert_eq!(out.iter().map(Vec::len).collect::<Vec<_>>(), vec![54, 44]);
}

#[test]
fn at_most_255_entries_a_datagram() {
    let out = build(0, usize::MAX, &vec![tcp_v4(); 256]);
    assert_eq!(out.len(), 2);
    assert_eq!((out[0][4], out[0].len()), (255, 8 + 255 * 36));
    assert_eq!(out[1][4], 1);
    assert_eq!(one(&out[0], 0).entries.len(), 255);
}

#[test]
fn an_entry_longer_than_maxlen_goes_alone() {
    // As the kernel's ip_vs_sync_buff_create: max(len + header, maxlen).
    let out = build(7, 20, &[tcp_v4(), tcp_v4()]);
    assert_eq!(out, vec![TCP_V4.to_vec(), TCP_V4.to_vec()]);
}

#[test]
fn finish_returns_only_what_waits() {
    let mut b = Builder::new(1, MAXLEN);
    assert_eq!(b.finish(), None);
    assert_eq!(b.push(&udp_v6()), Ok(None));
    assert_eq!(b.pending(), 1);
    assert_eq!(b.finish(), Some(UDP_V6.to_vec()));
    assert_eq!((b.pending(), b.finish()), (0, None));
}

#[test]
fn mixed_families_are_refused_and_change_nothing() {
    let mut b = Builder::new(7, MAXLEN);
    assert_eq!(b.push(&tcp_v4()), Ok(None));
    let mut mixed = tcp_v4();
    mixed.real = v6("2001:db8::2", 80);
    assert_eq!(b.push(&mixed), Err(Unencodable::MixedFamilies));
    assert_eq!(b.finish(), Some(TCP_V4.to_vec()));
}

#[test]
fn the_hashed_flag_stays_home() {
    let mut e = tcp_v4();
    e.flags = Flags(Flags::HASHED | Flags::INACTIVE);
    let out = build(7, MAXLEN, &[e]);
    assert_eq!(&out[0][12..16], &[0, 0, 0x01, 0x00]);
}

// ---- defaults, flags, states ----

#[test]
fn flags_name_their_bits() {
    let forward: Vec<_> = (0..8).map(|m| Flags(m).forward()).collect();
    assert_eq!(
        forward,
        vec![
            Some(Forward::Masq),
            Some(Forward::Local),
            Some(Forward::Tunnel),
            Some(Forward::Route),
            None,
            None,
            None,
            None
        ]
    );
    let f = Flags(Flags::NOOUTPUT | Flags::NO_CPORT | Flags::ONE_PACKET | Flags::HASHED);
    assert!(f.no_output() && f.no_client_port() && f.one_packet() && !f.has_seq());
    let all = Flags(u32::MAX);
    assert_eq!(all.kept_by_backup(Version::V1).bits(), 0x1fa7);
    assert_eq!(all.kept_by_backup(Version::V0).bits(), !Flags::HASHED);
    assert_eq!(Flags::BACKUP_UPD_MASK, 0x0700);
}

#[test]
fn state_names_are_ipvsadms_and_numbers_go_back() {
    let names = |protocol, template: bool, states: std::ops::Range<u16>| -> Vec<&str> {
        let flags = Flags(if template { Flags::TEMPLATE } else { 0 });
        states
            .map(|state| {
                Entry {
                    protocol,
                    flags,
                    state,
                    ..tcp_v4()
                }
                .state_name()
            })
            .collect()
    };
    assert_eq!(
        names(Some(Protocol::Tcp), false, 0..12)[..],
        {
            let mut t = TCP_STATES.to_vec();
            t.push("ERR!");
            t
        }[..]
    );
    assert_eq!(names(Some(Protocol::Udp), false, 0..2), vec!["UDP", "ERR!"]);
    assert_eq!(
        names(Some(Protocol::Sctp), false, 8..9),
        vec!["ESTABLISHED"]
    );
    assert_eq!(names(None, true, 0..3), vec!["NONE", "ASSURED", "ERR!"]);
    assert_eq!(names(None, false, 7..8), vec!["NONE"]);
    // uvs's own connection states, as a master puts them on the wire.
    let tcp = [
        (State::SynRecv, 3),
        (State::Established, 1),
        (State::FinWait, 4),
        (State::CloseWait, 7),
        (State::TimeWait, 5),
        (State::Close, 6),
    ];
    for (state, number) in tcp {
        assert_eq!(
            state_number(Some(Protocol::Tcp), false, state.name()),
            Some(number)
        );
    }
    assert_eq!(
        state_number(Some(Protocol::Udp), false, State::Udp.name()),
        Some(0)
    );
    assert_eq!(state_number(None, true, "ASSURED"), Some(1));
    assert_eq!(state_number(None, false, "NONE"), None);
}

// ---- properties ----

fn socket(ipv6: bool) -> BoxedStrategy<SocketAddr> {
    let ip = if ipv6 {
        any::<[u8; 16]>().prop_map(IpAddr::from).boxed()
    } else {
        any::<[u8; 4]>().prop_map(IpAddr::from).boxed()
    };
    (ip, any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::new(ip, port))
        .boxed()
}

/// Protocol, template or not, and a state the kernel takes for them.
fn kind() -> impl Strategy<Value = (Option<Protocol>, bool, u16)> {
    let transport = prop_oneof![
        Just(Some(Protocol::Tcp)),
        Just(Some(Protocol::Udp)),
        Just(Some(Protocol::Sctp))
    ];
    prop_oneof![
        (0..11u16).prop_map(|s| (Some(Protocol::Tcp), false, s)),
        Just((Some(Protocol::Udp), false, 0)),
        (0..14u16).prop_map(|s| (Some(Protocol::Sctp), false, s)),
        (prop_oneof![Just(None), transport], 0..2u16).prop_map(|(p, s)| (p, true, s)),
    ]
}

fn seq() -> impl Strategy<Value = SeqOptions> {
    any::<[u32; 6]>().prop_map(|n| SeqOptions {
        in_seq: Seq {
            init_seq: n[0],
            delta: n[1],
            previous_delta: n[2],
        },
        out_seq: Seq {
            init_seq: n[3],
            delta: n[4],
            previous_delta: n[5],
        },
    })
}

fn pe() -> impl Strategy<Value = PeData> {
    ("[!-~]{1,16}", prop::collection::vec(any::<u8>(), 1..=255))
        .prop_filter_map("valid", |(name, data)| PeData::new(&name, &data))
}

fn entry() -> impl Strategy<Value = Entry> {
    any::<bool>()
        .prop_flat_map(|ipv6| (socket(ipv6), socket(ipv6), socket(ipv6)))
        .prop_flat_map(|addrs| {
            (
                Just(addrs),
                kind(),
                any::<(u32, u32, u32)>(),
                prop::option::of(seq()),
                prop::option::of(pe()),
            )
        })
        .prop_map(
            |(
                (client, vip, real),
                (protocol, template, state),
                (flags, fwmark, timeout),
                seq,
                pe,
            )| {
                let mut flags = flags & !(Flags::HASHED | Flags::TEMPLATE);
                if template {
                    flags |= Flags::TEMPLATE;
                }
                Entry {
                    protocol,
                    client,
                    vip,
                    real,
                    fwmark,
                    flags: Flags(flags),
                    state,
                    timeout,
                    seq,
                    pe,
                }
            },
        )
}

/// What any parse result may hold: no more entries than the datagram has room for.
fn bounded(bytes: &[u8], result: &Result<Message, Malformed>) {
    if let Ok(m) = result {
        let n = m.entries.len() + m.skipped.len();
        assert!(n <= MAX_CONNS);
        assert!(n * ENTRY_V0_LEN <= bytes.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn built_datagrams_parse_back_to_the_entries(
        entries in prop::collection::vec(entry(), 0..400),
        maxlen in (HEADER_LEN + MAX_ENTRY_LEN)..=MAX_MAXLEN,
        syncid in any::<u8>(),
    ) {
        let out = build(syncid, maxlen, &entries);
        let mut back = Vec::new();
        for (i, d) in out.iter().enumerate() {
            prop_assert!(d.len() <= maxlen);
            let m = parse(d, syncid).expect("accepted");
            prop_assert_eq!((m.version, m.syncid), (Version::V1, syncid));
            prop_assert!(m.skipped.is_empty());
            prop_assert!(!m.entries.is_empty() && m.entries.len() <= MAX_CONNS);
            // Closed only because the next entry would not fit, or the count is full.
            if let Some(next) = entries.get(back.len() + m.entries.len()).filter(|_| i + 1 < out.len()) {
                let pad = d.len().wrapping_neg() & 3;
                let len = next.wire_len().expect("one family");
                prop_assert!(d.len() + pad + len > maxlen || m.entries.len() == MAX_CONNS);
            }
            back.extend(m.entries);
        }
        prop_assert_eq!(back, entries);
    }

    #[test]
    fn any_bytes_parse_without_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 0..2048),
        fix_size in any::<bool>(),
        force_v1 in any::<bool>(),
    ) {
        // Half the time a consistent header, so that the body is read too.
        if fix_size && bytes.len() >= 8 {
            let size = u16::try_from(bytes.len()).expect("small");
            bytes[2..4].copy_from_slice(&size.to_be_bytes());
            if force_v1 {
                bytes[0] = 0;
                bytes[5] = 1;
                bytes[6] = 0;
                bytes[7] = 0;
            }
        }
        let result = parse(&bytes, 0);
        bounded(&bytes, &result);
    }

    #[test]
    fn a_damaged_datagram_parses_without_panic(
        entries in prop::collection::vec(entry(), 1..20),
        at in any::<prop::sample::Index>(),
        xor in 1..=255u8,
        cut in any::<prop::sample::Index>(),
    ) {
        let out = build(0, 65507, &entries);
        let good = &out[0];
        let mut flipped = good.clone();
        flipped[at.index(good.len())] ^= xor;
        bounded(&flipped, &parse(&flipped, 0));
        // Cut short, with the size left and with it made to match.
        let mut short = good[..cut.index(good.len())].to_vec();
        bounded(&short, &parse(&short, 0));
        if short.len() >= 4 {
            let size = u16::try_from(short.len()).expect("small");
            short[2..4].copy_from_slice(&size.to_be_bytes());
            bounded(&short, &parse(&short, 0));
        }
    }
}
