//! `uvs demo`: a daemon with a demonstration table, so uvs can be tried with nothing
//! else installed. The table is written as ipvsadm rules and loaded through the same
//! parser as `uvsadm -R`.

use crate::adm::cmdline::{self, Context, Invocation, Parsed};
use crate::adm::names::NoNames;
use crate::table::{Command, TableHandle};

/// The demonstration table, in `ipvsadm -S -n` form.
pub const RULES: &str = "\
-A -t 127.0.0.1:8080 -s rr
-a -t 127.0.0.1:8080 -r 127.0.0.1:9001 -m -w 1
-a -t 127.0.0.1:8080 -r 127.0.0.1:9002 -m -w 1
-A -t 127.0.0.1:8443 -s wrr -p 600
-a -t 127.0.0.1:8443 -r 127.0.0.1:9443 -m -w 3
-a -t 127.0.0.1:8443 -r 127.0.0.2:9443 -m -w 1
-A -u 127.0.0.1:5353 -s wlc
-a -u 127.0.0.1:5353 -r 127.0.0.1:9053 -m -w 1
-A -t [::1]:8080 -s sh -b sh-port
-a -t [::1]:8080 -r [::1]:9001 -m -w 1
-A -f 10 -s wlc -p 600 -M 255.255.255.0
-a -f 10 -r 127.0.0.1:0 -g -w 2
-a -f 10 -r 127.0.0.2:0 -g -w 0
";

/// The demonstration table as typed commands.
pub fn commands() -> Vec<Command> {
    RULES
        .lines()
        .filter_map(|line| {
            let args: Vec<String> = std::iter::once("uvs")
                .chain(line.split_whitespace())
                .map(String::from)
                .collect();
            match cmdline::parse(&args, &mut NoNames, Context::Restore, false) {
                Parsed::Run(Invocation::Apply(command)) => Some(command),
                _ => None,
            }
        })
        .collect()
}

/// Loads the demonstration table.
pub fn load(table: &TableHandle) {
    for command in commands() {
        if let Err(e) = table.apply(&command) {
            tracing::warn!("demo rule refused: {command}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_demo_rule_parses() {
        assert_eq!(super::commands().len(), super::RULES.lines().count());
    }
}
