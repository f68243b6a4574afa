//! The wire format of IPVS connection sync: the UDP datagrams a master director
//! multicasts so that backup directors hold the same connections and persistence
//! templates. Called by the sync daemons: the master (`sync::master`) turns the queued
//! connection changes into [`Entry`]s and sends what [`Builder`] hands back; the backup
//! (`sync::backup`) passes every datagram it receives to [`parse`]. No I/O and no clock here.
//!
//! Both directions follow Linux (net/netfilter/ipvs/ip_vs_sync.c, 6.18), so that a
//! kernel backup accepts what [`Builder`] makes and [`parse`] refuses what a kernel
//! backup refuses, at the same granularity: a fault in the framing drops the whole
//! datagram ([`Malformed`]), a fault in one connection's content drops only that entry
//! ([`Skipped`]). Every number on the wire is in network byte order, except version 0's
//! sequence options ([`SeqOptions`]); the types here hold host values.
//!
//! Version 1, the kernel's default (`net.ipv4.vs.sync_version = 1`), byte offsets:
//!
//! ```text
//! header  0 reserved = 0   1 syncid   2-3 size of the datagram   4 nr_conns
//!         5 version = 1    6-7 spare = 0
//! entry   0 type (bit 0: IPv6)   1 protocol   2-3 version << 12 | size of the entry
//!         4-7 flags   8-9 state   10-11 cport   12-13 vport   14-15 dport
//!         16-19 fwmark   20-23 timeout (s)   24.. caddr, vaddr, daddr (4 or 16 each)
//!         then options: type (1 byte), length (1 byte, not 0), data
//! ```
//!
//! An entry's size covers its options, not the zero bytes (0 to 3) that start the next
//! entry on a multiple of 4. Version 0 (IPv4 only, no fwmark, no timeout): a 4-byte
//! header (nr_conns, syncid, size) and 24-byte entries (reserved, protocol, cport,
//! vport, dport, caddr, vaddr, daddr, 16-bit flags, state), each followed by 24 bytes of
//! [`SeqOptions`] when its flags have [`Flags::SEQ_MASK`] bits.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::table::{Forward, Protocol};

// The defaults of a daemon's settings (group, port, TTL, maxlen) are `table::sync`'s,
// filled in by `SyncDaemon::resolved` as `start_sync_thread` fills them.

/// How long the kernel's master keeps a datagram open for more entries before it sends
/// it anyway (`IPVS_SYNC_FLUSH_TIME`, include/net/ip_vs.h): the caller's cue for
/// [`Builder::finish`].
pub const FLUSH_AFTER: Duration = Duration::from_secs(2);

/// The version byte of a version 1 header (`SYNC_PROTO_VER`).
pub const SYNC_PROTO_VER: u8 = 1;

/// The largest datagram limit: the largest UDP payload over IPv4, 65535 less the IP and
/// UDP headers (`start_sync_thread` clamps `--sync-maxlen` to it).
pub const MAX_MAXLEN: usize = 65535 - 28;

/// Entries in one datagram at most: `nr_conns` is one byte.
pub const MAX_CONNS: usize = 255;

/// Bytes of a version 1 header (`struct ip_vs_sync_mesg`).
pub const HEADER_LEN: usize = 8;
/// Bytes of a version 0 header (`struct ip_vs_sync_mesg_v0`).
pub const HEADER_V0_LEN: usize = 4;
/// Bytes of a version 1 IPv4 entry before its options (`struct ip_vs_sync_v4`).
pub const ENTRY_V4_LEN: usize = 36;
/// Bytes of a version 1 IPv6 entry before its options (`struct ip_vs_sync_v6`).
pub const ENTRY_V6_LEN: usize = 72;
/// Bytes of a version 0 entry without sequence options (`SIMPLE_CONN_SIZE`).
pub const ENTRY_V0_LEN: usize = 24;
/// Bytes of the sequence options (`struct ip_vs_sync_conn_options`).
pub const SEQ_OPTIONS_LEN: usize = 24;
/// Longest persistence-engine name (`IP_VS_PENAME_MAXLEN`).
pub const PE_NAME_MAX: usize = 16;
/// Longest persistence-engine data (`IP_VS_PEDATA_MAXLEN`).
pub const PE_DATA_MAX: usize = 255;
/// The longest version 1 entry: IPv6, sequence options, the longest engine data and name.
pub const MAX_ENTRY_LEN: usize =
    ENTRY_V6_LEN + 2 + SEQ_OPTIONS_LEN + 2 + PE_DATA_MAX + 2 + PE_NAME_MAX;

// Entry types and options (ip_vs_sync.c).
const STYPE_F_INET6: u8 = 1;
const SVER_SHIFT: u16 = 12;
const SVER_MASK: u16 = 0x0fff;
const OPT_SEQ_DATA: u8 = 1;
const OPT_PE_DATA: u8 = 2;
const OPT_PE_NAME: u8 = 3;
/// An option type with this bit set may be ignored by a receiver that does not know it.
const OPT_F_PARAM: u8 = 1 << 6;

