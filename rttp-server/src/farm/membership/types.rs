//! The vocabulary of membership: the table's rows, the timers, the events
//! that go in and the actions that come out.

use std::net::SocketAddr;
use std::time::Duration;

use rttp_proto::{FarmInfo, Group, HostPort, PeerFrame, PeerStateMsg, ServerEntry, ServerId, Status};
use tokio::time::Instant;

/// A link's number, unique within one server run.
pub type LinkId = u64;

/// What this server knows of one server of the farm (itself included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// Its id.
    pub id: ServerId,
    /// Where clients connect.
    pub client_addr: HostPort,
    /// Where peers connect.
    pub peer_addr: HostPort,
    /// Its group.
    pub group: Group,
    /// UP, FULL, DRAINING, or DOWN when we lost it.
    pub status: Status,
    /// Its users.
    pub users: u32,
    /// Its capacity.
    pub capacity: u32,
    /// How its client port is spoken.
    pub transport: rttp_proto::Transport,
    /// Its WebSocket URL, if it serves web clients.
    pub ws: Option<rttp_proto::Token>,
    /// Its generation: a higher one supersedes.
    pub generation: u64,
    /// When we last heard from it.
    pub last_heard: Instant,
}

impl PeerState {
    pub(super) fn from_msg(m: &PeerStateMsg, now: Instant) -> PeerState {
        PeerState {
            id: m.id,
            client_addr: m.client_addr,
            peer_addr: m.peer_addr,
            group: m.group,
            status: m.status,
            users: m.users,
            capacity: m.capacity,
            transport: m.transport,
            ws: m.ws,
            generation: m.generation,
            last_heard: now,
        }
    }

    /// Its row in `FARM_INFO`.
    pub fn entry(&self) -> ServerEntry {
        ServerEntry {
            id: self.id,
            addr: self.client_addr,
            status: self.status,
            users: self.users,
            capacity: self.capacity,
            group: self.group,
            transport: self.transport,
            ws: self.ws,
        }
    }
}

/// The membership timers; every one configurable.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// How often a `BEAT` goes to every peer.
    pub heartbeat: Duration,
    /// Silence after which a peer is DOWN.
    pub down_after: Duration,
    /// How long user-count changes are coalesced before a `STATE`.
    pub coalesce: Duration,
    /// First redial delay; doubles per failure, with jitter.
    pub redial_min: Duration,
    /// Longest redial delay.
    pub redial_max: Duration,
    /// How long a DOWN server stays in the table before it is forgotten.
    pub forget_after: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            heartbeat: Duration::from_millis(500),
            down_after: Duration::from_secs(2),
            coalesce: Duration::from_millis(100),
            redial_min: Duration::from_millis(250),
            redial_max: Duration::from_secs(5),
            forget_after: Duration::from_secs(600),
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// Time passes: heartbeats, timeouts, redials, coalesced state.
    Tick,
    /// A link we dialed to `addr` passed the handshake.
    Dialed {
        /// The address dialed.
        addr: SocketAddr,
        /// The new link.
        link: LinkId,
        /// Who answered.
        peer: ServerId,
        /// Its generation.
        generation: u64,
    },
    /// A link a peer dialed to us passed the handshake.
    Accepted {
        /// The new link.
        link: LinkId,
        /// Who dialed.
        peer: ServerId,
        /// Its generation.
        generation: u64,
    },
    /// A dial failed (refused, timed out, or the handshake failed).
    DialFailed {
        /// The address dialed.
        addr: SocketAddr,
    },
    /// A link closed.
    LinkClosed {
        /// Which.
        link: LinkId,
    },
    /// A frame arrived on a link.
    Heard {
        /// Which link.
        link: LinkId,
    },
    /// A peer announced its state.
    State {
        /// The link it came on.
        link: LinkId,
        /// The state.
        state: PeerStateMsg,
    },
    /// A peer told us of another member.
    Member {
        /// The member.
        id: ServerId,
        /// Its generation.
        generation: u64,
        /// Its peer address.
        peer_addr: HostPort,
    },
    /// Our own state changed (users, status).
    Local {
        /// The new own state.
        state: PeerStateMsg,
    },
}

/// Something the driver must do.
// Control-plane values, short-lived and few: size does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a link to this address.
    Dial {
        /// Where.
        addr: SocketAddr,
    },
    /// Close a link.
    Close {
        /// Which.
        link: LinkId,
        /// Why, for the log.
        reason: &'static str,
    },
    /// Send a frame on a link.
    Send {
        /// Which.
        link: LinkId,
        /// What.
        frame: PeerFrame,
    },
    /// The link is now this peer's link: route room traffic over it and
    /// send it our room interest.
    LinkUp {
        /// The link.
        link: LinkId,
        /// The peer.
        peer: ServerId,
    },
    /// The peer is lost: its members leave our rooms.
    PeerDown {
        /// The peer.
        peer: ServerId,
    },
    /// The table changed: publish it. `push` when a server joined, left or
    /// changed status, so clients get `FARM_INFO` now; user counts alone
    /// wait for the driver's periodic push.
    Publish {
        /// The whole table, sorted by id, with its new epoch.
        table: FarmInfo,
        /// Whether clients must hear of it at once.
        push: bool,
    },
}
