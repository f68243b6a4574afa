//! keepalived's sync daemon settings, to the `[sync]` section: `lvs_sync_daemon`
//! (global_defs; keepalived/core/global_parser.c `lvs_syncd_handler`): `lvs_sync_daemon
//! INTERFACE [VRRP_INSTANCE] [id SYNC_ID] [maxlen LEN] [port PORT] [ttl TTL] [group IP]`,
//! and its deprecated older form, `lvs_sync_daemon_interface INTERFACE` inside a
//! `vrrp_instance` (keepalived/vrrp/vrrp_parser.c `vrrp_lvs_syncd_handler`), which
//! makes that instance the one the daemon follows. keepalived keeps one sync daemon
//! setting: the first of either form in the file, ignoring (and saying so) any after.
//!
//! keepalived runs one daemon at a time for an instance: the master while the VRRP
//! instance is MASTER and the backup otherwise (keepalived/vrrp/vrrp.c calls
//! ipvswrapper.c `ipvs_syncd_master` / `ipvs_syncd_backup`, each of which stops the
//! other). uvs has no VRRP to follow, so the section says `role = "both"`: the kernel
//! runs both at once, each director sending the connections it balances and taking
//! those the other sends, which is what the pair of keepalived daemons achieves over a
//! failover; the import says so. With no instance, keepalived's checker itself runs
//! both at once (check_daemon.c `checker_ipvs_syncd_needed`, keepalived 2.1.4 on), as
//! uvs does. The sync id (keepalived/vrrp/vrrp.c `vrrp_complete_init`): `id` if given;
//! else the named instance's `virtual_router_id` ("defaulting to vrid"); else 0, which
//! is what the deprecated form always gets, as it names no instance and has no `id`.
//! A named instance the file does not have disables the daemon in keepalived, and here.

use std::collections::HashMap;
use std::net::IpAddr;

use super::lexer::{Node, Pos};
use super::{others, skip};
use crate::config::import::Importing;
use crate::config::sync::{MAX_MAXLEN, interface_problem};
use crate::table::sync::INTERFACE_MAX;
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
    /// The statement: `lvs_sync_daemon` or `lvs_sync_daemon_interface`.
    keyword: &'static str,
    interface: String,
    follows: Follows,
    daemon: SyncDaemon,
    /// Whether `id` was given (else the instance's vrid, or 0).
    syncid: bool,
}

/// The VRRP instance whose state picks the daemon keepalived runs.
#[derive(Debug)]
enum Follows {
    /// None: keepalived's checker runs the master and the backup at once.
    Nothing,
    /// `lvs_sync_daemon`'s instance, by name (its vrid is the default sync id).
    Named(String),
    /// The `vrrp_instance` that holds `lvs_sync_daemon_interface`.
    Enclosing(String),
}

/// What keepalived already took, for the message that ignores another.
fn already(asked: &Asked) -> String {
    format!("{} {}", asked.keyword, asked.interface)
}

/// A `global_defs` block: its `lvs_sync_daemon`, if any (the rest is keepalived's).
pub(super) fn global_defs(n: &Node, im: &mut Importing) {
    for c in n.children() {
        if c.keyword() == "lvs_sync_daemon" {
            read(c, im);
        }
    }
}

/// A `vrrp_instance NAME { virtual_router_id N ... }`: its vrid, kept, and its
/// deprecated `lvs_sync_daemon_interface`, if any.
pub(super) fn vrrp_instance(n: &Node, im: &mut Importing) {
    let vrid = n
        .children()
        .iter()
        .find(|c| c.keyword() == "virtual_router_id")
        .and_then(|c| c.arg(1).parse::<u8>().ok());
    if let Some(vrid) = vrid {
        im.keepalived_sync.vrids.insert(n.arg(1).to_string(), vrid);
    }
    for c in n.children() {
        if c.keyword() == "lvs_sync_daemon_interface" {
            read_deprecated(c, n.arg(1), im);
        }
    }
}

