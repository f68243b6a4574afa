//! `uvs demo`: the seed lab in one command, with nothing else installed. Two built-in
//! HTTP backends answer `RS1` and `RS2`; a VIP on 127.0.0.1:8080 balances them round
//! robin, so `curl -s 127.0.0.1:8080` alternates. The table is built with the same
//! typed commands uvsadm sends.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::table::{
    Command, Forward, Netmask, Protocol, ServerConfig, ServiceConfig, ServiceFlags, ServiceKey,
    ServiceOptions, TableError, TableHandle, Tunnel,
};

/// The demo's VIP.
pub const VIP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// Answers any HTTP request on the connection with `body`, then closes.
async fn answer(mut stream: TcpStream, body: &'static str) {
    let mut request = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let read = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        true
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(10), read).await,
        Ok(true)
    ) {
        return;
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Starts a backend on an ephemeral loopback port; returns its address.
pub async fn start_backend(body: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(answer(stream, body));
            }
        }
    });
    Ok(addr)
}

/// The demo table: the VIP, round robin over the two backends.
pub fn commands(vip: SocketAddr, rs1: SocketAddr, rs2: SocketAddr) -> Vec<Command> {
    let key = ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: vip.ip(),
        port: vip.port(),
    };
    let server = |addr: SocketAddr| Command::AddServer {
        service: key,
        server: ServerConfig {
            addr: addr.ip(),
            port: addr.port(),
            forward: Forward::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        },
    };
    vec![
        Command::AddService(ServiceConfig {
            key,
            scheduler: "rr".into(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: Netmask::full(key.family()),
            pe: None,
            options: ServiceOptions::default(),
        }),
        // IPVS lists (and round-robins) the newest server first: add RS2 first so the
        // first request goes to RS1.
        server(rs2),
        server(rs1),
    ]
}

/// Starts the backends and loads the demo table with its service on `vip`.
pub async fn start(
    table: &Arc<TableHandle>,
    vip: SocketAddr,
) -> Result<(SocketAddr, SocketAddr), String> {
    let rs1 = start_backend("RS1\n")
        .await
        .map_err(|e| format!("cannot start the demo backend RS1: {e}"))?;
    let rs2 = start_backend("RS2\n")
        .await
        .map_err(|e| format!("cannot start the demo backend RS2: {e}"))?;
    for command in commands(vip, rs1, rs2) {
        table
            .apply(&command)
            .map_err(|e: TableError| format!("demo rule `{command}' refused: {e}"))?;
    }
    Ok((rs1, rs2))
}
