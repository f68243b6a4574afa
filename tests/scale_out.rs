//! Scale-out without shared state: several uvs directors (separate processes, each with
//! its own configuration file and control socket) that hold the same table, with the
//! mh (maglev) or sh scheduler, send each client to the same real server, whichever
//! director the client reaches and whichever VIP it asked for, and it is the server the
//! kernel's IPVS picks. The clients are 2000 loopback addresses (127.100.0.1 on), the
//! real servers A B C D at 127.77.1.1-4:8080: the very clients and servers of
//! tests/kernel/mh-in-vm.sh, which checks in a VM, client by client, that the kernel's
//! mh, sh and dh pick what uvs picks, and writes down what the kernel picked:
//! tests/fixtures/kernel-choices.txt, which every director here must match, client by
//! client.
//!
//! What the choice depends on (ip_vs_mh.c, ip_vs_sh.c): the client's address (and port
//! only with mh-port/sh-port), the real servers' addresses, ports and weights (mh: the
//! last non-zero weight), and the order of the server list, which IPVS and uvs keep
//! newest first: a file's servers are in the file's order, a server added later (`-a`,
//! a reload, a health check that brings back a server it had removed) goes first.

mod common;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::OnceLock;

use common::{Backend, Behaviour, Daemon, eventually, fixture, read_all, sighup, text, write_file};

/// How many clients ask, from 127.100.0.1 on.
const CLIENTS: u32 = 2000;
const FIRST_CLIENT: Ipv4Addr = Ipv4Addr::new(127, 100, 0, 1);
/// Client threads at once.
const THREADS: u32 = 8;

/// The real servers, by name.
const SERVERS: [(&str, &str); 4] = [
    ("A", "127.77.1.1:8080"),
    ("B", "127.77.1.2:8080"),
    ("C", "127.77.1.3:8080"),
    ("D", "127.77.1.4:8080"),
];

/// The four real servers, each answering its name, shared by the tests of this file.
fn real_servers() {
    static STARTED: OnceLock<Vec<Backend>> = OnceLock::new();
    STARTED.get_or_init(|| {
        SERVERS
            .iter()
            .map(|(name, addr)| Backend::start_on(addr, name, Behaviour::Name))
            .collect()
    });
}

fn address_of(name: char) -> &'static str {
    SERVERS
        .iter()
        .find(|(n, _)| n.starts_with(name))
        .map(|(_, a)| *a)
        .expect("a server A-D")
}

/// A director's configuration: one TCP service on `vip` with `scheduler`, and the real
/// servers named in `order` (weight 1), in that order.
fn config(vip: SocketAddr, scheduler: &str, order: &str) -> String {
    let mut file = format!("[[service]]\ntcp = \"{vip}\"\nscheduler = \"{scheduler}\"\n");
    for name in order.chars() {
        file.push_str(&format!(
            "[[service.server]]\naddress = \"{}\"\n",
            address_of(name)
        ));
    }
    file
}

/// A director: `uvs run -c DIR/NAME.toml` with that configuration, listening.
fn director(dir: &Path, name: &str, vip: SocketAddr, scheduler: &str, order: &str) -> Daemon {
    real_servers();
    let d = Daemon::start_with_file(
        &dir.join(format!("{name}.toml")),
        &config(vip, scheduler, order),
        &[],
    );
    d.wait_listening(vip);
    d
}

fn client(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(FIRST_CLIENT) + i)
}

/// What `vip` answers a connection from `from`: a server's name, or "-" when the
/// director closes or resets it without one (no server available; the reset may come
/// before the connect returns).
fn answer(vip: SocketAddr, from: Ipv4Addr) -> String {
    use std::io::ErrorKind::{ConnectionRefused, ConnectionReset};
    let mut s = match common::connect(vip, Some(&from.to_string())) {
        Ok(s) => s,
        Err(e) if matches!(e.kind(), ConnectionReset | ConnectionRefused) => return "-".into(),
        Err(e) => panic!("connect from {from} to {vip}: {e}"),
    };
    match read_all(&mut s) {
        Ok(bytes) if !bytes.is_empty() => text(&bytes),
        _ => "-".into(),
    }
}

