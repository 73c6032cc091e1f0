//! The peer handshake over any stream: `PEER_HELLO`, `PEER_CHALLENGE`,
//! `PEER_AUTH`, `PEER_OK` (PROTOCOL.md §7.1), with HMAC proofs from
//! [`super::auth`]. A refusal is sent to the other side as an `ERR` before
//! the stream is closed, so a misconfigured server learns why.

use std::time::Duration;

use rttp_conn::{ConnError, PeerConn};
use rttp_proto::{has_feature, ErrCode, Frame, Limits, PeerFrame, ServerId, Token, PEER_FEATURE_GOT, PEER_VERSION};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::auth::{self, Secret, Side};

/// Time allowed for the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What is read before the other side is authenticated: handshake lines
/// only (the longest, `PEER_CHALLENGE`, is under 200 bytes), never a body.
pub const HANDSHAKE_LIMITS: Limits = Limits { max_line: 512, max_body: 0, max_farm_servers: 0 };

/// Who is on the other end of an authenticated link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// Its id.
    pub id: ServerId,
    /// Its generation.
    pub generation: u64,
    /// It confirms what it takes (`GOT`) and reads our confirmations.
    pub confirms: bool,
}

/// What this server announces beyond peer version 1.
fn features() -> Option<Token> {
    Token::new(PEER_FEATURE_GOT).ok()
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The stream failed, closed, or carried a bad frame.
    #[error("{0}")]
    Conn(#[from] ConnError),
    /// It took longer than [`HANDSHAKE_TIMEOUT`].
    #[error("handshake timed out")]
    Timeout,
    /// The other side closed before sending anything (a port scan, a health
    /// check): not worth a warning.
    #[error("closed before the handshake")]
    Closed,
    /// The TLS handshake under the peer handshake failed (a certificate
    /// from another CA, plaintext on a TLS port, ...).
    #[error("tls: {0}")]
    Tls(String),
    /// The other side does not know the secret, or broke the protocol.
    #[error("{0}")]
    Refused(String),
}

/// This server, as the handshake presents it.
#[derive(Debug, Clone)]
pub struct Me<'a> {
    /// Its id.
    pub id: ServerId,
    /// Its generation.
    pub generation: u64,
    /// The cluster secret.
    pub secret: &'a Secret,
    /// The link's TLS exporter value; empty in the clear.
    pub binding: &'a [u8],
}

/// The next handshake frame. A close before the `first` frame is
/// [`HandshakeError::Closed`]; a body is refused before it is read.
async fn next<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut PeerConn<S>,
    first: bool,
) -> Result<PeerFrame, HandshakeError> {
    match c.read_frame().await {
        Ok(Some(f)) => Ok(f),
        Ok(None) if first && c.buffer().is_empty() => Err(HandshakeError::Closed),
        Ok(None) => Err(HandshakeError::Refused("closed during the handshake".into())),
        Err(ConnError::Decode(e)) if e.error.code() == ErrCode::BodyTooLarge => {
            Err(refuse(c, ErrCode::AuthFailed, "a body before authentication".into()).await)
        }
        Err(ConnError::Decode(e)) => Err(refuse(c, e.error.code(), format!("bad frame: {}", e.error)).await),
        Err(e) => Err(e.into()),
    }
}

/// Tells the other side why, closes, and returns the refusal.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(c: &mut PeerConn<S>, code: ErrCode, why: String) -> HandshakeError {
    let _ = c.write_frame(&PeerFrame::err(code, &why)).await;
    let _ = c.stream().shutdown().await;
    HandshakeError::Refused(why)
}

async fn bounded<T>(f: impl std::future::Future<Output = Result<T, HandshakeError>>) -> Result<T, HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, f).await.map_err(|_| HandshakeError::Timeout)?
}

