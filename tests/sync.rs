//! uvs's own connection-sync daemons on loopback: a master's persistence templates
//! reach a backup, which then sends each client to the real server its template names;
//! hostile or malformed sync datagrams are dropped, counted by reason, and change
//! nothing. Multicast stays on lo (224.0.0.0/24 is link-local and the TTL is 1), on a
//! port of the test's own.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use common::{Daemon, free_port};
use uvs::sync::wire::{Builder, Entry, Flags};

const GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
const CLIENTS: u8 = 200;

/// A real server that answers every connection with its name.
fn identity_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a real server");
    let at = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(name.as_bytes());
        }
    });
    at
}

/// Connects from `source` to `to`; the real server's name.
fn ask(source: Ipv4Addr, to: SocketAddr) -> String {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
        .expect("a client socket");
    socket
        .bind(&SocketAddr::from((source, 0)).into())
        .expect("bind the client's address");
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .expect("connect");
    let mut stream: std::net::TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut name = String::new();
    stream.read_to_string(&mut name).expect("the server's name");
    name
}

fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 10, 0, i)
}

/// A director with the persistent fwmark service 1 (rr, 600 s) over `servers`, reached
/// at `listen`.
fn director(listen: SocketAddr, servers: &[SocketAddr]) -> Daemon {
    let d = Daemon::start_logged(&[]);
    d.ok(&["-A", "-f", "1", "-s", "rr", "-p", "600"]);
    for s in servers {
        d.ok(&["-a", "-f", "1", "-r", &s.to_string(), "-m"]);
    }
    d.ok(&["--add-listener", "-t", &listen.to_string(), "--mark", "1"]);
    d.wait_listening(listen);
    d
}

/// (client, real server) of every template `-L -c -n` lists (the entries in state
/// NONE or ASSURED).
fn templates(d: &Daemon) -> BTreeMap<String, String> {
    d.list(&["-L", "-c", "-n"])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(|w| w.len() == 6 && matches!(w[2], "NONE" | "ASSURED"))
        .map(|w| {
            let client = w[3].split(':').next().unwrap_or_default();
            (client.to_string(), w[5].to_string())
        })
        .collect()
}

