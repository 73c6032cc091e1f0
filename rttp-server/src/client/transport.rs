//! The bytes under a client connection: plain TCP, or TLS over TCP. The
//! connection is readiness-based (wait until readable, then read what is
//! there without blocking) so that an idle session holds no buffer; this
//! trait keeps that shape for TLS too (the `tls` module: rustls driven
//! directly over the socket instead of through an `AsyncRead` wrapper).

use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A client connection's byte stream, used by readiness.
///
/// Readiness is polled (`poll_read_ready`), not awaited through a future of
/// tokio's: a `TcpStream::readable()` future is 152 bytes, and the
/// connection's loop waits for reading and writing at once, in every idle
/// session's task; a poll function keeps only a reference.
pub(crate) trait Transport: Send + Sync + 'static {
    /// Ready when [`Transport::try_read_buf`] may have bytes (or news of the end).
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Ready when the socket may take bytes.
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    /// Resolves when [`Transport::try_read_buf`] may have bytes (or news of the end).
    fn readable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::poll_fn(move |cx| self.poll_read_ready(cx))
    }
    /// Appends what can be read now to `buf`: `Ok(0)` at the end, `WouldBlock` when nothing is there.
    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize>;
    /// Resolves when the socket may take bytes.
    fn writable(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::poll_fn(move |cx| self.poll_write_ready(cx))
    }
    /// Takes what it can of `bufs` now; `WouldBlock` when nothing.
    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Bytes taken by a write but not yet on the socket (TLS records).
    fn pending(&self) -> bool;
    /// Discards raw input, for the linger after a close; `Ok(0)` at the end.
    fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize>;
    /// Ends the stream (a TLS close_notify first).
    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send;
    /// The socket, when other threads may write the session's frames to it
    /// directly (see [`crate::outbound::Batch`]): plain TCP only.
    fn direct(&self) -> Option<Arc<TcpStream>> {
        None
    }
}

/// The methods a plain socket's transports share, owned or shared.
macro_rules! plain_tcp {
    () => {
        fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            TcpStream::poll_read_ready(self, cx)
        }

        fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            TcpStream::poll_write_ready(self, cx)
        }

        fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
            TcpStream::try_read_buf(self, buf)
        }

        fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            TcpStream::try_write_vectored(self, bufs)
        }

        fn pending(&self) -> bool {
            false
        }

        fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
            self.try_read(scratch)
        }
    };
}

/// A plain TCP session's socket: shared with its queue, which other
/// threads may write to it directly (see [`crate::outbound::Batch`]).
impl Transport for Arc<TcpStream> {
    plain_tcp!();

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        // Shared, so not through `AsyncWrite`: a write-side shutdown is one
        // syscall that never blocks.
        let r =
            nix::sys::socket::shutdown(self.as_raw_fd(), nix::sys::socket::Shutdown::Write).map_err(io::Error::from);
        std::future::ready(r)
    }

    fn direct(&self) -> Option<Arc<TcpStream>> {
        Some(self.clone())
    }
}

impl Transport for TcpStream {
    plain_tcp!();

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        AsyncWriteExt::shutdown(self)
    }
}

/// A byte stream a decoder reads from in slices (WebSocket, over TCP or
/// TLS).
pub(crate) trait Raw: Transport {
    /// Reads what fits in `buf` now; `Ok(0)` at the end, `WouldBlock` when
    /// nothing is there.
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
}

impl Raw for TcpStream {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TcpStream::try_read(self, buf)
    }
}

/// Readiness of a transport that decodes on top of the socket (TLS,
/// WebSocket): at once while its decoder may hold bytes, else the socket's.
pub(crate) fn ready_unless_buffered<T: Transport>(
    buffered: bool,
    raw: &T,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    match buffered {
        true => Poll::Ready(Ok(())),
        false => raw.poll_read_ready(cx),
    }
}
