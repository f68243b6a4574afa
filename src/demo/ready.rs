//! Whether the demo's VIP is really served before the demo says it is: the listener
//! manager's first round either listens on the VIP, TCP and UDP, or records why it
//! cannot (a port another program holds), and the demo then stops with that cause
//! instead of printing a banner whose hints would reach the other program. Called by
//! `main` between starting the daemon and printing the banner.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proxy::director::Director;
use crate::proxy::low_port;
use crate::table::{ListenAddr, Protocol};

/// How often the listeners' states are read while waiting for the first round.
const POLL: Duration = Duration::from_millis(20);

/// Why the demo cannot serve its VIP.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the demo cannot listen on {protocol} {vip}: {reason} (choose another address with --vip ADDR:PORT{})",
    hint.as_ref().map_or(String::new(), |h| format!("; or: {h}"))
)]
pub struct NotListening {
    /// "TCP" or "UDP".
    pub protocol: &'static str,
    pub vip: SocketAddr,
    /// The bind's error, as the listener manager recorded it.
    pub reason: String,
    /// For a low port this process may not bind, what to do (`proxy::low_port::hint`).
    pub hint: Option<String>,
}

/// The low-port hint for a bind that failed with `reason`, an `io::Error`'s text
/// ("Permission denied (os error 13)": the code is read back from it).
fn low_port_hint(listen: &ListenAddr, reason: &str) -> Option<String> {
    let code = reason.rsplit_once("(os error ")?.1.strip_suffix(')')?;
    let error = std::io::Error::from_raw_os_error(code.parse().ok()?);
    let start = low_port::unprivileged_port_start()?;
    let program = std::env::current_exe().ok()?;
    low_port::hint(listen, &error, start, &program.display().to_string())
}

/// Waits until `director`'s listeners have tried `vip` over TCP and UDP: Ok when both
/// listen, else the first that cannot. Waits as long as the listener manager has not
/// tried them (it runs once the daemon serves).
///
/// # Errors
/// [`NotListening`], with the bind's error ("Address already in use (os error 98)").
pub async fn listening(director: &Director, vip: SocketAddr) -> Result<(), NotListening> {
    let wanted = [(Protocol::Tcp, "TCP"), (Protocol::Udp, "UDP")].map(|(protocol, name)| {
        (
            ListenAddr {
                protocol,
                addr: vip.ip(),
                port: vip.port(),
            },
            name,
        )
    });
    loop {
        let report = director.listeners.report();
        let state = |listen: &ListenAddr| {
            report
                .iter()
                .find(|r| r.listen == *listen)
                .map(|r| r.state.error.clone())
        };
        let mut tried = 0;
        for (listen, name) in &wanted {
            match state(listen) {
                Some(Some(reason)) => {
                    return Err(NotListening {
                        protocol: name,
                        vip,
                        hint: low_port_hint(listen, &reason),
                        reason,
                    });
                }
                Some(None) => tried += 1,
                None => {}
            }
        }
        if tried == wanted.len() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}
