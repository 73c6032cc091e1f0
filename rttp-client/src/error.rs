//! The client's one error enum.

use std::net::SocketAddr;

use rttp_conn::hello::HelloError;
use rttp_conn::ConnError;
use rttp_proto::ServerId;

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
    /// TLS failed with this server: its certificate did not verify, or it
    /// does not speak TLS on that port.
    #[error("{addr}: {reason}")]
    Tls {
        /// Where.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The server refused with an `ERR`.
    #[error("{addr}: ERR {code} {reason}")]
    Refused {
        /// Where.
        addr: SocketAddr,
        /// The code (`rttp_proto::ErrCode::from_u16` names ours).
        code: u16,
        /// Its reason.
        reason: String,
    },
    /// The server sent the client to another server instead of serving it.
    #[error("{addr}: redirected to {server} ({reason})")]
    Redirected {
        /// The server that redirected.
        addr: SocketAddr,
        /// Where it sends the client.
        server: ServerId,
        /// `full`, `drain`, ...
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
    /// The farm refused the token (`ERR 511`): missing, expired, badly
    /// signed, or for another nick; the reason is the server's.
    #[error("the farm refused the token: {0}")]
    Unauthorized(String),
    /// A bad argument from the caller (a room or nick name).
    #[error("{0}")]
    Invalid(String),
    /// The client was closed.
    #[error("the client is closed")]
    ClientClosed,
}

impl Error {
    /// A frame-connection failure at `addr`, in the client's terms.
    pub fn conn(addr: SocketAddr, e: ConnError) -> Error {
        match e {
            ConnError::Io(source) => Error::Io { addr, source },
            ConnError::Timeout(_) => Error::Timeout { addr },
            ConnError::Closed | ConnError::Truncated => Error::Closed { addr },
            ConnError::Decode(d) => Error::Protocol { addr, reason: d.to_string() },
            ConnError::Tls(reason) => Error::Tls { addr, reason },
        }
    }

    /// A broken HELLO exchange at `addr`.
    pub fn hello(addr: SocketAddr, e: HelloError) -> Error {
        match e {
            HelloError::Conn(c) => Error::conn(addr, c),
            other => Error::Protocol { addr, reason: other.to_string() },
        }
    }
}

/// The client's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
