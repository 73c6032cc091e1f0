//! Room membership and fan-out, with no I/O: members map to outbound
//! queues, interested peers map to their links' queues. Each frame is
//! encoded once and shared (`Bytes`) by every member and link. A room's lock
//! is held while a message gets its id and is queued, so every member of a
//! room on this server sees the same order.

mod away;
#[cfg(test)]
mod away_tests;
mod budget;
#[cfg(test)]
mod dedup_tests;
mod freeze;
#[cfg(test)]
mod freeze_tests;
mod history;
#[cfg(test)]
mod hold_tests;
mod join;
mod order;
#[cfg(test)]
mod order_tests;
#[cfg(test)]
mod relink_tests;
mod remote;
#[cfg(test)]
mod replay_tests;
#[cfg(test)]
mod resubmit_tests;
mod shown;
#[cfg(test)]
mod shown_tests;
mod takeover;
#[cfg(test)]
mod tests;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use rttp_proto::{Frame, MsgId, Nick, PeerFrame, Room, ServerId, Text, Token};

use crate::metrics::Metrics;
use crate::outbound::Outbound;

/// A session's number on this server.
pub type SessionId = u64;

/// A room member on this server.
#[derive(Debug, Clone)]
pub struct Member {
    /// The session.
    pub session: SessionId,
    /// Its nick.
    pub nick: Nick,
    /// Where its frames go.
    pub out: Arc<Outbound>,
}

pub use away::{GONE_KEPT, PRESENCE_GRACE};
pub use budget::HistoryBudget;
use history::History;
pub use history::HistoryLimits;
pub use order::{Submitted, MAX_HELD, MAX_PENDING, PENDING_FOR, RESUBMIT_AFTER, TAIL_MAX, TAIL_MS, TAKEOVER_WAIT};
pub use shown::MAX_UNSHOWN;

#[derive(Debug, Default)]
struct RoomState {
    members: Vec<Member>,
    /// Peers with members in this room: they get its traffic.
    interested: Vec<ServerId>,
    /// Members on other servers, for `WHO` and for netsplit notices.
    remote: Vec<(ServerId, Nick)>,
    /// Members that left with a lost server, not announced yet (`away`).
    away: away::Away,
    history: History,
    /// Members that rejoined with a gap: REPLAYs from peers go to them.
    replay_to: Vec<SessionId>,
    /// When this room's current window of `HISTORY` asks began, and the ids
    /// asked after in it: at most [`HISTORY_ASKS`] distinct ids per
    /// [`HISTORY_ASK_EVERY`], whoever joins with a gap.
    history_asked: Option<std::time::Instant>,
    asked_after: Vec<MsgId>,
    /// Per peer, the last message of its `REPLAY` stream: where the next
    /// replayed message goes in the history.
    replay_anchor: Vec<(ServerId, MsgId)>,
    /// Who orders the room, and a takeover in progress.
    order: order::OrderState,
    /// Messages ordered here that the members here are not shown yet.
    unshown: shown::Queue,
    /// Owned through a freeze: kept with no member nor peer until then,
    /// or until a peer synced (see `freeze`).
    kept_until: Option<std::time::Instant>,
}

/// The window of `HISTORY` asks for one room: a thousand joins with the same
/// gap cost the peers one answer, not a thousand.
pub const HISTORY_ASK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// Distinct ids one room asks after per window: joiners from different
/// servers may have seen up to different messages, and each needs what it
/// missed (one ask for the first would leave the others a gap).
pub const HISTORY_ASKS: usize = 4;
/// Bytes of `REPLAY` this server sends one peer per second, and in a burst:
/// what a peer asks for can never fill the link's queue (64 MiB) and cut it.
pub const REPLAY_RATE: f64 = 4.0 * 1024.0 * 1024.0;
/// See [`REPLAY_RATE`].
pub const REPLAY_BURST: u32 = 16 << 20;
/// Rooms one peer may be interested in here: each costs a room's state.
pub const MAX_PEER_ROOMS: usize = 100_000;
/// Remote members one peer may announce here, over all rooms.
pub const MAX_PEER_MEMBERS: usize = 1_000_000;

/// What one peer has made this server hold.
#[derive(Debug, Default)]
struct PeerLoad {
    rooms: usize,
    members: usize,
    /// Interests and members refused past the bounds (logged once).
    refused: u64,
}

impl RoomState {
    /// Queues a frame to every member here; returns how many accepted it.
    fn broadcast(&self, frame: &Bytes) -> usize {
        self.members.iter().filter(|m| m.out.push(frame.clone())).count()
    }

    /// Membership news (`JOINED`, `PARTED`) to every member here, written
    /// by each member's own task ([`Outbound::push_lazy`]).
    fn announce(&self, frame: &Bytes) {
        for m in &self.members {
            m.out.push_lazy(frame.clone());
        }
    }

