//! A session's outbound queue: shared encoded frames, bounded in bytes.
//! Whoever fans out pushes without blocking; the connection drains it in
//! batches. Two bounds make the slow-consumer policy: past the soft one the
//! session is *behind*, and may stay so for a while (a burst it will read);
//! past the hard one, or behind for too long, the queue drops everything and
//! marks the session a slow consumer, so a stalled reader never grows
//! server memory and a briefly busy one is not cut off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

mod direct;
mod replay;
mod settle;

pub use direct::{Batch, Direct, SharedWrite};
use replay::Replayed;
pub use replay::{ReplayBudget, REF_COST};
use settle::Watchers;
pub use settle::{Release, Waiter};

/// One session's queue of frames waiting to be written.
#[derive(Debug)]
pub struct Outbound {
    // A std Mutex: held only for a push or a drain, never across an await.
    inner: Mutex<Inner>,
    notify: Notify,
    /// Past this many bytes the session is behind.
    soft: usize,
    /// Past this many bytes it is cut at once.
    limit: usize,
    /// When the session last said something ([`crate::Shared::uptime_secs`]),
    /// for rebalancing, which moves quiet sessions first. It lives here
    /// because this queue is the one allocation every session shares.
    said_at: AtomicU32,
    shutting_down: AtomicBool,
    /// This queue, for a batch to write it later ([`Batch`]).
    me: Weak<Outbound>,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Bytes>,
    /// Bytes queued or drained but not yet reported written.
    bytes: usize,
    overflowed: bool,
    /// Close the connection once what is queued is written.
    close: bool,
    /// Since when the queue has been over the soft bound.
    behind_since: Option<Instant>,
    /// Bytes ever queued, and ever reported written: positions in the stream.
    pushed: u64,
    done: u64,
    /// The other side confirms what it took ([`Outbound::expect_confirmations`]),
    /// up to here: a position in the stream.
    confirming: bool,
    confirmed: u64,
    /// What waits for a position to be taken (see [`Outbound::when_taken`]).
    watchers: Watchers,
    /// The link is gone ([`Outbound::release_all`]): nothing more will be
    /// taken, so what comes to wait later is released at once.
    released: bool,
    /// Bytes a writer drained and has not reported written: while there
    /// are any, only that writer writes.
    taken: usize,
    /// The front frame was partly written by a direct write.
    partial: bool,
    /// The socket, when any thread may write it (plain TCP; see [`Batch`]).
    direct: Option<Direct>,
    /// Replayed frames queued and not yet written (see `replay`).
    replayed: Option<Box<Replayed>>,
}

impl Inner {
    /// Bytes of replayed frames queued and not yet written.
    fn replayed_bytes(&self) -> usize {
        self.replayed.as_ref().map_or(0, |r| r.bytes)
    }
}

impl Outbound {
    /// An empty queue bounded at `limit` bytes, with no soft bound.
    pub fn new(limit: usize) -> Arc<Outbound> {
        Outbound::with_soft_limit(limit, limit)
    }

    /// An empty queue that is behind past `soft` bytes and overflows past
    /// `limit` (at least `soft`).
    pub fn with_soft_limit(soft: usize, limit: usize) -> Arc<Outbound> {
        Arc::new_cyclic(|me| Outbound {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            soft,
            limit: limit.max(soft),
            said_at: AtomicU32::new(0),
            shutting_down: AtomicBool::new(false),
            me: me.clone(),
        })
    }

    /// Lets any thread write this queue to `direct` at the end of a
    /// [`Batch`], when its connection holds none of its frames.
    pub fn set_direct(&self, direct: Direct) {
        self.lock().direct = Some(direct);
    }

    /// The connection is closing: from now on only it writes.
    pub fn take_direct(&self) {
        self.lock().direct = None;
    }

    /// Records that the session said something at `secs`.
    pub fn mark_said(&self, secs: u32) {
        self.said_at.store(secs, Ordering::Relaxed);
    }

