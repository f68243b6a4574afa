//! The few calls into libc that the standard library does not offer. All `unsafe` of
//! uvs lives here, each call with the reason it is sound; batched datagram I/O is in
//! `datagram`; counting stop signals is in `signals`.

pub mod datagram;
pub mod signals;

/// Registers a listening socket with the current tokio runtime's event loop, for
/// accepting at the level of system calls (the TCP path accepts without registering the
/// new socket until it knows which worker keeps it). Must run inside a runtime.
pub fn poll_listener(
    listener: std::net::TcpListener,
) -> std::io::Result<tokio::io::unix::AsyncFd<std::net::TcpListener>> {
    // SAFETY: the AsyncFd owns the listener, whose descriptor is valid, open and the
    // same for as long as the listener lives, which is as long as the AsyncFd.
    let fd = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(listener, tokio::io::Interest::READABLE)
    };
    fd.map_err(std::io::Error::from)
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The process's effective group id.
pub fn effective_gid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// The effective user id of the process at the other end of a connected Unix socket
/// (SO_PEERCRED: the credentials it had when it connected or listened).
pub fn peer_uid(socket: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    // SAFETY: SO_PEERCRED's value is a `struct ucred`.
    let cred: libc::ucred = unsafe { getsockopt(socket, libc::SOL_SOCKET, libc::SO_PEERCRED)? };
    Ok(cred.uid)
}

/// The value of socket option `level`/`name` of `fd`, a plain C struct the kernel fills.
///
/// # Safety
/// `T` must be the type the kernel writes for that option, valid when all zero.
unsafe fn getsockopt<T>(
    fd: std::os::fd::BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    // SAFETY: the caller promises all-zero is a valid T.
    let mut value: T = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: the fd is borrowed (open for the call); the kernel writes at most `len`
    // bytes into `value`, of the type the caller names, and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut T).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(value)
}

/// Puts a TCP socket in repair mode (TCP_REPAIR, Linux 3.5; needs CAP_NET_ADMIN):
/// closed then, it goes away without sending anything, no FIN and no RST (HAProxy's
/// `silent-drop`, src/tcp_act.c). An error (EPERM without the privilege) leaves the
/// socket as it was.
pub fn set_tcp_repair(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR, 1)
}

/// Sets socket option `level`/`name` of `fd`, one whose value is an int, to `value`.
fn set_int_option(
    fd: std::os::fd::BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is borrowed (open for the call); the option's value is an int,
    // read by the kernel from `value` for `size_of::<c_int>()` bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Sets IP_BIND_ADDRESS_NO_PORT (Linux 4.2) on a socket of either family: bind() then
/// takes the address only, and the port is chosen at connect(), for the whole 4-tuple
/// (`proxy::source`; HAProxy sets it for `source` too).
pub fn set_bind_address_no_port(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    set_int_option(fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
}

/// Whether a TCP socket is in repair mode ([`set_tcp_repair`]).
pub fn tcp_repair(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<bool> {
    // SAFETY: TCP_REPAIR's value is an int.
    let on: libc::c_int = unsafe { getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_REPAIR)? };
    Ok(on != 0)
}

/// Runs `f` with the file-creation mask set to `mask`, then restores the previous mask.
/// The daemon binds its control socket this way so the socket is never, even for an
/// instant, accessible to anyone but its owner. The mask is process-wide: call this
/// before other threads create files.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask has no preconditions and cannot fail; it only swaps a process value.
    let previous = unsafe { libc::umask(mask as libc::mode_t) };
    let out = f();
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    out
}

/// Raises the soft limit on open files to the hard limit: every proxied connection
/// holds two sockets (and, while data moves, a pipe). Returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the
        // hard limit is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// Segments received and sent by a TCP socket so far (TCP_INFO tcpi_segs_in, _out).
pub fn tcp_segments(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<(u32, u32)> {
    // SAFETY: TCP_INFO's value is a `struct tcp_info` (plain old data).
    let info: libc::tcp_info = unsafe { getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_INFO)? };
    Ok((info.tcpi_segs_in, info.tcpi_segs_out))
}

/// Datagrams the kernel dropped since the socket was made because its receive buffer
/// was full (SO_MEMINFO's SK_MEMINFO_DROPS, Linux 4.12 and later).
pub fn socket_drops(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<u32> {
    // asm-generic/socket.h, which x86 and arm use (libc names it only for some).
    const SO_MEMINFO: libc::c_int = 55;
    // SAFETY: SO_MEMINFO's value is SK_MEMINFO_VARS (9) u32s; all-zero is valid.
    let info: [u32; 9] = unsafe { getsockopt(fd, libc::SOL_SOCKET, SO_MEMINFO)? };
    Ok(info[libc::SK_MEMINFO_DROPS as usize])
}

/// A non-blocking pipe for splicing: (read end, write end).
#[cfg(target_os = "linux")]
pub fn pipe() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the array we pass.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Asks for a pipe buffer of `bytes` (F_SETPIPE_SZ) and returns the size the pipe has
/// afterwards: the request is refused when the user's pipe budget is spent, and a pipe
/// made over budget may be smaller than the default.
#[cfg(target_os = "linux")]
pub fn resize_pipe(pipe: std::os::fd::BorrowedFd<'_>, bytes: usize) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let bytes = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: F_SETPIPE_SZ and F_GETPIPE_SZ take an int (or nothing) and touch nothing
    // but the pipe.
    let mut n = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, bytes) };
    if n < 0 {
        // SAFETY: as above.
        n = unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_GETPIPE_SZ) };
    }
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Copies up to `buf.len()` bytes waiting on socket `fd` into `buf` without taking
/// them (recv with MSG_PEEK, never blocking): for reading a PROXY header
/// (`proxy::proxy_in`) without a byte of what follows it. Ok(0) means end of input;
/// WouldBlock, nothing waiting.
pub fn peek(fd: std::os::fd::BorrowedFd<'_>, buf: &mut [u8]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is borrowed (open for the call); the kernel writes at most
    // `buf.len()` bytes into `buf`, which is that long and initialised.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Moves up to `len` bytes from `from` to `to` inside the kernel (one of them a pipe),
/// without blocking. Ok(0) means end of input.
#[cfg(target_os = "linux")]
pub fn splice(
    from: std::os::fd::BorrowedFd<'_>,
    to: std::os::fd::BorrowedFd<'_>,
    len: usize,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: both descriptors are borrowed, so open for the call; null offsets mean
    // "current position", as required for sockets and pipes.
    let n = unsafe {
        libc::splice(
            from.as_raw_fd(),
            std::ptr::null_mut(),
            to.as_raw_fd(),
            std::ptr::null_mut(),
            len,
            libc::SPLICE_F_MOVE | libc::SPLICE_F_NONBLOCK,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n as usize)
}

/// Sends SIGKILL to every process in the process group `pgid`, as `kill -KILL -PGID`
/// does. An external health check runs in a group of its own and the whole group is
/// killed when the check ends, so nothing the command started outlives it. A group that
/// is already empty (ESRCH) is not an error. Refuses (InvalidInput) groups 0 and 1 and
/// numbers beyond pid_t: killpg(0) would be this daemon's own group.
pub fn kill_process_group(pgid: u32) -> std::io::Result<()> {
    let pgid = libc::pid_t::try_from(pgid)
        .ok()
        .filter(|&g| g > 1)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: killpg takes two integers and only sends a signal; it touches no memory of
    // ours. The group is one this process created (see above for 0 and 1).
    if unsafe { libc::killpg(pgid, libc::SIGKILL) } != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            return Err(e);
        }
    }
    Ok(())
}

