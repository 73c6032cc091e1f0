//! Frames a server sends to a client, and the farm table they carry.

use bytes::BytesMut;

use crate::error::{ErrCode, Error};
use crate::frame::{itoa_buf, put_line};
use crate::names::{Group, HostPort, MsgId, Nick, Room, ServerId, Status, Text, Token, Transport};
use crate::wire::{line_arg, number, Parts, Shape};

/// The position before a room's first message: `JOINED` says it to a
/// joiner when the room has no message yet, and `JOIN <room> -` replays
/// everything the server keeps, with no `ERR 409`.
pub const ROOM_START: &str = "-";

/// Most nicks on one `MEMBERS` line, so that it stays under the line limit.
pub const MEMBERS_PER_LINE: usize = 100;

/// One server's row in the farm table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServerEntry {
    /// Its id.
    pub id: ServerId,
    /// The address clients connect to.
    pub addr: HostPort,
    /// Its status.
    pub status: Status,
    /// Live sessions.
    pub users: u32,
    /// Sessions it accepts before it is FULL.
    pub capacity: u32,
    /// Its zone or region.
    pub group: Group,
    /// How its client port is spoken (the optional seventh field; `tcp` when absent).
    pub transport: Transport,
    /// Its WebSocket URL for web clients (the optional eighth field; `-` or
    /// absent: none).
    pub ws: Option<Token>,
}

/// The farm table: every known server, at an epoch that only grows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FarmInfo {
    /// Grows with every change the sender publishes.
    pub epoch: u64,
    /// One entry per server.
    pub servers: Vec<ServerEntry>,
}

crate::table::frames! {
    /// A frame from a server to a client.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum ServerFrame: SERVER, "server-to-client" {
        /// `MSG <room> <msg-id> <nick> <N>` and a body.
        Msg = "MSG" Body {
            /// The room.
            room: Room,
            /// Unique farm-wide.
            id: MsgId,
            /// The sender.
            nick: Nick,
            /// The text.
            text: Text,
        },
        /// `ACK <tag> <msg-id>`: the farm has the `SAY` tagged `tag`, as `msg-id`.
        Ack = "ACK" Line {
            /// The client's tag.
            tag: Token,
            /// The message's id.
            id: MsgId,
        },
        /// `WELCOME <server-id> <session-id>`.
        Welcome = "WELCOME" Line {
            /// The server's id.
            server: ServerId,
            /// This session's id.
            session: Token,
        },
        /// `REDIRECT <server-id> <host:port> <reason>`: go there; the server
        /// closes this connection.
        Redirect = "REDIRECT" Line {
            /// Where to go.
            server: ServerId,
            /// Its client address.
            addr: HostPort,
            /// `full`, `drain` or `rebalance` (others may come).
            reason: Token,
        },
        /// `JOINED <room> <nick> [<at>]`.
        Joined = "JOINED" Line {
            /// The room.
            room: Room,
            /// Who joined.
            nick: Nick,
            /// To the joiner only: the room's last msg-id at the join, or
            /// [`ROOM_START`] when there is none yet; the position a client
            /// that sees no message before it moves rejoins from.
            at: Option<MsgId>,
        },
        /// `PARTED <room> <nick>`.
        Parted = "PARTED" Line {
            /// The room.
            room: Room,
            /// Who left.
            nick: Nick,
        },
        /// `END_MEMBERS <room> <total>`: the end of the answer to `WHO`.
        EndMembers = "END_MEMBERS" Line {
            /// The room.
            room: Room,
            /// How many members were listed.
            total: u32,
        },
        /// `PING <token>`: the server checks a silent client.
        Ping = "PING" Line {
            /// To echo in `PONG`.
            token: Token,
        },
        /// `PONG <token>`.
        Pong = "PONG" Line {
            /// The client's token.
            token: Token,
        },
    }
    custom {
        /// `FARM_INFO <epoch> <count>` and `count` `SERVER` lines.
        FarmInfo(FarmInfo) = "FARM_INFO" Shape::Block { count_arg: 1, item_verb: b"SERVER" },
        /// `MEMBERS <room> <nick> ...`: part of the answer to `WHO`.
        Members {
            /// The room.
            room: Room,
            /// At most [`MEMBERS_PER_LINE`] nicks.
            nicks: Vec<Nick>,
        } = "MEMBERS" Shape::Line,
        /// `ERR <code> <reason ...>`.
        Err {
            /// Three digits; see [`ErrCode`].
            code: u16,
            /// Printable ASCII, to the end of the line.
            reason: String,
        } = "ERR" Shape::Trailing(1),
    }
    // SERVER lines only occur inside a FARM_INFO block.
    lines { "SERVER" Shape::Line }
    by encode_custom, build_custom;
}

