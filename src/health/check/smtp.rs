//! ldirectord's `service = smtp` negotiate check: the server is up when it greets with
//! 220; the check then says QUIT.
//!
//! keepalived's SMTP_CHECK (keepalived/check/check_smtp.c, `smtp_engine_thread`) goes
//! on with `helo`: after the 220 it sends `HELO name`, wants 250, sends QUIT and reads
//! the answer to it; a status is three digits followed by a space or the line's end
//! (`smtp_get_status`). Its `host` blocks are checkers of their own, every one of which
//! must be up for the real server to be (`smtp_check_end_handler`): `hosts`, each
//! checked in turn.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::io::{Bind, io_failure};
use super::{Endpoint, Failure, Outcome, Probe};
use crate::config::Check;

/// The longest line read.
const MAX_LINE: usize = 4096;

/// The SMTP greeting, and HELO with a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Smtp {
    /// Sent in HELO; without it only the banner is read (ldirectord).
    helo: Option<String>,
    /// The addresses checked instead of the server's own, each of which must pass.
    hosts: Vec<SocketAddr>,
    bind: Bind,
    /// The bound of each host's conversation (the check's timeout).
    each: std::time::Duration,
}

impl Smtp {
    pub fn build(settings: &Check) -> Smtp {
        Smtp {
            helo: settings.helo.clone(),
            hosts: settings.hosts.clone().unwrap_or_default(),
            bind: Bind::of(settings),
            each: super::each_of(settings),
        }
    }

    /// One conversation with the server at `dest`.
    async fn converse(&self, dest: SocketAddr) -> Result<(), Failure> {
        let mut stream = self.bind.connect(dest).await?;
        let banner = line(&mut stream).await?;
        let Some(helo) = &self.helo else {
            if !banner.starts_with("220") {
                return Err(Failure::Garbled(format!("SMTP banner `{banner}'")));
            }
            let _ = stream.write_all(b"QUIT\r\n").await;
            return Ok(());
        };
        if status(&banner) != Some(220) {
            return Err(Failure::Garbled(format!("SMTP banner `{banner}'")));
        }
        let answer = say(&mut stream, &format!("HELO {helo}\r\n")).await?;
        if status(&answer) != Some(250) {
            return Err(Failure::Garbled(format!(
                "SMTP answer `{answer}' to HELO {helo}"
            )));
        }
        say(&mut stream, "QUIT\r\n").await.map(drop)
    }
}

impl Probe for Smtp {
    async fn run(&self, at: &Endpoint) -> Outcome {
        if self.hosts.is_empty() {
            super::each_bounded(self.each, self.converse(at.dest)).await?;
        }
        for &host in &self.hosts {
            super::each_bounded(self.each, self.converse(host))
                .await
                .map_err(|f| Failure::At(format!("host {host}"), Box::new(f)))?;
        }
        Ok(None)
    }

    fn connections(&self) -> u32 {
        u32::try_from(self.hosts.len().max(1)).unwrap_or(u32::MAX)
    }
}

/// Says `what` and reads the answer's line.
async fn say(stream: &mut TcpStream, what: &str) -> Result<String, Failure> {
    stream
        .write_all(what.as_bytes())
        .await
        .map_err(io_failure)?;
    line(stream).await
}

/// One line of the server's, without its end; the peer closing before one is a failure
/// (keepalived's "Read failure").
async fn line(stream: &mut TcpStream) -> Result<String, Failure> {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\n") && got.len() < MAX_LINE {
        if stream.read(&mut byte).await.map_err(io_failure)? == 0 {
            if got.is_empty() {
                return Err(Failure::Garbled("SMTP: closed without a word".into()));
            }
            break;
        }
        got.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&got).trim().to_string())
}

