//! From a configuration and the running table to the commands that make the table say
//! what the file says, and nothing more: unchanged services and servers get no command
//! (so they keep their counters, connections and persistence templates), changed ones
//! an edit, missing ones an add, and what the file no longer names a delete. The file
//! owns only what it named: services added at run time with uvsadm, and never named
//! by the file, are left alone. The same holds for the sync daemons of `[sync]`: an
//! unchanged section sends nothing, a changed one stops and starts its daemons again,
//! a removed one stops those the file started, and a daemon of a role the file does
//! not name (`uvsadm --start-daemon`) is left alone. Used by `reload`, which also asks, of each command
//! from the control socket, what of the file's it changes ([`Owned::touched_by`]), so it
//! can say that the next reload puts it back ([`Touched::put_back_by`]).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use super::{Config, ServiceSpec};
use crate::table::{
    Command, ListenAddr, ListenRule, ServerConfig, ServerKey, ServiceKey, Source, SyncRole, Table,
};

/// What the last applied file named: what the next one may change or remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Owned {
    pub services: HashSet<ServiceKey>,
    pub listeners: BTreeSet<ListenAddr>,
    /// Whether the file sets the timeouts (`--set`).
    pub timeouts: bool,
    /// The roles of the sync daemons `[sync]` runs.
    pub sync: HashSet<SyncRole>,
}

impl Owned {
    pub fn of(config: &Config) -> Owned {
        Owned {
            services: config.services.iter().map(|s| s.service.key).collect(),
            listeners: config
                .services
                .iter()
                .flat_map(|s| s.listen.iter().map(|r| r.listen))
                .collect(),
            timeouts: config.timeouts.is_some(),
            sync: config.sync.iter().map(|d| d.role).collect(),
        }
    }

    /// What of the file's `command` (from the control socket) changes, in a stable
    /// order: the service it works on, the listen rule, the timeouts; everything the
    /// file owns for `-C`. Empty when the file owns none of it (`-Z` changes only
    /// counters, which a reload leaves alone).
    pub fn touched_by(&self, command: &Command) -> Vec<Touched> {
        let service = |key: &ServiceKey| {
            if self.services.contains(key) {
                vec![Touched::Service(*key)]
            } else {
                Vec::new()
            }
        };
        let listener = |listen: &ListenAddr| {
            if self.listeners.contains(listen) {
                vec![Touched::Listener(*listen)]
            } else {
                Vec::new()
            }
        };
        match command {
            Command::AddService(c) | Command::EditService(c) => service(&c.key),
            Command::DeleteService { service: key }
            | Command::AddServer { service: key, .. }
            | Command::EditServer { service: key, .. }
            | Command::DeleteServer { service: key, .. } => service(key),
            Command::Flush {} => {
                let mut all: Vec<Touched> = self
                    .services
                    .iter()
                    .copied()
                    .map(Touched::Service)
                    .collect();
                all.sort_by_cached_key(ToString::to_string);
                all.extend(self.listeners.iter().copied().map(Touched::Listener));
                all
            }
            Command::SetTimeouts(_) if self.timeouts => vec![Touched::Timeouts],
            Command::StartSyncDaemon(daemon) if self.sync.contains(&daemon.role) => {
                vec![Touched::Sync(daemon.role)]
            }
            Command::StopSyncDaemon { role } if self.sync.contains(role) => {
                vec![Touched::Sync(*role)]
            }
            Command::AddListener(rule) => listener(&rule.listen),
            Command::DeleteListener { listen } => listener(listen),
            // A command-line drain is never undone by a reload, nor is its undrain
            // (`table::pool`): nothing for the next reload to put back.
            Command::SetTimeouts(_)
            | Command::SetAdmission(_)
            | Command::Zero { .. }
            | Command::StartSyncDaemon(_)
            | Command::StopSyncDaemon { .. }
            | Command::Drain { .. }
            | Command::Undrain { .. } => Vec::new(),
        }
    }
}

/// Something the file owns that a command from elsewhere (uvsadm, through the control
/// socket) changed: the next plan puts it back as the file says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Touched {
    /// The service, its settings or its real servers.
    Service(ServiceKey),
    Listener(ListenAddr),
    Timeouts,
    /// The `[sync]` daemon of this role.
    Sync(SyncRole),
}

