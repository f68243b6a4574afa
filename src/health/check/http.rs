//! ldirectord's `service = http` negotiate check: an HTTP/1.0 request for `request`
//! (`/` without one) with `virtualhost` as Host (the server's address without one), the
//! answer's status within `status` (2xx without one) and its body matching `receive`.
//! No chunked answers: HTTP/1.0 servers do not send them. `https` speaks it over TLS.

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::io::{io_failure, read_answer};
use super::receive::{Receive, matches};
use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::Check;

/// An HTTP request and what its answer must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// The path asked for, starting with `/`.
    path: String,
    /// The Host header; the server's address without one.
    pub(super) virtualhost: Option<String>,
    /// GET or HEAD.
    method: String,
    /// The statuses taken as healthy, inclusive.
    status: (u16, u16),
    /// What the body must match.
    receive: Option<Receive>,
}

impl Http {
    /// # Errors
    /// A `receive` that is not a regular expression.
    pub fn build(settings: &Check) -> Result<Http, BuildError> {
        let path = settings.request.as_deref().unwrap_or("/");
        Ok(Http {
            path: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
            virtualhost: settings.virtualhost.clone(),
            method: settings.method.clone().unwrap_or_else(|| "GET".into()),
            status: settings.status.unwrap_or((200, 299)),
            receive: Receive::of(settings)?,
        })
    }
}

impl Probe for Http {
    async fn run(&self, at: &Endpoint) -> Outcome {
        let mut stream = TcpStream::connect(at.dest).await.map_err(io_failure)?;
        self.exchange(at, &mut stream).await?;
        Ok(None)
    }
}

impl Http {
    /// The request and its answer over `stream`, plain or TLS.
    pub(super) async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        at: &Endpoint,
        stream: &mut S,
    ) -> Result<(), Failure> {
        let host = self
            .virtualhost
            .clone()
            .unwrap_or_else(|| at.dest.ip().to_string());
        let request = format!(
            "{} {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: uvs-health-check\r\nConnection: close\r\n\r\n",
            self.method, self.path
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(io_failure)?;
        let answer = read_answer(stream).await?;
        let head_end = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| Failure::Garbled("no HTTP answer".into()))?;
        let status_line = answer[..head_end]
            .split(|&b| b == b'\n')
            .next()
            .unwrap_or(&[]);
        let status: u16 = std::str::from_utf8(status_line)
            .ok()
            .filter(|l| l.starts_with("HTTP/"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Failure::Garbled("no HTTP status line".into()))?;
        let (low, high) = self.status;
        if !(low..=high).contains(&status) {
            return Err(Failure::Status(status));
        }
        matches(self.receive.as_ref(), &answer[head_end + 4..])
    }
}

#[cfg(test)]
mod tests {
    use super::super::receive::COMPILED;
    use tokio::io::AsyncReadExt;

    use super::super::testing::{built_from_everything, endpoint, negotiate};
    use super::super::{build, probe};
    use super::*;
    use crate::config::NegotiateService;
    use crate::table::Protocol;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            built_from_everything(NegotiateService::Http, Http::build),
            Http {
                path: "/health".into(),
                virtualhost: Some("www.test".into()),
                method: "HEAD".into(),
                status: (200, 399),
                receive: Some(Receive::new("^ok").unwrap()),
            }
        );
    }

    /// An HTTP server that reads each of its first `clients` requests to its end, then
    /// answers `answer` and closes.
    async fn http_server(answer: &'static [u8], clients: usize) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..clients {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn receive_is_compiled_when_built_and_never_by_a_probe() {
        let server = http_server(b"HTTP/1.0 200 OK\r\n\r\nok then", 3).await;
        let settings = Check {
            receive: Some("^ok".into()),
            ..negotiate(NegotiateService::Http)
        };
        let before = COMPILED.with(|n| n.get());
        let check = build(&settings, None).unwrap();
        assert_eq!(COMPILED.with(|n| n.get()), before + 1, "compiled by build");
        let at = endpoint(server, Protocol::Tcp);
        for _ in 0..3 {
            assert_eq!(
                probe(&*check, &at, std::time::Duration::from_secs(5)).await,
                Ok(None)
            );
        }
        assert_eq!(
            COMPILED.with(|n| n.get()),
            before + 1,
            "three probes compiled nothing"
        );
    }
}
