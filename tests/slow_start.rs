//! Slow start (issue 17) over a real daemon and real servers on loopback: a real server
//! that comes back (weight from 0 to above 0, through the control socket) takes a
//! share of its picks that rises from 1/20 to all over the configured window. The
//! connections are counted in buckets by the share in force that `uvs status` reports
//! before and after each batch, never by wall-clock time, and each bucket's observed
//! share is held to what that share predicts for the scheduler. The tests measure
//! shares: they run one at a time (a lock), each with bounded traffic.

mod common;

use std::net::SocketAddr;
use std::sync::Mutex;

use common::{Backend, Behaviour, Daemon, ask, http_get, vip};

/// One share-measuring test at a time: two at once would slow each other's batches.
static SERIAL: Mutex<()> = Mutex::new(());

/// New connections per bucket.
const BATCH: usize = 40;
/// At most this many buckets per ramp (the ramp normally ends well before).
const MAX_BATCHES: usize = 400;
/// The window the tests configure.
const WINDOW: &str = "6s";

/// A daemon whose configuration file has `scheduler` on a fresh VIP with real servers
/// A and B at weight 20, and a slow start of [`WINDOW`].
fn start(scheduler: &str, a: &Backend, b: &Backend) -> (Daemon, SocketAddr) {
    let v = vip();
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("uvs.toml");
    let text = format!(
        "[[service]]\ntcp = \"{v}\"\nscheduler = \"{scheduler}\"\nslow_start = \"{WINDOW}\"\n\n\
         [[service.server]]\naddress = \"{}\"\nweight = 20\n\n\
         [[service.server]]\naddress = \"{}\"\nweight = 20\n",
        a.addr, b.addr
    );
    let d = Daemon::start_with_file(&config, &text, &[]);
    // The daemon read the file at start; the directory may go.
    drop(dir);
    d.wait_listening(v);
    (d, v)
}

/// `-e`: server `s` of `v` to `weight`, through the control socket.
fn set_weight(d: &Daemon, v: SocketAddr, s: SocketAddr, weight: &str) {
    d.set_server("-e", "-t", v, s, &["-w", weight]);
}

/// From `uvs status`: the slow-start share of server `s` in thousandths' precision of
/// its percent (None once it does not ramp), and the weight in force it lists.
fn ramp_of(d: &Daemon, s: SocketAddr) -> (Option<f64>, u32) {
    let status = d.status();
    let mut lines = status.lines();
    let server = format!("-> {s} ");
    let line = lines
        .by_ref()
        .find(|l| l.trim_start().starts_with(&server))
        .unwrap_or_else(|| panic!("no {s} in\n{status}"));
    let weight: u32 = line
        .split_whitespace()
        .skip_while(|w| *w != "weight")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no weight in {line}"));
    let share = lines.next().and_then(|l| {
        let p = l.trim().strip_prefix("slow start (")?.strip_suffix("%)")?;
        Some(p.parse::<f64>().expect("a percentage") / 100.0)
    });
    (share, weight)
}

/// A bucket: the share in force before and after a batch, and the share of the batch
/// the returning server got.
#[derive(Debug)]
struct Bucket {
    before: f64,
    after: f64,
    observed: f64,
}

impl Bucket {
    fn mid(&self) -> f64 {
        (self.before + self.after) / 2.0
    }
}

/// Batches of new connections through `v` while server `back` (answering `name`)
/// ramps, each bucketed by the share in force around it, until the ramp ends.
fn measure(d: &Daemon, v: SocketAddr, back: SocketAddr, name: &str) -> Vec<Bucket> {
    let mut buckets = Vec::new();
    let (mut before, weight) = ramp_of(d, back);
    assert!(before.is_some(), "the returning server ramps");
    assert!(
        weight < 20,
        "the listing shows the weight in force: {weight}"
    );
    for _ in 0..MAX_BATCHES {
        let Some(share) = before else { break };
        let got = (0..BATCH).filter(|_| ask(v, None) == name).count();
        let (after, weight) = ramp_of(d, back);
        // The weight in force IPVS would show: 20 × share, rounded up (at least 1).
        if let Some(now) = after {
            assert!(
                (1..=20).contains(&weight) && f64::from(weight) >= 20.0 * now - 0.01,
                "weight {weight} at {now}"
            );
        }
        buckets.push(Bucket {
            before: share,
            // A ramp that ended during the batch ended at the whole share.
            after: after.unwrap_or(1.0),
            observed: got as f64 / BATCH as f64,
        });
        before = after;
    }
    assert!(before.is_none(), "the ramp ends: {buckets:?}");
    buckets
}

