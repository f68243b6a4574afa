//! Whether the demo's VIP is really served before the demo says it is: the listener
//! manager's first round either listens on the VIP, TCP and UDP, or records why it
//! cannot (a port another program holds), and the demo then stops with that cause
//! instead of printing a banner whose hints would reach the other program. Called by
//! `main` between starting the daemon and printing the banner.

use std::net::SocketAddr;
use std::time::Duration;

use crate::proxy::director::Director;
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
    /// For a low port this process may not bind, what to do (the listener manager's
    /// `proxy::low_port::hint`).
    pub hint: Option<String>,
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
                .map(|r| (r.state.error.clone(), r.state.hint.clone()))
        };
        let mut tried = 0;
        for (listen, name) in &wanted {
            match state(listen) {
                Some((Some(reason), hint)) => {
                    return Err(NotListening {
                        protocol: name,
                        vip,
                        hint,
                        reason,
                    });
                }
                Some((None, _)) => tried += 1,
                None => {}
            }
        }
        if tried == wanted.len() {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}
