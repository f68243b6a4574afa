//! One health check of one real server: connect, negotiate (http, simpletcp, smtp,
//! dns), external command, on, off, and ldirectord's maintenance files. Each probe is
//! bounded by the check's timeout and says why it failed, in words for the log and
//! `uvs status`. Run by the checker tasks (`checker`).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::Target;
use crate::config::{Check, CheckKind, NegotiateService};
use crate::table::Protocol;

/// The most of an answer a check reads.
const MAX_ANSWER: usize = 1 << 20;

/// Everything one server's checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub target: Target,
    /// The service's transport (fwmark groups are checked over TCP).
    pub protocol: Protocol,
    /// What `external` commands get as vip and vport.
    pub vip: String,
    pub vport: u16,
    /// Where the probe goes: the server, on the check port if there is one.
    pub dest: SocketAddr,
    pub check: Check,
    pub maintenance_dir: Option<PathBuf>,
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
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Timeout => write!(f, "timed out"),
            Failure::Refused => write!(f, "connection refused"),
            Failure::Io(e) => write!(f, "{e}"),
            Failure::Status(s) => write!(f, "wrong status {s}"),
            Failure::NoMatch => write!(f, "answer did not match receive"),
            Failure::Garbled(what) => write!(f, "{what}"),
            Failure::ExitCode(c) => write!(f, "exit code {c}"),
            Failure::Killed => write!(f, "killed by a signal"),
            Failure::Off => write!(f, "check type off"),
            Failure::Maintenance(p) => write!(f, "maintenance file {}", p.display()),
        }
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Failure::Refused,
        std::io::ErrorKind::TimedOut => Failure::Timeout,
        _ => Failure::Io(e.to_string()),
    }
}

/// Runs one check. Ok carries the weight an external check with dynamic weights set.
pub async fn probe(plan: &Plan) -> Result<Option<u32>, Failure> {
    if let Some(dir) = &plan.maintenance_dir {
        for file in super::maintenance_files(dir, &plan.target.server) {
            if file.exists() {
                return Err(Failure::Maintenance(file));
            }
        }
    }
    let timeout = plan.check.timeout.unwrap_or(super::DEFAULT_TIMEOUT);
    let kind = plan.check.kind.unwrap_or(CheckKind::On);
    let run = async {
        match kind {
            CheckKind::On => Ok(None),
            CheckKind::Off => Err(Failure::Off),
            CheckKind::Connect => connect(plan).await.map(|()| None),
            CheckKind::Negotiate => negotiate(plan).await.map(|()| None),
            CheckKind::External => external(plan, timeout).await,
        }
    };
    tokio::time::timeout(timeout, run)
        .await
        .unwrap_or(Err(Failure::Timeout))
}

async fn connect(plan: &Plan) -> Result<(), Failure> {
    match plan.protocol {
        Protocol::Udp => {
            let request = plan.check.request.as_deref().unwrap_or("");
            let answer = udp_exchange(plan.dest, request.as_bytes()).await?;
            matches(plan, &answer)
        }
        _ => TcpStream::connect(plan.dest)
            .await
            .map(drop)
            .map_err(io_failure),
    }
}

