//! RTTP over WebSocket as a client transport: one whole RTTP frame per text
//! message, both ways, with tungstenite doing the WebSocket framing over
//! the non-blocking socket (reads and writes that never wait, like TLS in
//! `client/transport.rs`), so a WebSocket session runs the same connection
//! and session code as a TCP one.
//!
//! What a browser may not send gets an `ERR` in a text message, then a
//! close with the matching code: a binary message (1003), a message that
//! is not whole frames (it must end with a line end; 1007), a message over
//! the frame limits (1009).

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};

use bytes::{Bytes, BytesMut};
use rttp_proto::{ErrCode, Frame, ServerFrame};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use crate::client::Transport;

/// Bytes read from the socket per read, at most (a message spans reads):
/// small, because the buffer stays with every idle session.
pub(crate) const WS_READ_CHUNK: usize = 1024;
/// Bytes of frames gathered before tungstenite writes them on its own: a
/// batch of queued frames goes out in one write at the flush that ends it.
pub(crate) const WS_WRITE_GATHER: usize = 32 * 1024;
/// Bytes of WebSocket frames buffered for the socket before a write waits.
pub(crate) const WS_WRITE_BUFFER: usize = 128 * 1024;

/// The socket as tungstenite sees it.
#[derive(Debug)]
pub(crate) struct Sock(pub(crate) TcpStream);

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A WebSocket session's transport, after the HTTP upgrade.
pub(crate) struct Ws {
    /// Boxed: the WebSocket state sits in every connection's future.
    ws: Box<WebSocket<Sock>>,
    /// tungstenite may hold a read message's bytes: read before waiting.
    buffered: bool,
    /// Frames written to tungstenite and not yet all on the socket.
    dirty: bool,
    /// The session must end after the frames queued (a protocol error).
    ending: bool,
}

impl Ws {
    /// Wraps an upgraded socket; `read` holds bytes read past the request.
    /// Messages are limited to one frame of `max_frame` bytes.
    pub(crate) fn new(tcp: TcpStream, read: Vec<u8>, max_frame: usize) -> Ws {
        let config = WebSocketConfig::default()
            .read_buffer_size(WS_READ_CHUNK)
            .write_buffer_size(WS_WRITE_GATHER)
            .max_write_buffer_size(WS_WRITE_BUFFER)
            .max_message_size(Some(max_frame))
            .max_frame_size(Some(max_frame));
        let ws = WebSocket::from_partially_read(Sock(tcp), read, Role::Server, Some(config));
        Ws { ws: Box::new(ws), buffered: true, dirty: false, ending: false }
    }

    /// Tells the client why, in a text message, and closes with `code`.
    fn refuse(&mut self, err: ErrCode, why: &str, code: CloseCode) {
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

impl Transport for Ws {
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        crate::client::readable_unless_buffered(self.buffered, &self.ws.get_ref().0)
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.buffered = false;
        if self.ending {
            return Ok(0);
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

    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        self.ws.get_ref().0.writable()
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // What was framed before goes first.
        match self.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        let mut taken = 0;
        for b in bufs {
            // Each queued buffer is one whole frame: one text message.
            let Ok(text) = tungstenite::Utf8Bytes::try_from(Bytes::copy_from_slice(b)) else {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "a frame that is not UTF-8"));
            };
            match self.ws.write(Message::Text(text)) {
                Ok(()) => taken += b.len(),
                Err(tungstenite::Error::WriteBufferFull(_)) => break,
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Framed and buffered: taken.
                    taken += b.len();
                    break;
                }
                Err(tungstenite::Error::Io(e)) => return Err(e),
                Err(e) => return Err(io::Error::other(e)),
            }
            self.dirty = true;
        }
        match self.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        if taken == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(taken)
    }

    fn pending(&self) -> bool {
        self.dirty
    }

    fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        // From now on only the socket is read: readiness is the socket's.
        self.buffered = false;
        self.ws.get_ref().0.try_read(scratch)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        if !self.ending {
            let _ = self.ws.close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }));
        }
        let _ = self.ws.flush();
        AsyncWriteExt::shutdown(&mut self.ws.get_mut().0)
    }
}
