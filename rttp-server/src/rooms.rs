//! Room membership and fan-out, with no I/O: members map to outbound
//! queues. Each frame is encoded once and shared (`Bytes`) by every member.
//! A room's lock is held while a message gets its id and is queued to every
//! member, so every member of a room sees the same order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use dashmap::DashMap;
use rttp_proto::{ErrCode, Frame, MsgId, Nick, Room, ServerFrame, Text, Token};

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

/// Bounds of each room's replay history.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLimits {
    /// Messages kept.
    pub messages: usize,
    /// Bytes of encoded frames kept.
    pub bytes: usize,
}

#[derive(Debug, Default)]
struct RoomState {
    members: Vec<Member>,
    history: VecDeque<(MsgId, Bytes)>,
    history_bytes: usize,
}

impl RoomState {
    /// Queues a frame to every member; returns how many accepted it.
    fn broadcast(&self, frame: &Bytes) -> usize {
        self.members
            .iter()
            .filter(|m| m.out.push(frame.clone()))
            .count()
    }

    fn remember(&mut self, id: MsgId, frame: Bytes, limits: HistoryLimits) {
        self.history_bytes += frame.len();
        self.history.push_back((id, frame));
        while self.history.len() > limits.messages || self.history_bytes > limits.bytes {
            match self.history.pop_front() {
                Some((_, f)) => self.history_bytes -= f.len(),
                None => break,
            }
        }
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
    /// The encoded `MSG` frame, for relaying.
    pub frame: Bytes,
    /// Members it was queued to.
    pub delivered: usize,
}

/// Every room on this server.
#[derive(Debug)]
pub struct Rooms {
    map: DashMap<Room, RoomState>,
    limits: HistoryLimits,
    id_prefix: String,
    seq: AtomicU64,
}

impl Rooms {
    /// No rooms yet. Message ids are `<id_prefix>:<sequence>`: include the
    /// server id and its generation so that ids are unique farm-wide.
    pub fn new(id_prefix: String, limits: HistoryLimits) -> Rooms {
        Rooms {
            map: DashMap::new(),
            limits,
            id_prefix,
            seq: AtomicU64::new(0),
        }
    }

    /// Rooms with at least one member here.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds `member` to `room`, tells every member (the joiner too) with
    /// `JOINED`, then replays the history after `after` to the joiner.
    pub fn join(&self, room: &Room, member: Member, after: Option<&MsgId>) -> Joined {
        let mut first_local = false;
        let mut st = self.map.entry(*room).or_insert_with(|| {
            first_local = true;
            RoomState::default()
        });
        let joined = ServerFrame::Joined {
            room: *room,
            nick: member.nick,
        }
        .to_bytes();
        let new_member = !st.members.iter().any(|m| m.session == member.session);
        let out = member.out.clone();
        if new_member {
            st.members.push(member);
            st.broadcast(&joined);
        } else {
            out.push(joined);
        }
        let mut gap = false;
        let mut replayed = 0;
        if let Some(after) = after {
            let start = match st.history.iter().rposition(|(id, _)| id == after) {
                Some(i) => i + 1,
                None => {
                    gap = true;
                    let reason = format!(
                        "{after} is older than the history of {room}: replaying all it keeps"
                    );
                    out.push(ServerFrame::err(ErrCode::HistoryGap, reason).to_bytes());
                    0
                }
            };
            for (_, f) in st.history.iter().skip(start) {
                out.push(f.clone());
                replayed += 1;
            }
        }
        Joined {
            new_member,
            first_local,
            gap,
            replayed,
        }
    }

    /// Removes a session from a room and tells the remaining members (and
    /// the leaver, when `tell_leaver`) with `PARTED`. Returns whether the
    /// room now has no member here, or `None` if the session was not in it.
    pub fn part(&self, room: &Room, session: SessionId, tell_leaver: bool) -> Option<bool> {
        let mut st = self.map.get_mut(room)?;
        let i = st.members.iter().position(|m| m.session == session)?;
        let leaver = st.members.swap_remove(i);
        let parted = ServerFrame::Parted {
            room: *room,
            nick: leaver.nick,
        }
        .to_bytes();
        st.broadcast(&parted);
        if tell_leaver {
            leaver.out.push(parted);
        }
        let empty = st.members.is_empty();
        drop(st);
        if empty {
            // Re-checked under the shard lock: a join may have raced in.
            self.map.remove_if(room, |_, st| st.members.is_empty());
        }
        Some(empty)
    }

