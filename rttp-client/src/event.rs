//! What a client reports: every step of the farm method, and chat traffic.

use std::net::SocketAddr;

use rttp_proto::{FarmInfo, MsgId, Nick, Room, ServerId, Text, Token};

/// One thing that happened, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// DNS (or the bootstrap list) gave these addresses.
    Resolved {
        /// The addresses, in the order given.
        addrs: Vec<SocketAddr>,
    },
    /// Nothing DNS (or the bootstrap list) gave answered: the client tries
    /// the servers of the last table it had instead, in this order.
    Known {
        /// The addresses, in the order tried.
        addrs: Vec<SocketAddr>,
    },
    /// The first server answered HELLO; its table follows as [`Event::Table`],
    /// before the selection made from it.
    ConnectedFirst {
        /// Its id.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// The strategy chose the serving server from the table.
    Selected {
        /// The choice.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
        /// Whether it is the server the client is already on.
        stay: bool,
    },
    /// A session is established on this server.
    Connected {
        /// Its id.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// Connecting to the chosen server failed; trying it once more.
    Retry {
        /// The server.
        server: ServerId,
        /// Why the first try failed.
        reason: String,
    },
    /// Asking DNS again, without these servers.
    Rediscover {
        /// Servers that just failed.
        excluded: Vec<ServerId>,
    },
    /// The server sent the client elsewhere.
    Redirected {
        /// Where to.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
        /// `full`, `drain`, ...
        reason: String,
    },
    /// The session's server was lost.
    Disconnected {
        /// Which.
        server: ServerId,
        /// Why.
        reason: String,
    },
    /// After a move, back in a room (replaying after the last id seen).
    Rejoined {
        /// The room.
        room: Room,
        /// The last msg-id seen before the move.
        after: Option<MsgId>,
    },
    /// A new farm table.
    Table(FarmInfo),
    /// A message, shown once even if replayed after a move.
    Message {
        /// The room.
        room: Room,
        /// Its id.
        id: MsgId,
        /// The sender.
        nick: Nick,
        /// The text.
        text: Text,
    },
    /// The farm has a line this client said (its `ACK`): it will reach
    /// every member of the room, once, wherever the client moves.
    Acked {
        /// The room.
        room: Room,
        /// The tag [`crate::Client::say`] returned.
        tag: Token,
        /// The message's id.
        id: MsgId,
    },
    /// A line this client said was given up without an `ACK`: it may or
    /// may not have reached the room (see `reason`).
    Unacked {
        /// The room.
        room: Room,
        /// The tag [`crate::Client::say`] returned.
        tag: Token,
        /// The text.
        text: Text,
        /// Why it was given up.
        reason: String,
    },
    /// Someone joined a room.
    Joined {
        /// The room.
        room: Room,
        /// Who.
        nick: Nick,
    },
    /// Someone left a room.
    Parted {
        /// The room.
        room: Room,
        /// Who.
        nick: Nick,
    },
    /// The members of a room (the answer to `who`).
    Members {
        /// The room.
        room: Room,
        /// Its members.
        nicks: Vec<Nick>,
    },
    /// The session now has this nick (after `Client::nick`).
    NickChanged {
        /// The new nick.
        nick: Nick,
    },
    /// The server refused something.
    ServerError {
        /// The code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The client gave up (bounded rounds exhausted) or was closed.
    Closed {
        /// Why.
        reason: String,
    },
}
