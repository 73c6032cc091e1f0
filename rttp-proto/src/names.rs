//! Validated argument types: a value of one of these can always be encoded.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;

use crate::error::Error;

/// Longest msg-id and token we accept, in bytes.
pub const MAX_TOKEN_LEN: usize = 128;

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn is_nick_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-')
}

/// Printable ASCII without space: the characters of an argument.
pub(crate) fn is_arg_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

/// Up to `N` bytes stored inline: names are short, and copying a few
/// dozen bytes is cheaper than an allocation or an atomic refcount.
#[derive(Clone, Copy)]
struct Inline<const N: usize> {
    len: u8,
    buf: [u8; N],
}

impl<const N: usize> Inline<N> {
    fn new(b: &[u8]) -> Self {
        let mut buf = [0u8; N];
        buf[..b.len()].copy_from_slice(b);
        Inline { len: b.len() as u8, buf }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $max:literal, $what:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy)]
        pub struct $name(Inline<$max>);

        impl $name {
            /// Validates `s`.
            pub fn new(s: &str) -> Result<Self, Error> {
                Self::from_bytes(s.as_bytes())
            }

            /// Validates raw bytes from the wire.
            pub fn from_bytes(b: &[u8]) -> Result<Self, Error> {
                let check: fn(&[u8]) -> bool = $check;
                if b.len() <= $max && check(b) {
                    Ok($name(Inline::new(b)))
                } else {
                    Err(Error::BadArgument(format!(
                        concat!("invalid ", $what, " {:?}"),
                        String::from_utf8_lossy(&b[..b.len().min(80)])
                    )))
                }
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                // The check admits ASCII only, so this never falls back.
                std::str::from_utf8(self.0.as_bytes()).unwrap_or_default()
            }

            /// The raw bytes.
            pub fn as_bytes(&self) -> &[u8] {
                self.0.as_bytes()
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.as_bytes() == other.as_bytes()
            }
        }

        impl Eq for $name {}

        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
                self.as_bytes().hash(h)
            }
        }

        impl PartialOrd for $name {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $name {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_bytes().cmp(other.as_bytes())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                $name::new(s)
            }
        }

        impl Borrow<[u8]> for $name {
            fn borrow(&self) -> &[u8] {
                self.as_bytes()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    };
}

name_type!(
    /// A room: `#` then 1–64 of `[A-Za-z0-9._-]`.
    Room,
    65,
    "room",
    |b| b.len() >= 2 && b.len() <= 65 && b[0] == b'#' && b[1..].iter().all(|&c| is_name_byte(c))
);
name_type!(
    /// A nick: 1–32 of `[A-Za-z0-9_-]`.
    Nick,
    32,
    "nick",
    |b| !b.is_empty() && b.len() <= 32 && b.iter().all(|&c| is_nick_byte(c))
);
name_type!(
    /// A server id: 1–64 of `[A-Za-z0-9._-]`.
    ServerId,
    64,
    "server id",
    |b| !b.is_empty() && b.len() <= 64 && b.iter().all(|&c| is_name_byte(c))
);
name_type!(
    /// A group (zone or region): 1–64 of `[A-Za-z0-9._-]`.
    Group,
    64,
    "group",
    |b| !b.is_empty() && b.len() <= 64 && b.iter().all(|&c| is_name_byte(c))
);
name_type!(
    /// An opaque token: a msg-id, a session id, a `PING` token, a reason.
    /// 1–128 bytes of printable ASCII without spaces.
    Token,
    128,
    "token",
    |b| !b.is_empty() && b.len() <= MAX_TOKEN_LEN && b.iter().all(|&c| is_arg_byte(c))
);
name_type!(
    /// A `host:port` address: a host name, an IPv4 address or a bracketed
    /// IPv6 address, a colon, and a port number 1–65535.
    HostPort,
    255,
    "host:port",
    valid_host_port
);

/// A message id: opaque to clients, unique farm-wide, ordered within a
/// room as one server sees it.
pub type MsgId = Token;

impl HostPort {
    /// The host part (brackets kept for IPv6).
    pub fn host(&self) -> &str {
        let s = self.as_str();
        &s[..s.rfind(':').unwrap_or(s.len())]
    }

    /// The port.
    pub fn port(&self) -> u16 {
        let s = self.as_str();
        s[s.rfind(':').map_or(s.len(), |i| i + 1)..].parse().unwrap_or(0)
    }
}

impl From<std::net::SocketAddr> for HostPort {
    fn from(a: std::net::SocketAddr) -> HostPort {
        // A SocketAddr prints as ip:port or [ip6]:port, which always validates.
        HostPort(Inline::new(a.to_string().as_bytes()))
    }
}

fn valid_host_port(b: &[u8]) -> bool {
    if b.len() > 255 {
        return false;
    }
    let Some(colon) = memchr::memrchr(b':', b) else {
        return false;
    };
    let (host, port) = (&b[..colon], &b[colon + 1..]);
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(port).ok().and_then(|p| p.parse::<u16>().ok()).is_some_and(|p| p > 0);
    let host_ok = if host.first() == Some(&b'[') {
        host.len() > 2
            && host.last() == Some(&b']')
            && std::str::from_utf8(&host[1..host.len() - 1])
                .ok()
                .and_then(|h| h.parse::<std::net::Ipv6Addr>().ok())
                .is_some()
    } else {
        !host.is_empty() && host.iter().all(|&c| is_name_byte(c))
    };
    port_ok && host_ok
}

