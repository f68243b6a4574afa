//! `uvsadm --add-listener`, uvs's own command, is strict where ipvsadm's commands are
//! not: a rule must lead to a service that exists (the service comes first), must name
//! one address, and must not take the address of another virtual service; a rule goes
//! with its service. `-A` (ipvsadm's) is never refused for a rule's sake: the service
//! wins its address over a rule added before it, and `-S | -R` keeps both.
//! Over a real daemon and real sockets on loopback.

mod common;

use common::{Backend, Behaviour, Daemon, ask, eventually, sighup, text, vip, write_file};

/// uvsadm's exit status and stderr for `args`, which must fail without a word on stdout.
fn refused(d: &Daemon, args: &[&str]) -> (Option<i32>, String) {
    let out = d.uvsadm(args);
    assert!(!out.status.success(), "uvsadm {args:?} succeeded");
    assert_eq!(text(&out.stdout), "", "uvsadm {args:?}");
    (out.status.code(), text(&out.stderr))
}

fn rules(d: &Daemon) -> String {
    d.list(&["-L", "--listeners", "-n"])
}

#[test]
fn a_listener_for_a_mark_without_its_service_is_refused_until_the_service_is_added() {
    let d = Daemon::start();
    let backend = Backend::start("A", Behaviour::Name);
    let listen = vip();
    let add = ["--add-listener", "-t", &listen.to_string(), "--mark", "99"];
    assert_eq!(
        refused(&d, &add),
        (
            Some(255),
            "fwmark 99 is not a virtual service: add it first (uvsadm -A -f 99), then its listeners\n"
                .to_string()
        )
    );
    assert_eq!(rules(&d), "", "nothing was added");
    // In the right order it works.
    d.ok(&["-A", "-f", "99", "-s", "rr"]);
    d.ok(&["-a", "-f", "99", "-r", &backend.addr.to_string(), "-m"]);
    d.ok(&add);
    d.wait_listening(listen);
    assert_eq!(ask(listen, None), "A");
    // Without --mark a rule leads to the address's port-0 service, which must exist too.
    let other = vip();
    assert_eq!(
        refused(&d, &["--add-listener", "-t", &other.to_string()]).1,
        format!(
            "tcp {}:0 is not a virtual service: add it first (uvsadm -A -t {}:0 -p), then its listeners\n",
            other.ip(),
            other.ip()
        )
    );
    // The command the message names is one uvsadm takes, and the rule then is too.
    d.ok(&["-A", "-t", &format!("{}:0", other.ip()), "-p"]);
    d.ok(&["--add-listener", "-t", &other.to_string()]);
}

#[test]
fn a_listener_cannot_take_the_address_of_another_service() {
    let d = Daemon::start();
    let (a, b) = Backend::pair(Behaviour::Name);
    let taken = vip();
    d.ok(&["-A", "-t", &taken.to_string(), "-s", "rr"]);
    d.ok(&[
        "-a",
        "-t",
        &taken.to_string(),
        "-r",
        &a.addr.to_string(),
        "-m",
    ]);
    d.ok(&["-A", "-f", "7", "-s", "rr"]);
    d.ok(&["-a", "-f", "7", "-r", &b.addr.to_string(), "-m"]);
    let (code, message) = refused(
        &d,
        &["--add-listener", "-t", &taken.to_string(), "--mark", "7"],
    );
    assert_eq!(code, Some(255));
    assert_eq!(
        message,
        format!(
            "-t {taken} is served by virtual service tcp {taken}: the service keeps its address \
             and a listener there would never be used (delete the service first, or listen \
             elsewhere)\n"
        )
    );
    d.wait_listening(taken);
    assert_eq!(ask(taken, None), "A", "the VIP is still its service's");
    // Another mark's listener is refused as before.
    let shared = vip();
    d.ok(&["-A", "-f", "8", "-s", "rr"]);
    d.ok(&["--add-listener", "-t", &shared.to_string(), "--mark", "7"]);
    assert_eq!(
        refused(
            &d,
            &["--add-listener", "-t", &shared.to_string(), "--mark", "8"]
        ),
        (
            Some(255),
            format!(
                "-t {shared} already listens for fwmark 7: delete that listener first \
                 (uvsadm --delete-listener -t {shared})\n"
            )
        )
    );
}