/// `lvs_sync_daemon_interface INTERFACE` in `vrrp_instance instance`
/// (vrrp_parser.c `vrrp_lvs_syncd_handler`): deprecated, said so, and taken unless a
/// sync daemon was given above. keepalived copies the name into the kernel's 16-byte
/// field (ipvswrapper.c `ipvs_syncd_cmd`, `strcpy_safe`), keeping its first 15 bytes.
fn read_deprecated(n: &Node, instance: &str, im: &mut Importing) {
    let given = n.arg(1);
    others(
        im,
        &n.pos,
        format!(
            "lvs_sync_daemon_interface: deprecated in keepalived (vrrp_instance {instance}); \
             the same in global_defs is `lvs_sync_daemon {given} inst {instance} id 0`"
        ),
    );
    if taken_already(n, "lvs_sync_daemon_interface", im) {
        return;
    }
    let Some(interface) = given.get(..given.len().min(INTERFACE_MAX)) else {
        skip(
            im,
            &n.pos,
            format!(
                "lvs_sync_daemon_interface: {given:?}: keepalived keeps its first {INTERFACE_MAX} bytes, which end inside a character; not taken"
            ),
        );
        return;
    };
    if let Some(problem) = interface_problem(interface) {
        skip(
            im,
            &n.pos,
            format!("lvs_sync_daemon_interface: {problem}; not taken"),
        );
        return;
    }
    if interface != given {
        others(
            im,
            &n.pos,
            format!(
                "lvs_sync_daemon_interface: {given:?} is longer than {INTERFACE_MAX} bytes; keepalived passes the kernel {interface:?}, and so does uvs"
            ),
        );
    }
    im.keepalived_sync.asked = Some(Asked {
        pos: n.pos.clone(),
        keyword: "lvs_sync_daemon_interface",
        interface: interface.to_string(),
        follows: Follows::Enclosing(instance.to_string()),
        daemon: SyncDaemon::new(SyncRole::Master, interface),
        syncid: false,
    });
}

/// An unsigned number within `range`, as keepalived's `read_unsigned_strvec`.
fn number(word: &str, range: std::ops::RangeInclusive<u32>) -> Option<u32> {
    word.parse::<u32>().ok().filter(|v| range.contains(v))
}

/// Whether a sync daemon was given above (keepalived keeps the first of either form):
/// then `n`, a `keyword` statement, is skipped with a line saying so.
fn taken_already(n: &Node, keyword: &str, im: &mut Importing) -> bool {
    let Some(asked) = &im.keepalived_sync.asked else {
        return false;
    };
    let taken = already(asked);
    skip(
        im,
        &n.pos,
        format!(
            "{keyword}: {taken} is already given above; keepalived ignores this one, and so does uvs"
        ),
    );
    true
}

/// One `lvs_sync_daemon` statement.
fn read(n: &Node, im: &mut Importing) {
    if taken_already(n, "lvs_sync_daemon", im) {
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
        keyword: "lvs_sync_daemon",
        interface: interface.to_string(),
        follows: instance.map_or(Follows::Nothing, Follows::Named),
        daemon,
        syncid,
    });
}

