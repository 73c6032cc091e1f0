//! One order per room. Every room has an *owner*: the server that wins
//! rendezvous hashing of the room's name over the servers that are UP. The
//! owner alone gives the room's messages their ids and their order: a SAY on
//! another server goes to it as `SUBMIT`, and it sends the message back as
//! `RELAY` to every server with members in the room (the sender's too),
//! over one ordered link each, so every member everywhere reads the room in
//! the owner's order. A server takes a room's `RELAY` only from the owner
//! it knows: a hung owner that wakes up cannot slip old messages in.
//!
//! When the owner changes (lost, drained, restarted, or a new server wins
//! the hash) each server with the room sends the new owner its latest
//! messages (`TAIL`) and the last one it has (`SYNCED`). The new owner
//! holds new messages until every interested server has synced or
//! [`Rooms::set_takeover_wait`] passes; meanwhile it keeps (and relays) what
//! it lacked, and sends each server what that server lacked after its
//! last message. Every server held a prefix of the old owner's order, so
//! all of them end up with the same sequence before the new owner adds to
//! it. Tagged messages the sender's server has not seen come back are
//! kept there (`pending`) and submitted again to whoever owns the room.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rttp_proto::{Frame, MsgId, Nick, PeerFrame, Room, ServerFrame, ServerId, Text, Token};

use super::{history, RoomState, Rooms};
use crate::outbound::{Outbound, Waiter};

/// How long a new owner waits for the interested servers' `SYNCED` before
/// it orders new messages anyway (the default; a server sets it from its
/// peer timeout, the spread of the servers' failure detection).
pub const TAKEOVER_WAIT: Duration = Duration::from_secs(3);
/// Messages a room's held SAYs may reach while its new owner takes over.
pub const MAX_HELD: usize = 4096;
/// Tagged messages this server may keep waiting for their rooms' owners.
pub const MAX_PENDING: usize = 65_536;
/// A waiting message is submitted again after this long without its RELAY.
pub const RESUBMIT_AFTER: Duration = Duration::from_secs(1);
/// ...and forgotten after this long (the client gives up after 30 s).
pub const PENDING_FOR: Duration = Duration::from_secs(60);
/// The latest messages a server sends a room's new owner: at most this many
/// (a room's whole default history)...
pub const TAIL_MAX: usize = 1024;
/// ...that arrived within this many milliseconds; and all rooms' tails and
/// fills to one peer share its `REPLAY` budget (4 MiB/s, bursts of 16 MiB),
/// so that an owner change in a farm of busy rooms never fills a link.
pub const TAIL_MS: u32 = 30_000;

/// Who orders a room, as this server sees it, and a takeover in progress.
#[derive(Debug, Default)]
pub(crate) struct OrderState {
    /// The owner and its incarnation here (bumped when it is lost).
    pub(super) owner: Option<(ServerId, u64)>,
    /// This server took the room over and waits for the others.
    pub(super) takeover: Option<Takeover>,
    /// `SYNCED`s that came before this server knew it owns the room.
    pub(super) early: Vec<(ServerId, Option<MsgId>)>,
    /// `SUBMIT`s from a server that takes this one for the owner while
    /// this one still takes it for the owner (views cross for a moment
    /// while an owner drains): kept in order for whoever owns the room.
    pub(super) stash: Vec<(ServerId, Held)>,
    /// Per server, the id hashes of the `TAIL`s it sent since its last
    /// `SYNCED` (at most [`TAIL_MAX`]): what it need not be sent back.
    pub(super) tails: Vec<(ServerId, Vec<u64>)>,
}

#[derive(Debug)]
pub(super) struct Takeover {
    pub(super) waiting: Vec<ServerId>,
    pub(super) until: Instant,
    pub(super) held: Vec<Held>,
}

/// A SAY held while its room's new owner takes over.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) nick: Nick,
    pub(super) tag: Option<Token>,
    pub(super) text: Text,
}

