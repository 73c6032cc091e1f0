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

    /// Whether this failed `HELLO` ends the connect sequence: another
    /// server would refuse the same nick or token. A nick in use while the
    /// client resumes its session (`resuming`: it holds the nick's resume
    /// token) does not: the holder may be a `HELLO` of its own that it gave
    /// up on and a slow server opened anyway, which ends once that server
    /// reads the closed connection; the sequence tries again, within its
    /// bounded rounds.
    pub fn ends_sequence(&self, resuming: bool) -> bool {
        match self {
            Error::Unauthorized(_) => true,
            Error::NickInUse(_) => !resuming,
            _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nick_in_use_ends_the_sequence_only_for_a_client_that_is_not_resuming() {
        let nick = Error::NickInUse("alice".into());
        assert!(nick.ends_sequence(false), "a first HELLO: somebody else has the nick");
        assert!(!nick.ends_sequence(true), "a move: perhaps our own abandoned HELLO");
        assert!(Error::Unauthorized("expired".into()).ends_sequence(true));
        let timeout = Error::Timeout { addr: "127.0.0.1:7000".parse().unwrap() };
        assert!(!timeout.ends_sequence(false) && !timeout.ends_sequence(true));
    }
}