/// The answer each of the first `n` clients gets from `vip`, by client: one connection
/// each, from [`THREADS`] threads.
fn choices(vip: SocketAddr, n: u32) -> Vec<String> {
    let mut out = vec![String::new(); n as usize];
    std::thread::scope(|scope| {
        let parts: Vec<_> = (0..THREADS)
            .map(|t| {
                scope.spawn(move || {
                    (t..n)
                        .step_by(THREADS as usize)
                        .map(|i| (i, answer(vip, client(i))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for part in parts {
            for (i, said) in part.join().expect("a client thread") {
                out[i as usize] = said;
            }
        }
    });
    out
}

/// How many clients each server got, as "A=498 B=512 ...".
fn counts(choices: &[String]) -> String {
    let mut by: BTreeMap<&str, usize> = BTreeMap::new();
    for c in choices {
        *by.entry(c.as_str()).or_default() += 1;
    }
    by.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the kernel's IPVS picked for the first `n` clients in `case` of
/// tests/kernel/mh-in-vm.sh (tests/fixtures/kernel-choices.txt).
fn kernel(case: &str, n: u32) -> Vec<String> {
    let file = std::fs::read_to_string(fixture("fixtures/kernel-choices.txt")).unwrap();
    let picks = file
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(case)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no case {case} in kernel-choices.txt"));
    assert!(picks.len() >= n as usize, "{case}: {} clients", picks.len());
    picks.chars().take(n as usize).map(String::from).collect()
}

/// The clients (by index) for which `a` and `b` differ.
fn differing(a: &[String], b: &[String]) -> Vec<usize> {
    assert_eq!(a.len(), b.len());
    (0..a.len()).filter(|&i| a[i] != b[i]).collect()
}

fn sock(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn two_mh_directors_send_every_client_to_the_same_server_through_changes() {
    let dir = tempfile::tempdir().unwrap();
    // Two VIPs: mh hashes the client's address, never the address it asked for.
    let (vip1, vip2) = (sock("127.77.0.21:8080"), sock("127.77.0.22:8080"));
    let one = director(dir.path(), "one", vip1, "mh", "ABCD");
    let two = director(dir.path(), "two", vip2, "mh", "ABCD");

    let first = choices(vip1, CLIENTS);
    assert_eq!(
        differing(&first, &choices(vip2, CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(
        differing(&first, &kernel("mh", CLIENTS)),
        Vec::<usize>::new()
    );
    // Each server a share: maglev gives each of four equal servers a quarter of its
    // 4093 slots (1024, 1023, 1023, 1023).
    assert_eq!(counts(&first), "A=502 B=497 C=495 D=506");

    // C leaves both directors: its clients go elsewhere, the same way on both. Maglev
    // rebuilds its table from the new list (ip_vs_mh_reassign): it promises that C's
    // slots are shared out among the others, not that every other slot stays, and a
    // few clients of the others move too, the same ones as in the kernel.
    for (d, vip) in [(&one, vip1), (&two, vip2)] {
        d.ok(&["-d", "-t", &vip.to_string(), "-r", address_of('C')]);
    }
    let without_c = choices(vip1, CLIENTS);
    assert_eq!(
        differing(&without_c, &choices(vip2, CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(
        differing(&without_c, &kernel("mh-without-C", CLIENTS)),
        Vec::<usize>::new()
    );
    let moved = differing(&first, &without_c);
    let of_c: Vec<usize> = (0..first.len()).filter(|&i| first[i] == "C").collect();
    assert!(
        of_c.iter().all(|i| moved.contains(i)),
        "every client of C moved"
    );
    assert!(without_c.iter().all(|c| c != "C" && c != "-"));
    assert_eq!((of_c.len(), moved.len() - of_c.len()), (495, 5));
    assert_eq!(counts(&without_c), "A=676 B=677 D=647");

    // B quiesced (weight 0, as a failed health check does by default): mh keeps its
    // slots (its last non-zero weight counts), so nobody else moves and B's clients get
    // no server (mh-fallback would re-hash them), on both directors alike.
    let quiesced = quiesce_b([(&one, vip1), (&two, vip2)], "mh-B-quiesced");
    let changed = differing(&without_c, &quiesced);
    assert!(
        changed
            .iter()
            .all(|&i| without_c[i] == "B" && quiesced[i] == "-")
    );
    assert_eq!(
        changed.len(),
        without_c.iter().filter(|c| *c == "B").count()
    );
}

#[test]
fn the_server_order_matters_and_a_reload_adds_a_server_first() {
    let dir = tempfile::tempdir().unwrap();
    let (in_order, reversed) = (sock("127.77.0.31:8080"), sock("127.77.0.32:8080"));
    let _in_order = director(dir.path(), "in-order", in_order, "mh", "ABCD");
    let _reversed = director(dir.path(), "reversed", reversed, "mh", "DCBA");
    let base = choices(in_order, CLIENTS);
    // The same servers in another order: maglev's servers take their slots in turn, in
    // list order, and where two want the same slot the first in the list gets it. The
    // kernel, its servers added so that its list reads D C B A, picks the same.
    let other = choices(reversed, CLIENTS);
    assert_eq!(
        differing(&other, &kernel("mh-reversed", CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(differing(&base, &other).len(), 6);

    // A reload that adds C in the middle of the file adds it first in the list, as
    // `ipvsadm -a` does: the director then holds C A B D, which is not what a director
    // started from the same file holds (A B C D) but is what one started from a file
    // that lists C first holds.
    let vip = sock("127.77.0.33:8080");
    let reloaded = director(dir.path(), "reloaded", vip, "mh", "ABD");
    write_file(
        &dir.path().join("reloaded.toml"),
        &config(vip, "mh", "ABCD"),
    );
    sighup(&reloaded.child);
    let listed = || reloaded.list(&["-L", "-n", "--nosort", "-t", &vip.to_string()]);
    eventually("the reload adds C", || listed().contains(address_of('C')));
    let order: Vec<String> = listed()
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("-> "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|a| a.parse::<SocketAddr>().is_ok())
        .map(str::to_string)
        .collect();
    assert_eq!(order, "CABD".chars().map(address_of).collect::<Vec<_>>());
    let c_first = sock("127.77.0.34:8080");
    let _c_first = director(dir.path(), "c-first", c_first, "mh", "CABD");
    let after_reload = choices(vip, CLIENTS);
    assert_eq!(
        differing(&after_reload, &choices(c_first, CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(
        differing(&after_reload, &kernel("mh-C-first", CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(differing(&base, &after_reload).len(), 5);
}

#[test]
fn two_sh_directors_send_every_client_to_the_same_server() {
    let dir = tempfile::tempdir().unwrap();
    let (vip1, vip2) = (sock("127.77.0.41:8080"), sock("127.77.0.42:8080"));
    let one = director(dir.path(), "one", vip1, "sh", "ABCD");
    let two = director(dir.path(), "two", vip2, "sh", "ABCD");
    let first = choices(vip1, CLIENTS);
    assert_eq!(
        differing(&first, &choices(vip2, CLIENTS)),
        Vec::<usize>::new()
    );
    // 256 buckets filled A B C D A B ..., the bucket hash_32 of the client's address:
    // what the kernel's sh picks.
    assert_eq!(
        differing(&first, &kernel("sh", CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(counts(&first), "A=501 B=500 C=498 D=501");

    // B quiesced: sh refills its buckets from the list and the weights in force, where
    // a server of weight 0 takes one bucket a turn, as it did at weight 1: nobody else
    // moves here (with heavier weights, everybody after B in the list would), and B's
    // clients get no server (sh-fallback would re-hash them), as in the kernel.
    let quiesced = quiesce_b([(&one, vip1), (&two, vip2)], "sh-B-quiesced");
    assert_eq!(counts(&quiesced), "-=500 A=501 C=498 D=501");
}

/// Real server B quiesced (weight 0) on both directors: their choices, which must be
/// the same on both and the kernel's for `kernel_case`.
fn quiesce_b(directors: [(&Daemon, SocketAddr); 2], kernel_case: &str) -> Vec<String> {
    for (d, vip) in directors {
        let vip = vip.to_string();
        d.ok(&["-e", "-t", &vip, "-r", address_of('B'), "-m", "-w", "0"]);
    }
    let quiesced = choices(directors[0].1, CLIENTS);
    assert_eq!(
        differing(&quiesced, &choices(directors[1].1, CLIENTS)),
        Vec::<usize>::new()
    );
    assert_eq!(
        differing(&quiesced, &kernel(kernel_case, CLIENTS)),
        Vec::<usize>::new()
    );
    quiesced
}
