//! `uvs generate man DIR` and `uvs generate completions DIR`: the manual pages uvs(8),
//! uvsadm(8) and uvs.toml(5), and the bash, zsh and fish completions of uvs and uvsadm,
//! written from what the programs themselves are made of so that they cannot drift:
//! uvs's clap definitions (main.rs), uvsadm's option table (`uvs::adm::manual`, built
//! from the parser's own) and the configuration reference (`uvs::config::reference`,
//! held to the schema by its tests). The file names are fixed (the Debian package
//! installs them as they are). Called by main.rs's dispatch only.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Command;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

use uvs::adm::manual as adm_manual;
use uvs::config::reference;

/// What `uvs generate` writes.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum What {
    /// DIR/uvs.8, DIR/uvsadm.8 and DIR/uvs.toml.5
    Man,
    /// DIR/bash/{uvs,uvsadm}, DIR/zsh/{_uvs,_uvsadm}, DIR/fish/{uvs,uvsadm}.fish
    Completions,
}

/// Writes `what` into `dir` (created if missing); `uvs` is uvs's own command line.
///
/// # Errors
/// A directory that cannot be made or a file that cannot be written, named.
pub fn generate(what: What, dir: &Path, uvs: Command) -> anyhow::Result<()> {
    let files = match what {
        What::Man => man_pages(uvs)?,
        What::Completions => completions(uvs),
    };
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!("{} is not a directory", dir.display());
    }
    for (name, text) in files {
        let path = dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                let why = match not_a_directory(parent) {
                    Some(file) => format!("{} is not a directory", file.display()),
                    None => e.to_string(),
                };
                anyhow::anyhow!("cannot create the directory {}: {why}", parent.display())
            })?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The nearest of `dir` and its ancestors that exists, when it is not a directory:
/// what made `create_dir_all` fail with "File exists" or "Not a directory".
fn not_a_directory(dir: &Path) -> Option<&Path> {
    let existing = dir.ancestors().find(|a| a.symlink_metadata().is_ok())?;
    (!existing.is_dir()).then_some(existing)
}

/// The completion scripts, by file name under DIR.
fn completions(uvs: Command) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (name, cmd) in [("uvs", uvs), ("uvsadm", adm_manual::command())] {
        for (shell, file) in [
            (Shell::Bash, format!("bash/{name}")),
            (Shell::Zsh, format!("zsh/_{name}")),
            (Shell::Fish, format!("fish/{name}.fish")),
        ] {
            let mut cmd = cmd.clone();
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, name, &mut out);
            files.push((PathBuf::from(file), out));
        }
    }
    files
}

fn man_pages(uvs: Command) -> anyhow::Result<Vec<(PathBuf, Vec<u8>)>> {
    Ok(vec![
        (PathBuf::from("uvs.8"), uvs_page(uvs)?),
        (PathBuf::from("uvsadm.8"), uvsadm_page()?),
        (PathBuf::from("uvs.toml.5"), toml_page().into_bytes()),
    ])
}

const SOURCE: &str = concat!("uvs ", env!("CARGO_PKG_VERSION"));

/// A page's opening: its title line and NAME.
fn opening(man: &Man) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    Ok(out)
}

/// One of clap_mangen's sections, without its `.SH` heading lines (for a section of
/// a subcommand, which is a subsection of the page).
fn body(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> anyhow::Result<String> {
    let mut out = Vec::new();
    render(&mut out)?;
    let text = String::from_utf8(out).context("clap_mangen wrote something that is not UTF-8")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with(".SH"))
        .map(|l| format!("{l}\n"))
        .collect())
}

/// A `.TP` paragraph: `term` in bold, then its text.
fn item(roff: &mut Roff, term: &str, text: &str) {
    roff.control("TP", []);
    roff.text([bold(term)]);
    roff.text([roman(text)]);
}

/// A section 8 page of `cmd` (built here) titled `title`: the page (for clap_mangen's
/// sections), its opening, and the roff that goes on with its SYNOPSIS heading.
fn section_8(cmd: &mut Command, title: &'static str) -> anyhow::Result<(Man, Vec<u8>, Roff)> {
    cmd.build();
    let man = Man::new(cmd.clone())
        .title(title)
        .section("8")
        .source(SOURCE)
        .manual("System Administration");
    let out = opening(&man)?;
    let mut roff = Roff::new();
    roff.control("SH", ["SYNOPSIS"]);
    Ok((man, out, roff))
}

