//! Helpers for the scheduler tests: lists of real servers named A, B, C... in IPVS's
//! list order, and pick sequences written as those names.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::{Algorithm, Packet};
use crate::table::{
    Command, Forward, Netmask, RealServer, RealServerState, ServerConfig, ServiceConfig,
    ServiceFlags, ServiceKey, Table, Tunnel, UnicastOnly,
};

/// A table with one service `key` (scheduler, flags, a 300 s persistence timeout,
/// netmask) and real servers at `servers` port 8080, weight 1, masquerading.
pub fn table_of(
    key: ServiceKey,
    scheduler: &str,
    flags: ServiceFlags,
    netmask: Netmask,
    servers: &[std::net::IpAddr],
) -> Table {
    let mut t = Table::new();
    t.apply(
        &Command::AddService(ServiceConfig {
            key,
            scheduler: scheduler.into(),
            flags,
            timeout: 300,
            netmask,
            pe: None,
            options: Default::default(),
        }),
        &UnicastOnly,
    )
    .unwrap()
    .carry_out();
    for addr in servers {
        let server = ServerConfig {
            options: Default::default(),
            addr: *addr,
            port: 8080,
            forward: Forward::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        };
        t.apply(
            &Command::AddServer {
                service: key,
                server,
            },
            &UnicastOnly,
        )
        .unwrap()
        .carry_out();
    }
    t
}

/// Servers A, B, C... with these weights, in this (list) order, at 10.0.0.1, .2, ...
pub fn servers(weights: &[u32]) -> Vec<RealServer> {
    weights
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let state = Arc::new(RealServerState::with_settings(*w, 0, 0, 0));
            RealServer {
                options: Default::default(),
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, i as u8 + 1)),
                port: 80,
                weight: *w,
                asked_weight: *w,
                drain: None,
                last_weight: *w,
                forward: Forward::Masq,
                u_threshold: 0,
                l_threshold: 0,
                tunnel: Tunnel::default(),
                state,
            }
        })
        .collect()
}

pub fn name(i: usize) -> char {
    (b'A' + i as u8) as char
}

pub fn packet(client: &str) -> Packet {
    Packet {
        client: client.parse().unwrap(),
        local: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 80),
    }
}

/// `n` picks from the same client, as a string of names ('-' for none).
pub fn sequence(algo: &dyn Algorithm, servers: &[RealServer], n: usize) -> String {
    let p = packet("198.51.100.7:40000");
    (0..n)
        .map(|_| {
            algo.pick(servers, ServiceFlags::default(), &p)
                .map_or('-', name)
        })
        .collect()
}

/// Sets a server's active and inactive connection counts.
pub fn load(server: &RealServer, active: u32, inactive: u32) {
    use std::sync::atomic::Ordering::Relaxed;
    server.state.active_conns.store(active, Relaxed);
    server.state.inactive_conns.store(inactive, Relaxed);
}

/// Marks a server overloaded by binding one connection under an upper threshold of 1.
pub fn overload(server: &RealServer) {
    let proof = crate::table::effect::CarryingOut::in_a_test();
    server.state.configure(server.weight, 1, 0, &proof);
    server.state.bind_connection(true);
}
