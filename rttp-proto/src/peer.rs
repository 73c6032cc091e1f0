//! Frames of the peer link between servers. They share the framing of
//! client links but have their own verbs: a peer verb on a client link, or
//! a client verb on a peer link, is `ERR 404`.

use bytes::BytesMut;

use crate::error::{ErrCode, Error};
use crate::frame::{impl_frame, itoa_buf, put_body, put_line, Build};
use crate::names::{Group, HostPort, MsgId, Nick, Room, ServerId, Status, Text, Token};
use crate::wire::{number, FrameKind, Parts, Shape};

/// The peer protocol version, carried by the handshake.
pub const PEER_VERSION: u32 = 1;

/// One server's state, as it announces it to its peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStateMsg {
    /// Its id.
    pub id: ServerId,
    /// Its generation (start time in ms): a higher one supersedes.
    pub generation: u64,
    /// Where clients connect.
    pub client_addr: HostPort,
    /// Where peers connect.
    pub peer_addr: HostPort,
    /// Its status.
    pub status: Status,
    /// Its users.
    pub users: u32,
    /// Its capacity.
    pub capacity: u32,
    /// Its group.
    pub group: Group,
}

/// A frame on a peer link (both directions).
// Names are stored inline (no allocation per frame); the remaining spread
// between variants is the price of that, and STATE, the largest, is boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerFrame {
    /// `PEER_HELLO <version> <server-id> <generation> <nonce>`: the dialer opens.
    Hello {
        /// Peer protocol version.
        version: u32,
        /// The dialer.
        id: ServerId,
        /// Its generation.
        generation: u64,
        /// A fresh random challenge, hex.
        nonce: Token,
    },
    /// `PEER_CHALLENGE <version> <server-id> <generation> <nonce> <mac>`:
    /// the acceptor proves it knows the secret and challenges back.
    Challenge {
        /// Peer protocol version.
        version: u32,
        /// The acceptor.
        id: ServerId,
        /// Its generation.
        generation: u64,
        /// Its fresh challenge, hex.
        nonce: Token,
        /// HMAC-SHA256 proof, hex.
        mac: Token,
    },
    /// `PEER_AUTH <mac>`: the dialer's proof.
    Auth {
        /// HMAC-SHA256 proof, hex.
        mac: Token,
    },
    /// `PEER_OK`: the acceptor accepted the dialer; the link is up.
    Ok,
    /// `STATE ...`: the sender's own state.
    State(Box<PeerStateMsg>),
    /// `MEMBER <server-id> <generation> <peer-addr>`: another member the
    /// sender knows, so that a newcomer links to every server.
    Member {
        /// Its id.
        id: ServerId,
        /// Its generation.
        generation: u64,
        /// Its peer address.
        peer_addr: HostPort,
    },
    /// `BEAT`: a heartbeat.
    Beat,
    /// `INTEREST <room>`: the sender now has members in the room.
    Interest {
        /// The room.
        room: Room,
    },
    /// `UNINTEREST <room>`: the sender has no member in the room any more.
    Uninterest {
        /// The room.
        room: Room,
    },
    /// `RELAY <room> <msg-id> <nick> <N>` and a body: a message said on the sender.
    Relay {
        /// The room.
        room: Room,
        /// Its id, assigned by the sender.
        id: MsgId,
        /// Who said it.
        nick: Nick,
        /// The text.
        text: Text,
    },
    /// `RJOINED <room> <nick>`: a member of the sender joined the room.
    Joined {
        /// The room.
        room: Room,
        /// Who.
        nick: Nick,
    },
    /// `RPARTED <room> <nick>`: a member of the sender left the room.
    Parted {
        /// The room.
        room: Room,
        /// Who.
        nick: Nick,
    },
    /// `RMEMBER <room> <nick>`: an existing member, sent to a newly
    /// interested peer; unlike `RJOINED`, not announced to clients.
    RoomMember {
        /// The room.
        room: Room,
        /// Who.
        nick: Nick,
    },
    /// `HISTORY <room> <after-msg-id>`: the sender's member rejoined after
    /// a move and its history lacks that id: send what follows it.
    History {
        /// The room.
        room: Room,
        /// The last id the member saw.
        after: MsgId,
    },
    /// `REPLAY <room> <msg-id> <nick> <N>` and a body: a message from the
    /// sender's history, in answer to `HISTORY`.
    Replay {
        /// The room.
        room: Room,
        /// Its id.
        id: MsgId,
        /// Who said it.
        nick: Nick,
        /// The text.
        text: Text,
    },
    /// `ERR <code> <reason ...>`.
    Err {
        /// Three digits.
        code: u16,
        /// Free text.
        reason: String,
    },
}