/// IPVS's TCP states: the index is the state's number (`IP_VS_TCP_S_*`,
/// include/net/ip_vs.h), the text its name as `ipvsadm -L -c` prints it
/// (`tcp_state_name_table`, ip_vs_proto_tcp.c).
pub const TCP_STATES: [&str; 11] = [
    "NONE",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "SYNACK",
];
/// UDP's single state, number 0 (`IP_VS_UDP_S_NORMAL`, ip_vs_proto_udp.c).
pub const UDP_STATES: [&str; 1] = ["UDP"];
/// IPVS's SCTP states by number (`IP_VS_SCTP_S_*`; `sctp_state_name_table`,
/// ip_vs_proto_sctp.c).
pub const SCTP_STATES: [&str; 14] = [
    "NONE",
    "INIT1",
    "INIT",
    "C-SENT",
    "C-REPLIED",
    "C-WAIT",
    "COOKIE",
    "C-ECHOED",
    "ESTABLISHED",
    "S-SENT",
    "S-RECEIVED",
    "S-ACK-SENT",
    "REJECTED",
    "CLOSED",
];
/// A persistence template's states by number (`IP_VS_CTPL_S_*`;
/// `ip_vs_ctpl_state_name_table`, ip_vs_proto.c).
pub const TEMPLATE_STATES: [&str; 2] = ["NONE", "ASSURED"];

/// The number of state `name` of a connection of `protocol` (None: `IPPROTO_IP`, which
/// only templates carry), or of a template; the inverse of [`Entry::state_name`]. For a
/// master to put uvs's own states (`conn::State::name`) on the wire.
pub fn state_number(protocol: Option<Protocol>, template: bool, name: &str) -> Option<u16> {
    let names = state_names(protocol, template)?;
    let n = names.iter().position(|s| *s == name)?;
    u16::try_from(n).ok()
}

/// The state table of a connection of `protocol`, or of a template; None where the
/// kernel has none (a connection of `IPPROTO_IP`).
fn state_names(protocol: Option<Protocol>, template: bool) -> Option<&'static [&'static str]> {
    match (template, protocol) {
        (true, _) => Some(&TEMPLATE_STATES),
        (false, Some(Protocol::Tcp)) => Some(&TCP_STATES),
        (false, Some(Protocol::Udp)) => Some(&UDP_STATES),
        (false, Some(Protocol::Sctp)) => Some(&SCTP_STATES),
        (false, None) => None,
    }
}

/// A connection's flags (`IP_VS_CONN_F_*`, include/uapi/linux/ip_vs.h), 32 bits on the
/// version 1 wire and 16 on version 0's. [`parse`] hands them on as sent; a kernel
/// backup keeps only some ([`Flags::kept_by_backup`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u32);

impl Flags {
    /// The forwarding method's bits: 0 masq, 1 local node, 2 tunnel, 3 direct route,
    /// 4 cache bypass.
    pub const FWD_MASK: u32 = 0x0007;
    /// Set by a backup on the entries sync created.
    pub const SYNC: u32 = 0x0020;
    /// The kernel's own hash-table bookkeeping; a master clears it before sending.
    pub const HASHED: u32 = 0x0040;
    /// No output packets.
    pub const NOOUTPUT: u32 = 0x0080;
    /// Not established: counted in InActConn.
    pub const INACTIVE: u32 = 0x0100;
    /// Output sequence numbers must be adjusted.
    pub const OUT_SEQ: u32 = 0x0200;
    /// Input sequence numbers must be adjusted.
    pub const IN_SEQ: u32 = 0x0400;
    /// Either sequence adjustment: the entry carries [`SeqOptions`].
    pub const SEQ_MASK: u32 = 0x0600;
    /// The client port is not known yet.
    pub const NO_CPORT: u32 = 0x0800;
    /// A persistence template, not a connection.
    pub const TEMPLATE: u32 = 0x1000;
    /// One-packet scheduling; the kernel's master never syncs such connections.
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a version 1 backup keeps of the flags it receives (`IP_VS_CONN_F_BACKUP_MASK`).
    pub const BACKUP_MASK: u32 = Self::FWD_MASK
        | Self::NOOUTPUT
        | Self::INACTIVE
        | Self::SEQ_MASK
        | Self::NO_CPORT
        | Self::TEMPLATE;
    /// What a backup updates on an entry it already holds (`IP_VS_CONN_F_BACKUP_UPD_MASK`).
    pub const BACKUP_UPD_MASK: u32 = Self::INACTIVE | Self::SEQ_MASK;

    /// The raw bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// A persistence template (`-L -c` lists it with protocol "IP" or the service's).
    pub fn is_template(self) -> bool {
        self.0 & Self::TEMPLATE != 0
    }

    /// The forwarding method, None for cache bypass (4) and the unused values 5 to 7.
    pub fn forward(self) -> Option<Forward> {
        match self.0 & Self::FWD_MASK {
            0 => Some(Forward::Masq),
            1 => Some(Forward::Local),
            2 => Some(Forward::Tunnel),
            3 => Some(Forward::Route),
            _ => None,
        }
    }

    /// Not established (InActConn).
    pub fn is_inactive(self) -> bool {
        self.0 & Self::INACTIVE != 0
    }

    /// Sequence numbers are adjusted in either direction.
    pub fn has_seq(self) -> bool {
        self.0 & Self::SEQ_MASK != 0
    }

