//! `uvsadm --add-listener`, uvs's own command, is strict where ipvsadm's commands are
//! not: a rule must lead to a service that exists (the service comes first), and must
//! not take the address of another virtual service; a rule goes with its service.
//! Over a real daemon and real sockets on loopback.

mod common;

use common::{Backend, Behaviour, Daemon, ask, text, vip};

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
            "tcp {}:0 is not a virtual service: add it first (uvsadm -A -t {}:0), then its listeners\n",
            other.ip(),
            other.ip()
        )
    );
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
            "-t {taken} is the address of virtual service tcp {taken}: a listener there would \
             take its connections (delete the service first, or listen elsewhere)\n"
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
