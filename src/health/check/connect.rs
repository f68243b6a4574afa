//! ldirectord's `checktype = connect`: a TCP server is up when it accepts a connection;
//! a UDP server when it answers a datagram (`request`, empty without one) with one that
//! matches `receive` (any answer without one), and down when the port is refused.

use super::io::{Bind, udp_exchange};
use super::receive::{Receive, matches};
use super::{BuildError, Endpoint, Outcome, Probe};
use crate::config::Check;
use crate::table::Protocol;

/// Connect; over UDP, with what it sends and expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// UDP only: the datagram sent.
    request: String,
    /// UDP only: what the answer must match.
    receive: Option<Receive>,
    /// Where it connects from (keepalived's TCP_CHECK `bindto`, `bind_port`).
    bind: Bind,
}

impl Connect {
    /// # Errors
    /// A `receive` that is not a regular expression.
    pub fn build(settings: &Check) -> Result<Connect, BuildError> {
        Ok(Connect {
            request: settings.request.clone().unwrap_or_default(),
            receive: Receive::of(settings)?,
            bind: Bind::of(settings),
        })
    }
}

impl Probe for Connect {
    async fn run(&self, at: &Endpoint) -> Outcome {
        match at.protocol {
            Protocol::Udp => {
                let answer = udp_exchange(&self.bind, at.dest, self.request.as_bytes()).await?;
                matches(self.receive.as_ref(), &answer)?;
            }
            _ => drop(self.bind.connect(at.dest).await?),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Failure;
    use super::super::testing::{build_and_probe, everything};
    use super::*;
    use crate::config::CheckKind;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            Connect::build(&everything(CheckKind::Connect, None)).unwrap(),
            Connect {
                request: "health".into(),
                receive: Some(Receive::new("^ok").unwrap()),
                bind: super::super::testing::everything_bind(),
            }
        );
    }

    #[tokio::test]
    async fn a_udp_connect_check_is_refused_by_a_closed_port() {
        let closed = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let check = Check {
            kind: Some(CheckKind::Connect),
            ..Check::default()
        };
        assert_eq!(
            build_and_probe(closed, Protocol::Udp, &check).await,
            Err(Failure::Refused)
        );
    }

    #[tokio::test]
    async fn a_source_is_where_the_check_connects_from_and_is_named_in_its_failures() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        let check = Check {
            kind: Some(CheckKind::Connect),
            source: Some("127.0.0.5".parse().unwrap()),
            ..Check::default()
        };
        let (probed, accepted) = tokio::join!(
            build_and_probe(server, Protocol::Tcp, &check),
            listener.accept()
        );
        assert_eq!(probed, Ok(None));
        assert_eq!(accepted.unwrap().1.ip().to_string(), "127.0.0.5");
        drop(listener);
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &check)
                .await
                .unwrap_err()
                .to_string(),
            "from 127.0.0.5:0: connection refused"
        );
    }

    #[tokio::test]
    async fn a_source_port_is_bound_too() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = listener.local_addr().unwrap();
        // A port free now, for the check to bind.
        let port = std::net::TcpListener::bind("127.0.0.6:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let check = Check {
            kind: Some(CheckKind::Connect),
            source: Some("127.0.0.6".parse().unwrap()),
            source_port: Some(port),
            ..Check::default()
        };
        let (probed, accepted) = tokio::join!(
            build_and_probe(server, Protocol::Tcp, &check),
            listener.accept()
        );
        assert_eq!(probed, Ok(None));
        assert_eq!(accepted.unwrap().1.to_string(), format!("127.0.0.6:{port}"));
    }
}
