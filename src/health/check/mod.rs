//! The health checks, one type per kind, behind one trait ([`HealthCheck`], as
//! pingora's `HealthCheck` with its `TcpHealthCheck` and `HttpHealthCheck`): each type
//! holds only its own settings, taken from the configuration's [`Check`] once, when the
//! checker (re)builds a server's check ([`build`]), so a `receive` pattern is compiled
//! then and never per probe. A probe says why it failed ([`Failure`]), in words for the
//! log and `uvs status`. Built and run by the checker tasks (`checker`).
//!
//! The kinds are ldirectord's: `on`, `off`, `connect`, `external`, and `negotiate`
//! speaking http, https, simpletcp, smtp or dns; ldirectord's maintenance files stand in
//! front of any of them ([`maintenance`]). keepalived's add to them: http's `digest`,
//! status lists and several URLs, dns's query types, smtp's HELO and hosts, a source
//! address for the TCP ones (`io::Bind`), and the `file` kind (FILE_CHECK).
//!
//! # Adding a check kind
//!
//! (keepalived's PING_CHECK or BFD_CHECK, if uvs ever speaks ICMP or BFD...)
//!
//! 1. One file here, say `ping.rs`: a `//!` header naming the ldirectord/keepalived
//!    check it copies; a type holding only the settings it reads, each parsed, compiled
//!    ([`Receive`] for a pattern) and defaulted in its `build(&Check) -> Result<Self,
//!    BuildError>`; `impl Probe` (its `async fn run`); and tests,
//!    against a real server on 127.0.0.1, of `build` keeping only its settings and of
//!    the probe's up and down.
//! 2. One line in [`build`] (`CheckKind::Ping => Box::new(Ping::build(settings)?)`),
//!    beside its `mod` line.
//!
//! The kind's name and any new setting are the configuration's to read and validate
//! (`config::CheckKind`, `config::Check`, `config::schema`), as for every kind.

mod connect;
mod dns;
mod external;
mod file;
mod http;
mod https;
mod io;
pub mod maintenance;
mod off;
mod on;
mod receive;
mod simpletcp;
mod smtp;
#[cfg(test)]
mod testing;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

pub use connect::Connect;
pub use dns::Dns;
pub use external::External;
pub use file::File;
pub use http::Http;
pub use https::Https;
pub use maintenance::Maintenance;
pub use off::{Off, Unbuildable};
pub use on::On;
pub use receive::Receive;
pub use simpletcp::SimpleTcp;
pub use smtp::Smtp;

use super::Target;
use crate::config::{Check, CheckKind, NegotiateService};
use crate::printable::Printable;
use crate::table::Protocol;

/// What one probe comes to: Ok with the weight an external check with dynamic weights
/// asked for (None: keep the configured one), or why the server failed it.
pub type Outcome = Result<Option<u32>, Failure>;

/// A probe in progress; boxed so that checks of every kind fit one trait object.
pub type Probing<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// One kind of health check, with its settings: what the checker holds, one trait
/// object per checked server. Every kind gets it from [`Probe`].
pub trait HealthCheck: fmt::Debug + Send + Sync {
    /// Probes the real server at `at` once. Unbounded in time: [`probe`] bounds it, and
    /// dropping the future releases what it holds (sockets, an external command's
    /// process group).
    fn probe<'a>(&'a self, at: &'a Endpoint) -> Probing<'a>;

    /// How many connections one probe makes, one after the other, each bounded by the
    /// check's timeout (keepalived's `connect_timeout` is per connection): an HTTP
    /// check's URLs, an SMTP check's hosts. [`probe`] bounds the whole by as many.
    fn connections(&self) -> u32 {
        1
    }
}

/// What a kind implements: its probe as a plain `async fn run`. The boxing that lets
/// every kind sit behind [`HealthCheck`] is written once, here.
pub trait Probe: fmt::Debug + Send + Sync {
    /// Probes the real server at `at` once (see [`HealthCheck::probe`]).
    fn run(&self, at: &Endpoint) -> impl Future<Output = Outcome> + Send;

    /// As [`HealthCheck::connections`]: one unless the kind makes several.
    fn connections(&self) -> u32 {
        1
    }
}

impl<K: Probe> HealthCheck for K {
    fn probe<'a>(&'a self, at: &'a Endpoint) -> Probing<'a> {
        Box::pin(self.run(at))
    }

    fn connections(&self) -> u32 {
        Probe::connections(self)
    }
}

