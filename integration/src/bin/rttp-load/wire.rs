//! The deliveries' side of a load member, for RTTP and NATS alike: a TCP
//! stream read as text lines, where a delivery is a line starting with
//! `MSG ` whose last argument is its body's length, then the body and CRLF.
//! Both protocols happen to frame a message this way, so both members parse
//! it with the same few instructions: what a comparison measures is then
//! the servers, not two client libraries of different weight (the async-nats
//! client cost the load generator 145 % of the machine's 200 % where NATS
//! itself used 50 %).

use bytes::BytesMut;
use rttp_conn::tls::Stream;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::target::latency;

/// Bytes a WebSocket member's read may take at once.
const READ_CHUNK: usize = 16 * 1024;

/// A text-protocol connection of a load member.
pub(crate) struct Wire {
    stream: Stream,
    buf: BytesMut,
    /// Over WebSocket: the bytes read and not yet unframed.
    ws: Option<BytesMut>,
}

/// A client's WebSocket text frame: FIN, masked (RFC 6455 5.3; the mask is
/// fixed, which a load generator may do), its payload.
fn ws_frame(payload: &[u8]) -> Vec<u8> {
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x81);
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=65535 => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&MASK);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    f
}

/// Moves the payloads of the complete server frames in `raw` to `buf`;
/// false on a close frame. One pass and one `advance` for all the frames
/// read (a split per frame cost the load generator more than the servers'
/// WebSocket framing: the run measured the generator).
fn unframe(raw: &mut BytesMut, buf: &mut BytesMut) -> bool {
    let mut at = 0;
    let mut open = true;
    buf.reserve(raw.len());
    loop {
        let r = &raw[at..];
        if r.len() < 2 {
            break;
        }
        let (op, len7) = (r[0] & 0x0f, (r[1] & 0x7f) as usize);
        let (head, len) = match len7 {
            126 if r.len() >= 4 => (4, u16::from_be_bytes([r[2], r[3]]) as usize),
            127 if r.len() >= 10 => (10, u64::from_be_bytes(r[2..10].try_into().expect("8 bytes")) as usize),
            126 | 127 => break,
            n => (2, n),
        };
        if r.len() < head + len {
            break;
        }
        match op {
            0x8 => {
                open = false;
                break;
            }
            0x1 | 0x0 => buf.extend_from_slice(&r[head..head + len]),
            _ => {}
        }
        at += head + len;
    }
    bytes::Buf::advance(raw, at);
    open
}

/// Writes what the stream takes at once, without waiting (a PONG from
/// inside a cancel-safe read: a write that could wait would not be).
fn write_now(stream: &mut Stream, ws: bool, b: &[u8]) {
    let framed;
    let b = if ws {
        framed = ws_frame(b);
        &framed[..]
    } else {
        b
    };
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut pinned = std::pin::Pin::new(stream);
    let _ = pinned.as_mut().poll_write(&mut cx, b);
    let _ = pinned.as_mut().poll_flush(&mut cx);
}

impl Wire {
    /// Wraps a stream (with `TCP_NODELAY` set) whose first bytes (if any) were already read into `buf`.
    pub(crate) fn new(stream: impl Into<Stream>, buf: BytesMut) -> Wire {
        Wire { stream: stream.into(), buf, ws: None }
    }

    /// Opens RTTP over WebSocket at `http://<addr>/rttp`: the upgrade, then
    /// one frame per text message.
    pub(crate) async fn websocket(addr: std::net::SocketAddr) -> std::io::Result<Wire> {
        let mut tcp = tokio::net::TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let req = format!(
            "GET /rttp HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(req.as_bytes()).await?;
        let mut raw = BytesMut::new();
        let end = loop {
            if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if tcp.read_buf(&mut raw).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = raw.split_to(end);
        if !head.starts_with(b"HTTP/1.1 101") {
            return Err(std::io::Error::other(String::from_utf8_lossy(&head).into_owned()));
        }
        let mut buf = BytesMut::new();
        unframe(&mut raw, &mut buf);
        Ok(Wire { stream: tcp.into(), buf, ws: Some(raw) })
    }

    /// Writes bytes (one frame: one message over WebSocket).
    pub(crate) async fn send(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self.ws {
            None => self.stream.write_all(b).await,
            Some(_) => self.stream.write_all(&ws_frame(b)).await,
        }
    }

    /// Reads more into the text buffer (unframed over WebSocket); 0 at the end.
    async fn fill(&mut self) -> std::io::Result<usize> {
        let Some(raw) = &mut self.ws else { return self.stream.read_buf(&mut self.buf).await };
        loop {
            // Room for a whole socket's worth: `read_buf` on a full BytesMut
            // offers 64 bytes, and the run then measures our syscalls.
            raw.reserve(READ_CHUNK);
            if self.stream.read_buf(raw).await? == 0 {
                return Ok(0);
            }
            let before = self.buf.len();
            if !unframe(raw, &mut self.buf) {
                return Ok(0);
            }
            if self.buf.len() > before {
                return Ok(self.buf.len() - before);
            }
        }
    }

    /// The next line without its CRLF; `None` at the end of the stream.
    /// Cancel-safe: bytes read stay in the buffer.
    pub(crate) async fn line(&mut self) -> std::io::Result<Option<BytesMut>> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let mut l = self.buf.split_to(i + 1);
                l.truncate(l.len().saturating_sub(2));
                return Ok(Some(l));
            }
            if self.fill().await? == 0 {
                return Ok(None);
            }
        }
    }

    /// The next delivery's latency (µs, 0 if its body has no time). Lines
    /// that are not `MSG` go to `other`, which may answer with a few bytes
    /// (a PONG) through a non-blocking write. Cancel-safe: nothing is taken
    /// from the buffer until a whole line, or a whole MSG with its body, is in it.
    pub(crate) async fn delivery(&mut self, other: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Option<u64> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line = &self.buf[..i.saturating_sub(1)];
                if !line.starts_with(b"MSG ") {
                    let l = self.buf.split_to(i + 1);
                    if let Some(answer) = other(&l[..i.saturating_sub(1)]) {
                        write_now(&mut self.stream, self.ws.is_some(), &answer);
                    }
                    continue;
                }
                let n: usize = std::str::from_utf8(line).ok()?.rsplit(' ').next()?.parse().ok()?;
                if self.buf.len() >= i + 1 + n + 2 {
                    let frame = self.buf.split_to(i + 1 + n + 2);
                    return Some(latency(&frame[i + 1..i + 1 + n]).unwrap_or(0));
                }
            }
            if self.fill().await.ok()? == 0 {
                return None;
            }
        }
    }
}