/// The clients of the connection entries (not templates) `-L -c -n` lists to `vip`.
fn conn_clients(d: &Daemon, vip: SocketAddr) -> std::collections::BTreeSet<String> {
    let vip = vip.to_string();
    d.list(&["-L", "-c", "-n"])
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<&str>>())
        .filter(|w| w.len() == 6 && w[0] == "TCP" && w[4] == vip)
        .filter_map(|w| Some(w[3].split(':').next()?.to_string()))
        .collect()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_masters_templates_reach_the_backup_and_send_its_clients_to_the_same_servers() {
    let servers = [
        identity_server("rs1"),
        identity_server("rs2"),
        identity_server("rs3"),
    ];
    let port = free_port();
    let (master_vip, backup_vip) = (
        SocketAddr::from(([127, 0, 0, 41], port)),
        SocketAddr::from(([127, 0, 0, 42], port)),
    );
    let master = director(master_vip, &servers);
    let backup = director(backup_vip, &servers);
    let mcast_port = free_port().to_string();
    let daemon = |role: &str| {
        vec![
            "--start-daemon",
            role,
            "--mcast-interface",
            "lo",
            "--syncid",
            "9",
            "--mcast-port",
        ]
        .into_iter()
        .map(String::from)
        .chain([mcast_port.clone()])
        .collect::<Vec<_>>()
    };
    let args = daemon("backup");
    backup.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let args = daemon("master");
    master.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        backup.list(&["-L", "-n", "--daemon"]),
        format!(
            "backup sync daemon (mcast=lo, syncid=9, maxlen=65507, group=224.0.0.81, \
             port={mcast_port}, ttl=1)\n"
        )
    );

    // Every client on the master: rr spreads them, each gets a template.
    let mut chosen = BTreeMap::new();
    for i in 1..=CLIENTS {
        chosen.insert(client(i), ask(client(i), master_vip));
    }
    let spread: std::collections::BTreeSet<&String> = chosen.values().collect();
    assert_eq!(spread.len(), 3, "rr used every server: {chosen:?}");
    let on_master = templates(&master);
    assert_eq!(on_master.len(), usize::from(CLIENTS));

    // The backup holds the same templates: same clients, same real servers.
    wait_for("the backup's templates", || {
        templates(&backup).len() == usize::from(CLIENTS)
    });
    assert_eq!(templates(&backup), on_master);
    // And the master's connections: each carries the service's mark, as the kernel's
    // (cp->fwmark), by which the backup finds fwmark service 1; none is dropped for
    // want of a service.
    let every_client: std::collections::BTreeSet<String> =
        (1..=CLIENTS).map(|i| client(i).to_string()).collect();
    wait_for("the backup's connections", || {
        conn_clients(&backup, master_vip) == every_client
    });
    assert_eq!(dropped(&backup.status(), "no_service"), 0);

    // A client that fails over to the backup goes to its template's server.
    for i in 1..=CLIENTS {
        assert_eq!(
            ask(client(i), backup_vip),
            chosen[&client(i)],
            "client {} on the backup",
            client(i)
        );
    }
    let status = backup.status();
    assert!(
        status.contains("last master 127.0.0.1:"),
        "the backup names its master: {status}"
    );
    let status = master.status();
    assert!(status.contains("master sync daemon (mcast=lo"), "{status}");
    let sent: u64 = status
        .lines()
        .find_map(|l| {
            l.strip_prefix("sync: sent ")?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    // 200 connections and their templates, at most 36-byte entries in 1472 bytes.
    assert!(sent >= 10, "the master sent its entries: {status}");

    // Stopped, the master sends nothing more: new clients make no template there.
    master.ok(&["--stop-daemon", "master"]);
    assert_eq!(master.list(&["-L", "-n", "--daemon"]), "");
    let late = Ipv4Addr::new(127, 10, 1, 1);
    ask(late, master_vip);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!templates(&backup).contains_key(&late.to_string()));
}

/// Sends `datagram` to the group on lo, as a master on this host would.
fn send(socket: &UdpSocket, port: u16, datagram: &[u8]) {
    socket
        .send_to(datagram, SocketAddrV4::new(GROUP, port))
        .expect("send a datagram");
}

fn template(client: Ipv4Addr, real: SocketAddr) -> Entry {
    Entry {
        protocol: None,
        client: SocketAddr::from((client, 0)),
        vip: SocketAddr::from(([0, 0, 0, 1], 0)),
        real,
        fwmark: 1,
        flags: Flags(Flags::TEMPLATE),
        state: 0,
        timeout: 600,
        seq: None,
        pe: None,
    }
}

fn datagram(syncid: u8, entries: &[Entry]) -> Vec<u8> {
    let mut b = Builder::new(syncid, 1472);
    for e in entries {
        assert!(b.push(e).expect("encodable").is_none());
    }
    b.finish().expect("a datagram")
}

