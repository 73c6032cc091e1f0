//! The peer connection of an authenticated link: a reader that hands each
//! frame to [`super::dispatch`] and a writer that drains the link's bounded
//! outbound queue in vectored batches. It decides nothing about membership.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rttp_conn::tls::Stream;
use rttp_conn::{ConnError, FrameReader, PeerConn};
use rttp_proto::{Frame, PeerFrame};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::dispatch::{route, Routed};
use super::handshake::Peer;
use super::membership::{Event, LinkId};
use super::FarmEvent;
use crate::outbound::{Batch, Direct, Outbound, SharedWrite};
use crate::state::Shared;

/// Bytes queued to one peer before the link is cut as too slow.
pub const PEER_OUTBOUND_LIMIT: usize = 64 << 20;
/// How often, at most, a link tells the failure detector it heard a frame:
/// well under the heartbeat, so a live link is never suspected, and far
/// fewer events than frames.
pub const HEARD_EVERY: Duration = Duration::from_millis(100);

/// What the driver holds of a live link.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    /// Frames to send.
    pub out: Arc<Outbound>,
    /// Cancel to close the link.
    pub token: CancellationToken,
}

impl LinkHandle {
    /// A handle for a new link to `peer`, closed with its parent.
    pub fn new(parent: &CancellationToken, peer: &Peer) -> LinkHandle {
        let out = Outbound::new(PEER_OUTBOUND_LIMIT);
        if peer.confirms {
            // Before the link carries a RELAY: what waits on it waits for GOT.
            out.expect_confirmations();
        }
        LinkHandle { out, token: parent.child_token() }
    }
}

/// Everything a link task needs besides its connection.
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
}

/// Serves an authenticated link until it closes, then reports it closed.
pub async fn run_link(conn: PeerConn<Stream>, cx: LinkCtx) {
    let reason = match conn.into_parts() {
        // Owned halves with no lock between them in the clear; TLS state
        // is one, so its halves share it.
        (Stream::Plain(tcp), buf) => {
            let (rd, wr) = PeerConn::with_buffer(tcp, buf).into_split();
            let wr = Arc::new(wr.into_inner());
            if cx.peer.confirms {
                // Only where taken means confirmed: on an older peer's link
                // a write must be followed by showing what it handed on,
                // which the link's writer does.
                cx.handle.out.set_direct(Direct::new(wr.clone(), cx.shared.metrics.peer_bytes_out.clone()));
            }
            serve(rd, SharedWrite(wr), &cx).await
        }
        (tls, buf) => {
            let (rd, wr) = PeerConn::with_buffer(tls, buf).split();
            serve(rd, wr.into_inner(), &cx).await
        }
    };
    // The socket closes once the queue lets go of it.
    cx.handle.out.take_direct();
    cx.handle.token.cancel();
    // What waited for this link to take a frame (ACKs, a room owner's own
    // members) waits no more.
    cx.handle.out.release_all();
    cx.shared.rooms.flush_shown();
    tracing::info!(peer = %cx.peer.id, link = cx.link, reason, "peer link closed");
    let _ = cx.events.send(FarmEvent::Membership(Event::LinkClosed { link: cx.link })).await;
}

/// Reads and writes until either side ends or the link is cancelled.
async fn serve<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    rd: FrameReader<R, PeerFrame>,
    wr: W,
    cx: &LinkCtx,
) -> String {
    tokio::select! {
        r = read_loop(rd, cx) => r,
        r = write_loop(wr, &cx.handle, &cx.shared, cx.peer.confirms) => r,
        _ = cx.handle.token.cancelled() => "closed by us".to_string(),
    }
}

/// What the reader does after handling the frames it has buffered.
enum Step {
    /// Read more.
    Read,
    /// Hand the driver an event, then go on (boxed: events are rare and big).
    Send(Box<FarmEvent>),
    /// End the link.
    Close(String),
}

async fn read_loop<R: AsyncRead + Unpin>(mut rd: FrameReader<R, PeerFrame>, cx: &LinkCtx) -> String {
    let mut reported = Instant::now();
    // A RELAY was handled since the last GOT: confirmed once the frames
    // read so far are handled (one GOT per batch of reads, not per frame).
    let mut owed = false;
    // A frame arrived since the failure detector was last told.
    let mut heard = false;
    loop {
        let step = {
            // What the frames push is written when they are all handled.
            let _batch = Batch::start();
            handle_buffered(&mut rd, cx, &mut owed, &mut heard)
        };
        let event = match step {
            Step::Read => {
                if heard && reported.elapsed() >= HEARD_EVERY {
                    (heard, reported) = (false, Instant::now());
                    if cx.events.send(FarmEvent::Membership(Event::Heard { link: cx.link })).await.is_err() {
                        return "farm driver gone".into();
                    }
                }
                match rd.fill().await {
                    Ok(true) => continue,
                    Ok(false) => return "eof".into(),
                    Err(e) => return format!("read error: {e}"),
                }
            }
            Step::Send(event) => event,
            Step::Close(why) => return why,
        };
        if cx.events.send(*event).await.is_err() {
            return "farm driver gone".into();
        }
    }
}

/// Handles the frames already read, until one needs the driver or the
/// buffer holds no whole frame (then a `GOT` is owed for any `RELAY`).
fn handle_buffered<R: AsyncRead + Unpin>(
    rd: &mut FrameReader<R, PeerFrame>,
    cx: &LinkCtx,
    owed: &mut bool,
    heard: &mut bool,
) -> Step {
    loop {
        let frame = match rd.try_frame() {
            Ok(Some(f)) => f,
            Ok(None) => {
                if std::mem::take(owed) {
                    cx.handle.out.push(PeerFrame::Got { position: rd.consumed() }.to_bytes());
                }
                return Step::Read;
            }
            Err(ConnError::Decode(e)) => {
                cx.handle.out.push(PeerFrame::err(e.error.code(), e.error.to_string()).to_bytes());
                if e.is_fatal() {
                    return Step::Close(format!("framing lost: {e}"));
                }
                continue;
            }
            Err(e) => return Step::Close(format!("read error: {e}")),
        };
        *heard = true;
        cx.shared.metrics.peer_frame_in(frame.verb());
        *owed |= cx.peer.confirms && matches!(frame, PeerFrame::Relay { .. });
        match route(frame, cx.peer.id, cx.link, &cx.shared) {
            Routed::Done => {}
            Routed::Membership(ev) => return Step::Send(Box::new(FarmEvent::Membership(ev))),
            Routed::Reply(f) => {
                cx.handle.out.push(f.to_bytes());
            }
            Routed::Taken(position) => {
                cx.handle.out.confirm(position);
                cx.shared.rooms.flush_shown();
            }
            Routed::Close(why) => return Step::Close(why),
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut wr: W,
    handle: &LinkHandle,
    shared: &Arc<Shared>,
    confirms: bool,
) -> String {
    let mut wq: VecDeque<Bytes> = VecDeque::new();
    loop {
        handle.out.drain_into(&mut wq);
        if handle.out.overflowed() {
            return "peer too slow: outbound queue overflowed".into();
        }
        if wq.is_empty() {
            // A TLS stream may hold the last records until flushed (a no-op on TCP).
            if let Err(e) = wr.flush().await {
                return format!("write error: {e}");
            }
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
            if !confirms {
                // On a link that does not confirm, written is taken: a room
                // owner's members may be shown what this write handed on.
                shared.rooms.flush_shown();
            }
            shared.metrics.peer_bytes_out.inc_by(n as u64);
            crate::outbound::consume(&mut wq, n);
        }
    }
}
