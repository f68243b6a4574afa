//! Unit tests of when the table begins a slow start (`slow_start`): at publish, for a
//! server added to a running service or back from weight 0, never for the servers of a
//! new service, never in kernel mode; and what the listing shows meanwhile.

use super::*;

fn key() -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: "172.20.0.24".parse().unwrap(),
        port: 80,
    }
}

fn server(last: u8, weight: i32) -> ServerConfig {
    ServerConfig::masq(std::net::SocketAddr::from(([172, 20, 0, last], 80)), weight)
}

fn service(slow_start_ms: u32) -> ServiceConfig {
    let mut c = ServiceConfig::new(key(), "rr");
    c.options.slow_start_ms = slow_start_ms;
    c
}

/// A handle whose table has the service (a window of 10 s) and servers .1 and .2 at
/// weight 20, added in one batch, as a daemon's start does.
/// Applies `command` as a reload does.
fn from_file(handle: &TableHandle, command: Command) {
    handle
        .apply_all_from(&[command], Source::File, |_, e| e, |_, _| Ok(()))
        .unwrap();
}

fn running(slow_starts: bool) -> TableHandle {
    let handle = TableHandle::new(Box::new(UnicastOnly)).with_slow_starts(slow_starts);
    let add = |last| Command::AddServer {
        service: key(),
        server: server(last, 20),
    };
    handle
        .apply_all(&[Command::AddService(service(10_000)), add(1), add(2)])
        .unwrap();
    handle
}

fn ramping(handle: &TableHandle, last: u8) -> bool {
    let table = handle.snapshot();
    let svc = table.service(&key()).unwrap();
    let s = svc
        .servers
        .iter()
        .find(|s| s.addr == server(last, 1).addr)
        .unwrap();
    s.state.slow_start.is_ramping()
}

fn listed_weight(handle: &TableHandle, last: u8) -> (u32, Option<u32>) {
    let entry = handle.snapshot().entry(&key()).unwrap();
    let s = entry
        .servers
        .iter()
        .find(|s| s.addr == server(last, 1).addr)
        .unwrap();
    (s.weight, s.slow_start)
}

#[test]
fn servers_that_come_with_their_service_do_not_ramp() {
    let handle = running(true);
    assert!(!ramping(&handle, 1) && !ramping(&handle, 2));
    assert_eq!(listed_weight(&handle, 1), (20, None));
}

#[test]
fn a_server_added_to_a_running_service_ramps_and_is_listed_at_its_weight_in_force() {
    let handle = running(true);
    let added = Command::AddServer {
        service: key(),
        server: server(3, 20),
    };
    handle.apply(&added).unwrap();
    assert!(ramping(&handle, 3));
    let (weight, share) = listed_weight(&handle, 3);
    let share = share.expect("a share while ramping");
    // The weight is read a moment before the share, which may have grown since.
    let at_share = slow_start::weight_at(20, share);
    assert!(
        weight == at_share || weight + 1 == at_share,
        "{weight} at {share}"
    );
    assert!((1..20).contains(&weight), "{weight} at {share}");
}

#[test]
fn weight_from_0_to_above_0_begins_a_ramp() {
    let handle = running(true);
    let edit = |w| Command::EditServer {
        service: key(),
        server: server(1, w),
    };
    handle.apply(&edit(0)).unwrap();
    assert!(!ramping(&handle, 1));
    handle.apply(&edit(5)).unwrap();
    assert!(ramping(&handle, 1));
    // Another weight above 0 is no return: the ramp goes on, not over.
    handle.apply(&edit(7)).unwrap();
    assert!(ramping(&handle, 1));
    assert!(!ramping(&handle, 2));
}

#[test]
fn kernel_mode_does_not_ramp() {
    let handle = running(false);
    let edit = |w| Command::EditServer {
        service: key(),
        server: server(1, w),
    };
    handle.apply(&edit(0)).unwrap();
    handle.apply(&edit(5)).unwrap();
    assert!(!ramping(&handle, 1));
    assert_eq!(listed_weight(&handle, 1), (5, None));
}

#[test]
fn a_server_s_own_window_wins_and_the_service_s_follows_its_edits() {
    let handle = running(true);
    let mut off = server(3, 20);
    off.options.slow_start_ms = Some(0);
    handle
        .apply(&Command::AddServer {
            service: key(),
            server: off,
        })
        .unwrap();
    assert!(!ramping(&handle, 3), "its own 0s turns slow start off");
    handle
        .apply(&Command::AddServer {
            service: key(),
            server: server(4, 20),
        })
        .unwrap();
    assert!(ramping(&handle, 4));
    // The service's window to 0 (a reload's edit: uvsadm has no option for it): the
    // ramp ends, and .3 keeps its own.
    from_file(&handle, Command::EditService(service(0)));
    assert!(!ramping(&handle, 4));
    let table = handle.snapshot();
    let windows: Vec<u32> = table
        .service(&key())
        .unwrap()
        .servers
        .iter()
        .map(|s| s.state.slow_start.window_ms())
        .collect();
    assert_eq!(windows, [0, 0, 0, 0]);
}

