//! A uvsadm change to a service the configuration file owns lasts until the next
//! reload puts the file's table back: the daemon says so at WARN when the change is
//! made (naming the file), and the reload that undoes it says what it undid. uvsadm's
//! own output stays ipvsadm's (nothing). A change to a service the file never named is
//! the operator's, and nothing of the kind is said. Over a real daemon on loopback.

mod common;

use common::{Backend, Behaviour, Daemon, eventually, sighup, text, vip};

/// A daemon whose file, `dir/uvs.toml`, owns one rr service `owned` with `server` at
/// weight 1: the file's path, its text and the daemon.
fn owning(
    dir: &std::path::Path,
    owned: std::net::SocketAddr,
    server: std::net::SocketAddr,
) -> (std::path::PathBuf, String, Daemon) {
    let path = dir.join("uvs.toml");
    let file = format!(
        "[[service]]\ntcp = \"{owned}\"\nscheduler = \"rr\"\n\
         [[service.server]]\naddress = \"{server}\"\nweight = 1\n"
    );
    let d = Daemon::start_with_file(&path, &file, &[]);
    (path, file, d)
}

/// Waits (bounded) until the daemon's log has `message`, on a line at WARN; the log.
fn warned(d: &Daemon, what: &str, message: &str) -> String {
    eventually(what, || d.log().contains(message));
    let log = d.log();
    let line = log.lines().find(|l| l.contains(message)).unwrap();
    assert!(line.contains(" WARN "), "{line}");
    log
}

#[test]
fn a_uvsadm_change_the_file_owns_is_named_and_so_is_the_reload_that_undoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = Backend::pair(Behaviour::Name);
    let (owned, theirs) = (vip(), vip());
    let (path, file, d) = owning(dir.path(), owned, a.addr);
    let file_name = path.display().to_string();

    // A service of uvsadm's own: nothing to say.
    d.ok(&["-A", "-t", &theirs.to_string(), "-s", "rr"]);
    let b_addr = b.addr.to_string();
    d.ok(&["-a", "-t", &theirs.to_string(), "-r", &b_addr, "-m"]);
    d.ok(&[
        "-e",
        "-t",
        &theirs.to_string(),
        "-r",
        &b_addr,
        "-m",
        "-w",
        "4",
    ]);

    // The file's service: uvsadm says nothing more than ipvsadm would...
    let edit = [
        "-e",
        "-t",
        &owned.to_string(),
        "-r",
        &a.addr.to_string(),
        "-m",
        "-w",
        "5",
    ];
    let out = d.uvsadm(&edit);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (String::new(), String::new())
    );
    assert_eq!(d.servers(owned), [(a.addr.to_string(), 5)]);
    // ...and the daemon's log names the change and the file.
    let warning = format!(
        "uvsadm changed tcp {owned}, which {file_name} owns (-e -t {owned} -r {a} -m -w 5): \
         the next reload of {file_name} will undo it",
        a = a.addr
    );
    let log = warned(&d, "the change is named in the log", &warning);
    assert!(
        !log.contains(&format!("uvsadm changed tcp {theirs}")),
        "a service the file never named is not the file's:\n{log}"
    );

    // A comment is all that changes in the file; the reload still puts it back.
    common::write_file(&path, &format!("# a comment\n{file}"));
    sighup(&d.child);
    let undone = format!(
        "reload of {file_name} undoes the control socket's change to tcp {owned} \
         (-e -t {owned} -r {a} -m -w 5): -e -t {owned} -r {a} -m -w 1",
        a = a.addr
    );
    warned(&d, "the reload says what it undid", &undone);
    assert_eq!(
        d.servers(owned),
        [(a.addr.to_string(), 1)],
        "the file's weight"
    );
    assert_eq!(
        d.servers(theirs),
        [(b.addr.to_string(), 4)],
        "uvsadm's stays"
    );
    // Said once: the next reload has nothing to undo.
    sighup(&d.child);
    eventually("the second reload", || {
        d.log().matches("SIGHUP: configuration reloaded").count() >= 2
    });
    assert_eq!(
        d.log()
            .matches("undoes the control socket's change")
            .count(),
        1
    );

    // -C takes the file's service too: said, and put back by the next reload.
    d.ok(&["-C"]);
    let cleared = format!(
        "uvsadm changed tcp {owned}, which {file_name} owns (-C): the next reload of \
         {file_name} will undo it"
    );
    eventually("the flush is named in the log", || {
        d.log().contains(&cleared)
    });
    sighup(&d.child);
    let restored = format!(
        "reload of {file_name} undoes the control socket's change to tcp {owned} (-C): \
         -A -t {owned} -s rr; -a -t {owned} -r {a} -m -w 1",
        a = a.addr
    );
    eventually("the reload says it put the service back", || {
        d.log().contains(&restored)
    });
    assert_eq!(d.servers(owned), [(a.addr.to_string(), 1)]);
}

