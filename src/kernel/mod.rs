//! The kernel's IPVS, spoken to over generic netlink without libnl or ipvsadm:
//! `netlink` is the transport (messages, attributes, the socket), `ipvs` the IPVS
//! family's commands and answers, built from and read into the table's own types.
//! The kernel backend (mode kernel) is built on these.

pub mod ipvs;
pub mod netlink;
