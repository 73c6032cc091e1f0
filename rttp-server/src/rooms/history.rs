//! Room history: each room keeps its last messages for replay, bounded per
//! room (`--history`, `--history-bytes`), and all rooms together are bounded
//! by one server-wide budget (`--history-budget`) that evicts the oldest
//! message of the whole server first.
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
use std::collections::{BinaryHeap, HashMap, VecDeque};
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

/// How far back, before the message a rejoining client saw last, its
/// replay starts: messages from different servers can reach two servers in
/// different orders (each relay takes its own time), so a message that came
/// before that one here may have come after it where the client was. What
/// arrived here up to this long before it is replayed too; the client drops
/// the ids it has seen. Relay skew inside a farm is milliseconds; this is
/// generous, and costs only a few messages a rejoin in most rooms.
pub(crate) const REORDER_WINDOW_MS: u32 = 500;

/// Milliseconds since this process first kept a message: a coarse clock for
/// the reorder window (it wraps after 49 days; compared with wrapping_sub).
fn now_ms() -> u32 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_millis() as u32
}

/// The server (and run) that assigned a msg-id: all but its last part
/// (`s1:mwyy:42` is s1's run `mwyy`, message 42).
fn origin(id: &MsgId) -> &str {
    id.as_str().rsplit_once(':').map_or(id.as_str(), |(o, _)| o)
}

