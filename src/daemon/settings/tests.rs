use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::config::{Config, render::render, schema};

/// The `[global]` of a file made of `lines`.
fn global(lines: &str) -> Global {
    let text = format!("[global]\n{lines}\n");
    match schema::parse(&text, Path::new("test.toml")) {
        Ok(config) => config.global,
        Err(problems) => panic!("{text}: {problems}"),
    }
}

fn example(s: &Setting) -> String {
    format!("{} = {}", s.key, s.example)
}

/// Drift: a field added to `Global` and not to [`SETTINGS`] fails here. The fields are
/// read from `Global`'s own Debug form, so this list cannot go stale.
#[test]
fn every_global_field_is_a_listed_setting_and_every_listed_one_a_field() {
    let shown = format!("{:#?}", Global::default());
    let fields: BTreeSet<&str> = shown
        .lines()
        .filter_map(|l| l.strip_prefix("    "))
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name))
        .collect();
    assert!(fields.contains("expire_quiescent_template"), "{shown}");
    let listed: BTreeSet<&str> = SETTINGS.iter().map(|s| s.field).collect();
    assert_eq!(fields, listed, "Global's fields and SETTINGS differ");
    let keys: BTreeSet<&str> = SETTINGS.iter().map(|s| s.key).collect();
    assert_eq!(keys.len(), SETTINGS.len(), "a key listed twice");
}

/// Drift: every listed setting is read by the schema, written back by render, resolved
/// into [`Settings`] (the daemon's own) and shown by [`Settings::value`], each under its
/// own key and no other.
#[test]
fn every_setting_reads_renders_back_and_resolves_under_its_own_key() {
    let defaults = Settings::resolve(None, &Overrides::default());
    for s in SETTINGS {
        let g = global(&example(s));
        assert_ne!(g, Global::default(), "{} is not read", s.key);
        let config = Config {
            global: g.clone(),
            ..Config::default()
        };
        let text = render(&config);
        let again = schema::parse(&text, Path::new("rendered.toml"))
            .unwrap_or_else(|p| panic!("{text}: {p}"));
        assert_eq!(again.global, g, "{} does not render back:\n{text}", s.key);

        let resolved = Settings::resolve(Some(&g), &Overrides::default());
        for other in SETTINGS {
            let (before, after) = (defaults.value(other.key), resolved.value(other.key));
            if s.applies == Applies::WithTheServices {
                assert_eq!(resolved, defaults, "{}", s.key);
                assert_eq!(resolved.value(s.key), None, "{} is the services'", s.key);
            } else if other.key == s.key {
                assert!(after.is_some(), "{} is not shown", s.key);
                assert_ne!(before, after, "{} is not resolved", s.key);
            } else {
                assert_eq!(before, after, "{} changed {}", s.key, other.key);
            }
        }
    }
}

#[test]
fn the_defaults_are_ipvs_and_ldirectords() {
    let s = Settings::resolve(None, &Overrides::default());
    assert_eq!(s.mode, Mode::Auto);
    assert!(s.cleanstop);
    assert!(!s.expire_quiescent_template);
    assert!(!s.autoreload);
    assert_eq!(s.retries, 1);
    assert_eq!(s.drain_timeout, Duration::from_secs(30));
    assert_eq!(s.connect_timeout, Duration::from_secs(5));
    assert_eq!(s.threads, None);
    assert_eq!(s.metrics, Some("127.0.0.1:9280".parse().unwrap()));
}

#[test]
fn the_file_wins_over_the_defaults_and_the_command_line_over_the_file() {
    let file =
        global("threads = 2\nretries = 3\nexpire_quiescent_template = false\ncleanstop = true");
    let cli = Overrides {
        threads: Some(4),
        expire_quiescent_template: Some(true),
        cleanstop: Some(false),
        ..Overrides::default()
    };
    let s = Settings::resolve(Some(&file), &cli);
    assert_eq!(s.threads, Some(4));
    assert!(s.expire_quiescent_template);
    assert!(!s.cleanstop);
    // Not on the command line: the file's.
    assert_eq!(s.retries, 3);
    // In neither: the default.
    assert_eq!(s.udp_flows_per_source, None);
    assert_eq!(s.max_templates, crate::persist::DEFAULT_MAX_TEMPLATES);
}

#[test]
fn a_switch_not_given_leaves_the_file_its_say() {
    let file = global("expire_quiescent_template = true\ncleanstop = false");
    let s = Settings::resolve(Some(&file), &Overrides::default());
    assert!(s.expire_quiescent_template);
    assert!(!s.cleanstop);
}

/// What a reload from `before` to `after` does, under `cli`.
fn reload(before: &str, after: &str, cli: &Overrides) -> Vec<(&'static str, Change)> {
    let (before, after) = (global(before), global(after));
    let started = Settings::resolve(Some(&before), cli);
    changes(&started, &before, &after, cli)
        .into_iter()
        .map(|(s, c)| (s.key, c))
        .collect()
}

#[test]
fn on_reload_the_command_line_still_wins() {
    let cli = Overrides {
        expire_quiescent_template: Some(true),
        threads: Some(4),
        ..Overrides::default()
    };
    let found = reload(
        "expire_quiescent_template = true\nthreads = 2",
        "expire_quiescent_template = false\nthreads = 8",
        &cli,
    );
    assert_eq!(
        found,
        [
            ("threads", Change::CommandLineWins),
            ("expire_quiescent_template", Change::CommandLineWins),
        ]
    );
    let after = Settings::resolve(Some(&global("expire_quiescent_template = false")), &cli);
    assert!(after.expire_quiescent_template);
}

#[test]
fn a_reload_names_the_next_start_settings_it_changed() {
    let found = reload(
        "cleanstop = true\nthreads = 2",
        "cleanstop = false\nthreads = 3\nretries = 1\nmax_templates = 9",
        &Overrides::default(),
    );
    // retries = 1 is the default: no change.
    assert_eq!(
        found,
        [
            ("cleanstop", Change::AtNextStart),
            ("threads", Change::AtNextStart),
            ("max_templates", Change::AtNextStart),
        ]
    );
}

#[test]
fn a_reload_applies_the_live_settings_it_changed_and_not_the_services_defaults() {
    let found = reload(
        "",
        "expire_quiescent_template = true\nautoreload = true\nquiescent = false\nmaintenance_dir = \"/x\"",
        &Overrides::default(),
    );
    assert_eq!(
        found,
        [
            ("autoreload", Change::Applied),
            ("expire_quiescent_template", Change::Applied),
        ]
    );
}

/// A next-start setting stays named on every reload until the daemon restarts; a live
/// one is said once, when it changes.
#[test]
fn next_start_settings_are_compared_with_the_start_and_live_ones_with_the_last_file() {
    let cli = Overrides::default();
    let (start, first, second) = (
        global("threads = 2"),
        global("threads = 3\nexpire_quiescent_template = true"),
        global("threads = 3\nexpire_quiescent_template = true\nretries = 1"),
    );
    let started = Settings::resolve(Some(&start), &cli);
    let found: Vec<_> = changes(&started, &first, &second, &cli)
        .into_iter()
        .map(|(s, c)| (s.key, c))
        .collect();
    assert_eq!(found, [("threads", Change::AtNextStart)]);
}

#[test]
fn a_reload_that_puts_back_the_start_value_changes_nothing() {
    let found = reload(
        "threads = 2",
        "threads = 2\n# a comment",
        &Overrides::default(),
    );
    assert_eq!(found, []);
}
