//! IPVS's schedulers, with the kernel's exact algorithms (net/netfilter/ipvs/ip_vs_*.c),
//! one file each behind [`Algorithm`].
//!
//! The table resolves a service's scheduler by name ([`Scheduler`]; an unknown name is
//! "Scheduler or persistence engine not found") and keeps, with each service snapshot,
//! the algorithm's state for exactly that list of real servers. When the list changes,
//! `Table::apply` derives the next state from the previous one with
//! [`Algorithm::next`], as the kernel's add/del/upd_dest hooks do; the data plane calls
//! [`Algorithm::pick`] for each new connection (or flow) with the snapshot's servers, in
//! IPVS's list order (newest first), through [`schedule()`](schedule::schedule), which
//! adds persistence templates and the retry order.
//!
//! The loops several schedulers share are here (least by a key, weighted least,
//! heaviest) and in `hashed` (sh's and mh's table lookup with fallback); the schedulers
//! without add/del/upd_dest hooks in the kernel implement `NoDestHooks`, which makes them
//! an [`Algorithm`].

mod dh;
mod fo;
mod hashed;
mod lblc;
mod lblcr;
mod lc;
mod mh;
mod nq;
mod ovf;
mod ramp;
mod rr;
pub mod schedule;
mod sed;
mod sh;
mod siphash;
mod wlc;
mod wrr;

use std::cmp::Reverse;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use schedule::{Choice, Schedule, schedule};

use crate::table::real_server::locate;
use crate::table::{RealServer, ServerKey, ServiceFlags};

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

    /// A fresh state for a service with these servers (the kernel's init_service).
    pub fn algorithm(self, servers: &[RealServer]) -> Box<dyn Algorithm> {
        match self {
            Scheduler::Rr => Box::new(rr::RoundRobin::new()),
            Scheduler::Wrr => Box::new(wrr::WeightedRoundRobin::new(servers)),
            Scheduler::Lc => Box::new(lc::LeastConnection),
            Scheduler::Wlc => Box::new(wlc::WeightedLeastConnection),
            Scheduler::Lblc => Box::new(lblc::LocalityLeastConnection::new()),
            Scheduler::Lblcr => Box::new(lblcr::LocalityReplicated::new()),
            Scheduler::Dh => Box::new(dh::DestinationHashing::new(servers)),
            Scheduler::Sh => Box::new(sh::SourceHashing::new(servers)),
            Scheduler::Sed => Box::new(sed::ShortestExpectedDelay),
            Scheduler::Nq => Box::new(nq::NeverQueue),
            Scheduler::Fo => Box::new(fo::WeightedFailover),
            Scheduler::Ovf => Box::new(ovf::Overflow),
            Scheduler::Mh => Box::new(mh::Maglev::new(servers)),
            Scheduler::None => Box::new(NoScheduler),
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

/// What a scheduler may look at in the packet that opens a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The client's address and port (the source).
    pub client: SocketAddr,
    /// The address and port the client reached (the VIP: the destination).
    pub local: SocketAddr,
}

/// How a service's server list changed, for schedulers that follow positions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListChange {
    /// A server was added (at the head of the list).
    Added,
    /// A server was removed; `previous` is the server before it in the old list.
    Removed {
        removed: ServerKey,
        previous: Option<ServerKey>,
    },
    /// A server's settings (weight, thresholds) changed.
    Updated,
}

/// One scheduler's state for one service and one list of servers.
pub trait Algorithm: Send + Sync + fmt::Debug {
    /// The server for a new connection, as an index into `servers`, or None when no
    /// server is available ("no destination available").
    fn pick(&self, servers: &[RealServer], flags: ServiceFlags, packet: &Packet) -> Option<usize>;

    /// The state for the service's new server list after `change`.
    fn next(&self, servers: &[RealServer], change: &ListChange) -> Box<dyn Algorithm>;
}

/// A scheduler the kernel gives no add_dest/del_dest/upd_dest hook (lc, wlc, sed, nq, fo,
/// ovf, none: no state; lblc, lblcr: a cache of destinations): a change of the server
/// list leaves its state as it is, so its next state is a clone of it (which shares
/// whatever state it has).
trait NoDestHooks: fmt::Debug + Send + Sync + Clone + 'static {
    /// [`Algorithm::pick`], for schedulers that do not look at the service's flags.
    fn choose(&self, servers: &[RealServer], packet: &Packet) -> Option<usize>;
}

impl<T: NoDestHooks> Algorithm for T {
    fn pick(&self, servers: &[RealServer], _: ServiceFlags, packet: &Packet) -> Option<usize> {
        self.choose(servers, packet)
    }

    fn next(&self, _: &[RealServer], _: &ListChange) -> Box<dyn Algorithm> {
        Box::new(self.clone())
    }
}

/// The kernel's "none" scheduler: nothing is ever picked.
#[derive(Debug, Clone, Copy)]
struct NoScheduler;

impl NoDestHooks for NoScheduler {
    fn choose(&self, _: &[RealServer], _: &Packet) -> Option<usize> {
        None
    }
}

/// Usable for new connections (`RealServer::is_usable`).
fn usable(server: &RealServer) -> bool {
    server.is_usable()
}

