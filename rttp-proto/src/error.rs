//! The crate's one error enum, and the `ERR` code each error maps to.

use std::fmt;

/// A three-digit `ERR` code. 4xx: the request was refused and the
/// connection lives on. 5xx: the server closes the connection after the
/// `ERR` frame. The table is normative: see `docs/PROTOCOL.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum ErrCode {
    /// The line does not follow the grammar (bad spacing, bad characters).
    BadFrame = 400,
    /// The verb is not an RTTP/1 verb at all.
    UnknownVerb = 401,
    /// An argument is missing, malformed, or out of range.
    BadArgument = 402,
    /// A text body is not valid UTF-8.
    BadUtf8 = 403,
    /// The verb exists, but not on this kind of connection (a peer verb on
    /// a client connection, a server verb sent by a client, ...).
    WrongLink = 404,
    /// The verb needs a session: send `HELLO` first.
    NotRegistered = 405,
    /// `HELLO` on a connection that already has a session.
    AlreadyRegistered = 406,
    /// `SAY` or `PART` in a room the session is not in.
    NotInRoom = 407,
    /// `JOIN` would exceed the per-session room limit.
    TooManyRooms = 408,
    /// The `after-msg-id` of a `JOIN` is older than the room's history:
    /// the replay starts at the oldest message kept.
    HistoryGap = 409,
    /// 410: the session's token does not allow this (a room outside its `rooms` claim).
    Forbidden = 410,
    /// Frames are being dropped by the per-session rate limit.
    RateLimited = 429,
    /// The nick is taken by a live session.
    NickInUse = 433,
    /// An unexpected server-side failure.
    Internal = 500,
    /// Too many malformed frames in a row.
    TooManyErrors = 501,
    /// A line exceeded the line limit.
    LineTooLong = 502,
    /// The server is full (users reached its capacity).
    Busy = 503,
    /// A timeout: no `HELLO` in time, or the peer fell silent.
    Timeout = 504,
    /// The protocol version in `HELLO` is not supported.
    WrongVersion = 505,
    /// A declared body length exceeds the body limit.
    BodyTooLarge = 506,
    /// The session's outbound queue overflowed: it did not read fast enough.
    SlowConsumer = 507,
    /// The server is shutting down.
    ShuttingDown = 508,
    /// The server's hard connection limit is reached.
    TooManyConnections = 509,
    /// Framing was lost (a body was not followed by its line end).
    FramingLost = 510,
    /// Peer link authentication failed.
    AuthFailed = 511,
    /// 512: the nick opened a session elsewhere with a valid token; this one ends.
    Replaced = 512,
}

impl ErrCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrCode; 26] = [
        ErrCode::BadFrame,
        ErrCode::UnknownVerb,
        ErrCode::BadArgument,
        ErrCode::BadUtf8,
        ErrCode::WrongLink,
        ErrCode::NotRegistered,
        ErrCode::AlreadyRegistered,
        ErrCode::NotInRoom,
        ErrCode::TooManyRooms,
        ErrCode::HistoryGap,
        ErrCode::Forbidden,
        ErrCode::RateLimited,
        ErrCode::NickInUse,
        ErrCode::Internal,
        ErrCode::TooManyErrors,
        ErrCode::LineTooLong,
        ErrCode::Busy,
        ErrCode::Timeout,
        ErrCode::WrongVersion,
        ErrCode::BodyTooLarge,
        ErrCode::SlowConsumer,
        ErrCode::ShuttingDown,
        ErrCode::TooManyConnections,
        ErrCode::FramingLost,
        ErrCode::AuthFailed,
        ErrCode::Replaced,
    ];

    /// The numeric code.
    pub fn as_u16(self) -> u16 {
        self as u16
    }

    /// The code for a number, if it is one of ours.
    pub fn from_u16(n: u16) -> Option<ErrCode> {
        ErrCode::ALL.iter().copied().find(|c| c.as_u16() == n)
    }

    /// Whether the sender closes the connection after this code (5xx).
    pub fn closes(self) -> bool {
        self.as_u16() >= 500
    }

    /// A short machine-friendly label, used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrCode::BadFrame => "bad_frame",
            ErrCode::UnknownVerb => "unknown_verb",
            ErrCode::BadArgument => "bad_argument",
            ErrCode::BadUtf8 => "bad_utf8",
            ErrCode::WrongLink => "wrong_link",
            ErrCode::NotRegistered => "not_registered",
            ErrCode::AlreadyRegistered => "already_registered",
            ErrCode::NotInRoom => "not_in_room",
            ErrCode::TooManyRooms => "too_many_rooms",
            ErrCode::HistoryGap => "history_gap",
            ErrCode::RateLimited => "rate_limited",
            ErrCode::NickInUse => "nick_in_use",
            ErrCode::Internal => "internal",
            ErrCode::TooManyErrors => "too_many_errors",
            ErrCode::LineTooLong => "line_too_long",
            ErrCode::Busy => "busy",
            ErrCode::Timeout => "timeout",
            ErrCode::WrongVersion => "wrong_version",
            ErrCode::BodyTooLarge => "body_too_large",
            ErrCode::SlowConsumer => "slow_consumer",
            ErrCode::ShuttingDown => "shutting_down",
            ErrCode::TooManyConnections => "too_many_connections",
            ErrCode::FramingLost => "framing_lost",
            ErrCode::AuthFailed => "auth_failed",
            ErrCode::Forbidden => "forbidden",
            ErrCode::Replaced => "replaced",
        }
    }
}