/// Sends one datagram and waits for one answer (the caller's timeout bounds it).
async fn udp_exchange(dest: SocketAddr, request: &[u8]) -> Result<Vec<u8>, Failure> {
    let any: SocketAddr = if dest.is_ipv4() {
        (std::net::Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = UdpSocket::bind(any).await.map_err(io_failure)?;
    socket.connect(dest).await.map_err(io_failure)?;
    socket.send(request).await.map_err(io_failure)?;
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).await.map_err(io_failure)?;
    buf.truncate(n);
    Ok(buf)
}

/// Whether `answer` matches the check's `receive` (anything does without one).
fn matches(plan: &Plan, answer: &[u8]) -> Result<(), Failure> {
    let Some(pattern) = &plan.check.receive else {
        return Ok(());
    };
    let re = regex::bytes::Regex::new(pattern).map_err(|e| Failure::Garbled(e.to_string()))?;
    if re.is_match(answer) {
        Ok(())
    } else {
        Err(Failure::NoMatch)
    }
}

async fn negotiate(plan: &Plan) -> Result<(), Failure> {
    match plan.check.service {
        Some(NegotiateService::Http) => http(plan).await,
        Some(NegotiateService::Smtp) => smtp(plan).await,
        Some(NegotiateService::Dns) => dns(plan).await,
        Some(NegotiateService::SimpleTcp) | None => simple(plan).await,
        Some(NegotiateService::Https) => https(plan).await,
    }
}

/// Reads until the peer closes or `MAX_ANSWER` bytes have come. A TLS peer that
/// closes without saying so ends the answer too.
async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, Failure> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => 0,
            Err(e) => return Err(io_failure(e)),
        };
        if n == 0 || answer.len() + n > MAX_ANSWER {
            answer.extend_from_slice(&buf[..n.min(MAX_ANSWER - answer.len())]);
            return Ok(answer);
        }
        answer.extend_from_slice(&buf[..n]);
    }
}

async fn http(plan: &Plan) -> Result<(), Failure> {
    let mut stream = TcpStream::connect(plan.dest).await.map_err(io_failure)?;
    http_exchange(plan, &mut stream).await
}

/// https: TLS (the certificate verified only when asked), then as http.
async fn https(plan: &Plan) -> Result<(), Failure> {
    let verify = plan.check.verify_certificate == Some(true);
    let config = super::tls::client_config(verify).map_err(Failure::Garbled)?;
    let tcp = TcpStream::connect(plan.dest).await.map_err(io_failure)?;
    let name = match &plan.check.virtualhost {
        Some(host) => rustls::pki_types::ServerName::try_from(host.clone())
            .map_err(|e| Failure::Garbled(format!("virtualhost: {e}")))?,
        None => rustls::pki_types::ServerName::IpAddress(plan.dest.ip().into()),
    };
    let mut stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Failure::Garbled(format!("TLS: {e}")))?;
    http_exchange(plan, &mut stream).await
}

/// An HTTP/1.0 request (no chunked answers), the status within range, the body
/// matching `receive`.
async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    plan: &Plan,
    stream: &mut S,
) -> Result<(), Failure> {
    let c = &plan.check;
    let path = c.request.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let host = c
        .virtualhost
        .clone()
        .unwrap_or_else(|| plan.dest.ip().to_string());
    let request = format!(
        "{} {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: uvs-health-check\r\nConnection: close\r\n\r\n",
        c.method.as_deref().unwrap_or("GET")
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
    let (low, high) = c.status.unwrap_or((200, 299));
    if !(low..=high).contains(&status) {
        return Err(Failure::Status(status));
    }
    matches(plan, &answer[head_end + 4..])
}

/// Connect, send the request if there is one, read until the answer matches `receive`
/// (or the peer closes).
async fn simple(plan: &Plan) -> Result<(), Failure> {
    let mut stream = TcpStream::connect(plan.dest).await.map_err(io_failure)?;
    if let Some(request) = &plan.check.request {
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(io_failure)?;
    }
    let Some(pattern) = &plan.check.receive else {
        return Ok(());
    };
    let re = regex::bytes::Regex::new(pattern).map_err(|e| Failure::Garbled(e.to_string()))?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.map_err(io_failure)?;
        answer.extend_from_slice(&buf[..n]);
        if re.is_match(&answer) {
            return Ok(());
        }
        if n == 0 || answer.len() > MAX_ANSWER {
            return Err(Failure::NoMatch);
        }
    }
}

/// An SMTP server greets with 220.
async fn smtp(plan: &Plan) -> Result<(), Failure> {
    let mut stream = TcpStream::connect(plan.dest).await.map_err(io_failure)?;
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
    Ok(())
}

