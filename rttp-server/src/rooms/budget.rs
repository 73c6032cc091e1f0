//! The server-wide history budget (`--history-budget`): it evicts the
//! oldest message of the whole server first.
//!
//! Why a heap of rooms and not a queue of messages: a queue entry per kept
//! message cost 80 bytes beside each (often 100-byte) message. Every kept
//! message carries an arrival number; the budget holds one entry per room
//! with history, keyed by the arrival of that room's oldest message. Eviction
//! pops the smallest, evicts that one message, and puts the room back with
//! its next oldest. An entry the room's own bounds made stale (its front
//! moved on) is put back with the right arrival when popped; one left by a
//! removed room is dropped. The heap is rebuilt from the rooms when such
//! leftovers outnumber the rooms, so it stays O(rooms).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rttp_proto::Room;

/// One room in the budget's heap: the arrival of its oldest message.
/// Ordered (and equal) by arrival only.
#[derive(Debug, Clone, Copy)]
struct Entry {
    arrival: u64,
    room: Room,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.arrival == other.arrival
    }
}

impl Eq for Entry {}

impl Ord for Entry {
    fn cmp(&self, other: &Entry) -> std::cmp::Ordering {
        self.arrival.cmp(&other.arrival)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The server-wide history budget: the bytes every room keeps, together.
#[derive(Debug)]
pub struct HistoryBudget {
    limit: usize,
    kept: AtomicUsize,
    next_arrival: AtomicU64,
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    /// The heap's length, readable without its lock: every SAY asks whether
    /// a rebuild is due, and must not take a lock to learn that it is not.
    heap_len: AtomicUsize,
    evicted: AtomicU64,
}

impl HistoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> HistoryBudget {
        HistoryBudget {
            limit,
            kept: AtomicUsize::new(0),
            next_arrival: AtomicU64::new(0),
            heap: Mutex::new(BinaryHeap::new()),
            heap_len: AtomicUsize::new(0),
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

    /// An arrival number for a message about to be kept.
    pub(crate) fn arrive(&self) -> u64 {
        self.next_arrival.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The arrival number the next message will get.
    pub(crate) fn arrivals_so_far(&self) -> u64 {
        self.next_arrival.load(Ordering::Relaxed)
    }

    /// Accounts bytes kept and bytes a room's own bounds evicted.
    pub(crate) fn account(&self, added: usize, freed: usize) {
        self.kept.fetch_add(added, Ordering::Relaxed);
        self.kept.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Accounts bytes that left: a room removed, or evicted by the budget
    /// (`messages` of them).
    pub(crate) fn release(&self, bytes: usize, by_budget: u64) {
        self.kept.fetch_sub(bytes, Ordering::Relaxed);
        self.evicted.fetch_add(by_budget, Ordering::Relaxed);
    }

    /// Puts `room` in the heap under the arrival of its oldest message.
    pub(crate) fn enqueue(&self, arrival: u64, room: Room) {
        let mut h = self.lock();
        h.push(Reverse(Entry { arrival, room }));
        self.heap_len.store(h.len(), Ordering::Relaxed);
    }

    /// The room with the oldest message, as it was enqueued.
    pub(crate) fn oldest(&self) -> Option<(u64, Room)> {
        let mut h = self.lock();
        let e = h.pop();
        self.heap_len.store(h.len(), Ordering::Relaxed);
        e.map(|Reverse(e)| (e.arrival, e.room))
    }

    /// Whether leftovers outnumber the rooms (`rooms` counts them, and is
    /// asked only when the heap is big enough for that to be possible).
    pub(crate) fn needs_rebuild(&self, rooms: impl FnOnce() -> usize) -> bool {
        let n = self.heap_len.load(Ordering::Relaxed);
        n > 4096 && n > 2 * rooms() + 4096
    }

    /// Replaces the heap with `live` (every room with history, collected
    /// after `since` was read); entries enqueued after `since` are kept.
    pub(crate) fn rebuild(&self, live: Vec<(u64, Room)>, since: u64) {
        let mut h = self.lock();
        let mut entries: Vec<Reverse<Entry>> =
            live.into_iter().map(|(arrival, room)| Reverse(Entry { arrival, room })).collect();
        entries.extend(h.iter().filter(|Reverse(e)| e.arrival > since).copied());
        *h = BinaryHeap::from(entries);
        self.heap_len.store(h.len(), Ordering::Relaxed);
    }

    /// Entries in the heap (live and leftover).
    #[cfg(test)]
    pub(crate) fn heap_len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BinaryHeap<Reverse<Entry>>> {
        self.heap.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl super::Rooms {
    /// Evicts the server's oldest kept messages until the rooms are within
    /// the budget. Called with no room lock held (it locks rooms one by one).
    pub(crate) fn enforce_budget(&self) {
        // Leftovers of removed rooms pile up even under the budget: rebuild
        // when they outnumber the rooms.
        if self.budget.needs_rebuild(|| self.map.len()) {
            let since = self.budget.arrivals_so_far();
            let mut live = Vec::new();
            for mut e in self.map.iter_mut() {
                let front = e.history.front_arrival();
                e.history.queued = front;
                if let Some(a) = front {
                    live.push((a, *e.key()));
                }
            }
            self.budget.rebuild(live, since);
        }
        while self.budget.over() {
            let Some((arrival, room)) = self.budget.oldest() else { break };
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            if st.history.queued != Some(arrival) {
                // A leftover: the room is in the heap under another arrival.
                continue;
            }
            st.history.queued = None;
            match st.history.front_arrival() {
                None => continue,
                // Its own bounds evicted past it: back in, under its oldest now.
                Some(front) if front > arrival => {}
                Some(_) => {
                    let freed = st.history.pop_front();
                    self.budget.release(freed, 1);
                }
            }
            st.history.queued = st.history.front_arrival();
            if let Some(a) = st.history.queued {
                self.budget.enqueue(a, room);
            }
        }
    }
}
