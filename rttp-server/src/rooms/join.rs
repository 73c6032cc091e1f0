//! A session joins or leaves a room here: `JOINED`/`PARTED` to the members,
//! interest to the peers (and a sync with the room's owner on the first
//! member), and the joiner's replay after the last message it saw, with a
//! gap asked of the peers that had the room.

use bytes::Bytes;
use rttp_proto::{ErrCode, Frame, MsgId, PeerFrame, Room, ServerFrame};

use super::{Joined, Member, Rooms, SessionId, HISTORY_ASKS, HISTORY_ASK_EVERY};

impl Rooms {
    /// Adds `member` to `room`, tells every member (the joiner too) with
    /// `JOINED`, then replays the history after `after` to the joiner
    /// (everything kept for [`rttp_proto::ROOM_START`]). The joiner's own
    /// `JOINED` names the room's last message: where it rejoins from if it
    /// moves before it sees one.
    pub fn join(&self, room: &Room, member: Member, after: Option<&MsgId>) -> Joined {
        let mut st = self.map.entry(*room).or_default();
        let joined = ServerFrame::Joined { room: *room, nick: member.nick, at: None }.to_bytes();
        let at = st.last_shown().unwrap_or_else(|| MsgId::new(rttp_proto::ROOM_START).expect("a token"));
        let own = ServerFrame::Joined { room: *room, nick: member.nick, at: Some(at) }.to_bytes();
        let member_session = member.session;
        // A JOIN that names a message it saw: a client back after a move
        // (`-`, everything kept, may be a first join that wants the history).
        let rejoin = after.is_some_and(|a| a.as_str() != rttp_proto::ROOM_START);
        let new_member = !st.members.iter().any(|m| m.session == member.session);
        let first_local = new_member && st.members.is_empty();
        let out = member.out.clone();
        if new_member {
            let nick = member.nick;
            // Back from away, still here through its old session, or back
            // after a move where nobody was told it left: not news.
            if st.announces_join(nick, rejoin) {
                st.announce(&joined);
            }
            out.push(own);
            st.members.push(member);
            if first_local {
                self.to_all_peers(&PeerFrame::Interest { room: *room });
                // The owner may have created the room on that interest:
                // it waits for what this server has of it.
                let owner = self.owner_here(room, &mut st);
                if owner != self.me {
                    self.sync_to(room, &st, owner);
                }
            }
            // Joins go to every peer, not only the interested ones: a peer whose
            // member joined at the same moment would otherwise never announce ours.
            self.to_all_peers(&PeerFrame::Joined { room: *room, nick, rejoin });
        } else {
            out.push(own);
        }
        let mut gap = false;
        let mut replayed = 0;
        if let Some(after) = after {
            // What is not shown here yet reaches the joiner with the others.
            let found: Option<Vec<Bytes>> =
                st.history.since(after).map(|frames| frames.filter(|f| !st.is_unshown(f)).cloned().collect());
            // From the room's start: this server may hold less than the
            // joiner's old one did, so the peers are asked too, as for a gap.
            let from_start = after.as_str() == rttp_proto::ROOM_START;
            gap = found.is_none();
            if gap {
                let reason = format!("{after} is older than the history of {room}: replaying all it keeps");
                out.push(self.metrics.err(ErrCode::HistoryGap, reason));
            }
            // Peers that had the room may hold what this server missed:
            // asked for a new member only, and once a second per room.
            if (gap || from_start) && new_member {
                if !st.replay_to.contains(&member_session) {
                    st.replay_to.push(member_session);
                }
                let now = std::time::Instant::now();
                if st.history_asked.is_none_or(|t| now.duration_since(t) >= HISTORY_ASK_EVERY) {
                    st.history_asked = Some(now);
                    st.asked_after.clear();
                }
                if st.asked_after.len() < HISTORY_ASKS && !st.asked_after.contains(after) {
                    st.asked_after.push(*after);
                    // A new stream starts first in the history: too early is
                    // only shown again (clients drop duplicates), too late
                    // would hide live messages from a later `after` lookup.
                    st.replay_anchor.clear();
                    self.to_peers(&st.interested, &PeerFrame::History { room: *room, after: *after });
                }
            }
            // The history's own frames: streamed to the joiner as it reads,
            // whatever their total (`Outbound::push_replay`).
            for f in found.unwrap_or_else(|| st.history.all().filter(|f| !st.is_unshown(f)).cloned().collect()) {
                if !out.push_replay(f, &self.replays) {
                    break;
                }
                replayed += 1;
            }
        }
        Joined { new_member, first_local, gap, replayed }
    }

    /// Removes a session from a room and tells the remaining members (and
    /// the leaver, when `tell_leaver`) with `PARTED`. Returns whether the
    /// room now has no member here, or `None` if the session was not in it.
    pub fn part(&self, room: &Room, session: SessionId, tell_leaver: bool) -> Option<bool> {
        self.part_as(room, session, tell_leaver, false)
    }

    /// Removes a session that ended without leaving (no `QUIT`: its
    /// connection was lost, it was moved): its client may be on its way
    /// back, so it is away for the presence grace here and on the peers,
    /// announced only if not back by then (see `away`).
    pub fn part_away(&self, room: &Room, session: SessionId) -> Option<bool> {
        self.part_as(room, session, false, true)
    }

    fn part_as(&self, room: &Room, session: SessionId, tell_leaver: bool, away: bool) -> Option<bool> {
        let mut st = self.map.get_mut(room)?;
        let i = st.members.iter().position(|m| m.session == session)?;
        let leaver = st.members.swap_remove(i);
        st.replay_to.retain(|s| *s != session);
        let away = away && !self.presence_grace.is_zero();
        if st.left(*room, leaver.nick, away, self.presence_grace) {
            self.mark_away(*room);
        }
        if tell_leaver {
            leaver.out.push(ServerFrame::Parted { room: *room, nick: leaver.nick }.to_bytes());
        }
        self.to_all_peers(&PeerFrame::Parted { room: *room, nick: leaver.nick, away });
        let empty = st.members.is_empty();
        if empty {
            self.to_all_peers(&PeerFrame::Uninterest { room: *room });
        }
        drop(st);
        if empty {
            self.remove_if_unused(room);
        }
        Some(empty)
    }
}
