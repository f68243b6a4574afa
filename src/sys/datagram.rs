//! Batched datagram I/O: many datagrams per system call (recvmmsg, sendmmsg), and for
//! sockets bound to a wildcard address the local address each datagram reached
//! (IP_PKTINFO / IPV6_PKTINFO), so that a reply leaves from the address the client
//! spoke to. The UDP data plane (`proxy::udp`) moves every datagram through here.
//!
//! For PROXY protocol over UDP a batch can also cut a header off the front of a
//! received datagram ([`Batch::strip`]) and send datagrams with a header in front of
//! each ([`Batch::send_prefixed`]): the header goes as an iovec of its own, so the
//! payload is never copied.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::Relaxed;

/// Room for the largest datagram IP can carry (65 507 bytes of UDP payload over IPv4,
/// 65 527 over IPv6): nothing is ever cut short.
pub const MAX_DATAGRAM: usize = 65536;

/// The largest UDP payload over IPv4 (65 535 less the IP and UDP headers).
pub const MAX_PAYLOAD_V4: usize = 65507;
/// The largest UDP payload over IPv6 without jumbograms (65 535 less the UDP header).
pub const MAX_PAYLOAD_V6: usize = 65527;

/// Datagrams one batch holds.
pub const SLOTS: usize = 32;

/// Control-message space per datagram: one pktinfo, 8-byte aligned.
const CONTROL_WORDS: usize = 8;

