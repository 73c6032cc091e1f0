//! A session's outbound queue: shared encoded frames, bounded in bytes.
//! Whoever fans out pushes without blocking; the connection drains it in
//! batches. Over the bound, the queue drops everything and marks the
//! session a slow consumer, so a stalled reader never grows server memory.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::Notify;

/// One session's queue of frames waiting to be written.
#[derive(Debug)]
pub struct Outbound {
    // A std Mutex: held only for a push or a drain, never across an await.
    inner: Mutex<Inner>,
    notify: Notify,
    limit: usize,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Bytes>,
    /// Bytes queued or drained but not yet reported written.
    bytes: usize,
    overflowed: bool,
}

impl Outbound {
    /// An empty queue bounded at `limit` bytes.
    pub fn new(limit: usize) -> Outbound {
        Outbound {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            limit,
        }
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
        if g.bytes + frame.len() > self.limit {
            g.overflowed = true;
            g.queue = VecDeque::new();
            drop(g);
            self.notify.notify_one();
            return false;
        }
        g.bytes += frame.len();
        let was_empty = g.queue.is_empty();
        g.queue.push_back(frame);
        drop(g);
        if was_empty {
            self.notify.notify_one();
        }
        true
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn drained_bytes_count_until_written() {
        let q = Outbound::new(10);
        assert!(q.push(Bytes::from_static(b"12345678")));
        let mut v = VecDeque::new();
        q.drain_into(&mut v);
        assert_eq!(v.len(), 1);
        assert!(
            !q.push(Bytes::from_static(b"123")),
            "unwritten bytes still count"
        );
        let q = Outbound::new(10);
        q.push(Bytes::from_static(b"12345678"));
        q.drain_into(&mut v);
        q.written(8);
        assert!(q.push(Bytes::from_static(b"123")));
    }
}
