//! The C library conversions ipvsadm's behaviour rests on, reproduced: `strtol`,
//! `atoi`, glibc's `inet_aton` (which takes "10.1", "0x0a.0.0.1" and trailing blanks)
//! and `inet_ntop` for IPv6 (which writes "::1.2.3.4" where Rust writes "::102:304").
//! Used by the ipvsadm grammar and the listings.

use std::net::{Ipv4Addr, Ipv6Addr};

fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

/// What `strtol(s, &end, 10)` sees: the value (saturated as glibc saturates), how many
/// bytes the number took (0 when there was no number), and whether it overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrtolResult {
    pub value: i64,
    pub end: usize,
    pub overflow: bool,
}

pub fn strtol(s: &str) -> StrtolResult {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && is_c_space(b[i]) {
        i += 1;
    }
    let negative = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let digits_start = i;
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    while i < b.len() && b[i].is_ascii_digit() {
        let d = u64::from(b[i] - b'0');
        match magnitude.checked_mul(10).and_then(|m| m.checked_add(d)) {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
        i += 1;
    }
    if i == digits_start {
        return StrtolResult {
            value: 0,
            end: 0,
            overflow: false,
        };
    }
    let limit = if negative {
        i64::MIN.unsigned_abs()
    } else {
        i64::MAX as u64
    };
    if magnitude > limit {
        overflow = true;
    }
    let value = match (overflow, negative) {
        (true, true) => i64::MIN,
        (true, false) => i64::MAX,
        (false, true) => (magnitude as i64).wrapping_neg(),
        (false, false) => magnitude as i64,
    };
    StrtolResult {
        value,
        end: i,
        overflow,
    }
}

/// ipvsadm's `string_to_number`: the whole string is a decimal number within [min, max].
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    let r = strtol(s);
    (r.end == s.len() && r.end != 0 && !r.overflow && (min..=max).contains(&r.value))
        .then_some(r.value)
}

/// `atoi`: the leading number, truncated to a C `int` as glibc does.
pub fn atoi(s: &str) -> i32 {
    strtol(s).value as i32
}

/// `strtoul(s, &end, 0)` on a string known to start with a digit: (value, bytes used),
/// or None on overflow of `unsigned long`.
fn strtoul_c(b: &[u8]) -> Option<(u64, usize)> {
    let (radix, mut i) = if b.len() >= 2 && b[0] == b'0' && (b[1] == b'x' || b[1] == b'X') {
        if b.get(2).is_some_and(|c| c.is_ascii_hexdigit()) {
            (16, 2)
        } else {
            // "0x" without hex digits: strtoul reads the "0" only.
            return Some((0, 1));
        }
    } else if b[0] == b'0' {
        (8, 0)
    } else {
        (10, 0)
    };
    let mut value: u64 = 0;
    while let Some(d) = b.get(i).and_then(|c| (*c as char).to_digit(radix)) {
        value = value
            .checked_mul(u64::from(radix))?
            .checked_add(u64::from(d))?;
        i += 1;
    }
    Some((value, i))
}

/// glibc's `inet_aton`: one to four parts, each decimal, octal (leading 0) or hex (0x);
/// the last part fills the remaining bytes; anything after a blank is ignored.
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    const MAX: [u64; 4] = [0xffff_ffff, 0xff_ffff, 0xffff, 0xff];
    let b = s.as_bytes();
    let mut parts: Vec<u8> = Vec::with_capacity(3);
    let mut i = 0;
    let last = loop {
        if !b.get(i).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        let (value, used) = strtoul_c(&b[i..])?;
        if value > 0xffff_ffff {
            return None;
        }
        i += used;
        if b.get(i) == Some(&b'.') {
            if parts.len() > 2 || value > 0xff {
                return None;
            }
            parts.push(value as u8);
            i += 1;
        } else {
            break value;
        }
    };
    if let Some(&c) = b.get(i)
        && !(c.is_ascii() && is_c_space(c))
    {
        return None;
    }
    if last > MAX[parts.len()] {
        return None;
    }
    let mut word = last as u32;
    for (n, part) in parts.iter().enumerate() {
        word |= u32::from(*part) << (24 - 8 * n);
    }
    Some(Ipv4Addr::from(word))
}

