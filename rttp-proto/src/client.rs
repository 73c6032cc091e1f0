//! Frames a client sends to a server.

use bytes::BytesMut;

use crate::error::Error;
use crate::frame::{impl_frame, itoa_buf, put_body, put_line, Build};
use crate::names::{MsgId, Nick, Room, Text, Token};
use crate::wire::{number, FrameKind, Parts, Shape};

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 1;

/// A frame from a client to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    /// `HELLO <version> <nick>`: open a session.
    Hello {
        /// Protocol version; the server answers a version it lacks with 505.
        version: u32,
        /// The nick the session wants.
        nick: Nick,
    },
    /// `FARM [watch]`: ask for the farm table; with `watch`, also every
    /// update after it, without opening a session.
    Farm {
        /// Keep sending `FARM_INFO` updates.
        watch: bool,
    },
    /// `JOIN <room> [<after-msg-id>]`.
    Join {
        /// The room.
        room: Room,
        /// Replay the messages after this id.
        after: Option<MsgId>,
    },
    /// `PART <room>`.
    Part {
        /// The room.
        room: Room,
    },
    /// `SAY <room> <N>` and a body.
    Say {
        /// The room.
        room: Room,
        /// The text.
        text: Text,
    },
    /// `WHO <room>`: list the room's members.
    Who {
        /// The room.
        room: Room,
    },
    /// `PING <token>`.
    Ping {
        /// Echoed in the `PONG`.
        token: Token,
    },
    /// `PONG <token>`: the answer to a server's `PING`.
    Pong {
        /// The token of the `PING`.
        token: Token,
    },
    /// `QUIT`.
    Quit,
}

impl ClientFrame {
    fn verb_name(&self) -> &'static str {
        match self {
            ClientFrame::Hello { .. } => "HELLO",
            ClientFrame::Farm { .. } => "FARM",
            ClientFrame::Join { .. } => "JOIN",
            ClientFrame::Part { .. } => "PART",
            ClientFrame::Say { .. } => "SAY",
            ClientFrame::Who { .. } => "WHO",
            ClientFrame::Ping { .. } => "PING",
            ClientFrame::Pong { .. } => "PONG",
            ClientFrame::Quit => "QUIT",
        }
    }

    fn encode_into(&self, dst: &mut BytesMut) {
        let verb = self.verb_name();
        match self {
            ClientFrame::Hello { version, nick } => {
                put_line(dst, verb, &[itoa_buf(u64::from(*version)).as_str(), nick.as_str()])
            }
            ClientFrame::Farm { watch: true } => put_line(dst, verb, &["watch"]),
            ClientFrame::Farm { watch: false } | ClientFrame::Quit => put_line(dst, verb, &[]),
            ClientFrame::Join { room, after } => match after {
                Some(id) => put_line(dst, verb, &[room.as_str(), id.as_str()]),
                None => put_line(dst, verb, &[room.as_str()]),
            },
            ClientFrame::Part { room } | ClientFrame::Who { room } => put_line(dst, verb, &[room.as_str()]),
            ClientFrame::Say { room, text } => put_body(dst, verb, &[room.as_str()], text.bytes()),
            ClientFrame::Ping { token } | ClientFrame::Pong { token } => put_line(dst, verb, &[token.as_str()]),
        }
    }
}

impl FrameKind for ClientFrame {
    const LINK: &'static str = "client-to-server";
    fn shape(verb: &[u8]) -> Option<Shape> {
        crate::verbs::shape(crate::verbs::CLIENT, verb)
    }
}

impl Build for ClientFrame {
    fn build(p: &Parts<'_>) -> Result<ClientFrame, Error> {
        Ok(match p.verb() {
            b"HELLO" => {
                p.need(2)?;
                ClientFrame::Hello { version: number(p.arg(0)?, "version")?, nick: Nick::from_bytes(p.arg(1)?)? }
            }
            b"FARM" => ClientFrame::Farm { watch: p.opt_arg(0) == Some(&b"watch"[..]) },
            b"QUIT" => ClientFrame::Quit,
            b"JOIN" => ClientFrame::Join {
                room: Room::from_bytes(p.arg(0)?)?,
                after: p.opt_arg(1).map(MsgId::from_bytes).transpose()?,
            },
            b"PART" => ClientFrame::Part { room: Room::from_bytes(p.arg(0)?)? },
            b"WHO" => ClientFrame::Who { room: Room::from_bytes(p.arg(0)?)? },
            b"SAY" => {
                p.need(2)?;
                ClientFrame::Say { room: Room::from_bytes(p.arg(0)?)?, text: Text::from_bytes(p.body())? }
            }
            b"PING" => ClientFrame::Ping { token: Token::from_bytes(p.arg(0)?)? },
            b"PONG" => ClientFrame::Pong { token: Token::from_bytes(p.arg(0)?)? },
            // scan() admits only the verbs of verbs::CLIENT.
            v => return Err(Error::UnknownVerb(String::from_utf8_lossy(v).into_owned())),
        })
    }
}

impl_frame!(ClientFrame);
