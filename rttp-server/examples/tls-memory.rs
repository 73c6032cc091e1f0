//! What one idle TLS session costs in rustls state, on the heap, without a
//! socket: 600 server sessions are opened in memory (handshake, a HELLO in,
//! a WELCOME out) and kept; a counting allocator reports the live bytes per
//! session past the first 300 (the server's session cache, 256 entries,
//! is full by then, so it does not count). `rttp-load tls` measures the
//! same from the server's RSS, fragmentation included.
//!
//! `cargo run --release -p rttp-server --example tls-memory`

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a
// counter is updated on the side.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Moves what `from` has to send into `to`.
fn pass(from: &mut dyn rustls_io::Side, to: &mut dyn rustls_io::Side) {
    let mut wire = Vec::new();
    from.out(&mut wire);
    if !wire.is_empty() {
        to.input(&wire);
    }
}

mod rustls_io {
    //! Both ends of an in-memory TLS session behind one face.

    /// One end.
    pub(crate) trait Side {
        /// Appends what it has to send.
        fn out(&mut self, wire: &mut Vec<u8>);
        /// Takes bytes from the other end.
        fn input(&mut self, wire: &[u8]);
    }

    impl<D> Side for rustls::ConnectionCommon<D> {
        fn out(&mut self, wire: &mut Vec<u8>) {
            while self.wants_write() {
                self.write_tls(wire).expect("write_tls");
            }
        }

        fn input(&mut self, mut wire: &[u8]) {
            while !wire.is_empty() {
                self.read_tls(&mut wire).expect("read_tls");
                self.process_new_packets().expect("TLS");
            }
        }
    }
}

fn main() {
    let dir = std::env::temp_dir().join(format!("rttp-tls-memory-{}", std::process::id()));
    let ca = integration::certs::Ca::new(&dir, "ca");
    let pair = ca.issue("s1", &["chat.farm.test"]);
    let server = rttp_server::tls::ServerTls::load(&pair.cert, &pair.key).expect("server TLS");
    let client = rttp_conn::tls::TlsClient::new(Some(&ca.cert), Some("chat.farm.test")).expect("client TLS");
    let mut kept = Vec::new();
    let mut mark = 0;
    for i in 0..600 {
        let mut s = rustls::ServerConnection::new(server.config.clone()).expect("server session");
        let name = "chat.farm.test".try_into().expect("a name");
        let mut c = rustls::ClientConnection::new(client.config().clone(), name).expect("client session");
        while c.is_handshaking() || s.is_handshaking() || s.wants_write() {
            pass(&mut *c, &mut *s);
            pass(&mut *s, &mut *c);
        }
        c.writer().write_all(b"HELLO 1 alice\r\n").expect("plaintext in");
        pass(&mut *c, &mut *s);
        let mut line = [0u8; 64];
        let _ = s.reader().read(&mut line).expect("HELLO out");
        s.writer().write_all(b"WELCOME s1 s1-1-secret\r\n").expect("plaintext out");
        pass(&mut *s, &mut *c);
        drop(c);
        kept.push(s);
        if i == 299 {
            mark = LIVE.load(Ordering::Relaxed);
        }
    }
    let per = (LIVE.load(Ordering::Relaxed) - mark) / 300;
    println!("rustls::ServerConnection: {} bytes inline", std::mem::size_of::<rustls::ServerConnection>());
    println!("an idle TLS session holds {per} bytes of heap in rustls");
    let _ = std::fs::remove_dir_all(dir);
}
