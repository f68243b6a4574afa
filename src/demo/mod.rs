//! `uvs demo`: the seed lab in one command, with nothing else installed. Two built-in
//! backends answer `RS1` and `RS2`, over HTTP and to any UDP datagram; a VIP on
//! 127.0.0.1:8080 balances them round robin in both protocols, so `curl -s
//! 127.0.0.1:8080` alternates, and so do new UDP clients. The table is built with the
//! same typed commands uvsadm sends.
//!
//! - `ready`: the VIP really listened on before the banner says so;
//! - `hints`: the banner's commands to try, with programs the user's shell can run.

pub mod hints;
pub mod ready;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use crate::table::{
    Command, Protocol, ServerConfig, ServiceConfig, ServiceKey, TableError, TableHandle,
};

/// The demo's VIP.
pub const VIP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);

/// The demo's control socket: `--socket` (`flag`), else `$UVS_SOCKET` when set and not
/// empty, else a fresh `uvs-demo-PID/uvs.sock` in the temporary directory (the demo
/// runs beside any daemon of the user's). The directory is made here (0700) when it is
/// not there yet, and then removed when the [`DemoSocket`] is dropped.
pub fn socket(flag: Option<PathBuf>) -> DemoSocket {
    use std::os::unix::fs::DirBuilderExt;
    match crate::control::socket_path::chosen(flag) {
        (
            path,
            crate::control::socket_path::Rule::Flag | crate::control::socket_path::Rule::Env,
        ) => DemoSocket { path, made: None },
        _ => {
            let dir = std::env::temp_dir().join(format!("uvs-demo-{}", std::process::id()));
            // Not there before: this process's to remove. Already there (a pid reused
            // after a demo killed with SIGKILL): left as it is; the daemon's bind checks
            // whose it is.
            let made = std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .is_ok()
                .then(|| dir.clone());
            DemoSocket {
                path: dir.join("uvs.sock"),
                made,
            }
        }
    }
}

/// The demo's control socket path, and the directory the demo made for it: removed on
/// drop, with the socket if the daemon left it (so every run leaves nothing behind in
/// `$TMPDIR`). Drop it after the daemon has stopped.
#[derive(Debug)]
pub struct DemoSocket {
    path: PathBuf,
    made: Option<PathBuf>,
}

impl DemoSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DemoSocket {
    fn drop(&mut self) {
        if let Some(dir) = &self.made {
            let _ = std::fs::remove_file(&self.path);
            // Only if empty: anything else put there is not the demo's to remove.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Why the demo could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A built-in backend could not bind its loopback port.
    #[error("cannot start the demo backend {name}: {error}")]
    Backend {
        name: &'static str,
        error: std::io::Error,
    },
    /// The table refused one of the demo's rules (`command`, as uvsadm writes it).
    #[error("demo rule `{command}' refused: {error}")]
    Rule { command: String, error: TableError },
}

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

/// Starts a backend on an ephemeral port of `host` (a loopback address); returns its
/// address.
pub async fn start_backend(host: IpAddr, body: &'static str) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind((host, 0)).await?;
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

/// Starts a UDP backend answering `body` to every datagram, on `host` and `port` if it is
/// free (the TCP backend's, so one address serves both), else on an ephemeral port.
pub async fn start_udp_backend(
    host: IpAddr,
    port: u16,
    body: &'static str,
) -> std::io::Result<SocketAddr> {
    let socket = match UdpSocket::bind((host, port)).await {
        Ok(s) => s,
        Err(_) => UdpSocket::bind((host, 0)).await?,
    };
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            if let Ok((_, from)) = socket.recv_from(&mut buf).await {
                let _ = socket.send_to(body.as_bytes(), from).await;
            }
        }
    });
    Ok(addr)
}

/// The demo table for one protocol: the VIP, round robin over the two backends.
pub fn commands(
    protocol: Protocol,
    vip: SocketAddr,
    rs1: SocketAddr,
    rs2: SocketAddr,
) -> Vec<Command> {
    let key = ServiceKey::Inet {
        protocol,
        addr: vip.ip(),
        port: vip.port(),
    };
    let server = |addr: SocketAddr| Command::AddServer {
        service: key,
        server: ServerConfig::masq(addr, 1),
    };
    vec![
        Command::AddService(ServiceConfig::new(key, "rr")),
        // IPVS lists (and round-robins) the newest server first: add RS2 first so the
        // first request goes to RS1.
        server(rs2),
        server(rs1),
    ]
}

/// The demo's backends: where RS1 and RS2 answer over TCP and over UDP.
#[derive(Debug, Clone, Copy)]
pub struct Backends {
    pub tcp: (SocketAddr, SocketAddr),
    pub udp: (SocketAddr, SocketAddr),
}

/// Starts the backends and loads the demo table with its services on `vip`.
///
/// # Errors
/// [`DemoError`]: a backend's bind failed, or the table refused a rule (a VIP that is
/// not an address the table takes).
pub async fn start(table: &Arc<TableHandle>, vip: SocketAddr) -> Result<Backends, DemoError> {
    let failed = |name: &'static str, error: std::io::Error| DemoError::Backend { name, error };
    // IPVS forwards within one family: the backends take the VIP's loopback.
    let host = match vip {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    let rs1 = start_backend(host, "RS1\n")
        .await
        .map_err(|e| failed("RS1", e))?;
    let rs2 = start_backend(host, "RS2\n")
        .await
        .map_err(|e| failed("RS2", e))?;
    let udp1 = start_udp_backend(host, rs1.port(), "RS1\n")
        .await
        .map_err(|e| failed("RS1 (UDP)", e))?;
    let udp2 = start_udp_backend(host, rs2.port(), "RS2\n")
        .await
        .map_err(|e| failed("RS2 (UDP)", e))?;
    let all = commands(Protocol::Tcp, vip, rs1, rs2)
        .into_iter()
        .chain(commands(Protocol::Udp, vip, udp1, udp2));
    for command in all {
        table
            .apply(&command)
            .map_err(|error: TableError| DemoError::Rule {
                command: command.to_string(),
                error,
            })?;
    }
    Ok(Backends {
        tcp: (rs1, rs2),
        udp: (udp1, udp2),
    })
}
