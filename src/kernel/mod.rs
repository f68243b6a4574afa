//! The kernel's IPVS, spoken to over generic netlink without libnl or ipvsadm:
//! `netlink` is the transport (messages, attributes, the socket), `ipvs` the IPVS
//! family's commands and answers, built from and read into the table's own types.
//! `daemons` is the sync daemons' part of the family. `mirror` is kernel mode: the
//! table programmed into the kernel (`daemon_mirror`: its policy for the daemons;
//! `listing`: the kernel's whole table, as kernel mode's listings show it; `others`:
//! what uvsadm may do to the services in it that uvs did not create).

pub mod connections;
pub mod daemon_mirror;
pub mod daemons;
pub mod ipvs;
pub mod listing;
pub mod mirror;
pub mod netlink;
pub mod others;
