//! The peer connection: the authenticated handshake, then a reader that
//! routes frames (room traffic straight to the rooms, membership to the
//! farm loop) and a writer that drains the link's outbound queue in batches.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rttp_proto::{ErrCode, Frame, Limits, PeerFrame, ServerId, PEER_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::auth::{self, Secret, Side};
use super::membership::{Event, LinkId};
use super::FarmEvent;
use crate::outbound::Outbound;
use crate::state::Shared;

/// Time allowed for the whole handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes queued to one peer before the link is cut as too slow.
pub const PEER_OUTBOUND_LIMIT: usize = 64 << 20;

/// Who is on the other end of an authenticated link.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// Its id.
    pub id: ServerId,
    /// Its generation.
    pub generation: u64,
}

/// Why a handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The socket failed or closed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// It took too long.
    #[error("handshake timed out")]
    Timeout,
    /// The other side does not know the secret, or broke the protocol.
    #[error("{0}")]
    Refused(String),
}

/// Reads one peer frame during the handshake.
async fn read_frame(stream: &mut TcpStream, buf: &mut BytesMut) -> Result<PeerFrame, HandshakeError> {
    let limits = Limits::default();
    loop {
        match PeerFrame::decode_buf(buf, &limits) {
            Ok(Some(f)) => return Ok(f),
            Ok(None) => {}
            Err(e) => return Err(HandshakeError::Refused(format!("bad frame: {e}"))),
        }
        if stream.read_buf(buf).await? == 0 {
            return Err(HandshakeError::Refused("closed during the handshake".into()));
        }
    }
}

async fn refuse(stream: &mut TcpStream, code: ErrCode, why: &str) -> HandshakeError {
    let _ = stream.write_all(&PeerFrame::err(code, why).to_bytes()).await;
    let _ = stream.shutdown().await;
    HandshakeError::Refused(why.to_string())
}

/// The dialer's side: returns the peer and any bytes read past the handshake.
pub async fn dial_handshake(
    stream: &mut TcpStream,
    me: ServerId,
    generation: u64,
    secret: &Secret,
) -> Result<(Peer, BytesMut), HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut buf = BytesMut::new();
        let my_nonce = auth::nonce();
        stream
            .write_all(&PeerFrame::Hello { version: PEER_VERSION, id: me, generation, nonce: my_nonce }.to_bytes())
            .await?;
        let (peer, their_nonce) = match read_frame(stream, &mut buf).await? {
            PeerFrame::Challenge { version, id, generation, nonce, mac } => {
                if version != PEER_VERSION {
                    return Err(refuse(stream, ErrCode::WrongVersion, "peer version mismatch").await);
                }
                if !auth::verify(secret, Side::Acceptor, &my_nonce, &nonce, &me, &id, &mac) {
                    return Err(refuse(
                        stream,
                        ErrCode::AuthFailed,
                        "authentication failed: the peer does not know the cluster secret",
                    )
                    .await);
                }
                (Peer { id, generation }, nonce)
            }
            PeerFrame::Err { code, reason } => {
                return Err(HandshakeError::Refused(format!("refused: {code} {reason}")))
            }
            other => {
                return Err(refuse(
                    stream,
                    ErrCode::BadFrame,
                    &format!("expected PEER_CHALLENGE, got {}", other.verb()),
                )
                .await)
            }
        };
        let proof = auth::mac(secret, Side::Dialer, &my_nonce, &their_nonce, &me, &peer.id);
        stream.write_all(&PeerFrame::Auth { mac: proof }.to_bytes()).await?;
        match read_frame(stream, &mut buf).await? {
            PeerFrame::Ok => Ok((peer, buf)),
            PeerFrame::Err { code, reason } => Err(HandshakeError::Refused(format!("refused: {code} {reason}"))),
            other => Err(refuse(stream, ErrCode::BadFrame, &format!("expected PEER_OK, got {}", other.verb())).await),
        }
    })
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

/// The acceptor's side.
pub async fn accept_handshake(
    stream: &mut TcpStream,
    me: ServerId,
    generation: u64,
    secret: &Secret,
) -> Result<(Peer, BytesMut), HandshakeError> {
    tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut buf = BytesMut::new();
        let (peer, their_nonce) = match read_frame(stream, &mut buf).await? {
            PeerFrame::Hello { version, id, generation, nonce } => {
                if version != PEER_VERSION {
                    return Err(refuse(
                        stream,
                        ErrCode::WrongVersion,
                        &format!("peer version {version} is not {PEER_VERSION}"),
                    )
                    .await);
                }
                if id == me {
                    return Err(refuse(stream, ErrCode::AuthFailed, "a peer may not use our own id").await);
                }
                (Peer { id, generation }, nonce)
            }
            other => {
                return Err(
                    refuse(stream, ErrCode::BadFrame, &format!("expected PEER_HELLO, got {}", other.verb())).await
                )
            }
        };
        let my_nonce = auth::nonce();
        let proof = auth::mac(secret, Side::Acceptor, &their_nonce, &my_nonce, &peer.id, &me);
        stream
            .write_all(
                &PeerFrame::Challenge { version: PEER_VERSION, id: me, generation, nonce: my_nonce, mac: proof }
                    .to_bytes(),
            )
            .await?;
        match read_frame(stream, &mut buf).await? {
            PeerFrame::Auth { mac }
                if auth::verify(secret, Side::Dialer, &their_nonce, &my_nonce, &peer.id, &me, &mac) =>
            {
                stream.write_all(&PeerFrame::Ok.to_bytes()).await?;
                Ok((peer, buf))
            }
            PeerFrame::Auth { .. } => {
                Err(refuse(stream, ErrCode::AuthFailed, "authentication failed: wrong cluster secret").await)
            }
            other => Err(refuse(stream, ErrCode::BadFrame, &format!("expected PEER_AUTH, got {}", other.verb())).await),
        }
    })
    .await
    .map_err(|_| HandshakeError::Timeout)?
}