    /// No output packets.
    pub fn no_output(self) -> bool {
        self.0 & Self::NOOUTPUT != 0
    }

    /// The client port is not known yet.
    pub fn no_client_port(self) -> bool {
        self.0 & Self::NO_CPORT != 0
    }

    /// One-packet scheduling.
    pub fn one_packet(self) -> bool {
        self.0 & Self::ONE_PACKET != 0
    }

    /// The flags a kernel backup gives the entry it creates from these: version 1 keeps
    /// [`Flags::BACKUP_MASK`] (`ip_vs_proc_sync_conn`), version 0 all but
    /// [`Flags::HASHED`] (`ip_vs_process_message_v0`); both add [`Flags::SYNC`].
    pub fn kept_by_backup(self, version: Version) -> Flags {
        let kept = match version {
            Version::V1 => self.0 & Self::BACKUP_MASK,
            Version::V0 => self.0 & !Self::HASHED,
        };
        Flags(kept | Self::SYNC)
    }
}

/// One direction's TCP sequence adjustment (`struct ip_vs_seq`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seq {
    /// Add the delta from this sequence number on.
    pub init_seq: u32,
    /// The delta in sequence numbers.
    pub delta: u32,
    /// The delta before the last resized packet.
    pub previous_delta: u32,
}

/// Sequence adjustments of a connection whose payload an IPVS application helper
/// resized (FTP under NAT): input then output, 24 bytes. Version 1 carries them in
/// network order (option 1); version 0 in the master's host order, copied as it is in
/// memory (`ip_vs_sync_conn_v0`), which [`parse`] reads in this host's order, as a kernel
/// backup on this host would.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeqOptions {
    /// Input direction (`in_seq`).
    pub in_seq: Seq,
    /// Output direction (`out_seq`).
    pub out_seq: Seq,
}

/// A persistence engine's name and its data for one template (IPVS's `-pe sip`): the
/// name 1 to [`PE_NAME_MAX`] printable ASCII bytes, the data 1 to [`PE_DATA_MAX`] bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeData {
    name: String,
    data: Vec<u8>,
}

impl PeData {
    /// None if the name or the data is empty or too long, or the name not printable
    /// ASCII (no engine has such a name, so no kernel backup would accept it).
    pub fn new(name: &str, data: &[u8]) -> Option<PeData> {
        let name_ok =
            (1..=PE_NAME_MAX).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_graphic());
        let data_ok = (1..=PE_DATA_MAX).contains(&data.len());
        (name_ok && data_ok).then(|| PeData {
            name: name.to_string(),
            data: data.to_vec(),
        })
    }

    /// The engine's name, "sip" for the kernel's only one.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The engine's data (for sip, the Call-ID).
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// One connection or persistence template. Addresses and ports are host values (on
/// the wire: network order); the three addresses share one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The transport protocol; None is `IPPROTO_IP` (0), which only fwmark templates
    /// carry.
    pub protocol: Option<Protocol>,
    /// The client's address and port (a template: the client's network, port 0).
    pub client: SocketAddr,
    /// The virtual address and port the client reached. An fwmark template holds the
    /// mark as an IPv4 address (mark 5: 0.0.0.5), port 0 (`ip_vs_sched_persist`).
    pub vip: SocketAddr,
    /// The real server's address and port.
    pub real: SocketAddr,
    /// The packet's firewall mark (0 on version 0, which has none).
    pub fwmark: u32,
    /// The connection's flags.
    pub flags: Flags,
    /// The state's number, per protocol ([`TCP_STATES`] ...) or [`TEMPLATE_STATES`].
    pub state: u16,
    /// Seconds until the entry expires; 0 (always, on version 0) tells a backup to use
    /// the state's own timeout, or 3 minutes for a template (`ip_vs_proc_conn`).
    pub timeout: u32,
    /// Sequence adjustments, if sent.
    pub seq: Option<SeqOptions>,
    /// The persistence engine's name and data, if sent (version 1 only).
    pub pe: Option<PeData>,
}

impl Entry {
    /// The state as `ipvsadm -L -c` names it (`ip_vs_state_name`): "ESTABLISHED",
    /// "UDP", "NONE" or "ASSURED" for a template, "ERR!" past the protocol's table.
    pub fn state_name(&self) -> &'static str {
        match state_names(self.protocol, self.flags.is_template()) {
            Some(names) => names
                .get(usize::from(self.state))
                .copied()
                .unwrap_or("ERR!"),
            None => "NONE",
        }
    }

    fn is_v6(&self) -> bool {
        self.client.is_ipv6()
    }

    /// Bytes on the version 1 wire without the alignment padding (`ip_vs_sync_conn`'s
    /// `len`), or None if the addresses mix families: the kernel does not sync
    /// connections between families (`ip_vs_proc_conn`).
    fn wire_len(&self) -> Option<usize> {
        let v6 = self.is_v6();
        if self.vip.is_ipv6() != v6 || self.real.is_ipv6() != v6 {
            return None;
        }
        let fixed = if v6 { ENTRY_V6_LEN } else { ENTRY_V4_LEN };
        let seq = self.seq.map_or(0, |_| 2 + SEQ_OPTIONS_LEN);
        let pe = self
            .pe
            .as_ref()
            .map_or(0, |pe| 2 + pe.data.len() + 2 + pe.name.len());
        Some(fixed + seq + pe)
    }
}

