//! Generic netlink, the transport of the kernel's IPVS interface: messages (nlmsghdr,
//! genlmsghdr, attributes, nested attributes) built and read as bytes, and a socket
//! that sends a request and collects its answers (a dump's parts up to NLMSG_DONE, or
//! the acknowledgement), turning a netlink error into the errno it carries. No libnl:
//! the wire format is small and fixed. Used by `ipvs`.

use std::io;

/// Netlink message types and flags (linux/netlink.h).
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_DUMP: u16 = 0x300;
/// Attribute type bit of a nested attribute (linux/netlink.h NLA_F_NESTED).
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// The generic netlink controller (linux/genetlink.h).
pub const GENL_ID_CTRL: u16 = 0x10;
pub const CTRL_CMD_GETFAMILY: u8 = 3;
pub const CTRL_ATTR_FAMILY_ID: u16 = 1;
pub const CTRL_ATTR_FAMILY_NAME: u16 = 2;

const HEADER: usize = 16;

fn align(n: usize) -> usize {
    (n + 3) & !3
}

/// A generic netlink request being built: the genl header, then attributes.
#[derive(Debug, Clone)]
pub struct Request {
    kind: u16,
    flags: u16,
    body: Vec<u8>,
    /// Where each open nest's length lives.
    nests: Vec<usize>,
}

impl Request {
    /// A request of family `kind` for command `cmd` of protocol `version`.
    pub fn new(kind: u16, flags: u16, cmd: u8, version: u8) -> Request {
        Request {
            kind,
            flags: NLM_F_REQUEST | flags,
            body: vec![cmd, version, 0, 0],
            nests: Vec::new(),
        }
    }

    /// Adds an attribute with `data`, padded to four bytes.
    pub fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Request {
        let len = 4 + data.len();
        self.body.extend_from_slice(&(len as u16).to_ne_bytes());
        self.body.extend_from_slice(&kind.to_ne_bytes());
        self.body.extend_from_slice(data);
        self.body.resize(align(self.body.len()), 0);
        self
    }

    pub fn u8(&mut self, kind: u16, v: u8) -> &mut Request {
        self.attr(kind, &[v])
    }

    pub fn u16(&mut self, kind: u16, v: u16) -> &mut Request {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A 16-bit value in network order (ports).
    pub fn be16(&mut self, kind: u16, v: u16) -> &mut Request {
        self.attr(kind, &v.to_be_bytes())
    }

    pub fn u32(&mut self, kind: u16, v: u32) -> &mut Request {
        self.attr(kind, &v.to_ne_bytes())
    }

    /// A NUL-terminated string.
    pub fn string(&mut self, kind: u16, s: &str) -> &mut Request {
        let mut data = s.as_bytes().to_vec();
        data.push(0);
        self.attr(kind, &data)
    }

    /// Opens a nested attribute; close it with [`Request::end_nest`].
    pub fn nest(&mut self, kind: u16) -> &mut Request {
        self.nests.push(self.body.len());
        self.body.extend_from_slice(&[0, 0]);
        self.body
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        self
    }

    pub fn end_nest(&mut self) -> &mut Request {
        if let Some(at) = self.nests.pop() {
            let len = (self.body.len() - at) as u16;
            self.body[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
        self
    }

    /// The bytes of the whole message.
    pub fn encode(&self, seq: u32, pid: u32) -> Vec<u8> {
        let len = HEADER + self.body.len();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&self.kind.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&pid.to_ne_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Everything after the netlink header (the genl header and attributes).
    pub fn payload(&self) -> &[u8] {
        &self.body
    }
}

/// One message received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// After the netlink header.
    pub payload: Vec<u8>,
}

/// Splits a datagram of the kernel's into its messages.
pub fn messages(mut buf: &[u8]) -> io::Result<Vec<Message>> {
    let mut out = Vec::new();
    while buf.len() >= HEADER {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < HEADER || len > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netlink message with a bad length",
            ));
        }
        out.push(Message {
            kind: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
            payload: buf[HEADER..len].to_vec(),
        });
        buf = &buf[align(len).min(buf.len())..];
    }
    Ok(out)
}