/// The real server a check probes, as the probe sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub target: Target,
    /// The service's transport (fwmark groups are checked over TCP).
    pub protocol: Protocol,
    /// What `external` commands get as vip and vport.
    pub vip: String,
    pub vport: u16,
    /// Where the probe goes: the server (or the check's `address`), on the check port
    /// if there is one.
    pub dest: SocketAddr,
    /// The server's configured weight, which a `file` check adds to.
    pub weight: i32,
}

/// A check's settings that cannot be used; the configuration refuses them with the same
/// words (`config::schema`, the ldirectord import), so only a configuration made
/// without them gets here.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("not a regular expression: {0}")]
    Receive(#[from] regex::Error),
    /// MISC_CHECK's `user` or `group`, which the system does not know.
    #[error("{0}")]
    RunAs(#[from] crate::config::words::RunAsError),
    /// A `file` check given no `path` (here or in the checks it takes defaults from).
    #[error("a file check needs a path")]
    NoPath,
    /// A dns check's name that cannot be asked for (`config::dns_name_fault`).
    #[error("{0}")]
    DnsName(String),
}

/// Runs one connection of a check that makes several, bounded by `each` (the check's
/// timeout) on its own, as keepalived bounds each by its `connect_timeout`.
pub async fn each_bounded(
    each: Duration,
    connection: impl Future<Output = Result<(), Failure>>,
) -> Result<(), Failure> {
    tokio::time::timeout(each, connection)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

/// The bound of each connection of a check: its timeout, or the default one.
pub fn each_of(settings: &Check) -> Duration {
    settings.timeout.unwrap_or(super::DEFAULT_TIMEOUT)
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    Refused,
    Io(String),
    /// An HTTP status outside the expected range.
    Status(u16),
    /// The answer did not match `receive`.
    NoMatch,
    /// Something that is not the protocol's answer.
    Garbled(String),
    ExitCode(i32),
    Killed,
    Off,
    Maintenance(PathBuf),
    /// The body's MD5 is not the `digest` (keepalived's "MD5 digest error").
    Digest {
        got: String,
        want: String,
    },
    /// A failure of one part of the check: a URL of several, an SMTP host, a source
    /// address.
    At(String, Box<Failure>),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timed out"),
            Failure::Refused => write!(f, "connection refused"),
            Failure::Io(e) => write!(f, "{}", Printable(e)),
            Failure::Status(s) => write!(f, "wrong status {s}"),
            Failure::NoMatch => write!(f, "answer did not match receive"),
            Failure::Garbled(what) => write!(f, "{}", Printable(what)),
            Failure::ExitCode(c) => write!(f, "exit code {c}"),
            Failure::Killed => write!(f, "killed by a signal"),
            Failure::Off => write!(f, "check type off"),
            Failure::Maintenance(p) => write!(f, "maintenance file {}", p.display()),
            Failure::Digest { got, want } => {
                write!(f, "MD5 digest {got} of the body, not the expected {want}")
            }
            Failure::At(part, failure) => write!(f, "{part}: {failure}"),
        }
    }
}

/// Builds the check `settings` ask for (no kind: `on`), behind ldirectord's maintenance
/// files when there is a maintenance directory.
///
/// # Errors
/// A `receive` that is not a regular expression.
pub fn build(
    settings: &Check,
    maintenance_dir: Option<&Path>,
) -> Result<Box<dyn HealthCheck>, BuildError> {
    let check: Box<dyn HealthCheck> = match settings.kind.unwrap_or(CheckKind::On) {
        CheckKind::On => Box::new(On),
        CheckKind::Off => Box::new(Off),
        CheckKind::Connect => Box::new(Connect::build(settings)?),
        CheckKind::External => Box::new(External::build(settings)?),
        CheckKind::File => Box::new(File::build(settings)?),
        CheckKind::Negotiate => match settings.service {
            Some(NegotiateService::Http) => Box::new(Http::build(settings)?),
            Some(NegotiateService::Https) => Box::new(Https::build(settings)?),
            Some(NegotiateService::Smtp) => Box::new(Smtp::build(settings)),
            Some(NegotiateService::Dns) => Box::new(Dns::build(settings)?),
            Some(NegotiateService::SimpleTcp) | None => Box::new(SimpleTcp::build(settings)?),
        },
    };
    Ok(behind_maintenance(check, maintenance_dir))
}

/// `check` behind the maintenance files of `dir`, if there is one.
pub fn behind_maintenance(check: Box<dyn HealthCheck>, dir: Option<&Path>) -> Box<dyn HealthCheck> {
    match dir {
        Some(dir) => Box::new(Maintenance::new(dir, check)),
        None => check,
    }
}

