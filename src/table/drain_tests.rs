//! Unit tests of `Table::apply` for uvs's timed drain (`Command::Drain`, `Undrain`):
//! the weight in force, the asked weight, the live marks, the drained-out keys.

use super::real_server::Hold;
use super::*;

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: addr.parse().unwrap(),
        port,
    }
}

fn key(addr: &str, port: u16) -> ServerKey {
    ServerKey {
        addr: addr.parse().unwrap(),
        port,
    }
}

fn apply(t: &mut Table, c: Command) -> Result<(), TableError> {
    t.apply(&c, &UnicastOnly).map(Effects::carry_out)
}

fn drain(service: ServiceKey, server: ServerKey, keep_persistent: bool) -> Command {
    Command::Drain {
        service,
        server,
        deadline_ms: Some(30_000),
        keep_persistent,
    }
}

/// A service with 172.20.0.25:80 at weight 5.
fn with_server() -> (Table, ServiceKey, ServerKey) {
    let mut t = Table::new();
    let svc = tcp("172.20.0.24", 80);
    apply(&mut t, Command::AddService(ServiceConfig::new(svc, "wlc"))).unwrap();
    let server = ServerConfig::masq("172.20.0.25:80".parse().unwrap(), 5);
    apply(
        &mut t,
        Command::AddServer {
            service: svc,
            server,
        },
    )
    .unwrap();
    (t, svc, key("172.20.0.25", 80))
}

fn the_server(t: &Table, svc: &ServiceKey) -> RealServer {
    t.service(svc).unwrap().servers[0].clone()
}

#[test]
fn drain_unknown_service_or_server_gets_ipvsadms_errors() {
    let (mut t, svc, server) = with_server();
    assert_eq!(
        apply(&mut t, drain(tcp("172.20.0.24", 81), server, false)),
        Err(TableError::ServiceNotDefined)
    );
    assert_eq!(
        apply(&mut t, drain(svc, key("172.20.0.26", 80), false)),
        Err(TableError::NoSuchServer)
    );
    assert_eq!(
        apply(
            &mut t,
            Command::Undrain {
                service: svc,
                server: key("172.20.0.26", 80)
            }
        ),
        Err(TableError::NoSuchServer)
    );
    assert_eq!(
        TableError::ServiceNotDefined.to_string(),
        "Service not defined"
    );
    assert_eq!(TableError::NoSuchServer.to_string(), "No such destination");
}

#[test]
fn a_draining_server_has_weight_0_in_force_and_keeps_its_asked_weight() {
    let (mut t, svc, server) = with_server();
    apply(&mut t, drain(svc, server, false)).unwrap();
    let s = the_server(&t, &svc);
    assert_eq!(s.weight, 0, "the weight in force");
    assert_eq!(s.config().weight, 5, "the asked weight");
    assert_eq!(s.ipvs_config().weight, 0, "what the kernel gets");
    assert_eq!(s.state.weight(), 0, "mirrored for the data plane");
    assert!(s.state.holds(Hold::Draining));
    assert!(!s.state.keeps_persistent());
    let d = s.drain.unwrap();
    assert_eq!(d.origin, Source::Command);
    assert_eq!(d.deadline_ms.unwrap() - d.started_ms, 30_000);
    assert_eq!(t.entries()[0].servers[0].weight, 0, "listings show 0");
    assert!(t.entries()[0].servers[0].draining.is_some());

    // `-e -w 7` changes what comes back; the weight in force stays 0.
    let edit = ServerConfig::masq("172.20.0.25:80".parse().unwrap(), 7);
    apply(
        &mut t,
        Command::EditServer {
            service: svc,
            server: edit,
        },
    )
    .unwrap();
    let s = the_server(&t, &svc);
    assert_eq!((s.weight, s.config().weight), (0, 7));
    assert!(s.drain.is_some());

    apply(
        &mut t,
        Command::Undrain {
            service: svc,
            server,
        },
    )
    .unwrap();
    let s = the_server(&t, &svc);
    assert_eq!((s.weight, s.state.weight()), (7, 7));
    assert!(s.drain.is_none());
    assert!(!s.state.is_held_out());
    assert!(t.entries()[0].servers[0].draining.is_none());
}

#[test]
fn a_drain_keeping_persistent_clients_is_marked_so_for_templates() {
    let (mut t, svc, server) = with_server();
    apply(&mut t, drain(svc, server, true)).unwrap();
    let s = the_server(&t, &svc);
    assert!(s.state.holds(Hold::Draining) && s.state.keeps_persistent());
    apply(
        &mut t,
        Command::Undrain {
            service: svc,
            server,
        },
    )
    .unwrap();
    assert!(!s.state.keeps_persistent());
}