/// The attributes in `data`: (type without the nested flag, value).
pub fn attributes(mut data: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 4 {
        let len = u16::from_ne_bytes([data[0], data[1]]) as usize;
        let kind = u16::from_ne_bytes([data[2], data[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > data.len() {
            break;
        }
        out.push((kind, &data[4..len]));
        data = &data[align(len).min(data.len())..];
    }
    out
}

/// The value of attribute `kind`, if present.
pub fn find(attrs: &[(u16, &[u8])], kind: u16) -> Option<Vec<u8>> {
    attrs
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v.to_vec())
}

pub fn as_u16(v: &[u8]) -> Option<u16> {
    Some(u16::from_ne_bytes(v.get(..2)?.try_into().ok()?))
}

pub fn as_be16(v: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes(v.get(..2)?.try_into().ok()?))
}

pub fn as_u32(v: &[u8]) -> Option<u32> {
    Some(u32::from_ne_bytes(v.get(..4)?.try_into().ok()?))
}

pub fn as_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(v.get(..8)?.try_into().ok()?))
}

/// A NUL-terminated string attribute.
pub fn as_string(v: &[u8]) -> String {
    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// A generic netlink socket talking to the kernel.
pub struct Socket {
    socket: socket2::Socket,
    seq: u32,
}

impl Socket {
    pub fn open() -> io::Result<Socket> {
        let socket = socket2::Socket::new(
            socket2::Domain::from(libc::AF_NETLINK),
            socket2::Type::RAW.cloexec(),
            Some(socket2::Protocol::from(libc::NETLINK_GENERIC)),
        )?;
        // The kernel answers at once; a bound keeps a lost answer from hanging the
        // caller.
        socket.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        Ok(Socket { socket, seq: 1 })
    }

    /// Sends `request` and returns the answers (without the acknowledgement); an
    /// error the kernel sends back is returned as its errno.
    pub fn ask(&mut self, request: &Request) -> io::Result<Vec<Message>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        self.socket.send(&request.encode(seq, 0))?;
        let mut answers = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = std::io::Read::read(&mut &self.socket, &mut buf)?;
            let bytes = &buf[..n];
            for m in messages(bytes)? {
                if m.seq != seq {
                    continue;
                }
                match m.kind {
                    NLMSG_DONE => return Ok(answers),
                    NLMSG_ERROR => {
                        let errno = m
                            .payload
                            .get(..4)
                            .map_or(0, |e| i32::from_ne_bytes([e[0], e[1], e[2], e[3]]));
                        if errno == 0 {
                            return Ok(answers);
                        }
                        return Err(io::Error::from_raw_os_error(-errno));
                    }
                    _ => {
                        let last = m.flags & NLM_F_MULTI == 0;
                        answers.push(m);
                        if last && request.flags & NLM_F_ACK == 0 {
                            return Ok(answers);
                        }
                    }
                }
            }
        }
    }

    /// The id of generic netlink family `name` ("IPVS"); NotFound when the kernel
    /// has none.
    pub fn family(&mut self, name: &str) -> io::Result<u16> {
        let mut request = Request::new(GENL_ID_CTRL, NLM_F_ACK, CTRL_CMD_GETFAMILY, 1);
        request.string(CTRL_ATTR_FAMILY_NAME, name);
        let answers = self.ask(&request).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOENT) {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no generic netlink family {name}"),
                )
            } else {
                e
            }
        })?;
        answers
            .iter()
            .find_map(|m| {
                let attrs = attributes(m.payload.get(4..)?);
                find(&attrs, CTRL_ATTR_FAMILY_ID).and_then(|v| as_u16(&v))
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no family id"))
    }
}
