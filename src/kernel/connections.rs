//! What the kernel's IPVS shows in /proc: its connection table as `-L -c` lists it
//! (/proc/net/ip_vs_conn, what ipvsadm itself reads), parsed into the table's
//! connection entries, and its totals (/proc/net/ip_vs_stats, what node_exporter
//! reads). Used in kernel mode by the director and the mirror.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::stats::{Counters, Rates};
use crate::table::ConnEntry;

const PATH: &str = "/proc/net/ip_vs_conn";

/// An address as the file writes it: eight hex digits for IPv4, the full colon form for
/// IPv6.
fn address(text: &str) -> Option<IpAddr> {
    if text.len() == 8 && !text.contains(':') {
        return u32::from_str_radix(text, 16)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a)));
    }
    text.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

fn port(text: &str) -> Option<u16> {
    u16::from_str_radix(text, 16).ok()
}

/// One line of the file, if it is an entry.
fn entry(line: &str) -> Option<ConnEntry> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 9 || f[0] == "Pro" {
        return None;
    }
    Some(ConnEntry {
        protocol: f[0].to_string(),
        client_addr: address(f[1])?,
        client_port: port(f[2])?,
        virtual_addr: address(f[3])?,
        virtual_port: port(f[4])?,
        dest_addr: address(f[5])?,
        dest_port: port(f[6])?,
        state: f[7].to_string(),
        expires: f[8].parse().ok()?,
        pe_name: f.get(9).map(|s| s.to_string()),
        pe_data: f.get(10).map(|s| s.to_string()),
    })
}

/// The totals and their rates in /proc/net/ip_vs_stats: two title lines, the five
/// counters in hex, an empty line, a title line, the five rates in hex.
pub fn parse_totals(text: &str) -> Option<(Counters, Rates)> {
    let numbers = |line: &str| -> Option<[u64; 5]> {
        let v: Vec<u64> = line
            .split_whitespace()
            .map(|h| u64::from_str_radix(h, 16))
            .collect::<Result<_, _>>()
            .ok()?;
        v.try_into().ok()
    };
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let c = numbers(lines.get(2)?)?;
    let r = numbers(lines.get(4)?)?;
    Some((
        Counters {
            conns: c[0],
            inpkts: c[1],
            outpkts: c[2],
            inbytes: c[3],
            outbytes: c[4],
        },
        Rates {
            cps: r[0],
            inpps: r[1],
            outpps: r[2],
            inbps: r[3],
            outbps: r[4],
        },
    ))
}

/// The kernel's totals now, over every service (not only uvs's).
pub fn totals() -> Option<(Counters, Rates)> {
    parse_totals(&std::fs::read_to_string("/proc/net/ip_vs_stats").ok()?)
}

/// Parses the file's text.
pub fn parse(text: &str) -> Vec<ConnEntry> {
    text.lines().filter_map(entry).collect()
}

/// The kernel's connections now.
pub fn read() -> io::Result<Vec<ConnEntry>> {
    Ok(parse(&std::fs::read_to_string(PATH)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_totals_are_read() {
        let text = "   Total Incoming Outgoing         Incoming         Outgoing
   Conns  Packets  Packets            Bytes            Bytes
      10       46       28             1FA4             2A0C

 Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
       1        5        3              12C              1F4
";
        let (c, r) = parse_totals(text).unwrap();
        assert_eq!(
            (c.conns, c.inpkts, c.outpkts, c.inbytes, c.outbytes),
            (16, 70, 40, 8100, 10764)
        );
        assert_eq!((r.cps, r.inbps, r.outbps), (1, 300, 500));
    }

    #[test]
    fn the_kernels_lines_are_read() {
        // Captured from Linux 6.1 (shared/ipvs-vm) after two requests and a template.
        let text = "\
Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP 7F000001 EBFE 7F00000A 0050 7F000001 1F90 TIME_WAIT       119
TCP 0000:0000:0000:0000:0000:0000:0000:0001 D182 0000:0000:0000:0000:0000:0000:0000:0001 0051 0000:0000:0000:0000:0000:0000:0000:0001 1F93 TIME_WAIT       119
TCP 7F000001 0000 7F00000A 0050 7F000001 1F90 ASSURED          59
";
        let e = parse(text);
        assert_eq!(e.len(), 3);
        assert_eq!(
            (
                e[0].client_port,
                e[0].virtual_addr,
                e[0].dest_port,
                e[0].expires
            ),
            (60414, "127.0.0.10".parse().unwrap(), 8080, 119)
        );
        assert_eq!(e[1].client_addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(e[1].virtual_port, 81);
        assert_eq!((e[2].state.as_str(), e[2].client_port), ("ASSURED", 0));
    }
}
