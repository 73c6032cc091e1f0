//! What peers tell the rooms: interest, remote members, relayed messages,
//! and the loss of a peer. A frame from a peer reaches local members only:
//! it is never forwarded to another peer (one hop, so no loops).

use std::sync::Arc;

use bytes::Bytes;
use rttp_proto::{Frame, MsgId, Nick, PeerFrame, Room, ServerFrame, ServerId, Text, Token};

use super::Rooms;
use crate::outbound::Outbound;

impl Rooms {
    /// A link to `peer` is up: route to it, and tell it every room that has
    /// members here. When it replaces another live link to `peer`, what
    /// that one had not written is sent again (see [`Rooms::relinked`]).
    pub fn link_up(&self, peer: ServerId, out: Arc<Outbound>) {
        let old = self.links.insert(peer, out.clone());
        let rooms: Vec<Room> = self.map.iter().filter(|e| !e.members.is_empty()).map(|e| *e.key()).collect();
        for room in rooms {
            self.to_peers(&[peer], &PeerFrame::Interest { room });
        }
        if let Some(old) = old.filter(|old| !Arc::ptr_eq(old, &out)) {
            self.relinked(peer, &old);
        }
    }

    /// `peer` is lost: its members leave every room here (the local members
    /// get `PARTED` for each), and its interest is forgotten.
    pub fn peer_down(&self, peer: ServerId) {
        self.owner_lost(peer);
        if let Some((_, link)) = self.links.remove(&peer) {
            // Nothing more is taken there: what waits on it (ACKs, messages
            // for the members of rooms this server owns) waits no more.
            link.release_all();
        }
        self.peer_load.remove(&peer);
        self.replay_budget.remove(&peer);
        let mut unused = Vec::new();
        let now = std::time::Instant::now();
        for mut st in self.map.iter_mut() {
            st.interested.retain(|p| *p != peer);
            st.replay_anchor.retain(|(p, _)| *p != peer);
            let room = *st.key();
            let gone: Vec<Nick> = st.remote.iter().filter(|(p, _)| *p == peer).map(|(_, n)| *n).collect();
            st.remote.retain(|(p, _)| *p != peer);
            // Not announced yet: they may be back in a moment (`away`).
            if st.lost_members(room, gone, now, self.presence_grace) {
                self.mark_away(room);
            }
            if st.is_unused() {
                unused.push(room);
            }
        }
        for room in unused {
            self.remove_if_unused(&room);
        }
        self.flush_shown();
    }

    /// `peer` gained (`on`) or lost its members in `room`. On gaining, it
    /// gets our members there as `RMEMBER`s.
    pub fn remote_interest(&self, peer: ServerId, room: Room, on: bool) {
        if on {
            let created = !self.map.contains_key(&room);
            let mut st = self.map.entry(room).or_default();
            if created {
                self.created_by_peer(&room, &mut st, peer);
            }
            if !st.interested.contains(&peer) {
                let mut load = self.peer_load.entry(peer).or_default();
                if load.rooms >= self.peer_bounds.0 {
                    load.refused += 1;
                    if load.refused == 1 {
                        tracing::warn!(%peer, "a peer is interested in more than {} rooms: ignored", self.peer_bounds.0);
                    }
                    drop(load);
                    let unused = st.is_unused();
                    drop(st);
                    if unused {
                        self.remove_if_unused(&room);
                    }
                    return;
                }
                load.rooms += 1;
                st.interested.push(peer);
                // A takeover in progress (a restarted owner creating the room
                // from its first peer's interest): this one may have it too.
                if let Some(t) = st.order.takeover.as_mut() {
                    if !t.waiting.contains(&peer) {
                        t.waiting.push(peer);
                    }
                } else if st.history.last_id().is_some() && self.owner_here(&room, &mut st) == self.me {
                    // A peer newly interested in a room this server orders
                    // (its first member, a link back after a loss or a
                    // restart of either side) sends its `SYNCED` right after
                    // its interest; until then new messages wait, so that it
                    // gets what it lacks before anything newer, in this order.
                    self.start_sync_wait(&room, &mut st, vec![peer]);
                }
            }
            let nicks: Vec<Nick> = st.members.iter().map(|m| m.nick).collect();
            for nick in nicks {
                self.to_peers(&[peer], &PeerFrame::RoomMember { room, nick });
            }
        } else {
            let Some(mut st) = self.map.get_mut(&room) else { return };
            let (rooms, members) = (st.interested.len(), st.remote.len());
            st.interested.retain(|p| *p != peer);
            st.remote.retain(|(p, _)| *p != peer);
            if let Some(mut load) = self.peer_load.get_mut(&peer) {
                load.rooms -= rooms - st.interested.len();
                load.members -= members - st.remote.len();
            }
            let unused = st.is_unused();
            drop(st);
            if unused {
                self.remove_if_unused(&room);
            }
        }
    }

    /// A member of `peer` is in `room`; `announce` tells local members with
    /// `JOINED` (a new join, not a resync).
    pub fn remote_joined(&self, peer: ServerId, room: Room, nick: Nick, announce: bool) {
        self.remote_joined_as(peer, room, nick, announce, false)
    }

