//! RTTP over WebSocket as a client transport: one whole RTTP frame per text
//! message, both ways, so a WebSocket session runs the same connection and
//! session code as a TCP one, over TCP (`ws://`) or TLS (`wss://`). Reads
//! go through tungstenite over the non-blocking stream (like TLS in
//! `client/transport.rs`). Writes are ours:
//! a server's frame is a 2-10 byte header before the payload (servers do
//! not mask), so the queued frames go out as header and shared `Bytes`
//! slices in one vectored write, with no copy; only a frame cut by a full
//! socket keeps its rest, which goes before anything else (tungstenite's
//! own pongs and closes included: it is not read meanwhile).
//!
//! What a browser may not send gets an `ERR` in a text message, then a
//! close with the matching code: a binary message (1003), a message that
//! is not whole frames (it must end with a line end; 1007), a message over
//! the frame limits (1009).

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::task::{Context, Poll};

use bytes::BytesMut;
use rttp_proto::{ErrCode, Frame, ServerFrame};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::client::transport::ready_unless_buffered;
use crate::client::{Raw, Transport};

/// Bytes read from the socket per read, at most (a message spans reads):
/// small, because tungstenite keeps a buffer this size with every session,
/// idle or not (1,024 cost 768 more bytes per idle session; clients' frames
/// are mostly shorter, and their input is rate-limited anyway).
pub(crate) const WS_READ_CHUNK: usize = 256;
/// Bytes of control frames (pongs, a close) tungstenite may hold for the socket.
pub(crate) const WS_CONTROL_BUFFER: usize = 16 * 1024;
/// Frames in one vectored write, at most.
const WS_WRITE_BATCH: usize = 64;

