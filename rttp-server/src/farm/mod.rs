//! The farm, in layers like a client connection:
//! - [`handshake`]: the authenticated peer handshake over any stream ([`auth`] holds its proofs);
//! - [`peer`]: the peer connection of a live link, which only reads and writes frames;
//! - [`dispatch`]: the one dispatcher from a peer frame to the rooms or to membership;
//! - [`detector`]: failure detection, pure (frames heard and ticks in, suspicions out);
//! - [`membership`]: the pure state machine that owns the farm table;
//! - [`publish`]: the published table and the `FARM_INFO` push policy;
//! - [`driver`]: the thin loop around them, [`driver::spawn`] → [`driver::FarmHandle`].

pub mod auth;
pub mod detector;
pub mod dispatch;
pub mod driver;
pub mod handshake;
pub mod membership;
pub mod peer;
pub mod publish;
#[cfg(test)]
mod splice_tests;

use std::net::SocketAddr;
use std::time::Duration;

use rttp_conn::tls::Stream;
use rttp_conn::PeerConn;

pub use driver::{spawn, FarmHandle};

use self::handshake::Peer;
use self::membership::{Event, LinkId};

/// How often the driver ticks: heartbeats, timeouts and redials are checked
/// at this granularity.
pub const TICK: Duration = Duration::from_millis(50);
/// Time allowed to connect to a peer.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of the queue of events into the driver.
pub const EVENT_QUEUE: usize = 4096;

/// Input of the driver's loop.
// Control-plane values, short-lived and few: size does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum FarmEvent {
    /// An event for the membership state machine.
    Membership(Event),
    /// A link passed its handshake.
    LinkReady {
        /// Its number.
        link: LinkId,
        /// Who is on the other end.
        peer: Peer,
        /// The connection, with any bytes read past the handshake.
        conn: PeerConn<Stream>,
        /// The address we dialed, or `None` if the peer dialed us.
        dialed: Option<SocketAddr>,
    },
}
