//! keepalived's `lvs_sync_daemon` (global_defs; keepalived/core/global_parser.c
//! `lvs_syncd_handler`): `lvs_sync_daemon INTERFACE [VRRP_INSTANCE] [id SYNC_ID]
//! [maxlen LEN] [port PORT] [ttl TTL] [group IP]`, to the `[sync]` section.
//!
//! keepalived runs one daemon at a time: the master while the named VRRP instance is
//! MASTER and the backup otherwise (keepalived/vrrp/vrrp.c calls ipvswrapper.c
//! `ipvs_syncd_master` / `ipvs_syncd_backup`, each of which stops the other). uvs has
//! no VRRP to follow, so the section says `role = "both"`: the kernel runs both at
//! once, each director sending the connections it balances and taking those the
//! other sends, which is what the pair of keepalived daemons achieves over a failover;
//! the import says so. Without `id` the sync id is the instance's
//! `virtual_router_id`, as keepalived's ("defaulting to vrid"); a named instance the
//! file does not have disables the daemon in keepalived, and here.

use std::collections::HashMap;
use std::net::IpAddr;

use super::lexer::{Node, Pos};
use super::{others, skip};
use crate::config::import::Importing;
use crate::config::sync::{MAX_MAXLEN, interface_problem};
use crate::table::{SyncDaemon, SyncRole};

/// What the file says of the sync daemon, read as it comes, settled once the whole
/// file (its VRRP instances) is read.
#[derive(Debug, Default)]
pub(in crate::config::import) struct State {
    asked: Option<Asked>,
    /// Each `vrrp_instance`'s `virtual_router_id`.
    vrids: HashMap<String, u8>,
}

#[derive(Debug)]
struct Asked {
    pos: Pos,
    interface: String,
    instance: Option<String>,
    daemon: SyncDaemon,
    /// Whether `id` was given (else the instance's vrid).
    syncid: bool,
}

/// A `global_defs` block: its `lvs_sync_daemon`, if any (the rest is keepalived's).
pub(super) fn global_defs(n: &Node, im: &mut Importing) {
    for c in n.children() {
        if c.keyword() == "lvs_sync_daemon" {
            read(c, im);
        }
    }
}

/// A `vrrp_instance NAME { virtual_router_id N ... }`: its vrid, kept.
pub(super) fn vrrp_instance(n: &Node, im: &mut Importing) {
    let vrid = n
        .children()
        .iter()
        .find(|c| c.keyword() == "virtual_router_id")
        .and_then(|c| c.arg(1).parse::<u8>().ok());
    if let Some(vrid) = vrid {
        im.keepalived_sync.vrids.insert(n.arg(1).to_string(), vrid);
    }
}

/// An unsigned number within `range`, as keepalived's `read_unsigned_strvec`.
fn number(word: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    word.parse::<u32>().ok().filter(|v| range.contains(v))
}

