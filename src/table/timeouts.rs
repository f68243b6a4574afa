//! The three connection timeouts of `ipvsadm --set tcp tcpfin udp`, in seconds.

use serde::{Deserialize, Serialize};

/// Idle timeouts: ESTABLISHED TCP, TCP after FIN (FIN_WAIT), and UDP flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub tcp: u32,
    pub tcp_fin: u32,
    pub udp: u32,
}

impl Default for Timeouts {
    /// The kernel's defaults: `Timeout (tcp tcpfin udp): 900 120 300`.
    fn default() -> Timeouts {
        Timeouts {
            tcp: 900,
            tcp_fin: 120,
            udp: 300,
        }
    }
}

impl Timeouts {
    /// Applies `--set`: a zero leaves that timeout as it is.
    pub fn updated_with(self, set: Timeouts) -> Timeouts {
        let pick = |new: u32, old: u32| if new == 0 { old } else { new };
        Timeouts {
            tcp: pick(set.tcp, self.tcp),
            tcp_fin: pick(set.tcp_fin, self.tcp_fin),
            udp: pick(set.udp, self.udp),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_keeps_the_current_value() {
        let t = Timeouts::default().updated_with(Timeouts {
            tcp: 7200,
            tcp_fin: 0,
            udp: 30,
        });
        assert_eq!(
            t,
            Timeouts {
                tcp: 7200,
                tcp_fin: 120,
                udp: 30
            }
        );
    }
}
