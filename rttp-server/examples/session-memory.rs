//! What one idle plaintext session costs on the heap: a server is started in
//! this process, N sessions are opened over loopback with blocking std
//! sockets (which allocate nothing), each says HELLO and JOINs one of 100
//! rooms, and a counting allocator reports the live bytes per session and
//! which allocation sizes hold them. `rttp-load idle` measures the same
//! from the server's RSS, allocator overhead and fragmentation included.
//!
//! `cargo run --release -p rttp-server --example session-memory [-- N]`

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, Write};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes, and live allocations per size class.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live allocations of each size up to 4 KiB (the last counts the larger).
static CLASSES: [AtomicIsize; 4097] = [const { AtomicIsize::new(0) }; 4097];

fn class(size: usize) -> usize {
    size.min(4096)
}

// SAFETY: every call is forwarded to the system allocator unchanged; only
// counters are updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        CLASSES[class(l.size())].fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        CLASSES[class(l.size())].fetch_sub(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        CLASSES[class(l.size())].fetch_sub(1, Ordering::Relaxed);
        CLASSES[class(n)].fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn snapshot() -> (isize, Vec<isize>) {
    (LIVE.load(Ordering::Relaxed), CLASSES.iter().map(|c| c.load(Ordering::Relaxed)).collect())
}

/// Opens one session: HELLO, JOIN, and reads until its JOINED.
fn open(addr: std::net::SocketAddr, i: usize) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    let mut w = s.try_clone().expect("clone");
    write!(w, "HELLO 1 m{i}\r\nJOIN #idle{}\r\n", i % 100).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("JOINED") {
        line.clear();
        r.read_line(&mut line).expect("read");
    }
    r.into_inner()
}

fn main() {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let (addr, server) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut config = rttp_server::Config::new("s1").expect("config");
        config.capacity = 100_000;
        config.max_connections = 100_000;
        config.max_per_ip = 100_000;
        config.join_rate = 1e6;
        config.join_burst = 1_000_000;
        (addr, rttp_server::Server::start(config, l, None))
    });
    // A first batch warms up what is made once (rooms, maps, pools).
    let mut kept: Vec<_> = (0..200).map(|i| open(addr, i)).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (before, classes0) = snapshot();
    kept.extend((200..200 + n).map(|i| open(addr, i)));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (after, classes1) = snapshot();
    println!("{n} idle sessions: {} live heap bytes per session", (after - before) / n as isize);
    println!("live allocations per session, by size:");
    for (i, (a, b)) in classes0.iter().zip(&classes1).enumerate() {
        let per = (b - a) as f64 / n as f64;
        if per.abs() >= 0.05 {
            println!("  {i:>5} bytes: {per:.2}");
        }
    }
    drop(kept);
    rt.block_on(async {
        server.token().cancel();
        server.wait().await;
    });
}