/// Which format a datagram was in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// The original format: IPv4, no fwmark, no timeout, no options.
    V0,
    /// The current format.
    V1,
}

/// One received datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The format it came in.
    pub version: Version,
    /// The master's sync id.
    pub syncid: u8,
    /// The entries a kernel backup would take, in order.
    pub entries: Vec<Entry>,
    /// The entries a kernel backup would drop while taking the others.
    pub skipped: Vec<Skipped>,
}

/// Why a whole datagram is dropped, in the order the kernel checks
/// (`ip_vs_process_message`, `ip_vs_process_message_v0`, `ip_vs_proc_sync_conn`'s
/// negative returns). One difference: the kernel applies each entry as it reads it, so
/// the entries before a fault in the body still take effect there; here nothing of the
/// datagram does (the master syncs those connections again on their next change).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    /// Shorter than the 4-byte version 0 header.
    #[error("{len} bytes, shorter than a sync header")]
    Short {
        /// The datagram's length.
        len: usize,
    },
    /// The header's size is not the datagram's length.
    #[error("the header says {size} bytes, the datagram has {len}")]
    SizeMismatch {
        /// The header's size field.
        size: u16,
        /// The datagram's length.
        len: usize,
    },
    /// Another director group's: the backup has a sync id other than 0 and this one's
    /// differs. Not a fault of the datagram, but dropped at the same point.
    #[error("sync id {syncid}, not ours")]
    ForeignSyncid {
        /// The datagram's sync id.
        syncid: u8,
    },
    /// `nr_conns` promises an entry that the datagram is too short to hold (version 1:
    /// its fixed IPv4 part; version 0: the entry or its sequence options).
    #[error("entry {index} at byte {offset} runs past the end")]
    Truncated {
        /// The entry's position, from 0.
        index: usize,
        /// Where it starts.
        offset: usize,
    },
    /// An entry's size reaches past the datagram's end.
    #[error("entry {index} of {size} bytes at byte {offset} runs past the end")]
    EntryOverrun {
        /// The entry's position, from 0.
        index: usize,
        /// Where it starts.
        offset: usize,
        /// Its size field.
        size: u16,
    },
    /// An entry's version (the top 4 bits of its size field) is not 0.
    #[error("entry {index} has version {version}")]
    BadVersion {
        /// The entry's position, from 0.
        index: usize,
        /// The version bits.
        version: u8,
    },
    /// An entry's type is neither 0 (IPv4) nor has bit 0 (IPv6) set.
    #[error("entry {index} has type {kind}")]
    BadType {
        /// The entry's position, from 0.
        index: usize,
        /// The type byte.
        kind: u8,
    },
    /// An entry's size is too small for its fixed part (36 bytes IPv4, 72 IPv6).
    #[error("entry {index} of {size} bytes cannot hold its {needed} fixed bytes")]
    EntrySize {
        /// The entry's position, from 0.
        index: usize,
        /// Its size field.
        size: u16,
        /// Its fixed part's length.
        needed: usize,
    },
    /// One byte is left in an entry where an option's type and length should be.
    #[error("entry {index} ends inside an option's header")]
    OptionTruncated {
        /// The entry's position, from 0.
        index: usize,
    },
    /// An option's length is 0 or reaches past its entry's end.
    #[error("entry {index}: option {kind} has length {len}")]
    OptionLength {
        /// The entry's position, from 0.
        index: usize,
        /// The option's type byte.
        kind: u8,
        /// Its length byte.
        len: u8,
    },
    /// A sequence option that is not 24 bytes long.
    #[error("entry {index}: sequence options of {len} bytes")]
    SeqOptionLength {
        /// The entry's position, from 0.
        index: usize,
        /// Its length byte.
        len: u8,
    },
    /// A persistence-engine name longer than 16 bytes.
    #[error("entry {index}: a persistence engine name of {len} bytes")]
    PeNameTooLong {
        /// The entry's position, from 0.
        index: usize,
        /// Its length byte.
        len: u8,
    },
    /// The same option (sequence, engine data or engine name) twice in one entry.
    #[error("entry {index}: option {kind} twice")]
    DuplicateOption {
        /// The entry's position, from 0.
        index: usize,
        /// The option's type (without the optional bit).
        kind: u8,
    },
}

impl Malformed {
    /// A short stable name, for a metric's label.
    pub fn reason(&self) -> &'static str {
        match self {
            Malformed::Short { .. } => "short",
            Malformed::SizeMismatch { .. } => "bad_size",
            Malformed::ForeignSyncid { .. } => "foreign_syncid",
            Malformed::Truncated { .. } => "truncated",
            Malformed::EntryOverrun { .. } => "entry_overrun",
            Malformed::BadVersion { .. } => "bad_version",
            Malformed::BadType { .. } => "bad_type",
            Malformed::EntrySize { .. } => "bad_entry_size",
            Malformed::OptionTruncated { .. } => "option_truncated",
            Malformed::OptionLength { .. } => "bad_option_length",
            Malformed::SeqOptionLength { .. } => "bad_seq_option",
            Malformed::PeNameTooLong { .. } => "pe_name_too_long",
            Malformed::DuplicateOption { .. } => "duplicate_option",
        }
    }
}