/// Runs one probe of `check`, bounded by `timeout` for each connection it makes
/// ([`HealthCheck::connections`]): a probe still running then fails with
/// [`Failure::Timeout`], and what it held is released as its future is dropped.
///
/// A check sent to another address than its server's (`address`, keepalived's
/// `connect_ip`) says where in its failures: `at 10.0.0.9:80: connection refused`.
pub async fn probe(check: &dyn HealthCheck, at: &Endpoint, timeout: Duration) -> Outcome {
    let bound = timeout.saturating_mul(check.connections().max(1));
    let outcome = tokio::time::timeout(bound, check.probe(at))
        .await
        .unwrap_or(Err(Failure::Timeout));
    match outcome {
        // A maintenance file is of the server, not of where it is checked; the checker
        // takes it down at once by this variant.
        Err(f)
            if at.dest.ip() != at.target.server.addr && !matches!(f, Failure::Maintenance(_)) =>
        {
            Err(Failure::At(format!("at {}", at.dest), Box::new(f)))
        }
        outcome => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{endpoint, negotiate};
    use super::*;

    #[test]
    fn a_bad_receive_is_refused_at_build_in_the_configurations_words() {
        let settings = Check {
            receive: Some("(unclosed".into()),
            ..negotiate(NegotiateService::SimpleTcp)
        };
        let err = build(&settings, None).unwrap_err();
        assert!(
            err.to_string().starts_with("not a regular expression: "),
            "{err}"
        );
        // The words config::schema uses for the same mistake.
        let problem = crate::config::schema::parse(
            "[[service]]\ntcp = \"127.0.0.1:80\"\n[service.check]\nreceive = \"(unclosed\"\n",
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(problem.contains(&err.to_string()), "{problem}");
    }

    #[test]
    fn what_a_server_said_is_shown_with_its_control_characters_escaped() {
        // A banner that would retitle the terminal, clear it, and overwrite the line.
        let banner = "554 \u{1b}]0;pwned\u{7}\u{1b}[2J\rhealth up, all good";
        let shown = Failure::Garbled(banner.into()).to_string();
        assert_eq!(
            shown,
            "554 \\u{1b}]0;pwned\\u{7}\\u{1b}[2J\\rhealth up, all good"
        );
        assert!(!shown.chars().any(char::is_control));
        let nested = Failure::At("url /".into(), Box::new(Failure::Io("a\nb".into())));
        assert_eq!(nested.to_string(), "url /: a\\nb");
    }

    #[test]
    fn what_a_server_said_is_shown_with_its_bidi_and_zero_width_characters_escaped() {
        // A banner that would reverse what follows it on the line, and hide a character.
        let banner = "220 mail\u{202e}\u{200b}kcehc ok\u{2066}";
        let shown = Failure::Garbled(banner.into()).to_string();
        assert_eq!(shown, "220 mail\\u{202e}\\u{200b}kcehc ok\\u{2066}");
        assert!(!shown.chars().any(crate::printable::is_hidden));
    }

    #[tokio::test]
    async fn a_check_sent_elsewhere_than_its_server_says_where_it_failed() {
        let closed = std::net::TcpListener::bind("127.0.0.9:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut at = endpoint(closed, Protocol::Tcp);
        at.target.server.addr = "127.0.0.2".parse().unwrap();
        let check = build(
            &Check {
                kind: Some(CheckKind::Connect),
                ..Check::default()
            },
            None,
        )
        .unwrap();
        assert_eq!(
            probe(&*check, &at, Duration::from_secs(5))
                .await
                .unwrap_err()
                .to_string(),
            format!("at {closed}: connection refused")
        );
    }

    #[tokio::test]
    async fn a_maintenance_file_takes_precedence_over_any_kind() {
        let dir = tempfile::tempdir().unwrap();
        let at = endpoint("127.0.0.1:1".parse().unwrap(), Protocol::Tcp);
        let check = build(&Check::default(), Some(dir.path())).unwrap();
        let timeout = Duration::from_secs(5);
        assert_eq!(probe(&*check, &at, timeout).await, Ok(None), "kind on");
        let file = dir.path().join(at.target.server.addr.to_string());
        std::fs::write(&file, "").unwrap();
        assert_eq!(
            probe(&*check, &at, timeout).await,
            Err(Failure::Maintenance(file))
        );
    }
}