impl Touched {
    /// What `command`, of a plan, puts back: what it works on (a listen rule, also the
    /// service it leads to, whose rules went with it when it was deleted).
    pub fn put_back_by(command: &Command) -> Vec<Touched> {
        match command {
            Command::AddService(c) | Command::EditService(c) => vec![Touched::Service(c.key)],
            Command::DeleteService { service }
            | Command::AddServer { service, .. }
            | Command::EditServer { service, .. }
            | Command::DeleteServer { service, .. }
            | Command::Drain { service, .. }
            | Command::Undrain { service, .. } => vec![Touched::Service(*service)],
            Command::AddListener(rule) => vec![
                Touched::Listener(rule.listen),
                Touched::Service(rule.service()),
            ],
            Command::DeleteListener { listen } => vec![Touched::Listener(*listen)],
            Command::SetTimeouts(_) => vec![Touched::Timeouts],
            Command::StartSyncDaemon(daemon) => vec![Touched::Sync(daemon.role)],
            Command::StopSyncDaemon { role } => vec![Touched::Sync(*role)],
            // The file's global admission is compared with the table's at each plan.
            Command::Flush {} | Command::SetAdmission(_) | Command::Zero { .. } => Vec::new(),
        }
    }
}

impl fmt::Display for Touched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Touched::Service(key) => write!(f, "{key}"),
            Touched::Listener(listen) => write!(f, "the listener {listen}"),
            Touched::Timeouts => f.write_str("the timeouts"),
            Touched::Sync(role) => write!(f, "the {} sync daemon", role.name()),
        }
    }
}

/// The commands, in an order the table accepts: timeouts; listen rules and services
/// the file dropped; then each service of the file with its servers and rules; then
/// the sync daemons.
pub fn plan(config: &Config, table: &Table, owned: &Owned) -> Vec<Command> {
    let mut commands = Vec::new();
    if let Some(set) = config.timeouts
        && table.timeouts().updated_with(set) != table.timeouts()
    {
        commands.push(Command::SetTimeouts(set));
    }
    if config.admission != *table.admission() {
        commands.push(Command::SetAdmission(config.admission.clone()));
    }
    let wanted_rules: BTreeMap<ListenAddr, ListenRule> = config
        .services
        .iter()
        .flat_map(|s| s.listen.iter().map(|r| (r.listen, *r)))
        .collect();
    let current_rules: BTreeMap<ListenAddr, ListenRule> = table
        .listen_rules()
        .into_iter()
        .map(|r| (r.listen, r))
        .collect();
    for listen in &owned.listeners {
        let stays = wanted_rules.get(listen) == current_rules.get(listen);
        if current_rules.contains_key(listen) && !stays {
            commands.push(Command::DeleteListener { listen: *listen });
        }
    }
    let named: HashSet<ServiceKey> = config.services.iter().map(|s| s.service.key).collect();
    let mut dropped: Vec<Command> = owned
        .services
        .iter()
        .filter(|key| !named.contains(key) && table.service(key).is_some())
        .map(|key| Command::DeleteService { service: *key })
        .collect();
    // In a stable order, for the log.
    dropped.sort_by_cached_key(|c| c.to_string());
    commands.extend(dropped);
    for spec in &config.services {
        service_commands(spec, table, &mut commands);
    }
    for (listen, rule) in &wanted_rules {
        if current_rules.get(listen) != Some(rule) {
            commands.push(Command::AddListener(*rule));
        }
    }
    sync_commands(config, table, owned, &mut commands);
    commands
}

/// The sync daemons of `[sync]`, master first: started when the table has none of
/// that role; left alone when the table's runs as the file asks
/// (`SyncDaemon::runs_as`: the table holds them resolved); stopped and started again
/// when it differs (a changed section, or one uvsadm started for a role the file now
/// names); stopped when the file no longer names a role it did.
fn sync_commands(config: &Config, table: &Table, owned: &Owned, commands: &mut Vec<Command>) {
    for role in [SyncRole::Master, SyncRole::Backup] {
        let wanted = config.sync.iter().find(|d| d.role == role);
        match (wanted, table.sync_daemons().get(role)) {
            (Some(want), None) => commands.push(Command::StartSyncDaemon(want.clone())),
            (Some(want), Some(running)) if running.runs_as(want) => {}
            (Some(want), Some(_)) => {
                commands.push(Command::StopSyncDaemon { role });
                commands.push(Command::StartSyncDaemon(want.clone()));
            }
            (None, Some(_)) if owned.sync.contains(&role) => {
                commands.push(Command::StopSyncDaemon { role });
            }
            (None, _) => {}
        }
    }
}

/// The servers of `spec` as the table will hold them (`ServerConfig::in_service`: a gate
/// or ipip server takes the service's port), in the file's order. The reader has done
/// this already; a configuration made otherwise (an import, the health layer adding a
/// `[global]` fallback) is fitted here, and a server that lands on the address and
/// port of one before it is that one (ipvsadm would refuse it as existing), so the plan
/// neither adds a server twice nor deletes and re-adds one on every reload.
fn servers_of(spec: &ServiceSpec) -> Vec<ServerConfig> {
    let mut seen = HashSet::new();
    spec.servers
        .iter()
        .map(|s| s.in_service(&spec.service.key))
        .filter(|s| seen.insert(s.key()))
        .collect()
}

