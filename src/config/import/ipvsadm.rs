//! `ipvsadm-save` (or any `ipvsadm -R` input) to a configuration: each line is parsed
//! by uvsadm's own ipvsadm grammar and applied, in order, to a scratch table, exactly as
//! `ipvsadm -R` would apply it; the table that results becomes the configuration, its
//! services in the order the input created them. Lines ipvsadm would refuse, and lines
//! that are not table changes (`-Z`, listings, sync daemons), are reported, and so
//! are those whose values ipvsadm takes but a uvs configuration file cannot hold
//! ([`beyond_the_file`]): the TOML printed always passes `uvs check`.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use super::{Imported, Importing};
use crate::adm::cmdline::{Context, Invocation, Parsed, parse_words};
use crate::adm::names::Names;
use crate::adm::restore::RestoreReader;
use crate::adm::words::Words;
use crate::config::ServiceSpec;
use crate::config::schema::{MAX_WEIGHT, holds_netmask};
use crate::table::{Command, Netmask, ServiceConfig, ServiceKey, Table, TableError, UnicastOnly};

/// Imports the rules in `input`; `names` resolves host and service names (as `ipvsadm
/// -R` would).
pub fn import(input: impl BufRead, names: &mut dyn Names) -> Imported {
    let mut imported = Importing::default();
    let mut table = Table::new();
    // The services in the order the input created them; the set says in O(1) whether a
    // key is in the list (a dump of a million services must not take a million² steps).
    let mut order: Vec<ServiceKey> = Vec::new();
    let mut ordered: HashSet<ServiceKey> = HashSet::new();
    let mut reader = RestoreReader::new(input, &["ipvsadm", "uvsadm"]);
    let mut line = 0;
    // Services whose -A line was not taken, with that line, until an -A of them is.
    let mut not_taken: HashMap<ServiceKey, usize> = HashMap::new();
    while let Some(words) = reader.next_line() {
        line += 1;
        if words.is_empty() {
            continue;
        }
        // The line as ipvsadm read it (blank-separated words, no quoting): what reports
        // quote, since a command's own display leaves out what it does not use (a
        // netmask without persistence).
        let args = Words::from_bytes(std::iter::once(b"ipvsadm".to_vec()).chain(words));
        let raw = args.text()[1..].join(" ");
        let mut command = match parse_words(&args, names, Context::Restore, false) {
            Parsed::Run(Invocation::Apply(command)) => command,
            Parsed::Run(_) => {
                imported.skip(line, "not a change to the table; skipped");
                continue;
            }
            Parsed::Fail(message) => {
                imported.skip(line, message);
                continue;
            }
            Parsed::BadArgument { word, message } => {
                imported.skip(line, format!("{word}: {message}"));
                continue;
            }
            Parsed::Help | Parsed::Version | Parsed::TryHelp => {
                imported.skip(line, "not an ipvsadm rule");
                continue;
            }
        };
        if let Some(mask) = drop_unused_netmask(&mut command) {
            imported.note(
                line,
                format!(
                    "`{raw}': netmask {mask} without persistence (-p) is not used; \
                     left out, the service taken"
                ),
            );
        }
        if let Some(why) = beyond_the_file(&command) {
            imported.skip(line, format!("`{raw}': {why}; not taken"));
            if let Command::AddService(c) = &command {
                not_taken.entry(c.key).or_insert(line);
            }
            continue;
        }
        match &command {
            Command::Zero { .. } | Command::StartSyncDaemon(_) | Command::StopSyncDaemon { .. } => {
                imported.skip(line, format!("`{command}' is not configuration; skipped"));
                continue;
            }
            Command::SetTimeouts(t) => {
                let now = imported.config.timeouts.unwrap_or(*t);
                imported.config.timeouts = Some(now.updated_with(*t));
            }
            Command::AddService(c) if ordered.insert(c.key) => order.push(c.key),
            _ => {}
        }
        if let Err(e) = table.apply(&command, &UnicastOnly) {
            // A rule of a service whose own line was not taken says so, rather than
            // only the kernel's "Service not defined".
            let because = match (&e, service_of(&command)) {
                (TableError::ServiceNotDefined | TableError::NoSuchService, Some(key)) => not_taken
                    .get(&key)
                    .map(|n| format!(" (its service, line {n}, was not taken)")),
                _ => None,
            };
            imported.skip(line, format!("`{raw}': {e}{}", because.unwrap_or_default()));
            if let Command::AddService(c) = &command {
                not_taken.entry(c.key).or_insert(line);
            }
        } else if let Command::AddService(c) = &command {
            // Taken now: a later rule failing on this service is not for an earlier -A
            // line that was not taken (a -D between may have deleted it since).
            not_taken.remove(&c.key);
            // The service wins a listen rule's address (`table::listener`); a file
            // cannot hold both, so the rule is left out, and said.
            for rule in table.rules_shadowed_by(&c.key) {
                imported.skip(
                    line,
                    format!(
                        "`{raw}' holds the address of the listen rule `--add-listener \
                         {rule}', which a configuration file cannot hold with it; the rule is \
                         left out"
                    ),
                );
            }
        }
    }
    // Each service's listen rules, in one pass over them, in their order.
    let mut listens: HashMap<ServiceKey, Vec<_>> = HashMap::new();
    for rule in table.listen_rules() {
        if !table.is_shadowed(&rule) {
            listens.entry(rule.service()).or_default().push(rule);
        }
    }
    for key in order {
        let Some(service) = table.service(&key) else {
            continue;
        };
        let listen = listens.remove(&key).unwrap_or_default();
        imported.config.services.push(ServiceSpec {
            service: service.config(),
            servers: service.servers.iter().map(|s| s.config()).collect(),
            listen,
            name: None,
            comment: None,
            health: Default::default(),
            server_checks: Default::default(),
            server_more_checks: Default::default(),
            group: None,
        });
    }
    imported.finish()
}