impl PeerFrame {
    /// An `ERR` frame with a sanitised reason.
    pub fn err(code: ErrCode, reason: impl AsRef<str>) -> PeerFrame {
        PeerFrame::Err { code: code.as_u16(), reason: crate::error::err_reason(code, reason.as_ref()) }
    }

    fn verb_name(&self) -> &'static str {
        match self {
            PeerFrame::Hello { .. } => "PEER_HELLO",
            PeerFrame::Challenge { .. } => "PEER_CHALLENGE",
            PeerFrame::Auth { .. } => "PEER_AUTH",
            PeerFrame::Ok => "PEER_OK",
            PeerFrame::State(_) => "STATE",
            PeerFrame::Member { .. } => "MEMBER",
            PeerFrame::Beat => "BEAT",
            PeerFrame::Interest { .. } => "INTEREST",
            PeerFrame::Uninterest { .. } => "UNINTEREST",
            PeerFrame::Relay { .. } => "RELAY",
            PeerFrame::Joined { .. } => "RJOINED",
            PeerFrame::Parted { .. } => "RPARTED",
            PeerFrame::RoomMember { .. } => "RMEMBER",
            PeerFrame::History { .. } => "HISTORY",
            PeerFrame::Replay { .. } => "REPLAY",
            PeerFrame::Err { .. } => "ERR",
        }
    }

    fn encode_into(&self, dst: &mut BytesMut) {
        let verb = self.verb_name();
        match self {
            PeerFrame::Hello { version, id, generation, nonce } => put_line(
                dst,
                verb,
                &[itoa_buf(u64::from(*version)).as_str(), id.as_str(), itoa_buf(*generation).as_str(), nonce.as_str()],
            ),
            PeerFrame::Challenge { version, id, generation, nonce, mac } => put_line(
                dst,
                verb,
                &[
                    itoa_buf(u64::from(*version)).as_str(),
                    id.as_str(),
                    itoa_buf(*generation).as_str(),
                    nonce.as_str(),
                    mac.as_str(),
                ],
            ),
            PeerFrame::Auth { mac } => put_line(dst, verb, &[mac.as_str()]),
            PeerFrame::Ok | PeerFrame::Beat => put_line(dst, verb, &[]),
            PeerFrame::State(s) => put_line(
                dst,
                verb,
                &[
                    s.id.as_str(),
                    itoa_buf(s.generation).as_str(),
                    s.client_addr.as_str(),
                    s.peer_addr.as_str(),
                    s.status.as_str(),
                    itoa_buf(u64::from(s.users)).as_str(),
                    itoa_buf(u64::from(s.capacity)).as_str(),
                    s.group.as_str(),
                ],
            ),
            PeerFrame::Member { id, generation, peer_addr } => {
                put_line(dst, verb, &[id.as_str(), itoa_buf(*generation).as_str(), peer_addr.as_str()])
            }
            PeerFrame::Interest { room } | PeerFrame::Uninterest { room } => put_line(dst, verb, &[room.as_str()]),
            PeerFrame::Relay { room, id, nick, text } | PeerFrame::Replay { room, id, nick, text } => {
                put_body(dst, verb, &[room.as_str(), id.as_str(), nick.as_str()], text.bytes())
            }
            PeerFrame::History { room, after } => put_line(dst, verb, &[room.as_str(), after.as_str()]),
            PeerFrame::Joined { room, nick }
            | PeerFrame::Parted { room, nick }
            | PeerFrame::RoomMember { room, nick } => put_line(dst, verb, &[room.as_str(), nick.as_str()]),
            PeerFrame::Err { code, reason } => put_line(dst, verb, &[itoa_buf(u64::from(*code)).as_str(), reason]),
        }
    }
}