/// A query for `request` (an A record; "." when there is none), over UDP, or TCP for
/// TCP services; an answer is expected, matching `receive` if given.
async fn dns(plan: &Plan) -> Result<(), Failure> {
    use simple_dns::{CLASS, Name, Packet, PacketFlag, QCLASS, QTYPE, Question, RCODE, TYPE};
    let name = plan.check.request.as_deref().unwrap_or(".");
    let id = (std::process::id() as u16) ^ (plan.dest.port());
    let mut query = Packet::new_query(id);
    query.set_flags(PacketFlag::RECURSION_DESIRED);
    let qname =
        Name::new(name.trim_end_matches('.')).map_err(|e| Failure::Garbled(e.to_string()))?;
    query.questions.push(Question::new(
        qname,
        QTYPE::TYPE(TYPE::A),
        QCLASS::CLASS(CLASS::IN),
        false,
    ));
    let bytes = query
        .build_bytes_vec()
        .map_err(|e| Failure::Garbled(e.to_string()))?;
    let answer = if plan.protocol == Protocol::Tcp {
        let mut stream = TcpStream::connect(plan.dest).await.map_err(io_failure)?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await.map_err(io_failure)?;
        let len = stream.read_u16().await.map_err(io_failure)?;
        let mut body = vec![0u8; usize::from(len)];
        stream.read_exact(&mut body).await.map_err(io_failure)?;
        body
    } else {
        udp_exchange(plan.dest, &bytes).await?
    };
    let reply = Packet::parse(&answer).map_err(|e| Failure::Garbled(format!("DNS: {e}")))?;
    if reply.id() != id {
        return Err(Failure::Garbled("DNS answer to another query".into()));
    }
    if reply.rcode() != RCODE::NoError || reply.answers.is_empty() {
        return Err(Failure::Garbled(format!(
            "DNS: {:?}, {} answers",
            reply.rcode(),
            reply.answers.len()
        )));
    }
    let Some(pattern) = &plan.check.receive else {
        return Ok(());
    };
    let re = regex::Regex::new(pattern).map_err(|e| Failure::Garbled(e.to_string()))?;
    let found = reply.answers.iter().any(|rr| {
        let text = match &rr.rdata {
            simple_dns::rdata::RData::A(a) => std::net::Ipv4Addr::from(a.address).to_string(),
            other => format!("{other:?}"),
        };
        re.is_match(&text)
    });
    if found { Ok(()) } else { Err(Failure::NoMatch) }
}