fn uvs_page(mut uvs: Command) -> anyhow::Result<Vec<u8>> {
    let (_, mut out, mut roff) = section_8(&mut uvs, "UVS")?;
    roff.text([
        bold("uvs"),
        roman(" "),
        italic("command"),
        roman(" [options]"),
    ]);
    for sub in uvs.get_subcommands().filter(|s| !s.is_hide_set()) {
        roff.control("br", []);
        roff.text([bold(format!("uvs {}", sub.get_name())), roman(" ...")]);
    }
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "uvs is a load balancer at layer 4 (TCP, UDP) that behaves as Linux IPVS does, driven as ipvsadm(8) drives IPVS (uvsadm(8) is ipvsadm's command line) and checking its real servers as ldirectord(8) and keepalived do. uvs run holds the virtual server table and balances the traffic, in userspace or through the kernel's IPVS; it serves a control socket that uvsadm and uvs status talk to, reads its configuration from a TOML file (uvs.toml(5)) and serves Prometheus metrics and a status page.",
    )]);
    roff.control("SH", ["COMMANDS"]);
    out.extend(roff.render().into_bytes());
    for sub in uvs.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("uvs {}", sub.get_name());
        let mut head = Roff::new();
        head.control("SS", [name.as_str()]);
        out.extend(head.render().into_bytes());
        let page = Man::new(sub.clone());
        out.extend(synopsis(sub).render().into_bytes());
        out.extend(b".PP\n");
        out.extend(body(|w| page.render_description_section(w))?.into_bytes());
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            out.extend(body(|w| page.render_options_section(w))?.into_bytes());
        }
    }
    let mut roff = Roff::new();
    roff.control("SH", ["OPTIONS"]);
    item(
        &mut roff,
        "-h, --help",
        "Print help (of uvs, or of a command after it).",
    );
    item(
        &mut roff,
        "-V, --version",
        "Print the version and the commit it was built from.",
    );
    uvs_sections(&mut roff);
    out.extend(roff.render().into_bytes());
    Ok(out)
}

/// A command's synopsis line, `uvs run [--socket PATH] ... [-c|--config FILE]`:
/// clap_mangen's (0.2) leaves out what an option takes, so it is written here, options
/// in the order of `--help`, then the positional arguments.
fn synopsis(cmd: &Command) -> Roff {
    let mut line = vec![bold(format!("uvs {}", cmd.get_name()))];
    let mut args: Vec<&clap::Arg> = cmd.get_arguments().filter(|a| !a.is_hide_set()).collect();
    // As --help and OPTIONS list them (a flattened or changed argument keeps its place).
    args.sort_by_key(|a| (a.is_positional(), a.get_display_order()));
    for arg in args {
        let value = || {
            let names = arg
                .get_value_names()
                .map(|n| n.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|| arg.get_id().as_str().to_uppercase());
            italic(names)
        };
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let (open, close) = if arg.is_required_set() {
            ("", "")
        } else {
            ("[", "]")
        };
        line.push(roman(format!(" {open}")));
        match (arg.get_short(), arg.get_long()) {
            (None, None) => line.push(value()),
            (short, long) => {
                let flags: Vec<String> = short
                    .map(|s| format!("-{s}"))
                    .into_iter()
                    .chain(long.map(|l| format!("--{l}")))
                    .collect();
                line.push(bold(flags.join("|")));
                if takes_value {
                    line.push(roman(" "));
                    line.push(value());
                }
            }
        }
        line.push(roman(close));
    }
    // Unhyphenated and ragged: an option name broken across lines reads as two.
    let mut roff = Roff::new();
    roff.control("nh", []);
    roff.control("ad", ["l"]);
    roff.text(line);
    roff.control("ad", ["b"]);
    roff.control("hy", []);
    roff
}

