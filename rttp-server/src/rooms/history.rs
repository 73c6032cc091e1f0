//! Room history: each room keeps its last messages for replay, bounded per
//! room (`--history`, `--history-bytes`); all rooms together are bounded by
//! the server-wide budget (see `budget`). Within a room, each run's
//! messages (one server's numbering) stay in their order, which lookups by
//! position rely on.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use rttp_proto::MsgId;

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

/// The number a msg-id's run gave it (`s1:mwyy:42`: 42).
fn seq(id: &MsgId) -> Option<u64> {
    id.as_str().rsplit_once(':').and_then(|(_, n)| n.parse().ok())
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
        match self.run_slot(&id) {
            None => self.kept.push_back(Kept { id, key, frame, arrival, at_ms: now_ms() }),
            Some((_, at)) => self.insert_at(at, Kept { id, key, frame, arrival, at_ms: 0 }),
        }
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
        // Never before a message of the same run said before it, nor after
        // one said after it.
        let at = match self.run_slot(&id) {
            Some((lo, hi)) => at.max(lo).min(hi),
            None => at.max(self.run_bounds(&id).0),
        };
        self.bytes += frame.len();
        self.insert_at(at, Kept { id, key: None, frame, arrival, at_ms: 0 });
        let mut freed = 0;
        while self.kept.len() > limits.messages || self.bytes > limits.bytes {
            freed += self.pop_front();
        }
        freed
    }

    /// Puts `k` at `at`. It goes before the message there: it takes that
    /// one's arrival and time, so both stay in order along the history.
    fn insert_at(&mut self, at: usize, mut k: Kept) {
        match self.kept.get(at) {
            Some(next) => (k.arrival, k.at_ms) = (next.arrival, next.at_ms),
            None => k.at_ms = now_ms(),
        }
        self.kept.insert(at, k);
    }

    /// Where a message goes among those of its run (the server and run that
    /// numbered it), which a lookup by position takes to be in their
    /// order (see [`History::after`]): `None` when after the last kept
    /// message (the usual case, found without a search); else the bounds
    /// `(lo, hi)`: after every message of its run numbered before it, before
    /// the first numbered after it. A message comes out of order when a
    /// replay or a new owner's fill brings older messages than some that
    /// arrived first (a rejoin replayed the latest; the fill brings the rest).
    fn run_slot(&self, id: &MsgId) -> Option<(usize, usize)> {
        let back = self.kept.back()?;
        if origin(&back.id) == origin(id) && seq(&back.id) < seq(id) {
            return None;
        }
        let (lo, hi) = self.run_bounds(id);
        (hi < self.kept.len()).then_some((lo, hi))
    }

    fn run_bounds(&self, id: &MsgId) -> (usize, usize) {
        let (o, n) = (origin(id), seq(id));
        let run = |k: &&Kept| origin(&k.id) == o;
        let lo = self.kept.iter().rposition(|k| run(&k) && seq(&k.id) < n).map_or(0, |i| i + 1);
        let hi = self.kept.iter().position(|k| run(&k) && seq(&k.id) > n).unwrap_or(self.kept.len());
        (lo, hi.max(lo))
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
            if origin(&last.id) == origin(id) && seq(id) > seq(&last.id) {
                return true;
            }
        }
        !self.contains(id)
    }

    /// The id of the message kept just before `id`.
    pub(crate) fn before(&self, id: &MsgId) -> Option<MsgId> {
        let i = self.kept.iter().rposition(|k| k.id == *id)?;
        i.checked_sub(1).map(|j| self.kept[j].id)
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