/// The service a command is about, where it names one.
fn service_of(command: &Command) -> Option<ServiceKey> {
    match command {
        Command::AddService(c) | Command::EditService(c) => Some(c.key),
        Command::DeleteService { service }
        | Command::AddServer { service, .. }
        | Command::EditServer { service, .. }
        | Command::DeleteServer { service, .. } => Some(*service),
        Command::AddListener(rule) => Some(rule.service()),
        _ => None,
    }
}

/// A netmask a file cannot hold (not a prefix) on a service without persistence: IPVS
/// uses the netmask only to group a persistent service's clients
/// (ip_vs_sched_persist), and ipvsadm-save writes `-M` only after `-p`, so it means
/// nothing there. Set back to the full mask in `command`, so that the service is taken
/// rather than lost with every server line after it; the mask dropped, to be noted, or
/// None. (A prefix the file holds is kept, as ipvsadm keeps it.)
fn drop_unused_netmask(command: &mut Command) -> Option<Netmask> {
    match command {
        Command::AddService(service) | Command::EditService(service)
            if !service.flags.persistent()
                && matches!(service.netmask, Netmask::V4(mask) if !holds_netmask(mask)) =>
        {
            let mask = service.netmask;
            service.netmask = Netmask::full(service.key.family());
            Some(mask)
        }
        _ => None,
    }
}