/// Buffers for up to [`SLOTS`] datagrams, each with its peer and local address.
pub struct Batch {
    buffers: Vec<u8>,
    lens: [usize; SLOTS],
    peers: [libc::sockaddr_storage; SLOTS],
    controls: [[u64; CONTROL_WORDS]; SLOTS],
    control_lens: [usize; SLOTS],
    truncated: [bool; SLOTS],
    filled: usize,
    /// Bytes cut off the front of each datagram by [`Batch::strip`] (all zero unless
    /// `stripped`).
    starts: [usize; SLOTS],
    stripped: bool,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch::new()
    }
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            // Zeroed allocations are mapped lazily: pages are only touched as
            // datagrams fill them.
            buffers: vec![0; SLOTS * MAX_DATAGRAM],
            lens: [0; SLOTS],
            // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
            peers: unsafe { zeroed() },
            controls: [[0; CONTROL_WORDS]; SLOTS],
            control_lens: [0; SLOTS],
            truncated: [false; SLOTS],
            filled: 0,
            starts: [0; SLOTS],
            stripped: false,
        }
    }

    /// Datagrams received by the last [`Batch::receive`].
    pub fn len(&self) -> usize {
        self.filled
    }

    pub fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Datagram `i` whole, as received (a header [`Batch::strip`] cut off included).
    pub fn data(&self, i: usize) -> &[u8] {
        let start = i * MAX_DATAGRAM;
        &self.buffers[start..start + self.lens[i]]
    }

    /// Datagram `i` without what [`Batch::strip`] cut off its front: what is sent.
    pub fn payload(&self, i: usize) -> &[u8] {
        &self.data(i)[self.starts[i]..]
    }

    /// The length of [`Batch::payload`] `i`, in bytes.
    pub fn payload_len(&self, i: usize) -> usize {
        self.lens[i] - self.starts[i]
    }

    /// Cuts `n` bytes (at most the datagram's length) off the front of datagram `i`
    /// (a PROXY header read): it is sent without them. Until the next receive.
    pub fn strip(&mut self, i: usize, n: usize) {
        self.starts[i] = n.min(self.lens[i]);
        self.stripped = true;
    }

    /// Whether datagram `i` was larger than its buffer (never for UDP over IP).
    pub fn truncated(&self, i: usize) -> bool {
        self.truncated[i]
    }

    /// Who sent datagram `i` (None for an address family uvs does not serve).
    pub fn peer(&self, i: usize) -> Option<SocketAddr> {
        let storage = &self.peers[i];
        match libc::c_int::from(storage.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in, which is
                // smaller than sockaddr_storage and less strictly aligned.
                let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
                Some(SocketAddr::V4(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                    u16::from_be(sin.sin_port),
                )))
            }
            libc::AF_INET6 => {
                // SAFETY: as above, for sockaddr_in6.
                let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
                Some(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                    u16::from_be(sin6.sin6_port),
                    sin6.sin6_flowinfo,
                    sin6.sin6_scope_id,
                )))
            }
            _ => None,
        }
    }

    /// The address datagram `i` was sent to, when the socket reports it
    /// ([`report_local_address`]).
    pub fn local(&self, i: usize) -> Option<IpAddr> {
        // SAFETY: msghdr is plain old data; only the control fields are used below.
        let mut msg: libc::msghdr = unsafe { zeroed() };
        msg.msg_control = self.controls[i].as_ptr() as *mut libc::c_void;
        msg.msg_controllen = self.control_lens[i] as _;
        // SAFETY: the control buffer is ours and msg_controllen is what the kernel
        // wrote into it; CMSG_FIRSTHDR/NXTHDR stay within it and return null at its end.
        let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
        while !cmsg.is_null() {
            // SAFETY: cmsg points at a complete header inside the buffer (see above).
            let header = unsafe { &*cmsg };
            // SAFETY: CMSG_DATA points just past that header, inside the buffer; the
            // level and type say which struct the kernel put there, and it may be
            // unaligned, hence read_unaligned.
            unsafe {
                let data = libc::CMSG_DATA(cmsg);
                match (header.cmsg_level, header.cmsg_type) {
                    (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                        let info = std::ptr::read_unaligned(data as *const libc::in_pktinfo);
                        return Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            info.ipi_addr.s_addr,
                        ))));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                        let info = std::ptr::read_unaligned(data as *const libc::in6_pktinfo);
                        return Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
        None
    }

    /// Reads as many waiting datagrams as fit, without blocking: Ok(n) with n ≥ 1, or
    /// WouldBlock when none is waiting.
    pub fn receive(&mut self, socket: BorrowedFd<'_>) -> io::Result<usize> {
        self.filled = 0;
        if self.stripped {
            self.starts = [0; SLOTS];
            self.stripped = false;
        }
        // SAFETY: plain old data, every field set below before use.
        let mut iovecs: [libc::iovec; SLOTS] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; SLOTS] = unsafe { zeroed() };
        let base = self.buffers.as_mut_ptr();
        for i in 0..SLOTS {
            iovecs[i] = libc::iovec {
                // SAFETY: slot i lies inside the buffer (SLOTS * MAX_DATAGRAM bytes).
                iov_base: unsafe { base.add(i * MAX_DATAGRAM) }.cast(),
                iov_len: MAX_DATAGRAM,
            };
            let h = &mut headers[i].msg_hdr;
            h.msg_name = (&mut self.peers[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut iovecs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.controls[i].as_mut_ptr().cast();
            h.msg_controllen = (CONTROL_WORDS * 8) as _;
        }
        // SAFETY: every header points at memory owned by `self` or by this frame, all of
        // it alive and unaliased for the call; the kernel writes within the lengths given.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                SLOTS as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, header) in headers.iter().enumerate().take(n) {
            self.lens[i] = header.msg_len as usize;
            // usize in glibc, u32 in musl.
            #[allow(clippy::unnecessary_cast)]
            let control_len = header.msg_hdr.msg_controllen as usize;
            self.control_lens[i] = control_len;
            self.truncated[i] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.filled = n;
        Ok(n)
    }

    /// Sends datagrams `range` of this batch on `socket`: to `to` (None on a connected
    /// socket), from the local address `from` (None: the socket's own). Runs of
    /// datagrams of one size go as one segmented send (UDP GSO) when the kernel takes
    /// it: the stack is walked once for the run and the datagrams are cut apart at the
    /// far end, each one arriving as sent. Returns how many datagrams went; WouldBlock
    /// when the socket could take none. A datagram [`Batch::strip`] cut goes without
    /// what was cut.
    pub fn send(
        &self,
        socket: BorrowedFd<'_>,
        range: std::ops::Range<usize>,
        to: Option<SocketAddr>,
        from: Option<IpAddr>,
    ) -> io::Result<usize> {
        if self.stripped {
            return self.send_prefixed(socket, range, to, from, &[]);
        }
        self.send_runs::<1>(socket, range, to, from, &[])
    }

    /// As [`Batch::send`], with `prefix` in front of every datagram (a PROXY v2 header),
    /// sent from its own buffer: each datagram leaves as `prefix` then its payload, in
    /// one UDP datagram. The caller keeps each within the largest UDP payload
    /// ([`MAX_PAYLOAD_V4`], [`MAX_PAYLOAD_V6`]): the kernel refuses a larger one
    /// (EMSGSIZE), and the datagrams after it in the call.
    pub fn send_prefixed(
        &self,
        socket: BorrowedFd<'_>,
        range: std::ops::Range<usize>,
        to: Option<SocketAddr>,
        from: Option<IpAddr>,
        prefix: &[u8],
    ) -> io::Result<usize> {
        self.send_runs::<2>(socket, range, to, from, prefix)
    }

    /// The sends of [`Batch::send`] (`N` = 1: one iovec per datagram, its data) and
    /// [`Batch::send_prefixed`] (`N` = 2: the prefix, then the payload).
    fn send_runs<const N: usize>(
        &self,
        socket: BorrowedFd<'_>,
        range: std::ops::Range<usize>,
        to: Option<SocketAddr>,
        from: Option<IpAddr>,
        prefix: &[u8],
    ) -> io::Result<usize> {
        let range = range.start..range.end.min(range.start + SLOTS);
        if range.is_empty() {
            return Ok(0);
        }
        if SEGMENTING.load(Relaxed) {
            match self.send_messages::<N>(socket, range.clone(), to, from, true, prefix) {
                Err(e) if segmenting_refused(&e) => {
                    // No GSO on this kernel or this route (no checksum offload, a path
                    // MTU below the size): this send goes datagram by datagram, and a
                    // kernel without the option is not asked again.
                    if e.raw_os_error() == Some(libc::ENOPROTOOPT) {
                        SEGMENTING.store(false, Relaxed);
                    }
                }
                other => return other,
            }
        }
        self.send_messages::<N>(socket, range, to, from, false, prefix)
    }

    fn send_messages<const N: usize>(
        &self,
        socket: BorrowedFd<'_>,
        range: std::ops::Range<usize>,
        to: Option<SocketAddr>,
        from: Option<IpAddr>,
        segment: bool,
        prefix: &[u8],
    ) -> io::Result<usize> {
        let to = to.map(socket2::SockAddr::from);
        // SAFETY: plain old data, every field used set below.
        let mut iovecs: [[libc::iovec; N]; SLOTS] = unsafe { zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; SLOTS] = unsafe { zeroed() };
        let mut controls = [[0u64; CONTROL_WORDS]; SLOTS];
        // Datagrams carried by each message.
        let mut carried = [0usize; SLOTS];
        // The size of datagram j as it leaves (N is a constant: no test is left at run
        // time).
        let size_of = |j: usize| {
            if N == 1 {
                self.lens[j]
            } else {
                prefix.len() + self.payload_len(j)
            }
        };
        let mut messages = 0;
        let mut i = range.start;
        while i < range.end {
            let size = size_of(i);
            // A run: datagrams of `size`, the last of it possibly shorter (but not
            // empty: an empty last segment is no segment, and would be lost).
            let mut end = i + 1;
            if segment && size <= MAX_SEGMENT {
                while end < range.end && size_of(end) <= size && size_of(end) > 0 {
                    end += 1;
                    if size_of(end - 1) < size {
                        break;
                    }
                }
            }
            for (k, j) in (i..end).enumerate() {
                let slot = &mut iovecs[i - range.start + k];
                if N == 1 {
                    let data = self.data(j);
                    slot[0] = libc::iovec {
                        iov_base: data.as_ptr() as *mut libc::c_void,
                        iov_len: data.len(),
                    };
                } else {
                    let payload = self.payload(j);
                    slot[0] = libc::iovec {
                        iov_base: prefix.as_ptr() as *mut libc::c_void,
                        iov_len: prefix.len(),
                    };
                    slot[N - 1] = libc::iovec {
                        iov_base: payload.as_ptr() as *mut libc::c_void,
                        iov_len: payload.len(),
                    };
                }
            }
            let control = &mut controls[messages];
            let mut control_len = 0;
            if let Some(addr) = from {
                control_len += write_pktinfo(control, 0, addr);
            }
            if end - i > 1 {
                control_len += write_segment_size(control, control_len, size as u16);
            }
            let h = &mut headers[messages].msg_hdr;
            if let Some(to) = &to {
                h.msg_name = to.as_ptr() as *mut libc::c_void;
                h.msg_namelen = to.len();
            }
            // The run's iovecs lie one after the other in `iovecs`, N per datagram.
            h.msg_iov = iovecs
                .as_mut_ptr()
                .cast::<libc::iovec>()
                .wrapping_add((i - range.start) * N);
            h.msg_iovlen = ((end - i) * N) as _;
            if control_len > 0 {
                h.msg_control = control.as_mut_ptr().cast();
                h.msg_controllen = control_len as _;
            }
            carried[messages] = end - i;
            messages += 1;
            i = end;
        }
        // SAFETY: the headers point at this batch's buffers, at `prefix`, at `to`, at
        // the iovecs and at the control buffers, all alive for the call; the kernel only
        // reads them (msg_len is written into the headers, which are ours).
        let n = unsafe {
            libc::sendmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                messages as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(carried[..n as usize].iter().sum())
    }
}

/// Whether segmented sends work here (cleared when the kernel lacks UDP_SEGMENT).
static SEGMENTING: AtomicBool = AtomicBool::new(true);

/// The largest datagram sent in segmented runs: one that fits a 1500-byte MTU over
/// IPv6, since segments may not be fragmented.
const MAX_SEGMENT: usize = 1452;

/// UDP_SEGMENT (linux/udp.h); not in every libc's tables.
const UDP_SEGMENT: libc::c_int = 103;

fn segmenting_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Writes, at byte `offset` of `control`, the control message that makes a datagram
/// leave from `from`; returns the space it takes.
fn write_pktinfo(control: &mut [u64; CONTROL_WORDS], offset: usize, from: IpAddr) -> usize {
    match from {
        IpAddr::V4(a) => write_control(
            control,
            offset,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(a).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            },
        ),
        IpAddr::V6(a) => write_control(
            control,
            offset,
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: a.octets(),
                },
                ipi6_ifindex: 0,
            },
        ),
    }
}