/// One `lvs_sync_daemon` statement.
fn read(n: &Node, im: &mut Importing) {
    if im.keepalived_sync.asked.is_some() {
        skip(
            im,
            &n.pos,
            "lvs_sync_daemon: already given above; keepalived ignores this one, and so does uvs",
        );
        return;
    }
    let interface = n.arg(1);
    if interface.is_empty() {
        skip(im, &n.pos, "lvs_sync_daemon: no interface; not taken");
        return;
    }
    if let Some(problem) = interface_problem(interface) {
        skip(im, &n.pos, format!("lvs_sync_daemon: {problem}; not taken"));
        return;
    }
    let mut daemon = SyncDaemon::new(SyncRole::Master, interface);
    let mut instance = None;
    let mut syncid = false;
    let mut i = 2;
    while i < n.words.len() {
        let word = n.arg(i);
        let value = n.arg(i + 1);
        let bad = |im: &mut Importing, what: &str| {
            skip(
                im,
                &n.pos,
                format!("lvs_sync_daemon: {word} {value:?}: not {what}; not taken"),
            );
        };
        match word {
            "inst" => instance = Some(value.to_string()),
            "id" => match number(value, 0..=255) {
                Some(v) => {
                    daemon.syncid = u8::try_from(v).unwrap_or(0);
                    syncid = true;
                }
                None => bad(im, "a sync id from 0 to 255"),
            },
            "maxlen" => match number(value, 1..=u32::from(MAX_MAXLEN)) {
                Some(v) => daemon.maxlen = u16::try_from(v).unwrap_or(0),
                None => bad(im, "a length from 1 to 65507"),
            },
            "port" => match number(value, 1..=65_535) {
                Some(v) => daemon.port = u16::try_from(v).unwrap_or(0),
                None => bad(im, "a port"),
            },
            "ttl" => match number(value, 1..=255) {
                Some(v) => daemon.ttl = u8::try_from(v).unwrap_or(0),
                None => bad(im, "a TTL from 1 to 255"),
            },
            "group" => match value.parse::<IpAddr>().ok().filter(IpAddr::is_multicast) {
                Some(g) => daemon.group = Some(g),
                None => bad(im, "a multicast address"),
            },
            // The older form: lvs_sync_daemon IF VRRP_INSTANCE [SYNC_ID].
            _ if i == 2 => {
                instance = Some(word.to_string());
                i += 1;
                continue;
            }
            _ if i == 3 => {
                match number(word, 0..=255) {
                    Some(v) => {
                        daemon.syncid = u8::try_from(v).unwrap_or(0);
                        syncid = true;
                    }
                    None => skip(
                        im,
                        &n.pos,
                        format!(
                            "lvs_sync_daemon: {word:?}: not a sync id from 0 to 255; not taken"
                        ),
                    ),
                }
                i += 1;
                continue;
            }
            _ => {
                skip(
                    im,
                    &n.pos,
                    format!("lvs_sync_daemon: {word}: not an option keepalived knows; not taken"),
                );
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    im.keepalived_sync.asked = Some(Asked {
        pos: n.pos.clone(),
        interface: interface.to_string(),
        instance,
        daemon,
        syncid,
    });
}

/// Once the whole file is read: the `[sync]` section, or why there is none.
pub(super) fn finish(im: &mut Importing) {
    let Some(mut asked) = im.keepalived_sync.asked.take() else {
        return;
    };
    let Some(name) = asked.instance.clone() else {
        others(
            im,
            &asked.pos,
            "lvs_sync_daemon: no VRRP instance; keepalived runs no sync daemon without one, and neither does uvs",
        );
        return;
    };
    let Some(&vrid) = im.keepalived_sync.vrids.get(&name) else {
        others(
            im,
            &asked.pos,
            format!(
                "lvs_sync_daemon: no vrrp_instance {name} with a virtual_router_id; keepalived disables the sync daemon, and so does uvs"
            ),
        );
        return;
    };
    if !asked.syncid {
        asked.daemon.syncid = vrid;
    }
    others(
        im,
        &asked.pos,
        format!(
            "lvs_sync_daemon {}: taken as [sync] role = \"both\" (syncid {}): keepalived runs the master sync daemon while vrrp_instance {name} is MASTER and the backup otherwise; uvs has no VRRP and runs both at once",
            asked.interface, asked.daemon.syncid
        ),
    );
    let master = asked.daemon;
    let backup = SyncDaemon {
        role: SyncRole::Backup,
        ..master.clone()
    };
    im.config.sync = vec![master, backup];
}

#[cfg(test)]
mod tests {
    use super::super::import;

    const INSTANCE: &str = "vrrp_instance VI_1 {\n    virtual_router_id 51\n}\n";

    #[test]
    fn lvs_sync_daemon_becomes_a_sync_section_for_both_roles() {
        let text = format!(
            "global_defs {{\n    lvs_sync_daemon eth1 VI_1 maxlen 1400 port 9000 ttl 2 group 239.1.2.3\n}}\n{INSTANCE}"
        );
        let imported = import(&text, None).unwrap();
        assert_eq!(imported.failing(), 0, "{:?}", imported.skipped_lines());
        let toml = crate::config::render::render(&imported.config);
        assert_eq!(
            toml,
            "[sync]\nrole = \"both\"\ninterface = \"eth1\"\nsyncid = 51\nmaxlen = 1400\n\
             group = \"239.1.2.3\"\nport = 9000\nttl = 2\n"
        );
        assert!(
            imported.skipped_lines().iter().any(|(line, m)| *line == 2
                && m.starts_with(
                    "lvs_sync_daemon eth1: taken as [sync] role = \"both\" (syncid 51)"
                )),
            "{:?}",
            imported.skipped_lines()
        );
        // `id` wins over the vrid; the instance may come after `inst`.
        let text = format!("global_defs {{\n    lvs_sync_daemon lo inst VI_1 id 7\n}}\n{INSTANCE}");
        let imported = import(&text, None).unwrap();
        assert_eq!(imported.config.sync.len(), 2);
        assert!(
            imported
                .config
                .sync
                .iter()
                .all(|d| d.syncid == 7 && d.interface == "lo")
        );
    }

    #[test]
    fn what_keepalived_would_ignore_makes_no_sync_section() {
        for (text, said) in [
            (
                "global_defs {\n    lvs_sync_daemon lo VI_2\n}\n".to_string() + INSTANCE,
                "no vrrp_instance VI_2",
            ),
            (
                "global_defs {\n    lvs_sync_daemon lo\n}\n".to_string(),
                "no VRRP instance",
            ),
        ] {
            let imported = import(&text, None).unwrap();
            assert!(imported.config.sync.is_empty());
            assert_eq!(imported.failing(), 0);
            assert!(
                imported
                    .skipped_lines()
                    .iter()
                    .any(|(_, m)| m.contains(said)),
                "{:?}",
                imported.skipped_lines()
            );
        }
        // Bad values are not taken, and say so.
        let text = format!(
            "global_defs {{\n    lvs_sync_daemon lo VI_1 ttl 0 group 10.0.0.1 bogus 1\n}}\n{INSTANCE}"
        );
        let imported = import(&text, None).unwrap();
        let lines = imported.skipped_lines();
        for said in [
            "lvs_sync_daemon: ttl \"0\": not a TTL from 1 to 255; not taken",
            "lvs_sync_daemon: group \"10.0.0.1\": not a multicast address; not taken",
            "lvs_sync_daemon: bogus: not an option keepalived knows; not taken",
        ] {
            assert!(lines.iter().any(|(_, m)| *m == said), "{said}: {lines:?}");
        }
        assert!(imported.failing() >= 3);
    }
}
