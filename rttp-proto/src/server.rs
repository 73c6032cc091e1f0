//! Frames a server sends to a client, and the farm table they carry.

use bytes::BytesMut;

use crate::error::{ErrCode, Error};
use crate::frame::{impl_frame, itoa_buf, put_body, put_line, Build};
use crate::names::{Group, HostPort, MsgId, Nick, Room, ServerId, Status, Text, Token};
use crate::wire::{line_arg, number, FrameKind, Parts, Shape};

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
}

/// The farm table: every known server, at an epoch that only grows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FarmInfo {
    /// Grows with every change the sender publishes.
    pub epoch: u64,
    /// One entry per server.
    pub servers: Vec<ServerEntry>,
}

/// A frame from a server to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    /// `WELCOME <server-id> <session-id>`.
    Welcome {
        /// The server's id.
        server: ServerId,
        /// This session's id.
        session: Token,
    },
    /// `FARM_INFO <epoch> <count>` and `count` `SERVER` lines.
    FarmInfo(FarmInfo),
    /// `REDIRECT <server-id> <host:port> <reason>`: go there; the server
    /// closes this connection.
    Redirect {
        /// Where to go.
        server: ServerId,
        /// Its client address.
        addr: HostPort,
        /// `full`, `drain` or `rebalance` (others may come).
        reason: Token,
    },
    /// `MSG <room> <msg-id> <nick> <N>` and a body.
    Msg {
        /// The room.
        room: Room,
        /// Unique farm-wide.
        id: MsgId,
        /// The sender.
        nick: Nick,
        /// The text.
        text: Text,
    },
    /// `JOINED <room> <nick>`.
    Joined {
        /// The room.
        room: Room,
        /// Who joined.
        nick: Nick,
    },
    /// `PARTED <room> <nick>`.
    Parted {
        /// The room.
        room: Room,
        /// Who left.
        nick: Nick,
    },
    /// `MEMBERS <room> <nick> ...`: part of the answer to `WHO`.
    Members {
        /// The room.
        room: Room,
        /// At most [`MEMBERS_PER_LINE`] nicks.
        nicks: Vec<Nick>,
    },
    /// `END_MEMBERS <room> <total>`: the end of the answer to `WHO`.
    EndMembers {
        /// The room.
        room: Room,
        /// How many members were listed.
        total: u32,
    },
    /// `PING <token>`: the server checks a silent client.
    Ping {
        /// To echo in `PONG`.
        token: Token,
    },
    /// `PONG <token>`.
    Pong {
        /// The client's token.
        token: Token,
    },
    /// `ERR <code> <reason ...>`.
    Err {
        /// Three digits; see [`ErrCode`].
        code: u16,
        /// Printable ASCII, to the end of the line.
        reason: String,
    },
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

    fn verb_name(&self) -> &'static str {
        match self {
            ServerFrame::Welcome { .. } => "WELCOME",
            ServerFrame::FarmInfo(_) => "FARM_INFO",
            ServerFrame::Redirect { .. } => "REDIRECT",
            ServerFrame::Msg { .. } => "MSG",
            ServerFrame::Joined { .. } => "JOINED",
            ServerFrame::Parted { .. } => "PARTED",
            ServerFrame::Members { .. } => "MEMBERS",
            ServerFrame::EndMembers { .. } => "END_MEMBERS",
            ServerFrame::Ping { .. } => "PING",
            ServerFrame::Pong { .. } => "PONG",
            ServerFrame::Err { .. } => "ERR",
        }
    }

    fn encode_into(&self, dst: &mut BytesMut) {
        let verb = self.verb_name();
        match self {
            ServerFrame::Welcome { server, session } => put_line(dst, verb, &[server.as_str(), session.as_str()]),
            ServerFrame::FarmInfo(info) => encode_farm_info(info, dst),
            ServerFrame::Redirect { server, addr, reason } => {
                put_line(dst, verb, &[server.as_str(), addr.as_str(), reason.as_str()])
            }
            ServerFrame::Msg { room, id, nick, text } => {
                put_body(dst, verb, &[room.as_str(), id.as_str(), nick.as_str()], text.bytes())
            }
            ServerFrame::Joined { room, nick } | ServerFrame::Parted { room, nick } => {
                put_line(dst, verb, &[room.as_str(), nick.as_str()])
            }
            ServerFrame::Members { room, nicks } => {
                let mut args = Vec::with_capacity(nicks.len() + 1);
                args.push(room.as_str());
                args.extend(nicks.iter().map(Nick::as_str));
                put_line(dst, verb, &args)
            }
            ServerFrame::EndMembers { room, total } => {
                put_line(dst, verb, &[room.as_str(), itoa_buf(u64::from(*total)).as_str()])
            }
            ServerFrame::Ping { token } | ServerFrame::Pong { token } => put_line(dst, verb, &[token.as_str()]),
            ServerFrame::Err { code, reason } => {
                let reason = if reason.is_empty() { "error" } else { reason.as_str() };
                put_line(dst, verb, &[itoa_buf(u64::from(*code)).as_str(), reason])
            }
        }
    }
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
        });
    }
    Ok(FarmInfo { epoch, servers })
}

impl FrameKind for ServerFrame {
    const LINK: &'static str = "server-to-client";
    fn shape(verb: &[u8]) -> Option<Shape> {
        crate::verbs::shape(crate::verbs::SERVER, verb)
    }
}

impl Build for ServerFrame {
    fn build(p: &Parts<'_>) -> Result<ServerFrame, Error> {
        Ok(match p.verb() {
            b"WELCOME" => ServerFrame::Welcome {
                server: ServerId::from_bytes(p.arg(0)?)?,
                session: Token::from_bytes(p.arg(1)?)?,
            },
            b"FARM_INFO" => ServerFrame::FarmInfo(build_farm_info(p)?),
            b"REDIRECT" => ServerFrame::Redirect {
                server: ServerId::from_bytes(p.arg(0)?)?,
                addr: HostPort::from_bytes(p.arg(1)?)?,
                reason: Token::from_bytes(p.arg(2)?)?,
            },
            b"MSG" => {
                p.need(4)?;
                ServerFrame::Msg {
                    room: Room::from_bytes(p.arg(0)?)?,
                    id: MsgId::from_bytes(p.arg(1)?)?,
                    nick: Nick::from_bytes(p.arg(2)?)?,
                    text: Text::from_bytes(p.body())?,
                }
            }
            b"JOINED" => ServerFrame::Joined { room: Room::from_bytes(p.arg(0)?)?, nick: Nick::from_bytes(p.arg(1)?)? },
            b"PARTED" => ServerFrame::Parted { room: Room::from_bytes(p.arg(0)?)?, nick: Nick::from_bytes(p.arg(1)?)? },
            b"MEMBERS" => {
                let room = Room::from_bytes(p.arg(0)?)?;
                // Nick lists can be longer than the kept arguments: walk the line.
                let args = &p.bytes[p.lay.head.verb.end..p.lay.head.last.clone().map_or(0, |r| r.end)];
                let nicks = args.split(|&b| b == b' ').skip(2).map(Nick::from_bytes).collect::<Result<_, _>>()?;
                ServerFrame::Members { room, nicks }
            }
            b"END_MEMBERS" => {
                ServerFrame::EndMembers { room: Room::from_bytes(p.arg(0)?)?, total: number(p.arg(1)?, "total")? }
            }
            b"PING" => ServerFrame::Ping { token: Token::from_bytes(p.arg(0)?)? },
            b"PONG" => ServerFrame::Pong { token: Token::from_bytes(p.arg(0)?)? },
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
}

impl_frame!(ServerFrame);