/// The dialer's side. Bytes read past the handshake stay in `c`.
pub async fn dial<S: AsyncRead + AsyncWrite + Unpin>(c: &mut PeerConn<S>, me: Me<'_>) -> Result<Peer, HandshakeError> {
    c.set_limits(HANDSHAKE_LIMITS);
    let r = dial_steps(c, me).await;
    c.set_limits(Limits::default());
    r
}

async fn dial_steps<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut PeerConn<S>,
    me: Me<'_>,
) -> Result<Peer, HandshakeError> {
    bounded(async {
        let my_nonce = auth::nonce();
        c.write_frame(&PeerFrame::Hello {
            version: PEER_VERSION,
            id: me.id,
            generation: me.generation,
            nonce: my_nonce,
            features: features(),
        })
        .await?;
        let (peer, their_nonce) = match next(c, false).await? {
            PeerFrame::Challenge { version, .. } if version != PEER_VERSION => {
                return Err(
                    refuse(c, ErrCode::WrongVersion, format!("peer version {version} is not {PEER_VERSION}")).await
                )
            }
            PeerFrame::Challenge { id, generation, nonce, mac, features, .. } => {
                if !auth::verify(me.secret, me.binding, Side::Acceptor, &my_nonce, &nonce, &me.id, &id, &mac) {
                    let why = "authentication failed: the peer does not know the cluster secret";
                    return Err(refuse(c, ErrCode::AuthFailed, why.into()).await);
                }
                (Peer { id, generation, confirms: has_feature(features.as_ref(), PEER_FEATURE_GOT) }, nonce)
            }
            PeerFrame::Err { code, reason } => {
                return Err(HandshakeError::Refused(format!("refused: {code} {reason}")))
            }
            other => {
                return Err(refuse(c, ErrCode::BadFrame, format!("expected PEER_CHALLENGE, got {}", other.verb())).await)
            }
        };
        let proof = auth::mac(me.secret, me.binding, Side::Dialer, &my_nonce, &their_nonce, &me.id, &peer.id);
        c.write_frame(&PeerFrame::Auth { mac: proof }).await?;
        match next(c, false).await? {
            PeerFrame::Ok => Ok(peer),
            PeerFrame::Err { code, reason } => Err(HandshakeError::Refused(format!("refused: {code} {reason}"))),
            other => Err(refuse(c, ErrCode::BadFrame, format!("expected PEER_OK, got {}", other.verb())).await),
        }
    })
    .await
}

/// The acceptor's side. Reads with [`HANDSHAKE_LIMITS`] until the dialer is
/// authenticated; a dialer that does not finish in time is told `ERR 511`.
/// Bytes read past the handshake stay in `c`, and the default limits apply again.
pub async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut PeerConn<S>,
    me: Me<'_>,
) -> Result<Peer, HandshakeError> {
    c.set_limits(HANDSHAKE_LIMITS);
    let r = bounded(accept_steps(c, me)).await;
    if matches!(r, Err(HandshakeError::Timeout)) {
        let why = format!("handshake not done within {HANDSHAKE_TIMEOUT:?}");
        let _ = tokio::time::timeout(Duration::from_secs(1), refuse(c, ErrCode::AuthFailed, why)).await;
    }
    c.set_limits(Limits::default());
    r
}

