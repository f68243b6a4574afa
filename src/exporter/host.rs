//! Which requests the status page answers, by their `Host` header: the guard against
//! DNS rebinding. A web page in a browser on the daemon's host (or its network) can
//! make its own DNS name resolve to 127.0.0.1 and then read, as same-origin, whatever
//! answers there; the request still carries that name in `Host`. So `/` answers only
//! when `Host` is an IP literal (`127.0.0.1`, `[::1]`, the bound address, any other:
//! no page can share the origin of an address), or `localhost`, each with an optional
//! port, or when there is no `Host` at all (HTTP/1.0 tools; no browser omits it). A DNS
//! name, even the host's own, is refused: reach the page by address. `/metrics` and
//! `/healthz` are not guarded (Prometheus may scrape by name; they show no outside
//! text). Asked by `http` for every request to `/`.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Whether the request with this `head` (request line and headers, as read) may be
/// answered with the status page: no `Host`, or exactly one naming an address or
/// `localhost` (see the module's text). Two `Host` headers are refused.
pub fn page_may_answer(head: &str) -> bool {
    let mut hosts = head.lines().skip(1).filter_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("host")
            .then(|| value.trim())
    });
    match (hosts.next(), hosts.next()) {
        (None, _) => true,
        (Some(host), None) => is_local_name(host),
        (Some(_), Some(_)) => false,
    }
}

/// `host` (a `Host` header's value) is an IPv4 literal, a bracketed IPv6 literal, or
/// `localhost` (any case, with or without its final dot), each with an optional port.
fn is_local_name(host: &str) -> bool {
    let port_ok = |port: Option<&str>| {
        port.is_none_or(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        })
    };
    if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        return inside.parse::<Ipv6Addr>().is_ok() && port_ok(port);
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    let named = name.parse::<Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || name.eq_ignore_ascii_case("localhost.");
    named && port_ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(host: &str) -> String {
        format!("GET / HTTP/1.1\r\nHost: {host}\r\nAccept: */*\r\n\r\n")
    }

    #[test]
    fn addresses_and_localhost_are_answered() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:9280",
            "10.1.2.3:80",
            "[::1]",
            "[::1]:9280",
            "[fe80::1]:1",
            "localhost",
            "LocalHost:9280",
            "localhost.:9280",
        ] {
            assert!(page_may_answer(&head(host)), "{host}");
        }
        assert!(page_may_answer("GET / HTTP/1.0\r\n\r\n"), "no Host");
        assert!(page_may_answer("GET / HTTP/1.1\r\nhOsT:127.0.0.1\r\n\r\n"));
    }

    #[test]
    fn names_and_malformed_hosts_are_refused() {
        for host in [
            "attacker.example",
            "attacker.example:9280",
            "localhost.attacker.example",
            "127.0.0.1.nip.io",
            "2130706433",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "127.0.0.1:",
            "127.0.0.1:99999",
            "127.0.0.1:+80",
            "",
        ] {
            assert!(!page_may_answer(&head(host)), "{host:?}");
        }
        assert!(!page_may_answer(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n\r\n"
        ));
    }
}
