//! The `real=` and `fallback=` lines of an ldirectord.cf, read with the patterns of
//! ldirectord 4.12's `_ld_read_config_real_resolve`, `add_real_server` and
//! `parse_fallback`, and their names resolved as its `ld_gethostbyname` and
//! `ld_getservbyname` resolve them (through the importer's [`Names`]). Called by the
//! block reader in the parent module once a virtual service's block is read.

use crate::table::server_address::never_unicast;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::bytes::Regex;

use crate::adm::names::Names;
use crate::config::Check;
use crate::table::{Family, Forward, ServerConfig, Tunnel};

/// ldirectord's pattern for a real server: an address (dotted quad, host name or
/// bracketed IPv6), an optional `->LAST` range, an optional `:PORT`, blanks, then the
/// flags. Unanchored, as ldirectord's: what comes before the first match is ignored.
static REAL: LazyLock<Regex> = LazyLock::new(|| {
    let addr = r"\d+\.\d+\.\d+\.\d+|[A-Za-z0-9.-]+|\[[0-9A-f:]+\]";
    Regex::new(&format!(
        r"(?-u)({addr})(->({addr}))?(:(\d+|[A-Za-z0-9_-]+))?\s+(.*)"
    ))
    .expect("a valid pattern")
});
/// The forwarding method: the first run of word characters anywhere in the flags.
static METHOD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)(\w+)(.*)").expect("a valid pattern"));
/// The weight: the first number after blanks, anywhere after the method (so `gate -w 5`
/// gives 5: the `-w` before it is skipped over, as ldirectord's unanchored match does).
static WEIGHT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)\s+(\d+)(.*)").expect("a valid pattern"));
/// Per-server check strings: `"REQUEST", "RECEIVE"` (or a blank between them).
static STRINGS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?-u)\s+"(.*)"[, ]\s*"(.*)"(.*)"#).expect("a valid pattern"));
static LOWER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)\s+l:(\d+)(.*)").expect("a valid pattern"));
static UPPER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)\s+u:(\d+)(.*)").expect("a valid pattern"));
/// `parse_fallback`: the last one or two blank-separated words.
static FALLBACK: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)(\S+)(\s+(\S+))?\s*$").expect("a valid pattern"));
static FALLBACK_PORT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u)(:(\d+|[A-Za-z0-9_-]+))?$").expect("a valid pattern"));

/// ldirectord expands a range into one real server per address; more than this many
/// from one line are not taken, so a small file cannot make millions of servers.
pub const MAX_RANGE: u32 = 256;

