//! The peer handshake's cryptography: nonces and HMAC-SHA256 proofs over
//! both nonces, both ids and, on a TLS link, a value exported from the TLS
//! session (the channel binding). The secret never crosses the wire.

use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::TryRngCore;
use rttp_proto::{ServerId, Token};
use sha2::Sha256;

/// The cluster secret, shared by every server of a farm.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;

impl Secret {
    /// A secret from its text; surrounding white space (a file's final
    /// newline) is not part of it.
    pub fn new(text: &str) -> Result<Secret, String> {
        let s = text.trim();
        if s.len() < MIN_SECRET_LEN {
            return Err(format!("the cluster secret must be at least {MIN_SECRET_LEN} bytes, got {}", s.len()));
        }
        Ok(Secret(s.as_bytes().to_vec()))
    }
}

/// Which side a proof is from.
#[derive(Debug, Clone, Copy)]
pub enum Side {
    /// The server that dialed.
    Dialer,
    /// The server that accepted.
    Acceptor,
}

/// A fresh 128-bit nonce, as 32 hex digits.
pub fn nonce() -> Token {
    let mut b = [0u8; 16];
    // The OS RNG failing is not something a server can work around.
    OsRng.try_fill_bytes(&mut b).expect("the OS random number generator failed");
    Token::new(&hex(&b)).expect("hex is a valid token")
}

/// The label of the TLS exporter value both ends put in their proofs.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-rttp-peer-1";
/// Its length in bytes.
pub const EXPORTER_LEN: usize = 32;

/// The proof of `side`. `binding` is the TLS exporter value of the link
/// (empty in the clear): a relay between two TLS sessions sees two
/// different values, so a proof it forwards does not verify.
pub fn mac(
    secret: &Secret,
    binding: &[u8],
    side: Side,
    dialer_nonce: &Token,
    acceptor_nonce: &Token,
    dialer: &ServerId,
    acceptor: &ServerId,
) -> Token {
    let label = match side {
        Side::Dialer => "dialer",
        Side::Acceptor => "acceptor",
    };
    let mut m = Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes any key length");
    m.update(format!("rttp-peer-1|{label}|{dialer_nonce}|{acceptor_nonce}|{dialer}|{acceptor}").as_bytes());
    if !binding.is_empty() {
        // Only on TLS links, so plaintext proofs stay those of older servers.
        m.update(format!("|tls={}", hex(binding)).as_bytes());
    }
    Token::new(&hex(&m.finalize().into_bytes())).expect("hex is a valid token")
}

/// Checks a proof in constant time.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    secret: &Secret,
    binding: &[u8],
    side: Side,
    dialer_nonce: &Token,
    acceptor_nonce: &Token,
    dialer: &ServerId,
    acceptor: &ServerId,
    got: &Token,
) -> bool {
    let want = mac(secret, binding, side, dialer_nonce, acceptor_nonce, dialer, acceptor);
    let (a, b) = (want.as_bytes(), got.as_bytes());
    // Constant time in the content: no early exit on the first difference.
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_bind_secret_side_nonces_and_ids() {
        let s = Secret::new("correct horse battery staple").unwrap();
        let other = Secret::new("another secret of enough length").unwrap();
        let (d, a) = (ServerId::new("s1").unwrap(), ServerId::new("s2").unwrap());
        let (nd, na) = (nonce(), nonce());
        assert_ne!(nd, na);
        let m = mac(&s, b"", Side::Dialer, &nd, &na, &d, &a);
        assert_eq!(m.as_str().len(), 64);
        assert!(verify(&s, b"", Side::Dialer, &nd, &na, &d, &a, &m));
        assert!(!verify(&other, b"", Side::Dialer, &nd, &na, &d, &a, &m), "another secret");
        assert!(!verify(&s, b"", Side::Acceptor, &nd, &na, &d, &a, &m), "a reflected proof");
        assert!(!verify(&s, b"", Side::Dialer, &na, &nd, &d, &a, &m), "swapped nonces");
        assert!(!verify(&s, b"", Side::Dialer, &nd, &na, &a, &d, &m), "swapped ids");
        let t = mac(&s, b"session one", Side::Dialer, &nd, &na, &d, &a);
        assert_ne!(t, m, "a TLS link's proof is not the plaintext one");
        assert!(verify(&s, b"session one", Side::Dialer, &nd, &na, &d, &a, &t));
        assert!(!verify(&s, b"session two", Side::Dialer, &nd, &na, &d, &a, &t), "spliced across TLS sessions");
        assert!(!verify(&s, b"", Side::Dialer, &nd, &na, &d, &a, &t), "moved to a plaintext link");
        assert!(Secret::new("short\n").is_err());
        assert_eq!(format!("{s:?}"), "Secret(..)", "never printed");
    }
}