/// FILES, ENVIRONMENT, SIGNALS, EXIT STATUS and SEE ALSO of uvs(8).
fn uvs_sections(roff: &mut Roff) {
    roff.control("SH", ["FILES"]);
    item(
        roff,
        "/etc/uvs/uvs.toml",
        "The configuration file the packaged service runs with (uvs run -c /etc/uvs/uvs.toml); see uvs.toml(5).",
    );
    item(
        roff,
        "/run/uvs/uvs.sock",
        "The control socket of a daemon run by root, unless --socket, [global] socket or UVS_SOCKET says otherwise.",
    );
    item(
        roff,
        "$XDG_RUNTIME_DIR/uvs/uvs.sock",
        "The control socket of a daemon run by another user; $TMPDIR/uvs-UID/uvs.sock (/tmp when TMPDIR is unset) where there is no runtime directory.",
    );
    roff.control("SH", ["ENVIRONMENT"]);
    item(
        roff,
        "UVS_SOCKET",
        "The control socket, for uvs run, uvs status and uvsadm, when --socket does not give one.",
    );
    item(
        roff,
        "UVS_LOG",
        "What is logged, on standard error: a level (error, warn, info, debug, trace; info by default) or per-module directives such as uvs=info,uvs::health=debug.",
    );
    item(
        roff,
        "XDG_RUNTIME_DIR, TMPDIR",
        "Where the default control socket of a user other than root lives (see FILES).",
    );
    item(
        roff,
        "UVS_HOSTS, UVS_SERVICES, UVS_RESOLV_CONF, UVS_NAMESERVERS",
        "For uvs import (and uvsadm): the hosts file (/etc/hosts), the services file (/etc/services), the resolver configuration (/etc/resolv.conf) and, comma-separated ip or ip:port, nameservers in place of resolv.conf's.",
    );
    item(
        roff,
        "SSL_CERT_FILE, SSL_CERT_DIR",
        "The certificate authorities an https check with verify_certificate = true trusts, in place of the system's.",
    );
    roff.control("SH", ["SIGNALS"]);
    item(
        roff,
        "SIGHUP",
        "Reload the configuration file (uvs run -c FILE): only what changed is applied; a file that does not read changes nothing. Without a file it is logged and ignored.",
    );
    item(
        roff,
        "SIGTERM, SIGINT",
        "Stop: listeners close, open connections may finish for drain_timeout (30 s by default), then the daemon exits. A second SIGTERM or SIGINT (Ctrl-C again) ends the drain at once, closing what is still open.",
    );
    roff.control("SH", ["EXIT STATUS"]);
    item(
        roff,
        "0",
        "Success; uvs run and uvs demo after a clean stop.",
    );
    item(
        roff,
        "1",
        "An error, said on standard error: a configuration with problems (uvs check), lines not taken (uvs import), an address that cannot be listened on, no daemon (uvs status).",
    );
    item(
        roff,
        "2",
        "A command line that does not parse; uvs drain and uvs undrain also when no daemon answers.",
    );
    item(
        roff,
        "255",
        "uvs drain, uvs undrain: the daemon refused, in ipvsadm's words (Service not defined, No such destination), with ipvsadm's status.",
    );
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "uvsadm(8), uvs.toml(5), ipvsadm(8), ldirectord(8), keepalived.conf(5)",
    )]);
}

fn uvsadm_page() -> anyhow::Result<Vec<u8>> {
    let (man, mut out, mut roff) = section_8(&mut adm_manual::command(), "UVSADM")?;
    // ipvsadm's usage forms, as uvsadm -h prints them.
    let usage = uvs::adm::session::usage("uvsadm");
    let forms: Vec<&str> = usage
        .lines()
        .skip_while(|l| !l.starts_with("Usage:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.trim().strip_prefix("uvsadm "))
        .collect();
    for (i, form) in forms.iter().enumerate() {
        if i > 0 {
            roff.control("br", []);
        }
        roff.text([bold("uvsadm"), roman(format!(" {form}"))]);
    }
    roff.control("br", []);
    roff.text([bold("uvsadm-save"), roman(" [-n]")]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "uvsadm is ipvsadm 1.31's command line for uvs(8): it takes the same commands and options, byte for byte, refuses what ipvsadm refuses with ipvsadm's messages, lists and saves the table in ipvsadm's formats, and sends each command to a running uvs daemon over its control socket. Scripts and tools written for ipvsadm, ldirectord(8) among them, work unchanged.",
    )]);
    roff.text([roman(
        "A command is one of the options under COMMANDS; a virtual service is given by -t, -u, --sctp-service or -f. Long options are never abbreviated; short ones may be clustered (-Ln) and take their value attached or separate (-w5, -w 5). uvs's own options are at the end.",
    )]);
    out.extend(roff.render().into_bytes());
    man.render_options_section(&mut out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["IPVSADM-SAVE"]);
    roff.text([roman(
        "Called by a name ending in -save (a link named ipvsadm-save or uvsadm-save to uvsadm), uvsadm is ipvsadm's save script: it prints the table as -S does, with -n numerically, and any other option prints the script's usage and exits 1.",
    )]);
    roff.control("SH", ["ENVIRONMENT"]);
    item(
        &mut roff,
        "UVS_SOCKET",
        "The daemon's control socket when --socket is not given.",
    );
    item(
        &mut roff,
        "UVS_HOSTS, UVS_SERVICES, UVS_RESOLV_CONF, UVS_NAMESERVERS",
        "The hosts file, services file, resolver configuration and nameservers used to read and print names (without -n).",
    );
    item(
        &mut roff,
        "POSIXLY_CORRECT, POSIX_ME_HARDER",
        "Options end at the first word that is not one, as popt does.",
    );
    roff.control("SH", ["EXIT STATUS"]);
    roff.text([roman("ipvsadm's, as uvsadm copies them:")]);
    item(&mut roff, "0", "Success.");
    item(
        &mut roff,
        "1",
        "A listing the daemon refused (no such service).",
    );
    item(
        &mut roff,
        "2",
        "A command ipvsadm refuses before sending it (its fail(2, ...)), with ipvsadm's message; or no daemon at the socket.",
    );
    item(
        &mut roff,
        "255",
        "A command the table refused (IPVS's message), a value popt cannot read, or no command: the \"Try\" line of ipvsadm.",
    );
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman("uvs(8), uvs.toml(5), ipvsadm(8), ldirectord(8)")]);
    out.extend(roff.render().into_bytes());
    Ok(out)
}