/// A real server line as ldirectord takes it: the servers, and the check strings given
/// for them alone (ldirectord's per-server request and receive).
pub struct Reals {
    pub servers: Vec<ServerConfig>,
    pub check: Option<Check>,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `ld_gethostbyname`: an address literal of the family, or (IPv4) a host name.
pub fn host(name: &[u8], family: Family, names: &mut dyn Names) -> Result<IpAddr, String> {
    let mut name = text(name);
    if let (Some(a), Some(b)) = (name.find('['), name.rfind(']'))
        && a < b
    {
        name = name[a + 1..b].to_string();
    }
    match family {
        Family::Inet => match name.parse::<Ipv4Addr>() {
            Ok(a) => Ok(IpAddr::V4(a)),
            Err(_) if name.parse::<Ipv6Addr>().is_ok() => {
                Err(format!("{name}: an IPv6 address where IPv4 is expected"))
            }
            Err(_) => names
                .host_addr(&name)
                .map(IpAddr::V4)
                .ok_or_else(|| format!("{name}: could not resolve host")),
        },
        Family::Inet6 => match name.parse::<Ipv6Addr>() {
            Ok(a) => Ok(IpAddr::V6(a)),
            Err(_) => Err(format!(
                "{name}: not an IPv6 address (uvs resolves host names to IPv4 only)"
            )),
        },
    }
}

/// `ld_getservbyname`: a number below 65536, or a service name of `protocol` (of any
/// protocol when it is empty, as getservbyname with no protocol: tcp, then udp).
pub fn port(name: &[u8], protocol: &str, names: &mut dyn Names) -> Option<u16> {
    if !name.is_empty() && name.iter().all(u8::is_ascii_digit) {
        // Leading zeros and all: Perl compares the number.
        let digits = text(name);
        let trimmed = digits.trim_start_matches('0');
        return if trimmed.is_empty() {
            Some(0)
        } else if trimmed.len() > 5 {
            None
        } else {
            trimmed.parse::<u16>().ok()
        };
    }
    let name = std::str::from_utf8(name).ok()?;
    match protocol {
        "" => names
            .service_port(name, "tcp")
            .or_else(|| names.service_port(name, "udp")),
        p => names.service_port(name, p),
    }
}

/// A number ldirectord took with `\d+`, as uvs holds it, if it fits.
fn number(digits: &[u8]) -> Option<u32> {
    std::str::from_utf8(digits).ok()?.parse::<u32>().ok()
}

/// One `real=` value, as `_ld_read_config_real_resolve` and `add_real_server` take it.
///
/// # Errors
/// ldirectord's refusal, worded as it words it, when it would refuse the line; or why
/// uvs cannot take what ldirectord would (non-UTF-8 check strings, numbers past what
/// ipvsadm takes, ranges over [`MAX_RANGE`] addresses).
pub fn reals(value: &[u8], family: Family, names: &mut dyn Names) -> Result<Reals, String> {
    let c = REAL
        .captures(value)
        .ok_or("invalid address for real server (wrong format)")?;
    let first = c.get(1).map_or(&[][..], |m| m.as_bytes());
    let last = c.get(3).map(|m| m.as_bytes());
    let port_name = c.get(5).map_or(&b"0"[..], |m| m.as_bytes());
    let flags = c.get(6).map_or(&[][..], |m| m.as_bytes());
    let first_addr =
        host(first, family, names).map_err(|e| format!("invalid address ({e}) for real server"))?;
    let port = port(port_name, "", names).ok_or_else(|| {
        format!(
            "invalid port ({}) for real server (could not resolve port)",
            text(port_name)
        )
    })?;
    let addrs: Vec<IpAddr> = match last {
        None => vec![first_addr],
        Some(last) => {
            let last_addr = host(last, family, names)
                .map_err(|e| format!("invalid address ({e}) for real server (end of range)"))?;
            match (first_addr, last_addr) {
                (IpAddr::V4(a), IpAddr::V4(b)) => {
                    let (a, b) = (u32::from(a), u32::from(b));
                    if a > b {
                        return Err(format!(
                            "Invalid Range: {first_addr}-{last_addr}: the first address must not be above the last"
                        ));
                    }
                    if b - a >= MAX_RANGE {
                        return Err(format!(
                            "{first_addr}->{last_addr}: a range of more than {MAX_RANGE} addresses; not taken"
                        ));
                    }
                    (a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect()
                }
                _ => return Err("Address range for IPv6 is not supported yet".to_string()),
            }
        }
    };
    let (forward, check, weight, l_threshold, u_threshold) = flags_of(flags)?;
    if let Some(addr) = addrs.iter().find(|a| never_unicast(**a)) {
        return Err(format!(
            "real server {addr}: not a unicast address, which IPVS refuses"
        ));
    }
    let servers = addrs
        .into_iter()
        .map(|addr| ServerConfig {
            addr,
            port,
            forward,
            weight,
            u_threshold,
            l_threshold,
            tunnel: Tunnel::default(),
            options: crate::table::ServerOptions::default(),
        })
        .collect();
    Ok(Reals { servers, check })
}

type Flags = (Forward, Option<Check>, i32, u32, u32);

/// `add_real_server`'s reading of what follows the address: the method, then (each
/// optional, in this order, each an unanchored match on what the last left) a weight,
/// `"request", "receive"`, `l:N`, `u:N`; anything but blanks left over is refused.
fn flags_of(flags: &[u8]) -> Result<Flags, String> {
    let method = METHOD
        .captures(flags)
        .and_then(|c| {
            let f = match c.get(1)?.as_bytes() {
                b"gate" => Forward::Route,
                b"masq" => Forward::Masq,
                b"ipip" => Forward::Tunnel,
                _ => return None,
            };
            Some((f, c.get(2)?.as_bytes()))
        })
        .ok_or("forward method must be gate, masq or ipip")?;
    let (forward, mut rest) = method;
    let mut weight = 1;
    if let Some(c) = WEIGHT.captures(rest) {
        let digits = c.get(1).map_or(&[][..], |m| m.as_bytes());
        // ipvsadm, which ldirectord hands the weight to, takes 0 to 65535.
        weight = number(digits)
            .filter(|w| *w <= 65535)
            .and_then(|w| i32::try_from(w).ok())
            .ok_or_else(|| {
                format!(
                    "weight {}: ipvsadm takes 0 to 65535; not taken",
                    text(digits)
                )
            })?;
        rest = c.get(2).map_or(&[][..], |m| m.as_bytes());
    }
    let mut check = None;
    if let Some(c) = STRINGS.captures(rest) {
        let as_text = |i: usize| {
            let bytes = c.get(i).map_or(&[][..], |m| m.as_bytes());
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                "per-server check strings hold bytes that are not UTF-8 (uvs's configuration is UTF-8 text); not taken".to_string()
            })
        };
        let request = as_text(1)?;
        let receive = as_text(2)?;
        if let Err(e) = regex::Regex::new(&receive) {
            return Err(format!(
                "receive string: not a regular expression uvs reads ({})",
                super::values::regex_error(&e)
            ));
        }
        check = Some(Check {
            request: Some(request),
            receive: Some(receive),
            ..Check::default()
        });
        rest = c.get(3).map_or(&[][..], |m| m.as_bytes());
    }
    let threshold = |re: &Regex, rest: &mut &[u8]| -> Result<u32, String> {
        let Some(c) = re.captures(rest) else {
            return Ok(0);
        };
        let digits = c.get(1).map_or(&[][..], |m| m.as_bytes());
        let n = number(digits)
            .ok_or_else(|| format!("threshold {}: past what uvs holds; not taken", text(digits)))?;
        *rest = c.get(2).map_or(&[][..], |m| m.as_bytes());
        Ok(n)
    };
    let l_threshold = threshold(&LOWER, &mut rest)?;
    let u_threshold = threshold(&UPPER, &mut rest)?;
    if rest.iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(format!(
            "Invalid real server line, around \"{}\"",
            text(rest)
        ));
    }
    Ok((forward, check, weight, l_threshold, u_threshold))
}

