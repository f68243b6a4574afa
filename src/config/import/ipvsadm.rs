//! `ipvsadm-save` (or any `ipvsadm -R` input) to a configuration: each line is parsed
//! by uvsadm's own ipvsadm grammar and applied, in order, to a scratch table, exactly as
//! `ipvsadm -R` would apply it; the table that results becomes the configuration, its
//! services in the order the input created them. Lines ipvsadm would refuse, and lines
//! that are not table changes (`-Z`, listings, sync daemons), are reported.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use super::{Imported, Importing};
use crate::adm::cmdline::{Context, Invocation, Parsed, parse};
use crate::adm::names::Names;
use crate::adm::restore::RestoreReader;
use crate::config::ServiceSpec;
use crate::table::{Command, ServiceKey, Table, UnicastOnly};

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
    while let Some(words) = reader.next_line() {
        line += 1;
        if words.is_empty() {
            continue;
        }
        let args: Vec<String> = std::iter::once("ipvsadm".to_string())
            .chain(words)
            .collect();
        let command = match parse(&args, names, Context::Restore, false) {
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
        match &command {
            Command::Zero { .. }
            | Command::StartSyncDaemon { .. }
            | Command::StopSyncDaemon { .. } => {
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
            imported.skip(line, format!("`{command}': {e}"));
        }
    }
    // Each service's listen rules, in one pass over them, in their order.
    let mut listens: HashMap<ServiceKey, Vec<_>> = HashMap::new();
    for rule in table.listen_rules() {
        if let Some(service) = table.route(&rule.listen) {
            listens.entry(service.key).or_default().push(rule);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adm::names::NoNames;
    use crate::config::render::render;

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
