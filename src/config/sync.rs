//! The file's `[sync]` section: the connection-sync daemons uvs runs (ipvsadm
//! `--start-daemon`; keepalived's `lvs_sync_daemon`), read into the daemons the plan
//! starts (`plan`), and written back by the renderer. Each bad value is reported where
//! it is, naming the key and what it should be; the ranges are ipvsadm's
//! (ipvsadm.c `parse_options`: `--syncid` 0-255, `--sync-maxlen` 1-65507,
//! `--mcast-port` 1-65535, `--mcast-ttl` 1-255, a multicast `--mcast-group`) and the
//! interface name must be one the kernel can have (net/core/dev.c `dev_valid_name`).
//!
//! ```toml
//! [sync]
//! role = "master"        # "master", "backup" or "both"
//! interface = "eth0"
//! syncid = 7
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;
use std::ops::Range;

use super::reader::Table;
use crate::table::sync::INTERFACE_MAX;
use crate::table::{SyncDaemon, SyncRole};

/// The largest `maxlen`: a UDP payload in an IPv4 datagram (ipvsadm's 65535 - 20 - 8).
pub const MAX_MAXLEN: u16 = 65_507;

/// Whether the kernel's `isspace` takes byte `b` for white space (lib/ctype.c, `_S` in
/// `_ctype`): ASCII's tab, newline, vertical tab, form feed, carriage return and space,
/// and 0xA0, Latin-1's no-break space, which the kernel's table marks too.
fn kernel_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | b' ' | 0xA0)
}

