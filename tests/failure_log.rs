//! What the daemon logs at its default level (info) of traffic that fails: a real
//! server refusing connections, and clients resetting theirs. The first is logged at
//! once with its cause; the rest are summed up, with their count, once the interval
//! (ten seconds) is over: one line, not one per connection. Over a real daemon and real
//! sockets on loopback; the daemon's log is its stderr (`Daemon::start_logged`). What
//! a server or service held back when it leaves the table (deleted by uvsadm, a
//! reload or a health check) is summed up at once, not lost; and a service is named
//! the same way (its key) in the first line and in the summary.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{Backend, Behaviour, Daemon, connect, echoed, free_udp_port, refusing_port, vip};

/// Connections in each test: more than one line's worth.
const CONNECTIONS: usize = 12;

/// The log lines of `d` that contain every one of `words`.
fn lines_with(d: &Daemon, words: &[&str]) -> Vec<String> {
    d.log()
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_string)
        .collect()
}

/// Waits (bounded: the summary comes ten seconds after the first line, and the
/// sweeper writes it within a second more) until a line with every one of `words` is
/// logged, and returns it.
fn wait_for_line(d: &Daemon, words: &[&str]) -> String {
    within_a_minute(d, || {
        lines_with(d, words)
            .pop()
            .ok_or_else(|| format!("no line with {words:?} in the log"))
    })
}

