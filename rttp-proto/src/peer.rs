//! Frames of the peer link between servers. They share the framing of
//! client links but have their own verbs: a peer verb on a client link, or
//! a client verb on a peer link, is `ERR 404`.

use bytes::BytesMut;

use crate::error::{ErrCode, Error};
use crate::frame::{itoa_buf, put_line};
use crate::names::{Group, HostPort, MsgId, Nick, Room, ServerId, Status, Text, Token, Transport};
use crate::wire::{number, Parts, Shape};

/// The peer protocol version, carried by the handshake.
pub const PEER_VERSION: u32 = 1;

/// The handshake feature of a server that sends and reads `GOT`.
pub const PEER_FEATURE_GOT: &str = "got";

/// Whether a handshake's feature list names `feature`.
pub fn has_feature(features: Option<&Token>, feature: &str) -> bool {
    features.is_some_and(|f| f.as_str().split(',').any(|x| x == feature))
}

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
    /// How its client port is spoken (the optional ninth argument; `tcp` when absent).
    pub transport: Transport,
    /// Its WebSocket URL (the optional tenth argument; `-` or absent: none).
    pub ws: Option<Token>,
}

crate::table::frames! {
    /// A frame on a peer link (both directions).
    // Names are stored inline (no allocation per frame); the remaining spread
    // between variants is the price of that, and STATE, the largest, is boxed.
    #[allow(clippy::large_enum_variant)]
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum PeerFrame: PEER, "peer" {
        /// `RELAY <room> <msg-id> <nick> [<tag>] <N>` and a body: a message said
        /// on the sender; `tag` is its sender's tag, for dropping a resent copy.
        Relay = "RELAY" Body {
            /// The room.
            room: Room,
            /// Its id, assigned by the sender.
            id: MsgId,
            /// Who said it.
            nick: Nick,
            /// The client's tag, if it gave one.
            tag: Option<Token>,
            /// The text.
            text: Text,
        },
        /// `SUBMIT <room> <nick> [<tag>] <N>` and a body: a message said on
        /// the sender, for the room's owner to put in the room's one order
        /// (it answers with `RELAY` to every interested server, the sender too).
        Submit = "SUBMIT" Body {
            /// The room.
            room: Room,
            /// Who said it.
            nick: Nick,
            /// The client's tag, if it gave one.
            tag: Option<Token>,
            /// The text.
            text: Text,
        },
        /// `TAIL <room> <msg-id> <nick> [<key>] <N>` and a body: one of the
        /// sender's latest messages of a room, sent to the room's new owner
        /// when the owner changes, so that it holds what the old one handed
        /// on; `key` is a tagged message's resend key (a number), so that
        /// the new owner still drops a resent copy.
        Tail = "TAIL" Body {
            /// The room.
            room: Room,
            /// Its id.
            id: MsgId,
            /// Who said it.
            nick: Nick,
            /// The resend key of a tagged message.
            key: Option<u64>,
            /// The text.
            text: Text,
        },
        /// `SYNCED <room> [<msg-id>]`: the end of the sender's `TAIL`s for a
        /// room, and the last message it has there (none: absent).
        Synced = "SYNCED" Line {
            /// The room.
            room: Room,
            /// Its last message in the room.
            last: Option<MsgId>,
        },
        /// `BEAT`: a heartbeat.
        Beat = "BEAT" Line,
        /// `GOT <position>`: the sender has taken (handled, and kept) every
        /// byte of frames the receiver sent on this link up to `position`,
        /// counted from the first byte after the handshake. Sent only to a
        /// peer that announced [`PEER_FEATURE_GOT`], after a batch of reads
        /// that held a `RELAY`: the owner of a room shows a message to its
        /// own members once a peer has it.
        Got = "GOT" Line {
            /// Bytes taken since the handshake.
            position: u64,
        },
        /// `PEER_HELLO <version> <server-id> <generation> <nonce> [<features>]`: the dialer opens.
        Hello = "PEER_HELLO" Line {
            /// Peer protocol version.
            version: u32,
            /// The dialer.
            id: ServerId,
            /// Its generation.
            generation: u64,
            /// A fresh random challenge, hex.
            nonce: Token,
            /// What the dialer speaks beyond version 1, comma-separated
            /// (optional: an older server sends none and ignores ours).
            features: Option<Token>,
        },
        /// `PEER_CHALLENGE <version> <server-id> <generation> <nonce> <mac> [<features>]`:
        /// the acceptor proves it knows the secret and challenges back.
        Challenge = "PEER_CHALLENGE" Line {
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
            /// What the acceptor speaks beyond version 1 (optional).
            features: Option<Token>,
        },
        /// `PEER_AUTH <mac>`: the dialer's proof.
        Auth = "PEER_AUTH" Line {
            /// HMAC-SHA256 proof, hex.
            mac: Token,
        },
        /// `PEER_OK`: the acceptor accepted the dialer; the link is up.
        Ok = "PEER_OK" Line,
        /// `MEMBER <server-id> <generation> <peer-addr>`: another member the
        /// sender knows, so that a newcomer links to every server.
        Member = "MEMBER" Line {
            /// Its id.
            id: ServerId,
            /// Its generation.
            generation: u64,
            /// Its peer address.
            peer_addr: HostPort,
        },
        /// `INTEREST <room>`: the sender now has members in the room.
        Interest = "INTEREST" Line {
            /// The room.
            room: Room,
        },
        /// `UNINTEREST <room>`: the sender has no member in the room any more.
        Uninterest = "UNINTEREST" Line {
            /// The room.
            room: Room,
        },
        /// `RJOINED <room> <nick> [rejoin]`: a member of the sender joined the room.
        Joined = "RJOINED" Line {
            /// The room.
            room: Room,
            /// Who.
            nick: Nick,
            /// A client back after a move (its `JOIN` named where it was):
            /// announced only where its members were told it left. Older
            /// peers ignore it.
            rejoin: bool,
        },
        /// `RPARTED <room> <nick> [away]`: a member of the sender left the room.
        Parted = "RPARTED" Line {
            /// The room.
            room: Room,
            /// Who.
            nick: Nick,
            /// Its session ended without leaving (no `QUIT`: a lost
            /// connection, a move): the receiver announces it only if it is
            /// not back within its presence grace. Older peers ignore it.
            away: bool,
        },
        /// `RMEMBER <room> <nick>`: an existing member, sent to a newly
        /// interested peer; unlike `RJOINED`, not announced to clients.
        RoomMember = "RMEMBER" Line {
            /// The room.
            room: Room,
            /// Who.
            nick: Nick,
        },
        /// `HISTORY <room> <after-msg-id>`: the sender's member rejoined after
        /// a move and its history lacks that id: send what follows it.
        History = "HISTORY" Line {
            /// The room.
            room: Room,
            /// The last id the member saw.
            after: MsgId,
        },
        /// `REPLAY <room> <msg-id> <nick> <N>` and a body: a message from the
        /// sender's history, in answer to `HISTORY`.
        Replay = "REPLAY" Body {
            /// The room.
            room: Room,
            /// Its id.
            id: MsgId,
            /// Who said it.
            nick: Nick,
            /// The text.
            text: Text,
        },
        /// `NICK_CLAIM <nick> <session> <proof>`: the sender's session (by its
        /// WELCOME token) wants the nick; sent to the nick's owner. Proof: `-`,
        /// `token` (a valid JWT was checked), `hold` (a lease re-announced to
        /// a new owner), or the resume token of the session holding it.
        NickClaim = "NICK_CLAIM" Line {
            /// The nick.
            nick: Nick,
            /// The claiming session.
            session: Token,
            /// What backs the claim.
            proof: Token,
        },
        /// `NICK_ANSWER <nick> <session> [granted]`: the owner's answer.
        NickAnswer = "NICK_ANSWER" Line {
            /// The nick.
            nick: Nick,
            /// The claiming session.
            session: Token,
            /// Whether it got the lease.
            granted: bool,
        },
        /// `NICK_RELEASE <nick> <session>`: the session ended; to the owner.
        NickRelease = "NICK_RELEASE" Line {
            /// The nick.
            nick: Nick,
            /// The session that held it.
            session: Token,
        },
        /// `NICK_REVOKE <nick> <session>`: the owner gave the nick to
        /// another session: end this one (`ERR 512`); to its server.
        NickRevoke = "NICK_REVOKE" Line {
            /// The nick.
            nick: Nick,
            /// The session to end.
            session: Token,
        },
    }
    custom {
        /// `STATE ...`: the sender's own state.
        State(Box<PeerStateMsg>) = "STATE" Shape::Line,
        /// `ERR <code> <reason ...>`.
        Err {
            /// Three digits.
            code: u16,
            /// Free text.
            reason: String,
        } = "ERR" Shape::Trailing(1),
    }
    lines {}
    by encode_custom, build_custom;
}

