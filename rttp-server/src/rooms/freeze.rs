//! A server that was frozen (`SIGSTOP`, a paused VM, a host swapping) for
//! longer than the peer timeout wakes into a farm that has counted it DOWN:
//! its peers moved its rooms to other owners and closed their links to it.
//! Before it notices, it would go on ordering the rooms it owned: the
//! `SAY`s and `SUBMIT`s waiting in its sockets, and, once its dead links
//! are closed, showing and acknowledging them as a lone owner. Those
//! messages then existed on this server only; when their senders left, the
//! room and the messages went with it (found by
//! `ack_tests::a_senders_server_paused_past_the_peer_timeout_*`: 200 of 320
//! acknowledged lines read by nobody).
//!
//! So the rooms notice the freeze themselves, before they order anything:
//! the farm driver stamps a clock on every tick, and a gap longer than the
//! peer timeout means this server did not run (nor send its `BEAT`s) for
//! as long as its peers wait before counting it DOWN. Every room it owns
//! then waits, as a new owner does, for the interested servers' `SYNCED`
//! (they sync with it as soon as they count it UP again) or the takeover
//! wait: what was said meanwhile is ordered after what the others have.
//!
//! What it ordered in the instant before the freeze may still have been in
//! its own link queues: the peers never got it, and the links' loss showed
//! and acknowledged it here. So each room it owned is kept, members or
//! not, until a peer synced with it (and was sent what it lacked) or
//! [`TAIL_MS`] passed (a sync would no longer carry those messages).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rttp_proto::Room;

use super::order::TAIL_MS;
use super::{RoomState, Rooms};

/// The freeze check's clock, and the rooms a freeze keeps.
#[derive(Debug)]
pub(super) struct Freeze {
    /// After how long without a stamp this server counts as frozen.
    after: Option<Duration>,
    origin: Instant,
    /// The last stamp, in milliseconds from `origin`.
    alive_ms: AtomicU64,
    /// Rooms kept through a freeze (see [`RoomState::kept_until`]).
    kept: Mutex<Vec<Room>>,
}

impl Default for Freeze {
    fn default() -> Freeze {
        Freeze { after: None, origin: Instant::now(), alive_ms: AtomicU64::new(0), kept: Mutex::default() }
    }
}

impl RoomState {
    /// A peer has what this server had of the room (it synced, or this
    /// server sent the owner its tail): nothing to keep it for.
    pub(super) fn handed_on(&mut self) {
        self.kept_until = None;
    }
}

impl Rooms {
    /// Counts this server frozen when its rooms' clock was not stamped for
    /// longer than `after` (the peer timeout); unset, never.
    pub fn set_freeze_after(&mut self, after: Duration) {
        self.freeze.after = Some(after);
        self.stamp();
    }

    /// The farm driver ran: the clock moves on. Checks for a freeze first.
    pub(super) fn stamp(&self) {
        self.check_frozen();
        self.freeze.alive_ms.store(self.freeze.origin.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// Lets go of the rooms kept through a freeze whose time is up (on the
    /// driver's tick).
    pub(super) fn sweep_kept(&self, now: Instant) {
        let kept = std::mem::take(&mut *self.freeze.kept.lock().unwrap_or_else(|e| e.into_inner()));
        let mut still = Vec::new();
        for room in kept {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            match st.kept_until {
                Some(t) if now >= t => {
                    st.handed_on();
                    drop(st);
                    self.remove_if_unused(&room);
                }
                Some(_) => still.push(room),
                None => {
                    drop(st);
                    self.remove_if_unused(&room);
                }
            }
        }
        self.freeze.kept.lock().unwrap_or_else(|e| e.into_inner()).extend(still);
    }

    /// Whether this server was frozen for longer than the peer timeout
    /// since the clock's last stamp; the first caller to see it makes
    /// every room this server owns wait for its peers. Called before a
    /// room is locked (it locks rooms one by one).
    pub(super) fn check_frozen(&self) {
        let Some(after) = self.freeze.after else { return };
        let now = self.freeze.origin.elapsed().as_millis() as u64;
        let last = self.freeze.alive_ms.load(Ordering::Acquire);
        if now.saturating_sub(last) <= after.as_millis() as u64 {
            return;
        }
        if self.freeze.alive_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.froze(Duration::from_millis(now - last));
        }
    }

    fn froze(&self, gap: Duration) {
        self.metrics.freezes.inc();
        let rooms: Vec<Room> = self.map.iter().map(|e| *e.key()).collect();
        let keep = Instant::now() + Duration::from_millis(u64::from(TAIL_MS));
        let mut held = 0;
        for room in rooms {
            let Some(mut st) = self.map.get_mut(&room) else { continue };
            if st.order.owner.is_none_or(|(o, _)| o != self.me) || st.order.takeover.is_some() {
                continue;
            }
            let waiting: Vec<_> = st.interested.clone();
            if waiting.is_empty() {
                continue;
            }
            self.start_takeover(&room, &mut st, waiting);
            if st.kept_until.replace(keep).is_none() {
                self.freeze.kept.lock().unwrap_or_else(|e| e.into_inner()).push(room);
            }
            held += 1;
        }
        tracing::warn!(
            ?gap,
            rooms = held,
            "this server did not run for longer than the peer timeout: the rooms it owns wait for their peers"
        );
    }
}