    /// Keeps a message for replay, within the room's bounds, and accounts it
    /// to the server-wide budget (which the caller enforces once the room's
    /// lock is released: [`Rooms::enforce_budget`]).
    fn remember(
        &mut self,
        room: Room,
        (id, key): (MsgId, Option<u64>),
        frame: Bytes,
        limits: HistoryLimits,
        budget: &HistoryBudget,
    ) {
        let added = frame.len();
        let freed = self.history.push(id, key, frame, budget.arrive(), limits);
        budget.account(added, freed);
        self.enqueue_front(room, budget);
    }

    /// Puts the room in the budget's heap under its oldest arrival, unless
    /// it is there already.
    fn enqueue_front(&mut self, room: Room, budget: &HistoryBudget) {
        if self.history.queued.is_none() {
            self.history.queued = self.history.front_arrival();
            if let Some(a) = self.history.queued {
                budget.enqueue(a, room);
            }
        }
    }

    /// Keeps a message a peer replayed, after `anchor` (see
    /// [`History::insert_after`]), accounted like [`RoomState::remember`].
    fn remember_replayed(
        &mut self,
        room: Room,
        anchor: Option<&MsgId>,
        id: MsgId,
        frame: Bytes,
        limits: HistoryLimits,
        budget: &HistoryBudget,
    ) {
        let added = frame.len();
        let freed = self.history.insert_after(anchor, id, frame, budget.arrive(), limits);
        budget.account(added, freed);
        self.enqueue_front(room, budget);
    }

    /// Nobody here, no peer interested, and nothing only this server may
    /// have: the room can go.
    fn is_unused(&self) -> bool {
        self.members.is_empty() && self.interested.is_empty() && self.kept_until.is_none()
    }
}

/// What a `JOIN` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
    /// The session was not in the room before.
    pub new_member: bool,
    /// The room had no member on this server before.
    pub first_local: bool,
    /// The after-msg-id was not in the history: everything kept was replayed.
    pub gap: bool,
    /// Messages replayed to the joiner.
    pub replayed: usize,
}

/// What a `SAY` did.
#[derive(Debug, Clone)]
pub struct Said {
    /// The message's id.
    pub id: MsgId,
    /// Members here it was queued to.
    pub delivered: usize,
    /// The tag was seen before in this room: a resent copy, not delivered again.
    pub repeated: bool,
}

/// Every room on this server, and the links to the peers.
#[derive(Debug)]
pub struct Rooms {
    map: DashMap<Room, RoomState>,
    /// The live link to each peer.
    links: DashMap<ServerId, Arc<Outbound>>,
    limits: HistoryLimits,
    budget: HistoryBudget,
    /// The bounds of rejoin replays queued to sessions.
    replays: Arc<crate::outbound::ReplayBudget>,
    /// What each peer has made this server hold, against the bounds.
    peer_load: DashMap<ServerId, PeerLoad>,
    /// Rooms and remote members one peer may create here.
    peer_bounds: (usize, usize),
    /// What each peer may still be sent as `REPLAY`, in bytes.
    replay_budget: DashMap<ServerId, crate::ratelimit::TokenBucket>,
    id_prefix: String,
    seq: AtomicU64,
    metrics: Arc<Metrics>,
    /// This server.
    me: ServerId,
    /// The servers that are UP, sorted: rooms are owned among them.
    live: std::sync::RwLock<Vec<ServerId>>,
    /// Per peer, how often it was lost: a room owned by a peer that came
    /// back is synced to it again.
    incarnations: DashMap<ServerId, u64>,
    /// A peer was lost since the last [`Rooms::rehome`].
    owner_lost: std::sync::atomic::AtomicBool,
    /// Tagged messages of local sessions waiting for their rooms' order.
    pending: DashMap<(Room, u64), order::Pending>,
    /// How long a new owner waits for the interested servers.
    takeover_wait: std::time::Duration,
    /// The freeze check, and the rooms a freeze keeps (see `freeze`).
    freeze: freeze::Freeze,
    /// Until when this just-started server holds the rooms it owns...
    start_hold: Option<std::time::Instant>,
    /// ...unless it reached every server it knows of before.
    settled: std::sync::atomic::AtomicBool,
    /// Rooms with a takeover in progress.
    takeovers: std::sync::Mutex<Vec<Room>>,
    /// When waiting messages were last submitted again.
    last_resubmit: std::sync::Mutex<std::time::Instant>,
    /// Rooms whose waiting messages a peer has confirmed.
    ready: shown::Ready,
    /// How long members of a lost server are away before `PARTED`.
    presence_grace: std::time::Duration,
    /// Rooms with members away.
    away_rooms: std::sync::Mutex<std::collections::HashSet<Room>>,
}