impl PeerFrame {
    /// An `ERR` frame with a sanitised reason.
    pub fn err(code: ErrCode, reason: impl AsRef<str>) -> PeerFrame {
        PeerFrame::Err { code: code.as_u16(), reason: crate::error::err_reason(code, reason.as_ref()) }
    }
}

/// The frames the table does not encode: the boxed state, the free-text reason.
fn encode_custom(f: &PeerFrame, dst: &mut BytesMut) {
    match f {
        PeerFrame::State(s) => put_line(
            dst,
            "STATE",
            &[
                s.id.as_str(),
                itoa_buf(s.generation).as_str(),
                s.client_addr.as_str(),
                s.peer_addr.as_str(),
                s.status.as_str(),
                itoa_buf(u64::from(s.users)).as_str(),
                itoa_buf(u64::from(s.capacity)).as_str(),
                s.group.as_str(),
                s.transport.as_str(),
                s.ws.as_ref().map_or("-", Token::as_str),
            ],
        ),
        PeerFrame::Err { code, reason } => put_line(dst, "ERR", &[itoa_buf(u64::from(*code)).as_str(), reason]),
        // The table encodes every other frame.
        _ => {}
    }
}

/// The frames the table does not build.
fn build_custom(p: &Parts<'_>) -> Result<PeerFrame, Error> {
    Ok(match p.verb() {
        b"STATE" => PeerFrame::State(Box::new(PeerStateMsg {
            id: ServerId::from_bytes(p.arg(0)?)?,
            generation: number(p.arg(1)?, "generation")?,
            client_addr: HostPort::from_bytes(p.arg(2)?)?,
            peer_addr: HostPort::from_bytes(p.arg(3)?)?,
            status: Status::from_bytes(p.arg(4)?)?,
            users: number(p.arg(5)?, "users")?,
            capacity: number(p.arg(6)?, "capacity")?,
            group: Group::from_bytes(p.arg(7)?)?,
            transport: p.opt_arg(8).map(Transport::from_bytes).transpose()?.unwrap_or_default(),
            ws: p.opt_arg(9).filter(|u| *u != b"-").map(Token::from_bytes).transpose()?,
        })),
        b"ERR" => PeerFrame::Err {
            code: number(p.arg(0)?, "code")?,
            reason: String::from_utf8_lossy(p.trailing()).into_owned(),
        },
        v => return Err(Error::UnknownVerb(String::from_utf8_lossy(v).into_owned())),
    })
}