/// Makes this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a process whose
/// parent dies is then re-parented to this one, its nearest living subreaper ancestor,
/// instead of init, however it left its parent's process group or session. `uvs run`
/// calls this once as it starts, so that whatever an external health check leaves
/// behind becomes the daemon's child, to kill and reap (`health::orphans`).
#[cfg(target_os = "linux")]
pub fn become_child_subreaper() -> std::io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes one integer argument (the unused ones are
    // passed as 0, as prctl(2) asks); it sets an attribute of this process and touches
    // no memory of ours.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_CHILD_SUBREAPER,
            1 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Child subreapers are Linux's.
#[cfg(not(target_os = "linux"))]
pub fn become_child_subreaper() -> std::io::Result<()> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// A pid for kill(2) and waitpid(2) that names one process: 0 and negative numbers name
/// groups (or every process, for kill), 1 is init, and this process is never meant.
fn one_process(pid: u32) -> std::io::Result<libc::pid_t> {
    libc::pid_t::try_from(pid)
        .ok()
        .filter(|&p| p > 1 && p.unsigned_abs() != std::process::id())
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))
}

/// Sends SIGKILL to process `pid`, a child of this process that it has not reaped: until
/// it is reaped its pid cannot go to another process, so the signal reaches the one
/// meant. Refuses (InvalidInput) 0, 1, numbers beyond pid_t and this process.
pub fn kill_process(pid: u32) -> std::io::Result<()> {
    let pid = one_process(pid)?;
    // SAFETY: kill takes two integers and only sends a signal; it touches no memory of
    // ours. `one_process` made sure the number names one process, not a group.
    if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reaps child `pid` if it has ended (waitpid with WNOHANG): Ok(true) when it was
/// reaped, Ok(false) while it runs; ECHILD when it is not a child of this process (or
/// was reaped already). Only for children nobody else waits for: never one a tokio
/// `Child` owns, which would lose its exit status (and could later wait on a reused
/// pid). Refuses (InvalidInput) 0, 1, numbers beyond pid_t and this process: waitpid(-1)
/// or waitpid(0) would reap any child.
pub fn reap_child(pid: u32) -> std::io::Result<bool> {
    let pid = one_process(pid)?;
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: waitpid writes the exit status into the integer we pass and nothing
        // else; `pid` names one process (see above), so no other child is reaped.
        let rc = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        match rc {
            0 => return Ok(false),
            r if r == pid => return Ok(true),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// The user id and primary group id of the user named `name`, from the system's user
/// database (getpwnam_r: /etc/passwd, or what NSS adds); None if there is no such user.
pub fn user_ids(name: &str) -> std::io::Result<Option<(u32, u32)>> {
    let name = c_name(name)?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: all-zero is a valid `passwd` (null pointers and zero ids), which
        // getpwnam_r fills with pointers into `buf`; `buf` outlives the call and its
        // length is passed; `found` is left null or pointed at `pwd`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 => return Ok((!found.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

/// The id of the group named `name` (getgrnam_r); None if there is no such group.
pub fn group_id(name: &str) -> std::io::Result<Option<u32>> {
    let name = c_name(name)?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: as in `user_ids`, for `group` and getgrnam_r.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = unsafe {
            libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut found,
            )
        };
        match rc {
            libc::ERANGE if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            0 => return Ok((!found.is_null()).then_some(grp.gr_gid)),
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
}

fn c_name(name: &str) -> std::io::Result<std::ffi::CString> {
    std::ffi::CString::new(name).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte in the name")
    })
}

/// Gives the allocator's free memory back to the system: glibc's `malloc_trim(0)`,
/// which since glibc 2.8 also releases the free pages inside every arena, not only the
/// top of the main heap. A reload parses the file on a thread of its own, whose arena
/// keeps what the parse used after it is freed (600 MiB at 100 000 services, README
/// "Large tables"). Elsewhere a no-op.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes a size and touches only the allocator's own state,
    // under its own locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The MTU of network interface `name` in this network namespace (SIOCGIFMTU on a
/// datagram socket, the lookup the kernel's sync daemon makes, ip_vs_sync.c
/// `start_sync_thread`: `__dev_get_by_name`). ENODEV when there is no such
/// interface; EINVAL for a name the kernel could not hold (empty, 16 bytes or more,
/// or with a NUL byte).
pub fn interface_mtu(name: &str) -> std::io::Result<u32> {
    use std::os::fd::AsRawFd;
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // Unbound: the ioctl needs only a socket of the namespace, not an address in it.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // SAFETY: an all-zero ifreq is valid (a C struct of bytes and integers).
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, &b) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = b as libc::c_char;
    }
    // SAFETY: the socket is open for the call; SIOCGIFMTU reads the NUL-terminated name
    // (at most IFNAMSIZ - 1 bytes were written into a zeroed array) and writes only the
    // ifreq's union, which is as large as the kernel's.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFMTU, &mut request) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFMTU filled the union's MTU member.
    let mtu = unsafe { request.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// Moves the calling thread into a network namespace of its own (unshare(2),
/// CLONE_NEWNET; needs CAP_SYS_ADMIN): what it and the processes it starts bind is
/// never the host's. Tests use it to bind wildcard addresses safely.
pub fn unshare_network() -> std::io::Result<()> {
    // SAFETY: unshare takes one integer flag and changes only this thread's namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::AsFd;

    #[test]
    fn the_peer_of_a_socket_pair_is_this_process_owner() {
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert_eq!(peer_uid(a.as_fd()).unwrap(), effective_uid());
    }

    #[test]
    fn datagrams_a_full_receive_buffer_dropped_are_counted() {
        let receiver = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)
            .expect("a socket");
        // The smallest buffer the kernel allows: a few datagrams fit.
        receiver.set_recv_buffer_size(1).expect("SO_RCVBUF");
        receiver
            .bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .expect("bind");
        let receiver: std::net::UdpSocket = receiver.into();
        let to = receiver.local_addr().expect("its address");
        assert_eq!(socket_drops(receiver.as_fd()).expect("SO_MEMINFO"), 0);
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("a sender");
        const SENT: u32 = 100;
        for _ in 0..SENT {
            sender.send_to(&[7; 1000], to).expect("send");
        }
        receiver.set_nonblocking(true).expect("O_NONBLOCK");
        let mut read = 0;
        while receiver.recv(&mut [0; 2000]).is_ok() {
            read += 1;
        }
        let dropped = socket_drops(receiver.as_fd()).expect("SO_MEMINFO");
        assert!(read > 0 && dropped > 0, "read {read}, dropped {dropped}");
        assert_eq!(read + dropped, SENT);
    }

    #[test]
    fn a_loopback_connection_counts_its_segments() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        let mut got = [0; 4];
        server.read_exact(&mut got).unwrap();
        let (segs_in, segs_out) = tcp_segments(client.as_fd()).unwrap();
        // The handshake's SYN-ACK in, and the SYN, ACK and data out at least.
        assert!(
            segs_in >= 1 && segs_out >= 2,
            "{segs_in} in, {segs_out} out"
        );
    }

    #[test]
    fn the_loopback_interface_has_an_mtu_and_a_missing_one_is_enodev() {
        assert!(interface_mtu("lo").unwrap() >= 1280);
        let missing = interface_mtu("uvs-no-such0").unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENODEV));
        for bad in ["", "sixteen-bytes-xx", "a\0b"] {
            let e = interface_mtu(bad).unwrap_err();
            assert_eq!(e.raw_os_error(), Some(libc::EINVAL), "{bad:?}");
        }
    }

    #[test]
    fn an_option_of_a_descriptor_that_is_not_a_socket_is_an_error() {
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(tcp_segments(file.as_fd()).is_err());
    }
}