/// A tagged message of a local session, waiting for its room's order.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The session's queue, for the `ACK`; `None` for an untagged SAY (the
    /// server gave it a tag of its own, and there is nothing to answer).
    pub(super) out: Option<Arc<Outbound>>,
    pub(super) nick: Nick,
    pub(super) tag: Token,
    pub(super) text: Text,
    pub(super) sent: Instant,
    pub(super) first: Instant,
    /// When it was said here, among all waiting messages: they are
    /// submitted again in this order, so each sender's stay in its order.
    pub(super) n: u64,
}

/// What became of a SAY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// The session is not in the room.
    NotMember,
    /// Too much is waiting for owners: try again later.
    Busy,
    /// Ordered here, and queued to this many members here so far (the
    /// others get it once a peer has it: see `shown`).
    Ordered(usize),
    /// Sent to the room's owner, or held while it takes over.
    Waiting,
}

impl Rooms {
    /// How long a new owner waits for the interested servers.
    pub fn set_takeover_wait(&mut self, wait: Duration) {
        self.takeover_wait = wait;
    }

    /// The owner of `room` now, with its incarnation.
    pub(super) fn owner_of(&self, room: &Room) -> (ServerId, u64) {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let id = crate::nicks::rendezvous(room.as_bytes(), &live).unwrap_or(self.me);
        (id, self.incarnations.get(&id).map_or(0, |n| *n))
    }

    /// The owner this room follows (set on first use). A server that has
    /// just started and owns a new room holds its messages (see
    /// [`Rooms::hold_at_start`]).
    pub(super) fn owner_here(&self, room: &Room, st: &mut RoomState) -> ServerId {
        if let Some((owner, _)) = st.order.owner {
            return owner;
        }
        let (owner, n) = self.owner_of(room);
        st.order.owner = Some((owner, n));
        if owner == self.me && self.starting() && st.order.takeover.is_none() {
            self.start_sync_wait(room, st, Vec::new());
        }
        owner
    }

    /// For `wait` from now, rooms this server owns hold their messages
    /// (until the wait is over, whoever synced): a server that has just
    /// started does not know yet who else has the room, and a restarted
    /// owner alone would order messages while the others, which saw it
    /// lost, order them elsewhere. Meanwhile the others link to it, sync
    /// their part, and it orders what was held after all of it.
    /// The hold ends earlier with [`Rooms::end_start_hold`].
    pub fn hold_at_start(&mut self, wait: Duration) {
        self.start_hold = Some(Instant::now() + wait);
    }

    pub(super) fn starting(&self) -> bool {
        !self.settled.load(std::sync::atomic::Ordering::Acquire)
            && self.start_hold.is_some_and(|until| Instant::now() < until)
    }

    /// This server has reached every server it knows of (and those have
    /// told it their interests): rooms held since the start wait only for
    /// the servers that have them.
    pub fn end_start_hold(&self) {
        if self.settled.swap(true, std::sync::atomic::Ordering::AcqRel) || self.start_hold.is_none() {
            return;
        }
        let rooms: Vec<Room> = self.takeovers.lock().unwrap_or_else(|e| e.into_inner()).clone();
        for room in rooms {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            if let Some(t) = st.order.takeover.as_mut() {
                t.waiting.retain(|p| *p != self.me);
            }
            self.maybe_finish(&room, &mut st, false);
        }
        self.enforce_budget();
    }

