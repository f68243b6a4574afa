//! What the tests of the check kinds share: an endpoint on loopback, settings of a
//! negotiate kind, a one-answer TCP server, build-then-probe, and what a kind keeps of
//! settings that set everything.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{BuildError, Endpoint, Outcome, build, probe};
use crate::config::{Check, CheckKind, NegotiateService};
use crate::health::Target;
use crate::table::{Protocol, ServerKey, ServiceKey};

/// The server at `dest`, of a service at 127.0.0.1:1.
pub fn endpoint(dest: SocketAddr, protocol: Protocol) -> Endpoint {
    Endpoint {
        target: Target {
            service: ServiceKey::Inet {
                protocol,
                addr: Ipv4Addr::LOCALHOST.into(),
                port: 1,
            },
            server: ServerKey {
                addr: dest.ip(),
                port: dest.port(),
            },
        },
        protocol,
        vip: "127.0.0.1".into(),
        vport: 1,
        dest,
        weight: 1,
    }
}

pub fn negotiate(service: NegotiateService) -> Check {
    Check {
        kind: Some(CheckKind::Negotiate),
        service: Some(service),
        ..Check::default()
    }
}

/// Builds the check `settings` ask for and probes `dest` once, within 5 s.
pub async fn build_and_probe(dest: SocketAddr, protocol: Protocol, settings: &Check) -> Outcome {
    let check = build(settings, None).unwrap();
    probe(&*check, &endpoint(dest, protocol), Duration::from_secs(5)).await
}

/// A TCP server that writes `answer` to each of its first `clients` clients after
/// reading `wait_for` bytes.
pub async fn answering(answer: &'static [u8], wait_for: usize, clients: usize) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..clients {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut got = vec![0u8; wait_for];
                let _ = s.read_exact(&mut got).await;
                let _ = s.write_all(answer).await;
            }
        }
    });
    addr
}

/// A TCP server that answers its first client only.
pub async fn one_shot(answer: &'static [u8], wait_for: usize) -> SocketAddr {
    answering(answer, wait_for, 1).await
}

/// What a negotiate kind's `build` makes of [`everything`] for `service`: each kind's
/// `keeps_only_its_own_settings`.
pub fn built_from_everything<T>(
    service: NegotiateService,
    build: impl Fn(&Check) -> Result<T, BuildError>,
) -> T {
    build(&everything(CheckKind::Negotiate, Some(service))).unwrap()
}

/// Settings with every field set, to show what each kind keeps of them.
pub fn everything(kind: CheckKind, service: Option<NegotiateService>) -> Check {
    Check {
        kind: Some(kind),
        service,
        port: Some(8080),
        interval: Some(Duration::from_secs(3)),
        timeout: Some(Duration::from_secs(2)),
        failures: Some(3),
        rise: Some(2),
        request: Some("health".into()),
        receive: Some("^ok".into()),
        virtualhost: Some("www.test".into()),
        method: Some("HEAD".into()),
        status: Some(vec![(200, 399)]),
        command: Some(crate::config::CheckCommand::Line("/bin/check -v".into())),
        target_arguments: Some(false),
        transport: Some(crate::table::Protocol::Udp),
        dynamic_weight: Some(true),
        verify_certificate: Some(true),
        warmup: Some(Duration::from_secs(1)),
        retry_delay: Some(Duration::from_secs(1)),
        failures_at_start: Some(1),
        user: Some("root".into()),
        group: None,
        digest: Some("9b3a0c85a887a256d6939da88aabd8cd".into()),
        // Several URLs would stand for `request`: http's own tests show them.
        urls: None,
        query_type: Some(crate::config::DnsType::Aaaa),
        require_answer: Some(false),
        path: Some("/run/weight".into()),
        file_weight: Some(-3),
        reverse: Some(true),
        helo: Some("lb.test".into()),
        source: Some(Ipv4Addr::new(127, 0, 0, 5).into()),
        source_port: Some(4000),
        address: Some(Ipv4Addr::new(127, 0, 0, 9).into()),
        hosts: Some(vec!["127.0.0.9:25".parse().unwrap()]),
    }
}

/// Where [`everything`] connects from.
pub fn everything_bind() -> super::io::Bind {
    super::io::Bind {
        source: Some(Ipv4Addr::new(127, 0, 0, 5).into()),
        port: Some(4000),
    }
}