/// Why one entry is dropped while the rest of its datagram is taken
/// (`ip_vs_proc_sync_conn`'s positive returns; `continue` in `ip_vs_process_message_v0`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skipped {
    /// A connection of a protocol IPVS does not balance, or one uvs cannot hold: the
    /// kernel also takes AH (51) and ESP (50) connections, and templates of any protocol.
    #[error("protocol {protocol}")]
    UnsupportedProtocol {
        /// The IP protocol number.
        protocol: u8,
    },
    /// A state past the protocol's table, or past the templates' (NONE, ASSURED).
    #[error("state {state} of protocol {protocol} (template: {template})")]
    BadState {
        /// The IP protocol number.
        protocol: u8,
        /// The state's number.
        state: u16,
        /// The entry is a template.
        template: bool,
    },
    /// An option this format does not define, without the "may be ignored" bit (64).
    #[error("unknown mandatory option {kind}")]
    UnknownOption {
        /// The option's type byte.
        kind: u8,
    },
    /// Persistence-engine data without the engine's name.
    #[error("persistence engine data without a name")]
    PeWithoutName,
    /// A persistence-engine name no engine can have (empty or not printable ASCII): the
    /// kernel finds no engine and drops the entry. Which names exist is the caller's
    /// question; the kernel has only "sip".
    #[error("no persistence engine can be named {name:?}")]
    BadPeName {
        /// The name's bytes (up to the first NUL, as the kernel reads it).
        name: Vec<u8>,
    },
}

impl Skipped {
    /// A short stable name, for a metric's label.
    pub fn reason(&self) -> &'static str {
        match self {
            Skipped::UnsupportedProtocol { .. } => "unsupported_protocol",
            Skipped::BadState { .. } => "bad_state",
            Skipped::UnknownOption { .. } => "unknown_option",
            Skipped::PeWithoutName => "pe_without_name",
            Skipped::BadPeName { .. } => "bad_pe_name",
        }
    }
}

/// Reads one received datagram as a kernel backup with sync id `backup_syncid` would
/// (`ip_vs_process_message`); 0 takes every master's, as the kernel's does.
///
/// A datagram is version 1 when its byte 0 (reserved) is 0, byte 5 is
/// [`SYNC_PROTO_VER`] and bytes 6-7 (spare) are 0; anything else is read as version 0,
/// as the kernel does (a version 1 header with another version byte is an empty version
/// 0 message: nr_conns 0). Bytes after the last entry are ignored, as there.
///
/// Never panics; allocates at most in proportion to `datagram`'s length; loops at most
/// 255 entries, each over options at least 3 bytes long.
///
/// # Errors
/// [`Malformed`]: the fault that makes a kernel backup drop the whole datagram.
pub fn parse(datagram: &[u8], backup_syncid: u8) -> Result<Message, Malformed> {
    let len = datagram.len();
    let mut header = Reader::new(datagram);
    let (Some(first), Some(syncid), Some(size)) = (header.u8(), header.u8(), header.u16()) else {
        return Err(Malformed::Short { len });
    };
    if usize::from(size) != len {
        return Err(Malformed::SizeMismatch { size, len });
    }
    if backup_syncid != 0 && syncid != backup_syncid {
        return Err(Malformed::ForeignSyncid { syncid });
    }
    // Bytes 4..8 of a shorter datagram: the kernel reads what its buffer held before;
    // read as absent, so it is version 0.
    let (count, version, spare) = (header.u8(), header.u8(), header.u16());
    let v1 = first == 0 && version == Some(SYNC_PROTO_VER) && spare == Some(0);
    let mut message = Message {
        version: if v1 { Version::V1 } else { Version::V0 },
        syncid,
        entries: Vec::new(),
        skipped: Vec::new(),
    };
    if v1 {
        parse_v1(datagram, count.unwrap_or(0), &mut message)?;
    } else {
        parse_v0(datagram, first, &mut message)?;
    }
    Ok(message)
}

fn keep(message: &mut Message, entry: Result<Entry, Skipped>) {
    match entry {
        Ok(e) => message.entries.push(e),
        Err(s) => message.skipped.push(s),
    }
}

/// Version 1's entries (`ip_vs_process_message`'s loop).
fn parse_v1(d: &[u8], count: u8, message: &mut Message) -> Result<(), Malformed> {
    let mut offset = HEADER_LEN;
    for index in 0..usize::from(count) {
        // The fixed IPv4 part must be there before the size is even read.
        if offset + ENTRY_V4_LEN > d.len() {
            return Err(Malformed::Truncated { index, offset });
        }
        let mut head = Reader::new(d.get(offset..).unwrap_or_default());
        let (Some(kind), Some(_), Some(ver_size)) = (head.u8(), head.u8(), head.u16()) else {
            return Err(Malformed::Truncated { index, offset });
        };
        let size = ver_size & SVER_MASK;
        let end = offset + usize::from(size);
        let Some(body) = d.get(offset..end) else {
            return Err(Malformed::EntryOverrun {
                index,
                offset,
                size,
            });
        };
        if ver_size >> SVER_SHIFT != 0 {
            let version = u8::try_from(ver_size >> SVER_SHIFT).unwrap_or(u8::MAX);
            return Err(Malformed::BadVersion { index, version });
        }
        keep(message, entry_v1(body, kind, index)?);
        // The master pads each entry to a multiple of 4; the receiver skips the padding
        // by rounding the size up, whether or not the padding is there.
        offset += (usize::from(size) + 3) & !3;
    }
    Ok(())
}

