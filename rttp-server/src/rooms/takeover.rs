//! Rooms changing owner: when the set of UP servers changes (or an owner
//! restarts), each server recomputes every room's owner. A server that is
//! no longer the owner, or never was, sends the new one its latest
//! messages (`TAIL`), its last one (`SYNCED`) and its members' messages
//! still waiting (`SUBMIT`, in the order said). The new owner holds new
//! messages until every interested server has synced or the takeover wait
//! passes, keeps and relays what it lacked, and sends each server what that
//! one lacks (see `History::fills`). See `order` for the steady state.

use std::time::Instant;

use rttp_proto::{Frame, MsgId, Nick, PeerFrame, Room, ServerFrame, ServerId, Text};

use crate::outbound::Outbound;

use super::history;
use super::order::{Held, Takeover, PENDING_FOR, RESUBMIT_AFTER, TAIL_MAX, TAIL_MS};
use super::{RoomState, Rooms};

impl Rooms {
    /// The servers that are UP (this one included when it is): rooms are
    /// owned among them. Called whenever the table is published; rooms
    /// whose owner changed are synced to the new one.
    pub fn rehome(&self, mut live: Vec<ServerId>) {
        live.sort();
        {
            let mut l = self.live.write().unwrap_or_else(|e| e.into_inner());
            let lost = self.owner_lost.swap(false, std::sync::atomic::Ordering::AcqRel);
            if *l == live && !lost {
                return;
            }
            *l = live;
        }
        let rooms: Vec<Room> = self.map.iter().map(|e| *e.key()).collect();
        for room in rooms {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            let new = self.owner_of(&room);
            let old = st.order.owner.replace(new);
            if old == Some(new) || old.is_none() {
                continue;
            }
            if new.0 == self.me {
                // Every linked server with members, and the old owner if it
                // is still linked (it drains): each has a prefix of the order.
                let old = old.map(|o| o.0);
                let waiting: Vec<ServerId> = st
                    .interested
                    .iter()
                    .copied()
                    .chain(old)
                    .filter(|p| *p != self.me && self.links.contains_key(p))
                    .collect();
                self.start_takeover(&room, &mut st, waiting);
            } else {
                let mut held = st.order.takeover.take().map(|t| t.held).unwrap_or_default();
                // A stash from the new owner itself: it has those waiting.
                let stash = std::mem::take(&mut st.order.stash);
                held.splice(0..0, stash.into_iter().filter(|(p, _)| *p != new.0).map(|(_, h)| h));
                self.hand_to(&room, &mut st, new.0);
                for h in held {
                    self.to_peers(&[new.0], &PeerFrame::Submit { room, nick: h.nick, tag: h.tag, text: h.text });
                }
                // Under the room's lock: a SAY said meanwhile (it sees the
                // new owner) must not reach it before the older ones.
                self.resubmit_room(&room, new.0);
            }
        }
    }

    /// `peer` was lost: rooms it owned get a new incarnation of it (if it
    /// comes back it starts empty and is synced again).
    pub(super) fn owner_lost(&self, peer: ServerId) {
        *self.incarnations.entry(peer).or_default() += 1;
        self.owner_lost.store(true, std::sync::atomic::Ordering::Release);
    }

    /// A room was created here by `peer`'s interest: if this server owns
    /// it, the peer may have history for it; wait for its `SYNCED`.
    pub(super) fn created_by_peer(&self, room: &Room, st: &mut RoomState, peer: ServerId) {
        if self.owner_here(room, st) == self.me {
            self.start_takeover(room, st, vec![peer]);
        }
    }

    pub(super) fn start_takeover(&self, room: &Room, st: &mut RoomState, waiting: Vec<ServerId>) {
        self.metrics.room_takeovers.inc();
        self.start_sync_wait(room, st, waiting);
    }

    /// New messages of `room` wait until every server in `waiting` has
    /// sent its `SYNCED` (or the takeover wait passed).
    pub(super) fn start_sync_wait(&self, room: &Room, st: &mut RoomState, mut waiting: Vec<ServerId>) {
        let mut until = Instant::now() + self.takeover_wait;
        if let Some(hold) = self.start_hold.filter(|_| self.starting()) {
            // Just started: nobody's SYNCED ends the wait, only its end
            // (this server stands for the peers it does not know yet).
            waiting.push(self.me);
            until = hold;
        }
        // What was said before the takeover is ordered before what comes
        // during it: the stash, then this server's waiting messages.
        let mut held: Vec<Held> = std::mem::take(&mut st.order.stash).into_iter().map(|(_, h)| h).collect();
        let mut mine: Vec<(u64, Held)> = self
            .pending
            .iter()
            .filter(|e| e.key().0 == *room)
            .map(|e| (e.n, Held { nick: e.nick, tag: Some(e.tag), text: e.text.clone() }))
            .collect();
        mine.sort_unstable_by_key(|m| m.0);
        held.extend(mine.into_iter().map(|(_, h)| h));
        held.extend(st.order.takeover.take().map(|t| t.held).unwrap_or_default());
        st.order.takeover = Some(Takeover { waiting, until, held });
        self.takeovers.lock().unwrap_or_else(|e| e.into_inner()).push(*room);
        for (peer, last) in std::mem::take(&mut st.order.early) {
            self.synced_here(room, st, peer, last);
        }
        self.maybe_finish(room, st, false);
    }