/// Once the whole file is read: the `[sync]` section, or why there is none.
pub(super) fn finish(im: &mut Importing) {
    let Some(mut asked) = im.keepalived_sync.asked.take() else {
        return;
    };
    let why = match &asked.follows {
        Follows::Nothing => "with no VRRP instance named, keepalived's checker runs the master \
             and the backup sync daemon at once (keepalived 2.1.4 and later), as uvs does"
            .to_string(),
        Follows::Named(name) => {
            let Some(&vrid) = im.keepalived_sync.vrids.get(name) else {
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
            format!(
                "keepalived runs the master sync daemon while vrrp_instance {name} is MASTER and the backup otherwise; uvs has no VRRP and runs both at once"
            )
        }
        Follows::Enclosing(name) => format!(
            "keepalived runs the master sync daemon while vrrp_instance {name} is MASTER and the backup otherwise, with sync id 0 (this form has no id); uvs has no VRRP and runs both at once"
        ),
    };
    others(
        im,
        &asked.pos,
        format!(
            "{} {}: taken as [sync] role = \"both\" (syncid {}): {why}",
            asked.keyword, asked.interface, asked.daemon.syncid
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
    use crate::table::SyncRole;

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
        let text = "global_defs {\n    lvs_sync_daemon lo VI_2\n}\n".to_string() + INSTANCE;
        let imported = import(&text, None).unwrap();
        assert!(imported.config.sync.is_empty());
        assert_eq!(imported.failing(), 0);
        assert!(
            imported
                .skipped_lines()
                .iter()
                .any(|(_, m)| m.contains("no vrrp_instance VI_2")),
            "{:?}",
            imported.skipped_lines()
        );
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

    /// The notes of `text`'s import, as (line, message).
    fn said(text: &str) -> Vec<(usize, String)> {
        let imported = import(text, None).unwrap();
        imported
            .skipped_lines()
            .iter()
            .map(|(l, m)| (*l, m.to_string()))
            .collect()
    }

    #[test]
    fn with_no_instance_both_daemons_run_as_keepalived_checker_runs_them() {
        // check_daemon.c: no instance named, the checker starts master and backup with
        // the sync id given, or 0.
        for (words, syncid) in [("lo", 0), ("lo id 9", 9)] {
            let text = format!("global_defs {{\n    lvs_sync_daemon {words}\n}}\n");
            let imported = import(&text, None).unwrap();
            assert_eq!(imported.failing(), 0);
            let roles: Vec<_> = imported.config.sync.iter().map(|d| d.role).collect();
            assert_eq!(roles, [SyncRole::Master, SyncRole::Backup]);
            assert!(
                imported
                    .config
                    .sync
                    .iter()
                    .all(|d| d.syncid == syncid && d.interface == "lo")
            );
            assert!(said(&text).contains(&(
                2,
                format!(
                    "lvs_sync_daemon lo: taken as [sync] role = \"both\" (syncid {syncid}): with no VRRP instance named, keepalived's checker runs the master and the backup sync daemon at once (keepalived 2.1.4 and later), as uvs does"
                )
            )));
        }
    }

    #[test]
    fn the_deprecated_form_follows_its_instance_with_sync_id_0() {
        let text = "vrrp_instance VI_1 {\n    virtual_router_id 51\n    lvs_sync_daemon_interface eth1\n}\n";
        let imported = import(text, None).unwrap();
        assert_eq!(imported.failing(), 0, "{:?}", imported.skipped_lines());
        let daemons: Vec<_> = imported
            .config
            .sync
            .iter()
            .map(|d| (d.role, d.interface.as_str(), d.syncid))
            .collect();
        assert_eq!(
            daemons,
            [(SyncRole::Master, "eth1", 0), (SyncRole::Backup, "eth1", 0)]
        );
        assert_eq!(
            said(text)[1..],
            [
                (
                    3,
                    "lvs_sync_daemon_interface: deprecated in keepalived (vrrp_instance VI_1); the same in global_defs is `lvs_sync_daemon eth1 inst VI_1 id 0`".to_string()
                ),
                (
                    3,
                    "lvs_sync_daemon_interface eth1: taken as [sync] role = \"both\" (syncid 0): keepalived runs the master sync daemon while vrrp_instance VI_1 is MASTER and the backup otherwise, with sync id 0 (this form has no id); uvs has no VRRP and runs both at once".to_string()
                ),
            ]
        );
    }

    #[test]
    fn a_global_lvs_sync_daemon_above_wins_over_the_deprecated_form() {
        let text = "global_defs {\n    lvs_sync_daemon lo VI_1\n}\nvrrp_instance VI_1 {\n    virtual_router_id 51\n    lvs_sync_daemon_interface eth1\n}\n";
        let imported = import(text, None).unwrap();
        assert!(
            imported
                .config
                .sync
                .iter()
                .all(|d| d.interface == "lo" && d.syncid == 51)
        );
        assert!(said(text).contains(&(
            6,
            "lvs_sync_daemon_interface: lvs_sync_daemon lo is already given above; keepalived ignores this one, and so does uvs".to_string()
        )));
    }

    #[test]
    fn the_deprecated_forms_name_is_cut_to_15_bytes_as_keepalived_cuts_it() {
        let conf = |name: &str| {
            format!(
                "vrrp_instance V {{\n    virtual_router_id 1\n    lvs_sync_daemon_interface {name}\n}}\n"
            )
        };
        let text = conf("abcdefghijklmnop");
        let imported = import(&text, None).unwrap();
        assert_eq!(imported.config.sync[0].interface, "abcdefghijklmno");
        assert!(said(&text).contains(&(
            3,
            "lvs_sync_daemon_interface: \"abcdefghijklmnop\" is longer than 15 bytes; keepalived passes the kernel \"abcdefghijklmno\", and so does uvs".to_string()
        )));
        // The 15th byte inside a character: keepalived would pass half of it.
        let text = conf("abcdefghijklmn\u{e9}");
        let imported = import(&text, None).unwrap();
        assert!(imported.config.sync.is_empty());
        assert_eq!(imported.failing(), 1);
        // A name the kernel cannot have.
        let text = conf("eth1:0");
        let imported = import(&text, None).unwrap();
        assert!(imported.config.sync.is_empty());
        assert!(said(&text).contains(&(
            3,
            "lvs_sync_daemon_interface: \"eth1:0\" cannot be an interface name: no '/', ':' or white space; not taken".to_string()
        )));
    }
}
