//! Commands that build benchmark tables: service `i` is 10.0.0.0+i, tcp port 80; its real
//! server `j` is 192.168.0.0+j:8080. Shared by the benches (each bench is its own crate).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use uvs::table::{
    Command, Forward, Netmask, Protocol, ServerConfig, ServiceConfig, ServiceFlags, ServiceKey,
    Tunnel,
};

pub fn service(i: u32) -> ServiceKey {
    ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)),
        port: 80,
    }
}

/// Adds service `i` with this scheduler, persistent for 300 s when `persistent`.
pub fn add_service(i: u32, scheduler: &str, persistent: bool) -> Command {
    let key = service(i);
    Command::AddService(ServiceConfig {
        key,
        scheduler: scheduler.into(),
        flags: ServiceFlags(if persistent {
            ServiceFlags::PERSISTENT
        } else {
            0
        }),
        timeout: if persistent { 300 } else { 0 },
        netmask: Netmask::full(key.family()),
        pe: None,
        options: Default::default(),
    })
}

/// Adds real server `j` to service `i`, with weights 1..=5 in turn.
pub fn add_server(i: u32, j: u32) -> Command {
    Command::AddServer {
        service: service(i),
        server: ServerConfig {
            options: Default::default(),
            addr: IpAddr::V4(Ipv4Addr::from(0xc0a8_0000 + j)),
            port: 8080,
            forward: Forward::Masq,
            weight: 1 + (j % 5) as i32,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        },
    }
}
