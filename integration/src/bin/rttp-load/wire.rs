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

/// A text-protocol connection of a load member.
pub(crate) struct Wire {
    stream: Stream,
    buf: BytesMut,
}

/// Writes what the stream takes at once, without waiting (a PONG from
/// inside a cancel-safe read: a write that could wait would not be).
fn write_now(stream: &mut Stream, b: &[u8]) {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut pinned = std::pin::Pin::new(stream);
    let _ = pinned.as_mut().poll_write(&mut cx, b);
    let _ = pinned.as_mut().poll_flush(&mut cx);
}

impl Wire {
    /// Wraps a stream (with `TCP_NODELAY` set) whose first bytes (if any) were already read into `buf`.
    pub(crate) fn new(stream: impl Into<Stream>, buf: BytesMut) -> Wire {
        Wire { stream: stream.into(), buf }
    }

    /// Writes bytes.
    pub(crate) async fn send(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b).await
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
            if self.stream.read_buf(&mut self.buf).await? == 0 {
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
                        write_now(&mut self.stream, &answer);
                    }
                    continue;
                }
                let n: usize = std::str::from_utf8(line).ok()?.rsplit(' ').next()?.parse().ok()?;
                if self.buf.len() >= i + 1 + n + 2 {
                    let frame = self.buf.split_to(i + 1 + n + 2);
                    return Some(latency(&frame[i + 1..i + 1 + n]).unwrap_or(0));
                }
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }
}