/// What is wrong with `name` as a network interface's name, if anything: the kernel's
/// rule on its bytes (net/core/dev.c `dev_valid_name`: not empty, at most 15 bytes, not
/// "." or "..", no '/', ':' or byte `isspace` takes for white space) and no NUL byte
/// (the kernel's copy would end there). The rule is on bytes, so a character whose
/// UTF-8 holds the byte 0xA0 (U+00A0 is C2 A0, "à" is C3 A0) is refused, as the kernel
/// refuses it, and other Unicode spaces (U+2003 is E2 80 83) are not.
pub fn interface_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("an interface name cannot be empty".to_string());
    }
    if name.len() > INTERFACE_MAX {
        return Some(format!(
            "{name:?} is {} bytes long; an interface name has at most {INTERFACE_MAX} (the kernel's IFNAMSIZ less its NUL)",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Some(format!("{name:?} cannot be an interface name"));
    }
    if name.contains(['/', ':', '\0']) || name.bytes().any(|b| b.is_ascii() && kernel_space(b)) {
        return Some(format!(
            "{name:?} cannot be an interface name: no '/', ':' or white space"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.to_string().bytes().any(kernel_space))
    {
        return Some(format!(
            "{name:?} cannot be an interface name: {c:?} is written with the byte 0xA0 in UTF-8, which the kernel takes for white space"
        ));
    }
    None
}

/// The `[sync]` table `t` (written at `span`): one daemon, or a master and a backup
/// with the same settings for `role = "both"`. Nothing when a required key is missing
/// or a value is wrong (each reported).
pub fn read_sync(t: &Table<'_, '_>, span: &Range<usize>) -> Vec<SyncDaemon> {
    let roles_expected = "\"master\", \"backup\" or \"both\"";
    let roles = match t.get("role") {
        Some(item) => item.parsed(roles_expected, |s| match s {
            "master" => Some(&[SyncRole::Master][..]),
            "backup" => Some(&[SyncRole::Backup][..]),
            "both" => Some(&[SyncRole::Master, SyncRole::Backup][..]),
            _ => None,
        }),
        None => {
            t.report().at(
                span,
                t.path(),
                format!("a [sync] section needs a role: {roles_expected}"),
            );
            None
        }
    };
    let interface = match t.get("interface") {
        Some(item) => item.str("an interface name, as \"eth0\"").and_then(|name| {
            match interface_problem(name) {
                Some(problem) => {
                    item.problem(problem);
                    None
                }
                None => Some(name.to_string()),
            }
        }),
        None => {
            t.report().at(
                span,
                t.path(),
                "a [sync] section needs an interface (ipvsadm's --mcast-interface), as \"eth0\"",
            );
            None
        }
    };
    let number = |key: &str, range: std::ops::RangeInclusive<i64>| {
        t.get(key).map(|item| item.integer(range))
    };
    let syncid = number("syncid", 0..=255);
    let maxlen = number("maxlen", 1..=i64::from(MAX_MAXLEN));
    let port = number("port", 1..=65_535);
    let ttl = number("ttl", 1..=255);
    let group = t.get("group").map(|item| {
        item.parsed(
            "a multicast address, as \"224.0.0.81\" or \"ff02::81\"",
            |s| s.parse::<IpAddr>().ok().filter(IpAddr::is_multicast),
        )
    });
    // A key given with a bad value is Some(None): reported, and nothing is made.
    let bad = [syncid, maxlen, port, ttl]
        .iter()
        .any(|v| matches!(v, Some(None)))
        || matches!(group, Some(None));
    let (Some(roles), Some(interface)) = (roles, interface) else {
        return Vec::new();
    };
    if bad {
        return Vec::new();
    }
    let value = |v: Option<Option<i64>>| v.flatten().unwrap_or(0);
    roles
        .iter()
        .map(|&role| SyncDaemon {
            role,
            interface: interface.clone(),
            syncid: u8::try_from(value(syncid)).unwrap_or(0),
            maxlen: u16::try_from(value(maxlen)).unwrap_or(0),
            group: group.flatten(),
            port: u16::try_from(value(port)).unwrap_or(0),
            ttl: u8::try_from(value(ttl)).unwrap_or(0),
        })
        .collect()
}

/// The `[sync]` section of `daemons` (as [`read_sync`] makes them), or nothing.
pub fn render_sync(out: &mut String, daemons: &[SyncDaemon]) {
    let Some(first) = daemons.first() else {
        return;
    };
    let role = if daemons.len() > 1 {
        "both"
    } else {
        first.role.name()
    };
    out.push_str("\n[sync]\n");
    let _ = writeln!(out, "role = \"{role}\"");
    let _ = writeln!(
        out,
        "interface = {}",
        super::render::quoted(&first.interface)
    );
    if first.syncid != 0 {
        let _ = writeln!(out, "syncid = {}", first.syncid);
    }
    if first.maxlen != 0 {
        let _ = writeln!(out, "maxlen = {}", first.maxlen);
    }
    if let Some(group) = first.group {
        let _ = writeln!(out, "group = \"{group}\"");
    }
    if first.port != 0 {
        let _ = writeln!(out, "port = {}", first.port);
    }
    if first.ttl != 0 {
        let _ = writeln!(out, "ttl = {}", first.ttl);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::{parse, problems};

    #[test]
    fn a_sync_section_reads_into_its_daemons_and_renders_back() {
        let text = "[sync]\nrole = \"both\"\ninterface = \"eth1\"\nsyncid = 7\nmaxlen = 1400\n\
                    group = \"239.1.2.3\"\nport = 9000\nttl = 3\n";
        let config = parse(text, Path::new("t.toml")).unwrap();
        let master = SyncDaemon {
            syncid: 7,
            maxlen: 1400,
            group: Some("239.1.2.3".parse().unwrap()),
            port: 9000,
            ttl: 3,
            ..SyncDaemon::new(SyncRole::Master, "eth1")
        };
        let backup = SyncDaemon {
            role: SyncRole::Backup,
            ..master.clone()
        };
        assert_eq!(config.sync, [master, backup]);
        let written = crate::config::render::render(&config);
        assert_eq!(written, text);
        // The least: a role and an interface; the rest are the kernel's defaults.
        let config = parse(
            "[sync]\nrole = \"backup\"\ninterface = \"lo\"\n",
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(config.sync, [SyncDaemon::new(SyncRole::Backup, "lo")]);
        let again = parse(&crate::config::render::render(&config), Path::new("t.toml")).unwrap();
        assert_eq!(again.sync, config.sync);
    }

    #[test]
    fn every_bad_value_is_named_with_its_key() {
        let with = |lines: &str| problems(&format!("[sync]\n{lines}\n"));
        let base = "role = \"master\"\ninterface = \"lo\"";
        assert_eq!(
            with(&format!("{base}\nsyncid = 256")),
            ["t.toml:4:10: sync.syncid: expected an integer from 0 to 255, found the integer 256"]
        );
        assert_eq!(
            with("role = \"primary\"\ninterface = \"lo\""),
            [
                "t.toml:2:8: sync.role: expected \"master\", \"backup\" or \"both\", found the string \"primary\""
            ]
        );
        assert_eq!(
            with(&format!("{base}\nttl = 0")),
            ["t.toml:4:7: sync.ttl: expected an integer from 1 to 255, found the integer 0"]
        );
        assert_eq!(
            with(&format!("{base}\nmaxlen = 65508")),
            [
                "t.toml:4:10: sync.maxlen: expected an integer from 1 to 65507, found the integer 65508"
            ]
        );
        assert_eq!(
            with(&format!("{base}\nport = 0")),
            ["t.toml:4:8: sync.port: expected an integer from 1 to 65535, found the integer 0"]
        );
        assert_eq!(
            with(&format!("{base}\ngroup = \"10.0.0.1\"")),
            [
                "t.toml:4:9: sync.group: expected a multicast address, as \"224.0.0.81\" or \"ff02::81\", found the string \"10.0.0.1\""
            ]
        );
        assert_eq!(
            with("role = \"master\"\ninterface = \"a-very-long-name0\""),
            [
                "t.toml:3:13: sync.interface: \"a-very-long-name0\" is 17 bytes long; an interface name has at most 15 (the kernel's IFNAMSIZ less its NUL)"
            ]
        );
        assert_eq!(
            with("role = \"master\"\ninterface = \"eth0:1\""),
            [
                "t.toml:3:13: sync.interface: \"eth0:1\" cannot be an interface name: no '/', ':' or white space"
            ]
        );
        assert_eq!(
            with("role = \"master\"\ninterface = \"\u{a0}x\""),
            [
                "t.toml:3:13: sync.interface: \"\\u{a0}x\" cannot be an interface name: '\\u{a0}' is written with the byte 0xA0 in UTF-8, which the kernel takes for white space"
            ]
        );
        assert_eq!(
            with(&format!("{base}\nsync_id = 3")),
            ["t.toml:4:1: sync.sync_id: unknown key"]
        );
        assert_eq!(
            with("interface = \"lo\""),
            ["t.toml:1:1: sync: a [sync] section needs a role: \"master\", \"backup\" or \"both\""]
        );
        assert_eq!(
            with("role = \"both\""),
            [
                "t.toml:1:1: sync: a [sync] section needs an interface (ipvsadm's --mcast-interface), as \"eth0\""
            ]
        );
    }

    /// The kernel's rule at its edges (dev_valid_name on the name's bytes).
    #[test]
    fn interface_names_are_judged_by_the_kernels_rule_on_bytes() {
        let fifteen = "abcdefghijklmno";
        for good in [
            "lo",
            "eth0",
            fifteen,
            "...",
            ".a",
            "a.b",
            "eth0.100",
            "br-lan_1@x",
            "é",                                           // C3 A9
            "eth\u{2003}0", // EM SPACE, E2 80 83: no byte the kernel calls space
            "x\u{85}",      // NEXT LINE, C2 85: likewise
            "\u{1F600}\u{1F600}\u{1F600}", // 12 bytes
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}a", // 15 bytes
        ] {
            assert_eq!(interface_problem(good), None, "{good:?}");
        }
        let no_specials = |n: &str| {
            Some(format!(
                "{n:?} cannot be an interface name: no '/', ':' or white space"
            ))
        };
        for bad in [
            "a/b", "a:b", "a b", "a\tb", "\n", "a\x0b", "a\x0c", "a\r", " ", "a\0b",
        ] {
            assert_eq!(interface_problem(bad), no_specials(bad), "{bad:?}");
        }
        assert_eq!(
            interface_problem(""),
            Some("an interface name cannot be empty".into())
        );
        for dots in [".", ".."] {
            assert_eq!(
                interface_problem(dots),
                Some(format!("{dots:?} cannot be an interface name"))
            );
        }
        let sixteen = "abcdefghijklmnop";
        assert_eq!(
            interface_problem(sixteen),
            Some(
                "\"abcdefghijklmnop\" is 16 bytes long; an interface name has at most 15 (the kernel's IFNAMSIZ less its NUL)".into()
            )
        );
        // Eight characters, sixteen bytes: the limit is in bytes.
        assert!(
            interface_problem("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}")
                .is_some_and(|p| p.contains("is 16 bytes long"))
        );
        // 0xA0 inside a character's UTF-8 is white space to the kernel.
        for (bad, c) in [
            ("\u{a0}x", '\u{a0}'),
            ("\u{e0}", '\u{e0}'),
            ("x\u{4e20}", '\u{4e20}'),
        ] {
            assert_eq!(
                interface_problem(bad),
                Some(format!(
                    "{bad:?} cannot be an interface name: {c:?} is written with the byte 0xA0 in UTF-8, which the kernel takes for white space"
                ))
            );
        }
    }
}