/// Each bucket's share as `expected` predicts it from the share in force, within the
/// credit's one connection and the share's own move during the batch; and rising.
fn check(buckets: &[Bucket], expected: impl Fn(f64) -> f64, what: &str) {
    assert!(buckets.len() >= 3, "{what}: too few buckets {buckets:?}");
    for b in buckets {
        let spread = (expected(b.after) - expected(b.before)).abs() / 2.0;
        let tolerance = spread + 2.0 / BATCH as f64 + 0.02;
        assert!(
            (b.observed - expected(b.mid())).abs() <= tolerance,
            "{what}: bucket {b:?} expected {:.3} ± {tolerance:.3}; all: {buckets:#?}",
            expected(b.mid())
        );
    }
    check_rising(buckets);
}

#[test]
fn a_returning_server_takes_a_rising_share_with_round_robin() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = Backend::pair(Behaviour::Name);
    let (d, v) = start("rr", &a, &b);
    // Started with the daemon: no ramp (HAProxy's slowstart never applies at start).
    assert_eq!(ramp_of(&d, a.addr).0, None);
    assert_eq!(ramp_of(&d, b.addr).0, None);
    set_weight(&d, v, a.addr, "0");
    assert!((0..10).all(|_| ask(v, None) == "B"));
    set_weight(&d, v, a.addr, "20");
    // The metric says the ramp too, while it lasts.
    let (_, page) = http_get(d.metrics_address(), "GET", "/metrics");
    let port = format!("remote_port=\"{}\"", a.addr.port());
    let sample = page
        .lines()
        .find(|l| l.starts_with("uvs_backend_slow_start_ratio{") && l.contains(&port))
        .unwrap_or_else(|| panic!("no slow-start share of A in\n{page}"));
    let value: f64 = sample.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(value > 0.0 && value < 1.0, "{sample}");
    // rr picks A every other connection and A takes the share in force of those picks:
    // its share of the connections is half the share in force.
    let buckets = measure(&d, v, a.addr, "A");
    check(&buckets, |share| share / 2.0, "rr");
    // Over: the whole weight, and A gets every other connection again.
    assert_eq!(
        d.servers(v).iter().map(|s| s.1).collect::<Vec<_>>(),
        [20, 20]
    );
    let after: String = (0..10).map(|_| ask(v, None)).collect();
    assert_eq!(after.matches('A').count(), 5, "{after}");
}

#[test]
fn a_returning_server_is_not_flooded_with_least_connection() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = Backend::pair(Behaviour::Name);
    let (d, v) = start("wlc", &a, &b);
    set_weight(&d, v, a.addr, "0");
    // B gathers entries (inactive, in TIME_WAIT) while A is out: back, A is the least
    // loaded by far, and wlc alone would send it every new connection.
    assert!((0..40).all(|_| ask(v, None) == "B"));
    set_weight(&d, v, a.addr, "20");
    let buckets = measure(&d, v, a.addr, "A");
    // wlc picks A nearly every time while it is far less loaded (without the ramp it
    // would take nearly all of them): A's share of the connections is the share in
    // force, at most.
    for b in &buckets {
        assert!(
            b.observed <= b.after + 2.0 / BATCH as f64 + 0.02,
            "wlc: bucket {b:?} over the share in force; all: {buckets:#?}"
        );
    }
    check_rising(&buckets);
}

/// The observed share rises over the ramp (first half against second half).
fn check_rising(buckets: &[Bucket]) {
    assert!(buckets.len() >= 3, "too few buckets {buckets:?}");
    let half = buckets.len() / 2;
    let mean = |bs: &[Bucket]| bs.iter().map(|b| b.observed).sum::<f64>() / bs.len() as f64;
    assert!(
        mean(&buckets[..half]) < mean(&buckets[half..]),
        "the share rises: {buckets:#?}"
    );
}

#[test]
fn a_server_added_to_a_running_service_ramps_and_one_of_a_new_service_does_not() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (a, b) = Backend::pair(Behaviour::Name);
    let (d, v) = start("rr", &a, &b);
    let c = Backend::start("C", Behaviour::Name);
    d.set_server("-a", "-t", v, c.addr, &["-w", "20"]);
    let (share, weight) = ramp_of(&d, c.addr);
    assert!(share.is_some_and(|s| s < 1.0), "{share:?}");
    assert!(weight < 20, "{weight}");
    assert!(d.status().contains("slow start ("));
    // The file's servers came with the service: no ramp.
    assert_eq!(ramp_of(&d, a.addr).0, None);
}
