//! `uvs generate man DIR` and `uvs generate completions DIR`, run as the Debian package
//! runs them: the files are where they must be, each page names every command, option
//! and configuration key there is (the commands and options read from the programs'
//! own `--help`, and from uvsadm's parser's option table; the keys from the
//! configuration reference, which its own tests hold to the schema), the pages render
//! without a warning (groff), and the completion scripts are valid
//! shell (bash, zsh, fish; those three checks need their program at build time).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const UVS: &str = env!("CARGO_BIN_EXE_uvs");

fn uvs(args: &[&str]) -> Output {
    Command::new(UVS).args(args).output().expect("run uvs")
}

/// Runs `uvs generate WHAT` into a new directory (below one that does not exist yet,
/// so that making it is tested too) and returns it.
fn generated(what: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let dir = tmp.path().join("not/yet");
    let out = uvs(&["generate", what, dir.to_str().expect("UTF-8")]);
    assert!(
        out.status.success(),
        "uvs generate {what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (tmp, dir)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The roff source as words: escaped hyphens plain, font changes gone.
fn plain(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\*(Aq", "'")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
        .replace("\\fP", "")
}

/// The names listed under `Commands:` in `uvs --help`.
fn subcommands() -> Vec<String> {
    let help = String::from_utf8(uvs(&["--help"]).stdout).expect("UTF-8");
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The options (`-c`, `--config`) that `uvs ARGS --help` lists.
fn options_of(args: &[&str]) -> Vec<String> {
    let mut with_help = args.to_vec();
    with_help.push("--help");
    let help = String::from_utf8(uvs(&with_help).stdout).expect("UTF-8");
    help.lines()
        .skip_while(|l| !l.starts_with("Options:"))
        .skip(1)
        .filter(|l| l.trim_start().starts_with('-'))
        .flat_map(|l| {
            let head = l.trim_start().split("  ").next().unwrap_or("").to_string();
            head.split([',', ' '])
                .filter(|w| w.starts_with('-'))
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn man_writes_the_three_pages_where_the_package_expects_them() {
    let (_tmp, dir) = generated("man");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("the directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["uvs.8", "uvs.toml.5", "uvsadm.8"]);
}

#[test]
fn uvs_8_names_every_command_and_option_and_the_sections_a_man_page_needs() {
    let (_tmp, dir) = generated("man");
    let page = plain(&read(&dir.join("uvs.8")));
    let commands = subcommands();
    assert!(commands.len() >= 6, "{commands:?}");
    assert!(options_of(&["run"]).contains(&"--config".to_string()));
    for command in &commands {
        assert!(page.contains(&format!("uvs {command}")), "uvs {command}");
        for option in options_of(&[command]) {
            assert!(
                page.contains(&option),
                "uvs {command} {option} is not in uvs(8)"
            );
        }
    }
    for option in options_of(&[]) {
        assert!(page.contains(&option), "uvs {option}");
    }
    for needed in [
        ".TH UVS 8",
        ".SH FILES",
        "/etc/uvs/uvs.toml",
        "/run/uvs/uvs.sock",
        ".SH ENVIRONMENT",
        "UVS_SOCKET",
        "UVS_LOG",
        ".SH SIGNALS",
        "SIGHUP",
        "SIGTERM",
        "A second SIGTERM or SIGINT",
        ".SH \"EXIT STATUS\"",
        ".SH \"SEE ALSO\"",
        "uvsadm(8), uvs.toml(5), ipvsadm(8), ldirectord(8), keepalived.conf(5)",
    ] {
        assert!(page.contains(needed), "uvs(8) lacks {needed:?}");
    }
}

#[test]
fn uvs_8_synopses_show_what_each_option_takes() {
    let (_tmp, dir) = generated("man");
    let page = plain(&read(&dir.join("uvs.8")));
    for needed in [
        "uvs run [--socket PATH] [--forwarding HOW] [--drain-timeout SECONDS]",
        "[--metrics ADDR:PORT|off]",
        "[--mode MODE]",
        "[--expire-quiescent-template]",
        "[-c|--config FILE] [-h|--help]",
        "uvs demo [--socket PATH] [--forwarding HOW]",
        "uvs check -c|--config FILE [-h|--help]",
        "uvs import [-h|--help] FORMAT FILE",
        "uvs generate [-h|--help] WHAT DIR",
        "Run a demonstration: a VIP on 127.0.0.1:8080 balancing two built-in backends",
    ] {
        assert!(page.contains(needed), "uvs(8) lacks {needed:?}");
    }
}

#[test]
fn help_texts_are_plain_text_without_markup() {
    let mut commands: Vec<Vec<&str>> = vec![vec![]];
    let names = subcommands();
    // `uvs help --help` is clap's, and asks which command.
    commands.extend(
        names
            .iter()
            .filter(|n| *n != "help")
            .map(|n| vec![n.as_str()]),
    );
    for mut args in commands {
        args.push("--help");
        let help = String::from_utf8(uvs(&args).stdout).expect("UTF-8");
        assert!(help.len() > 50, "uvs {args:?}");
        for markup in ["`", "**", "]("] {
            assert!(
                !help.contains(markup),
                "uvs {args:?} shows {markup:?}:\n{help}"
            );
        }
    }
}

#[test]
fn uvsadm_8_names_every_option_the_parser_takes() {
    let (_tmp, dir) = generated("man");
    let page = plain(&read(&dir.join("uvsadm.8")));
    let mut count = 0;
    for def in uvs::adm::cmdline::options() {
        assert!(
            page.contains(&format!("--{}", def.long)),
            "--{} is not in uvsadm(8)",
            def.long
        );
        if let Some(short) = def.short {
            assert!(
                page.contains(&format!("-{short}")),
                "-{short} is not in uvsadm(8)"
            );
        }
        count += 1;
    }
    assert!(count > 60, "the parser's table has {count} options");
    for needed in [
        ".TH UVSADM 8",
        "--socket",
        "ipvsadm-save",
        ".SH COMMANDS",
        ".SH \"EXIT STATUS\"",
        "UVS_SOCKET",
    ] {
        assert!(page.contains(needed), "uvsadm(8) lacks {needed:?}");
    }
}

#[test]
fn uvs_toml_5_names_every_section_and_key_of_the_reference() {
    let (_tmp, dir) = generated("man");
    let page = plain(&read(&dir.join("uvs.toml.5")));
    assert!(page.contains(".TH UVS.TOML 5"));
    for section in uvs::config::reference::SECTIONS {
        assert!(page.contains(section.header), "{}", section.header);
        for key in section.keys {
            assert!(
                page.contains(&format!("{} = {}", key.name, key.example)),
                "{} {} is not in uvs.toml(5)",
                section.header,
                key.name
            );
        }
    }
}

/// Each page renders with every warning on and none given (groff is what man-db's
/// `man` formats with).
#[test]
#[cfg_attr(
    not(uvs_has_groff),
    ignore = "groff not found when uvs was built: apt-get install groff-base, then touch build.rs"
)]
fn the_pages_render_without_warnings() {
    #[cfg(uvs_has_groff)]
    {
        let (_tmp, dir) = generated("man");
        for page in ["uvs.8", "uvsadm.8", "uvs.toml.5"] {
            let out = Command::new(env!("UVS_GROFF_PATH"))
                .args(["-man", "-Tutf8", "-ww"])
                .arg(dir.join(page))
                .output()
                .expect("groff");
            assert!(out.status.success(), "{page}");
            assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{page}");
            assert!(out.stdout.len() > 1000, "{page} rendered to almost nothing");
        }
    }
}

#[test]
fn completions_are_valid_bash_and_name_every_option() {
    let (_tmp, dir) = generated("completions");
    for name in ["uvs", "uvsadm"] {
        let script = dir.join("bash").join(name);
        let check = Command::new("bash")
            .arg("-n")
            .arg(&script)
            .output()
            .expect("bash");
        assert!(
            check.status.success(),
            "bash -n {}: {}",
            script.display(),
            String::from_utf8_lossy(&check.stderr)
        );
        let sourced = Command::new("bash")
            .arg("-c")
            .arg(format!("source \"$1\" && complete -p {name}"))
            .arg("bash")
            .arg(&script)
            .output()
            .expect("bash");
        assert!(sourced.status.success(), "complete -p {name}");
        assert!(String::from_utf8_lossy(&sourced.stdout).contains(&format!(" {name}\n")));
    }
    let uvsadm = read(&dir.join("bash/uvsadm"));
    let zsh = read(&dir.join("zsh/_uvsadm"));
    let fish = read(&dir.join("fish/uvsadm.fish"));
    for def in uvs::adm::cmdline::options() {
        let long = def.long;
        assert!(uvsadm.contains(&format!("--{long}")), "bash lacks --{long}");
        assert!(zsh.contains(&format!("--{long}")), "zsh lacks --{long}");
        assert!(fish.contains(&format!("-l {long}")), "fish lacks --{long}");
        if let Some(s) = def.short {
            assert!(uvsadm.contains(&format!("-{s}")), "bash lacks -{s}");
            assert!(fish.contains(&format!("-s {s}")), "fish lacks -{s}");
        }
    }
    assert!(uvsadm.contains("--socket"));
    let uvs_bash = read(&dir.join("bash/uvs"));
    for command in subcommands() {
        assert!(
            uvs_bash.contains(&command),
            "bash completion lacks {command}"
        );
    }
}

/// A shell's own syntax check (`zsh -n`, `fish --no-execute`) of both scripts.
#[allow(dead_code)] // unused where neither shell was found at build time
fn completions_parse(shell: &str, flag: &str, files: [&str; 2]) {
    let (_tmp, dir) = generated("completions");
    for file in files {
        let out = Command::new(shell)
            .arg(flag)
            .arg(dir.join(file))
            .output()
            .expect(shell);
        assert!(
            out.status.success(),
            "{shell} {flag} {file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[cfg_attr(
    not(uvs_has_zsh),
    ignore = "zsh not found when uvs was built: apt-get install zsh, then touch build.rs"
)]
fn zsh_completions_parse() {
    #[cfg(uvs_has_zsh)]
    completions_parse(env!("UVS_ZSH_PATH"), "-n", ["zsh/_uvs", "zsh/_uvsadm"]);
}

#[test]
#[cfg_attr(
    not(uvs_has_fish),
    ignore = "fish not found when uvs was built: apt-get install fish, then touch build.rs"
)]
fn fish_completions_parse() {
    #[cfg(uvs_has_fish)]
    completions_parse(
        env!("UVS_FISH_PATH"),
        "--no-execute",
        ["fish/uvs.fish", "fish/uvsadm.fish"],
    );
}

#[test]
fn a_directory_that_cannot_be_made_is_a_clear_error_and_exit_1() {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    // A file where the directory should be: refused even for root.
    let file = tmp.path().join("file");
    std::fs::write(&file, "").expect("write");
    let not_a_dir = format!("{} is not a directory", file.display());
    for (what, dir, said) in [
        ("man", file.clone(), format!("uvs: {not_a_dir}\n")),
        (
            "completions",
            file.join("below"),
            format!(
                "uvs: cannot create the directory {}: {not_a_dir}\n",
                file.join("below/bash").display()
            ),
        ),
    ] {
        let out = uvs(&["generate", what, dir.to_str().expect("UTF-8")]);
        assert_eq!(out.status.code(), Some(1), "{what}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err, said, "{what}");
    }
}

/// What bash's completion function for uvs offers after `words` (the last one being
/// the word completed), run as bash runs it on TAB.
fn bash_offers(script: &Path, words: &[&str]) -> Vec<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1));
               _uvs uvs "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}" 2>/dev/null;
               printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg("bash")
        .arg(script)
        .args(words)
        .current_dir(script.parent().expect("a directory"))
        .output()
        .expect("bash");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_option_values_with_their_names_and_never_file_names() {
    let (_tmp, dir) = generated("completions");
    let script = dir.join("bash/uvs");
    // Run in bash/, where the files are `uvs` and `uvsadm`: a file-name completion
    // would offer them.
    for (words, names) in [
        (
            &["uvs", "run", "--mode", ""][..],
            &["auto", "userspace", "kernel"][..],
        ),
        (
            &["uvs", "demo", "--mode", ""],
            &["auto", "userspace", "kernel"],
        ),
        (
            &["uvs", "run", "--forwarding", ""],
            &["auto", "splice", "copy"],
        ),
        (&["uvs", "run", "--mode", "u"], &["userspace"]),
    ] {
        assert_eq!(bash_offers(&script, words), names, "{words:?}");
    }
    for option in [
        "--metrics",
        "--threads",
        "--drain-timeout",
        "--connect-timeout",
    ] {
        let offered = bash_offers(&script, &["uvs", "run", option, ""]);
        assert!(
            !offered.iter().any(|w| w.starts_with("uvs")),
            "{option} offers file names: {offered:?}"
        );
    }
    // Paths are still completed as paths.
    assert_eq!(
        bash_offers(&script, &["uvs", "run", "-c", "uvsa"]),
        ["uvsadm"]
    );
}