/// Calls `step` every 100 ms until it gives a value, for a minute at most; past that,
/// fails with what its last error says and the daemon's log.
fn within_a_minute<T>(d: &Daemon, mut step: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match step() {
            Ok(found) => return found,
            Err(why) => assert!(Instant::now() < deadline, "{why}:\n{}", d.log()),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The count a summary line gives: the number before its " more ".
fn count_of(line: &str) -> usize {
    line.split(" more ")
        .next()
        .and_then(|head| head.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line}"))
}

/// Waits (bounded) until the summaries with every one of `words` (each also has " more
/// ") count `total` between them, and returns them, each checked by `each` with its own
/// count. Usually one line; two when the traffic straddled an interval (a loaded
/// machine), which is the limit working, not failing.
fn summed_up(d: &Daemon, words: &[&str], total: usize, each: impl Fn(&str, usize)) -> Vec<String> {
    within_a_minute(d, || {
        let lines: Vec<String> = lines_with(d, words)
            .into_iter()
            .filter(|l| l.contains(" more "))
            .collect();
        let sum: usize = lines.iter().map(|l| count_of(l)).sum();
        assert!(sum <= total, "more than {total} counted: {lines:#?}");
        if sum != total {
            return Err(format!("summaries with {words:?} count {sum} of {total}"));
        }
        assert!(lines.len() <= 3, "summed up line by line: {lines:#?}");
        for line in &lines {
            each(line, count_of(line));
        }
        Ok(lines)
    })
}

/// The lines with every one of `words`: one first line, then `summaries`.
fn first_then_summaries(d: &Daemon, words: &[&str], summaries: &[String]) -> Vec<String> {
    let said = lines_with(d, words);
    assert_eq!(
        said.len(),
        1 + summaries.len(),
        "one first line, then summaries: {said:#?}"
    );
    said
}

/// Waits (bounded) for the summaries of the `CONNECTIONS - 1` resets of connections to
/// `v` after the first, by `whom` ("clients", "real servers"), each at `level` (" INFO
/// "); returns them.
fn resets_summed_up(d: &Daemon, v: SocketAddr, level: &str, whom: &str) -> Vec<String> {
    resets_summed_up_over(d, v, level, whom, " in the last ")
}

/// As `resets_summed_up`, each summary saying `span` after whom (" in the last ", or
/// " " for any).
fn resets_summed_up_over(
    d: &Daemon,
    v: SocketAddr,
    level: &str,
    whom: &str,
    span: &str,
) -> Vec<String> {
    summed_up(
        d,
        &[&format!("tcp {v}: "), "more connection"],
        CONNECTIONS - 1,
        |summary, n| {
            assert!(summary.contains(level), "{summary}");
            assert!(
                summary.contains(&format!(
                    "tcp {v}: {n} more connection{} reset by {whom}{span}",
                    if n == 1 { "" } else { "s" }
                )),
                "{summary}"
            );
        },
    )
}

/// How many connects to `server` were refused, as `uvs status` counts them.
fn refused_count(d: &Daemon, server: SocketAddr) -> u64 {
    let status = d.status();
    let line = status
        .lines()
        .find(|l| l.contains(&server.to_string()) && l.contains("failed connects"))
        .unwrap_or_else(|| panic!("no line for {server} in:\n{status}"));
    line.split("(refused ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no refused count in {line}"))
}

/// A logging daemon with an rr service `v` over a refusing real server `dead` and a
/// live one, after `CONNECTIONS` clients, every one served; `refused` is how many
/// connects `dead` refused (at least two).
struct Refusing {
    d: Daemon,
    live: Backend,
    /// Bound, not listening: connections to it are refused.
    _dead_socket: socket2::Socket,
    dead: SocketAddr,
    v: SocketAddr,
    refused: u64,
}

impl Refusing {
    fn start() -> Self {
        let d = Daemon::start_logged(&[]);
        let live = Backend::start("A", Behaviour::Name);
        let (_dead_socket, dead) = refusing_port();
        let v = vip();
        d.add_service("-t", v, &["-s", "rr"]);
        for server in [dead, live.addr] {
            d.set_server("-a", "-t", v, server, &[]);
        }
        d.wait_listening(v);
        for _ in 0..CONNECTIONS {
            // A refused connect is retried on the live server: every client is served.
            assert_eq!(common::ask(v, None), "A");
        }
        let refused = refused_count(&d, dead);
        assert!(refused >= 2, "rr sent more than one connection to {dead}");
        Self {
            d,
            live,
            _dead_socket,
            dead,
            v,
            refused,
        }
    }
}

#[test]
fn a_refusing_real_server_is_logged_once_with_its_cause_then_summed_up() {
    let Refusing {
        d,
        live,
        _dead_socket,
        dead,
        v,
        refused,
    } = Refusing::start();
    let first = format!(
        "real server {dead} of tcp {v}: connect failed: connection refused (further failures \
         of this server are summed up at most every 10 s)"
    );
    let more = usize::try_from(refused).unwrap() - 1;
    let summaries = summed_up(
        &d,
        &[&format!("real server {dead} of tcp {v}: ")],
        more,
        |summary, n| {
            assert!(summary.contains(" WARN "), "{summary}");
            let secs = summary
                .rsplit("in the last ")
                .next()
                .and_then(|s| s.strip_suffix(" s"))
                .unwrap_or("?");
            assert!(
                summary.ends_with(&format!(
                    "real server {dead} of tcp {v}: {n} more connect failure{} (refused {n}) in \
                     the last {secs} s",
                    if n == 1 { "" } else { "s" }
                )),
                "{summary}"
            );
        },
    );
    let said = first_then_summaries(
        &d,
        &[&format!("real server {dead} of tcp {v}: ")],
        &summaries,
    );
    assert!(said[0].contains(" WARN "), "{}", said[0]);
    assert!(said[0].ends_with(&first), "{}", said[0]);
    // The live server failed nothing, and is not named.
    assert!(lines_with(&d, &[&format!("real server {}", live.addr)]).is_empty());
}

#[test]
fn clients_that_reset_are_logged_once_then_summed_up() {
    let (d, echo, v) = reset_by_clients_of_echo();
    let summaries = resets_summed_up(&d, v, " INFO ", "clients");
    let said = first_then_summaries(&d, &[&format!("tcp {v}: "), "reset by"], &summaries);
    assert!(
        said[0].contains(&format!("tcp {v}: connection from 127.0.0.1:"))
            && said[0].contains(&format!(
                "to real server {} reset by the client: Connection reset by peer (os error 104) \
                 (further resets by clients are summed up at most every 10 s)",
                echo.addr
            )),
        "{}",
        said[0]
    );
}

/// A real server that answers a connection's first bytes with a byte, and closes it
/// with a reset.
fn resetting_server() -> SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for _ in 0..CONNECTIONS {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut first = [0u8; 2];
            let _ = s.read_exact(&mut first);
            let _ = s.write_all(b"x");
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
    });
    addr
}

#[test]
fn a_real_server_that_resets_is_logged_once_then_summed_up() {
    use std::io::{Read, Write};
    let d = Daemon::start_logged(&[]);
    let server = resetting_server();
    let v = vip();
    d.add_service("-t", v, &["-s", "rr"]);
    d.set_server("-a", "-t", v, server, &[]);
    d.wait_listening(v);
    for _ in 0..CONNECTIONS {
        let mut s = connect(v, None).expect("connect to the VIP");
        s.write_all(b"hi").expect("write to the VIP");
        // The byte, then the reset passed on: until then the connection is open.
        let _ = s.read_to_end(&mut Vec::new());
    }
    let summaries = resets_summed_up(&d, v, " WARN ", "real servers");
    let said = first_then_summaries(&d, &[&format!("tcp {v}: "), "reset by"], &summaries);
    assert!(
        said[0].contains(" WARN ")
            && said[0].contains(&format!(
                "to real server {server} reset by the real server: Connection reset by peer \
                 (os error 104) (further resets by real servers are summed up at most every 10 s)"
            )),
        "{}",
        said[0]
    );
}