    /// When the session last said something (0: never).
    pub fn said_at(&self) -> u32 {
        self.said_at.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave Inner half-updated: recover the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a frame. Returns false when the queue is over its bound (the
    /// frame is dropped and the session is marked a slow consumer).
    pub fn push(&self, frame: Bytes) -> bool {
        self.push_at(frame).is_some()
    }

    /// [`Outbound::push`], returning the stream position at the end of this
    /// frame (what [`Outbound::when_taken`] waits for), `None` on overflow.
    pub fn push_at(&self, frame: Bytes) -> Option<u64> {
        self.queue(frame, true, None)
    }

    /// Queues a frame of a rejoin's replay: one the room's history holds
    /// too. Charged to `budget`, not to the session's own bounds, so a
    /// replay of any size the history can hold streams to a joiner that
    /// reads it (see `replay`). Returns false when a budget is exhausted
    /// (the session is then a slow consumer).
    pub fn push_replay(&self, frame: Bytes, budget: &Arc<ReplayBudget>) -> bool {
        self.queue(frame, true, Some(budget)).is_some()
    }

    /// Queues a frame for the connection's own task to write, never from the
    /// reading thread at the end of its batch: for membership news
    /// (`JOINED`, `PARTED`), which can wait a wake-up. A failover brings
    /// thousands of rejoins, each announced to every member here; written
    /// directly, that was one `writev` per member per rejoin (the kernel's
    /// share of a survivor's CPU was 80 %), while a member's own task
    /// writes all the news that arrived before it ran in one.
    pub fn push_lazy(&self, frame: Bytes) -> bool {
        self.queue(frame, false, None).is_some()
    }

    fn queue(&self, frame: Bytes, direct_ok: bool, replay: Option<&Arc<ReplayBudget>>) -> Option<u64> {
        let mut g = self.lock();
        if g.overflowed {
            return None;
        }
        if g.close {
            // After a final frame (REDIRECT, ERR 5xx) nothing else may follow.
            return Some(g.pushed);
        }
        let fits = match replay {
            Some(budget) => {
                let at = g.pushed;
                g.replayed.get_or_insert_with(|| Replayed::new(budget)).add(at, frame.len())
            }
            None => g.bytes.saturating_sub(g.replayed_bytes()) + frame.len() <= self.limit,
        };
        if !fits {
            let waiting = Self::drop_all(&mut g);
            drop(g);
            // Nothing more will be written here: nobody waits for it.
            waiting.iter().for_each(|w| w.release());
            self.notify.notify_one();
            return None;
        }
        g.bytes += frame.len();
        g.pushed += frame.len() as u64;
        // Falling behind wakes the connection too: it arms the timer that
        // cuts the session if it stays behind.
        let fell_behind = g.bytes > self.soft && g.behind_since.is_none();
        if fell_behind {
            g.behind_since = Some(Instant::now());
            if let Some(r) = g.replayed.as_mut() {
                r.progress = 0;
            }
        }
        let was_empty = g.queue.is_empty();
        g.queue.push_back(frame);
        let at = g.pushed;
        // Written when the batch ends, if nobody else is writing.
        let later = direct_ok && was_empty && !fell_behind && g.taken == 0 && g.direct.is_some() && direct::batching();
        // Only peer links confirm: another server waits on what they carry.
        let first = g.confirming;
        drop(g);
        if later {
            if let Some(me) = self.me.upgrade() {
                direct::defer(me, first);
                return Some(at);
            }
        }
        if was_empty || fell_behind {
            self.notify.notify_one();
        }
        Some(at)
    }

    /// Queues a last frame (a `REDIRECT`, an `ERR`) and asks the connection
    /// to close once it is written.
    pub fn push_final(&self, frame: Bytes) {
        let mut g = self.lock();
        if g.close {
            // One last frame per session: a second REDIRECT or ERR would
            // only confuse the client that is already leaving.
            return;
        }
        if !g.overflowed {
            g.bytes += frame.len();
            g.pushed += frame.len() as u64;
            g.queue.push_back(frame);
        }
        g.close = true;
        drop(g);
        self.notify.notify_one();
    }

    /// Whether the connection should close after flushing.
    pub fn close_requested(&self) -> bool {
        self.lock().close
    }

    /// The server is shutting down: wakes the connection, which then says
    /// `ERR 508` and closes. Through the queue's own wake-up rather than a
    /// cancellation future in every connection's task (72 bytes each).
    pub fn shut_down(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.notify.notify_one();
    }

    /// Whether [`Outbound::shut_down`] was called.
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Moves every queued frame to `into`; the bytes stay counted until
    /// [`Outbound::written`] reports them, and until then this queue is
    /// written by the caller only. Returns whether the first frame moved
    /// was partly written already (by a direct write).
    pub fn drain_into(&self, into: &mut VecDeque<Bytes>) -> bool {
        let mut g = self.lock();
        // Every byte not yet written is now the caller's (queued bytes and
        // bytes drained before are all counted in `bytes`).
        g.taken = g.bytes;
        if into.is_empty() {
            std::mem::swap(&mut g.queue, into);
        } else {
            into.extend(g.queue.drain(..));
        }
        std::mem::take(&mut g.partial)
    }

    /// Reports `n` bytes of what was drained written to the socket.
    pub fn written(&self, n: usize) {
        let mut g = self.lock();
        g.taken = g.taken.saturating_sub(n);
        let ready = self.account_written(&mut g, n);
        drop(g);
        ready.iter().for_each(|w| w.release());
    }

    /// Counts `n` bytes as written; returns what that released.
    fn account_written(&self, g: &mut Inner, n: usize) -> Vec<Arc<dyn Release>> {
        g.bytes = g.bytes.saturating_sub(n);
        let from = g.done;
        g.done += n as u64;
        let to = g.done;
        if g.replayed.as_mut().is_some_and(|r| r.written(from, to)) {
            g.replayed = None;
        }
        if g.bytes <= self.soft {
            g.behind_since = None;
        } else if g.behind_since.is_some() && g.bytes.saturating_sub(g.replayed_bytes()) <= self.soft {
            // Behind only by a replay: streaming, not slow, as long as the
            // joiner reads a soft bound's worth per `--slow-consumer-after`
            // (each such stretch starts the clock again).
            if let Some(r) = g.replayed.as_mut() {
                r.progress += n;
                if r.progress >= self.soft {
                    r.progress = 0;
                    g.behind_since = Some(Instant::now());
                }
            }
        }
        if g.confirming || g.watchers.is_empty() {
            return Vec::new();
        }
        let done = g.done;
        g.watchers.up_to(done)
    }

    /// Whether the front queued frame is partly written: nothing else may
    /// be written before the rest of it.
    pub fn partly_written(&self) -> bool {
        self.lock().partial
    }

    /// The stream position at the end of what is queued so far.
    pub fn position(&self) -> u64 {
        self.lock().pushed
    }

    /// Since when the session has been over the soft bound, if it is.
    pub fn behind_since(&self) -> Option<Instant> {
        self.lock().behind_since
    }

    /// Cuts the session as a slow consumer (it stayed behind too long): the
    /// queue is dropped, as on overflow.
    pub fn overflow(&self) {
        let mut g = self.lock();
        let waiting = Self::drop_all(&mut g);
        drop(g);
        waiting.iter().for_each(|w| w.release());
    }

    /// Marks the queue overflowed and drops what it holds; returns what
    /// waited on it, to release once the lock is let go.
    fn drop_all(g: &mut Inner) -> Vec<Arc<dyn Release>> {
        g.overflowed = true;
        g.queue = VecDeque::new();
        g.replayed = None;
        g.watchers.all()
    }

    /// Whether the bound was exceeded.
    pub fn overflowed(&self) -> bool {
        self.lock().overflowed
    }

    /// Bytes queued and not yet written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Waits until a frame is pushed or the queue overflows.
    pub async fn notified(&self) {
        self.notify.notified().await
    }
}

/// Drops the first `n` written bytes from a write queue. Returns whether
/// its front frame is now partly written.
pub fn consume(wq: &mut VecDeque<Bytes>, mut n: usize) -> bool {
    use bytes::Buf;
    while n > 0 {
        let Some(front) = wq.front_mut() else { break };
        if n >= front.len() {
            n -= front.len();
            wq.pop_front();
        } else {
            front.advance(n);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod direct_tests;
