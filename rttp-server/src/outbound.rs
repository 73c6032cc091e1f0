//! A session's outbound queue: shared encoded frames, bounded in bytes.
//! Whoever fans out pushes without blocking; the connection drains it in
//! batches. Two bounds make the slow-consumer policy: past the soft one the
//! session is *behind*, and may stay so for a while (a burst it will read);
//! past the hard one, or behind for too long, the queue drops everything and
//! marks the session a slow consumer, so a stalled reader never grows
//! server memory and a briefly busy one is not cut off.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

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
    /// What waits for a position to be written (see [`Outbound::when_written`]).
    watchers: Vec<(u64, Arc<Waiter>)>,
}

/// Something that happens once several queues have written a frame each:
/// the `ACK` of a message once every interested peer's link has written its
/// `RELAY` to the socket (a server that dies after that has handed the
/// message on). Released by each queue, and once by its maker.
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

    /// One of the releases it waits for.
    pub fn release(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some((out, frame)) = self.then.lock().unwrap_or_else(|e| e.into_inner()).take() {
                out.push(frame);
            }
        }
    }
}

impl Outbound {
    /// An empty queue bounded at `limit` bytes, with no soft bound.
    pub fn new(limit: usize) -> Outbound {
        Outbound::with_soft_limit(limit, limit)
    }