impl Rooms {
    /// No rooms yet. Message ids are `<id_prefix>:<sequence>`: include the
    /// server id and its generation so that ids are unique farm-wide.
    pub fn new(id_prefix: String, limits: HistoryLimits, budget: usize, metrics: Arc<Metrics>) -> Rooms {
        // The prefix starts with the server's id (checked at start-up).
        let me = ServerId::new(id_prefix.split(':').next().unwrap_or(&id_prefix))
            .unwrap_or_else(|_| ServerId::new("s").expect("a valid id"));
        Rooms {
            map: DashMap::new(),
            links: DashMap::new(),
            limits,
            budget: HistoryBudget::new(budget),
            replays: Arc::new(crate::outbound::ReplayBudget::new(usize::MAX, usize::MAX)),
            replay_budget: DashMap::new(),
            peer_load: DashMap::new(),
            peer_bounds: (MAX_PEER_ROOMS, MAX_PEER_MEMBERS),
            id_prefix,
            seq: AtomicU64::new(0),
            metrics,
            me,
            live: Default::default(),
            incarnations: DashMap::new(),
            owner_lost: Default::default(),
            pending: DashMap::new(),
            takeover_wait: TAKEOVER_WAIT,
            freeze: Default::default(),
            start_hold: None,
            settled: Default::default(),
            takeovers: Default::default(),
            last_resubmit: std::sync::Mutex::new(std::time::Instant::now()),
            ready: Default::default(),
            presence_grace: PRESENCE_GRACE,
            away_rooms: Default::default(),
        }
    }

    /// Lowers the per-peer bounds (tests).
    #[cfg(test)]
    pub(crate) fn set_peer_bounds(&mut self, rooms: usize, members: usize) {
        self.peer_bounds = (rooms, members);
    }

    /// The server-wide history budget.
    pub fn budget(&self) -> &HistoryBudget {
        &self.budget
    }

    /// Bounds the rejoin replays queued to sessions (unbounded until set).
    pub fn set_replay_bounds(&mut self, replays: crate::outbound::ReplayBudget) {
        self.replays = Arc::new(replays);
    }

    /// The bounds of rejoin replays, and what all sessions hold now.
    pub fn replays(&self) -> &crate::outbound::ReplayBudget {
        &self.replays
    }

    /// Removes `room` if nobody uses it (re-checked under the shard lock: a
    /// join may have raced in); its history leaves the budget.
    fn remove_if_unused(&self, room: &Room) {
        if let Some((_, st)) = self.map.remove_if(room, |_, st| st.is_unused()) {
            self.budget.release(st.history.bytes(), 0);
        }
    }

    /// Rooms known here (with members here or interested peers).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Queues a frame to the listed peers; returns how many got it.
    fn to_peers(&self, peers: &[ServerId], frame: &PeerFrame) -> usize {
        if peers.is_empty() {
            return 0;
        }
        let bytes = frame.to_bytes();
        let mut n = 0;
        for p in peers {
            if let Some(out) = self.links.get(p) {
                out.push(bytes.clone());
                n += 1;
            }
        }
        self.metrics.peer_frames_out(frame.verb(), n as u64);
        n
    }

    /// Queues a frame to every linked peer.
    /// Sends `frame` to `peer`; false without a live link to it.
    pub(crate) fn send_to_peer(&self, peer: ServerId, frame: &PeerFrame) -> bool {
        self.to_peers(&[peer], frame) == 1
    }

    fn to_all_peers(&self, frame: &PeerFrame) {
        let peers: Vec<ServerId> = self.links.iter().map(|e| *e.key()).collect();
        self.to_peers(&peers, frame);
    }

    /// Says `text` in `room` as `nick`, ordered here whoever owns the room
    /// (sessions go through [`Rooms::submit`], which asks the owner):
    /// assigns the id, relays it to the interested peers, queues the `MSG`
    /// to every member here (the sender too) and keeps it for replay.
    /// `None` if the session is not a member.
    pub fn say(&self, room: &Room, session: SessionId, nick: Nick, text: Text, tag: Option<Token>) -> Option<Said> {
        let mut st = self.map.get_mut(room)?;
        if !st.members.iter().any(|m| m.session == session) {
            return None;
        }
        // A tag said before in this room (the client resent it after a
        // move): it was delivered, it is not again; its id is the answer.
        let key = tag.map(|t| history::said_key(&nick, &t));
        if let Some(id) = key.and_then(|k| st.history.said(k)) {
            return Some(Said { id, delivered: 0, repeated: true });
        }
        let (id, delivered) = self.order(room, &mut st, nick, tag, text, None);
        drop(st);
        self.enforce_budget();
        Some(Said { id, delivered, repeated: false })
    }

    /// The nicks in a room: here first, then on other servers.
    /// Each nick once: while a client moves, its old session (here or on
    /// a peer) and its new one may both be listed for a moment.
    pub fn members(&self, room: &Room) -> Vec<Nick> {
        let mut nicks: Vec<Nick> = self
            .map
            .get(room)
            .map(|st| st.members.iter().map(|m| m.nick).chain(st.remote.iter().map(|(_, n)| *n)).collect())
            .unwrap_or_default();
        nicks.sort_unstable();
        nicks.dedup();
        nicks
    }

    /// The nicks in a room on this server only.
    pub fn local_members(&self, room: &Room) -> Vec<Nick> {
        self.map.get(room).map(|st| st.members.iter().map(|m| m.nick).collect()).unwrap_or_default()
    }

    /// The peers interested in a room.
    pub fn interested(&self, room: &Room) -> Vec<ServerId> {
        self.map.get(room).map(|st| st.interested.clone()).unwrap_or_default()
    }
}
