//! Every metric family uvs exposes, by name, in one place (as sozu's
//! `lib/src/metrics/names.rs`): `text` writes each family under one of these constants,
//! and the tests check this list against the exposition and the README's metrics list.
//! The `node_ipvs_*` names are node_exporter's (collector/ipvs_linux.go), exactly, so
//! that dashboards built for kernel IPVS work unchanged: never rename them.
//!
//! # When adding a metric
//!
//! 1. **Name**: a constant here, in the order the family is written (the order of
//!    [`ALL`] is the order of the exposition). `uvs_` prefix; base units (`_seconds`,
//!    `_bytes`); `_total` for counters, never for gauges; no `_bucket`, `_sum` or
//!    `_count` (the histogram writer adds them).
//! 2. **HELP, TYPE, labels**: beside the samples in `text.rs`, in the walk that owns the
//!    family (`node_series`, `service_series`, `backend_series`, `latency_series`,
//!    `health_series`, `daemon_series` and its helpers): one sentence of HELP ending in a
//!    full stop; `Kind::Counter` only for values that never go backwards (read the
//!    table's monotonic counters, not what `-Z` zeroes); labels from `service_labels` /
//!    `server_labels` for per-service and per-server series, a short fixed set of
//!    values for a `reason`-like label. A value the snapshot does not hold comes in
//!    through `text::Sources`, filled by `exporter::render`.
//! 3. **Where it is rendered**: in that walk, with `format::family` (or `Header` for a
//!    histogram); a family with no samples writes nothing, not even its header.
//! 4. **The README**: its name, in full and in backquotes, in the list under
//!    `## Metrics` (with its label values, if any). `names_are_those_of_the_readme`
//!    fails until it is there.
//! 5. **The tests**: give it a value in `text/tests.rs`' table and its lines in
//!    `text/sample.prom` (byte for byte; `families_are_written_in_the_order_of_the_names`
//!    fails until the family is rendered there); `tests/metrics.rs`'
//!    `promtool_accepts_a_scrape_taken_under_load` lints a real scrape with
//!    `promtool check metrics` (CI runs it, `.ci/run` installs promtool).

