//! The live session as a state machine with no I/O: the rooms the user is
//! in, the last message seen in each, the duplicates to drop after a move,
//! and what a frame from the server means (show it, answer it, or move).
//! The driver ([`crate::driver`]) sends what it returns and emits its events.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;

use std::time::Instant;

use rttp_proto::{ClientFrame, ErrCode, MsgId, Nick, Room, ServerFrame, ServerId, Text, Token};

use crate::event::Event;
use crate::outbox::Outbox;

/// Messages remembered per room for dropping duplicates after a move.
pub const DEDUP_PER_ROOM: usize = 4096;

/// Why the session must leave its server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    /// The server sent it elsewhere.
    Redirect {
        /// Where to.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
        /// `full`, `drain`, ...
        reason: String,
    },
    /// The server is lost (closed, silent, or a fatal `ERR`).
    Lost(String),
    /// The session must end, not move: the nick opened a session elsewhere
    /// (`ERR 512`: reconnecting would take it back, and the two would fight).
    End(String),
}

/// What a frame from the server calls for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reaction {
    /// Events for the application, in order.
    pub events: Vec<Event>,
    /// A frame to send back (a `PONG`).
    pub reply: Option<ClientFrame>,
    /// Whether the session must move, and why.
    pub moved: Option<Move>,
}

/// The msg-ids seen per room, to show each message once across moves; at
/// most [`DEDUP_PER_ROOM`] per room, the oldest forgotten first.
#[derive(Debug, Default)]
pub struct Dedup {
    rooms: HashMap<Room, (HashSet<MsgId>, VecDeque<MsgId>)>,
}

impl Dedup {
    /// Whether a message is new (and remembers it).
    pub fn first_sight(&mut self, room: Room, id: MsgId) -> bool {
        let (set, order) = self.rooms.entry(room).or_default();
        if !set.insert(id) {
            return false;
        }
        order.push_back(id);
        if order.len() > DEDUP_PER_ROOM {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }

    /// Ids remembered for a room.
    pub fn remembered(&self, room: Room) -> usize {
        self.rooms.get(&room).map_or(0, |(set, _)| set.len())
    }
}

/// One user's session, wherever it is served.
#[derive(Debug)]
pub struct Session {
    nick: Nick,
    rooms: Vec<Room>,
    last_id: HashMap<Room, MsgId>,
    seen: Dedup,
    members: HashMap<Room, Vec<Nick>>,
    /// Lines said and not acknowledged yet.
    pub outbox: Outbox,
}

impl Session {
    /// A session for `nick`, in no room yet.
    pub fn new(nick: Nick) -> Session {
        Session {
            nick,
            rooms: Vec::new(),
            last_id: HashMap::new(),
            seen: Dedup::default(),
            members: HashMap::new(),
            outbox: Outbox::default(),
        }
    }

    /// The nick.
    pub fn nick(&self) -> Nick {
        self.nick
    }

    /// Takes a new nick (after the server accepted it).
    pub fn set_nick(&mut self, nick: Nick) {
        self.nick = nick;
    }

    /// The rooms, in the order they were joined.
    pub fn rooms(&self) -> &[Room] {
        &self.rooms
    }

    /// Joins a room: it is rejoined after every move.
    pub fn join(&mut self, room: Room) -> ClientFrame {
        if !self.rooms.contains(&room) {
            self.rooms.push(room);
        }
        ClientFrame::Join { room, after: None }
    }

    /// Leaves a room; its lines still waiting for an `ACK` are given up.
    pub fn part(&mut self, room: Room) -> (ClientFrame, Vec<Event>) {
        self.rooms.retain(|r| *r != room);
        (ClientFrame::Part { room }, self.outbox.forget_room(room))
    }

    /// Says a line, tagged `tag`: kept until the farm acknowledges it, and
    /// sent at the outbox's pace ([`Outbox::due`]).
    pub fn say(&mut self, room: Room, text: Text, tag: Token, now: Instant) -> Option<Event> {
        self.outbox.say(room, text, tag, now)
    }

    /// After a move: a `JOIN` per room, replaying after the last id seen there.
    pub fn rejoin(&self) -> Vec<(ClientFrame, Event)> {
        self.rooms
            .iter()
            .map(|&room| {
                let after = self.last_id.get(&room).copied();
                (ClientFrame::Join { room, after }, Event::Rejoined { room, after })
            })
            .collect()
    }