async fn accept_steps<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut PeerConn<S>,
    me: Me<'_>,
) -> Result<Peer, HandshakeError> {
    {
        let first = next(c, true).await?;
        let (peer, their_nonce) = match first {
            PeerFrame::Hello { version, .. } if version != PEER_VERSION => {
                return Err(
                    refuse(c, ErrCode::WrongVersion, format!("peer version {version} is not {PEER_VERSION}")).await
                )
            }
            PeerFrame::Hello { id, .. } if id == me.id => {
                return Err(refuse(c, ErrCode::AuthFailed, "a peer may not use our own id".into()).await)
            }
            PeerFrame::Hello { id, generation, nonce, features, .. } => {
                (Peer { id, generation, confirms: has_feature(features.as_ref(), PEER_FEATURE_GOT) }, nonce)
            }
            other => {
                return Err(refuse(c, ErrCode::BadFrame, format!("expected PEER_HELLO, got {}", other.verb())).await)
            }
        };
        let my_nonce = auth::nonce();
        let proof = auth::mac(me.secret, me.binding, Side::Acceptor, &their_nonce, &my_nonce, &peer.id, &me.id);
        let challenge = PeerFrame::Challenge {
            version: PEER_VERSION,
            id: me.id,
            generation: me.generation,
            nonce: my_nonce,
            mac: proof,
            features: features(),
        };
        c.write_frame(&challenge).await?;
        match next(c, false).await? {
            PeerFrame::Auth { mac }
                if auth::verify(
                    me.secret,
                    me.binding,
                    Side::Dialer,
                    &their_nonce,
                    &my_nonce,
                    &peer.id,
                    &me.id,
                    &mac,
                ) =>
            {
                c.write_frame(&PeerFrame::Ok).await?;
                Ok(peer)
            }
            PeerFrame::Auth { .. } => {
                Err(refuse(c, ErrCode::AuthFailed, "authentication failed: wrong cluster secret".into()).await)
            }
            other => Err(refuse(c, ErrCode::BadFrame, format!("expected PEER_AUTH, got {}", other.verb())).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::DuplexStream;

    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).unwrap()
    }

    fn me<'a>(id: &str, secret: &'a Secret) -> Me<'a> {
        Me { id: id.parse().unwrap(), generation: 7, secret, binding: b"" }
    }

    /// A dialer's `PEER_HELLO` as a server before `<features>` wrote it.
    fn old_hello(version: u32, id: &str, nonce: Token) -> PeerFrame {
        PeerFrame::Hello { version, id: id.parse().unwrap(), generation: 1, nonce, features: None }
    }

    fn pair() -> (PeerConn<DuplexStream>, PeerConn<DuplexStream>) {
        let (a, b) = tokio::io::duplex(4096);
        (PeerConn::new(a), PeerConn::new(b))
    }

    #[tokio::test]
    async fn both_sides_learn_who_is_on_the_other_end_and_extra_bytes_survive() {
        let k = secret("0123456789abcdef-farm");
        let (mut d, mut a) = pair();
        let acceptor = async {
            let p = accept(&mut a, me("s1", &k)).await;
            a.write_frame(&PeerFrame::Beat).await.unwrap();
            p
        };
        let (pd, pa) = tokio::join!(dial(&mut d, me("s2", &k)), acceptor);
        assert_eq!(pd.unwrap(), Peer { id: "s1".parse().unwrap(), generation: 7, confirms: true });
        assert_eq!(pa.unwrap().id, "s2".parse().unwrap());
        assert_eq!(d.read_frame().await.unwrap(), Some(PeerFrame::Beat), "the first link frame follows PEER_OK");
    }

    #[tokio::test]
    async fn a_server_that_announces_no_features_is_linked_without_confirmations() {
        // An older server: its PEER_HELLO ends at the nonce, and it ignores ours.
        let k = secret("0123456789abcdef-farm");
        let (mut d, mut a) = pair();
        let nonce = auth::nonce();
        d.write_frame(&old_hello(PEER_VERSION, "s2", nonce)).await.unwrap();
        let (peer, challenge) = tokio::join!(accept(&mut a, me("s1", &k)), async {
            let c = d.read_frame().await.unwrap();
            let Some(PeerFrame::Challenge { id, nonce: theirs, features, .. }) = c else { panic!("{c:?}") };
            assert_eq!(features.map(|f| f.to_string()), Some("got".into()), "ours is announced");
            let mac = auth::mac(&k, b"", Side::Dialer, &nonce, &theirs, &"s2".parse().unwrap(), &id);
            d.write_frame(&PeerFrame::Auth { mac }).await.unwrap();
        });
        let () = challenge;
        assert!(!peer.unwrap().confirms, "no GOT is sent to it, nor awaited from it");
    }

    #[tokio::test]
    async fn a_wrong_secret_is_refused_on_both_sides_with_a_reason() {
        let (k1, k2) = (secret("0123456789abcdef-farm"), secret("another-secret-of-16"));
        let (mut d, mut a) = pair();
        let (pd, pa) = tokio::join!(dial(&mut d, me("s2", &k2)), accept(&mut a, me("s1", &k1)));
        // The dialer checks the acceptor's proof first and refuses it.
        assert!(matches!(pd, Err(HandshakeError::Refused(ref w)) if w.contains("cluster secret")), "{pd:?}");
        assert!(pa.is_err(), "the acceptor never gets a session: {pa:?}");
    }

    #[tokio::test]
    async fn a_wrong_version_and_our_own_id_are_refused_with_err_frames() {
        let k = secret("0123456789abcdef-farm");
        let (mut d, mut a) = pair();
        let nonce = auth::nonce();
        d.write_frame(&old_hello(PEER_VERSION + 1, "s2", nonce)).await.unwrap();
        let r = accept(&mut a, me("s1", &k)).await;
        assert!(matches!(r, Err(HandshakeError::Refused(ref w)) if w.contains("version")), "{r:?}");
        assert!(matches!(d.read_frame().await.unwrap(), Some(PeerFrame::Err { code: 505, .. })));

        let (mut d, mut a) = pair();
        d.write_frame(&old_hello(PEER_VERSION, "s1", nonce)).await.unwrap();
        let r = accept(&mut a, me("s1", &k)).await;
        assert!(matches!(r, Err(HandshakeError::Refused(ref w)) if w.contains("own id")), "{r:?}");
        assert!(matches!(d.read_frame().await.unwrap(), Some(PeerFrame::Err { code: 511, .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_peer_times_out_after_the_bound_and_is_told_511() {
        let k = secret("0123456789abcdef-farm");
        let (mut silent, mut a) = pair();
        let started = tokio::time::Instant::now();
        let r = accept(&mut a, me("s1", &k)).await;
        assert!(matches!(r, Err(HandshakeError::Timeout)), "{r:?}");
        assert_eq!(started.elapsed(), HANDSHAKE_TIMEOUT);
        assert!(matches!(silent.read_frame().await, Ok(Some(PeerFrame::Err { code: 511, .. }))), "told why");
    }

    #[tokio::test]
    async fn a_bare_connect_and_close_is_not_a_refusal() {
        let k = secret("0123456789abcdef-farm");
        let (d, mut a) = pair();
        drop(d);
        let r = accept(&mut a, me("s1", &k)).await;
        assert!(matches!(r, Err(HandshakeError::Closed)), "{r:?}");
    }

    #[tokio::test]
    async fn nothing_with_a_body_is_read_before_authentication() {
        let k = secret("0123456789abcdef-farm");
        let (mut d, mut a) = pair();
        // A relayed message of 60,000 bytes, before any PEER_HELLO: refused
        // on its line, its body never buffered.
        d.write_raw(b"RELAY #r s9:1 mallory 60000\r\n").await.unwrap();
        let r = accept(&mut a, me("s1", &k)).await;
        assert!(matches!(r, Err(HandshakeError::Refused(ref w)) if w.contains("body")), "{r:?}");
        assert!(matches!(d.read_frame().await, Ok(Some(PeerFrame::Err { code: 511, .. }))));
        assert!(a.buffer().len() < 64, "the body was not read: {} bytes buffered", a.buffer().len());
    }

    #[tokio::test]
    async fn a_client_verb_on_the_peer_port_is_refused() {
        let k = secret("0123456789abcdef-farm");
        let (mut d, mut a) = pair();
        d.write_raw(b"HELLO 1 alice\r\n").await.unwrap();
        let r = accept(&mut a, me("s1", &k)).await;
        assert!(r.is_err(), "{r:?}");
        assert!(matches!(d.read_frame().await, Ok(Some(PeerFrame::Err { .. }))), "the dialer is told why");
    }
}
