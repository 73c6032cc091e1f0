//! What waits for a queue's stream to reach a position: the `ACK` of a
//! message until every interested peer has its `RELAY`, and a room owner's
//! own members until one peer has it. A position is *taken* once the other
//! side confirmed it (`GOT`, on a peer link that speaks it) or, on a queue
//! with no confirmations, once it is written to the socket.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::Outbound;

/// Something released by a queue once its mark is taken (or the queue is
/// gone: nothing more will be taken there). Released with no lock of the
/// queue held; it must not take a room's lock either (a push that overflows
/// a queue releases its watchers, and pushes happen under rooms' locks).
pub trait Release: Send + Sync + std::fmt::Debug {
    /// One of the releases it waits for.
    fn release(&self);
}

/// Something that happens once several queues have taken a frame each:
/// the `ACK` of a message once every interested peer's link has taken its
/// `RELAY` (a server that dies after that has handed the message on).
/// Released by each queue, and once by its maker.
#[derive(Debug)]
pub struct Waiter {
    remaining: AtomicUsize,
    then: Mutex<Option<(Arc<Outbound>, Bytes)>>,
}

impl Waiter {
    /// Pushes `frame` to `out` after `n` releases.
    pub fn new(n: usize, out: Arc<Outbound>, frame: Bytes) -> Arc<Waiter> {
        Arc::new(Waiter { remaining: AtomicUsize::new(n), then: Mutex::new(Some((out, frame))) })
    }
}

impl Release for Waiter {
    fn release(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some((out, frame)) = self.then.lock().unwrap_or_else(|e| e.into_inner()).take() {
                out.push(frame);
            }
        }
    }
}

/// A queue's watchers, sorted by mark: taking a position releases a prefix.
#[derive(Debug, Default)]
pub(super) struct Watchers(VecDeque<(u64, Arc<dyn Release>)>);

impl Watchers {
    /// Adds one, in mark order (nearly always at the back: marks grow).
    pub(super) fn insert(&mut self, mark: u64, w: Arc<dyn Release>) {
        let at = self.0.partition_point(|(m, _)| *m <= mark);
        self.0.insert(at, (mark, w));
    }

    /// Takes out those whose mark is at or before `pos`, to release once
    /// the queue's lock is dropped.
    pub(super) fn up_to(&mut self, pos: u64) -> Vec<Arc<dyn Release>> {
        let n = self.0.partition_point(|(m, _)| *m <= pos);
        self.0.drain(..n).map(|(_, w)| w).collect()
    }

    /// Takes out every one.
    pub(super) fn all(&mut self) -> Vec<Arc<dyn Release>> {
        self.0.drain(..).map(|(_, w)| w).collect()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Outbound {
    /// The other side of this queue confirms what it takes
    /// ([`Outbound::confirm`]): from now on a mark is taken when confirmed,
    /// not when written. Set on a peer link that speaks `GOT`, before the
    /// link carries room traffic.
    pub fn expect_confirmations(&self) {
        self.lock().confirming = true;
    }

    /// The other side took the stream up to `pos` (a `GOT`): what waited
    /// for it is released. A position past what was ever queued (a confused
    /// peer) counts as everything queued.
    pub fn confirm(&self, pos: u64) {
        let mut g = self.lock();
        let pos = pos.min(g.pushed);
        if !g.confirming || pos <= g.confirmed {
            return;
        }
        g.confirmed = pos;
        let ready = g.watchers.up_to(pos);
        drop(g);
        ready.iter().for_each(|w| w.release());
    }

    /// Releases `w` once the stream is taken up to `mark` (at once if it
    /// is, or if nothing more will be: the queue overflowed or its link is
    /// gone).
    pub fn when_taken(&self, mark: u64, w: Arc<dyn Release>) {
        let mut g = self.lock();
        let taken = if g.confirming { g.confirmed } else { g.done };
        if taken >= mark || g.overflowed || g.released {
            drop(g);
            w.release();
        } else {
            g.watchers.insert(mark, w);
        }
    }

    /// The link is gone: releases everything waiting on it, and from now
    /// on whatever comes to wait. A room's order pushes a `RELAY` and then
    /// waits on its position, with no lock of the links map held between:
    /// a link that ends in between must not keep that wait (and every
    /// message behind it in the room) forever.
    pub fn release_all(&self) {
        let mut g = self.lock();
        g.released = true;
        let waiting = g.watchers.all();
        drop(g);
        waiting.iter().for_each(|w| w.release());
    }
}
