//! ipvsadm 1.31's output formats, byte for byte: `-L` with all its views (`--stats`,
//! `--rate`, `--exact`, `--thresholds`, `--persistent-conn`, `--tun-info`), `-L -c`,
//! `--timeout`, and `-S` rules. Columns, padding, truncation (33 bytes for an IPv4
//! service name, 28 for a server), K/M/G/T numbers and the sort order are ipvsadm's.
//! Input is plain entries (from the daemon or the kernel); names come from [`Names`].

use std::fmt::Write as _;
use std::net::IpAddr;

use super::inet::{inet_ntop, inet_ntop_port};
use super::names::Names;
use super::sort::{compare_servers, compare_services, merge_sort};
use crate::table::{
    ConnEntry, Forward, Info, ListenRule, ServerEntry, ServiceEntry, ServiceKey, Timeouts,
    TunnelKind,
};

/// ipvsadm's printing format flags (FMT_*).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Format(pub u32);

impl Format {
    pub const NUMERIC: u32 = 0x0001;
    pub const RULE: u32 = 0x0002;
    pub const STATS: u32 = 0x0004;
    pub const RATE: u32 = 0x0008;
    pub const THRESHOLDS: u32 = 0x0010;
    pub const PERSISTENT_CONN: u32 = 0x0020;
    pub const NOSORT: u32 = 0x0040;
    pub const EXACT: u32 = 0x0080;
    pub const TUN_INFO: u32 = 0x0100;

    pub fn has(self, flag: u32) -> bool {
        self.0 & flag != 0
    }

    pub fn with(self, flag: u32) -> Format {
        Format(self.0 | flag)
    }
}