/// One version 1 entry, `body` its `size` bytes (`ip_vs_proc_sync_conn`).
fn entry_v1(body: &[u8], kind: u8, index: usize) -> Result<Result<Entry, Skipped>, Malformed> {
    let v6 = match kind {
        k if k & STYPE_F_INET6 != 0 => true,
        0 => false,
        kind => return Err(Malformed::BadType { index, kind }),
    };
    let mut r = Reader::new(body);
    let needed = if v6 { ENTRY_V6_LEN } else { ENTRY_V4_LEN };
    let Some(fixed) = Fixed::read(&mut r, v6) else {
        let size = u16::try_from(body.len()).unwrap_or(u16::MAX);
        return Err(Malformed::EntrySize {
            index,
            size,
            needed,
        });
    };
    let options = match Options::read(r, index)? {
        Ok(o) => o,
        Err(skip) => return Ok(Err(skip)),
    };
    // Checked after the options, as the kernel does: a bad option drops the datagram
    // even when the entry would have been skipped.
    let protocol = match admit(fixed.protocol, fixed.flags, fixed.state) {
        Ok(p) => p,
        Err(skip) => return Ok(Err(skip)),
    };
    let pe = match options.pe() {
        Ok(pe) => pe,
        Err(skip) => return Ok(Err(skip)),
    };
    let [caddr, vaddr, daddr] = fixed.addrs;
    let [cport, vport, dport] = fixed.ports;
    Ok(Ok(Entry {
        protocol,
        client: SocketAddr::new(caddr, cport),
        vip: SocketAddr::new(vaddr, vport),
        real: SocketAddr::new(daddr, dport),
        fwmark: fixed.fwmark,
        flags: fixed.flags,
        state: fixed.state,
        timeout: fixed.timeout,
        seq: options.seq,
        pe,
    }))
}

/// Version 0's entries (`ip_vs_process_message_v0`).
fn parse_v0(d: &[u8], count: u8, message: &mut Message) -> Result<(), Malformed> {
    let mut offset = HEADER_V0_LEN;
    for index in 0..usize::from(count) {
        let mut r = Reader::new(d.get(offset..).unwrap_or_default());
        let truncated = Malformed::Truncated { index, offset };
        let conn = (|| {
            let _reserved = r.u8()?;
            let protocol = r.u8()?;
            let ports = [r.u16()?, r.u16()?, r.u16()?];
            let addrs = [r.addr(false)?, r.addr(false)?, r.addr(false)?];
            let flags = Flags(u32::from(r.u16()?));
            let state = r.u16()?;
            Some((protocol, ports, addrs, flags, state))
        })();
        let (protocol, [cport, vport, dport], [caddr, vaddr, daddr], flags, state) =
            conn.ok_or(truncated.clone())?;
        let seq = if flags.has_seq() {
            Some(r.seq(u32::from_ne_bytes).ok_or(truncated)?)
        } else {
            None
        };
        offset += ENTRY_V0_LEN + seq.map_or(0, |_| SEQ_OPTIONS_LEN);
        let entry = admit(protocol, flags, state).map(|protocol| Entry {
            protocol,
            client: SocketAddr::new(caddr, cport),
            vip: SocketAddr::new(vaddr, vport),
            real: SocketAddr::new(daddr, dport),
            fwmark: 0,
            flags,
            state,
            timeout: 0,
            seq,
            pe: None,
        });
        keep(message, entry);
    }
    Ok(())
}

/// The kernel's protocol and state checks (`ip_vs_proc_sync_conn`,
/// `ip_vs_process_message_v0`): a connection's protocol must be one IPVS balances and
/// its state within that protocol's table; a template's state NONE or ASSURED, whatever
/// its protocol (6.18 drops the others; older kernels only logged them).
fn admit(number: u8, flags: Flags, state: u16) -> Result<Option<Protocol>, Skipped> {
    let protocol = match number {
        0 => Some(None),
        6 => Some(Some(Protocol::Tcp)),
        17 => Some(Some(Protocol::Udp)),
        132 => Some(Some(Protocol::Sctp)),
        _ => None,
    };
    let unsupported = Skipped::UnsupportedProtocol { protocol: number };
    let template = flags.is_template();
    let names = match protocol {
        Some(p) => state_names(p, template),
        None if template => Some(&TEMPLATE_STATES[..]),
        None => None,
    };
    let Some(names) = names else {
        return Err(unsupported);
    };
    if usize::from(state) >= names.len() {
        return Err(Skipped::BadState {
            protocol: number,
            state,
            template,
        });
    }
    protocol.ok_or(unsupported)
}