    /// Tells `owner` what this server has of `room`, if anything (members
    /// here, or a history): then a peer has it, and a freeze keeps it no more.
    fn hand_to(&self, room: &Room, st: &mut RoomState, owner: ServerId) {
        if !st.members.is_empty() || st.history.last_id().is_some() {
            self.sync_to(room, st, owner);
            st.handed_on();
        }
    }

    /// Tells `owner` what this server has of `room`: its latest messages
    /// and its last one.
    pub(super) fn sync_to(&self, room: &Room, st: &RoomState, owner: ServerId) {
        self.send_tails(room, owner, st.history.recent(TAIL_MAX, TAIL_MS).map(|(i, k, f)| (*i, k, f.clone())));
        self.to_peers(&[owner], &PeerFrame::Synced { room: *room, last: st.history.last_id() });
    }

    /// A peer's `TAIL` for a room: a message this server lacks is kept and
    /// shown here, and relayed to the peers that follow this server.
    pub fn remote_tail(&self, peer: ServerId, room: Room, id: MsgId, nick: Nick, key: Option<u64>, text: Text) {
        let Some(mut st) = self.map.get_mut(&room) else { return };
        let owner = self.owner_here(&room, &mut st);
        if owner != peer {
            // A server syncing with us (not the owner's fills): remember
            // what it has.
            let i = match st.order.tails.iter().position(|(p, _)| *p == peer) {
                Some(i) => i,
                None => {
                    st.order.tails.push((peer, Vec::new()));
                    st.order.tails.len() - 1
                }
            };
            if st.order.tails[i].1.len() < TAIL_MAX {
                st.order.tails[i].1.push(history::id_hash(&id));
            }
        }
        if !st.history.is_new(&id) || key.is_some_and(|k| st.history.said(k).is_some()) {
            return;
        }
        if owner == self.me {
            self.relay(&room, &st, id, nick, None, text.clone(), Some(peer));
        }
        let frame = ServerFrame::Msg { room, id, nick, text }.to_bytes();
        self.show_and_ack(&room, &mut st, key, id, frame.clone());
        st.remember(room, (id, key), frame, self.limits, &self.budget);
        drop(st);
        self.enforce_budget();
    }

    /// A peer's `SYNCED`: it gets what it lacks after its last message,
    /// and a takeover waits for it no more.
    pub fn remote_synced(&self, peer: ServerId, room: Room, last: Option<MsgId>) {
        let Some(mut st) = self.map.get_mut(&room) else { return };
        if self.owner_here(&room, &mut st) != self.me {
            st.order.early.retain(|(p, _)| *p != peer);
            st.order.early.push((peer, last));
            return;
        }
        self.synced_here(&room, &mut st, peer, last);
        self.maybe_finish(&room, &mut st, false);
    }

    fn synced_here(&self, room: &Room, st: &mut RoomState, peer: ServerId, last: Option<MsgId>) {
        // What it lacks (History::fills), as `TAIL`s with their keys: a
        // copy it has under another id is dropped there.
        let has = st.order.tails.iter().position(|(p, _)| *p == peer).map(|i| st.order.tails.swap_remove(i).1);
        let fills = st.history.fills(last.as_ref(), has.as_deref().unwrap_or(&[]), TAIL_MAX, TAIL_MS);
        self.send_tails(room, peer, fills);
        st.handed_on();
        if let Some(t) = st.order.takeover.as_mut() {
            t.waiting.retain(|p| *p != peer);
        }
    }

    /// Ends a takeover once nobody is awaited (or `force`: the wait is
    /// over): the held messages are ordered.
    pub(super) fn maybe_finish(&self, room: &Room, st: &mut RoomState, force: bool) {
        let done = st.order.takeover.as_ref().is_some_and(|t| force || t.waiting.is_empty());
        if !done {
            return;
        }
        let Some(t) = st.order.takeover.take() else { return };
        for h in t.held {
            let key = h.tag.map(|tag| history::said_key(&h.nick, &tag));
            if let Some(id) = key.and_then(|k| st.history.said(k)) {
                self.ack_pending(room, key, id);
                continue;
            }
            let local = key.and_then(|k| self.pending.remove(&(*room, k)));
            let ack_to = local.and_then(|(_, p)| p.out);
            self.order(room, st, h.nick, h.tag, h.text, ack_to);
        }
    }