impl ServerFrame {
    /// An `ERR` frame; the reason is made printable and cut to [`crate::MAX_REASON`].
    pub fn err(code: ErrCode, reason: impl AsRef<str>) -> ServerFrame {
        ServerFrame::Err { code: code.as_u16(), reason: crate::error::err_reason(code, reason.as_ref()) }
    }

    /// The known code of an `ERR` frame.
    pub fn err_code(&self) -> Option<ErrCode> {
        match self {
            ServerFrame::Err { code, .. } => ErrCode::from_u16(*code),
            _ => None,
        }
    }
}

/// The frames the table does not encode: a block, a list, a free-text reason.
fn encode_custom(f: &ServerFrame, dst: &mut BytesMut) {
    match f {
        ServerFrame::FarmInfo(info) => encode_farm_info(info, dst),
        ServerFrame::Members { room, nicks } => {
            let mut args = Vec::with_capacity(nicks.len() + 1);
            args.push(room.as_str());
            args.extend(nicks.iter().map(Nick::as_str));
            put_line(dst, "MEMBERS", &args)
        }
        ServerFrame::Err { code, reason } => {
            let reason = if reason.is_empty() { "error" } else { reason.as_str() };
            put_line(dst, "ERR", &[itoa_buf(u64::from(*code)).as_str(), reason])
        }
        // The table encodes every other frame.
        _ => {}
    }
}

/// The frames the table does not build.
fn build_custom(p: &Parts<'_>) -> Result<ServerFrame, Error> {
    Ok(match p.verb() {
        b"FARM_INFO" => ServerFrame::FarmInfo(build_farm_info(p)?),
        b"MEMBERS" => {
            let room = Room::from_bytes(p.arg(0)?)?;
            // Nick lists can be longer than the addressable arguments: walk the line.
            let nicks = p.lay.head.words(p.bytes).skip(1).map(Nick::from_bytes).collect::<Result<_, _>>()?;
            ServerFrame::Members { room, nicks }
        }
        b"ERR" => {
            let code: u16 = number(p.arg(0)?, "code")?;
            if !(100..=999).contains(&code) || p.arg(0)?.len() != 3 {
                return Err(Error::BadArgument("an ERR code has three digits".into()));
            }
            ServerFrame::Err { code, reason: String::from_utf8_lossy(p.trailing()).into_owned() }
        }
        b"SERVER" => return Err(Error::BadFrame("SERVER outside a FARM_INFO block")),
        v => return Err(Error::UnknownVerb(String::from_utf8_lossy(v).into_owned())),
    })
}

/// Appends `FARM_INFO` and its `SERVER` lines.
pub(crate) fn encode_farm_info(info: &FarmInfo, dst: &mut BytesMut) {
    put_line(dst, "FARM_INFO", &[itoa_buf(info.epoch).as_str(), itoa_buf(info.servers.len() as u64).as_str()]);
    for s in &info.servers {
        put_line(
            dst,
            "SERVER",
            &[
                s.id.as_str(),
                s.addr.as_str(),
                s.status.as_str(),
                itoa_buf(u64::from(s.users)).as_str(),
                itoa_buf(u64::from(s.capacity)).as_str(),
                s.group.as_str(),
                s.transport.as_str(),
                s.ws.as_ref().map_or("-", Token::as_str),
            ],
        );
    }
}

/// Builds the farm table from a located `FARM_INFO` block.
pub(crate) fn build_farm_info(p: &Parts<'_>) -> Result<FarmInfo, Error> {
    p.need(2)?;
    let epoch = number(p.arg(0)?, "epoch")?;
    let mut servers = Vec::with_capacity(p.lay.block.len());
    for l in &p.lay.block {
        let a = |i| line_arg(p.bytes, l, i);
        if l.nargs < 6 {
            return Err(Error::BadArgument("SERVER needs 6 arguments".into()));
        }
        servers.push(ServerEntry {
            id: ServerId::from_bytes(a(0)?)?,
            addr: HostPort::from_bytes(a(1)?)?,
            status: Status::from_bytes(a(2)?)?,
            users: number(a(3)?, "users")?,
            capacity: number(a(4)?, "capacity")?,
            group: Group::from_bytes(a(5)?)?,
            transport: if l.nargs > 6 { Transport::from_bytes(a(6)?)? } else { Transport::Tcp },
            ws: match a(7) {
                Ok(b"-") | Err(_) => None,
                Ok(u) => Some(Token::from_bytes(u)?),
            },
        });
    }
    Ok(FarmInfo { epoch, servers })
}