    /// A SAY of a local session: ordered here if this server owns the
    /// room, else sent to the owner; the `ACK` follows either way.
    pub fn submit(
        &self,
        room: &Room,
        session: super::SessionId,
        nick: Nick,
        text: Text,
        tag: Option<Token>,
    ) -> Submitted {
        self.check_frozen();
        let Some(mut st) = self.map.get_mut(room) else { return Submitted::NotMember };
        let Some(out) = st.members.iter().find(|m| m.session == session).map(|m| m.out.clone()) else {
            return Submitted::NotMember;
        };
        let key = tag.map(|t| history::said_key(&nick, &t));
        if let (Some(tag), Some(id)) = (tag, key.and_then(|k| st.history.said(k))) {
            // Resent after a move, and this server has it already.
            out.push(ServerFrame::Ack { tag, id }.to_bytes());
            return Submitted::Waiting;
        }
        let owner = self.owner_here(room, &mut st);
        if owner == self.me {
            if let Some(t) = st.order.takeover.as_mut() {
                if t.held.len() >= MAX_HELD || (key.is_some() && self.pending.len() >= MAX_PENDING) {
                    return Submitted::Busy;
                }
                t.held.push(Held { nick, tag, text: text.clone() });
                if let (Some(k), Some(tag)) = (key, tag) {
                    self.wait_for(room, k, Some(out), nick, tag, text);
                }
                return Submitted::Waiting;
            }
            let (_, delivered) = self.order(room, &mut st, nick, tag, text, Some(out));
            drop(st);
            self.enforce_budget();
            return Submitted::Ordered(delivered);
        }
        if self.pending.len() >= MAX_PENDING {
            return Submitted::Busy;
        }
        // An untagged SAY gets a tag of this server's: it is kept and sent
        // again like a tagged one, and dropped as a copy the same way.
        let (tag, out) = match tag {
            Some(t) => (t, Some(out)),
            None => (self.own_tag(), None),
        };
        let k = history::said_key(&nick, &tag);
        self.wait_for(room, k, out, nick, tag, text.clone());
        self.to_peers(&[owner], &PeerFrame::Submit { room: *room, nick, tag: Some(tag), text });
        Submitted::Waiting
    }

    /// A tag for an untagged SAY sent to another server: `_` and a number
    /// unique to this run (clients' tags are theirs; a clash costs only
    /// the client's own message).
    fn own_tag(&self) -> Token {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Token::new(&format!("_{}:{n}", self.id_prefix)).unwrap_or_else(|_| Token::new(&format!("_{n}")).expect("ascii"))
    }

    fn wait_for(&self, room: &Room, key: u64, out: Option<Arc<Outbound>>, nick: Nick, tag: Token, text: Text) {
        let now = Instant::now();
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.pending.insert((*room, key), Pending { out, nick, tag, text, sent: now, first: now, n });
    }

    /// Orders a message in a room this server owns: its id, to every
    /// interested peer (`RELAY`), to the members here (once a peer has it:
    /// see `shown`), into the history. A tagged message said here is
    /// acknowledged to `ack_to` once every link has taken its `RELAY` and
    /// the members here were shown it. Returns the id and the members here.
    pub(super) fn order(
        &self,
        room: &Room,
        st: &mut RoomState,
        nick: Nick,
        tag: Option<Token>,
        text: Text,
        ack_to: Option<Arc<Outbound>>,
    ) -> (MsgId, usize) {
        let seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let id = Token::new(&format!("{}:{seq}", self.id_prefix))
            .unwrap_or_else(|_| Token::new(&format!("m:{seq}")).expect("a short ascii token"));
        let key = tag.map(|t| history::said_key(&nick, &t));
        let marks = self.relay(room, st, id, nick, tag, text.clone(), None);
        // One release per link, and the last when the members here see it.
        let ack = tag.zip(ack_to).map(|(tag, out)| {
            let w = Waiter::new(marks.len() + 1, out, ServerFrame::Ack { tag, id }.to_bytes());
            for (link, mark) in &marks {
                link.when_taken(*mark, w.clone());
            }
            w
        });
        let frame = ServerFrame::Msg { room: *room, id, nick, text }.to_bytes();
        let delivered = self.show_ordered(room, st, (id, frame.clone()), &marks, ack);
        st.remember(*room, (id, key), frame, self.limits, &self.budget);
        self.ack_pending(room, key, id);
        (id, delivered)
    }

