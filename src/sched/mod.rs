//! The schedulers IPVS knows, by name. The table resolves a service's scheduler name here
//! (an unknown name is "Scheduler or persistence engine not found", as the kernel says);
//! the data plane will pick real servers with the algorithm behind each name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A scheduling algorithm of IPVS. `None` is the kernel's "none": the service schedules
/// no new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    Rr,
    Wrr,
    Lc,
    Wlc,
    Lblc,
    Lblcr,
    Dh,
    Sh,
    Sed,
    Nq,
    Fo,
    Ovf,
    Mh,
    None,
}

impl Scheduler {
    /// Every scheduler, in ipvsadm's order (`rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|fo|ovf|mh`).
    pub const ALL: [Scheduler; 14] = [
        Scheduler::Rr,
        Scheduler::Wrr,
        Scheduler::Lc,
        Scheduler::Wlc,
        Scheduler::Lblc,
        Scheduler::Lblcr,
        Scheduler::Dh,
        Scheduler::Sh,
        Scheduler::Sed,
        Scheduler::Nq,
        Scheduler::Fo,
        Scheduler::Ovf,
        Scheduler::Mh,
        Scheduler::None,
    ];

    /// The scheduler ipvsadm uses when `-s` is not given.
    pub const DEFAULT: Scheduler = Scheduler::Wlc;

    pub fn name(self) -> &'static str {
        match self {
            Scheduler::Rr => "rr",
            Scheduler::Wrr => "wrr",
            Scheduler::Lc => "lc",
            Scheduler::Wlc => "wlc",
            Scheduler::Lblc => "lblc",
            Scheduler::Lblcr => "lblcr",
            Scheduler::Dh => "dh",
            Scheduler::Sh => "sh",
            Scheduler::Sed => "sed",
            Scheduler::Nq => "nq",
            Scheduler::Fo => "fo",
            Scheduler::Ovf => "ovf",
            Scheduler::Mh => "mh",
            Scheduler::None => "none",
        }
    }
}

impl fmt::Display for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The name is not one of IPVS's schedulers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheduler `{0}'")]
pub struct UnknownScheduler(pub String);

impl FromStr for Scheduler {
    type Err = UnknownScheduler;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scheduler::ALL
            .into_iter()
            .find(|sched| sched.name() == s)
            .ok_or_else(|| UnknownScheduler(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips() {
        for sched in Scheduler::ALL {
            assert_eq!(sched.name().parse::<Scheduler>(), Ok(sched));
        }
        assert!("bogus".parse::<Scheduler>().is_err());
        assert!("RR".parse::<Scheduler>().is_err());
    }
}