impl fmt::Display for ErrCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_u16())
    }
}

/// Everything that can be wrong with bytes on the wire or with a value
/// that is about to be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No line end within the line limit.
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit in force, including CRLF.
        limit: usize,
    },
    /// A declared body length over the body limit.
    #[error("body of {len} bytes exceeds the limit of {limit}")]
    BodyTooLarge {
        /// The declared length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The line does not follow the grammar.
    #[error("malformed frame: {0}")]
    BadFrame(&'static str),
    /// Not an RTTP/1 verb.
    #[error("unknown verb {0}")]
    UnknownVerb(String),
    /// A verb of another connection kind.
    #[error("verb {verb} is not allowed on a {link} connection")]
    WrongLink {
        /// The verb received.
        verb: String,
        /// The kind of connection it arrived on.
        link: &'static str,
    },
    /// A missing or malformed argument.
    #[error("bad argument: {0}")]
    BadArgument(String),
    /// A body that is not UTF-8.
    #[error("body is not valid UTF-8")]
    BadUtf8,
    /// A `FARM_INFO` announcing more lines than the limit.
    #[error("block of {count} lines exceeds the limit of {limit}")]
    BlockTooLarge {
        /// The announced count.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A body not followed by its line end: the declared length lied.
    #[error("body not followed by CRLF: declared length does not match")]
    FramingLost,
}

impl Error {
    /// The `ERR` code that answers this error.
    pub fn code(&self) -> ErrCode {
        match self {
            Error::LineTooLong { .. } => ErrCode::LineTooLong,
            Error::BodyTooLarge { .. } | Error::BlockTooLarge { .. } => ErrCode::BodyTooLarge,
            Error::BadFrame(_) => ErrCode::BadFrame,
            Error::UnknownVerb(_) => ErrCode::UnknownVerb,
            Error::WrongLink { .. } => ErrCode::WrongLink,
            Error::BadArgument(_) => ErrCode::BadArgument,
            Error::BadUtf8 => ErrCode::BadUtf8,
            Error::FramingLost => ErrCode::FramingLost,
        }
    }
}

/// A decode failure, with how to go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// What was wrong.
    pub error: Error,
    /// `Some(n)`: the bad frame occupies the first `n` bytes; drop them and
    /// decoding can continue. `None`: framing cannot be recovered (a line
    /// or body over its limit, a body length that lied) and the connection
    /// must close.
    pub skip: Option<usize>,
}

impl DecodeError {
    pub(crate) fn fatal(error: Error) -> DecodeError {
        DecodeError { error, skip: None }
    }

    pub(crate) fn skip(error: Error, n: usize) -> DecodeError {
        DecodeError { error, skip: Some(n) }
    }

    /// Whether the connection cannot continue after this error.
    pub fn is_fatal(&self) -> bool {
        self.skip.is_none()
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for DecodeError {}

/// The crate's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An `ERR` reason as it goes on the wire, on any link: printable ASCII,
/// at most [`crate::MAX_REASON`] characters, never empty.
pub(crate) fn err_reason(code: ErrCode, reason: &str) -> String {
    let r: String = reason
        .chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .take(crate::limits::MAX_REASON)
        .collect();
    if r.trim().is_empty() {
        code.label().replace('_', " ")
    } else {
        r
    }
}