#[test]
fn deleting_an_fwmark_service_deletes_its_listeners_and_a_save_restores() {
    let d = Daemon::start();
    let backend = Backend::start("A", Behaviour::Name);
    let (l7, l8) = (vip(), vip());
    for mark in ["7", "8"] {
        d.ok(&["-A", "-f", mark, "-s", "rr"]);
        d.ok(&["-a", "-f", mark, "-r", &backend.addr.to_string(), "-m"]);
    }
    d.ok(&["--add-listener", "-t", &l7.to_string(), "--mark", "7"]);
    d.ok(&["--add-listener", "-t", &l8.to_string(), "--mark", "8"]);
    d.ok(&["-D", "-f", "7"]);
    assert_eq!(rules(&d), format!("--add-listener -t {l8} --mark 8\n"));
    // Added again, the service has no listeners until they are added again.
    d.ok(&["-A", "-f", "7", "-s", "rr"]);
    assert_eq!(rules(&d), format!("--add-listener -t {l8} --mark 8\n"));
    // What -S writes, -R takes back: every rule in it leads to a service before it.
    let saved = d.list(&["-S", "-n"]);
    d.ok(&["-C"]);
    let out = d.uvsadm_with_input(&["-R"], &saved);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(d.list(&["-S", "-n"]), saved);
    d.wait_listening(l8);
    assert_eq!(ask(l8, None), "A");
}

/// The log line (at `level`) that contains `words`, waited for.
fn logged(d: &Daemon, level: &str, words: &str) -> String {
    eventually(words, || d.log().contains(words));
    let log = d.log();
    let line = log.lines().find(|l| l.contains(words)).unwrap_or_default();
    assert!(line.contains(&format!(" {level} ")), "{line}");
    line.to_string()
}

/// The review's order: the listener first, then `-A` at its address. The service
/// wins the address (real traffic says which service answers), the rule is kept and
/// said to be shadowed (log and `uvs status`), `-S` writes the service after the rule,
/// and `-R` takes that back, into the same daemon cleared and into a fresh one.
#[test]
fn a_service_added_at_a_listeners_address_wins_it_and_save_restore_keeps_both() {
    let d = Daemon::start_logged(&[]);
    let group = Backend::start("GROUP", Behaviour::Name);
    let own = Backend::start("OWN", Behaviour::Name);
    let at = vip();
    let at_s = at.to_string();
    d.ok(&["-A", "-f", "7", "-s", "rr"]);
    d.ok(&["-a", "-f", "7", "-r", &group.addr.to_string(), "-m"]);
    d.ok(&["--add-listener", "-t", &at_s, "--mark", "7"]);
    d.wait_listening(at);
    assert_eq!(ask(at, None), "GROUP");
    // ipvsadm's -A and -a are accepted...
    d.ok(&["-A", "-t", &at_s, "-s", "rr"]);
    d.ok(&["-a", "-t", &at_s, "-r", &own.addr.to_string(), "-m"]);
    // ...and the service gets its address's connections.
    for _ in 0..3 {
        assert_eq!(ask(at, None), "OWN");
    }
    logged(
        &d,
        "WARN",
        &format!(
            "virtual service tcp {at} takes its address from the listen rule --add-listener \
             -t {at} --mark 7: the service gets the connections there, and the rule is kept \
             unused until the service is deleted"
        ),
    );
    let status = d.status();
    assert!(
        status.contains(&format!(
            "  listen tcp {at}: shadowed: virtual service tcp {at} holds this address and gets \
             its connections; not listened on until that service is deleted\n"
        )),
        "{status}"
    );
    assert_eq!(
        rules(&d),
        format!("--add-listener -t {at} --mark 7\n"),
        "the rule is kept"
    );
    // -S writes the shadowing service after the rule, where -R takes it.
    let saved = d.list(&["-S", "-n"]);
    assert_eq!(
        saved,
        format!(
            "-A -f 7 -s rr\n-a -f 7 -r {g} -m -w 1\n--add-listener -t {at} --mark 7\n\
             -A -t {at} -s rr\n-a -t {at} -r {o} -m -w 1\n",
            g = group.addr,
            o = own.addr
        )
    );
    // Into a fresh daemon (this one cleared first, so that the address is free), then
    // back into this one.
    d.ok(&["-C"]);
    let restore = |target: &Daemon| {
        let out = target.uvsadm_with_input(&["-R"], &saved);
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "");
        assert_eq!(target.list(&["-S", "-n"]), saved);
        target.wait_listening(at);
        assert_eq!(ask(at, None), "OWN");
    };
    let fresh = Daemon::start();
    restore(&fresh);
    drop(fresh);
    restore(&d);
    // Deleting the service gives the rule its address back, and says so.
    d.ok(&["-D", "-t", &at_s]);
    logged(
        &d,
        "INFO",
        &format!(
            "virtual service tcp {at} deleted: the listen rule it shadowed listens again: \
             --add-listener -t {at} --mark 7"
        ),
    );
    d.wait_listening(at);
    assert_eq!(ask(at, None), "GROUP");
    // Deleting the group deletes the rule, and says which.
    d.ok(&["-D", "-f", "7"]);
    logged(
        &d,
        "INFO",
        &format!(
            "virtual service fwmark 7 deleted with the listen rule that led to it: \
             --add-listener -t {at} --mark 7"
        ),
    );
    assert_eq!(rules(&d), "");
}

