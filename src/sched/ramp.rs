//! Slow start at the moment of scheduling: a new connection's pick of a real server
//! that ramps (`table::slow_start`) is accepted for the share in force of such picks,
//! deterministically (the server's credit, not chance); a pick not accepted goes to the
//! least loaded usable server other than it, and if there is none, to it anyway: a ramp
//! never refuses a client. For every scheduler, weighted or not: with lc or wlc a server
//! just back, empty, would otherwise take every new connection.
//!
//! Called by `schedule` on the scheduler's pick only: a persistence template naming
//! the server is honoured as it is, and retries after failed connects do not ramp.

use crate::table::RealServer;

use super::least_loaded_except;

/// The index of the server a new connection goes to, given the scheduler's pick
/// `index` in `servers`: the pick itself unless it ramps and this pick is not its
/// share. For a server that does not ramp, one relaxed load.
#[inline]
pub fn admit(servers: &[RealServer], index: usize) -> usize {
    match servers.get(index) {
        Some(s) if s.state.slow_start.is_ramping() => admit_ramping(servers, index),
        _ => index,
    }
}

#[cold]
fn admit_ramping(servers: &[RealServer], index: usize) -> usize {
    let picked = &servers[index];
    // The window may have passed: then the ramp is over and the pick stands.
    let Some(share) = picked.state.slow_start_share() else {
        return index;
    };
    if picked.state.slow_start.admit(share) {
        return index;
    }
    least_loaded_except(servers, &[picked.key()]).unwrap_or(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sched::testing::servers;

    #[test]
    fn a_ramping_pick_is_taken_for_its_share_and_else_goes_to_the_least_loaded() {
        let list = servers(&[1, 1, 1]);
        // The second server is the least loaded of the others.
        list[0].state.bind_connection(true);
        let ramping = &list[2].state;
        ramping.slow_start.set_window(600_000);
        ramping.begin_slow_start();
        let share = ramping.slow_start_share().unwrap();
        let picks: Vec<usize> = (0..40).map(|_| admit(&list, 2)).collect();
        let taken = picks.iter().filter(|&&i| i == 2).count();
        // The share grows by well under a thousandth in these picks (a 10-minute window).
        let expected = 40 * share as usize / 1000;
        assert!(
            (expected..=expected + 1).contains(&taken),
            "{taken} of 40 at {share}‰"
        );
        assert!(picks.iter().all(|&i| i == 2 || i == 1), "{picks:?}");
    }

    #[test]
    fn a_server_that_does_not_ramp_keeps_every_pick() {
        let list = servers(&[1, 1]);
        list[1].state.slow_start.set_window(600_000);
        assert!(
            (0..10).all(|_| admit(&list, 1) == 1),
            "a window but no ramp"
        );
        assert_eq!(admit(&list, 0), 0);
    }

    #[test]
    fn a_ramp_never_refuses_a_client() {
        let list = servers(&[1]);
        list[0].state.slow_start.set_window(600_000);
        list[0].state.begin_slow_start();
        assert!((0..30).all(|_| admit(&list, 0) == 0));
    }

    #[test]
    fn a_template_naming_a_ramping_server_is_honoured_and_new_clients_ramp() {
        use crate::clock::Clock;
        use crate::persist::{DEFAULT_MAX_TEMPLATES, Templates};
        use crate::sched::schedule;
        use crate::table::{Netmask, Protocol, ServiceFlags, ServiceKey};

        let key = ServiceKey::Inet {
            protocol: Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        let addrs = ["10.1.0.1".parse().unwrap(), "10.1.0.2".parse().unwrap()];
        let persistent = ServiceFlags(ServiceFlags::PERSISTENT);
        let table = crate::sched::testing::table_of(
            key,
            "rr",
            persistent,
            Netmask::full(key.family()),
            &addrs,
        );
        let svc = table.service(&key).unwrap();
        let t = Templates::new(Clock::new(), DEFAULT_MAX_TEMPLATES);
        let to = |client: &str| {
            let p = crate::sched::Packet {
                client: client.parse().unwrap(),
                local: "10.0.0.1:80".parse().unwrap(),
            };
            schedule(&t, svc, &p).next().unwrap().server.addr
        };
        let kept = to("192.0.2.1:1000");
        let ramping = svc.servers.iter().find(|s| s.addr == kept).unwrap();
        ramping.state.slow_start.set_window(600_000);
        ramping.state.begin_slow_start();
        // The client it already has: every connection still goes there.
        assert!((0..10).all(|i| to(&format!("192.0.2.1:{}", 2000 + i)) == kept));
        // New clients: rr picks it for every other one, and at about 1/20 it takes
        // none of these ten picks.
        let news = (0..20)
            .filter(|i| to(&format!("192.0.2.{}:1000", 10 + i)) == kept)
            .count();
        assert_eq!(news, 0);
    }
}