/// What in `command` ipvsadm (and the table) take but a configuration file cannot
/// hold, in words; None when the file holds all of it. ipvsadm 1.31's parser against
/// the schema, value by value:
///
/// - weight (`-w`): ipvsadm takes 0 to INT_MAX, a file 0 to [`MAX_WEIGHT`]: reported;
/// - IPv4 netmask (`-M`): ipvsadm takes any address, a file contiguous masks only:
///   reported with persistence (without, [`drop_unused_netmask`] has left it out
///   before); IPv6 prefix lengths (1 to 128) are the same in both;
/// - thresholds (`-x`, `-y`: 0 to INT_MAX), persistence (`-p`: 1 s to 31 days),
///   fwmarks (1 to 2^32-1), ports, tunnel ports, `--set` timeouts (to 31 days; a file
///   holds a year), `--connect-timeout`, `--mark`: a file holds all of ipvsadm's range.
fn beyond_the_file(command: &Command) -> Option<String> {
    match command {
        Command::AddServer { server, .. } | Command::EditServer { server, .. }
            if !(0..=MAX_WEIGHT).contains(&server.weight) =>
        {
            Some(format!(
                "weight {}: a uvs configuration holds weights from 0 to {MAX_WEIGHT}",
                server.weight
            ))
        }
        // `uvs check` refuses a file's v4-mapped VIP: uvs cannot listen on it.
        Command::AddService(ServiceConfig {
            key: ServiceKey::Inet { addr, port, .. },
            ..
        }) if let Some(why) = super::v4_mapped_vip(addr, *port) => Some(why),
        Command::AddService(service) | Command::EditService(service) => match service.netmask {
            Netmask::V4(mask) if !holds_netmask(mask) => Some(format!(
                "netmask {mask}: a uvs configuration holds contiguous netmasks only (a prefix, as 255.255.255.0)"
            )),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::names::NoNames;
    use crate::config::render::render;

    /// What `uvsadm -S` writes for a service that won a listen rule's address: the rule,
    /// then the service. A file cannot hold both, so the rule is left out and said, and
    /// the TOML passes the file check.
    #[test]
    fn a_listen_rule_a_later_service_shadows_is_left_out_and_said() {
        let dump = "\
-A -f 7 -s rr
--add-listener -t 127.0.0.1:80 --mark 7
--add-listener -t 127.0.0.1:81 --mark 7
-A -t 127.0.0.1:80 -s rr
";
        let imported = import(dump.as_bytes(), &mut NoNames);
        assert_eq!(
            imported.skipped,
            [super::super::Skipped {
                line: 4,
                message: "`-A -t 127.0.0.1:80 -s rr' holds the address of the listen rule \
                          `--add-listener -t 127.0.0.1:80 --mark 7', which a configuration \
                          file cannot hold with it; the rule is left out"
                    .into()
            }]
        );
        let listen: Vec<String> = imported.config.services[0]
            .listen
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(listen, ["-t 127.0.0.1:81 --mark 7"]);
        let toml = render(&imported.config);
        crate::config::schema::parse(&toml, std::path::Path::new("t.toml")).unwrap();
    }

    #[test]
    fn a_save_dump_becomes_the_same_table_in_toml() {
        // As ipvsadm does, a direct-routing server takes the service's port (line 5).
        let dump = "\
-A -t 127.0.0.1:80 -s wrr
-a -t 127.0.0.1:80 -r 127.0.0.1:8080 -m -w 3
-a -t 127.0.0.1:80 -r 127.0.0.1:8081 -m -w 1
ipvsadm -A -u 127.0.0.1:53 -s rr -o
-a -u 127.0.0.1:53 -r 127.0.0.1:5353 -g -w 1
-A -f 7 -s sh -b sh-port -p 600 -M 255.255.255.0
--add-listener -t 127.0.0.1:443 --mark 7
-Z
-A -t 127.0.0.1:80 -s rr
";
        let imported = import(dump.as_bytes(), &mut NoNames);
        assert_eq!(
            imported.skipped,
            [
                super::super::Skipped {
                    line: 8,
                    message: "`-Z' is not configuration; skipped".into()
                },
                super::super::Skipped {
                    line: 9,
                    message: "`-A -t 127.0.0.1:80 -s rr': Service already exists".into()
                }
            ]
        );
        assert_eq!(
            render(&imported.config),
            r#"[[service]]
tcp = "127.0.0.1:80"
scheduler = "wrr"

[[service.server]]
address = "127.0.0.1:8081"

[[service.server]]
address = "127.0.0.1:8080"
weight = 3

[[service]]
udp = "127.0.0.1:53"
scheduler = "rr"
one_packet = true

[[service.server]]
address = "127.0.0.1:53"
forward = "gate"

[[service]]
fwmark = 7
scheduler = "sh"
flags = ["sh-port"]
persistent = "10m"
netmask = "255.255.255.0"
listen = ["tcp 127.0.0.1:443"]
"#
        );
    }
}