/// A listener on 0.0.0.0 or :: would hold its port on every address of the host, the
/// VIPs that `-A` adds later included, whose own sockets could then never bind: it is
/// refused, so nothing here binds a wildcard (the table's and the file check's unit
/// tests cover a rule under a service at 0.0.0.0, which would bind one).
#[test]
fn a_listener_on_every_address_is_refused() {
    let d = Daemon::start();
    d.ok(&["-A", "-f", "7", "-s", "rr"]);
    d.ok(&["-A", "-f", "7", "-6", "-s", "rr"]);
    let port = common::free_port().to_string();
    for (kind, wildcard) in [
        ("-t", format!("0.0.0.0:{port}")),
        ("-u", format!("[::]:{port}")),
    ] {
        assert_eq!(
            refused(&d, &["--add-listener", kind, &wildcard, "--mark", "7"]),
            (
                Some(255),
                format!(
                    "{kind} {wildcard}: a listener needs one address, not every address of the \
                     host (it would hold port {port} on the VIPs added later too): add a \
                     listener for each address\n"
                )
            )
        );
    }
    assert_eq!(rules(&d), "", "nothing was added");
    // One address on that port is fine.
    let one = format!("127.0.0.1:{port}");
    d.ok(&["--add-listener", "-t", &one, "--mark", "7"]);
    assert_eq!(rules(&d), format!("--add-listener -t {one} --mark 7\n"));
}

/// A reload that adds a service at the address of a listener uvsadm added is `-A` too:
/// the file's service wins the address, the reload is not refused, and the rule is
/// kept and said to be shadowed.
#[test]
fn a_reload_adding_a_service_at_a_listeners_address_wins_it() {
    let group = Backend::start("GROUP", Behaviour::Name);
    let own = Backend::start("OWN", Behaviour::Name);
    let at = vip();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let d = Daemon::start_with_file(&path, "", &[]);
    d.ok(&["-A", "-f", "7", "-s", "rr"]);
    d.ok(&["-a", "-f", "7", "-r", &group.addr.to_string(), "-m"]);
    d.ok(&["--add-listener", "-t", &at.to_string(), "--mark", "7"]);
    d.wait_listening(at);
    assert_eq!(ask(at, None), "GROUP");
    write_file(
        &path,
        &format!(
            "[[service]]\ntcp = \"{at}\"\nscheduler = \"rr\"\n[[service.server]]\naddress = \"{}\"\n",
            own.addr
        ),
    );
    sighup(&d.child);
    eventually("the reload is logged", || {
        d.log().contains("SIGHUP: configuration reloaded")
    });
    logged(
        &d,
        "WARN",
        &format!("virtual service tcp {at} takes its address from the listen rule"),
    );
    assert_eq!(ask(at, None), "OWN");
    assert_eq!(rules(&d), format!("--add-listener -t {at} --mark 7\n"));
}

/// The other order: a service uvsadm added first, then a reload whose file (which
/// `uvs check` passes: the service is not in it) adds a listen rule at its address. A
/// service's own address wins over a rule in either order, so the reload is not
/// refused: the rule is kept, shadowed and said, as when the service comes second, and
/// deleting the service gives the rule its address.
#[test]
fn a_reload_adding_a_listener_at_a_services_address_keeps_it_shadowed() {
    let group = Backend::start("GROUP", Behaviour::Name);
    let own = Backend::start("OWN", Behaviour::Name);
    let at = vip();
    let at_s = at.to_string();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("uvs.toml");
    let d = Daemon::start_with_file(&path, "", &[]);
    d.ok(&["-A", "-t", &at_s, "-s", "rr"]);
    d.ok(&["-a", "-t", &at_s, "-r", &own.addr.to_string(), "-m"]);
    d.wait_listening(at);
    assert_eq!(ask(at, None), "OWN");
    write_file(
        &path,
        &format!(
            "[[service]]\nfwmark = 9\nscheduler = \"rr\"\nlisten = [\"tcp {at}\"]\n\
             [[service.server]]\naddress = \"{}\"\n",
            group.addr
        ),
    );
    let checked = std::process::Command::new(env!("CARGO_BIN_EXE_uvs"))
        .args(["check", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    sighup(&d.child);
    eventually("the reload is logged", || {
        let log = d.log();
        log.contains("SIGHUP: configuration reloaded") || log.contains("reload refused")
    });
    assert!(!d.log().contains("reload refused"), "{}", d.log());
    logged(
        &d,
        "WARN",
        &format!(
            "virtual service tcp {at} takes its address from the listen rule --add-listener \
             -t {at} --mark 9: the service gets the connections there, and the rule is kept \
             unused until the service is deleted"
        ),
    );
    assert_eq!(ask(at, None), "OWN");
    assert_eq!(rules(&d), format!("--add-listener -t {at} --mark 9\n"));
    d.ok(&["-D", "-t", &at_s]);
    d.wait_listening(at);
    assert_eq!(ask(at, None), "GROUP");
}