    /// Ends overdue takeovers, announces the members away past the
    /// presence grace, and submits again what waited too long.
    /// Called by the farm driver on its tick.
    pub fn tick(&self, now: Instant) {
        self.stamp();
        self.sweep_kept(now);
        self.sweep_away(now);
        let rooms = std::mem::take(&mut *self.takeovers.lock().unwrap_or_else(|e| e.into_inner()));
        let mut still = Vec::new();
        for room in rooms {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            let overdue = st.order.takeover.as_ref().map(|t| now >= t.until);
            match overdue {
                Some(true) => {
                    self.maybe_finish(&room, &mut st, true);
                    drop(st);
                    self.enforce_budget();
                }
                Some(false) => still.push(room),
                None => {}
            }
        }
        self.takeovers.lock().unwrap_or_else(|e| e.into_inner()).extend(still);
        let mut last = self.last_resubmit.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(*last) < RESUBMIT_AFTER {
            return;
        }
        *last = now;
        drop(last);
        self.pending.retain(|_, p| now.duration_since(p.first) < PENDING_FOR);
        let mut stale: Vec<(u64, Room, u64)> = self
            .pending
            .iter()
            .filter(|e| now.duration_since(e.sent) >= RESUBMIT_AFTER)
            .map(|e| (e.n, e.key().0, e.key().1))
            .collect();
        stale.sort_unstable_by_key(|s| s.0);
        for (_, room, key) in stale {
            let (owner, _) = self.owner_of(&room);
            if owner == self.me {
                self.order_pending_here(&room, key);
            } else if let Some(mut p) = self.pending.get_mut(&(room, key)) {
                p.sent = now;
                let frame = PeerFrame::Submit { room, nick: p.nick, tag: Some(p.tag), text: p.text.clone() };
                drop(p);
                self.to_peers(&[owner], &frame);
            }
        }
    }

    /// The link to `peer` was replaced by a new one with no loss of the
    /// peer: both servers dialed at once, and the membership keeps the link
    /// the smaller id dialed, after the other may have carried a moment's
    /// traffic (right after a heal or a restart: the syncs of an owner
    /// change). What the old link had not written is gone, and no `rehome`
    /// will send it again. So, as after a loss but without one: what
    /// waited on the old link is released (as [`Rooms::peer_down`] does);
    /// each room `peer` owns is synced to it again, with the messages
    /// waiting for it, before any newer one; and each room this server owns
    /// that `peer` is interested in sends it its latest messages (`TAIL`:
    /// the peer keeps those it lacks, in order, and drops the rest).
    pub(super) fn relinked(&self, peer: ServerId, old: &Outbound) {
        old.release_all();
        let rooms: Vec<Room> = self.map.iter().map(|e| *e.key()).collect();
        for room in rooms {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            match st.order.owner {
                Some((owner, _)) if owner == peer => {
                    self.hand_to(&room, &mut st, peer);
                    // Under the room's lock, as in `rehome`.
                    self.resubmit_room(&room, peer);
                }
                Some((owner, _)) if owner == self.me && st.interested.contains(&peer) => {
                    let latest = st.history.recent(TAIL_MAX, TAIL_MS).map(|(i, k, f)| (*i, k, f.clone()));
                    self.send_tails(&room, peer, latest);
                }
                _ => {}
            }
        }
        self.flush_shown();
    }

    /// Submits again every message waiting for `room`, to `owner`, in the
    /// order said. The caller holds the room's lock, which every `SUBMIT`
    /// of a new SAY is sent under too.
    fn resubmit_room(&self, room: &Room, owner: ServerId) {
        let now = Instant::now();
        let mut frames: Vec<(u64, PeerFrame)> = Vec::new();
        for mut p in self.pending.iter_mut().filter(|e| e.key().0 == *room) {
            p.sent = now;
            frames.push((p.n, PeerFrame::Submit { room: *room, nick: p.nick, tag: Some(p.tag), text: p.text.clone() }));
        }
        frames.sort_unstable_by_key(|f| f.0);
        for (_, frame) in frames {
            self.to_peers(&[owner], &frame);
        }
    }

    /// A waiting message whose room this server now owns: ordered here.
    fn order_pending_here(&self, room: &Room, key: u64) {
        let Some(mut st) = self.map.get_mut(room) else { return };
        if st.order.takeover.is_some() {
            return; // ordered with the held ones at the end
        }
        if let Some(id) = st.history.said(key) {
            self.ack_pending(room, Some(key), id);
            return;
        }
        let Some((_, p)) = self.pending.remove(&(*room, key)) else { return };
        self.order(room, &mut st, p.nick, Some(p.tag), p.text, p.out);
        drop(st);
    }
}
