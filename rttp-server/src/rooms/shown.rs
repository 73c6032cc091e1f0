//! A room's owner shows a message to its own members only once a peer has
//! it. The owner orders a message and sends its `RELAY` to every interested
//! peer in the same step; were its own members shown it at once, a kill in
//! the next instant could leave the message on their screens and nowhere
//! else: the sender's server would submit it again to the next owner, which
//! would order it again, under a new id (shown twice), or not at all (lost
//! for the others). So the owner's members get it once one peer that will
//! outlive the owner confirmed it (`GOT`; on a peer that does not speak
//! `GOT`, once its link wrote it), or once every such link is gone. A room
//! with no interested peer shows at once: its members are all here.
//!
//! Messages wait in the room's order: one that is confirmed waits for the
//! ones ahead of it, and everything shown to the members here (messages
//! relayed by another owner too, after an owner change) goes through the
//! same queue, so the members here read the one order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rttp_proto::{MsgId, Room};

use super::{RoomState, Rooms};
use crate::outbound::{Outbound, Release, Waiter};

/// Messages one room may hold back from its members here, waiting for a
/// peer's confirmation. Past it the oldest is shown unconfirmed (and
/// counted: `rttp_shown_unconfirmed_total`): a peer that reads the link but
/// never confirms (the link's own 64 MiB bound does not see what was
/// written) cannot grow a room's wait without end. A healthy peer confirms
/// within a round trip; 4,096 messages is several seconds of a busy room.
pub const MAX_UNSHOWN: usize = 4096;

/// Rooms with a message that a peer has just confirmed.
pub(super) type Ready = Arc<Mutex<Vec<Room>>>;

/// Opens when one of the links a message was relayed on has taken it.
#[derive(Debug)]
pub(super) struct Gate {
    open: AtomicBool,
    room: Room,
    ready: Ready,
}

impl Release for Gate {
    // Under a queue's release: no room lock here (see `Release`), only a
    // note for `Rooms::flush_shown`.
    fn release(&self) {
        if !self.open.swap(true, Ordering::AcqRel) {
            self.ready.lock().unwrap_or_else(|e| e.into_inner()).push(self.room);
        }
    }
}

/// A message ordered here, waiting to be shown to the members here.
#[derive(Debug)]
pub(super) struct Unshown {
    id: MsgId,
    frame: Bytes,
    /// `None`: shown as soon as the messages ahead of it are.
    gate: Option<Arc<Gate>>,
    /// Released once it is shown: the sender's `ACK` follows its `MSG`.
    then: Option<Arc<Waiter>>,
}

impl Unshown {
    fn is_open(&self) -> bool {
        self.gate.as_ref().is_none_or(|g| g.open.load(Ordering::Acquire))
    }
}

impl RoomState {
    /// Shows a message to the members here, now unless messages wait ahead
    /// of it, and releases `then` once it is shown (a local sender's `ACK`
    /// never overtakes its `MSG`); returns how many members it was queued
    /// to now.
    pub(super) fn show_then(&mut self, id: MsgId, frame: Bytes, then: Option<Arc<Waiter>>) -> usize {
        if self.unshown.is_empty() {
            let n = self.broadcast(&frame);
            if let Some(w) = then {
                w.release();
            }
            return n;
        }
        self.unshown.push_back(Unshown { id, frame, gate: None, then });
        self.flush()
    }

    /// Shows the waiting messages whose turn has come; returns how many
    /// deliveries that made.
    pub(super) fn flush(&mut self) -> usize {
        let mut n = 0;
        while self.unshown.front().is_some_and(Unshown::is_open) {
            if let Some(u) = self.unshown.pop_front() {
                n += self.broadcast(&u.frame);
                if let Some(w) = u.then {
                    w.release();
                }
            }
        }
        n
    }

    /// Whether `frame` (as kept in the history) is not shown here yet: a
    /// joiner's replay leaves it out, and gets it when it is shown.
    pub(super) fn is_unshown(&self, frame: &Bytes) -> bool {
        self.unshown.iter().any(|u| u.frame.as_ptr() == frame.as_ptr())
    }

    /// The last message shown here: where a joiner starts.
    pub(super) fn last_shown(&self) -> Option<MsgId> {
        match self.unshown.front() {
            None => self.history.last_id(),
            Some(u) => self.history.before(&u.id),
        }
    }
}

impl Rooms {
    /// Shows an ordered message to the members here once one of `marks`
    /// (the links its `RELAY` went out on, and where) is taken, or at once
    /// without any; then releases `then`. Returns the members it was queued
    /// to now ([`Rooms::flush_shown`] counts the others).
    pub(super) fn show_ordered(
        &self,
        room: &Room,
        st: &mut RoomState,
        (id, frame): (MsgId, Bytes),
        marks: &[(Arc<Outbound>, u64)],
        then: Option<Arc<Waiter>>,
    ) -> usize {
        let gate = (!marks.is_empty()).then(|| {
            let gate = Arc::new(Gate { open: AtomicBool::new(false), room: *room, ready: self.ready.clone() });
            for (link, mark) in marks {
                link.when_taken(*mark, gate.clone());
            }
            gate
        });
        if gate.is_none() && st.unshown.is_empty() {
            let n = st.broadcast(&frame);
            if let Some(w) = then {
                w.release();
            }
            return n;
        }
        st.unshown.push_back(Unshown { id, frame, gate, then });
        if st.unshown.len() > MAX_UNSHOWN {
            if let Some(g) = st.unshown.front().and_then(|u| u.gate.as_ref()) {
                g.open.store(true, Ordering::Release);
                self.metrics.shown_unconfirmed.inc();
            }
        }
        st.flush()
    }

    /// Shows what peers have confirmed since the last call. Called after a
    /// `GOT`, when a link is gone, and on the driver's tick.
    pub fn flush_shown(&self) {
        let mut rooms = std::mem::take(&mut *self.ready.lock().unwrap_or_else(|e| e.into_inner()));
        if rooms.is_empty() {
            return;
        }
        rooms.sort_unstable();
        rooms.dedup();
        let mut n = 0;
        for room in rooms {
            if let Some(mut st) = self.map.get_mut(&room) {
                n += st.flush();
            }
        }
        self.metrics.frames_out("MSG", n as u64);
    }
}

/// The waiting messages of one room.
pub(super) type Queue = VecDeque<Unshown>;
