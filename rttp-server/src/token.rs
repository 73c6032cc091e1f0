//! Token mode (`--auth-key-file`): a session opens only with a JWT (RFC
//! 7519) signed with HS256 by the farm's key, whose `sub` is the nick. `exp`
//! is required; `nbf` and `iat` are honoured when present (with
//! [`LEEWAY_SECS`] of clock skew); an optional `rooms` claim lists the rooms
//! the holder may join. Checking is a pure function of (key, token, nick,
//! now); minting is here too, for `rttp-token` and the tests.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rttp_proto::{Credential, Nick, Room};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Clock skew allowed between the token's issuer and the server, in seconds.
pub const LEEWAY_SECS: u64 = 30;
/// Shortest key accepted: HS256 wants at least its hash size (RFC 7518 §3.2).
pub const MIN_KEY_LEN: usize = 32;

/// The claims a token carries (others are ignored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The nick.
    pub sub: String,
    /// Expiry, seconds since the epoch: required (a token without it is
    /// refused; it is optional here only to say so clearly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The rooms the holder may join; absent: any room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
}

/// What a valid token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The rooms the session may join; `None`: any.
    pub rooms: Option<Vec<Room>>,
}

impl Grant {
    /// Whether the session may join `room`.
    pub fn allows(&self, room: &Room) -> bool {
        self.rooms.as_ref().is_none_or(|r| r.contains(room))
    }
}

/// The farm's token keys: tokens signed with any of them are accepted
/// (rotation), and new ones are signed with the first.
#[derive(Clone)]
pub struct TokenKey {
    decoding: Vec<DecodingKey>,
    encoding: EncodingKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from the key file's text (surrounding whitespace dropped).
    pub fn new(text: &str) -> Result<TokenKey> {
        TokenKey::with_keys(&[text])
    }

    /// Several keys, the first one signing: every one at least
    /// [`MIN_KEY_LEN`] bytes.
    pub fn with_keys<S: AsRef<str>>(texts: &[S]) -> Result<TokenKey> {
        let mut decoding = Vec::new();
        for text in texts {
            let key = text.as_ref().trim();
            if key.len() < MIN_KEY_LEN {
                return Err(Error::Config(format!(
                    "a token key is {} bytes: HS256 wants at least {MIN_KEY_LEN} (for example `openssl rand -hex 32`)",
                    key.len()
                )));
            }
            decoding.push(DecodingKey::from_secret(key.as_bytes()));
        }
        let first = texts.first().map(|t| t.as_ref().trim()).ok_or_else(|| Error::Config("no token key".into()))?;
        Ok(TokenKey { decoding, encoding: EncodingKey::from_secret(first.as_bytes()) })
    }

    /// Checks `token` for a session as `nick` at `now` (seconds since the
    /// epoch): the grant, or why not, in words for an `ERR 511`.
    pub fn check(&self, token: Option<&Credential>, nick: Nick, now: u64) -> Result<Grant> {
        let refused = |why: String| Err(Error::Unauthorized(why));
        let Some(token) = token else {
            return refused(format!("this farm needs a token: HELLO {} {nick} <token>", rttp_proto::PROTOCOL_VERSION));
        };
        let mut v = Validation::new(Algorithm::HS256);
        v.set_required_spec_claims(&["sub"]);
        // exp and nbf are checked below against `now`, so that this
        // function is pure (the library would read the system clock).
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        // Each key in turn: a signature that none of them made is wrong.
        let mut decoded = Err(jsonwebtoken::errors::Error::from(ErrorKind::InvalidSignature));
        for key in &self.decoding {
            decoded = jsonwebtoken::decode::<Claims>(token.as_str(), key, &v);
            if !matches!(&decoded, Err(e) if *e.kind() == ErrorKind::InvalidSignature) {
                break;
            }
        }
        let claims = match decoded {
            Ok(d) => d.claims,
            Err(e) => {
                return refused(match e.kind() {
                    ErrorKind::InvalidSignature => "the token's signature is wrong".into(),
                    ErrorKind::InvalidAlgorithm => "the token is not signed with HS256".into(),
                    ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c} claim"),
                    _ => format!("the token is not a valid JWT: {e}"),
                })
            }
        };
        let Some(exp) = claims.exp else {
            return refused("the token has no exp claim".into());
        };
        if exp + LEEWAY_SECS < now {
            return refused("the token has expired".into());
        }
        if claims.nbf.is_some_and(|nbf| nbf > now + LEEWAY_SECS) {
            return refused("the token is not valid yet (nbf)".into());
        }
        if claims.iat.is_some_and(|iat| iat > now + LEEWAY_SECS) {
            return refused("the token was issued in the future (iat)".into());
        }
        if claims.sub != nick.as_str() {
            return refused(format!("the token is for {:?}, not {nick}", claims.sub));
        }
        let rooms = match claims.rooms {
            None => None,
            Some(names) => {
                let mut rooms = Vec::new();
                for name in names {
                    match Room::new(&name) {
                        Ok(r) => rooms.push(r),
                        Err(_) => return refused(format!("the token's rooms claim has an invalid room {name:?}")),
                    }
                }
                Some(rooms)
            }
        };
        Ok(Grant { rooms })
    }

    /// A token for `nick`, valid from `now` for `ttl` seconds, limited to
    /// `rooms` if given.
    pub fn mint(&self, nick: Nick, now: u64, ttl: u64, rooms: Option<&[Room]>) -> Result<String> {
        let claims = Claims {
            sub: nick.to_string(),
            exp: Some(now + ttl),
            nbf: None,
            iat: Some(now),
            rooms: rooms.map(|r| {
                let mut names: Vec<String> = r.iter().map(|r| r.to_string()).collect();
                names.sort();
                names.dedup();
                names
            }),
        };
        self.mint_claims(&claims)
    }

    /// A token with exactly these claims (the tests make bad ones).
    pub fn mint_claims(&self, claims: &Claims) -> Result<String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| Error::Config(format!("cannot sign the token: {e}")))
    }
}

/// Seconds since the epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