    /// [`Rooms::remote_joined`]; `rejoin`: a client back after a move,
    /// announced only if the members here were told it left.
    pub fn remote_joined_as(&self, peer: ServerId, room: Room, nick: Nick, announce: bool, rejoin: bool) {
        let Some(mut st) = self.map.get_mut(&room) else { return };
        let announce = st.announces_join(nick, rejoin) && announce;
        if !st.remote.contains(&(peer, nick)) {
            let mut load = self.peer_load.entry(peer).or_default();
            if load.members >= self.peer_bounds.1 {
                load.refused += 1;
                if load.refused == 1 {
                    tracing::warn!(%peer, "a peer announced more than {} room members: ignored", self.peer_bounds.1);
                }
                return;
            }
            load.members += 1;
            st.remote.push((peer, nick));
        }
        if announce {
            st.announce(&ServerFrame::Joined { room, nick, at: None }.to_bytes());
        }
    }

    /// A member of `peer` left `room`; `away`: its session ended without
    /// leaving (its client may be moving), announced after the presence
    /// grace unless it is back by then.
    pub fn remote_parted(&self, peer: ServerId, room: Room, nick: Nick, away: bool) {
        let Some(mut st) = self.map.get_mut(&room) else { return };
        let known = st.remote.iter().position(|x| *x == (peer, nick));
        if let Some(i) = known {
            st.remote.swap_remove(i);
            if let Some(mut load) = self.peer_load.get_mut(&peer) {
                load.members -= 1;
            }
        }
        st.away.back(&nick);
        // Only a member the peer announced goes away: what is kept away is
        // bounded by what a peer may announce ([`super::MAX_PEER_MEMBERS`]).
        if st.left(room, nick, away && known.is_some(), self.presence_grace) {
            self.mark_away(room);
        }
    }

    /// `peer` asks for the messages after `after`: answer from our history
    /// with REPLAY frames, if we know that id, oldest first, within what
    /// `peer` may be sent ([`super::REPLAY_RATE`]): the rest is not sent.
    pub fn remote_history(&self, peer: ServerId, room: Room, after: MsgId) {
        let frames: Vec<Bytes> = {
            let Some(st) = self.map.get(&room) else { return };
            let Some(frames) = st.history.since(&after) else { return };
            let now = std::time::Instant::now();
            frames.take_while(|f| self.replay_allows(peer, f.len(), now)).cloned().collect()
        };
        for f in frames {
            // History holds encoded MSG frames: turn each back into a REPLAY.
            if let Some((id, nick, text)) = super::order::msg_parts(&f) {
                self.to_peers(&[peer], &PeerFrame::Replay { room, id, nick, text });
            }
        }
    }

    /// Whether `bytes` more of history may go to `peer` now (`REPLAY`,
    /// `TAIL`): one budget per peer ([`super::REPLAY_RATE`], in bursts of
    /// [`super::REPLAY_BURST`]), so what peers ask for or a change of owners
    /// never fills a link's queue.
    pub(super) fn replay_allows(&self, peer: ServerId, bytes: usize, now: std::time::Instant) -> bool {
        self.replay_budget
            .entry(peer)
            .or_insert_with(|| crate::ratelimit::TokenBucket::new(super::REPLAY_RATE, super::REPLAY_BURST, now))
            .take_n(bytes as f64, now)
    }

    /// A message from `peer`'s history: kept once, in the peer's order (after
    /// the previous message of its stream), and delivered only to the
    /// members that rejoined with a gap (the others saw it live).
    pub fn remote_replay(&self, peer: ServerId, room: Room, id: MsgId, nick: Nick, text: Text) {
        let Some(mut st) = self.map.get_mut(&room) else { return };
        let anchor = st.replay_anchor.iter().find(|(p, _)| *p == peer).map(|(_, a)| *a);
        match st.replay_anchor.iter_mut().find(|(p, _)| *p == peer) {
            Some(slot) => slot.1 = id,
            None => st.replay_anchor.push((peer, id)),
        }
        if st.history.contains(&id) {
            return;
        }
        let frame = ServerFrame::Msg { room, id, nick, text }.to_bytes();
        let targets: Vec<Arc<Outbound>> =
            st.members.iter().filter(|m| st.replay_to.contains(&m.session)).map(|m| m.out.clone()).collect();
        for out in targets {
            // Kept in the history below: a shared frame, streamed.
            out.push_replay(frame.clone(), &self.replays);
        }
        st.remember_replayed(room, anchor.as_ref(), id, frame, self.limits, &self.budget);
        drop(st);
        self.enforce_budget();
    }

    /// A message of the room's order, from its owner: to local members
    /// only, and into history; a local session waiting for it gets its
    /// `ACK`. Dropped when `peer` is not the owner this server follows (a
    /// woken old owner, or a new one this server does not know yet: that
    /// one sends it again once this server has synced), or when it is here
    /// already (a resent copy, or a takeover's fill).
    pub fn remote_say(&self, peer: ServerId, room: Room, id: MsgId, nick: Nick, tag: Option<Token>, text: Text) {
        let Some(mut st) = self.map.get_mut(&room) else { return };
        if self.owner_here(&room, &mut st) != peer {
            self.metrics.relays_fenced.inc();
            return;
        }
        let key = tag.map(|t| super::history::said_key(&nick, &t));
        if let Some(first) = key.and_then(|k| st.history.said(k)) {
            self.ack_pending(&room, key, first);
            return;
        }
        if !st.history.is_new(&id) {
            self.ack_pending(&room, key, id);
            return;
        }
        let frame = ServerFrame::Msg { room, id, nick, text }.to_bytes();
        let n = self.show_and_ack(&room, &mut st, key, id, frame.clone());
        self.metrics.frames_out("MSG", n as u64);
        st.remember(room, (id, key), frame, self.limits, &self.budget);
        drop(st);
        self.enforce_budget();
    }
}