fn ipproto(protocol: Option<Protocol>) -> u8 {
    match protocol {
        None => 0,
        Some(Protocol::Tcp) => 6,
        Some(Protocol::Udp) => 17,
        Some(Protocol::Sctp) => 132,
    }
}

/// A version 1 entry's fixed part.
struct Fixed {
    protocol: u8,
    flags: Flags,
    state: u16,
    ports: [u16; 3],
    fwmark: u32,
    timeout: u32,
    addrs: [IpAddr; 3],
}

impl Fixed {
    fn read(r: &mut Reader, v6: bool) -> Option<Fixed> {
        let _kind = r.u8()?;
        let protocol = r.u8()?;
        let _ver_size = r.u16()?;
        let flags = Flags(r.u32()?);
        let state = r.u16()?;
        let ports = [r.u16()?, r.u16()?, r.u16()?];
        let fwmark = r.u32()?;
        let timeout = r.u32()?;
        let addrs = [r.addr(v6)?, r.addr(v6)?, r.addr(v6)?];
        Some(Fixed {
            protocol,
            flags,
            state,
            ports,
            fwmark,
            timeout,
            addrs,
        })
    }
}

/// A version 1 entry's options, as found (borrowed from the datagram).
#[derive(Default)]
struct Options<'a> {
    seq: Option<SeqOptions>,
    pe_data: Option<&'a [u8]>,
    pe_name: Option<&'a [u8]>,
}

impl<'a> Options<'a> {
    /// The options after the fixed part, to the entry's end; the inner error is an
    /// unknown mandatory option, which skips the entry without reading further.
    fn read(mut r: Reader<'a>, index: usize) -> Result<Result<Options<'a>, Skipped>, Malformed> {
        let mut o = Options::default();
        while !r.is_empty() {
            let (Some(kind), Some(len)) = (r.u8(), r.u8()) else {
                return Err(Malformed::OptionTruncated { index });
            };
            let data = match r.take(usize::from(len)) {
                Some(data) if len != 0 => data,
                _ => return Err(Malformed::OptionLength { index, kind, len }),
            };
            let twice = Malformed::DuplicateOption {
                index,
                kind: kind & !OPT_F_PARAM,
            };
            match kind & !OPT_F_PARAM {
                OPT_SEQ_DATA => {
                    if usize::from(len) != SEQ_OPTIONS_LEN {
                        return Err(Malformed::SeqOptionLength { index, len });
                    }
                    if o.seq.is_some() {
                        return Err(twice);
                    }
                    o.seq = Reader::new(data).seq(u32::from_be_bytes);
                }
                // Its length cannot pass IP_VS_PEDATA_MAXLEN (255): it is one byte.
                OPT_PE_DATA if o.pe_data.is_some() => return Err(twice),
                OPT_PE_DATA => o.pe_data = Some(data),
                OPT_PE_NAME => {
                    if usize::from(len) > PE_NAME_MAX {
                        return Err(Malformed::PeNameTooLong { index, len });
                    }
                    if o.pe_name.is_some() {
                        return Err(twice);
                    }
                    o.pe_name = Some(data);
                }
                _ if kind & OPT_F_PARAM == 0 => return Ok(Err(Skipped::UnknownOption { kind })),
                _ => {}
            }
        }
        Ok(Ok(o))
    }

    /// The engine's name and data (`ip_vs_conn_fill_param_sync`): a name without data
    /// is ignored, data without a name skips the entry.
    fn pe(&self) -> Result<Option<PeData>, Skipped> {
        let Some(data) = self.pe_data else {
            return Ok(None);
        };
        let name = self.pe_name.ok_or(Skipped::PeWithoutName)?;
        // The kernel copies the name into a C string: a NUL ends it.
        let name = name.split(|b| *b == 0).next().unwrap_or_default();
        std::str::from_utf8(name)
            .ok()
            .and_then(|n| PeData::new(n, data))
            .map(Some)
            .ok_or_else(|| Skipped::BadPeName {
                name: name.to_vec(),
            })
    }
}

/// Reads fixed-width fields front to back; every read is checked.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.rest.split_at_checked(n)?;
        self.rest = rest;
        Some(head)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.rest.split_first_chunk::<N>()?;
        self.rest = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.array::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_be_bytes)
    }

    fn addr(&mut self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.array::<16>().map(IpAddr::from)
        } else {
            self.array::<4>().map(IpAddr::from)
        }
    }

    /// Sequence options, each number read with `order` (network order on version 1,
    /// host order on version 0).
    fn seq(&mut self, order: fn([u8; 4]) -> u32) -> Option<SeqOptions> {
        let mut one = || {
            Some(Seq {
                init_seq: order(self.array()?),
                delta: order(self.array()?),
                previous_delta: order(self.array()?),
            })
        };
        let in_seq = one()?;
        let out_seq = one()?;
        Some(SeqOptions { in_seq, out_seq })
    }
}

/// Why [`Builder::push`] cannot put an entry on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unencodable {
    /// The client, virtual and real addresses are not all IPv4 or all IPv6: sync has
    /// one family per entry.
    #[error("the entry's addresses mix IPv4 and IPv6")]
    MixedFamilies,
}