/// A text body: valid UTF-8, held as shared bytes so that fan-out and
/// decoding never copy it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Text(Bytes);

impl Text {
    /// Validates bytes as UTF-8.
    pub fn from_bytes(b: Bytes) -> Result<Text, Error> {
        std::str::from_utf8(&b).map_err(|_| Error::BadUtf8)?;
        Ok(Text(b))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Validated at construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Bytes::from(s))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a server's client port is spoken: in the clear or inside TLS. A
/// client that came in over TLS never moves to a `tcp` server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    /// Plain TCP (the default, and what a row without the field means).
    #[default]
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Parses the wire spelling.
    pub fn from_bytes(b: &[u8]) -> Result<Transport, Error> {
        match b {
            b"tcp" => Ok(Transport::Tcp),
            b"tls" => Ok(Transport::Tls),
            _ => Err(Error::BadArgument(format!(
                "invalid transport {:?}",
                String::from_utf8_lossy(&b[..b.len().min(80)])
            ))),
        }
    }
}

/// A server's status in the farm table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Accepting sessions.
    Up,
    /// At capacity: new sessions are redirected.
    Full,
    /// Emptying itself before a stop: new sessions are redirected.
    Draining,
    /// Not reachable by its peers.
    Down,
}

impl Status {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "UP",
            Status::Full => "FULL",
            Status::Draining => "DRAINING",
            Status::Down => "DOWN",
        }
    }

    /// Parses the wire spelling.
    pub fn from_bytes(b: &[u8]) -> Result<Status, Error> {
        match b {
            b"UP" => Ok(Status::Up),
            b"FULL" => Ok(Status::Full),
            b"DRAINING" => Ok(Status::Draining),
            b"DOWN" => Ok(Status::Down),
            _ => {
                Err(Error::BadArgument(format!("invalid status {:?}", String::from_utf8_lossy(&b[..b.len().min(80)]))))
            }
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_accept_and_reject() {
        assert!(Room::new("#a").is_ok());
        assert!(Room::new(&format!("#{}", "x".repeat(64))).is_ok());
        assert!(Room::new(&format!("#{}", "x".repeat(65))).is_err());
        assert!(Room::new("#").is_err());
        assert!(Room::new("a").is_err());
        assert!(Room::new("#a b").is_err());
        assert!(Room::new("#a/b").is_err());
        assert!(Nick::new("u_1-x").is_ok());
        assert!(Nick::new("u.1").is_err());
        assert!(Nick::new(&"n".repeat(33)).is_err());
        assert!(Nick::new("").is_err());
        assert!(ServerId::new("s1.eu-west_2").is_ok());
        assert!(ServerId::new(&"s".repeat(65)).is_err());
        assert!(Token::new("abc:1.2~").is_ok());
        assert!(Token::new(&"t".repeat(129)).is_err());
    }

    #[test]
    fn host_ports() {
        for ok in ["127.0.0.1:7000", "chat.farm.test:1", "[::1]:7000", "h:65535"] {
            assert!(HostPort::new(ok).is_ok(), "{ok}");
        }
        for bad in ["127.0.0.1", ":7000", "h:0", "h:65536", "h:7x", "[zz]:1", "[]:1", "a b:1"] {
            assert!(HostPort::new(bad).is_err(), "{bad}");
        }
        let hp = HostPort::new("[::1]:7000").unwrap();
        assert_eq!((hp.host(), hp.port()), ("[::1]", 7000));
    }
}

/// Longest credential (`HELLO`'s token) accepted, in bytes: a JWT with a
/// short `rooms` claim fits, and so does the whole line (`MAX_LINE`).
pub const MAX_CREDENTIAL_LEN: usize = 3072;

/// A credential presented in `HELLO`: in token mode a JWT (RFC 7519).
/// 1–3,072 bytes of printable ASCII without spaces; held on the heap, as it
/// is long and rare (one per session opening).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Credential(Box<str>);

impl Credential {
    /// Validates `s`.
    pub fn new(s: &str) -> Result<Credential, Error> {
        Credential::from_bytes(s.as_bytes())
    }

    /// Validates raw bytes from the wire.
    pub fn from_bytes(b: &[u8]) -> Result<Credential, Error> {
        if b.is_empty() || b.len() > MAX_CREDENTIAL_LEN || !b.iter().all(|&c| is_arg_byte(c)) {
            return Err(Error::BadArgument(format!(
                "invalid token: 1-{MAX_CREDENTIAL_LEN} printable characters without spaces"
            )));
        }
        // Printable ASCII is UTF-8.
        Ok(Credential(String::from_utf8_lossy(b).into()))
    }

    /// The credential as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Credential {
    /// Never the credential itself: it would end up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({} bytes)", self.0.len())
    }
}

impl FromStr for Credential {
    type Err = Error;
    fn from_str(s: &str) -> Result<Credential, Error> {
        Credential::new(s)
    }
}