/// Commands for one service of the file.
fn service_commands(spec: &ServiceSpec, table: &Table, commands: &mut Vec<Command>) {
    let key = spec.service.key;
    let servers = servers_of(spec);
    let Some(current) = table.service(&key) else {
        commands.push(Command::AddService(spec.service.clone()));
        // IPVS lists the newest server first: add in reverse so the list reads as the
        // file does. A server the file drains is not added: it stays drained out.
        for server in servers.iter().rev().filter(|s| s.options.drain.is_none()) {
            commands.push(Command::AddServer {
                service: key,
                server: server.clone(),
            });
        }
        return;
    };
    if !current.is_configured_as(&spec.service) {
        commands.push(Command::EditService(spec.service.clone()));
    }
    let wanted: HashSet<ServerKey> = servers.iter().map(|s| s.key()).collect();
    let drain_on_remove = spec.service.options.drain_on_remove_ms;
    for server in &current.servers {
        if wanted.contains(&server.key()) {
            continue;
        }
        // A command-line drain is the pool controller's to end, whatever the file or
        // a failed health check says (`table::pool`): a delete here would undo it, and
        // a passed check would add the server back at its full weight.
        if server.drain.is_some_and(|d| d.origin == Source::Command) {
            continue;
        }
        // With `drain_on_remove`, a server the file (or its health checks) no longer
        // names drains instead of leaving at once; one already draining is left to it,
        // unless the deadline the file asks changed (draining again restarts it).
        let asked = Some(u64::from(drain_on_remove));
        if drain_on_remove == 0 {
            commands.push(Command::DeleteServer {
                service: key,
                server: server.key(),
            });
        } else if server.drain.is_none_or(|d| d.asked_ms != asked) {
            commands.push(Command::Drain {
                service: key,
                server: server.key(),
                deadline_ms: asked,
                keep_persistent: false,
            });
        }
    }
    for server in servers.iter().rev() {
        let Some(s) = current.servers.iter().find(|s| s.key() == server.key()) else {
            // Drained out: by the file's `drain`, or by a command-line drain until
            // `uvs undrain` or `-a` (`table::pool`).
            if server.options.drain.is_none() && !current.drained_out.contains(&server.key()) {
                commands.push(Command::AddServer {
                    service: key,
                    server: server.clone(),
                });
            }
            continue;
        };
        if s.config() != *server {
            commands.push(Command::EditServer {
                service: key,
                server: server.clone(),
            });
        }
        match (server.options.drain, s.drain) {
            (Some(setting), None) => commands.push(Command::Drain {
                service: key,
                server: server.key(),
                deadline_ms: setting.deadline_ms(drain_on_remove),
                keep_persistent: false,
            }),
            // The file's own drain with another deadline than the file asks now: drained
            // again, the deadline restarts from now (as `uvs drain` asked again does).
            (Some(setting), Some(d))
                if d.origin == Source::File
                    && d.asked_ms != setting.deadline_ms(drain_on_remove) =>
            {
                commands.push(Command::Drain {
                    service: key,
                    server: server.key(),
                    deadline_ms: setting.deadline_ms(drain_on_remove),
                    keep_persistent: false,
                });
            }
            // The file's own drain, undone by the file; a command-line drain is never
            // undone by a plan.
            (None, Some(d)) if d.origin == Source::File => {
                commands.push(Command::Undrain {
                    service: key,
                    server: server.key(),
                });
            }
            _ => {}
        }
    }
}