    /// Sends a `RELAY` to the interested peers that follow this server's
    /// order (not those a takeover still waits for: they get it when they
    /// sync). Returns each link and its position at the end of the `RELAY`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn relay(
        &self,
        room: &Room,
        st: &RoomState,
        id: MsgId,
        nick: Nick,
        tag: Option<Token>,
        text: Text,
        except: Option<ServerId>,
    ) -> Vec<(Arc<Outbound>, u64)> {
        let waiting = st.order.takeover.as_ref().map_or(&[][..], |t| &t.waiting[..]);
        let bytes = PeerFrame::Relay { room: *room, id, nick, tag, text }.to_bytes();
        let (mut marks, mut n) = (Vec::new(), 0);
        for p in st.interested.iter().filter(|p| Some(**p) != except && !waiting.contains(p)) {
            if let Some(out) = self.links.get(p) {
                n += 1;
                if let Some(mark) = out.push_at(bytes.clone()) {
                    marks.push((out.clone(), mark));
                }
            }
        }
        self.metrics.peer_frames_out("RELAY", n);
        marks
    }

    /// A local session's message reached the room's order as `id`: its ACK.
    /// A message from the room's order, shown here (after any waiting
    /// ahead of it), and the local session waiting for it acknowledged once
    /// it is shown. Returns how many members it was queued to now.
    pub(super) fn show_and_ack(
        &self,
        room: &Room,
        st: &mut RoomState,
        key: Option<u64>,
        id: MsgId,
        frame: Bytes,
    ) -> usize {
        let ack = key
            .and_then(|k| self.pending.remove(&(*room, k)))
            .and_then(|(_, p)| p.out.map(|out| Waiter::new(1, out, ServerFrame::Ack { tag: p.tag, id }.to_bytes())));
        st.show_then(id, frame, ack)
    }

    pub(super) fn ack_pending(&self, room: &Room, key: Option<u64>, id: MsgId) {
        if let Some((_, p)) = key.and_then(|k| self.pending.remove(&(*room, k))) {
            if let Some(out) = p.out {
                out.push(ServerFrame::Ack { tag: p.tag, id }.to_bytes());
            }
        }
    }

    /// A peer's `SUBMIT`: ordered if this server owns the room (once: a
    /// resent copy is answered with the first), held during a takeover,
    /// kept in the room's stash otherwise.
    pub fn remote_submit(&self, peer: ServerId, room: Room, nick: Nick, tag: Option<Token>, text: Text) {
        self.check_frozen();
        let Some(mut st) = self.map.get_mut(&room) else { return };
        let owner = self.owner_here(&room, &mut st);
        if owner != self.me {
            // The sender's view and ours differ for a moment. Passing it on
            // could hand it to a dead owner and let the sender's next one
            // overtake it: kept, in order, for when this server owns the
            // room (or passed to the new owner when ours changes). The
            // sender keeps it too and sends it again when its view changes.
            self.metrics.submits_refused.inc();
            if st.order.stash.len() < MAX_HELD {
                st.order.stash.push((peer, Held { nick, tag, text }));
            }
            return;
        }
        if let Some(t) = st.order.takeover.as_mut() {
            if t.held.len() < MAX_HELD {
                t.held.push(Held { nick, tag, text });
            }
            return;
        }
        let key = tag.map(|t| history::said_key(&nick, &t));
        if let Some(id) = key.and_then(|k| st.history.said(k)) {
            // Ordered before: the sender gets it again, and drops the copy.
            self.to_peers(&[peer], &PeerFrame::Relay { room, id, nick, tag, text });
            return;
        }
        self.order(&room, &mut st, nick, tag, text, None);
        drop(st);
        self.enforce_budget();
    }
}

impl Rooms {
    /// Sends `TAIL`s to `peer` within its `REPLAY` budget
    /// ([`Rooms::replay_allows`]); the rest is not sent.
    pub(super) fn send_tails(
        &self,
        room: &Room,
        peer: ServerId,
        msgs: impl IntoIterator<Item = (MsgId, Option<u64>, Bytes)>,
    ) {
        let now = Instant::now();
        for (id, key, frame) in msgs {
            if !self.replay_allows(peer, frame.len(), now) {
                tracing::warn!(%peer, %room, "tail cut short: the peer's replay budget is spent");
                return;
            }
            if let Some((_, nick, text)) = msg_parts(&frame) {
                self.to_peers(&[peer], &PeerFrame::Tail { room: *room, id, nick, key, text });
            }
        }
    }
}

/// The nick and text of an encoded `MSG` (the history keeps frames).
pub(super) fn msg_parts(frame: &Bytes) -> Option<(MsgId, Nick, Text)> {
    match ServerFrame::decode(frame, &rttp_proto::Limits::default()) {
        Ok(Some((ServerFrame::Msg { id, nick, text, .. }, _))) => Some((id, nick, text)),
        _ => None,
    }
}
