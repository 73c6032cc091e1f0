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

/// Nicks a room remembers having announced gone, for a rejoin to be
/// announced back ([`RoomState::announces_join`]); past it the oldest is
/// forgotten, and its rejoin is then silent.
pub const GONE_KEPT: usize = 1024;

/// One room's members that left with a lost server (or without `QUIT`), and
/// since when. At most as many as that server had in the room, which the
/// peer bounds already limit ([`super::MAX_PEER_MEMBERS`]); each leaves by
/// the grace's end. And the last [`GONE_KEPT`] announced gone.
#[derive(Debug, Default)]
pub(super) struct Away(HashMap<Nick, Instant>, Option<Box<Gone>>);

/// The nicks announced gone, by when (boxed: most rooms never have any).
#[derive(Debug, Default)]
struct Gone(HashMap<Nick, Instant>);

impl Away {
    /// `nick` left with its server at `now` (the first time counts).
    pub(super) fn add(&mut self, nick: Nick, now: Instant) {
        self.0.entry(nick).or_insert(now);
    }

    /// `nick` is back (or left for good): whether it was away.
    pub(super) fn back(&mut self, nick: &Nick) -> bool {
        !self.0.is_empty() && self.0.remove(nick).is_some()
    }

    /// The members here were told `nick` left (`PARTED`).
    pub(super) fn told_gone(&mut self, nick: Nick) {
        let gone = &mut self.1.get_or_insert_with(Default::default).0;
        if gone.len() >= GONE_KEPT && !gone.contains_key(&nick) {
            if let Some(oldest) = gone.iter().min_by_key(|(_, at)| **at).map(|(n, _)| *n) {
                gone.remove(&oldest);
            }
        }
        gone.insert(nick, Instant::now());
    }

    /// How many nicks are remembered gone (tests).
    #[cfg(test)]
    pub(super) fn gone_len(&self) -> usize {
        self.1.as_ref().map_or(0, |g| g.0.len())
    }

    /// Whether the members here were told `nick` left (forgotten now).
    pub(super) fn was_told_gone(&mut self, nick: &Nick) -> bool {
        self.1.as_mut().is_some_and(|g| g.0.remove(nick).is_some())
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
    /// Tells the members here `nick` left, and remembers it.
    fn announce_gone(&mut self, room: Room, nick: Nick) {
        self.announce(&ServerFrame::Parted { room, nick }.to_bytes());
        self.away.told_gone(nick);
    }

    /// Whether `nick` joining (here or on a peer) is announced `JOINED`:
    /// not if it is back from away, nor still present through another
    /// session; a `rejoin` (a client back after a move) only if the members
    /// here were told it left. Call before adding it; it is back either way.
    pub(super) fn announces_join(&mut self, nick: Nick, rejoin: bool) -> bool {
        let was_away = self.away.back(&nick);
        let told_gone = self.away.was_told_gone(&nick);
        !was_away && !self.present(&nick) && (!rejoin || told_gone)
    }

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
        // One set for all of them: a lost server may have had thousands here.
        let here: std::collections::HashSet<Nick> =
            self.members.iter().map(|m| m.nick).chain(self.remote.iter().map(|(_, n)| *n)).collect();
        let mut away = false;
        for nick in gone.into_iter().filter(|n| !here.contains(n)) {
            away |= self.away_or_gone(room, nick, true, grace, now);
        }
        away
    }

    /// `nick` left the room (its session here or on a peer); `away`: its
    /// session ended without leaving. Announced `PARTED` now unless it is
    /// still present through another session (a client that moved), or
    /// away for `grace` (not 0). Returns whether it is away.
    pub(super) fn left(&mut self, room: Room, nick: Nick, away: bool, grace: Duration) -> bool {
        !self.present(&nick) && self.away_or_gone(room, nick, away, grace, Instant::now())
    }

    /// `nick`, no longer in the room, is away from `now` (when `away` and
    /// `grace` is not 0; returns true) or announced gone.
    fn away_or_gone(&mut self, room: Room, nick: Nick, away: bool, grace: Duration, now: Instant) -> bool {
        if away && !grace.is_zero() {
            self.away.add(nick, now);
            true
        } else {
            self.announce_gone(room, nick);
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
                    st.announce_gone(room, nick);
                }
            }
            if !st.away.is_empty() {
                still.insert(room);
            }
        }
        self.away_rooms.lock().unwrap_or_else(|e| e.into_inner()).extend(still);
    }
}
