//! The control protocol between uvsadm (and other tools) and the daemon.
//!
//! A frame is a 4-byte big-endian length and that many bytes of JSON. A request is
//! `{"version": 1, "request": {"type": ..., ...}}`; the answer is
//! `{"version": 1, "response": {"type": ..., ...}}`. Requests larger than
//! [`MAX_REQUEST_BYTES`] are refused and the connection closed; a malformed, unknown or
//! wrong-version request gets an `error` response and the connection stays usable.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

// The pieces of `Status` that other parts define (the wire form is theirs, unchanged).
pub use crate::config::status::ConfigStatus;
pub use crate::descriptors::DescriptorStatus;
pub use crate::health::HealthStatus;
pub use crate::persist::TemplateStatus;
pub use crate::proxy::udp::admission::UdpAdmissionStatus;
use crate::table::{
    Command, ConnEntry, Info, ListenAddr, ListenRule, ServiceEntry, ServiceKey, TableError,
    Timeouts,
};

/// One listen address and how it is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub listen: ListenAddr,
    /// The service it leads to.
    pub service: ServiceKey,
    /// "listening", or why not (the bind error, retried).
    pub state: String,
}

/// A listen rule whose address a virtual service holds as its own (`table::listener`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowedRule {
    pub rule: crate::table::ListenRule,
    /// The service that holds the address.
    pub by: ServiceKey,
}

/// The daemon's view for `uvs status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    /// "userspace" (the kernel backend comes later).
    pub mode: String,
    /// How TCP bytes move: "auto", "splice" or "copy".
    pub forwarding: String,
    pub services: Vec<ServiceEntry>,
    pub listeners: Vec<ListenerStatus>,
    /// Listen rules a virtual service holds the address of: kept, not listened on.
    #[serde(default)]
    pub shadowed: Vec<ShadowedRule>,
    pub live_connections: usize,
    /// UDP flows open, their cap, and new flows dropped for want of room.
    #[serde(default)]
    pub udp_flows: usize,
    #[serde(default)]
    pub max_udp_flows: usize,
    #[serde(default)]
    pub udp_flows_dropped: u64,
    /// The configuration file, when the daemon runs with one.
    #[serde(default)]
    pub config: Option<ConfigStatus>,
    /// The health of every checked real server.
    #[serde(default)]
    pub health: Vec<HealthStatus>,
    /// The quorum of each service that has one (keepalived's `quorum`).
    #[serde(default)]
    pub quorum: Vec<crate::health::QuorumStatus>,
    /// Where metrics are served, or why not.
    #[serde(default)]
    pub metrics: Option<String>,
    /// Why the daemon balances where it does.
    #[serde(default)]
    pub mode_reason: Option<String>,
    /// The TCP congestion control of each leg, when one was chosen.
    #[serde(default)]
    pub congestion: Option<String>,
    /// TCP connections each worker thread serves.
    #[serde(default)]
    pub worker_connections: Vec<usize>,
    /// Connections handed from the worker that accepted them to a less loaded one.
    #[serde(default)]
    pub handed_over: u64,
    /// The open-files limit and how it is shared (userspace mode).
    #[serde(default)]
    pub descriptors: Option<DescriptorStatus>,
    /// Who got UDP flows and who did not.
    #[serde(default)]
    pub udp: UdpAdmissionStatus,
    /// Persistence templates and their bound.
    #[serde(default)]
    pub templates: TemplateStatus,
    /// The global access list and what it refused, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_access: Option<crate::table::entry::GlobalAccessEntry>,
    /// The global per-client limits (`[global] limits`), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub global_limits: Option<crate::table::admission::GlobalLimitsView>,
    /// The connection-sync daemons that run (`-L --daemon`'s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_daemons: Vec<crate::table::SyncDaemon>,
    /// What uvs's own sync daemons did (userspace mode).
    #[serde(default)]
    pub sync: crate::sync::counters::SyncStatus,
}

pub const PROTOCOL_VERSION: u32 = 1;
/// Largest request the daemon reads (a command is a few hundred bytes).
pub const MAX_REQUEST_BYTES: u32 = 1 << 20;
/// Largest response a client accepts (a table dump of a big director).
pub const MAX_RESPONSE_BYTES: u32 = 256 << 20;

/// What a client asks. Variants without data are `{}` structs so that stray fields are
/// refused rather than ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Info {},
    ListServices {},
    GetService {
        service: ServiceKey,
    },
    GetTimeouts {},
    ListConnections {},
    ListListeners {},
    /// `-L --daemon`: the connection-sync daemons that run.
    ListDaemons {},
    /// What the data plane is doing: listeners and their state (`uvs status`).
    Status {},
    Apply {
        command: Command,
    },
}

