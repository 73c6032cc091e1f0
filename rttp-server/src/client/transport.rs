//! The bytes under a client connection: plain TCP, or TLS over TCP. The
//! connection is readiness-based (wait until readable, then read what is
//! there without blocking) so that an idle session holds no buffer; this
//! trait keeps that shape for TLS too, driving rustls directly over the
//! socket instead of through an `AsyncRead` wrapper.

use std::future::Future;
use std::io::{self, IoSlice, Read, Write};
use std::task::{Context, Poll};

use bytes::BytesMut;
use rustls::ServerConnection;
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
}

impl Transport for TcpStream {
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

impl Raw for Tls {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.buffered = false;
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.read_records()? == 0 {
                return Ok(0);
            }
        }
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

/// The socket as rustls sees it: reads and writes that never wait.
struct Sock<'a>(&'a TcpStream);

impl Read for Sock<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
    }
}

impl Write for Sock<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Plaintext decrypted per step of [`Tls::try_read_buf`] at most.
const PLAIN_CHUNK: usize = 4096;

/// TLS over a TCP socket, after the handshake.
pub(crate) struct Tls {
    tcp: TcpStream,
    /// Boxed: the session state is large, and the connection's future holds this.
    tls: Box<ServerConnection>,
    /// rustls may hold plaintext already (the handshake can read the first
    /// frames along with its last message): read before waiting.
    buffered: bool,
}

impl Tls {
    /// Wraps a session whose handshake is done.
    pub(crate) fn new(tcp: TcpStream, mut tls: ServerConnection) -> Tls {
        tls.set_buffer_limit(Some(crate::tls::TLS_SEND_BUFFER));
        Tls { tcp, tls: Box::new(tls), buffered: true }
    }

    /// Writes pending TLS records until the socket is full.
    fn flush(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            if self.tls.write_tls(&mut Sock(&self.tcp))? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Reads TLS records from the socket and decrypts them; 0 at the
    /// socket's end, `WouldBlock` when nothing came.
    fn read_records(&mut self) -> io::Result<usize> {
        let n = self.tls.read_tls(&mut Sock(&self.tcp))?;
        if n == 0 {
            return Ok(0);
        }
        let processed = self.tls.process_new_packets();
        // Handshake messages, alerts and key updates may need sending;
        // a full socket only delays them.
        match self.flush() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            _ => {}
        }
        processed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n)
    }

    /// Moves what rustls has decrypted into `buf`.
    fn drain_plain(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let mut total = 0;
        loop {
            let at = buf.len();
            buf.resize(at + PLAIN_CHUNK, 0);
            let r = self.tls.reader().read(&mut buf[at..]);
            buf.truncate(at + *r.as_ref().unwrap_or(&0));
            match r {
                Ok(0) => return Ok(total),
                Ok(n) => total += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && total > 0 => return Ok(total),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Transport for Tls {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready_unless_buffered(self.buffered, &self.tcp, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_write_ready(cx)
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.buffered = false;
        loop {
            match self.drain_plain(buf) {
                // 0 here is the peer's close_notify: the end.
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.read_records()? == 0 {
                return Ok(0);
            }
        }
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // What was encrypted before goes first: the socket keeps the order.
        match self.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let n = self.tls.writer().write_vectored(bufs)?;
        match self.flush() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 && !bufs.iter().all(|b| b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn pending(&self) -> bool {
        self.tls.wants_write()
    }

    fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        // From now on only the socket is read: readiness is the socket's
        // (else a session closed before its first read would spin here).
        self.buffered = false;
        self.tcp.try_read(scratch)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        self.tls.send_close_notify();
        let _ = self.flush();
        AsyncWriteExt::shutdown(&mut self.tcp)
    }
}