/// Writes the control message that cuts a send into datagrams of `size` bytes.
fn write_segment_size(control: &mut [u64; CONTROL_WORDS], offset: usize, size: u16) -> usize {
    write_control(control, offset, libc::SOL_UDP, UDP_SEGMENT, size)
}

/// Writes one control message carrying `value` at byte `offset` (a multiple of 8, as
/// every CMSG_SPACE is) of `control`; returns its CMSG_SPACE.
fn write_control<T: Copy>(
    control: &mut [u64; CONTROL_WORDS],
    offset: usize,
    level: libc::c_int,
    kind: libc::c_int,
    value: T,
) -> usize {
    let data_len = size_of::<T>() as u32;
    // SAFETY: CMSG_SPACE/LEN are arithmetic on their argument.
    let (space, len) = unsafe { (libc::CMSG_SPACE(data_len), libc::CMSG_LEN(data_len)) };
    let space = space as usize;
    assert!(
        offset.is_multiple_of(8) && offset + space <= CONTROL_WORDS * 8,
        "control messages fit their buffer"
    );
    // SAFETY: the header and its data lie within the buffer (checked above); the buffer
    // is 8-byte aligned and so is `offset`, which suits cmsghdr; the data may not suit
    // T's alignment, hence write_unaligned.
    unsafe {
        let cmsg = (control.as_mut_ptr() as *mut u8).add(offset) as *mut libc::cmsghdr;
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = len as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut T, value);
    }
    space
}