    /// An empty queue that is behind past `soft` bytes and overflows past
    /// `limit` (at least `soft`).
    pub fn with_soft_limit(soft: usize, limit: usize) -> Outbound {
        Outbound {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            soft,
            limit: limit.max(soft),
            said_at: AtomicU32::new(0),
            shutting_down: AtomicBool::new(false),
        }
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
        let mut g = self.lock();
        if g.overflowed {
            return false;
        }
        if g.close {
            // After a final frame (REDIRECT, ERR 5xx) nothing else may follow.
            return true;
        }
        if g.bytes + frame.len() > self.limit {
            g.overflowed = true;
            g.queue = VecDeque::new();
            let waiting = std::mem::take(&mut g.watchers);
            drop(g);
            // Nothing more will be written here: nobody waits for it.
            waiting.iter().for_each(|(_, w)| w.release());
            self.notify.notify_one();
            return false;
        }
        g.bytes += frame.len();
        g.pushed += frame.len() as u64;
        // Falling behind wakes the connection too: it arms the timer that
        // cuts the session if it stays behind.
        let fell_behind = g.bytes > self.soft && g.behind_since.is_none();
        if fell_behind {
            g.behind_since = Some(Instant::now());
        }
        let was_empty = g.queue.is_empty();
        g.queue.push_back(frame);
        drop(g);
        if was_empty || fell_behind {
            self.notify.notify_one();
        }
        true
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
    /// [`Outbound::written`] reports them.
    pub fn drain_into(&self, into: &mut VecDeque<Bytes>) {
        let mut g = self.lock();
        if into.is_empty() {
            std::mem::swap(&mut g.queue, into);
        } else {
            into.extend(g.queue.drain(..));
        }
    }

    /// Reports `n` bytes written to the socket.
    pub fn written(&self, n: usize) {
        let mut g = self.lock();
        g.bytes = g.bytes.saturating_sub(n);
        g.done += n as u64;
        if g.bytes <= self.soft {
            g.behind_since = None;
        }
        if g.watchers.is_empty() {
            return;
        }
        let done = g.done;
        let (ready, waiting): (Vec<_>, Vec<_>) =
            std::mem::take(&mut g.watchers).into_iter().partition(|(m, _)| *m <= done);
        g.watchers = waiting;
        drop(g);
        ready.iter().for_each(|(_, w)| w.release());
    }

    /// The stream position at the end of what is queued so far: once
    /// [`Outbound::written`] reached it, the last frame pushed is on the socket.
    pub fn position(&self) -> u64 {
        self.lock().pushed
    }

    /// Releases `w` once the stream is written up to `mark` (at once if it is).
    pub fn when_written(&self, mark: u64, w: Arc<Waiter>) {
        let mut g = self.lock();
        if g.done >= mark || g.overflowed {
            drop(g);
            w.release();
        } else {
            g.watchers.push((mark, w));
        }
    }

    /// The link is gone: releases everything waiting on it.
    pub fn release_all(&self) {
        let waiting = std::mem::take(&mut self.lock().watchers);
        waiting.iter().for_each(|(_, w)| w.release());
    }

    /// Since when the session has been over the soft bound, if it is.
    pub fn behind_since(&self) -> Option<Instant> {
        self.lock().behind_since
    }

    /// Cuts the session as a slow consumer (it stayed behind too long): the
    /// queue is dropped, as on overflow.
    pub fn overflow(&self) {
        let mut g = self.lock();
        g.overflowed = true;
        g.queue = VecDeque::new();
        let waiting = std::mem::take(&mut g.watchers);
        drop(g);
        waiting.iter().for_each(|(_, w)| w.release());
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
mod tests {
    use super::*;

    #[test]
    fn a_waiter_fires_once_every_queue_has_written_its_mark() {
        let (a, b, session) =
            (Arc::new(Outbound::new(100)), Arc::new(Outbound::new(100)), Arc::new(Outbound::new(100)));
        a.push(Bytes::from_static(b"12345"));
        b.push(Bytes::from_static(b"123"));
        let w = Waiter::new(3, session.clone(), Bytes::from_static(b"ACK t id\r\n"));
        a.when_written(a.position(), w.clone());
        b.when_written(b.position(), w.clone());
        w.release();
        let acks = || session.queued_bytes();
        a.written(4);
        b.written(3);
        assert_eq!(acks(), 0, "a has one byte to go");
        a.written(1);
        assert_eq!(acks(), 10, "both written: the ACK is queued");
        // A link that closes or overflows releases what waits on it.
        let w = Waiter::new(2, session.clone(), Bytes::from_static(b"ACK u id\r\n"));
        a.push(Bytes::from_static(b"x"));
        a.when_written(a.position(), w.clone());
        w.release();
        assert_eq!(acks(), 10);
        a.release_all();
        assert_eq!(acks(), 20);
        let w = Waiter::new(2, session.clone(), Bytes::from_static(b"ACK v id\r\n"));
        b.push(Bytes::from_static(b"y"));
        b.when_written(b.position(), w.clone());
        w.release();
        b.overflow();
        assert_eq!(acks(), 30);
    }

    #[test]
    fn bounded_in_bytes_and_marks_overflow() {
        let q = Outbound::new(10);
        assert!(q.push(Bytes::from_static(b"12345")));
        assert!(q.push(Bytes::from_static(b"12345")));
        assert_eq!(q.queued_bytes(), 10);
        assert!(!q.push(Bytes::from_static(b"1")));
        assert!(q.overflowed());
        let mut v = VecDeque::new();
        q.drain_into(&mut v);
        assert!(v.is_empty(), "an overflowed queue is emptied at once");
        assert!(!q.push(Bytes::from_static(b"1")), "and stays closed");
    }

    #[test]
    fn behind_past_the_soft_bound_until_written_back_under_it() {
        let q = Outbound::with_soft_limit(10, 100);
        assert!(q.push(Bytes::from_static(b"1234567890")));
        assert_eq!(q.behind_since(), None, "at the soft bound: not behind");
        assert!(q.push(Bytes::from_static(b"1")));
        let since = q.behind_since().expect("behind past it");
        assert!(q.push(Bytes::from(vec![b'x'; 80])), "a burst up to the hard bound is kept");
        assert_eq!(q.behind_since(), Some(since), "behind since the first byte over");
        q.written(50);
        assert_eq!(q.behind_since(), Some(since), "41 bytes queued: still behind");
        q.written(31);
        assert_eq!(q.behind_since(), None, "caught up");
        assert!(!q.push(Bytes::from(vec![b'x'; 91])), "past the hard bound: cut at once");
    }

    #[test]
    fn consume_pops_whole_frames_and_advances_a_partial_one() {
        let mut wq: VecDeque<Bytes> = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg")].into();
        assert!(consume(&mut wq, 5));
        assert_eq!(wq, VecDeque::from([Bytes::from_static(b"fg")]));
        assert!(!consume(&mut wq, 2));
        assert!(wq.is_empty());
    }

    #[test]
    fn nothing_follows_a_final_frame() {
        let q = Outbound::new(100);
        q.push(Bytes::from_static(b"a"));
        q.push_final(Bytes::from_static(b"REDIRECT"));
        q.push(Bytes::from_static(b"FARM_INFO"));
        let mut v = VecDeque::new();
        q.drain_into(&mut v);
        assert_eq!(v, VecDeque::from([Bytes::from_static(b"a"), Bytes::from_static(b"REDIRECT")]));
        assert!(q.close_requested());
    }

    #[test]
    fn drained_bytes_count_until_written() {
        let q = Outbound::new(10);
        assert!(q.push(Bytes::from_static(b"12345678")));
        let mut v = VecDeque::new();
        q.drain_into(&mut v);
        assert_eq!(v.len(), 1);
        assert!(!q.push(Bytes::from_static(b"123")), "unwritten bytes still count");
        let q = Outbound::new(10);
        q.push(Bytes::from_static(b"12345678"));
        q.drain_into(&mut v);
        q.written(8);
        assert!(q.push(Bytes::from_static(b"123")));
    }
}
