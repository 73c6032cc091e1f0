//! Rendezvous hashing: which server owns a key (a nick, a room) among a
//! set of servers, decided the same way by every server that sees the same
//! set, with no coordination. When a server leaves the set only the keys it
//! owned move.

use crate::names::ServerId;

/// The server among `servers` with the highest rendezvous hash of `key`:
/// every server that sees the same set picks the same one, and a server
/// leaving the set moves only the keys it had. Nicks and rooms both use it.
pub fn rendezvous(key: &[u8], servers: &[ServerId]) -> Option<ServerId> {
    servers.iter().copied().max_by_key(|s| (score(key, s), *s))
}

/// FNV-1a over the key, a separator and the server id: the same on every
/// server and every build (std's hasher makes no such promise).
fn score(key: &[u8], server: &ServerId) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.iter().chain(b"\0").chain(server.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // A final mix, so that ids differing in one trailing byte spread well.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}