/// glibc's `inet_ntop(AF_INET6, ...)`: the first longest run of two or more zero words
/// becomes "::"; IPv4-compatible and IPv4-mapped addresses end in dotted quad.
pub fn inet_ntop6(addr: &Ipv6Addr) -> String {
    let words = addr.segments();
    // Find the first longest run of zero words.
    let (mut best_base, mut best_len) = (None::<usize>, 0);
    let mut cur: Option<(usize, usize)> = None;
    for (i, w) in words.iter().enumerate() {
        if *w == 0 {
            cur = Some(match cur {
                Some((base, len)) => (base, len + 1),
                None => (i, 1),
            });
        } else {
            cur = None;
        }
        if let Some((base, len)) = cur
            && len > best_len
        {
            best_base = Some(base);
            best_len = len;
        }
    }
    if best_len < 2 {
        best_base = None;
    }
    let mut out = String::with_capacity(40);
    let mut i = 0;
    while i < 8 {
        if let Some(base) = best_base
            && i >= base
            && i < base + best_len
        {
            if i == base {
                out.push(':');
            }
            i += 1;
            continue;
        }
        if i != 0 {
            out.push(':');
        }
        if i == 6
            && best_base == Some(0)
            && (best_len == 6 || (best_len == 5 && words[5] == 0xffff))
        {
            let o = addr.octets();
            out.push_str(&format!("{}.{}.{}.{}", o[12], o[13], o[14], o[15]));
            return out;
        }
        out.push_str(&format!("{:x}", words[i]));
        i += 1;
    }
    if best_base.is_some_and(|base| base + best_len == 8) {
        out.push(':');
    }
    out
}

/// `inet_ntop` for either family.
pub fn inet_ntop(addr: &std::net::IpAddr) -> String {
    match addr {
        std::net::IpAddr::V4(a) => a.to_string(),
        std::net::IpAddr::V6(a) => inet_ntop6(a),
    }
}

/// "addr:port" as ipvsadm prints it numerically: [brackets] around IPv6.
pub fn inet_ntop_port(addr: &std::net::IpAddr, port: u16) -> String {
    if addr.is_ipv6() {
        format!("[{}]:{port}", inet_ntop(addr))
    } else {
        format!("{}:{port}", inet_ntop(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strtol_like_glibc() {
        assert_eq!(string_to_number("80", 0, 65535), Some(80));
        assert_eq!(string_to_number(" +80", 0, 65535), Some(80));
        assert_eq!(string_to_number("80 ", 0, 65535), None);
        assert_eq!(string_to_number("", 0, 65535), None);
        assert_eq!(string_to_number("-1", 0, 65535), None);
        assert_eq!(string_to_number("-0", 0, 65535), Some(0));
        assert_eq!(string_to_number("70000", 0, 65535), None);
        assert_eq!(string_to_number("99999999999999999999", 0, i64::MAX), None);
        assert_eq!(string_to_number("0x10", 0, 65535), None);
        assert_eq!(atoi("64"), 64);
        assert_eq!(atoi("64abc"), 64);
        assert_eq!(atoi("abc"), 0);
        assert_eq!(atoi("4294967360"), 64);
    }

    #[test]
    fn inet_aton_like_glibc() {
        let a = |s: &str| inet_aton(s).map(|a| a.to_string());
        assert_eq!(a("172.20.0.24").as_deref(), Some("172.20.0.24"));
        assert_eq!(a("10.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("10.1.2").as_deref(), Some("10.1.0.2"));
        assert_eq!(a("0x0a.0.0.010").as_deref(), Some("10.0.0.8"));
        assert_eq!(a("167772161").as_deref(), Some("10.0.0.1"));
        assert_eq!(a("1.2.3.4 trailing").as_deref(), Some("1.2.3.4"));
        assert_eq!(a("300.1.1.1"), None);
        assert_eq!(a("1.2.3.4.5"), None);
        assert_eq!(a("1.2.3.256"), None);
        assert_eq!(a("1.2.65536"), None);
        assert_eq!(a("08.1.1.1"), None);
        assert_eq!(a("1..2"), None);
        assert_eq!(a("1.2.3."), None);
        assert_eq!(a("host"), None);
        assert_eq!(a(""), None);
        assert_eq!(a("0x"), None);
        assert_eq!(a("0").as_deref(), Some("0.0.0.0"));
        assert_eq!(a("4294967296"), None);
    }

    #[test]
    fn inet_ntop6_like_glibc() {
        let n = |s: &str| inet_ntop6(&s.parse().unwrap());
        assert_eq!(n("2001:db8::1"), "2001:db8::1");
        assert_eq!(n("::1"), "::1");
        assert_eq!(n("::"), "::");
        assert_eq!(n("::1.2.3.4"), "::1.2.3.4");
        assert_eq!(n("::ffff:1.2.3.4"), "::ffff:1.2.3.4");
        assert_eq!(n("1:0:0:2:0:0:0:3"), "1:0:0:2::3");
        assert_eq!(n("1:0:0:2:0:0:3:4"), "1::2:0:0:3:4");
        assert_eq!(n("1:0:2:3:4:5:6:7"), "1:0:2:3:4:5:6:7");
        assert_eq!(n("fe80::"), "fe80::");
        assert_eq!(
            n("2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"),
            "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe"
        );
    }
}