/// Why a request could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProtocolError {
    #[error("unsupported protocol version {got}; this daemon speaks version {supported}")]
    UnsupportedVersion { got: u64, supported: u32 },
    #[error("malformed request: {detail}")]
    Malformed { detail: String },
    #[error("request of {size} bytes is larger than the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u32 },
    #[error("permission denied: uid {uid} may not use this control socket")]
    PermissionDenied { uid: u32 },
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Response {
    Info {
        info: Info,
    },
    Services {
        services: Vec<ServiceEntry>,
    },
    /// Boxed: a service's entry is much larger than the other answers.
    Service {
        service: Box<ServiceEntry>,
    },
    Timeouts {
        timeouts: Timeouts,
    },
    Connections {
        connections: Vec<ConnEntry>,
    },
    Listeners {
        rules: Vec<ListenRule>,
    },
    Daemons {
        daemons: Vec<crate::table::SyncDaemon>,
    },
    Status {
        status: Box<Status>,
    },
    Applied,
    /// The table refused the request.
    Refused {
        error: TableError,
    },
    /// The request itself was wrong.
    Error {
        error: ProtocolError,
    },
}

#[derive(Serialize)]
struct RequestOut<'a> {
    version: u32,
    request: &'a Request,
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    version: u32,
    response: &'a Response,
}

#[derive(Deserialize)]
struct ResponseIn {
    version: u32,
    response: Response,
}

pub fn encode_request(request: &Request) -> Vec<u8> {
    // Serialising these plain types cannot fail (no maps with non-string keys).
    serde_json::to_vec(&RequestOut {
        version: PROTOCOL_VERSION,
        request,
    })
    .unwrap_or_default()
}

pub fn encode_response(response: &Response) -> Vec<u8> {
    serde_json::to_vec(&ResponseOut {
        version: PROTOCOL_VERSION,
        response,
    })
    .unwrap_or_default()
}

/// A request as it must arrive: exactly these two fields, each once.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestIn {
    version: u64,
    request: Request,
}

/// Reads a request body strictly: duplicate keys and unknown fields are refused at
/// every level (envelope, request, command and what it carries), never resolved by
/// taking one of them. A body that is not a valid request but names another version
/// gets `UnsupportedVersion`, so a future client learns why.
pub fn decode_request(body: &[u8]) -> Result<Request, ProtocolError> {
    let strict = serde_json::from_slice::<RequestIn>(body);
    let version = match &strict {
        Ok(parsed) => Some(parsed.version),
        // Only to tell a newer client why: the version of a body this one cannot read.
        Err(_) => serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64)),
    };
    if let Some(got) = version
        && got != u64::from(PROTOCOL_VERSION)
    {
        return Err(ProtocolError::UnsupportedVersion {
            got,
            supported: PROTOCOL_VERSION,
        });
    }
    strict
        .map(|parsed| parsed.request)
        .map_err(|e| ProtocolError::Malformed {
            detail: e.to_string(),
        })
}

/// Reads a response body.
pub fn decode_response(body: &[u8]) -> Result<Response, String> {
    let parsed: ResponseIn = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if parsed.version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version {} (this client speaks {PROTOCOL_VERSION})",
            parsed.version
        ));
    }
    Ok(parsed.response)
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    w.write_all(&frame)
}

