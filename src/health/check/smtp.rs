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
}

impl Smtp {
    pub fn build(settings: &Check) -> Smtp {
        Smtp {
            helo: settings.helo.clone(),
            hosts: settings.hosts.clone().unwrap_or_default(),
            bind: Bind::of(settings),
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
            self.converse(at.dest).await?;
        }
        for &host in &self.hosts {
            self.converse(host)
                .await
                .map_err(|f| Failure::At(format!("host {host}"), Box::new(f)))?;
        }
        Ok(None)
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
}