    /// What a frame from the server means.
    pub fn on_frame(&mut self, f: ServerFrame) -> Reaction {
        let mut r = Reaction::default();
        match f {
            ServerFrame::Msg { room, id, nick, text } => {
                if self.seen.first_sight(room, id) {
                    self.last_id.insert(room, id);
                    r.events.push(Event::Message { room, id, nick, text });
                }
            }
            ServerFrame::Joined { room, nick, at } => {
                // The joiner's own JOINED says where the room stood: a
                // position to rejoin from before any message is seen.
                if let Some(at) = at.filter(|_| nick == self.nick && self.rooms.contains(&room)) {
                    self.last_id.entry(room).or_insert(at);
                }
                r.events.push(Event::Joined { room, nick })
            }
            ServerFrame::Parted { room, nick } => r.events.push(Event::Parted { room, nick }),
            ServerFrame::Members { room, nicks } => self.members.entry(room).or_default().extend(nicks),
            ServerFrame::EndMembers { room, .. } => {
                let nicks = self.members.remove(&room).unwrap_or_default();
                r.events.push(Event::Members { room, nicks });
            }
            ServerFrame::FarmInfo(t) => r.events.push(Event::Table(t)),
            ServerFrame::Ping { token } => r.reply = Some(ClientFrame::Pong { token }),
            ServerFrame::Redirect { server, addr, reason } => {
                r.moved = Some(match addr.as_str().parse::<SocketAddr>() {
                    Ok(addr) => Move::Redirect { server, addr, reason: reason.to_string() },
                    Err(_) => Move::Lost(format!("redirected to an unusable address {addr}")),
                });
            }
            ServerFrame::Err { code, reason } => {
                // Unknown codes follow the class rule of the spec: 5xx closes.
                if code == ErrCode::Replaced.as_u16() {
                    r.moved = Some(Move::End(format!("ERR {code} {reason}")));
                } else if ErrCode::from_u16(code).map_or(code >= 500, ErrCode::closes) {
                    r.moved = Some(Move::Lost(format!("ERR {code} {reason}")));
                }
                r.events.push(Event::ServerError { code, reason });
            }
            ServerFrame::Ack { tag, id } => {
                if let Some(e) = self.outbox.acked(tag, id) {
                    r.events.push(e);
                }
            }
            ServerFrame::Welcome { .. } | ServerFrame::Pong { .. } => {}
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use rttp_proto::{Text, Token};

    use super::*;

    fn room(s: &str) -> Room {
        s.parse().unwrap()
    }

    fn msg(r: &str, n: usize) -> ServerFrame {
        ServerFrame::Msg {
            room: room(r),
            id: MsgId::new(&format!("s1:g:{n}")).unwrap(),
            nick: "bob".parse().unwrap(),
            text: Text::from(format!("line {n}")),
        }
    }

    #[test]
    fn duplicates_are_dropped_per_room_within_the_bound() {
        let mut d = Dedup::default();
        let (a, b) = (room("#a"), room("#b"));
        let id = |n: usize| MsgId::new(&format!("s1:g:{n}")).unwrap();
        assert!(d.first_sight(a, id(0)));
        assert!(!d.first_sight(a, id(0)), "the same id twice in a room");
        assert!(d.first_sight(b, id(0)), "rooms are separate");
        for n in 1..=DEDUP_PER_ROOM {
            assert!(d.first_sight(a, id(n)));
        }
        // id(0) was the oldest of DEDUP_PER_ROOM + 1: forgotten, memory bounded.
        assert_eq!(d.remembered(a), DEDUP_PER_ROOM);
        assert!(d.first_sight(a, id(0)));
        assert!(!d.first_sight(a, id(DEDUP_PER_ROOM)), "recent ids are still remembered");
    }

    #[test]
    fn a_rejoin_after_a_move_asks_for_what_came_after_the_last_message_shown() {
        let mut s = Session::new("alice".parse().unwrap());
        assert_eq!(s.join(room("#a")), ClientFrame::Join { room: room("#a"), after: None });
        s.join(room("#b"));
        s.join(room("#a"));
        assert_eq!(s.rooms(), [room("#a"), room("#b")], "joined once each, in order");
        assert_eq!(s.on_frame(msg("#a", 7)).events.len(), 1);
        let again = s.rejoin();
        let last = MsgId::new("s1:g:7").unwrap();
        assert_eq!(again[0].0, ClientFrame::Join { room: room("#a"), after: Some(last) });
        assert_eq!(again[1].1, Event::Rejoined { room: room("#b"), after: None });
        s.part(room("#a"));
        assert_eq!(s.rejoin().len(), 1, "a room left is not rejoined");
    }

    #[test]
    fn a_room_where_nothing_was_seen_is_rejoined_from_where_it_stood_at_the_join() {
        let mut s = Session::new("alice".parse().unwrap());
        s.join(room("#quiet"));
        s.join(room("#empty"));
        let joined = |r: &str, nick: &str, at: Option<&str>| ServerFrame::Joined {
            room: room(r),
            nick: nick.parse().unwrap(),
            at: at.map(|a| MsgId::new(a).unwrap()),
        };
        s.on_frame(joined("#quiet", "alice", Some("s1:g:41")));
        s.on_frame(joined("#empty", "alice", Some(rttp_proto::ROOM_START)));
        s.on_frame(joined("#quiet", "bob", None));
        let again = s.rejoin();
        assert_eq!(again[0].0, ClientFrame::Join { room: room("#quiet"), after: Some(MsgId::new("s1:g:41").unwrap()) });
        assert_eq!(again[1].0, ClientFrame::Join { room: room("#empty"), after: Some(MsgId::new("-").unwrap()) });
        // The rejoin's own JOINED names the new server's position: what was
        // asked for still comes, so the old position stays until a message.
        s.on_frame(joined("#quiet", "alice", Some("s2:h:9")));
        assert_eq!(s.rejoin()[0].0, again[0].0);
        s.on_frame(msg("#quiet", 42));
        assert_eq!(
            s.rejoin()[0].0,
            ClientFrame::Join { room: room("#quiet"), after: Some(MsgId::new("s1:g:42").unwrap()) }
        );
    }

    #[test]
    fn a_replayed_message_is_shown_once() {
        let mut s = Session::new("alice".parse().unwrap());
        s.join(room("#a"));
        assert_eq!(s.on_frame(msg("#a", 1)).events.len(), 1);
        assert_eq!(s.on_frame(msg("#a", 1)), Reaction::default(), "the replay after a move is dropped");
    }

    #[test]
    fn redirect_ping_and_errors_decide_what_the_driver_does() {
        let mut s = Session::new("alice".parse().unwrap());
        let r = s.on_frame(ServerFrame::Redirect {
            server: "s2".parse().unwrap(),
            addr: "127.0.0.2:7000".parse().unwrap(),
            reason: "drain".parse().unwrap(),
        });
        let to: SocketAddr = "127.0.0.2:7000".parse().unwrap();
        assert_eq!(r.moved, Some(Move::Redirect { server: "s2".parse().unwrap(), addr: to, reason: "drain".into() }));
        let unusable = s.on_frame(ServerFrame::Redirect {
            server: "s2".parse().unwrap(),
            addr: "chat.example:7000".parse().unwrap(),
            reason: "full".parse().unwrap(),
        });
        assert!(matches!(unusable.moved, Some(Move::Lost(_))));
        let token: Token = "t1".parse().unwrap();
        assert_eq!(s.on_frame(ServerFrame::Ping { token }).reply, Some(ClientFrame::Pong { token }));
        let soft = s.on_frame(ServerFrame::Err { code: 429, reason: "slow down".into() });
        assert_eq!((soft.moved, soft.events.len()), (None, 1), "4xx: shown, the session stays");
        let fatal = s.on_frame(ServerFrame::Err { code: 508, reason: "shutting down".into() });
        assert!(matches!(fatal.moved, Some(Move::Lost(_))), "5xx: the session moves");
        let unknown = s.on_frame(ServerFrame::Err { code: 599, reason: "future".into() });
        assert!(matches!(unknown.moved, Some(Move::Lost(_))), "an unknown 5xx still closes");
        let replaced = s.on_frame(ServerFrame::Err { code: 512, reason: "alice opened a session elsewhere".into() });
        assert!(matches!(replaced.moved, Some(Move::End(_))), "replaced: the session ends, it does not move back");
    }

    #[test]
    fn members_arrive_in_pieces_and_are_reported_whole() {
        let mut s = Session::new("alice".parse().unwrap());
        let nicks = |v: &[&str]| v.iter().map(|n| n.parse().unwrap()).collect::<Vec<Nick>>();
        assert!(s.on_frame(ServerFrame::Members { room: room("#a"), nicks: nicks(&["a", "b"]) }).events.is_empty());
        s.on_frame(ServerFrame::Members { room: room("#a"), nicks: nicks(&["c"]) });
        let end = s.on_frame(ServerFrame::EndMembers { room: room("#a"), total: 3 });
        assert_eq!(end.events, vec![Event::Members { room: room("#a"), nicks: nicks(&["a", "b", "c"]) }]);
    }
}