/// 500 changes to one service the file owns, through `-R`: one warning line (the
/// first, at once), not 500; the reload still names what it undid, with the count.
#[test]
fn a_flood_of_changes_to_the_file_s_service_is_one_warning_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::Backend::start("A", Behaviour::Name);
    let owned = vip();
    let (path, file, d) = owning(dir.path(), owned, a.addr);
    let file_name = path.display().to_string();
    let edits: String = (0..500)
        .map(|i| {
            format!(
                "-E -t {owned} -s {}\n",
                if i % 2 == 0 { "rr" } else { "wrr" }
            )
        })
        .collect();
    let out = d.uvsadm_with_input(&["-R"], &edits);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let warning =
        format!("uvsadm changed tcp {owned}, which {file_name} owns (-E -t {owned} -s rr)");
    eventually("the first change is named at once", || {
        d.log().contains(&warning)
    });
    // Every edit was applied (uvsadm -R returned) and logged as such before this.
    let log = d.log();
    assert_eq!(log.matches("table changed: -E -t ").count(), 500, "{log}");
    assert_eq!(
        log.matches(&format!("uvsadm changed tcp {owned}")).count(),
        1,
        "one line, not one per command:\n{log}"
    );
    // The last edit left wrr; the file says rr. A comment makes the reload read it.
    common::write_file(&path, &format!("# a comment\n{file}"));
    sighup(&d.child);
    let undone = format!(
        "reload of {file_name} undoes the control socket's change to tcp {owned} \
         (-E -t {owned} -s rr; -E -t {owned} -s wrr; -E -t {owned} -s rr; -E -t {owned} -s wrr \
         and 496 more)"
    );
    eventually("the reload says what it undid", || {
        d.log().contains(&undone)
    });
}

/// Waits, for at most a minute (a held-back count is said once its ten-second interval
/// is over), until the daemon's log has `message`.
fn logged_within_a_minute(d: &Daemon, what: &str, message: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !d.log().contains(message) {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// An edit, then deletions of the file's server and service: the edit is named, and
/// each deletion too, at once, however soon after it comes (review 5), the first
/// taking with it the count of what was held back.
#[test]
fn deleting_what_the_file_owns_is_always_said_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::Backend::start("A", Behaviour::Name);
    let owned = vip();
    let (path, _file, d) = owning(dir.path(), owned, a.addr);
    let file_name = path.display().to_string();
    let (v, s) = (owned.to_string(), a.addr.to_string());
    for args in [
        &["-E", "-t", &v, "-s", "rr"][..],
        &["-E", "-t", &v, "-s", "wrr"],
        &["-d", "-t", &v, "-r", &s],
        &["-D", "-t", &v],
    ] {
        d.ok(args);
    }
    let said = |command: &str, more: &str| {
        format!(
            "uvsadm changed tcp {owned}, which {file_name} owns ({command}): the next reload \
             of {file_name} will undo it{more}"
        )
    };
    let lines = [
        said(&format!("-E -t {owned} -s rr"), ""),
        said(
            &format!("-d -t {owned} -r {s}"),
            " (1 more change to it not logged since the last such line)",
        ),
        said(&format!("-D -t {owned}"), ""),
    ];
    eventually("the deletions are named", || d.log().contains(&lines[2]));
    let log = d.log();
    let warned: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("uvsadm changed tcp"))
        .collect();
    assert_eq!(warned.len(), 3, "{warned:#?}");
    for (line, expected) in warned.iter().zip(&lines) {
        assert!(
            line.contains(" WARN ") && line.ends_with(expected.as_str()),
            "{line}"
        );
    }
}