/// The table `config` makes on its own (an empty table with the file applied), for
/// questions about it before it runs: what `uvs check` warns about.
pub fn table_of(config: &Config) -> Table {
    let mut table = Table::new();
    for command in plan(config, &Table::new(), &Owned::default()) {
        // A valid configuration applies whole; a refusal was reported by the reader.
        // Nobody else reads this table: its effects happen at once.
        if let Ok(effects) = table.apply(&command, &crate::table::UnicastOnly) {
            effects.carry_out();
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::schema::parse;
    use crate::table::{TableHandle, UnicastOnly};

    fn config(text: &str) -> Config {
        parse(text, Path::new("t.toml")).unwrap()
    }

    fn apply(table: &mut Table, commands: &[Command]) {
        for c in commands {
            table.apply(c, &UnicastOnly).unwrap().carry_out();
        }
    }

    /// Applies `commands` as a reload does (`Source::File`).
    fn reload(table: &mut Table, commands: &[Command]) {
        for c in commands {
            table
                .apply_from(c, &UnicastOnly, crate::table::Source::File)
                .unwrap()
                .carry_out();
        }
    }

    const DRAINED: &str = r#"
[[service]]
tcp = "127.0.0.1:80"
scheduler = "rr"
drain_on_remove = "30s"
[[service.server]]
address = "127.0.0.1:8080"
[[service.server]]
address = "127.0.0.1:8081"
"#;

    fn drains(commands: &[Command]) -> Vec<String> {
        commands.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_file_drain_drains_a_server_in_the_table_and_never_adds_one() {
        let mut table = Table::new();
        let first = config(DRAINED);
        let made = plan(&first, &table, &Owned::default());
        reload(&mut table, &made);
        let drained = config(&format!("{DRAINED}drain = true\n"));
        let commands = plan(&drained, &table, &Owned::of(&first));
        assert_eq!(
            drains(&commands)[1..],
            ["drain -t 127.0.0.1:80 -r 127.0.0.1:8081 --deadline 30s"],
            "{commands:?}"
        );
        reload(&mut table, &commands);
        let svc = table.service(&first.services[0].service.key).unwrap();
        let d = svc.servers.iter().find_map(|s| s.drain).unwrap();
        assert_eq!(d.origin, crate::table::Source::File);
        assert!(plan(&drained, &table, &Owned::of(&drained)).is_empty());

        // The file names it again without `drain`: its own drain is undone.
        let commands = plan(&first, &table, &Owned::of(&drained));
        assert!(
            drains(&commands).contains(&"undrain -t 127.0.0.1:80 -r 127.0.0.1:8081".to_string()),
            "{commands:?}"
        );

        // A fresh table: the drained server is not added at all.
        let fresh = plan(&drained, &Table::new(), &Owned::default());
        assert!(
            !drains(&fresh).iter().any(|c| c.contains("8081")),
            "{fresh:?}"
        );
    }

    #[test]
    fn drain_on_remove_drains_a_removed_server_once() {
        let mut table = Table::new();
        let first = config(DRAINED);
        let made = plan(&first, &table, &Owned::default());
        reload(&mut table, &made);
        let fewer =
            config(&DRAINED.replace("[[service.server]]\naddress = \"127.0.0.1:8081\"\n", ""));
        let commands = plan(&fewer, &table, &Owned::of(&first));
        assert_eq!(
            drains(&commands),
            ["drain -t 127.0.0.1:80 -r 127.0.0.1:8081 --deadline 30s"]
        );
        reload(&mut table, &commands);
        assert!(
            plan(&fewer, &table, &Owned::of(&fewer)).is_empty(),
            "a server already draining gets no command"
        );
        // Without drain_on_remove, the server leaves at once, as before.
        let plain = config(&FIRST.replace("127.0.0.1:8081", "127.0.0.1:8082"));
        let mut t = Table::new();
        let start = config(FIRST);
        let made = plan(&start, &t, &Owned::default());
        apply(&mut t, &made);
        assert!(
            drains(&plan(&plain, &t, &Owned::of(&start)))
                .contains(&"-d -t 127.0.0.1:80 -r 127.0.0.1:8081".to_string())
        );
    }

    #[test]
    fn a_command_line_drain_is_not_undone_and_its_server_not_added_back() {
        let mut table = Table::new();
        let first = config(DRAINED);
        let made = plan(&first, &table, &Owned::default());
        reload(&mut table, &made);
        let key = first.services[0].service.key;
        let server = ServerKey {
            addr: "127.0.0.1".parse().unwrap(),
            port: 8081,
        };
        let drain = Command::Drain {
            service: key,
            server,
            deadline_ms: None,
            keep_persistent: false,
        };
        apply(&mut table, &[drain]);
        assert!(
            plan(&first, &table, &Owned::of(&first)).is_empty(),
            "the reload leaves the drain alone"
        );
        // The pool controller removes it once drained.
        table
            .apply_from(
                &Command::DeleteServer {
                    service: key,
                    server,
                },
                &UnicastOnly,
                crate::table::Source::Pool,
            )
            .unwrap()
            .carry_out();
        assert!(
            plan(&first, &table, &Owned::of(&first)).is_empty(),
            "drained out: not added back"
        );
        apply(
            &mut table,
            &[Command::Undrain {
                service: key,
                server,
            }],
        );
        assert_eq!(
            drains(&plan(&first, &table, &Owned::of(&first))),
            ["-a -t 127.0.0.1:80 -r 127.0.0.1:8081 -m -w 1"]
        );
    }

    /// A health check's flap (quiescent = false: a failed server leaves the file's
    /// configuration, a passed one comes back) neither deletes a server under a
    /// command-line drain nor adds it back at its weight.
    #[test]
    fn a_health_flap_leaves_a_command_line_drain_alone() {
        let plain = DRAINED.replace("drain_on_remove = \"30s\"\n", "");
        let both = config(&plain);
        let failed =
            config(&plain.replace("[[service.server]]\naddress = \"127.0.0.1:8081\"\n", ""));
        let mut table = Table::new();
        let made = plan(&both, &table, &Owned::default());
        reload(&mut table, &made);
        let key = both.services[0].service.key;
        let server = ServerKey {
            addr: "127.0.0.1".parse().unwrap(),
            port: 8081,
        };
        apply(
            &mut table,
            &[Command::Drain {
                service: key,
                server,
                deadline_ms: None,
                keep_persistent: false,
            }],
        );
        assert!(
            plan(&failed, &table, &Owned::of(&both)).is_empty(),
            "the check failed: the drain goes on"
        );
        assert!(
            plan(&both, &table, &Owned::of(&failed)).is_empty(),
            "the check passed: still draining, not re-added"
        );
        let svc = table.service(&key).unwrap();
        let s = svc.servers.iter().find(|s| s.key() == server).unwrap();
        assert_eq!(
            (s.weight, s.drain.map(|d| d.origin)),
            (0, Some(Source::Command))
        );
        // The controller ends it while the check fails; a passed check adds nothing.
        table
            .apply_from(
                &Command::DeleteServer {
                    service: key,
                    server,
                },
                &UnicastOnly,
                Source::Pool,
            )
            .unwrap()
            .carry_out();
        assert!(plan(&failed, &table, &Owned::of(&both)).is_empty());
        assert!(plan(&both, &table, &Owned::of(&failed)).is_empty());
    }

    /// The deadline of the drain in force, from now, in whole seconds.
    fn deadline_secs(table: &Table, port: u16) -> Option<u64> {
        let svc = table.services().into_iter().next().unwrap();
        let s = svc.servers.iter().find(|s| s.port == port).unwrap();
        let d = s.drain.unwrap();
        d.left_ms(crate::clock::monotonic_ms())
            .map(|ms| ms.div_ceil(1000))
    }

    #[test]
    fn a_changed_file_deadline_drains_again_with_it() {
        let mut table = Table::new();
        let first = config(DRAINED);
        let made = plan(&first, &table, &Owned::default());
        reload(&mut table, &made);
        let thirty = config(&format!("{DRAINED}drain = \"45s\"\n"));
        let made = plan(&thirty, &table, &Owned::of(&first));
        reload(&mut table, &made);
        assert_eq!(deadline_secs(&table, 8081), Some(45));
        let hour = config(&format!("{DRAINED}drain = \"1h\"\n"));
        let commands = plan(&hour, &table, &Owned::of(&thirty));
        assert_eq!(
            drains(&commands),
            [
                "-e -t 127.0.0.1:80 -r 127.0.0.1:8081 -m -w 1",
                "drain -t 127.0.0.1:80 -r 127.0.0.1:8081 --deadline 1h"
            ],
            "the edit records the file's new setting; the weight it sends is the asked one"
        );
        reload(&mut table, &commands);
        assert_eq!(deadline_secs(&table, 8081), Some(3600));
        let svc = table.services().into_iter().next().unwrap();
        let s = svc.servers.iter().find(|s| s.port == 8081).unwrap();
        assert_eq!((s.weight, s.asked_weight), (0, 1), "still drains");
        assert!(plan(&hour, &table, &Owned::of(&hour)).is_empty());
        // `drain = true` takes the service's drain_on_remove (30s): changed too.
        let until = config(&format!("{DRAINED}drain = true\n"));
        let commands = plan(&until, &table, &Owned::of(&hour));
        assert!(
            drains(&commands)
                .contains(&"drain -t 127.0.0.1:80 -r 127.0.0.1:8081 --deadline 30s".to_string()),
            "{commands:?}"
        );
    }

    #[test]
    fn a_changed_drain_on_remove_drains_a_removed_server_again() {
        let mut table = Table::new();
        let first = config(DRAINED);
        let made = plan(&first, &table, &Owned::default());
        reload(&mut table, &made);
        let without = DRAINED.replace("[[service.server]]\naddress = \"127.0.0.1:8081\"\n", "");
        let fewer = config(&without);
        let made = plan(&fewer, &table, &Owned::of(&first));
        reload(&mut table, &made);
        assert_eq!(deadline_secs(&table, 8081), Some(30));
        let longer = config(&without.replace("\"30s\"", "\"2m\""));
        let commands = plan(&longer, &table, &Owned::of(&fewer));
        assert_eq!(
            drains(&commands)[1..],
            ["drain -t 127.0.0.1:80 -r 127.0.0.1:8081 --deadline 2m"],
            "{commands:?}"
        );
        reload(&mut table, &commands);
        assert_eq!(deadline_secs(&table, 8081), Some(120));
        assert!(plan(&longer, &table, &Owned::of(&longer)).is_empty());
    }

    const FIRST: &str = r#"
[[service]]
tcp = "127.0.0.1:80"
scheduler = "rr"
[[service.server]]
address = "127.0.0.1:8080"
[[service.server]]
address = "127.0.0.1:8081"

[[service]]
udp = "127.0.0.1:53"
[[service.server]]
address = "127.0.0.1:5353"
"#;

    #[test]
    fn only_what_changed_gets_a_command() {
        let mut table = Table::new();
        let first = config(FIRST);
        let commands = plan(&first, &table, &Owned::default());
        assert_eq!(commands.len(), 5, "{commands:?}");
        apply(&mut table, &commands);
        assert!(
            plan(&first, &table, &Owned::of(&first)).is_empty(),
            "nothing to do twice"
        );
        // A uvsadm service the file never named.
        apply(
            &mut table,
            &[Command::AddService(
                config("[[service]]\ntcp = \"127.0.0.1:99\"").services[0]
                    .service
                    .clone(),
            )],
        );
        let second = config(
            r#"
[[service]]
tcp = "127.0.0.1:80"
scheduler = "rr"
[[service.server]]
address = "127.0.0.1:8080"
weight = 3
[[service.server]]
address = "127.0.0.1:8082"
"#,
        );
        let commands: Vec<String> = plan(&second, &table, &Owned::of(&first))
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            commands,
            [
                "-D -u 127.0.0.1:53",
                "-d -t 127.0.0.1:80 -r 127.0.0.1:8081",
                "-a -t 127.0.0.1:80 -r 127.0.0.1:8082 -m -w 1",
                "-e -t 127.0.0.1:80 -r 127.0.0.1:8080 -m -w 3",
            ]
        );
    }

    /// What the file owns, a uvsadm command changes, and the next plan puts back.
    #[test]
    fn a_change_to_what_the_file_owns_is_put_back_by_the_next_plan() {
        let mut table = Table::new();
        let first = config(FIRST);
        let commands = plan(&first, &table, &Owned::default());
        apply(&mut table, &commands);
        let owned = Owned::of(&first);
        let tcp80 = first.services[0].service.key;
        let mut server = first.services[0].servers[0].clone();
        server.weight = 5;
        let edit = Command::EditServer {
            service: tcp80,
            server,
        };
        assert_eq!(owned.touched_by(&edit), [Touched::Service(tcp80)]);
        assert_eq!(
            Touched::Service(tcp80).to_string(),
            "tcp 127.0.0.1:80",
            "as the log names it"
        );
        apply(&mut table, std::slice::from_ref(&edit));
        let back = plan(&first, &table, &owned);
        assert_eq!(back.len(), 1);
        assert_eq!(Touched::put_back_by(&back[0]), [Touched::Service(tcp80)]);
        // Counters, and a service the file never named, are not the file's.
        assert!(
            owned
                .touched_by(&Command::Zero { service: None })
                .is_empty()
        );
        let other = config("[[service]]\ntcp = \"127.0.0.1:99\"").services[0]
            .service
            .clone();
        assert!(owned.touched_by(&Command::AddService(other)).is_empty());
        // -C takes every service the file owns.
        assert_eq!(owned.touched_by(&Command::Flush {}).len(), 2);
    }

    /// A configuration made without the reader (an import, the health layer's
    /// fallback) may name a gate server at a port the table will not hold: the plan
    /// asks for what the table will hold, so a reload changes nothing.
    #[test]
    fn servers_are_planned_at_the_port_the_table_gives_them() {
        let mut made = config(
            r#"
[[service]]
tcp = "127.0.0.1:80"
[[service.server]]
address = "127.0.0.2:80"
forward = "gate"
[[service.server]]
address = "127.0.0.3:8080"
"#,
        );
        let gate = made.services[0].servers[0].clone();
        made.services[0].servers[0].port = 8080;
        let mut fallback = gate.clone();
        fallback.port = 9090;
        made.services[0].servers.push(fallback);
        let mut table = Table::new();
        let commands = plan(&made, &table, &Owned::default());
        let lines: Vec<String> = commands.iter().map(|c| c.to_string()).collect();
        assert_eq!(
            lines,
            [
                "-A -t 127.0.0.1:80 -s wlc",
                "-a -t 127.0.0.1:80 -r 127.0.0.3:8080 -m -w 1",
                "-a -t 127.0.0.1:80 -r 127.0.0.2:80 -g -w 1",
            ]
        );
        apply(&mut table, &commands);
        assert!(plan(&made, &table, &Owned::of(&made)).is_empty());
        made.services[0].servers[0].weight = 2;
        let lines: Vec<String> = plan(&made, &table, &Owned::of(&made))
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(lines, ["-e -t 127.0.0.1:80 -r 127.0.0.2:80 -g -w 2"]);
    }

    #[test]
    fn a_refused_reload_leaves_the_running_table_alone() {
        let running = TableHandle::new(Box::new(UnicastOnly));
        let first = config(FIRST);
        let commands = plan(&first, &running.snapshot(), &Owned::default());
        running.apply_all(&commands).unwrap();
        let table = running.snapshot();
        let svc = table
            .services()
            .into_iter()
            .find(|s| s.servers.len() == 2)
            .unwrap()
            .clone();
        let bad = [
            Command::DeleteServer {
                service: svc.key,
                server: svc.servers[0].key(),
            },
            Command::DeleteService {
                service: ServiceKey::Fwmark {
                    mark: 9,
                    family: crate::table::Family::Inet,
                },
            },
        ];
        assert_eq!(running.apply_all(&bad).unwrap_err().0, 1);
        assert!(
            svc.servers[0].state.is_available(),
            "the rehearsed delete did not retire the running server"
        );
    }

    /// Editing a group touches exactly the members that changed: a member added is
    /// added, one removed is deleted, the others keep their servers untouched; a
    /// server changed is changed in every member.
    #[test]
    fn a_group_edit_changes_only_the_members_that_changed() {
        let group = |members: &str, weight: u32| {
            config(&format!(
                r#"
[[service]]
group = "web"
tcp = [{members}]
fwmark = 5
[[service.server]]
address = "127.0.0.2:8080"
weight = {weight}
"#
            ))
        };
        let lines = |c: &[Command]| -> Vec<String> { c.iter().map(|c| c.to_string()).collect() };
        let mut table = Table::new();
        let first = group("\"127.0.0.1-127.0.0.2:80\"", 1);
        let commands = plan(&first, &table, &Owned::default());
        assert_eq!(
            lines(&commands),
            [
                "-A -t 127.0.0.1:80 -s wlc",
                "-a -t 127.0.0.1:80 -r 127.0.0.2:8080 -m -w 1",
                "-A -t 127.0.0.2:80 -s wlc",
                "-a -t 127.0.0.2:80 -r 127.0.0.2:8080 -m -w 1",
                "-A -f 5 -s wlc",
                "-a -f 5 -r 127.0.0.2:8080 -m -w 1",
            ]
        );
        apply(&mut table, &commands);
        let second = group("\"127.0.0.2:80\", \"127.0.0.3:80\"", 1);
        let commands = plan(&second, &table, &Owned::of(&first));
        assert_eq!(
            lines(&commands),
            [
                "-D -t 127.0.0.1:80",
                "-A -t 127.0.0.3:80 -s wlc",
                "-a -t 127.0.0.3:80 -r 127.0.0.2:8080 -m -w 1",
            ]
        );
        apply(&mut table, &commands);
        let third = group("\"127.0.0.2:80\", \"127.0.0.3:80\"", 4);
        assert_eq!(
            lines(&plan(&third, &table, &Owned::of(&second))),
            [
                "-e -t 127.0.0.2:80 -r 127.0.0.2:8080 -m -w 4",
                "-e -t 127.0.0.3:80 -r 127.0.0.2:8080 -m -w 4",
                "-e -f 5 -r 127.0.0.2:8080 -m -w 4",
            ]
        );
    }

    /// A file of many services, some with every setting a service can have, and one
    /// weight changed: the plan is that one command, and the same file again is none
    /// (`Service::is_configured_as` agrees with the table's copy of every setting).
    #[test]
    fn one_weight_changed_among_many_services_is_one_command() {
        let mut text = String::new();
        for i in 0..500u32 {
            text.push_str(&format!(
                "[[service]]\nudp = \"127.0.{}.{}:5060\"\nscheduler = \"wlc\"\n",
                i / 250,
                i % 250 + 1
            ));
            if i % 2 == 0 {
                text.push_str(
                    "persistent = \"10m\"\nnetmask = \"255.255.255.0\"\npe = \"sip\"\n\
                     one_packet = true\nconnect_timeout = \"2s\"\n\
                     allow = [\"127.0.0.0/29\"]\ndeny = [\"127.0.0.3/32\"]\n",
                );
            }
            for j in 0..2 {
                text.push_str(&format!(
                    "[[service.server]]\naddress = \"127.1.{}.{}:{}\"\nweight = 1\n",
                    i / 250,
                    i % 250 + 1,
                    8000 + j
                ));
            }
        }
        let first = config(&text);
        let mut table = Table::new();
        let made = plan(&first, &table, &Owned::default());
        reload(&mut table, &made);
        let owned = Owned::of(&first);
        assert!(plan(&first, &table, &owned).is_empty());

        let i = text.rfind("weight = 1").unwrap();
        let changed = config(&format!("{}weight = 7{}", &text[..i], &text[i + 10..]));
        let commands = plan(&changed, &table, &owned);
        assert_eq!(
            drains(&commands),
            ["-e -u 127.0.1.250:5060 -r 127.1.1.250:8001 -m -w 7"]
        );
        reload(&mut table, &commands);
        assert!(plan(&changed, &table, &Owned::of(&changed)).is_empty());
    }

    /// Applies `commands` as the daemon does: a start resolved for the interface (here
    /// for a 65536-byte MTU, as `lo`'s), as `daemon::sync` resolves it.
    fn apply_resolved(table: &mut Table, commands: &[Command]) {
        let resolved: Vec<Command> = commands
            .iter()
            .map(|c| match c {
                Command::StartSyncDaemon(d) => Command::StartSyncDaemon(d.resolved(65536)),
                other => other.clone(),
            })
            .collect();
        reload(table, &resolved);
    }

    const SYNC: &str = "[sync]\nrole = \"both\"\ninterface = \"lo\"\nsyncid = 7\n";

    #[test]
    fn a_sync_section_starts_its_daemons_once_and_restarts_them_when_changed() {
        let mut table = Table::new();
        let first = config(SYNC);
        let made = plan(&first, &table, &Owned::default());
        assert_eq!(
            drains(&made),
            ["--start-daemon master", "--start-daemon backup"]
        );
        apply_resolved(&mut table, &made);
        // Unchanged: nothing, though the table holds them resolved.
        assert!(plan(&first, &table, &Owned::of(&first)).is_empty());
        // A changed sync id: each role stopped, then started with the new settings.
        let changed = config(&SYNC.replace("syncid = 7", "syncid = 9"));
        let commands = plan(&changed, &table, &Owned::of(&first));
        assert_eq!(
            drains(&commands),
            [
                "--stop-daemon master",
                "--start-daemon master",
                "--stop-daemon backup",
                "--start-daemon backup"
            ]
        );
        apply_resolved(&mut table, &commands);
        assert_eq!(table.sync_daemons().master.as_ref().unwrap().syncid, 9);
        // Master only: the backup the file started is stopped.
        let master = config(
            &SYNC
                .replace("both", "master")
                .replace("syncid = 7", "syncid = 9"),
        );
        let commands = plan(&master, &table, &Owned::of(&changed));
        assert_eq!(drains(&commands), ["--stop-daemon backup"]);
        apply_resolved(&mut table, &commands);
        // Removed: the master goes too.
        let none = config(FIRST);
        let commands = plan(&none, &table, &Owned::of(&master));
        assert!(drains(&commands).contains(&"--stop-daemon master".to_string()));
    }

    #[test]
    fn a_daemon_uvsadm_started_is_left_alone_and_one_it_stopped_is_started_again() {
        let mut table = Table::new();
        let master = config(&SYNC.replace("both", "master"));
        let made = plan(&master, &table, &Owned::default());
        apply_resolved(&mut table, &made);
        let owned = Owned::of(&master);
        // uvsadm --start-daemon backup: no role of the file's; reloads leave it.
        let by_hand = Command::StartSyncDaemon(crate::table::SyncDaemon {
            role: SyncRole::Backup,
            ..master.sync[0].clone()
        });
        assert!(owned.touched_by(&by_hand).is_empty());
        apply_resolved(&mut table, std::slice::from_ref(&by_hand));
        assert!(plan(&master, &table, &owned).is_empty());
        let none = config(FIRST);
        let commands = plan(&none, &table, &owned);
        assert!(!drains(&commands).contains(&"--stop-daemon backup".to_string()));
        // uvsadm --stop-daemon master: the file's; the next reload starts it again.
        let stop = Command::StopSyncDaemon {
            role: SyncRole::Master,
        };
        assert_eq!(owned.touched_by(&stop), [Touched::Sync(SyncRole::Master)]);
        assert_eq!(
            Touched::Sync(SyncRole::Master).to_string(),
            "the master sync daemon"
        );
        reload(&mut table, &[stop]);
        let commands = plan(&master, &table, &owned);
        assert_eq!(drains(&commands), ["--start-daemon master"]);
        assert_eq!(
            Touched::put_back_by(&commands[0]),
            [Touched::Sync(SyncRole::Master)]
        );
    }
}