/// What the farm loop holds of a live link.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    /// Frames to send.
    pub out: Arc<Outbound>,
    /// Cancel to close the link.
    pub token: CancellationToken,
    /// Milliseconds (since the farm started) when a frame last arrived.
    pub heard: Arc<AtomicU64>,
}

impl LinkHandle {
    /// A handle for a new link.
    pub fn new(parent: &CancellationToken) -> LinkHandle {
        LinkHandle {
            out: Arc::new(Outbound::new(PEER_OUTBOUND_LIMIT)),
            token: parent.child_token(),
            heard: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Everything a link task needs besides its socket.
#[derive(Debug)]
pub struct LinkCtx {
    /// Who is on the other end.
    pub peer: Peer,
    /// The link's number.
    pub link: LinkId,
    /// Its queue and cancellation.
    pub handle: LinkHandle,
    /// The server's state.
    pub shared: Arc<Shared>,
    /// Where membership events go.
    pub events: mpsc::Sender<FarmEvent>,
    /// The farm loop's start, for `heard` timestamps.
    pub epoch: tokio::time::Instant,
}

/// Serves an authenticated link until it closes, then reports it closed.
pub async fn run_link(stream: TcpStream, leftover: BytesMut, cx: LinkCtx) {
    let (rd, wr) = stream.into_split();
    let reason = tokio::select! {
        r = read_loop(rd, leftover, &cx) => r,
        r = write_loop(wr, &cx.handle, &cx.shared) => r,
        _ = cx.handle.token.cancelled() => "closed by us".to_string(),
    };
    cx.handle.token.cancel();
    tracing::info!(peer = %cx.peer.id, link = cx.link, reason, "peer link closed");
    let _ = cx.events.send(FarmEvent::Membership(Event::LinkClosed { link: cx.link })).await;
}

async fn read_loop(mut rd: OwnedReadHalf, mut buf: BytesMut, cx: &LinkCtx) -> String {
    let LinkCtx { peer, link, handle, shared, events, epoch } = cx;
    let (peer, link) = (*peer, *link);
    let limits = Limits::default();
    loop {
        loop {
            let frame = match PeerFrame::decode_buf(&mut buf, &limits) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    handle.out.push(PeerFrame::err(e.error.code(), e.error.to_string()).to_bytes());
                    if e.is_fatal() {
                        return format!("framing lost: {e}");
                    }
                    continue;
                }
            };
            handle.heard.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            shared.metrics.peer_frame_in(frame.verb());
            let rooms = &shared.rooms;
            match frame {
                PeerFrame::Beat => {}
                PeerFrame::State(state) => {
                    if events.send(FarmEvent::Membership(Event::State { link, state: *state })).await.is_err() {
                        return "farm loop gone".into();
                    }
                }
                PeerFrame::Member { id, generation, peer_addr } => {
                    let _ = events.send(FarmEvent::Membership(Event::Member { id, generation, peer_addr })).await;
                }
                PeerFrame::Interest { room } => rooms.remote_interest(peer.id, room, true),
                PeerFrame::Uninterest { room } => rooms.remote_interest(peer.id, room, false),
                PeerFrame::Relay { room, id, nick, text } => rooms.remote_say(peer.id, room, id, nick, text),
                PeerFrame::Joined { room, nick } => rooms.remote_joined(peer.id, room, nick, true),
                PeerFrame::RoomMember { room, nick } => rooms.remote_joined(peer.id, room, nick, false),
                PeerFrame::Parted { room, nick } => rooms.remote_parted(peer.id, room, nick),
                PeerFrame::History { room, after } => rooms.remote_history(peer.id, room, after),
                PeerFrame::Replay { room, id, nick, text } => rooms.remote_replay(room, id, nick, text),
                PeerFrame::Err { code, reason } => {
                    tracing::warn!(peer = %peer.id, code, reason, "peer sent ERR");
                    if code >= 500 {
                        return format!("peer sent ERR {code}");
                    }
                }
                PeerFrame::Hello { .. } | PeerFrame::Challenge { .. } | PeerFrame::Auth { .. } | PeerFrame::Ok => {
                    handle.out.push(PeerFrame::err(ErrCode::BadFrame, "handshake frames are over").to_bytes());
                }
            }
        }
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(16384);
        }
        match rd.read_buf(&mut buf).await {
            Ok(0) => return "eof".into(),
            Ok(_) => {}
            Err(e) => return format!("read error: {e}"),
        }
    }
}

async fn write_loop(mut wr: OwnedWriteHalf, handle: &LinkHandle, shared: &Arc<Shared>) -> String {
    let mut wq: VecDeque<Bytes> = VecDeque::new();
    loop {
        handle.out.drain_into(&mut wq);
        if handle.out.overflowed() {
            return "peer too slow: outbound queue overflowed".into();
        }
        if wq.is_empty() {
            handle.out.notified().await;
            continue;
        }
        while !wq.is_empty() {
            let slices: Vec<IoSlice<'_>> = wq.iter().take(64).map(|b| IoSlice::new(b)).collect();
            let n = match wr.write_vectored(&slices).await {
                Ok(0) => return "write returned 0".into(),
                Ok(n) => n,
                Err(e) => return format!("write error: {e}"),
            };
            handle.out.written(n);
            shared.metrics.peer_bytes_out.inc_by(n as u64);
            crate::outbound::consume(&mut wq, n);
        }
    }
}
