//! Writing from the thread that fans out (what nats-server does at the end
//! of a read loop): while a connection handles a batch of frames it read,
//! the queues it pushes to on a plain TCP socket are not woken one by one;
//! when the batch ends each of them is written *from this thread*, one
//! vectored write per queue, if no other writer holds frames of it. A
//! delivery then costs a syscall, not a task wake-up plus a syscall, and
//! every frame a member got in the batch goes out in one write. What the
//! socket does not take stays queued and the connection is woken for it, as
//! before; TLS and WebSocket queues are always woken (their bytes need the
//! connection's own state).
//!
//! A [`Batch`] is a guard on the current thread; it is not `Send`, so a
//! task cannot hold one across an `.await` (the thread could change there).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use prometheus_client::metrics::counter::Counter;
use tokio::io::AsyncWrite;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

use super::{consume, Outbound};

/// Most frames one direct write gathers (as a connection's own writes).
pub(super) const DIRECT_BATCH: usize = 64;

/// A socket a queue may be written to from any thread, and the counter its
/// bytes go to.
#[derive(Clone)]
pub struct Direct {
    sock: Arc<dyn AsRef<TcpStream> + Send + Sync>,
    bytes_out: Counter,
}

impl std::fmt::Debug for Direct {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Direct")
    }
}

impl Outbound {
    /// Writes what is queued to the direct socket if no writer holds any of
    /// it, in one vectored write; wakes the connection for what is left
    /// (or when another writer holds frames, or there is no direct socket).
    fn write_direct(&self) {
        let mut g = self.lock();
        let Some(direct) = g.direct.clone().filter(|_| g.taken == 0 && !g.overflowed && !g.close) else {
            drop(g);
            self.notify.notify_one();
            return;
        };
        if g.queue.is_empty() {
            return;
        }
        let mut slices = [std::io::IoSlice::new(&[]); DIRECT_BATCH];
        let k = g.queue.len().min(DIRECT_BATCH);
        g.queue.iter().zip(slices.iter_mut()).for_each(|(b, s)| *s = std::io::IoSlice::new(b));
        let n = direct.try_write(&slices[..k]).unwrap_or(0);
        let ready = self.account_written(&mut g, n);
        if n > 0 {
            g.partial = consume(&mut g.queue, n);
        }
        let rest = !g.queue.is_empty();
        drop(g);
        ready.iter().for_each(|w| w.release());
        if rest {
            // A full socket, or an error the connection will meet itself.
            self.notify.notify_one();
        }
    }
}

impl Direct {
    /// Writes to `sock`, counting the bytes in `bytes_out`.
    pub fn new(sock: Arc<dyn AsRef<TcpStream> + Send + Sync>, bytes_out: Counter) -> Direct {
        Direct { sock, bytes_out }
    }

    /// One non-blocking vectored write; `WouldBlock` when the socket is full.
    pub(super) fn try_write(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let n = (*self.sock).as_ref().try_write_vectored(bufs)?;
        self.bytes_out.inc_by(n as u64);
        Ok(n)
    }
}

struct Pending {
    depth: u32,
    /// Peer links, then sessions, each in the order first pushed to.
    queues: Vec<Arc<Outbound>>,
    /// How many of `queues` (at the front) are peer links.
    links: usize,
}

thread_local! {
    static PENDING: RefCell<Pending> = const { RefCell::new(Pending { depth: 0, queues: Vec::new(), links: 0 }) };
}

/// While alive, pushes on this thread to a queue with a [`Direct`] socket
/// are written when it drops instead of waking the queue's connection.
/// Nested batches end with the outermost.
pub struct Batch {
    _on_this_thread: PhantomData<*const ()>,
}

impl Batch {
    /// Starts a batch on this thread.
    pub fn start() -> Batch {
        PENDING.with(|p| p.borrow_mut().depth += 1);
        Batch { _on_this_thread: PhantomData }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        let mut queues = PENDING.with(|p| {
            let mut p = p.borrow_mut();
            p.depth -= 1;
            match p.depth {
                0 => {
                    p.links = 0;
                    std::mem::take(&mut p.queues)
                }
                _ => Vec::new(),
            }
        });
        // No batch is open while writing: what a write releases (an ACK
        // once a link took a RELAY) is pushed and woken the usual way.
        for q in queues.drain(..) {
            q.write_direct();
        }
        // Keep the allocation for the next batch on this thread.
        PENDING.with(|p| {
            let mut p = p.borrow_mut();
            if p.queues.is_empty() && p.depth == 0 {
                p.queues = queues;
            }
        });
    }
}

/// Whether a batch is open on this thread.
pub(super) fn batching() -> bool {
    PENDING.with(|p| p.borrow().depth > 0)
}

/// Writes `q` when this thread's batch ends; `first` (a peer link) before
/// the sessions. A link carries what another server waits for (a `GOT`
/// that lets a room's owner show a message to its members and `ACK` it, a
/// `RELAY` or `SUBMIT` the next hop needs): written after a hundred
/// members' deliveries, it would reach that server a hundred syscalls
/// late, while a member written after it waits for one.
pub(super) fn defer(q: Arc<Outbound>, first: bool) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if first {
            // Links are few: the front of the list holds only links.
            p.links += 1;
            let at = p.links - 1;
            p.queues.insert(at, q);
        } else {
            p.queues.push(q);
        }
    });
}

/// The writing half of a plain TCP peer link, shared with its queue's
/// [`Direct`] writes: the link's writer task writes through this.
pub struct SharedWrite(pub Arc<OwnedWriteHalf>);

impl AsyncWrite for SharedWrite {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[IoSlice::new(buf)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let sock: &TcpStream = (*self.0).as_ref();
        loop {
            ready!(sock.poll_write_ready(cx))?;
            match sock.try_write_vectored(bufs) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => return Poll::Ready(r),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The write half shuts the socket down when its last owner drops it.
        Poll::Ready(Ok(()))
    }
}
