//! Why the table refused a command. The variants are the kernel's answers (errno values
//! that ipvsadm turns into text), and their messages are ipvsadm's, byte for byte, so a
//! refused `uvsadm` command reads exactly as a refused `ipvsadm` command. uvs's own
//! commands (the listen rules, the sync daemon) have messages of their own.

use serde::{Deserialize, Serialize};

use super::command::ServiceArgs;
use super::{ListenAddr, ServiceKey};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableError {
    /// EEXIST on add-service.
    #[error("Service already exists")]
    ServiceExists,
    /// ESRCH on edit/delete/zero/get of a service.
    #[error("No such service")]
    NoSuchService,
    /// ESRCH on a real-server command whose service is missing.
    #[error("Service not defined")]
    ServiceNotDefined,
    /// ENOENT on add/edit-service: unknown scheduler or persistence engine.
    #[error("Scheduler or persistence engine not found")]
    SchedulerNotFound,
    /// EEXIST on add-server.
    #[error("Destination already exists")]
    ServerExists,
    /// ENOENT on edit/delete-server.
    #[error("No such destination")]
    NoSuchServer,
    /// EINVAL: an address that is not unicast, a bad prefix length, a family mismatch.
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    InvalidOperation,
    /// ERANGE: negative weight, lower threshold above the upper one.
    #[error("Numerical result out of range")]
    OutOfRange,
    /// `--add-listener` for an address that already has a rule (leading to `service`).
    #[error(
        "{listen} already listens for {service}: delete that listener first (uvsadm \
         --delete-listener {listen})"
    )]
    ListenerExists {
        listen: ListenAddr,
        service: ServiceKey,
    },
    /// `--add-listener` for a service that does not exist (uvs's own command, so it is
    /// strict: the service comes first).
    #[error(
        "{service} is not a virtual service: add it first (uvsadm -A {}{}), then its \
         listeners",
        ServiceArgs(service),
        // ipvsadm takes port 0 only for a persistent service.
        if matches!(service, ServiceKey::Inet { port: 0, .. }) { " -p" } else { "" }
    )]
    NoListenerService { service: ServiceKey },
    /// `--add-listener` on the address of a virtual service, or under a service at
    /// 0.0.0.0/:: on its port (the service wins the address: `listener`).
    #[error(
        "{listen} is served by virtual service {service}: the service keeps its address and a \
         listener there would never be used (delete the service first, or listen elsewhere)"
    )]
    ListenerOnService {
        listen: ListenAddr,
        service: ServiceKey,
    },
    /// `--add-listener` on 0.0.0.0 or ::, which would hold the port on every address.
    #[error(
        "{listen}: a listener needs one address, not every address of the host (it would \
         hold port {} on the VIPs added later too): add a listener for each address",
        listen.port
    )]
    ListenerUnspecified { listen: ListenAddr },
    /// `--add-listener` (or a file's `listen`) on an IPv4-mapped IPv6 address
    /// (`::ffff:127.0.0.1`), which an IPv6-only socket cannot bind (`listener::v4_mapped`).
    #[error(
        "{listen}: an IPv4-mapped IPv6 address cannot be listened on (uvs's IPv6 sockets \
         are IPv6-only): write the IPv4 address, {v4}"
    )]
    ListenerV4Mapped {
        listen: ListenAddr,
        v4: std::net::Ipv4Addr,
    },
    /// `--delete-listener` for an address without a rule.
    #[error("No such listener")]
    NoSuchListener,
    /// `--start-daemon` for a role that already runs (libipvs: EEXIST on
    /// ipvs_start_daemon).
    #[error("Daemon has already run")]
    SyncDaemonRunning,
    /// `--stop-daemon` for a role that does not run (libipvs: ESRCH on ipvs_stop_daemon).
    #[error("No daemon is running")]
    NoSyncDaemon,
    /// `--start-daemon` with settings the kernel refuses (ip_vs_ctl.c
    /// `ip_vs_genl_new_daemon`, ip_vs_sync.c `start_sync_thread`: EINVAL).
    #[error("Invalid operation.  Possibly wrong module version, address not unicast, ...")]
    SyncDaemonInvalid,
    /// `--start-daemon` on an interface this host does not have (ip_vs_sync.c
    /// `start_sync_thread`: ENODEV, which libipvs's `ipvs_strerror` leaves to
    /// strerror).
    #[error("No such device")]
    NoSuchDevice,
    /// Kernel mode: a command on a service the kernel holds that uvs did not create
    /// (ipvsadm's, or another tool's), which uvs lists but never changes
    /// (`kernel::others`).
    #[error(
        "virtual service {} in the kernel is not uvs's (uvs did not create it, and \
         leaves it alone): change it with ipvsadm",
        ServiceArgs(service)
    )]
    OthersService { service: ServiceKey },
    /// Any other refusal of the kernel's IPVS, in libipvs's words for its errno
    /// (`ipvs_strerror`: its table, else strerror).
    #[error("{message}")]
    Kernel { message: String },
}
