//! Listen rules: extra addresses a service is reached on. In LVS an iptables MARK rule
//! sends packets for several addresses and ports to an fwmark service; a port-0 service
//! catches every port of its VIP. A userspace balancer must listen on concrete
//! addresses, so the table holds these rules: `--add-listener -t VIP:PORT --mark N`
//! (the group of mark N) or without `--mark` (the VIP's port-0 service).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::{Protocol, ServerKey};

/// An address and port on one transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenAddr {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub port: u16,
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.protocol.switch(),
            ServerKey {
                addr: self.addr,
                port: self.port
            }
        )
    }
}

/// Where connections to a listen address go: the fwmark group `mark`, or (None) the
/// port-0 service of the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenRule {
    pub listen: ListenAddr,
    pub mark: Option<u32>,
}

impl fmt::Display for ListenRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.listen)?;
        if let Some(mark) = self.mark {
            write!(f, " --mark {mark}")?;
        }
        Ok(())
    }
}
