//! ldirectord's `service = smtp` negotiate check: the server is up when it greets with
//! 220; the check then says QUIT.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::io::io_failure;
use super::{Endpoint, Failure, Outcome, Probe};

/// The SMTP greeting; no settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Smtp;

impl Probe for Smtp {
    async fn run(&self, at: &Endpoint) -> Outcome {
        let mut stream = TcpStream::connect(at.dest).await.map_err(io_failure)?;
        let mut banner = Vec::new();
        let mut buf = [0u8; 1024];
        while !banner.contains(&b'\n') && banner.len() < 4096 {
            let n = stream.read(&mut buf).await.map_err(io_failure)?;
            if n == 0 {
                break;
            }
            banner.extend_from_slice(&buf[..n]);
        }
        if !banner.starts_with(b"220") {
            let line = String::from_utf8_lossy(&banner).trim().to_string();
            return Err(Failure::Garbled(format!("SMTP banner `{line}'")));
        }
        let _ = stream.write_all(b"QUIT\r\n").await;
        Ok(None)
    }
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