fn toml_page() -> String {
    let mut roff = Roff::new();
    roff.control("TH", ["UVS.TOML", "5", "", SOURCE, "File Formats"]);
    roff.control("SH", ["NAME"]);
    roff.text([roman(
        "uvs.toml - the configuration file of uvs, the userspace virtual server",
    )]);
    roff.control("SH", ["SYNOPSIS"]);
    roff.text([bold("/etc/uvs/uvs.toml")]);
    roff.control("SH", ["DESCRIPTION"]);
    roff.text([roman(
        "uvs run -c FILE loads the file before it opens its control socket and reloads it on SIGHUP (and, with autoreload, when it changes), applying only what changed; uvs check -c FILE reports every problem of a file with its line and column. uvs import writes such a file from an ldirectord.cf, an ipvsadm-save dump or a keepalived.conf.",
    )]);
    roff.text([roman(format!(
        "The file is TOML. Unknown keys are errors. {}",
        reference::DURATIONS
    ))]);
    roff.control("SH", ["EXAMPLE"]);
    roff.control("nf", []);
    for line in EXAMPLE.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    for section in reference::SECTIONS {
        // TOML names keep their case.
        roff.control("SH", [section.header]);
        roff.text([roman(section.about)]);
        for key in section.keys {
            roff.control("TP", []);
            roff.text([bold(key.name), roman(", "), italic(key.kind)]);
            let mut text = match key.default {
                "required" => format!("{} Required.", key.meaning),
                default => format!("{} Default: {default}.", key.meaning),
            };
            if !key.source.is_empty() {
                text.push_str(&format!(" As {}.", key.source));
            }
            roff.text([roman(text)]);
            roff.control("br", []);
            roff.text([roman(format!("Example: {} = {}", key.name, key.example))]);
        }
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([roman(
        "uvs(8), uvsadm(8), ipvsadm(8), ldirectord(8), keepalived.conf(5)",
    )]);
    roff.render()
}

const EXAMPLE: &str = r#"[global]
autoreload = true

[timeouts]
udp = "1m"

[[service]]
tcp = "127.0.0.1:8080"
scheduler = "wrr"
persistent = "10m"

[service.check]
type = "negotiate"
service = "http"
request = "/health"
receive = "OK"

[[service.server]]
address = "127.0.0.1:9001"
weight = 3

[[service.server]]
address = "127.0.0.1:9002""#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_example_is_a_configuration_uvs_check_takes() {
        let parsed = uvs::config::schema::parse(EXAMPLE, Path::new("uvs.toml.5"));
        assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn every_file_has_its_fixed_name() {
        let uvs = Command::new("uvs").subcommand(Command::new("run"));
        let names = |files: Vec<(PathBuf, Vec<u8>)>| -> Vec<String> {
            files
                .into_iter()
                .map(|(p, text)| {
                    assert!(!text.is_empty(), "{}", p.display());
                    p.display().to_string()
                })
                .collect()
        };
        assert_eq!(
            names(man_pages(uvs.clone()).expect("pages")),
            ["uvs.8", "uvsadm.8", "uvs.toml.5"]
        );
        assert_eq!(
            names(completions(uvs)),
            [
                "bash/uvs",
                "zsh/_uvs",
                "fish/uvs.fish",
                "bash/uvsadm",
                "zsh/_uvsadm",
                "fish/uvsadm.fish"
            ]
        );
    }
}