/// A change held back with nothing after it is still said, once its interval is over,
/// with its count (review 5): no change to what the file owns goes unsaid.
#[test]
fn a_change_held_back_is_said_when_its_interval_is_over() {
    let dir = tempfile::tempdir().unwrap();
    let a = common::Backend::start("A", Behaviour::Name);
    let owned = vip();
    let (path, _file, d) = owning(dir.path(), owned, a.addr);
    let file_name = path.display().to_string();
    let v = owned.to_string();
    for scheduler in ["wrr", "rr", "wlc"] {
        d.ok(&["-E", "-t", &v, "-s", scheduler]);
    }
    let held = format!(
        "uvsadm made 2 more changes to tcp {owned}, which {file_name} owns, not logged since \
         the last such line: the next reload of {file_name} will undo them"
    );
    logged_within_a_minute(&d, "the count held back is said", &held);
    let log = d.log();
    let line = log.lines().find(|l| l.contains(&held)).unwrap();
    assert!(line.contains(" WARN "), "{line}");
    assert_eq!(log.matches("uvsadm changed tcp").count(), 1, "{log}");
    assert_eq!(log.matches("uvsadm made ").count(), 1, "{log}");
}

/// The file's `[sync]`: its daemon runs from the start, resolved for `lo` as the kernel
/// would; a uvsadm stop of it is named and undone by the next reload; a changed section
/// restarts its daemons; one on an interface the host lacks stops the running ones and
/// waits for it, shown down; a removed section ends all of it.
#[test]
fn the_files_sync_section_runs_its_daemons_and_reloads_keep_them_as_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let file_name = path.display().to_string();
    let section = |role: &str, interface: &str, syncid: u8| {
        format!("[sync]\nrole = \"{role}\"\ninterface = \"{interface}\"\nsyncid = {syncid}\n")
    };
    let d = Daemon::start_with_file(&path, &section("master", "lo", 7), &[]);
    let daemons = || d.list(&["-L", "-n", "--daemon"]);
    let master = |id: u8| {
        format!(
            "master sync daemon (mcast=lo, syncid={id}, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
        )
    };
    assert_eq!(daemons(), master(7));

    d.ok(&["--stop-daemon", "master"]);
    assert_eq!(daemons(), "");
    warned(
        &d,
        "the stop is named",
        &format!(
            "uvsadm changed the master sync daemon, which {file_name} owns (--stop-daemon master): \
             the next reload of {file_name} will undo it"
        ),
    );
    sighup(&d.child);
    warned(
        &d,
        "the reload says what it undid",
        &format!(
            "reload of {file_name} undoes the control socket's change to the master sync daemon \
             (--stop-daemon master): --start-daemon master"
        ),
    );
    assert_eq!(daemons(), master(7));

    let reloaded = |n: usize| {
        sighup(&d.child);
        eventually("the reload", || {
            let log = d.log();
            log.matches("SIGHUP: configuration reloaded").count()
                + log.matches("SIGHUP: reload refused").count()
                >= n
        });
    };
    common::write_file(&path, &section("both", "lo", 9));
    reloaded(2);
    let both = d.list(&["-L", "-n", "--daemon"]);
    assert!(
        both.starts_with(&master(9))
            && both.contains("backup sync daemon (mcast=lo, syncid=9, maxlen="),
        "{both}"
    );

    // An interface this host does not have: the file is applied, the daemons it no
    // longer asks for stop, and its own wait for the interface, shown down.
    common::write_file(&path, &section("both", "uvs-nosuch0", 9));
    reloaded(3);
    eventually("the daemons wait", || {
        let status = d.status();
        ["master", "backup"].iter().all(|role| {
            status.contains(&format!(
                "the {role} sync daemon is not running: No such device \
                 (sync.interface = \"uvs-nosuch0\"); retrying every 2 s"
            ))
        })
    });
    assert_eq!(daemons(), "", "nothing runs");

    common::write_file(&path, "# no [sync] any more\n");
    reloaded(4);
    eventually("the waits end", || {
        !d.status().contains("sync daemon is not running")
    });
    assert_eq!(daemons(), "");
}