/// The key a tagged message is known by for dropping resent copies: a
/// hash of its nick and tag (FNV-1a, 64 bits: the same on every server).
pub(crate) fn said_key(nick: &rttp_proto::Nick, tag: &rttp_proto::Token) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in nick.as_str().bytes().chain([b' ']).chain(tag.as_str().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// A 64-bit hash of a msg-id (FNV-1a): what a takeover remembers of the
/// messages each server sent it, instead of the ids themselves.
pub(crate) fn id_hash(id: &MsgId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_str().bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One kept message.
#[derive(Debug)]
struct Kept {
    id: MsgId,
    /// [`said_key`] of a tagged message.
    key: Option<u64>,
    frame: Bytes,
    /// Its arrival number (server-wide), for the budget.
    arrival: u64,
    /// When it arrived here ([`now_ms`]), for the reorder window.
    at_ms: u32,
}

/// One room's kept messages, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History {
    kept: VecDeque<Kept>,
    bytes: usize,
    /// The ids of the tagged messages kept, by [`said_key`]: a resent
    /// message is known for as long as the history keeps the first copy.
    said: HashMap<u64, MsgId>,
    /// The arrival under which this room is in the budget's heap, if it is.
    pub(crate) queued: Option<u64>,
}

impl History {
    /// Keeps a message; evicts the room's oldest past `limits`. Returns the
    /// bytes evicted.
    pub(crate) fn push(
        &mut self,
        id: MsgId,
        key: Option<u64>,
        frame: Bytes,
        arrival: u64,
        limits: HistoryLimits,
    ) -> usize {
        self.bytes += frame.len();
        if let Some(k) = key {
            self.said.insert(k, id);
        }
        self.kept.push_back(Kept { id, key, frame, arrival, at_ms: now_ms() });
        let mut freed = 0;
        while self.kept.len() > limits.messages || self.bytes > limits.bytes {
            freed += self.pop_front();
        }
        freed
    }

    /// Keeps a message a peer replayed, right after `anchor` when that is
    /// kept, else first: so the history keeps the order the peer saw, and a
    /// later `after` lookup never skips messages that arrived live before
    /// the replay did. It takes the arrival of the message it goes before
    /// (or `arrival`, last), so arrivals stay in order for the budget.
    /// Returns the bytes evicted.
    pub(crate) fn insert_after(
        &mut self,
        anchor: Option<&MsgId>,
        id: MsgId,
        frame: Bytes,
        arrival: u64,
        limits: HistoryLimits,
    ) -> usize {
        let at = anchor.and_then(|a| self.kept.iter().rposition(|k| k.id == *a)).map_or(0, |i| i + 1);
        // It goes before the message at `at`: it takes that one's arrival and
        // time, so both stay in order along the history.
        let (arrival, at_ms) = self.kept.get(at).map_or((arrival, now_ms()), |k| (k.arrival, k.at_ms));
        self.bytes += frame.len();
        self.kept.insert(at, Kept { id, key: None, frame, arrival, at_ms });
        let mut freed = 0;
        while self.kept.len() > limits.messages || self.bytes > limits.bytes {
            freed += self.pop_front();
        }
        freed
    }

    /// Evicts the oldest message; returns its bytes.
    pub(crate) fn pop_front(&mut self) -> usize {
        match self.kept.pop_front() {
            Some(k) => {
                self.bytes -= k.frame.len();
                if let Some(key) = k.key {
                    self.said.remove(&key);
                }
                k.frame.len()
            }
            None => 0,
        }
    }

    /// The arrival number of the oldest message kept.
    pub(crate) fn front_arrival(&self) -> Option<u64> {
        self.kept.front().map(|k| k.arrival)
    }

    /// [`History::after`] a position: a msg-id, or [`rttp_proto::ROOM_START`]
    /// (everything kept).
    pub(crate) fn since(&self, pos: &MsgId) -> Option<Box<dyn Iterator<Item = &Bytes> + '_>> {
        if pos.as_str() == rttp_proto::ROOM_START {
            return Some(Box::new(self.all()));
        }
        self.after(pos).map(|i| Box::new(i) as Box<dyn Iterator<Item = &Bytes>>)
    }

    /// The frames after `id`, and before it those that arrived here up to
    /// [`REORDER_WINDOW_MS`] before it; `None` when `id` is not kept.
    pub(crate) fn after(&self, id: &MsgId) -> Option<impl Iterator<Item = &Bytes>> {
        let i = self.kept.iter().rposition(|k| k.id == *id)?;
        let t = self.kept[i].at_ms;
        let close = |k: &Kept| t.wrapping_sub(k.at_ms) <= REORDER_WINDOW_MS;
        let from = self.kept.iter().take(i).rposition(|k| !close(k)).map_or(0, |j| j + 1);
        // One server's messages reach every server in the order it said them
        // (one hop, over one ordered link): only other servers' can be out of order.
        let own = *id;
        let before = self.kept.iter().skip(from).take(i - from).filter(move |k| origin(&k.id) != origin(&own));
        Some(before.chain(self.kept.iter().skip(i + 1)).map(|k| &k.frame))
    }

    /// Whether `id` is not kept here. A message from the same origin as the
    /// last one kept and later in its sequence is new without a search:
    /// that is every message on a room's usual path, one owner's stream.
    pub(crate) fn is_new(&self, id: &MsgId) -> bool {
        if let Some(last) = self.kept.back() {
            let seq = |m: &MsgId| m.as_str().rsplit_once(':').and_then(|(_, n)| n.parse::<u64>().ok());
            if origin(&last.id) == origin(id) && seq(id) > seq(&last.id) {
                return true;
            }
        }
        !self.contains(id)
    }

    /// The id of the last message kept.
    pub(crate) fn last_id(&self) -> Option<MsgId> {
        self.kept.back().map(|k| k.id)
    }

    /// What a server that synced lacks, oldest first, with resend keys:
    /// everything after its `last` message (when kept here) and, of the
    /// latest messages (at most `max`, kept within `within_ms`), those
    /// whose id hash ([`id_hash`]) is not in `has` (what it sent as its
    /// tail). A server with a prefix of this history gets the rest; one
    /// that ordered messages of its own meanwhile (a partition) gets this
    /// side's recent ones too.
    pub(crate) fn fills(
        &self,
        last: Option<&MsgId>,
        has: &[u64],
        max: usize,
        within_ms: u32,
    ) -> Vec<(MsgId, Option<u64>, Bytes)> {
        let recent = self.kept.len() - self.recent_len(max, within_ms);
        let after = last.and_then(|l| self.kept.iter().rposition(|k| k.id == *l)).map(|i| i + 1);
        let from = after.map_or(recent, |a| a.min(recent));
        self.kept
            .iter()
            .skip(from)
            .filter(|k| Some(&k.id) != last && !has.contains(&id_hash(&k.id)))
            .map(|k| (k.id, k.key, k.frame.clone()))
            .collect()
    }

    fn recent_len(&self, max: usize, within_ms: u32) -> usize {
        let now = now_ms();
        self.kept.iter().rev().take(max).take_while(|k| now.wrapping_sub(k.at_ms) <= within_ms).count()
    }

    /// The latest messages: at most `max`, kept here within `within_ms`,
    /// oldest first, with their resend keys.
    pub(crate) fn recent(&self, max: usize, within_ms: u32) -> impl Iterator<Item = (&MsgId, Option<u64>, &Bytes)> {
        let n = self.recent_len(max, within_ms);
        self.kept.iter().skip(self.kept.len() - n).map(|k| (&k.id, k.key, &k.frame))
    }

    /// Every kept frame, oldest first.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Bytes> {
        self.kept.iter().map(|k| &k.frame)
    }

    /// The id of the kept message with this [`said_key`].
    pub(crate) fn said(&self, key: u64) -> Option<MsgId> {
        self.said.get(&key).copied()
    }

    /// Whether `id` is kept.
    pub(crate) fn contains(&self, id: &MsgId) -> bool {
        self.kept.iter().any(|k| k.id == *id)
    }

    /// Bytes kept.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }
}

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