/// A `fallback=` value as `parse_fallback` and `_ld_read_config_fallback_resolve`
/// take it: `HOST[:PORT] [gate|masq|ipip]`, the port (`default_port` when none is
/// written) resolved for `protocol`; gate when no method is given.
///
/// # Errors
/// ldirectord's refusal, as it words it.
pub fn fallback(
    value: &[u8],
    default_port: Option<&[u8]>,
    protocol: &str,
    family: Family,
    names: &mut dyn Names,
) -> Result<ServerConfig, String> {
    let mut line = value;
    let mut method: Option<&[u8]> = None;
    if let Some(c) = FALLBACK.captures(value) {
        method = c.get(3).map(|m| m.as_bytes());
        line = c.get(1).map_or(&[][..], |m| m.as_bytes());
    }
    let (server, port_name) = match FALLBACK_PORT.captures(line) {
        Some(c) => {
            let whole = c.get(0).map_or(line.len(), |m| m.start());
            (&line[..whole], c.get(2).map(|m| m.as_bytes()))
        }
        None => (line, None),
    };
    let forward = match method {
        None => Forward::Route,
        Some(b"gate") => Forward::Route,
        Some(b"masq") => Forward::Masq,
        Some(b"ipip") => Forward::Tunnel,
        Some(_) => return Err("forward method must be gate, masq or ipip".to_string()),
    };
    let addr = host(server, family, names)
        .map_err(|e| format!("invalid address or could not resolve for fallback server: {e}"))?;
    let port = match port_name.or(default_port) {
        // Perl's truth: no port, or "0", leaves the port unset.
        None | Some(b"0") | Some(b"") => 0,
        Some(p) => self::port(p, protocol, names)
            .filter(|p| *p != 0)
            .ok_or("invalid port for fallback server")?,
    };
    if never_unicast(addr) {
        return Err(format!(
            "fallback {addr}: not a unicast address, which IPVS refuses"
        ));
    }
    Ok(ServerConfig::new(addr, port, forward))
}
