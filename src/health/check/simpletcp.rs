//! ldirectord's `service = simpletcp` negotiate check (also what `negotiate` speaks
//! without a `service`): connect, send `request` if there is one, and read until the
//! answer matches `receive` (up without one), failing when the peer closes first.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::io::{Bind, MAX_ANSWER, io_failure};
use super::receive::Receive;
use super::{BuildError, Endpoint, Failure, Outcome, Probe};
use crate::config::Check;

/// What is sent, and what the answer must match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleTcp {
    request: Option<String>,
    receive: Option<Receive>,
    /// Where it connects from.
    bind: Bind,
}

impl SimpleTcp {
    /// # Errors
    /// A `receive` that is not a regular expression.
    pub fn build(settings: &Check) -> Result<SimpleTcp, BuildError> {
        Ok(SimpleTcp {
            request: settings.request.clone(),
            receive: Receive::of(settings)?,
            bind: Bind::of(settings),
        })
    }
}

impl Probe for SimpleTcp {
    async fn run(&self, at: &Endpoint) -> Outcome {
        let mut stream = self.bind.connect(at.dest).await?;
        if let Some(request) = &self.request {
            stream
                .write_all(request.as_bytes())
                .await
                .map_err(io_failure)?;
        }
        let Some(re) = &self.receive else {
            return Ok(None);
        };
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.map_err(io_failure)?;
            answer.extend_from_slice(&buf[..n]);
            if re.is_match(&answer) {
                return Ok(None);
            }
            if n == 0 || answer.len() > MAX_ANSWER {
                return Err(Failure::NoMatch);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::receive::COMPILED;
    use super::super::testing::{
        answering, build_and_probe, built_from_everything, endpoint, negotiate, one_shot,
    };
    use super::super::{build, probe};
    use super::*;
    use crate::config::NegotiateService;
    use crate::table::Protocol;

    #[test]
    fn keeps_only_its_own_settings() {
        assert_eq!(
            built_from_everything(NegotiateService::SimpleTcp, SimpleTcp::build),
            SimpleTcp {
                request: Some("health".into()),
                receive: Some(Receive::new("^ok").unwrap()),
                bind: super::super::testing::everything_bind(),
            }
        );
    }

    #[tokio::test]
    async fn simpletcp_sends_the_request_and_matches_the_answer() {
        let check = Check {
            request: Some("PING\r\n".into()),
            receive: Some("^\\+PONG".into()),
            ..negotiate(NegotiateService::SimpleTcp)
        };
        let good = one_shot(b"+PONG\r\n", 6).await;
        assert_eq!(build_and_probe(good, Protocol::Tcp, &check).await, Ok(None));
        let bad = one_shot(b"-ERR\r\n", 6).await;
        assert_eq!(
            build_and_probe(bad, Protocol::Tcp, &check).await,
            Err(Failure::NoMatch)
        );
    }

    #[tokio::test]
    async fn the_built_check_holds_its_compiled_pattern_for_every_probe() {
        let server = answering(b"+PONG\r\n", 6, 2).await;
        let settings = Check {
            request: Some("PING\r\n".into()),
            receive: Some("^\\+PONG".into()),
            ..negotiate(NegotiateService::SimpleTcp)
        };
        let built = SimpleTcp::build(&settings).unwrap();
        assert_eq!(
            built.receive.as_ref().map(Receive::as_str),
            Some("^\\+PONG")
        );
        let compiled = COMPILED.with(|n| n.get());
        let check = build(&settings, None).unwrap();
        let at = endpoint(server, Protocol::Tcp);
        let timeout = std::time::Duration::from_secs(5);
        assert_eq!(probe(&*check, &at, timeout).await, Ok(None));
        assert_eq!(probe(&*check, &at, timeout).await, Ok(None));
        assert_eq!(
            COMPILED.with(|n| n.get()),
            compiled + 1,
            "once, by build; the probes compiled nothing"
        );
    }
}
