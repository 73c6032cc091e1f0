//! What one idle session costs on the heap: a server is started in this
//! process, N sessions are opened over loopback with blocking sockets, each
//! says HELLO and JOINs one of 100 rooms, and a counting allocator reports
//! the live bytes per session and which allocation sizes hold them. Only
//! the server's runtime threads are counted (the clients' TLS state lives
//! on the main thread). `rttp-load idle` measures the same from the
//! server's RSS, allocator overhead and fragmentation included.
//!
//! `cargo run --release -p rttp-server --example session-memory [-- N] [--tls]`

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;

/// Counts live heap bytes, and live allocations per size class.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Live allocations of each size up to 4 KiB (the last counts the larger).
static CLASSES: [AtomicIsize; 4097] = [const { AtomicIsize::new(0) }; 4097];

fn class(size: usize) -> usize {
    size.min(4096)
}

thread_local! {
    /// Set on the server's runtime threads: only their allocations count.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count(size: usize, by: isize) {
    if COUNTED.with(Cell::get) {
        LIVE.fetch_add(size as isize * by, Ordering::Relaxed);
        CLASSES[class(size)].fetch_add(by, Ordering::Relaxed);
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; only
// counters are updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count(l.size(), 1);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        count(l.size(), -1);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count(l.size(), -1);
        count(n, 1);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn snapshot() -> (isize, Vec<isize>) {
    (LIVE.load(Ordering::Relaxed), CLASSES.iter().map(|c| c.load(Ordering::Relaxed)).collect())
}

/// A client's end: a socket, or TLS over one (kept open, idle).
trait End: Read + Write {}
impl<T: Read + Write> End for T {}

/// Opens one session: HELLO, JOIN, and reads until its JOINED.
fn open(addr: std::net::SocketAddr, i: usize, tls: Option<&Arc<rustls::ClientConfig>>) -> Box<dyn End> {
    let s = std::net::TcpStream::connect(addr).expect("connect");
    let mut s: Box<dyn End> = match tls {
        None => Box::new(s),
        Some(c) => {
            let name = "chat.farm.test".try_into().expect("name");
            let conn = rustls::ClientConnection::new(c.clone(), name).expect("client");
            Box::new(rustls::StreamOwned::new(conn, s))
        }
    };
    write!(s, "HELLO 1 m{i}\r\nJOIN #idle{}\r\n", i % 100).expect("write");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("JOINED") {
        line.clear();
        r.read_line(&mut line).expect("read");
    }
    r.into_inner()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5000);
    let dir = std::env::temp_dir().join(format!("rttp-session-memory-{}", std::process::id()));
    let tls = args.iter().any(|a| a == "--tls").then(|| {
        let ca = integration::certs::Ca::new(&dir, "ca");
        let pair = ca.issue("s1", &["chat.farm.test"]);
        let server = rttp_server::tls::ServerTls::load(&pair.cert, &pair.key).expect("server TLS");
        let client = rttp_conn::tls::TlsClient::new(Some(&ca.cert), Some("chat.farm.test")).expect("client TLS");
        (server, client.config().clone())
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(|| COUNTED.with(|c| c.set(true)))
        .enable_all()
        .build()
        .expect("runtime");
    let server_tls = tls.as_ref().map(|t| t.0.clone());
    let client_tls = tls.as_ref().map(|t| t.1.clone());
    let (addr, server) = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = l.local_addr().expect("addr");
        let mut config = rttp_server::Config::new("s1").expect("config");
        config.capacity = 100_000;
        config.max_connections = 100_000;
        config.max_per_ip = 100_000;
        config.join_rate = 1e6;
        config.join_burst = 1_000_000;
        config.tls = server_tls;
        // The clients never answer a PING: no session may time out while
        // the last ones shake hands.
        config.ping_after = std::time::Duration::from_secs(3600);
        config.idle_timeout = std::time::Duration::from_secs(7200);
        (addr, rttp_server::Server::start(config, l, None))
    });
    // A first batch warms up what is made once (rooms, maps, pools).
    let mut kept: Vec<_> = (0..200).map(|i| open(addr, i, client_tls.as_ref())).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (before, classes0) = snapshot();
    kept.extend((200..200 + n).map(|i| open(addr, i, client_tls.as_ref())));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (after, classes1) = snapshot();
    assert_eq!(server.shared().users() as usize, 200 + n, "sessions were lost: the figure would be wrong");
    let kind = if client_tls.is_some() { "TLS" } else { "plaintext" };
    println!("{n} idle {kind} sessions: {} live heap bytes per session", (after - before) / n as isize);
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
    let _ = std::fs::remove_dir_all(dir);
}