/// The greatest common divisor of the positive values, 0 when there are none.
fn gcd_of(values: impl Iterator<Item = u32>) -> u32 {
    fn gcd(mut a: u32, mut b: u32) -> u32 {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    }
    values
        .filter(|w| *w > 0)
        .fold(0, |g, w| if g > 0 { gcd(w, g) } else { w })
}

/// The index of the server with this key in the list.
fn position(servers: &[RealServer], key: &ServerKey) -> Option<usize> {
    locate(servers, key, usize::MAX)
}

/// A place in the server list that outlives list changes, as the kernel's list pointer
/// does: the server's key, and the index it was at, checked first so that a pick does
/// not search the list (it changes only when the table does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    key: ServerKey,
    index: usize,
}

impl Cursor {
    fn at(servers: &[RealServer], index: usize) -> Cursor {
        Cursor {
            key: servers[index].key(),
            index,
        }
    }

    /// A server whose index is not known yet.
    fn of(key: ServerKey) -> Cursor {
        Cursor {
            key,
            index: usize::MAX,
        }
    }

    /// The server's index in this list, if it is still there.
    fn find(&self, servers: &[RealServer]) -> Option<usize> {
        locate(servers, &self.key, self.index)
    }
}

/// The first usable server `eligible` accepts with the smallest `key`: a later one wins
/// only with a strictly smaller key (the kernel's `doh < loh` in lc, `w > hw` in fo and
/// ovf), so ties go to the first in list order.
fn least_by<K: Ord>(
    servers: &[RealServer],
    eligible: impl Fn(&RealServer) -> bool,
    key: impl Fn(&RealServer) -> K,
) -> Option<usize> {
    // min_by_key keeps the first of equal minima.
    (servers.iter().enumerate())
        .filter(|(_, s)| usable(s) && eligible(s))
        .min_by_key(|(_, s)| key(s))
        .map(|(i, _)| i)
}

/// The first usable server `eligible` accepts with the highest weight: fo and ovf.
fn heaviest(servers: &[RealServer], eligible: impl Fn(&RealServer) -> bool) -> Option<usize> {
    least_by(servers, eligible, |s| Reverse(s.weight))
}

/// Least weighted overhead (`loh * w_d > doh * w_least` switches), from the first usable
/// server on, skipping overloaded ones: wlc and the locality schedulers' fallback.
fn weighted_least(servers: &[RealServer], overhead: impl Fn(&RealServer) -> u64) -> Option<usize> {
    weighted_least_among(servers, overhead, |_| true)
}

/// [`weighted_least`] over the servers `eligible` accepts.
fn weighted_least_among(
    servers: &[RealServer],
    overhead: impl Fn(&RealServer) -> u64,
    eligible: impl Fn(&RealServer) -> bool,
) -> Option<usize> {
    let first = servers.iter().position(|s| usable(s) && eligible(s))?;
    let mut least = first;
    let mut loh = overhead(&servers[first]);
    for (i, s) in servers.iter().enumerate().skip(first + 1) {
        if s.state.is_held_out() || !eligible(s) {
            continue;
        }
        let doh = overhead(s);
        if u128::from(loh) * u128::from(s.weight)
            > u128::from(doh) * u128::from(servers[least].weight)
        {
            least = i;
            loh = doh;
        }
    }
    Some(least)
}

/// What wlc would pick if the servers in `except` were not in the list: where a
/// connection goes when the servers it tried could not be reached.
pub fn least_loaded_except(servers: &[RealServer], except: &[ServerKey]) -> Option<usize> {
    weighted_least_among(
        servers,
        |s| s.state.overhead(),
        |s| !except.contains(&s.key()),
    )
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_loaded_other_server_leaves_out_the_one_that_failed() {
        use testing::{load, overload, servers};
        let s = servers(&[1, 1, 2, 0]);
        load(&s[0], 5, 0);
        load(&s[1], 1, 0);
        load(&s[2], 1, 0);
        // Overheads per weight: A 5, B 1, C 1/2; D is quiesced.
        assert_eq!(least_loaded_except(&s, &[s[2].key()]), Some(1));
        assert_eq!(least_loaded_except(&s, &[s[1].key()]), Some(2));
        assert_eq!(least_loaded_except(&s, &[s[1].key(), s[2].key()]), Some(0));
        overload(&s[2]);
        assert_eq!(least_loaded_except(&s, &[s[1].key()]), Some(0));
        assert_eq!(least_loaded_except(&s[1..2], &[s[1].key()]), None);
    }

    #[test]
    fn every_name_round_trips() {
        for sched in Scheduler::ALL {
            assert_eq!(sched.name().parse::<Scheduler>(), Ok(sched));
        }
        assert!("bogus".parse::<Scheduler>().is_err());
        assert!("RR".parse::<Scheduler>().is_err());
    }

    #[test]
    fn gcd() {
        assert_eq!(gcd_of([4, 3, 2].into_iter()), 1);
        assert_eq!(gcd_of([4, 0, 6].into_iter()), 2);
        assert_eq!(gcd_of([0, 0].into_iter()), 0);
    }
}
