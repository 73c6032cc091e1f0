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

use std::sync::atomic::Ordering;
use std::time::Duration;

use rttp_proto::Room;

use super::Rooms;

impl Rooms {
    /// Counts this server frozen when its rooms' clock was not stamped for
    /// longer than `after` (the peer timeout); unset, never.
    pub fn set_freeze_after(&mut self, after: Duration) {
        self.freeze_after = Some(after);
        self.stamp();
    }

    /// The farm driver ran: the clock moves on. Checks for a freeze first.
    pub(super) fn stamp(&self) {
        self.check_frozen();
        self.alive_ms.store(self.origin.elapsed().as_millis() as u64, Ordering::Release);
    }

    /// Whether this server was frozen for longer than the peer timeout
    /// since the clock's last stamp; the first caller to see it makes
    /// every room this server owns wait for its peers. Called before a
    /// room is locked (it locks rooms one by one).
    pub(super) fn check_frozen(&self) {
        let Some(after) = self.freeze_after else { return };
        let now = self.origin.elapsed().as_millis() as u64;
        let last = self.alive_ms.load(Ordering::Acquire);
        if now.saturating_sub(last) <= after.as_millis() as u64 {
            return;
        }
        if self.alive_ms.compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.froze(Duration::from_millis(now - last));
        }
    }

    fn froze(&self, gap: Duration) {
        self.metrics.freezes.inc();
        let rooms: Vec<Room> = self.map.iter().map(|e| *e.key()).collect();
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
            held += 1;
        }
        tracing::warn!(
            ?gap,
            rooms = held,
            "this server did not run for longer than the peer timeout: the rooms it owns wait for their peers"
        );
    }
}