/// Asks the kernel to report each datagram's local address (for wildcard sockets).
pub fn report_local_address(socket: BorrowedFd<'_>, ipv6: bool) -> io::Result<()> {
    let (level, name) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
    } else {
        (libc::IPPROTO_IP, libc::IP_PKTINFO)
    };
    super::set_int_option(socket, level, name, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn a_batch_goes_out_and_comes_back_with_addresses() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        report_local_address(server.as_fd(), false).unwrap();
        let port = server.local_addr().unwrap().port();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target: SocketAddr = format!("127.0.0.3:{port}").parse().unwrap();
        for i in 0..3u8 {
            client
                .send_to(&vec![i; 100 + usize::from(i)], target)
                .unwrap();
        }
        server.set_nonblocking(true).unwrap();
        let mut batch = Batch::new();
        // Loopback delivers synchronously: all three are queued.
        assert_eq!(batch.receive(server.as_fd()).unwrap(), 3);
        for i in 0..3 {
            assert_eq!(batch.data(i), vec![i as u8; 100 + i].as_slice());
            assert_eq!(batch.peer(i), Some(client.local_addr().unwrap()));
            assert_eq!(batch.local(i), Some("127.0.0.3".parse().unwrap()));
            assert!(!batch.truncated(i));
        }
        let sent = batch
            .send(
                server.as_fd(),
                0..3,
                client.local_addr().ok(),
                Some("127.0.0.3".parse().unwrap()),
            )
            .unwrap();
        assert_eq!(sent, 3);
        let mut buf = [0u8; 200];
        for i in 0..3u8 {
            let (n, from) = client.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], vec![i; 100 + usize::from(i)].as_slice());
            assert_eq!(from, target, "the reply leaves from the address reached");
        }
        assert_eq!(
            batch.receive(server.as_fd()).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
    }

    /// Datagrams of `sizes` (datagram i filled with byte i) received in one batch,
    /// sent on in one call, and received again: what came back.
    fn round_trip(sizes: &[usize]) -> Batch {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        for (i, &n) in sizes.iter().enumerate() {
            b.send_to(&vec![i as u8; n], a.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = Batch::new();
        assert_eq!(batch.receive(a.as_fd()).unwrap(), sizes.len());
        let sent = batch
            .send(a.as_fd(), 0..sizes.len(), b.local_addr().ok(), None)
            .unwrap();
        assert_eq!(sent, sizes.len());
        let mut back = Batch::new();
        assert_eq!(back.receive(b.as_fd()).unwrap(), sizes.len());
        back
    }

    #[test]
    fn runs_of_one_size_arrive_as_the_datagrams_they_were() {
        let sizes = [100, 100, 100, 50, 100, 100, 1452, 1452, 1453, 7, 7];
        let back = round_trip(&sizes);
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(back.data(i), vec![i as u8; n].as_slice(), "datagram {i}");
        }
    }

    #[test]
    fn the_largest_datagram_passes_whole() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_nonblocking(true).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let big: Vec<u8> = (0..65507u32).map(|i| (i % 251) as u8).collect();
        client.send_to(&big, server.local_addr().unwrap()).unwrap();
        let mut batch = Batch::new();
        assert_eq!(batch.receive(server.as_fd()).unwrap(), 1);
        assert_eq!(batch.data(0), big.as_slice());
        assert_eq!(batch.local(0), None, "not asked for");
    }

    #[test]
    fn a_prefix_goes_in_front_of_every_datagram_and_runs_still_segment() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.set_nonblocking(true).unwrap();
        let sizes = [100, 100, 100, 50, 1424, 1424, 1425, 0, 7];
        for (i, &n) in sizes.iter().enumerate() {
            b.send_to(&vec![i as u8; n], a.local_addr().unwrap())
                .unwrap();
        }
        let mut batch = Batch::new();
        assert_eq!(batch.receive(a.as_fd()).unwrap(), sizes.len());
        let prefix = b"HEADER-28-BYTES-LONG-PREFIX!";
        let sent = batch
            .send_prefixed(a.as_fd(), 0..sizes.len(), b.local_addr().ok(), None, prefix)
            .unwrap();
        assert_eq!(sent, sizes.len());
        let mut back = Batch::new();
        assert_eq!(back.receive(b.as_fd()).unwrap(), sizes.len());
        for (i, &n) in sizes.iter().enumerate() {
            let mut want = prefix.to_vec();
            want.extend(vec![i as u8; n]);
            assert_eq!(back.data(i), want.as_slice(), "datagram {i}");
        }
        // Received again, cut and sent on: without the cut bytes, with or without a
        // new prefix; the next receive forgets the cuts.
        for (i, &n) in sizes.iter().enumerate() {
            back.strip(i, prefix.len());
            assert_eq!(back.payload(i), vec![i as u8; n].as_slice());
            assert_eq!(back.payload_len(i), n);
        }
        assert_eq!(
            back.send(b.as_fd(), 0..sizes.len(), a.local_addr().ok(), None)
                .unwrap(),
            sizes.len()
        );
        assert_eq!(
            back.send_prefixed(b.as_fd(), 0..2, a.local_addr().ok(), None, b"P")
                .unwrap(),
            2
        );
        assert_eq!(batch.receive(a.as_fd()).unwrap(), sizes.len() + 2);
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(batch.data(i), vec![i as u8; n].as_slice(), "datagram {i}");
            assert_eq!(batch.payload(i), batch.data(i), "nothing cut");
        }
        assert_eq!(
            batch.data(sizes.len()),
            [b"P".as_slice(), &[0; 100]].concat()
        );
    }

    #[test]
    fn a_prefix_over_the_largest_datagram_is_refused_by_the_kernel() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.set_nonblocking(true).unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        b.send_to(&vec![1; MAX_PAYLOAD_V4], a.local_addr().unwrap())
            .unwrap();
        let mut batch = Batch::new();
        assert_eq!(batch.receive(a.as_fd()).unwrap(), 1);
        let e = batch
            .send_prefixed(a.as_fd(), 0..1, b.local_addr().ok(), None, b"x")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
    }

    #[test]
    fn an_empty_datagram_after_a_run_is_not_lost() {
        let sizes = [100, 100, 0, 0, 5];
        let back = round_trip(&sizes);
        for (i, &n) in sizes.iter().enumerate() {
            assert_eq!(back.data(i).len(), n, "datagram {i}");
        }
    }
}