#[test]
fn malformed_and_foreign_sync_datagrams_are_dropped_counted_and_change_nothing() {
    let servers = [identity_server("rs1"), identity_server("rs2")];
    let vip = SocketAddr::from(([127, 0, 0, 43], free_port()));
    let backup = director(vip, &servers);
    let port = free_port();
    backup.ok(&[
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "lo",
        "--syncid",
        "9",
        "--mcast-port",
        &port.to_string(),
    ]);
    let before = backup.list(&["-L", "-n"]);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("a sender");
    socket
        .set_multicast_loop_v4(true)
        .expect("IP_MULTICAST_LOOP");

    let good = datagram(9, &[template(client(1), servers[0])]);
    // A foreign sync id, a template for a service the backup lacks, one for a server
    // it lacks, a datagram cut short, its size field wrong, and 2 000 random ones.
    let foreign = datagram(3, &[template(client(2), servers[0])]);
    let mut no_service = template(client(3), servers[0]);
    no_service.fwmark = 2;
    let no_service = datagram(9, &[no_service]);
    let no_server = datagram(9, &[template(client(4), "127.0.0.1:9".parse().unwrap())]);
    let mut wrong_size = good.clone();
    wrong_size[3] ^= 1;
    for d in [
        &foreign,
        &no_service,
        &no_server,
        &good[..good.len() - 1].to_vec(),
        &wrong_size,
    ] {
        send(&socket, port, d);
    }
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for n in 0..2000 {
        let len = (n % 300) + 1;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        // Half of them keep a valid header, so the entries' checks are reached.
        let mut bytes = bytes;
        if n % 2 == 0 && len >= 8 {
            bytes[..8].copy_from_slice(&good[..8]);
            bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        }
        send(&socket, port, &bytes);
        // Paced: loopback's receive backlog (1 000 packets a CPU) is shared with the
        // other tests' sync traffic, which a burst would push out.
        if n % 50 == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // Then one good datagram: it is applied, so the pipe works.
    send(&socket, port, &good);
    wait_for("the good template", || {
        templates(&backup).contains_key(&client(1).to_string())
    });
    assert_eq!(templates(&backup).len(), 1, "only the good template");
    assert_eq!(backup.list(&["-L", "-n"]), before, "the table is unchanged");
    let status = backup.status();
    for reason in ["foreign_syncid", "no_service", "no_server", "bad_size"] {
        assert!(dropped(&status, reason) >= 1, "{reason} counted: {status}");
    }
    let (_, metrics) = common::http_get(backup.metrics_address(), "GET", "/metrics");
    assert!(
        metrics.contains("uvs_sync_dropped_total{reason=\"foreign_syncid\"}")
            && metrics.contains("uvs_sync_received_entries_total 1\n"),
        "the scrape counts them: {metrics}"
    );
    // The good one came last and arrived: the client goes to its template's server.
    assert_eq!(ask(client(1), vip), "rs1");
}

/// The count of `reason` on `uvs status`'s "sync dropped:" line.
fn dropped(status: &str, reason: &str) -> u64 {
    status
        .lines()
        .find_map(|l| l.trim().strip_prefix("sync dropped: "))
        .and_then(|l| {
            l.split(", ")
                .find_map(|r| r.strip_prefix(reason)?.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// A director with the persistent TCP service `vip` (rr, 600 s) over `servers`; it
/// may not get the address while another director holds it (it retries).
fn tcp_director(vip: SocketAddr, servers: &[SocketAddr]) -> Daemon {
    let d = Daemon::start_logged(&[]);
    d.ok(&["-A", "-t", &vip.to_string(), "-s", "rr", "-p", "600"]);
    for s in servers {
        d.ok(&["-a", "-t", &vip.to_string(), "-r", &s.to_string(), "-m"]);
    }
    d
}

#[test]
fn a_client_keeps_its_real_server_when_the_backup_takes_over_the_address() {
    let servers = [
        identity_server("rs1"),
        identity_server("rs2"),
        identity_server("rs3"),
    ];
    let vip = SocketAddr::from(([127, 0, 0, 44], free_port()));
    let master = tcp_director(vip, &servers);
    master.wait_listening(vip);
    // The backup has the same service; the address is the master's while it runs.
    let backup = tcp_director(vip, &servers);
    let port = free_port().to_string();
    for (d, role) in [(&backup, "backup"), (&master, "master")] {
        d.ok(&[
            "--start-daemon",
            role,
            "--mcast-interface",
            "lo",
            "--mcast-port",
            &port,
        ]);
    }
    let clients: Vec<Ipv4Addr> = (1..=60).map(|i| Ipv4Addr::new(127, 10, 2, i)).collect();
    let chosen: Vec<String> = clients.iter().map(|&c| ask(c, vip)).collect();
    assert_eq!(
        chosen
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        3,
        "rr used every server"
    );
    let on_master = templates(&master);
    assert_eq!(on_master.len(), clients.len());
    let start = Instant::now();
    while templates(&backup) != on_master && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        templates(&backup),
        on_master,
        "the backup's templates; its status:\n{}",
        backup.status()
    );

    // The master goes; the backup takes the address (it retries every 2 s) and sends
    // every client where the master did.
    drop(master);
    wait_for("the backup listening", || {
        std::net::TcpStream::connect_timeout(&vip, Duration::from_millis(200)).is_ok()
    });
    let listed = backup.list(&["-L", "-c", "-n"]);
    for (c, was) in clients.iter().zip(&chosen) {
        assert_eq!(
            &ask(*c, vip),
            was,
            "client {c} after the takeover; the backup listed:\n{listed}"
        );
    }
}

#[test]
fn a_daemon_that_cannot_get_its_port_is_refused_at_once() {
    let d = Daemon::start_logged(&[]);
    let port = free_port();
    // Another program holds the group's port without SO_REUSEADDR.
    let squatter = UdpSocket::bind(SocketAddrV4::new(GROUP, port)).expect("hold the port");
    let start = [
        "--start-daemon",
        "backup",
        "--mcast-interface",
        "lo",
        "--mcast-port",
        &port.to_string(),
    ];
    let out = d.uvsadm(&start);
    assert_eq!(out.status.code(), Some(255));
    let said = common::text(&out.stderr);
    assert!(
        said.starts_with("cannot run the backup sync daemon on lo: bind: Address already in use"),
        "{said}"
    );
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "", "nothing is listed");
    drop(squatter);
    d.ok(&start);
    assert!(
        d.list(&["-L", "-n", "--daemon"])
            .starts_with("backup sync daemon (mcast=lo")
    );
}

#[test]
fn a_file_daemon_that_cannot_get_its_port_is_shown_down_and_tried_again() {
    let port = free_port();
    let squatter = UdpSocket::bind(SocketAddrV4::new(GROUP, port)).expect("hold the port");
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("uvs.toml");
    let d = Daemon::start_with_file(
        &file,
        &format!("[sync]\nrole = \"backup\"\ninterface = \"lo\"\nport = {port}\n"),
        &[],
    );
    let scrape = || common::http_get(d.metrics_address(), "GET", "/metrics").1;
    wait_for("the daemon shown down", || {
        d.status()
            .contains("the backup sync daemon is not running: bind: Address already in use")
    });
    assert!(scrape().contains("uvs_sync_daemon_up{role=\"backup\"} 0\n"));
    drop(squatter);
    wait_for("the daemon running", || {
        scrape().contains("uvs_sync_daemon_up{role=\"backup\"} 1\n")
    });
    assert!(!d.status().contains("is not running"));
}

#[test]
fn an_interface_name_that_is_not_utf8_is_refused_naming_the_option_from_argv_and_restore() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    use std::process::{Command, Stdio};
    let d = Daemon::start_logged(&[]);
    let said = "illegal mcast-interface `lo\\xff' specified: the name's first 15 bytes (what \
                ipvsadm keeps of it) are not UTF-8, and uvs keeps interface names as text\n";
    let mut cmd = Command::new(common::UVSADM);
    cmd.args(["--start-daemon", "backup", "--mcast-interface"])
        .arg(OsStr::from_bytes(b"lo\xff"));
    d.configure(&mut cmd);
    let out = cmd.output().expect("run uvsadm");
    assert_eq!(
        (out.status.code(), common::text(&out.stderr)),
        (Some(2), said.to_string())
    );
    let mut cmd = Command::new(common::UVSADM);
    cmd.arg("-R")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    d.configure(&mut cmd);
    let mut child = cmd.spawn().expect("run uvsadm -R");
    child
        .stdin
        .take()
        .expect("its stdin")
        .write_all(b"--start-daemon backup --mcast-interface lo\xff\n")
        .expect("write the rules");
    let out = child.wait_with_output().expect("uvsadm -R ends");
    assert_eq!(
        (out.status.code(), common::text(&out.stderr)),
        (Some(2), said.to_string())
    );
    assert_eq!(d.list(&["-L", "-n", "--daemon"]), "", "no daemon runs");
}