/// A logging daemon with an rr service `v` over one echo server, after
/// `reset_by_clients(v)`: the daemon, the echo server and `v`.
fn reset_by_clients_of_echo() -> (Daemon, Backend, SocketAddr) {
    let d = Daemon::start_logged(&[]);
    let echo = Backend::start("E", Behaviour::Echo);
    let v = vip();
    d.add_service("-t", v, &["-s", "rr"]);
    d.set_server("-a", "-t", v, echo.addr, &[]);
    d.wait_listening(v);
    reset_by_clients(v);
    (d, echo, v)
}

/// Closes `CONNECTIONS` connections to `v` with a reset, as clients that go away do.
fn reset_by_clients(v: SocketAddr) {
    for _ in 0..CONNECTIONS {
        let mut s = connect(v, None).expect("connect to the VIP");
        // Through to the real server and back: the connection is established.
        assert_eq!(echoed(&mut s, b"ping"), b"ping");
        // Closed with a reset (RST), as a client that goes away does.
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s);
    }
}

#[test]
fn a_deleted_real_server_s_held_failures_are_summed_up_when_it_goes() {
    let Refusing {
        d,
        live: _live,
        _dead_socket,
        dead,
        v,
        refused,
    } = Refusing::start();
    // Gone before its interval is over, as a health check's removal does it.
    d.ok(&["-d", "-t", &v.to_string(), "-r", &dead.to_string()]);
    let more = usize::try_from(refused).unwrap() - 1;
    let summaries = summed_up(
        &d,
        &[&format!("real server {dead} of tcp {v}: ")],
        more,
        |summary, n| {
            assert!(summary.contains(" WARN "), "{summary}");
            assert!(
                summary.contains(&format!(
                    "real server {dead} of tcp {v}: {n} more connect failure{} (refused {n}) ",
                    if n == 1 { "" } else { "s" }
                )),
                "{summary}"
            );
        },
    );
    // The last word is said at the removal, over the whole time held, not "in the last
    // 0 s" (review 9c); a sweep on a slow machine may have summed some up before.
    let last = summaries.last().expect("a summary");
    assert!(last.ends_with(" before it was removed"), "{last}");
    for earlier in &summaries[..summaries.len() - 1] {
        assert!(earlier.contains(" in the last "), "{earlier}");
    }
    first_then_summaries(
        &d,
        &[&format!("real server {dead} of tcp {v}: ")],
        &summaries,
    );
}

#[test]
fn a_deleted_service_s_held_resets_are_summed_up_when_it_goes() {
    let (d, _echo, v) = reset_by_clients_of_echo();
    // Each reset is counted when the daemon's side of the connection sees it, before
    // the connection leaves the table: once none is open, all are counted.
    common::eventually("the connections are closed", || {
        d.status().contains(", 0 open connections")
    });
    // Gone before its interval is over.
    d.ok(&["-D", "-t", &v.to_string()]);
    let summaries = resets_summed_up_over(&d, v, " INFO ", "clients", " ");
    // The last word is said at the removal, over the whole time held (review 9c); a
    // sweep on a slow machine may have summed some up before.
    let last = summaries.last().expect("a summary");
    assert!(last.ends_with(" before the service was removed"), "{last}");
    for earlier in &summaries[..summaries.len() - 1] {
        assert!(earlier.contains(" in the last "), "{earlier}");
    }
}

#[test]
fn a_udp_service_is_named_by_its_key_in_the_first_line_and_the_summary() {
    use std::net::UdpSocket;
    let d = Daemon::start_logged(&[]);
    let listen = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    // A port nobody listens on: the kernel answers with ICMP port unreachable.
    let closed = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
    d.ok(&["-A", "-f", "7", "-s", "rr"]);
    d.ok(&["-a", "-f", "7", "-r", &closed.to_string(), "-m"]);
    d.ok(&["--add-listener", "-u", &listen.to_string(), "--mark", "7"]);
    d.wait_listening_on("udp", listen);
    let c = UdpSocket::bind("127.0.0.1:0").expect("client bind");
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let first = format!(
        "real server {closed} of fwmark 7: connect failed: connection refused (ICMP port \
         unreachable)"
    );
    // Each datagram's flow is refused; a few more after the first line, to be summed
    // up (bounded: 200 datagrams, each waited on for 100 ms at most).
    let mut after_first = 0;
    for _ in 0..200 {
        c.send_to(b"who", listen).expect("send to the VIP");
        let _ = c.recv_from(&mut [0u8; 16]);
        if !lines_with(&d, &[&first]).is_empty() {
            after_first += 1;
            if after_first == 5 {
                break;
            }
        }
    }
    let said = lines_with(&d, &[&first]);
    assert_eq!(
        said.len(),
        1,
        "the first refusal, named by the service's key:\n{}",
        d.log()
    );
    let summary = wait_for_line(&d, &[&format!("real server {closed} of "), "more connect"]);
    assert!(
        summary.contains(&format!("real server {closed} of fwmark 7: ")),
        "{summary}"
    );
}