/// ldirectord's external check: the command with vip vport rip rport; exit 0 is up.
/// With dynamic weights (keepalived's misc_dynamic), 2..=255 is up with weight code-2.
/// The command runs in a process group of its own, killed when the check ends, and what
/// leaves the group is the reaper's (`orphans`).
async fn external(plan: &Plan, timeout: Duration) -> Result<Option<u32>, Failure> {
    let line = plan.check.command.as_deref().unwrap_or("");
    let mut words = line.split_whitespace();
    let program = words
        .next()
        .ok_or_else(|| Failure::Garbled("no command to run".into()))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(words)
        .arg(&plan.vip)
        .arg(plan.vport.to_string())
        .arg(plan.target.server.addr.to_string())
        .arg(plan.dest.port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // Dropped, by any return or by the probe's timeout, it kills its group.
    let mut child = super::orphans::spawn(&mut command)
        .map_err(|e| Failure::Io(format!("cannot run {program}: {e}")))?;
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => status.map_err(|e| Failure::Io(e.to_string()))?,
        Err(_) => return Err(Failure::Timeout),
    };
    match status.code() {
        Some(0) => Ok(None),
        Some(code @ 2..=255) if plan.check.dynamic_weight == Some(true) => {
            Ok(Some(code as u32 - 2))
        }
        Some(code) => Err(Failure::ExitCode(code)),
        None => Err(Failure::Killed),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use super::*;
    use crate::table::{ServerKey, ServiceKey};

    fn plan(dest: SocketAddr, protocol: Protocol, check: Check) -> Plan {
        Plan {
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
            check: Check {
                timeout: Some(Duration::from_secs(5)),
                ..check
            },
            maintenance_dir: None,
        }
    }

    fn negotiate(service: NegotiateService) -> Check {
        Check {
            kind: Some(CheckKind::Negotiate),
            service: Some(service),
            ..Check::default()
        }
    }

    /// A TCP server that writes `answer` to its first client after reading `wait_for`.
    async fn one_shot(answer: &'static [u8], wait_for: usize) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            if let Ok((mut s, _)) = listener.accept().await {
                let mut got = vec![0u8; wait_for];
                let _ = s.read_exact(&mut got).await;
                let _ = s.write_all(answer).await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn smtp_wants_a_220_banner() {
        let good = one_shot(b"220 mail ESMTP ready\r\n", 0).await;
        assert_eq!(
            probe(&plan(
                good,
                Protocol::Tcp,
                negotiate(NegotiateService::Smtp)
            ))
            .await,
            Ok(None)
        );
        let busy = one_shot(b"421 too busy\r\n", 0).await;
        assert_eq!(
            probe(&plan(
                busy,
                Protocol::Tcp,
                negotiate(NegotiateService::Smtp)
            ))
            .await,
            Err(Failure::Garbled("SMTP banner `421 too busy'".into()))
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
        assert_eq!(
            probe(&plan(good, Protocol::Tcp, check.clone())).await,
            Ok(None)
        );
        let bad = one_shot(b"-ERR\r\n", 6).await;
        assert_eq!(
            probe(&plan(bad, Protocol::Tcp, check)).await,
            Err(Failure::NoMatch)
        );
    }

    #[tokio::test]
    async fn dns_wants_an_answer_over_udp() {
        use simple_dns::rdata::{A, RData};
        use simple_dns::{CLASS, Packet, ResourceRecord};
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 512];
            for answer_it in [true, false] {
                let Ok((n, from)) = server.recv_from(&mut buf).await else {
                    return;
                };
                let query = Packet::parse(&buf[..n]).unwrap();
                let mut reply = query.into_reply();
                if answer_it {
                    reply.answers.push(ResourceRecord::new(
                        reply.questions[0].qname.clone(),
                        CLASS::IN,
                        60,
                        RData::A(A {
                            address: u32::from(Ipv4Addr::new(192, 0, 2, 7)),
                        }),
                    ));
                }
                let bytes = reply.build_bytes_vec().unwrap();
                let _ = server.send_to(&bytes, from).await;
            }
        });
        let check = Check {
            request: Some("www.example.com".into()),
            receive: Some("^192\\.0\\.2\\.7$".into()),
            ..negotiate(NegotiateService::Dns)
        };
        assert_eq!(
            probe(&plan(addr, Protocol::Udp, check.clone())).await,
            Ok(None)
        );
        assert!(
            matches!(
                probe(&plan(addr, Protocol::Udp, check)).await,
                Err(Failure::Garbled(e)) if e.contains("0 answers")
            ),
            "no answer is down"
        );
    }

    #[tokio::test]
    async fn https_checks_trust_any_certificate_unless_asked_to_verify() {
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let cert = rcgen::generate_simple_self_signed(vec!["backend.test".to_string()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for _ in 0..2 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let _ = tls
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
                    .await;
                let _ = tls.shutdown().await;
            }
        });
        let check = Check {
            receive: Some("^secure$".into()),
            virtualhost: Some("backend.test".into()),
            ..negotiate(NegotiateService::Https)
        };
        assert_eq!(
            probe(&plan(addr, Protocol::Tcp, check.clone())).await,
            Ok(None)
        );
        let verifying = Check {
            verify_certificate: Some(true),
            ..check
        };
        assert!(
            matches!(
                probe(&plan(addr, Protocol::Tcp, verifying)).await,
                Err(Failure::Garbled(e)) if e.starts_with("TLS: ")
            ),
            "a self-signed certificate fails verification"
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
            probe(&plan(closed, Protocol::Udp, check)).await,
            Err(Failure::Refused)
        );
    }
}
