//! Frames a client sends to a server: one table.

use crate::error::Error;
use crate::names::{Credential, MsgId, Nick, Room, Text, Token};
use crate::wire::Parts;

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

crate::table::frames! {
    /// A frame from a client to a server.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ClientFrame: CLIENT, "client-to-server" {
        /// `SAY <room> [<tag>] <N>` and a body. With a tag the server answers
        /// `ACK <tag> <msg-id>` once the farm has the message, and a resent
        /// SAY with the same tag (after a move) is delivered once.
        Say = "SAY" Body {
            /// The room.
            room: Room,
            /// The client's name for this message: unique per nick for as
            /// long as the room's history keeps it.
            tag: Option<Token>,
            /// The text.
            text: Text,
        },
        /// `HELLO <version> <nick>`: open a session.
        Hello = "HELLO" Line {
            /// Protocol version; the server answers a version it lacks with 505.
            version: u32,
            /// The nick the session wants.
            nick: Nick,
            /// In token mode, a JWT whose `sub` is the nick; ignored by an
            /// open farm (`-` stands for none when `resume` follows).
            token: Option<Credential>,
            /// The WELCOME token of this client's previous session: proof
            /// that the nick, held by that session, is its own.
            resume: Option<Token>,
        },
        /// `FARM [watch]`: ask for the farm table; with `watch`, also every
        /// update after it, without opening a session.
        Farm = "FARM" Line {
            /// Keep sending `FARM_INFO` updates.
            watch: bool,
        },
        /// `JOIN <room> [<after-msg-id>]`.
        Join = "JOIN" Line {
            /// The room.
            room: Room,
            /// Replay the messages after this id.
            after: Option<MsgId>,
        },
        /// `PART <room>`.
        Part = "PART" Line {
            /// The room.
            room: Room,
        },
        /// `WHO <room>`: list the room's members.
        Who = "WHO" Line {
            /// The room.
            room: Room,
        },
        /// `PING <token>`.
        Ping = "PING" Line {
            /// Echoed in the `PONG`.
            token: Token,
        },
        /// `PONG <token>`: the answer to a server's `PING`.
        Pong = "PONG" Line {
            /// The token of the `PING`.
            token: Token,
        },
        /// `QUIT`.
        Quit = "QUIT" Line,
    }
    custom {}
    lines {}
    by encode_none, build_none;
}

/// Every client frame is regular: nothing is encoded by hand.
#[allow(dead_code)]
fn encode_none(_: &ClientFrame, _: &mut bytes::BytesMut) {}

/// A verb the table does not have (the scanner admits only the table's).
fn build_none(p: &Parts<'_>) -> Result<ClientFrame, Error> {
    Err(Error::UnknownVerb(String::from_utf8_lossy(p.verb()).into_owned()))
}
