//! The client's one error enum.

use std::net::SocketAddr;

/// Everything that can go wrong for a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket failed.
    #[error("{addr}: {source}")]
    Io {
        /// Where.
        addr: SocketAddr,
        /// What.
        #[source]
        source: std::io::Error,
    },
    /// Connecting or a reply took too long.
    #[error("{addr}: timed out")]
    Timeout {
        /// Where.
        addr: SocketAddr,
    },
    /// The server closed the connection.
    #[error("{addr}: connection closed")]
    Closed {
        /// Where.
        addr: SocketAddr,
    },
    /// The server sent bytes that are not RTTP/1.
    #[error("{addr}: bad frame from the server: {reason}")]
    Protocol {
        /// Where.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The server refused with an `ERR`.
    #[error("{addr}: ERR {code} {reason}")]
    Refused {
        /// Where.
        addr: SocketAddr,
        /// The code.
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// DNS could not resolve the service.
    #[error("cannot resolve {name}: {reason}")]
    Resolve {
        /// The name asked for.
        name: String,
        /// Why.
        reason: String,
    },
    /// The farm has no server that can take the session.
    #[error("no server of the farm is UP")]
    NoServer,
    /// The connect sequence gave up after its bounded rounds.
    #[error("gave up after {rounds} rounds: {last}")]
    GaveUp {
        /// Rounds tried.
        rounds: u32,
        /// The last failure.
        last: String,
    },
    /// The nick is taken.
    #[error("nick {0} is in use")]
    NickInUse(String),
    /// A bad argument from the caller (a room or nick name).
    #[error("{0}")]
    Invalid(String),
    /// The client was closed.
    #[error("the client is closed")]
    ClientClosed,
}

/// The client's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
