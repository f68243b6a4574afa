//! Memory per entry, counted by a global allocator (net bytes this thread holds): a
//! closed connection entry (TIME_WAIT) costs at most 256 bytes, the container's share
//! included; a live connection's entry and a persistence template are counted and
//! bounded too, so that a change that makes them grow is seen. `cargo test --test
//! entry_memory -- --nocapture` prints the figures (README, "Memory per entry").

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use uvs::conn::{ConnTable, NewConn, State};
use uvs::persist::{DEFAULT_MAX_TEMPLATES, Templates};
use uvs::sched::{Packet, schedule};
use uvs::table::limit::Slot;
use uvs::table::{
    Command, Forward, Netmask, Protocol, RealServerState, ServerConfig, ServiceConfig,
    ServiceFlags, ServiceKey, Table, Timeouts, Tunnel, UnicastOnly,
};

/// Counts, per thread, the bytes allocated and not yet freed (each test runs on its
/// own thread, and frees what it allocates on it).
struct Counting;

thread_local! {
    static HELD: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // try_with: nothing to count while the thread is being torn down.
    let _ = HELD.try_with(|h| h.set(h.get() + delta));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn held() -> isize {
    HELD.with(Cell::get)
}

const N: usize = 100_000;

/// Client `n` (a different address and port for each).
fn client(n: usize) -> SocketAddr {
    SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(0x6440_0000 + n as u32)),
        1024 + (n % 60_000) as u16,
    )
}

fn new_conn(n: usize, server: &Arc<RealServerState>) -> NewConn {
    NewConn {
        protocol: Protocol::Tcp,
        client: client(n),
        local: "10.0.0.1:80".parse().unwrap(),
        dest: "192.168.0.1:8080".parse().unwrap(),
        fwmark: 0,
        slot: Slot::take(server).expect("no limit"),
        template: None,
        state: State::SynRecv,
    }
}

/// A closed entry, its connection's task (a future of 2 KB, as the TCP path's is)
/// ended and its `Conn` dropped, as the TCP path does: the entry must not keep the task.
#[test]
fn a_closed_entry_costs_at_most_256_bytes() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let table = ConnTable::new();
    let server = Arc::new(RealServerState::default());
    let t = Timeouts::default();
    let before = held();
    for n in 0..N {
        let c = table.open(new_conn(n, &server));
        let task = rt.spawn(async {
            let state = [1u8; 2048];
            tokio::task::yield_now().await;
            std::hint::black_box(&state);
        });
        c.attach(task.abort_handle());
        let _ = rt.block_on(task);
        c.set_state(State::Established);
        table.close(&c, State::TimeWait, &t);
    }
    let per_entry = (held() - before) / N as isize;
    println!("closed entry (TIME_WAIT): {per_entry} bytes ({N} entries)");
    assert_eq!(server.inactive(), N as u32);
    assert!(per_entry <= 256, "{per_entry} bytes per closed entry");
}

#[test]
fn a_live_entry_is_counted() {
    let table = ConnTable::new();
    let server = Arc::new(RealServerState::default());
    let before = held();
    let mut conns = Vec::with_capacity(N);
    let vec = held() - before;
    for n in 0..N {
        conns.push(table.open(new_conn(n, &server)));
    }
    let per_entry = (held() - before - vec) / N as isize;
    println!("live connection entry (Conn and its table slot): {per_entry} bytes ({N} entries)");
    assert!(per_entry <= 512, "{per_entry} bytes per live entry");
}

#[test]
fn a_template_is_counted() {
    let key = ServiceKey::Inet {
        protocol: Protocol::Tcp,
        addr: "10.0.0.1".parse().unwrap(),
        port: 80,
    };
    let mut table = Table::new();
    let add = Command::AddService(ServiceConfig {
        key,
        scheduler: "rr".into(),
        flags: ServiceFlags(ServiceFlags::PERSISTENT),
        timeout: 300,
        netmask: Netmask::full(key.family()),
        pe: None,
        options: Default::default(),
    });
    table.apply(&add, &UnicastOnly).expect("add").carry_out();
    let server = Command::AddServer {
        service: key,
        server: ServerConfig {
            options: Default::default(),
            addr: "192.168.0.1".parse().unwrap(),
            port: 8080,
            forward: Forward::Masq,
            weight: 1,
            u_threshold: 0,
            l_threshold: 0,
            tunnel: Tunnel::default(),
        },
    };
    table.apply(&server, &UnicastOnly).expect("add").carry_out();
    let svc = table.service(&key).expect("service");
    let templates = Templates::new(Default::default(), DEFAULT_MAX_TEMPLATES);
    let before = held();
    for n in 0..N {
        let packet = Packet {
            client: client(n),
            local: "10.0.0.1:80".parse().unwrap(),
        };
        // The choice (and its hold on the template) is dropped at once.
        let choice = schedule(&templates, svc, &packet).next();
        assert!(choice.is_some_and(|c| c.template.is_some()));
    }
    let per_template = (held() - before) / N as isize;
    println!("persistence template: {per_template} bytes ({N} templates)");
    assert_eq!(templates.len(), N);
    assert!(per_template <= 512, "{per_template} bytes per template");
}