/// Declares each name as a constant and lists them all in [`ALL`], in order, so that a
/// name is written exactly once.
macro_rules! names {
    ($( $(#[$doc:meta])* $name:ident = $value:literal; )*) => {
        $( $(#[$doc])* pub const $name: &str = $value; )*

        /// Every family name above, in the order the exposition writes them.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

names! {
    // node_exporter's IPVS collector: the director's totals.
    NODE_CONNECTIONS_TOTAL = "node_ipvs_connections_total";
    NODE_INCOMING_PACKETS_TOTAL = "node_ipvs_incoming_packets_total";
    NODE_OUTGOING_PACKETS_TOTAL = "node_ipvs_outgoing_packets_total";
    NODE_INCOMING_BYTES_TOTAL = "node_ipvs_incoming_bytes_total";
    NODE_OUTGOING_BYTES_TOTAL = "node_ipvs_outgoing_bytes_total";
    // node_exporter's IPVS collector: per backend (real server).
    NODE_BACKEND_CONNECTIONS_ACTIVE = "node_ipvs_backend_connections_active";
    NODE_BACKEND_CONNECTIONS_INACTIVE = "node_ipvs_backend_connections_inactive";
    NODE_BACKEND_WEIGHT = "node_ipvs_backend_weight";

    // Per virtual service: IPVS's five counters, then uvs's own.
    SERVICE_CONNECTIONS_TOTAL = "uvs_service_connections_total";
    SERVICE_INCOMING_PACKETS_TOTAL = "uvs_service_incoming_packets_total";
    SERVICE_OUTGOING_PACKETS_TOTAL = "uvs_service_outgoing_packets_total";
    SERVICE_INCOMING_BYTES_TOTAL = "uvs_service_incoming_bytes_total";
    SERVICE_OUTGOING_BYTES_TOTAL = "uvs_service_outgoing_bytes_total";
    SERVICE_CONNECTIONS_RETRIED_TOTAL = "uvs_service_connections_retried_total";
    SERVICE_UNAVAILABLE_TOTAL = "uvs_service_unavailable_total";
    SERVICE_UDP_FLOWS_DROPPED_TOTAL = "uvs_service_udp_flows_dropped_total";
    // Per virtual service with source addresses or ports (`table::source`).
    SERVICE_SOURCE_PORT_EXHAUSTED_TOTAL = "uvs_service_source_port_exhausted_total";
    SERVICE_SOURCE_ADDRESS_UNAVAILABLE_TOTAL = "uvs_service_source_address_unavailable_total";
    // Per virtual service with connection limits: its queue (`table::queue`).
    SERVICE_QUEUE_LENGTH = "uvs_service_queue_length";
    SERVICE_QUEUE_MAX_LENGTH = "uvs_service_queue_max_length";
    SERVICE_QUEUED_TOTAL = "uvs_service_queued_total";
    SERVICE_QUEUE_SERVED_TOTAL = "uvs_service_queue_served_total";
    SERVICE_QUEUE_TIMEOUTS_TOTAL = "uvs_service_queue_timeouts_total";
    SERVICE_QUEUE_FULL_TOTAL = "uvs_service_queue_full_total";
    SERVICE_QUEUE_WAIT_SECONDS_TOTAL = "uvs_service_queue_wait_seconds_total";
    // Per virtual service with access lists, limits or PROXY headers taken, or any
    // global ones (`table::admission`).
    SERVICE_REFUSED_ACCESS_LIST_TOTAL = "uvs_service_refused_access_list_total";
    SERVICE_REFUSED_LIMITS_TOTAL = "uvs_service_refused_limits_total";
    SERVICE_PROXY_HEADERS_REJECTED_TOTAL = "uvs_service_proxy_headers_rejected_total";
    // Per virtual service with per-client limits (`table::sources`).
    SERVICE_LIMITS_SOURCES = "uvs_service_limits_sources";
    // Per access-list rule that refused any, of a service's list and of the global one
    // (`table::access`).
    ACCESS_RULE_REFUSED_TOTAL = "uvs_access_rule_refused_total";
    GLOBAL_ACCESS_RULE_REFUSED_TOTAL = "uvs_global_access_rule_refused_total";

    // Per real server: IPVS's five counters, its connections and weight, connects.
    BACKEND_CONNECTIONS_TOTAL = "uvs_backend_connections_total";
    BACKEND_INCOMING_PACKETS_TOTAL = "uvs_backend_incoming_packets_total";
    BACKEND_OUTGOING_PACKETS_TOTAL = "uvs_backend_outgoing_packets_total";
    BACKEND_INCOMING_BYTES_TOTAL = "uvs_backend_incoming_bytes_total";
    BACKEND_OUTGOING_BYTES_TOTAL = "uvs_backend_outgoing_bytes_total";
    BACKEND_CONNECTIONS_ACTIVE = "uvs_backend_connections_active";
    BACKEND_CONNECTIONS_INACTIVE = "uvs_backend_connections_inactive";
    BACKEND_CONNECTIONS_PERSISTENT = "uvs_backend_connections_persistent";
    BACKEND_WEIGHT = "uvs_backend_weight";
    BACKEND_CONNECTIONS_OPEN = "uvs_backend_connections_open";
    BACKEND_DRAINING = "uvs_backend_draining";
    /// Only for servers with a slow-start window.
    BACKEND_SLOW_START_RATIO = "uvs_backend_slow_start_ratio";
    BACKEND_MAX_CONNECTIONS = "uvs_backend_max_connections";
    BACKEND_CONNECT_FAILURES_TOTAL = "uvs_backend_connect_failures_total";
    /// A histogram: its samples are this name with `_bucket`, `_sum` and `_count`.
    BACKEND_CONNECT_DURATION_SECONDS = "uvs_backend_connect_duration_seconds";
    // Per real server of a service with passive ejection.
    BACKEND_EJECTED = "uvs_backend_ejected";
    BACKEND_EJECTIONS_TOTAL = "uvs_backend_ejections_total";
    BACKEND_CONSECUTIVE_FAILURES = "uvs_backend_consecutive_failures";

    // Per checked real server: what the health checks know.
    BACKEND_UP = "uvs_backend_up";
    BACKEND_CHECK_FAILURES = "uvs_backend_check_failures";
    BACKEND_CHECK_DURATION_SECONDS = "uvs_backend_check_duration_seconds";
    BACKEND_CHECK_PENDING = "uvs_backend_check_pending";
    BACKEND_CHECK_SUSPENDED = "uvs_backend_check_suspended";
    // Per service with a quorum (keepalived's `quorum`) or quorum commands.
    SERVICE_QUORUM_UP = "uvs_service_quorum_up";
    SERVICE_QUORUM_LIVE_WEIGHT = "uvs_service_quorum_live_weight";

    // The daemon: UDP flows, persistence templates, TCP connections.
    UDP_FLOWS = "uvs_udp_flows";
    UDP_FLOWS_MAX = "uvs_udp_flows_max";
    UDP_FLOWS_DROPPED_TOTAL = "uvs_udp_flows_dropped_total";
    PERSISTENCE_TEMPLATES = "uvs_persistence_templates";
    PERSISTENCE_TEMPLATES_MAX = "uvs_persistence_templates_max";
    PERSISTENCE_TEMPLATES_EVICTED_TOTAL = "uvs_persistence_templates_evicted_total";
    PERSISTENCE_TEMPLATES_NOT_MADE_TOTAL = "uvs_persistence_templates_not_made_total";
    CONNECTIONS_OPEN = "uvs_connections_open";
    // UDP admission.
    UDP_FLOWS_REFUSED_TOTAL = "uvs_udp_flows_refused_total";
    UDP_FLOWS_EVICTED_TOTAL = "uvs_udp_flows_evicted_total";
    UDP_FLOWS_UNANSWERED_EXPIRED_TOTAL = "uvs_udp_flows_unanswered_expired_total";
    // The global per-client limits (only when `[global] limits` is set).
    LIMITS_SOURCES = "uvs_limits_sources";
    LIMITS_REFUSED_TOTAL = "uvs_limits_refused_total";
    // The descriptor budget (userspace mode only).
    OPEN_FILES_LIMIT = "uvs_open_files_limit";
    DESCRIPTORS_RESERVED = "uvs_descriptors_reserved";
    DATA_PLANE_DESCRIPTORS_MAX = "uvs_data_plane_descriptors_max";
    DATA_PLANE_DESCRIPTORS = "uvs_data_plane_descriptors";
    /// Only with `--max-connections`.
    CONNECTIONS_MAX = "uvs_connections_max";
    ACCEPT_PAUSES_TOTAL = "uvs_accept_pauses_total";
    // The configuration file (only when the daemon runs from one).
    CONFIG_LAST_RELOAD_SUCCESSFUL = "uvs_config_last_reload_successful";
    CONFIG_LAST_RELOAD_SUCCESS_TIMESTAMP_SECONDS =
        "uvs_config_last_reload_success_timestamp_seconds";
    CONFIG_RELOADS_TOTAL = "uvs_config_reloads_total";
    // The connection-sync daemons: whether each runs (both modes), what uvs's own
    // did (userspace mode).
    SYNC_DAEMON_UP = "uvs_sync_daemon_up";
    SYNC_SENT_DATAGRAMS_TOTAL = "uvs_sync_sent_datagrams_total";
    SYNC_SENT_ENTRIES_TOTAL = "uvs_sync_sent_entries_total";
    SYNC_SEND_ERRORS_TOTAL = "uvs_sync_send_errors_total";
    SYNC_RECEIVED_DATAGRAMS_TOTAL = "uvs_sync_received_datagrams_total";
    SYNC_RECEIVED_ENTRIES_TOTAL = "uvs_sync_received_entries_total";
    SYNC_CONNECTIONS = "uvs_sync_connections";
    SYNC_DROPPED_TOTAL = "uvs_sync_dropped_total";
    // The metrics endpoint itself, and the build.
    METRICS_CLIENTS_DROPPED_TOTAL = "uvs_metrics_clients_dropped_total";
    BUILD_INFO = "uvs_build_info";
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::ALL;

    /// The metric names of the README's list under `## Metrics`: every backquoted
    /// `node_ipvs_*` or `uvs_*` name of its bulleted list, without label sets.
    fn readme_names(readme: &str) -> BTreeSet<&str> {
        let section = readme
            .split("\n## ")
            .find(|s| s.starts_with("Metrics\n"))
            .expect("a `## Metrics` section in README.md");
        // The list: from its first item to the blank line that ends it.
        let list_start = section.find("\n- ").expect("a list under `## Metrics`");
        let list = &section[list_start + 1..];
        let list = &list[..list.find("\n\n").unwrap_or(list.len())];
        list.split('`')
            .skip(1)
            .step_by(2)
            .map(|quoted| &quoted[..quoted.find('{').unwrap_or(quoted.len())])
            .filter(|name| name.starts_with("uvs_") || name.starts_with("node_ipvs_"))
            .collect()
    }

    #[test]
    fn names_are_those_of_the_readme() {
        let readme = readme_names(include_str!("../../README.md"));
        let names: BTreeSet<&str> = ALL.iter().copied().collect();
        let missing: Vec<_> = names.difference(&readme).collect();
        let unknown: Vec<_> = readme.difference(&names).collect();
        assert!(
            missing.is_empty() && unknown.is_empty(),
            "not in the README's metrics list: {missing:?}; \
             in the README's list but not in names.rs: {unknown:?}"
        );
    }

    #[test]
    fn names_are_written_once_and_well_formed() {
        let unique: BTreeSet<&str> = ALL.iter().copied().collect();
        assert_eq!(unique.len(), ALL.len(), "a name declared twice");
        for name in ALL {
            assert!(
                name.starts_with("uvs_") || name.starts_with("node_ipvs_"),
                "{name}"
            );
            assert!(
                name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{name}"
            );
            for suffix in ["_bucket", "_sum", "_count"] {
                assert!(!name.ends_with(suffix), "{name}: reserved suffix");
            }
        }
    }

    #[test]
    fn the_readme_reader_finds_full_names_only() {
        let readme = "# x\n\n## Metrics\n\nText `uvs_not_listed`.\n\n\
                      - `uvs_a`, `uvs_b{reason=\"x|y\"}` and\n  `node_ipvs_c`, `_d`, `other`\n\
                      - `uvs_e`\n\nAfter `uvs_f`.\n\n## Next\n\n- `uvs_g`\n";
        let names: Vec<_> = readme_names(readme).into_iter().collect();
        assert_eq!(names, ["node_ipvs_c", "uvs_a", "uvs_b", "uvs_e"]);
    }
}