/// Packs entries into version 1 datagrams as the kernel's master does
/// (`ip_vs_sync_conn`, `ip_vs_sync_buff_create`): each entry after the first starts on
/// a multiple of 4, and a datagram is closed when the next entry would take it past
/// `maxlen`, or past [`MAX_CONNS`] entries (a limit the kernel leaves to its 1500-byte
/// default; a larger `--sync-maxlen` would wrap its count). An entry longer than
/// `maxlen` alone goes out alone in a longer datagram, as the kernel's does.
///
/// Which connections to send, and when (the kernel: on state changes and every
/// `sync_threshold` packets, never one-packet connections, a connection's template
/// after it), is the caller's; so is sending what [`Builder::finish`] returns
/// [`FLUSH_AFTER`] the first entry went in.
#[derive(Debug)]
pub struct Builder {
    syncid: u8,
    maxlen: usize,
    /// The open datagram: its header, then its entries; empty when none is open.
    buf: Vec<u8>,
    /// The open datagram's limit: `maxlen`, or its only entry's length.
    limit: usize,
    count: usize,
}

impl Builder {
    /// A builder of datagrams from master `syncid`, each at most `maxlen` bytes (see
    /// [`sync_maxlen`]; more than [`MAX_MAXLEN`] is taken as that).
    pub fn new(syncid: u8, maxlen: usize) -> Builder {
        Builder {
            syncid,
            maxlen: maxlen.min(MAX_MAXLEN),
            buf: Vec::new(),
            limit: 0,
            count: 0,
        }
    }

    /// Adds `entry`, with its flags' [`Flags::HASHED`] cleared as the kernel's master
    /// does. Returns the datagram it closed to make room, if it did: send it.
    ///
    /// # Errors
    /// [`Unencodable`]: nothing is added and nothing closed.
    pub fn push(&mut self, entry: &Entry) -> Result<Option<Vec<u8>>, Unencodable> {
        let len = entry.wire_len().ok_or(Unencodable::MixedFamilies)?;
        let mut closed = None;
        if self.count > 0 {
            let pad = self.buf.len().wrapping_neg() & 3;
            if self.buf.len() + pad + len > self.limit || self.count == MAX_CONNS {
                closed = self.finish();
            } else {
                self.buf.resize(self.buf.len() + pad, 0);
            }
        }
        if self.count == 0 {
            self.limit = self.maxlen.max(HEADER_LEN + len);
            self.buf = Vec::with_capacity(self.limit);
            // Size and count are written when the datagram is closed.
            self.buf
                .extend_from_slice(&[0, self.syncid, 0, 0, 0, SYNC_PROTO_VER, 0, 0]);
        }
        encode(entry, len, &mut self.buf);
        self.count += 1;
        Ok(closed)
    }

    /// Closes the open datagram and returns it; None if no entry is waiting.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let mut datagram = std::mem::take(&mut self.buf);
        // Both fit: the limit is at most MAX_MAXLEN, the count at most MAX_CONNS.
        let size = u16::try_from(datagram.len()).unwrap_or(u16::MAX);
        let count = u8::try_from(self.count).unwrap_or(u8::MAX);
        if let Some(header) = datagram.get_mut(2..5) {
            header.copy_from_slice(&[size.to_be_bytes()[0], size.to_be_bytes()[1], count]);
        }
        self.count = 0;
        Some(datagram)
    }

    /// Entries in the open datagram.
    pub fn pending(&self) -> usize {
        self.count
    }
}

/// Appends `entry`'s `len` bytes (`ip_vs_sync_conn`), options in the kernel's order:
/// sequence, engine data, engine name.
fn encode(entry: &Entry, len: usize, out: &mut Vec<u8>) {
    let v6 = entry.is_v6();
    out.push(if v6 { STYPE_F_INET6 } else { 0 });
    out.push(ipproto(entry.protocol));
    // Version 0 in the top bits; len <= MAX_ENTRY_LEN, far below the 12 bits.
    out.extend_from_slice(&(len as u16 & SVER_MASK).to_be_bytes());
    out.extend_from_slice(&(entry.flags.0 & !Flags::HASHED).to_be_bytes());
    out.extend_from_slice(&entry.state.to_be_bytes());
    for port in [entry.client.port(), entry.vip.port(), entry.real.port()] {
        out.extend_from_slice(&port.to_be_bytes());
    }
    out.extend_from_slice(&entry.fwmark.to_be_bytes());
    out.extend_from_slice(&entry.timeout.to_be_bytes());
    for addr in [entry.client.ip(), entry.vip.ip(), entry.real.ip()] {
        match addr {
            IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
        }
    }
    if let Some(seq) = entry.seq {
        out.extend_from_slice(&[OPT_SEQ_DATA, SEQ_OPTIONS_LEN as u8]);
        for s in [seq.in_seq, seq.out_seq] {
            for n in [s.init_seq, s.delta, s.previous_delta] {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
    }
    if let Some(pe) = &entry.pe {
        // Both lengths are bounded by PeData::new (255 and 16).
        out.extend_from_slice(&[OPT_PE_DATA, pe.data.len() as u8]);
        out.extend_from_slice(&pe.data);
        out.extend_from_slice(&[OPT_PE_NAME, pe.name.len() as u8]);
        out.extend_from_slice(pe.name.as_bytes());
    }
}

#[cfg(test)]
mod tests;