    /// Says `text` in `room` as `nick`: assigns the id, queues the `MSG`
    /// to every member here (the sender too) and keeps it for replay.
    /// `None` if the session is not a member.
    pub fn say(&self, room: &Room, session: SessionId, nick: Nick, text: Text) -> Option<Said> {
        let mut st = self.map.get_mut(room)?;
        if !st.members.iter().any(|m| m.session == session) {
            return None;
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let id = Token::new(&format!("{}:{seq}", self.id_prefix)).unwrap_or_else(|_| {
            // The prefix is validated at start-up; keep ids unique regardless.
            Token::new(&format!("m:{seq}")).expect("a short ascii token")
        });
        let frame = ServerFrame::Msg {
            room: *room,
            id,
            nick,
            text,
        }
        .to_bytes();
        let delivered = st.broadcast(&frame);
        st.remember(id, frame.clone(), self.limits);
        Some(Said {
            id,
            frame,
            delivered,
        })
    }

    /// The nicks in a room here.
    pub fn members(&self, room: &Room) -> Vec<Nick> {
        self.map
            .get(room)
            .map(|st| st.members.iter().map(|m| m.nick).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use bytes::Bytes;

    use super::*;

    fn member(session: SessionId, nick: &str) -> Member {
        Member {
            session,
            nick: Nick::new(nick).unwrap(),
            out: Arc::new(Outbound::new(1 << 20)),
        }
    }

    fn frames(m: &Member) -> Vec<String> {
        let mut q = VecDeque::new();
        m.out.drain_into(&mut q);
        q.iter()
            .map(|b: &Bytes| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn rooms(history: usize) -> Rooms {
        Rooms::new(
            "s1:g".into(),
            HistoryLimits {
                messages: history,
                bytes: 1 << 20,
            },
        )
    }

    #[test]
    fn join_say_part_fan_out() {
        let r = rooms(10);
        let room = Room::new("#r").unwrap();
        let (a, b) = (member(1, "a"), member(2, "b"));
        assert!(r.join(&room, a.clone(), None).first_local);
        assert!(!r.join(&room, b.clone(), None).first_local);
        let said = r.say(&room, 1, a.nick, Text::from("hi")).unwrap();
        assert_eq!(said.delivered, 2);
        let msg = format!("MSG #r {} a 2\r\nhi\r\n", said.id);
        assert_eq!(
            frames(&a),
            vec![
                "JOINED #r a\r\n".to_string(),
                "JOINED #r b\r\n".into(),
                msg.clone()
            ]
        );
        assert_eq!(frames(&b), vec!["JOINED #r b\r\n".to_string(), msg]);
        assert!(
            r.say(&room, 3, Nick::new("c").unwrap(), Text::from("x"))
                .is_none(),
            "not a member"
        );
        assert_eq!(r.part(&room, 2, true), Some(false));
        assert_eq!(frames(&a), vec!["PARTED #r b\r\n"]);
        assert_eq!(frames(&b), vec!["PARTED #r b\r\n"]);
        assert_eq!(r.part(&room, 2, true), None);
        assert_eq!(r.part(&room, 1, false), Some(true));
        assert!(r.is_empty(), "an empty room is removed");
    }

    #[test]
    fn the_frame_is_shared_not_copied() {
        let r = rooms(10);
        let room = Room::new("#r").unwrap();
        let (a, b) = (member(1, "a"), member(2, "b"));
        r.join(&room, a.clone(), None);
        r.join(&room, b.clone(), None);
        frames(&a);
        frames(&b);
        r.say(&room, 1, a.nick, Text::from("x".repeat(1000)))
            .unwrap();
        let (mut qa, mut qb) = (VecDeque::new(), VecDeque::new());
        a.out.drain_into(&mut qa);
        b.out.drain_into(&mut qb);
        assert_eq!(
            qa[0].as_ptr(),
            qb[0].as_ptr(),
            "both members hold the same buffer"
        );
    }

    #[test]
    fn replay_after_an_id_and_gaps() {
        let r = rooms(3);
        let room = Room::new("#r").unwrap();
        let a = member(1, "a");
        r.join(&room, a.clone(), None);
        let ids: Vec<MsgId> = (0..5)
            .map(|i| {
                r.say(&room, 1, a.nick, Text::from(format!("m{i}")))
                    .unwrap()
                    .id
            })
            .collect();
        frames(&a);
        let b = member(2, "b");
        let j = r.join(&room, b.clone(), Some(&ids[3]));
        assert_eq!((j.gap, j.replayed), (false, 1));
        let got = frames(&b);
        assert_eq!(got.len(), 2);
        assert!(got[1].ends_with("m4\r\n"), "{got:?}");
        // ids[0] fell out of the 3-message history.
        let c = member(3, "c");
        let j = r.join(&room, c.clone(), Some(&ids[0]));
        assert_eq!((j.gap, j.replayed), (true, 3));
        let got = frames(&c);
        assert!(got[1].starts_with("ERR 409 "), "{got:?}");
        assert!(
            got[2].ends_with("m2\r\n") && got[4].ends_with("m4\r\n"),
            "{got:?}"
        );
    }

    #[test]
    fn ids_are_ordered_within_a_room() {
        let r = rooms(100);
        let room = Room::new("#r").unwrap();
        let a = member(1, "a");
        r.join(&room, a.clone(), None);
        let seqs: Vec<u64> = (0..50)
            .map(|_| {
                r.say(&room, 1, a.nick, Text::from("x"))
                    .unwrap()
                    .id
                    .as_str()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap()
            })
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn history_is_bounded_in_bytes_too() {
        let r = Rooms::new(
            "s1:g".into(),
            HistoryLimits {
                messages: 1000,
                bytes: 200,
            },
        );
        let room = Room::new("#r").unwrap();
        let a = member(1, "a");
        r.join(&room, a.clone(), None);
        for _ in 0..10 {
            r.say(&room, 1, a.nick, Text::from("y".repeat(50))).unwrap();
        }
        frames(&a);
        let b = member(2, "b");
        let j = r.join(&room, b, Some(&Token::new("nope").unwrap()));
        assert!(
            j.replayed <= 3,
            "about 70 bytes a frame, 200 kept: {}",
            j.replayed
        );
    }
}