impl FrameKind for PeerFrame {
    const LINK: &'static str = "peer";
    fn shape(verb: &[u8]) -> Option<Shape> {
        crate::verbs::shape(crate::verbs::PEER, verb)
    }
}

impl Build for PeerFrame {
    fn build(p: &Parts<'_>) -> Result<PeerFrame, Error> {
        let room = |i| p.arg(i).and_then(Room::from_bytes);
        let nick = |i| p.arg(i).and_then(Nick::from_bytes);
        let token = |i| p.arg(i).and_then(Token::from_bytes);
        Ok(match p.verb() {
            b"PEER_HELLO" => PeerFrame::Hello {
                version: number(p.arg(0)?, "version")?,
                id: ServerId::from_bytes(p.arg(1)?)?,
                generation: number(p.arg(2)?, "generation")?,
                nonce: token(3)?,
            },
            b"PEER_CHALLENGE" => PeerFrame::Challenge {
                version: number(p.arg(0)?, "version")?,
                id: ServerId::from_bytes(p.arg(1)?)?,
                generation: number(p.arg(2)?, "generation")?,
                nonce: token(3)?,
                mac: token(4)?,
            },
            b"PEER_AUTH" => PeerFrame::Auth { mac: token(0)? },
            b"PEER_OK" => PeerFrame::Ok,
            b"BEAT" => PeerFrame::Beat,
            b"STATE" => PeerFrame::State(Box::new(PeerStateMsg {
                id: ServerId::from_bytes(p.arg(0)?)?,
                generation: number(p.arg(1)?, "generation")?,
                client_addr: HostPort::from_bytes(p.arg(2)?)?,
                peer_addr: HostPort::from_bytes(p.arg(3)?)?,
                status: Status::from_bytes(p.arg(4)?)?,
                users: number(p.arg(5)?, "users")?,
                capacity: number(p.arg(6)?, "capacity")?,
                group: Group::from_bytes(p.arg(7)?)?,
            })),
            b"MEMBER" => PeerFrame::Member {
                id: ServerId::from_bytes(p.arg(0)?)?,
                generation: number(p.arg(1)?, "generation")?,
                peer_addr: HostPort::from_bytes(p.arg(2)?)?,
            },
            b"INTEREST" => PeerFrame::Interest { room: room(0)? },
            b"UNINTEREST" => PeerFrame::Uninterest { room: room(0)? },
            b"RELAY" => {
                p.need(4)?;
                PeerFrame::Relay { room: room(0)?, id: token(1)?, nick: nick(2)?, text: Text::from_bytes(p.body())? }
            }
            b"REPLAY" => {
                p.need(4)?;
                PeerFrame::Replay { room: room(0)?, id: token(1)?, nick: nick(2)?, text: Text::from_bytes(p.body())? }
            }
            b"HISTORY" => PeerFrame::History { room: room(0)?, after: token(1)? },
            b"RJOINED" => PeerFrame::Joined { room: room(0)?, nick: nick(1)? },
            b"RPARTED" => PeerFrame::Parted { room: room(0)?, nick: nick(1)? },
            b"RMEMBER" => PeerFrame::RoomMember { room: room(0)?, nick: nick(1)? },
            b"ERR" => PeerFrame::Err {
                code: number(p.arg(0)?, "code")?,
                reason: String::from_utf8_lossy(p.trailing()).into_owned(),
            },
            v => return Err(Error::UnknownVerb(String::from_utf8_lossy(v).into_owned())),
        })
    }
}

impl_frame!(PeerFrame);
