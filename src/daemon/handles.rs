//! The narrow handles the daemon gives the control server
//! ([`crate::control::server::Daemon`])
//! and the metrics exporter ([`exporter::Source`]): both read the [`Reporter`], so that
//! neither imports the daemon's parts. The kernel-or-userspace choice of `-L -c` is
//! made here, where the mode is known.

use crate::control::protocol::Status;
use crate::control::server;
use crate::exporter::{self, BackendHealth, ConfigReloads};
use crate::rate_limit::RateLimit;
use crate::table::{ConnEntry, TableHandle};

use super::report::{Mode, Reporter};

impl server::Daemon for Reporter {
    fn table(&self) -> &TableHandle {
        &self.director().table
    }

    fn connections(&self) -> Vec<ConnEntry> {
        match self.mode() {
            Mode::Userspace => self.director().connections(),
            // The kernel's own table, as ipvsadm reads it.
            Mode::Kernel => crate::kernel::connections::read().unwrap_or_else(|e| {
                static UNREADABLE: RateLimit = RateLimit::new();
                UNREADABLE.warn(|suppressed| {
                    tracing::warn!(error = %e, suppressed, "cannot read the kernel's connections");
                });
                Vec::new()
            }),
        }
    }

    fn status(&self) -> Status {
        let services = self.director().table.snapshot().entries();
        self.report().status(services)
    }

    fn max_clients(&self) -> usize {
        self.director().descriptors.reserve().control_clients
    }
}

impl exporter::Source for Reporter {
    fn table(&self) -> &TableHandle {
        &self.director().table
    }

    fn state(&self) -> exporter::State {
        let report = self.report();
        let plane = report.plane;
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        exporter::State {
            health: report
                .health
                .iter()
                .map(|h| BackendHealth {
                    service: h.service,
                    server: h.server,
                    up: h.up,
                    failures: h.failures,
                    last_duration_ms: h.last_duration_ms,
                })
                .collect(),
            udp_flows: count(plane.udp_flows),
            udp_flows_max: count(plane.max_udp_flows),
            udp_flows_dropped: plane.udp_flows_dropped,
            persistence_templates: count(plane.templates.count),
            templates_max: count(plane.templates.max),
            templates_evicted: plane.templates.evicted,
            templates_not_made: plane.templates.not_made,
            connections_open: count(plane.live_connections),
            descriptors: (report.mode.mode == Mode::Userspace).then_some(plane.descriptors),
            udp: plane.udp,
            config: report.config.map(|c| ConfigReloads {
                applied_at: c.applied_at,
                reloads: c.reloads,
                refused: c.refused,
                last_applied: c.last_error.is_none(),
            }),
        }
    }
}