/// Cuts a string to at most `n` bytes, as ipvsadm's `buf[n] = '\0'` does (at a character
/// boundary, for the rare non-ASCII host name).
fn truncate(mut s: String, n: usize) -> String {
    if s.len() > n {
        let mut cut = n;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// `addrport_to_anyname`: "addr:port", names unless numeric, brackets for IPv6, at most
/// 59 bytes. `protocol` is the services-file protocol, None where ipvsadm has none.
pub fn addrport_to_anyname(
    names: &mut dyn Names,
    addr: &IpAddr,
    port: u16,
    protocol: Option<&str>,
    format: Format,
) -> String {
    let text = if format.has(Format::NUMERIC) {
        inet_ntop_port(addr, port)
    } else {
        let (open, close) = if addr.is_ipv6() { ("[", "]") } else { ("", "") };
        let host = names.host_name(*addr).unwrap_or_else(|| inet_ntop(addr));
        let service = protocol
            .and_then(|p| names.service_name(port, p))
            .unwrap_or_else(|| port.to_string());
        format!("{open}{host}{close}:{service}")
    };
    truncate(text, 59)
}

/// `print_largenum`.
fn largenum(out: &mut String, n: u64, format: Format) {
    if format.has(Format::EXACT) {
        let digits = n.to_string();
        let width = if digits.len() <= 8 {
            9
        } else {
            digits.len() + 1
        };
        let _ = write!(out, "{digits:>width$}");
        return;
    }
    let _ = if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

fn title(out: &mut String, format: Format) {
    let head = "Prot LocalAddress:Port";
    let _ = if format.has(Format::STATS) {
        writeln!(
            out,
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        )
    } else if format.has(Format::RATE) {
        writeln!(
            out,
            "{head:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n  -> RemoteAddress:Port",
            "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        )
    } else if format.has(Format::THRESHOLDS) {
        writeln!(
            out,
            "{head:<33} {:<10} {:<10} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        )
    } else if format.has(Format::PERSISTENT_CONN) {
        writeln!(
            out,
            "{head:<33} {:<9} {:<11} {:<10} {:<10}\n  -> RemoteAddress:Port",
            "Weight", "PersistConn", "ActiveConn", "InActConn"
        )
    } else if format.has(Format::TUN_INFO) {
        writeln!(
            out,
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn"
        )
    } else if !format.has(Format::RULE) {
        writeln!(
            out,
            "Prot LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
        )
    } else {
        Ok(())
    };
}

/// `fwd_tun_info`: the TunnelInfo column.
fn tunnel_info(server: &ServerEntry) -> String {
    if server.forward != Forward::Tunnel {
        return "n/a".to_string();
    }
    let t = &server.tunnel;
    match t.kind {
        TunnelKind::Ipip => "ipip".to_string(),
        TunnelKind::Gue => format!("gue:{}:{}", t.port, t.checksum.short()),
        TunnelKind::Gre => format!("gre:{}", t.checksum.short()),
    }
}

fn mask_suffix(entry: &ServiceEntry, keyword: &str) -> String {
    if entry.netmask.is_full() {
        String::new()
    } else {
        format!(" {keyword} {}", entry.netmask)
    }
}

/// `print_service_entry`: the service line and its servers' lines.
pub fn service_entry(
    out: &mut String,
    names: &mut dyn Names,
    entry: &ServiceEntry,
    format: Format,
) {
    let rule = format.has(Format::RULE);
    let services_protocol = entry.key.protocol().map(|p| p.services_name());
    let ipv6 = entry.key.family() == crate::table::Family::Inet6;
    let svc_name = match &entry.key {
        ServiceKey::Fwmark { mark, .. } => {
            // ipvsadm 1.31 prints the mark with %d.
            let mark = *mark as i32;
            match (rule, ipv6) {
                (true, true) => format!("-f {mark} -6"),
                (true, false) => format!("-f {mark}"),
                (false, true) => format!("FWM  {mark} IPv6"),
                (false, false) => format!("FWM  {mark}"),
            }
        }
        ServiceKey::Inet {
            protocol,
            addr,
            port,
        } => {
            let vname = addrport_to_anyname(names, addr, *port, services_protocol, format);
            if rule {
                format!("{} {vname}", protocol.switch())
            } else {
                let name = format!("{:<4} {vname}", protocol.label());
                if ipv6 { name } else { truncate(name, 33) }
            }
        }
    };

    let sched_flags = entry.flags.scheduler_flag_names(&entry.scheduler);
    if rule {
        let _ = write!(out, "-A {svc_name} -s {}", entry.scheduler);
        if entry.flags.persistent() {
            let _ = write!(out, " -p {}{}", entry.timeout, mask_suffix(entry, "-M"));
        }
        if let Some(pe) = &entry.pe {
            let _ = write!(out, " --pe {pe}");
        }
        if entry.flags.one_packet() {
            out.push_str(" -o");
        }
        if !sched_flags.is_empty() {
            let _ = write!(out, " -b {sched_flags}");
        }
        out.push_str(&entry.options.arguments());
    } else if format.has(Format::STATS) {
        let _ = write!(out, "{svc_name:<33}");
        let c = &entry.stats.counters;
        for n in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
            largenum(out, n, format);
        }
    } else if format.has(Format::RATE) {
        let _ = write!(out, "{svc_name:<33}");
        let r = &entry.stats.rates;
        for n in [r.cps, r.inpps, r.outpps, r.inbps, r.outbps] {
            largenum(out, n, format);
        }
    } else {
        let _ = write!(out, "{svc_name} {}", entry.scheduler);
        if !sched_flags.is_empty() {
            let _ = write!(out, " ({sched_flags})");
        }
        if entry.flags.persistent() {
            let _ = write!(
                out,
                " persistent {}{}",
                entry.timeout,
                mask_suffix(entry, "mask")
            );
            if let Some(pe) = &entry.pe {
                let _ = write!(out, " pe {pe}");
            }
        }
        if entry.flags.one_packet() {
            out.push_str(" ops");
        }
    }
    out.push('\n');

    let mut servers = entry.servers.clone();
    if !format.has(Format::NOSORT) {
        merge_sort(&mut servers, &compare_servers);
    }
    for server in &servers {
        let mut dname =
            addrport_to_anyname(names, &server.addr, server.port, services_protocol, format);
        if !rule && server.addr.is_ipv4() {
            dname = truncate(dname, 28);
        }
        server_line(out, &svc_name, &dname, server, format);
    }
}

fn server_line(out: &mut String, svc_name: &str, dname: &str, s: &ServerEntry, format: Format) {
    let _ = if format.has(Format::RULE) {
        let base = format!(
            "-a {svc_name} -r {dname} {} -w {}",
            s.forward.switch(),
            s.weight
        );
        if s.forward == Forward::Tunnel {
            let t = &s.tunnel;
            match t.kind {
                TunnelKind::Gre => writeln!(out, "{base} --tun-type gre {}", t.checksum.option()),
                TunnelKind::Gue => writeln!(
                    out,
                    "{base} --tun-type gue --tun-port {} {}",
                    t.port,
                    t.checksum.option()
                ),
                TunnelKind::Ipip => writeln!(out, "{base} --tun-type ipip"),
            }
        } else {
            writeln!(out, "{base}")
        }
    } else if format.has(Format::STATS) {
        let _ = write!(out, "  -> {dname:<28}");
        let c = &s.stats.counters;
        for n in [c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes] {
            largenum(out, n, format);
        }
        writeln!(out)
    } else if format.has(Format::RATE) {
        let r = &s.stats.rates;
        let _ = write!(
            out,
            "  -> {dname:<28} {:>8} {:>8} {:>8}",
            r.cps, r.inpps, r.outpps
        );
        largenum(out, r.inbps, format);
        largenum(out, r.outbps, format);
        writeln!(out)
    } else if format.has(Format::THRESHOLDS) {
        writeln!(
            out,
            "  -> {dname:<28} {:<10} {:<10} {:<10} {:<10}",
            s.u_threshold, s.l_threshold, s.active_conns, s.inactive_conns
        )
    } else if format.has(Format::PERSISTENT_CONN) {
        writeln!(
            out,
            "  -> {dname:<28} {:<9} {:<11} {:<10} {:<10}",
            s.weight, s.persistent_conns, s.active_conns, s.inactive_conns
        )
    } else if format.has(Format::TUN_INFO) {
        writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<13} {:<6} {:<10} {:<10}",
            s.forward.label(),
            tunnel_info(s),
            s.weight,
            s.active_conns,
            s.inactive_conns
        )
    } else {
        writeln!(
            out,
            "  -> {dname:<28} {:<7} {:<6} {:<10} {:<10}",
            s.forward.label(),
            s.weight,
            s.active_conns,
            s.inactive_conns
        )
    };
}

/// uvs's listen rules, as the uvsadm commands that make them.
pub fn listen_rules(out: &mut String, names: &mut dyn Names, rules: &[ListenRule], format: Format) {
    for rule in rules {
        let l = &rule.listen;
        let name = addrport_to_anyname(
            names,
            &l.addr,
            l.port,
            Some(l.protocol.services_name()),
            format,
        );
        let _ = write!(out, "--add-listener {} {name}", l.protocol.switch());
        if let Some(mark) = rule.mark {
            let _ = write!(out, " --mark {mark}");
        }
        out.push('\n');
    }
}

/// The first line of `-L`.
pub fn version_line(out: &mut String, info: &Info) {
    let v = info.version;
    let _ = writeln!(
        out,
        "IP Virtual Server version {}.{}.{} (size={})",
        (v >> 16) & 0xff,
        (v >> 8) & 0xff,
        v & 0xff,
        info.conn_tab_size
    );
}

/// `list_all` after the version line: title and every service, sorted unless NOSORT.
pub fn services(out: &mut String, names: &mut dyn Names, entries: &[ServiceEntry], format: Format) {
    title(out, format);
    more_services(out, names, entries, format);
}

/// Services as [`services`] lists them, without the title: the ones `-S` writes after
/// the listen rules they shadow (`Session::list`).
pub fn more_services(
    out: &mut String,
    names: &mut dyn Names,
    entries: &[ServiceEntry],
    format: Format,
) {
    let mut entries = entries.to_vec();
    if !format.has(Format::NOSORT) {
        merge_sort(&mut entries, &compare_services);
    }
    for entry in &entries {
        service_entry(out, names, entry, format);
    }
}

/// `list_service`: title and one service.
pub fn single_service(
    out: &mut String,
    names: &mut dyn Names,
    entry: &ServiceEntry,
    format: Format,
) {
    title(out, format);
    service_entry(out, names, entry, format);
}

/// `list_timeout`.
pub fn timeouts(out: &mut String, t: &Timeouts) {
    let _ = writeln!(
        out,
        "Timeout (tcp tcpfin udp): {} {} {}",
        t.tcp, t.tcp_fin, t.udp
    );
}

/// `list_daemon`: one line per running sync daemon, master first, nothing when none
/// runs (shared/golden/daemon_L_n_daemon.out, daemon_after_stop_L_n_daemon.out).
pub fn daemons(out: &mut String, daemons: &[crate::table::SyncDaemon]) {
    for d in daemons {
        let _ = writeln!(out, "{d}");
    }
}

/// `list_conn`: the connection table.
pub fn connections(out: &mut String, names: &mut dyn Names, conns: &[ConnEntry], format: Format) {
    out.push_str("IPVS connection entries\n");
    let persistent = format.has(Format::PERSISTENT_CONN);
    let _ = if persistent {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} {:<18} {:<16} pe_data",
            "state", "source", "virtual", "destination", "pe name"
        )
    } else {
        writeln!(
            out,
            "pro expire {:<11} {:<18} {:<18} destination",
            "state", "source", "virtual"
        )
    };
    for c in conns {
        let protocol = match c.protocol.as_str() {
            "TCP" => Some("tcp"),
            "UDP" => Some("udp"),
            "SCTP" => Some("sctp"),
            _ => None,
        };
        let cname = addrport_to_anyname(names, &c.client_addr, c.client_port, protocol, format);
        let vname = addrport_to_anyname(names, &c.virtual_addr, c.virtual_port, protocol, format);
        let dname = addrport_to_anyname(names, &c.dest_addr, c.dest_port, protocol, format);
        let expire = format!("{:02}:{:02}", c.expires / 60, c.expires % 60);
        let _ = match (&c.pe_name, &c.pe_data) {
            (Some(pe_name), Some(pe_data)) if persistent => writeln!(
                out,
                "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname:<16} {pe_name:<18} {pe_data}",
                c.protocol, c.state
            ),
            _ => writeln!(
                out,
                "{:<3} {expire:<6} {:<11} {cname:<18} {vname:<18} {dname}",
                c.protocol, c.state
            ),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: u64, exact: bool) -> String {
        let mut s = String::new();
        largenum(&mut s, n, Format(if exact { Format::EXACT } else { 0 }));
        s
    }

    #[test]
    fn large_numbers() {
        assert_eq!(num(0, false), "        0");
        assert_eq!(num(99_999_999, false), " 99999999");
        assert_eq!(num(120_456_100, false), "  120456K");
        assert_eq!(num(1_000_000_000, false), "    1000M");
        assert_eq!(num(99_999_999_999, false), "   99999M");
        assert_eq!(num(100_000_000_000, false), "     100G");
        assert_eq!(num(100_000_000_000_000, false), "     100T");
        assert_eq!(num(120_456_100, true), " 120456100");
        assert_eq!(num(12_345_678, true), " 12345678");
    }
}
