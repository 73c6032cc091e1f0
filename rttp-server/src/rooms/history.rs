//! Room history: each room keeps its last messages for replay, bounded per
//! room (`--history`, `--history-bytes`), and all rooms together are bounded
//! by one server-wide budget (`--history-budget`) that evicts the oldest
//! message of the whole server first.
//!
//! Why a global arrival order: the budget must take from the rooms that hold
//! the oldest messages, not from the room that happens to be speaking now.
//! Each kept message carries its arrival number; the budget keeps
//! `(room, arrival)` in arrival order and evicts from the front. Entries the
//! per-room bounds already evicted go stale; the queue is rebuilt from the
//! rooms when stale ones outnumber the live ones, so it stays O(kept).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use rttp_proto::{MsgId, Room};

/// Bounds of each room's replay history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Messages kept.
    pub messages: usize,
    /// Bytes of encoded frames kept.
    pub bytes: usize,
}

/// One room's kept messages, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    kept: VecDeque<(MsgId, Bytes, u64)>,
    bytes: usize,
}

impl History {
    /// Keeps a message; evicts the room's oldest past `limits`. Returns the
    /// bytes evicted.
    pub(crate) fn push(&mut self, id: MsgId, frame: Bytes, arrival: u64, limits: HistoryLimits) -> usize {
        self.bytes += frame.len();
        self.kept.push_back((id, frame, arrival));
        let mut freed = 0;
        while self.kept.len() > limits.messages || self.bytes > limits.bytes {
            freed += self.pop_front();
        }
        freed
    }

    fn pop_front(&mut self) -> usize {
        match self.kept.pop_front() {
            Some((_, f, _)) => {
                self.bytes -= f.len();
                f.len()
            }
            None => 0,
        }
    }

    /// Evicts every message that arrived at or before `arrival`; returns the bytes.
    pub(crate) fn evict_upto(&mut self, arrival: u64) -> usize {
        let mut freed = 0;
        while self.kept.front().is_some_and(|(_, _, a)| *a <= arrival) {
            freed += self.pop_front();
        }
        freed
    }

    /// The frames after `id`, or `None` when `id` is not kept.
    pub(crate) fn after(&self, id: &MsgId) -> Option<impl Iterator<Item = &Bytes>> {
        let i = self.kept.iter().rposition(|(k, _, _)| k == id)?;
        Some(self.kept.iter().skip(i + 1).map(|(_, f, _)| f))
    }

    /// Every kept frame, oldest first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Bytes> {
        self.kept.iter().map(|(_, f, _)| f)
    }

    /// Whether `id` is kept.
    pub(crate) fn contains(&self, id: &MsgId) -> bool {
        self.kept.iter().any(|(k, _, _)| k == id)
    }

    /// Bytes kept.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Messages kept.
    pub(crate) fn len(&self) -> usize {
        self.kept.len()
    }

    /// Arrival numbers of the kept messages (for rebuilding the budget's order).
    pub(crate) fn arrivals(&self) -> impl Iterator<Item = u64> + '_ {
        self.kept.iter().map(|(_, _, a)| *a)
    }
}

/// The server-wide history budget: the bytes every room keeps, together.
#[derive(Debug)]
pub struct HistoryBudget {
    limit: usize,
    kept: AtomicUsize,
    messages: AtomicUsize,
    next_arrival: AtomicU64,
    order: Mutex<VecDeque<(Room, u64)>>,
    evicted: AtomicU64,
}

impl HistoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> HistoryBudget {
        HistoryBudget {
            limit,
            kept: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            next_arrival: AtomicU64::new(0),
            order: Mutex::new(VecDeque::new()),
            evicted: AtomicU64::new(0),
        }
    }

    /// Bytes kept by every room together.
    pub fn kept(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }

    /// Messages evicted by the budget (not by a room's own bounds).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Over budget?
    pub(crate) fn over(&self) -> bool {
        self.kept() > self.limit
    }

    /// Takes an arrival number for a message about to be kept in `room`.
    pub(crate) fn arrive(&self, room: Room) -> u64 {
        let a = self.next_arrival.fetch_add(1, Ordering::Relaxed) + 1;
        self.lock().push_back((room, a));
        a
    }

    /// Accounts a message kept (`added` bytes) and what its room evicted.
    pub(crate) fn account(&self, added: usize, freed: usize, freed_messages: usize) {
        self.kept.fetch_add(added, Ordering::Relaxed);
        self.kept.fetch_sub(freed, Ordering::Relaxed);
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.messages.fetch_sub(freed_messages, Ordering::Relaxed);
    }

    /// Accounts bytes and messages that left (a room removed, or evicted by the budget).
    pub(crate) fn release(&self, bytes: usize, messages: usize, by_budget: bool) {
        self.kept.fetch_sub(bytes, Ordering::Relaxed);
        self.messages.fetch_sub(messages, Ordering::Relaxed);
        if by_budget {
            self.evicted.fetch_add(messages as u64, Ordering::Relaxed);
        }
    }

    /// The oldest `(room, arrival)`, to evict up to.
    pub(crate) fn oldest(&self) -> Option<(Room, u64)> {
        self.lock().pop_front()
    }

    /// Whether the order queue holds far more entries than messages kept.
    pub(crate) fn needs_rebuild(&self) -> bool {
        self.lock().len() > 2 * self.messages.load(Ordering::Relaxed) + 4096
    }

    /// The arrival number the next message will get (read before a rebuild
    /// collects the rooms).
    pub(crate) fn arrivals_so_far(&self) -> u64 {
        self.next_arrival.load(Ordering::Relaxed)
    }

    /// Replaces the order with the kept messages' `(room, arrival)`,
    /// collected after `since` was read; entries that arrived after `since`
    /// are kept from the current order (a duplicate only evicts nothing).
    pub(crate) fn rebuild(&self, mut live: Vec<(Room, u64)>, since: u64) {
        let mut q = self.lock();
        live.extend(q.iter().filter(|(_, a)| *a > since).copied());
        live.sort_unstable_by_key(|(_, a)| *a);
        *q = live.into();
    }

    /// Entries in the order queue (live and stale).
    #[cfg(test)]
    pub(crate) fn order_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Room, u64)>> {
        self.order.lock().unwrap_or_else(|e| e.into_inner())
    }
}
