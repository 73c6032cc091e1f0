//! Quiet moves: the members of a lost server are not announced as gone at
//! once. Their clients are on their way to the other servers (a loss is
//! seen at once, the reconnect takes a moment), and a `PARTED` now followed
//! by a `JOINED` a second later is noise to every reader: the netsplit
//! flood IRC is known for. It is also the costliest part of a failover:
//! each of n members coming back announced to up to n others, n² frames.
//!
//! So for the presence grace (`--presence-grace`, 10 s by default) such a
//! member is *away*: not listed, not announced. Coming back into the room
//! (here or on any peer) within the grace is silent to the others (the
//! joiner still gets its own `JOINED` and its replay); still away when it
//! ends, it is announced `PARTED` then. A nick still in the room through
//! another session (a client that moved before the loss was seen) is never
//! announced gone. With a grace of 0 a loss is announced at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rttp_proto::{Frame, Nick, Room, ServerFrame};

use super::{RoomState, Rooms};

/// How long the members of a lost server may take to come back unannounced.
pub const PRESENCE_GRACE: Duration = Duration::from_secs(10);

/// One room's members that left with a lost server, and since when. At most
/// as many as that server had in the room, which the peer bounds already
/// limit ([`super::MAX_PEER_MEMBERS`]); each leaves by the grace's end.
#[derive(Debug, Default)]
pub(super) struct Away(HashMap<Nick, Instant>);

impl Away {
    /// `nick` left with its server at `now` (the first time counts).
    pub(super) fn add(&mut self, nick: Nick, now: Instant) {
        self.0.entry(nick).or_insert(now);
    }

    /// `nick` is back (or left for good): whether it was away.
    pub(super) fn back(&mut self, nick: &Nick) -> bool {
        !self.0.is_empty() && self.0.remove(nick).is_some()
    }

    /// Takes out those away for `grace` or longer at `now`.
    pub(super) fn due(&mut self, now: Instant, grace: Duration) -> Vec<Nick> {
        let mut due = Vec::new();
        self.0.retain(|nick, since| {
            let keep = now.duration_since(*since) < grace;
            if !keep {
                due.push(*nick);
            }
            keep
        });
        due.sort_unstable();
        due
    }

    /// Nobody is away.
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl RoomState {
    /// Whether `nick` is in the room here, locally or through a peer.
    pub(super) fn present(&self, nick: &Nick) -> bool {
        self.members.iter().any(|m| m.nick == *nick) || self.remote.iter().any(|(_, n)| n == nick)
    }

    /// The members `gone` left with their server at `now`: each still
    /// present through another session is not announced at all; the others
    /// are away for `grace`, or announced `PARTED` at once when it is 0.
    /// Returns whether any is away.
    pub(super) fn lost_members(&mut self, room: Room, gone: Vec<Nick>, now: Instant, grace: Duration) -> bool {
        if gone.is_empty() {
            return false;
        }
        let here: std::collections::HashSet<Nick> =
            self.members.iter().map(|m| m.nick).chain(self.remote.iter().map(|(_, n)| *n)).collect();
        let mut away = false;
        for nick in gone.into_iter().filter(|n| !here.contains(n)) {
            if grace.is_zero() {
                self.announce(&ServerFrame::Parted { room, nick }.to_bytes());
            } else {
                self.away.add(nick, now);
                away = true;
            }
        }
        away
    }
}

impl RoomState {
    /// `nick` left the room (its session here or on a peer); `away`: its
    /// session ended without leaving. Announced `PARTED` now unless it is
    /// still present through another session (a client that moved), or
    /// away for `grace` (not 0). Returns whether it is away.
    pub(super) fn left(&mut self, room: Room, nick: Nick, away: bool, grace: Duration) -> bool {
        if self.present(&nick) {
            false
        } else if away && !grace.is_zero() {
            self.away.add(nick, Instant::now());
            true
        } else {
            self.announce(&ServerFrame::Parted { room, nick }.to_bytes());
            false
        }
    }
}

impl Rooms {
    /// Sets the presence grace (see the module); 0 announces losses at once.
    pub fn set_presence_grace(&mut self, grace: Duration) {
        self.presence_grace = grace;
    }

    /// Remembers that `room` has members away, for [`Rooms::sweep_away`].
    pub(super) fn mark_away(&self, room: Room) {
        self.away_rooms.lock().unwrap_or_else(|e| e.into_inner()).insert(room);
    }

    /// Announces `PARTED` for each member away past the grace and not back
    /// in the room by now (from the farm's tick).
    pub(super) fn sweep_away(&self, now: Instant) {
        let rooms = std::mem::take(&mut *self.away_rooms.lock().unwrap_or_else(|e| e.into_inner()));
        let mut still = std::collections::HashSet::new();
        for room in rooms {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            for nick in st.away.due(now, self.presence_grace) {
                if !st.present(&nick) {
                    st.announce(&ServerFrame::Parted { room, nick }.to_bytes());
                }
            }
            if !st.away.is_empty() {
                still.insert(room);
            }
        }
        self.away_rooms.lock().unwrap_or_else(|e| e.into_inner()).extend(still);
    }
}