#[test]
fn begin_slow_start_ramps_only_a_server_with_a_window() {
    let handle = running(true);
    let table = handle.snapshot();
    let svc = table.service(&key()).unwrap();
    svc.servers[0].state.begin_slow_start();
    assert!(svc.servers[0].state.slow_start.is_ramping());
    from_file(&handle, Command::EditService(service(0)));
    svc.servers[1].state.begin_slow_start();
    assert!(!svc.servers[1].state.slow_start.is_ramping());
}

#[test]
fn an_edit_from_uvsadm_keeps_the_servers_own_settings_and_a_reload_sets_them() {
    let handle = running(true);
    let mut own = server(3, 20);
    own.options.slow_start_ms = Some(0);
    own.options.max_connections = 7;
    handle
        .apply(&Command::AddServer {
            service: key(),
            server: own.clone(),
        })
        .unwrap();
    let options = |h: &TableHandle| {
        let table = h.snapshot();
        let svc = table.service(&key()).unwrap();
        let s = svc.servers.iter().find(|s| s.key() == own.key()).unwrap();
        s.options
    };
    // `uvsadm -e -w 5`: what ipvsadm sets, and none of uvs's own.
    let by_uvsadm = Command::EditServer {
        service: key(),
        server: ServerConfig {
            weight: 5,
            options: ServerOptions::default(),
            ..own.clone()
        },
    };
    handle.apply(&by_uvsadm).unwrap();
    assert_eq!(options(&handle), own.options, "uvsadm's -e keeps them");
    // A reload's edit says what the file says.
    handle
        .apply_all_from(
            std::slice::from_ref(&by_uvsadm),
            Source::File,
            |_, e| e,
            |_, _| Ok(()),
        )
        .unwrap();
    assert_eq!(options(&handle), ServerOptions::default());
}

#[test]
fn an_edit_from_uvsadm_keeps_the_services_own_settings_and_a_reload_sets_them() {
    let handle = running(true);
    let options = |h: &TableHandle| h.snapshot().service(&key()).unwrap().options.clone();
    let mut own = service(30_000);
    own.options.queue = Some(crate::table::QueueOptions {
        length: std::num::NonZeroU32::new(4).unwrap(),
        timeout_ms: 1000,
    });
    own.options.accept_proxy = Some(crate::table::AcceptProxy::Any);
    own.options.admission.access = Some(std::sync::Arc::new(
        crate::table::admission::AccessList::new(vec!["127.0.0.0/8".parse().unwrap()], vec![]),
    ));
    from_file(&handle, Command::EditService(own.clone()));
    // `uvsadm -E -t ... -s rr --connect-timeout 2`: what uvsadm can say is set, the
    // rest kept.
    let mut by_uvsadm = ServiceConfig::new(key(), "rr");
    by_uvsadm.options.connect_timeout_ms = 2000;
    handle
        .apply(&Command::EditService(by_uvsadm.clone()))
        .unwrap();
    let kept = options(&handle);
    assert_eq!(kept.connect_timeout_ms, 2000);
    assert_eq!(
        ServiceOptions {
            connect_timeout_ms: 0,
            ..kept
        },
        own.options,
        "uvsadm's -E keeps them"
    );
    // A reload's edit says what the file says.
    from_file(&handle, Command::EditService(by_uvsadm.clone()));
    assert_eq!(options(&handle), by_uvsadm.options);
}

/// uvs's own TLVs ride only in a v2 header: `-E` that leaves out `--proxy-protocol v2`
/// leaves none configured; one that keeps it keeps them.
#[test]
fn an_edit_from_uvsadm_without_a_v2_header_drops_uvs_s_tlvs() {
    use crate::table::service::ProxyTlvs;
    let handle = running(true);
    let mut own = service(0);
    own.options.proxy_protocol = Some(crate::table::ProxyProtocol::V2);
    own.options.proxy_protocol_tlvs = ProxyTlvs::default().with(ProxyTlvs::UNIQUE_ID);
    from_file(&handle, Command::EditService(own.clone()));
    let tlvs = |h: &TableHandle| {
        let table = h.snapshot();
        table.service(&key()).unwrap().options.proxy_protocol_tlvs
    };
    let mut by_uvsadm = ServiceConfig::new(key(), "rr");
    by_uvsadm.options.proxy_protocol = Some(crate::table::ProxyProtocol::V2);
    handle
        .apply(&Command::EditService(by_uvsadm.clone()))
        .unwrap();
    assert_eq!(
        tlvs(&handle),
        own.options.proxy_protocol_tlvs,
        "v2 kept: TLVs kept"
    );
    by_uvsadm.options.proxy_protocol = None;
    handle.apply(&Command::EditService(by_uvsadm)).unwrap();
    assert_eq!(tlvs(&handle), ProxyTlvs::default(), "no header: no TLVs");
}