/// An SMTP line's status: three digits, then a space or nothing (check_smtp.c's
/// `smtp_get_status`; "250-" of a multi-line answer is not one).
fn status(line: &str) -> Option<u16> {
    let digits = line.get(..3)?;
    let rest = &line[3..];
    (digits.bytes().all(|b| b.is_ascii_digit()) && (rest.is_empty() || rest.starts_with(' ')))
        .then(|| digits.parse().ok())?
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build_and_probe, negotiate, one_shot};
    use super::*;
    use crate::config::NegotiateService;
    use crate::table::Protocol;

    #[tokio::test]
    async fn smtp_wants_a_220_banner() {
        let good = one_shot(b"220 mail ESMTP ready\r\n", 0).await;
        assert_eq!(
            build_and_probe(good, Protocol::Tcp, &negotiate(NegotiateService::Smtp)).await,
            Ok(None)
        );
        let busy = one_shot(b"421 too busy\r\n", 0).await;
        assert_eq!(
            build_and_probe(busy, Protocol::Tcp, &negotiate(NegotiateService::Smtp)).await,
            Err(Failure::Garbled("SMTP banner `421 too busy'".into()))
        );
    }

    /// An SMTP server for one client: greets with `banner`, answers the first line it
    /// reads with `helo_answer` and the next with 221; sends back the lines it read.
    async fn smtp_server(
        banner: &'static str,
        helo_answer: &'static str,
    ) -> (SocketAddr, tokio::sync::oneshot::Receiver<Vec<String>>) {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (said, heard) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let mut s = BufReader::new(s);
            let mut lines = Vec::new();
            let _ = s.get_mut().write_all(banner.as_bytes()).await;
            for answer in [helo_answer, "221 bye\r\n"] {
                let mut line = String::new();
                if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                    break;
                }
                lines.push(line);
                let _ = s.get_mut().write_all(answer.as_bytes()).await;
            }
            let _ = said.send(lines);
        });
        (addr, heard)
    }

    fn helo(name: &str) -> Check {
        Check {
            helo: Some(name.into()),
            ..negotiate(NegotiateService::Smtp)
        }
    }

    #[tokio::test]
    async fn with_helo_a_250_is_wanted_then_quit_is_said() {
        let (server, heard) = smtp_server("220 mail ESMTP\r\n", "250 hello\r\n").await;
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &helo("lb.test")).await,
            Ok(None)
        );
        assert_eq!(heard.await.unwrap(), ["HELO lb.test\r\n", "QUIT\r\n"]);
    }

    #[tokio::test]
    async fn with_helo_another_answer_is_down_naming_it() {
        let (server, _) = smtp_server("220 mail ESMTP\r\n", "550 go away\r\n").await;
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &helo("lb.test")).await,
            Err(Failure::Garbled(
                "SMTP answer `550 go away' to HELO lb.test".into()
            ))
        );
        // smtp_get_status: three digits and a space or the end, so not "250-".
        let (server, _) = smtp_server("220 mail ESMTP\r\n", "250-hello\r\n").await;
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &helo("lb.test")).await,
            Err(Failure::Garbled(
                "SMTP answer `250-hello' to HELO lb.test".into()
            ))
        );
        let (server, _) = smtp_server("220-mail\r\n", "250 hello\r\n").await;
        assert_eq!(
            build_and_probe(server, Protocol::Tcp, &helo("lb.test")).await,
            Err(Failure::Garbled("SMTP banner `220-mail'".into()))
        );
    }

    #[tokio::test]
    async fn every_host_is_checked_and_a_failure_names_its_host() {
        let (first, heard) = smtp_server("220 a\r\n", "250 a\r\n").await;
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let check = Check {
            hosts: Some(vec![first, closed]),
            ..helo("lb.test")
        };
        // The server's own address is not asked: only the hosts.
        let unused = "127.0.0.1:1".parse().unwrap();
        assert_eq!(
            build_and_probe(unused, Protocol::Tcp, &check)
                .await
                .unwrap_err()
                .to_string(),
            format!("host {closed}: connection refused")
        );
        assert_eq!(heard.await.unwrap().len(), 2, "the first host was checked");
        let (a, _) = smtp_server("220 a\r\n", "250 a\r\n").await;
        let (b, _) = smtp_server("220 b\r\n", "250 b\r\n").await;
        let check = Check {
            hosts: Some(vec![a, b]),
            ..helo("lb.test")
        };
        assert_eq!(
            build_and_probe(unused, Protocol::Tcp, &check).await,
            Ok(None)
        );
    }
}