/// Reads one frame of at most `limit` bytes.
pub fn read_frame(r: &mut impl Read, limit: u32) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes is larger than the limit of {limit}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body)?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let r = Request::Apply {
            command: Command::Flush {},
        };
        assert_eq!(decode_request(&encode_request(&r)), Ok(r));
        assert_eq!(
            String::from_utf8(encode_request(&Request::Info {})).unwrap(),
            r#"{"version":1,"request":{"type":"info"}}"#
        );
    }

    #[test]
    fn bad_requests_are_named() {
        assert!(matches!(
            decode_request(b"not json"),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(br#"{"version":2,"request":{"type":"info"}}"#),
            Err(ProtocolError::UnsupportedVersion { got: 2, .. })
        ));
        assert!(matches!(
            decode_request(br#"{"version":1,"request":{"type":"format_disk"}}"#),
            Err(ProtocolError::Malformed { .. })
        ));
        assert!(matches!(
            decode_request(br#"{"request":{"type":"info"}}"#),
            Err(ProtocolError::Malformed { .. })
        ));
    }

    /// Each body is refused as malformed; the detail names the fault.
    fn refused(body: &str, fault: &str) {
        match decode_request(body.as_bytes()) {
            Err(ProtocolError::Malformed { detail }) => {
                assert!(detail.contains(fault), "{body}: {detail}")
            }
            other => panic!("{body}: {other:?}"),
        }
    }

    const SERVICE: &str = r#"{"kind":"inet","protocol":"tcp","addr":"10.0.0.1","port":80}"#;
    const SERVER: &str = r#"{"addr":"10.0.0.2","port":80,"forward":"masq","weight":1,"u_threshold":0,"l_threshold":0,"tunnel":{"kind":"ipip","port":0,"checksum":"nocsum"}}"#;

    /// A request to apply `op` (add_server, edit_server) with `server` to SERVICE.
    fn server_command(op: &str, server: &str) -> String {
        format!(
            r#"{{"version":1,"request":{{"type":"apply","command":{{"op":"{op}","service":{SERVICE},"server":{server}}}}}}}"#
        )
    }

    /// A request for `service`'s listing.
    fn get_service(service: &str) -> String {
        format!(r#"{{"version":1,"request":{{"type":"get_service","service":{service}}}}}"#)
    }

    #[test]
    fn duplicate_keys_are_refused_at_every_level() {
        // The case that was found: the second request used to win, and flushed.
        refused(
            r#"{"version":1,"request":{"type":"info"},"request":{"type":"apply","command":{"op":"flush"}}}"#,
            "duplicate field `request`",
        );
        refused(
            r#"{"version":1,"version":1,"request":{"type":"info"}}"#,
            "duplicate field `version`",
        );
        refused(
            r#"{"version":1,"request":{"type":"info","type":"status"}}"#,
            "duplicate field `type`",
        );
        refused(
            r#"{"version":1,"request":{"type":"apply","command":{"op":"flush"},"command":{"op":"flush"}}}"#,
            "duplicate field `command`",
        );
        refused(
            r#"{"version":1,"request":{"type":"apply","command":{"op":"zero","op":"flush"}}}"#,
            "duplicate field `op`",
        );
        let server = SERVER.replace(r#""weight":1"#, r#""weight":1,"weight":0"#);
        refused(
            &server_command("edit_server", &server),
            "duplicate field `weight`",
        );
        let service = SERVICE.replace(r#""port":80"#, r#""port":80,"port":81"#);
        refused(&get_service(&service), "duplicate field `port`");
        let add_service = |netmask: &str, options: &str| {
            format!(
                r#"{{"version":1,"request":{{"type":"apply","command":{{"op":"add_service","key":{SERVICE},"scheduler":"rr","flags":0,"timeout":0,"netmask":{netmask},"pe":null,"options":{options}}}}}}}"#
            )
        };
        assert!(
            decode_request(add_service(r#"{"v4":"255.255.255.255"}"#, "{}").as_bytes()).is_ok()
        );
        refused(
            &add_service(r#"{"v4":"255.255.255.255","v6":64}"#, "{}"),
            "",
        );
        refused(
            &add_service(
                r#"{"v4":"255.255.255.255"}"#,
                r#"{"freebind":true,"freebind":false}"#,
            ),
            "duplicate field `freebind`",
        );
        let tunnel = SERVER.replace(r#""port":0,"#, r#""port":0,"port":1,"#);
        refused(
            &server_command("add_server", &tunnel),
            "duplicate field `port`",
        );
    }

    #[test]
    fn unknown_fields_are_refused_at_every_level() {
        refused(
            r#"{"version":1,"request":{"type":"info"},"priority":"high"}"#,
            "unknown field `priority`",
        );
        refused(
            r#"{"version":1,"request":{"type":"info","verbose":true}}"#,
            "unknown field `verbose`",
        );
        refused(
            r#"{"version":1,"request":{"type":"apply","command":{"op":"flush","all":true}}}"#,
            "unknown field `all`",
        );
        let server = SERVER.replace(r#""weight":1"#, r#""weight":1,"backup":true"#);
        refused(
            &server_command("add_server", &server),
            "unknown field `backup`",
        );
        let service = SERVICE.replace(r#""port":80"#, r#""port":80,"vrf":2"#);
        refused(&get_service(&service), "unknown field `vrf`");
        // The well-formed version of the same request is taken.
        let good = server_command("add_server", SERVER);
        assert!(matches!(
            decode_request(good.as_bytes()),
            Ok(Request::Apply { .. })
        ));
    }

    #[test]
    fn frames() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        assert_eq!(&buf[..4], &[0, 0, 0, 5]);
        assert_eq!(read_frame(&mut &buf[..], 16).unwrap(), b"hello");
        assert!(read_frame(&mut &buf[..], 4).is_err());
    }
}