/// The header of a server's text frame carrying `len` bytes, into `out`;
/// returns its length.
fn header(len: usize, out: &mut [u8; 10]) -> usize {
    out[0] = 0x81;
    match len {
        0..=125 => {
            out[1] = len as u8;
            2
        }
        126..=65535 => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            out[1] = 127;
            out[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    }
}

/// The stream as tungstenite sees it: reads and writes that never wait.
pub(crate) struct Sock<S>(pub(crate) S);

impl<S: Raw> Read for Sock<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl<S: Raw> Write for Sock<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write_vectored(&[IoSlice::new(buf)])
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A WebSocket session's transport, after the HTTP upgrade, over a plain
/// socket or a TLS session.
pub(crate) struct Ws<S> {
    /// Boxed: the WebSocket state sits in every connection's future.
    ws: Box<WebSocket<Sock<S>>>,
    /// tungstenite may hold a read message's bytes: read before waiting.
    buffered: bool,
    /// tungstenite holds control frames not yet all on the socket.
    dirty: bool,
    /// The rest of a frame the socket took in part: it goes first.
    rest: Vec<u8>,
    /// The session must end after the frames queued (a protocol error).
    ending: bool,
}

impl<S: Raw> Ws<S> {
    /// Wraps an upgraded stream; `read` holds bytes read past the request.
    /// Messages are limited to one frame of `max_frame` bytes.
    pub(crate) fn new(stream: S, read: Vec<u8>, max_frame: usize) -> Ws<S> {
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_CHUNK)
            .write_buffer_size(0)
            .max_write_buffer_size(WS_CONTROL_BUFFER)
            .max_message_size(Some(max_frame))
            .max_frame_size(Some(max_frame));
        let ws = WebSocket::from_partially_read(Sock(stream), read, Role::Server, Some(config));
        Ws { ws: Box::new(ws), buffered: true, dirty: false, ending: false, rest: Vec::new() }
    }

    /// Writes the rest of a cut frame; `WouldBlock` while some remains.
    fn flush_rest(&mut self) -> io::Result<()> {
        while !self.rest.is_empty() {
            match self.ws.get_mut().0.try_write_vectored(&[IoSlice::new(&self.rest)])? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => drop(self.rest.drain(..n)),
            }
        }
        self.rest = Vec::new();
        Ok(())
    }

    /// Tells the client why, in a text message, and closes with `code`
    /// (unless a cut frame cannot be finished: then the close alone says it).
    fn refuse(&mut self, err: ErrCode, why: &str, code: CloseCode) {
        if self.flush_rest().is_err() {
            self.ending = true;
            self.buffered = false;
            return;
        }
        let frame = ServerFrame::err(err, why).to_bytes();
        if let Ok(text) = tungstenite::Utf8Bytes::try_from(frame) {
            let _ = self.ws.write(Message::Text(text));
        }
        let _ = self.ws.close(Some(CloseFrame { code, reason: why.to_string().into() }));
        let _ = self.ws.flush();
        self.ending = true;
        self.buffered = false;
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.ws.flush() {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(tungstenite::Error::Io(e)) => Err(e),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl<S: Raw + Sync> Transport for Ws<S> {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Not read while a cut frame waits: tungstenite may write a pong when
        // read (the write side's readiness wakes the connection meanwhile).
        if !self.rest.is_empty() {
            return Poll::Pending;
        }
        ready_unless_buffered(self.buffered, &self.ws.get_ref().0, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.ws.get_ref().0.poll_write_ready(cx)
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.buffered = false;
        if self.ending {
            return Ok(0);
        }
        if !self.rest.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut total = 0;
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    if !t.as_str().ends_with('\n') {
                        let why = "one whole RTTP frame per WebSocket message: it must end with a line end";
                        self.refuse(ErrCode::BadFrame, why, CloseCode::Invalid);
                        return Ok(0);
                    }
                    buf.extend_from_slice(t.as_bytes());
                    total += t.len();
                    // More may be in tungstenite's buffer already.
                    self.buffered = true;
                    return Ok(total);
                }
                Ok(Message::Binary(_)) => {
                    self.refuse(ErrCode::BadFrame, "RTTP is text: binary messages are refused", CloseCode::Unsupported);
                    return Ok(0);
                }
                // Pings are answered by tungstenite on the next flush.
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                    self.dirty = true;
                    let _ = self.flush();
                }
                Ok(Message::Close(_)) => return Ok(0),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if total > 0 { Ok(total) } else { Err(e) };
                }
                Err(tungstenite::Error::Capacity(e)) => {
                    let why = format!("message over the frame limits: {e}");
                    self.refuse(ErrCode::BodyTooLarge, &why, CloseCode::Size);
                    return Ok(0);
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    self.refuse(ErrCode::BadFrame, "a text message must be UTF-8", CloseCode::Invalid);
                    return Ok(0);
                }
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => return Ok(0),
                Err(tungstenite::Error::Io(e)) => return Err(e),
                Err(tungstenite::Error::Protocol(e)) => {
                    self.refuse(ErrCode::BadFrame, &format!("WebSocket: {e}"), CloseCode::Protocol);
                    return Ok(0);
                }
                Err(e) => return Err(io::Error::other(e)),
            }
        }
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // A cut frame, then tungstenite's control frames, go first.
        self.flush_rest()?;
        if self.dirty {
            self.flush()?;
        }
        let frames = bufs.len().min(WS_WRITE_BATCH);
        let mut heads = [[0u8; 10]; WS_WRITE_BATCH];
        let mut lens = [0usize; WS_WRITE_BATCH];
        for i in 0..frames {
            lens[i] = header(bufs[i].len(), &mut heads[i]);
        }
        let mut slices = Vec::with_capacity(frames * 2);
        for i in 0..frames {
            slices.push(IoSlice::new(&heads[i][..lens[i]]));
            slices.push(IoSlice::new(&bufs[i]));
        }
        let mut left = self.ws.get_mut().0.try_write_vectored(&slices)?;
        if left == 0 && frames > 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let mut taken = 0;
        for i in 0..frames {
            let whole = lens[i] + bufs[i].len();
            if left >= whole {
                left -= whole;
                taken += bufs[i].len();
                continue;
            }
            if left > 0 {
                // Begun on the socket: it must be finished before anything else.
                let mut frame = Vec::with_capacity(whole);
                frame.extend_from_slice(&heads[i][..lens[i]]);
                frame.extend_from_slice(&bufs[i]);
                self.rest = frame.split_off(left);
                taken += bufs[i].len();
            }
            break;
        }
        Ok(taken)
    }

    fn pending(&self) -> bool {
        self.dirty || !self.rest.is_empty() || self.ws.get_ref().0.pending()
    }

    fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        // From now on only the stream is read: readiness is the stream's.
        self.buffered = false;
        self.ws.get_mut().0.discard(scratch)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        // A close frame only after a whole last frame.
        let whole = self.flush_rest().is_ok();
        if !self.ending && whole {
            let _ = self.ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
        }
        let _ = self.ws.flush();
        self.ws.get_mut().0.shutdown()
    }
}