#[test]
fn a_drain_asked_again_keeps_its_start() {
    let (mut t, svc, server) = with_server();
    apply(&mut t, drain(svc, server, false)).unwrap();
    let first = the_server(&t, &svc).drain.unwrap();
    let again = Command::Drain {
        service: svc,
        server,
        deadline_ms: None,
        keep_persistent: false,
    };
    apply(&mut t, again).unwrap();
    let second = the_server(&t, &svc).drain.unwrap();
    assert_eq!(second.started_ms, first.started_ms);
    assert_eq!(second.deadline_ms, None);
}

#[test]
fn a_command_drain_that_removed_its_server_marks_it_until_undrain_or_add() {
    let (mut t, svc, server) = with_server();
    apply(&mut t, drain(svc, server, false)).unwrap();
    let delete = Command::DeleteServer {
        service: svc,
        server,
    };
    // uvsadm's `-d` of a draining server is a delete like any other: no mark.
    let mut by_hand = t.clone();
    apply(&mut by_hand, delete.clone()).unwrap();
    assert!(by_hand.service(&svc).unwrap().drained_out.is_empty());
    // The pool controller's, at the drain's end, marks it.
    t.apply_from(&delete, &UnicastOnly, Source::Pool)
        .map(Effects::carry_out)
        .unwrap();
    assert!(t.service(&svc).unwrap().drained_out.contains(&server));
    let undrain = Command::Undrain {
        service: svc,
        server,
    };
    apply(&mut t, undrain.clone()).unwrap();
    assert!(t.service(&svc).unwrap().drained_out.is_empty());
    assert_eq!(
        apply(&mut t, undrain),
        Err(TableError::NoSuchServer),
        "nothing left to undo"
    );

    // `-a` of the key clears the mark too.
    let add = Command::AddServer {
        service: svc,
        server: ServerConfig::masq("172.20.0.25:80".parse().unwrap(), 5),
    };
    apply(&mut t, add.clone()).unwrap();
    apply(&mut t, drain(svc, server, false)).unwrap();
    apply(&mut t, delete.clone()).unwrap();
    apply(&mut t, add).unwrap();
    assert!(t.service(&svc).unwrap().drained_out.is_empty());

    // A file's drain leaves no mark: the file decides.
    t.apply_from(&drain(svc, server, false), &UnicastOnly, Source::File)
        .unwrap()
        .carry_out();
    apply(&mut t, delete).unwrap();
    assert!(t.service(&svc).unwrap().drained_out.is_empty());
}

#[test]
fn a_published_drain_wakes_the_pool_controller() {
    let handle = TableHandle::new(Box::new(UnicastOnly));
    let svc = tcp("172.20.0.24", 80);
    let server = ServerConfig::masq("172.20.0.25:80".parse().unwrap(), 5);
    let server_key = server.key();
    handle
        .apply_all(&[
            Command::AddService(ServiceConfig::new(svc, "rr")),
            Command::AddServer {
                service: svc,
                server,
            },
        ])
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let woken = |handle: &TableHandle| {
        rt.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_millis(50),
                handle.drain_started().notified(),
            )
            .await
            .is_ok()
        })
    };
    assert!(!woken(&handle), "nothing drains yet");
    handle.apply(&drain(svc, server_key, false)).unwrap();
    assert!(woken(&handle), "the permit waits for the controller");
}

/// A drain ended by a delete the pool controller did not make (`-d`, `-D`, `-C`, a
/// reload's) is said once when carried out; the controller's own removal is said by
/// the controller.
#[test]
fn a_drain_ended_by_a_delete_is_said_unless_the_controller_removed_it() {
    let (mut t, svc, server) = with_server();
    let delete = Command::DeleteServer {
        service: svc,
        server,
    };
    let ended = |effects: &Effects| -> Vec<(ServiceKey, ServerKey)> {
        effects
            .drains_ended()
            .into_iter()
            .map(|(service, s)| (service, s.key()))
            .collect()
    };
    // Not draining: nothing to say.
    let effects = t.clone().apply(&delete, &UnicastOnly).unwrap();
    assert!(ended(&effects).is_empty());
    apply(&mut t, drain(svc, server, false)).unwrap();
    for source in [Source::Command, Source::File] {
        let effects = t.clone().apply_from(&delete, &UnicastOnly, source).unwrap();
        assert_eq!(ended(&effects), [(svc, server)], "{source:?}");
    }
    let by_pool = t
        .clone()
        .apply_from(&delete, &UnicastOnly, Source::Pool)
        .unwrap();
    assert!(ended(&by_pool).is_empty(), "the controller says its own");
    let gone = t
        .clone()
        .apply(&Command::DeleteService { service: svc }, &UnicastOnly)
        .unwrap();
    assert_eq!(ended(&gone), [(svc, server)], "-D");
    let flushed = t.clone().apply(&Command::Flush {}, &UnicastOnly).unwrap();
    assert_eq!(ended(&flushed), [(svc, server)], "-C");
}
