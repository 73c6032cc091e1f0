//! [`FrameConn`]: a stream plus its read and write buffers, speaking only
//! frames; [`FrameReader`] and [`FrameWriter`] are its halves.

use std::io;
use std::marker::PhantomData;
use std::time::Duration;

use bytes::BytesMut;
use rttp_proto::{DecodeError, Frame, Limits};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Why reading or writing a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The stream failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The bytes were not a valid frame. When the error is recoverable
    /// ([`DecodeError::is_fatal`] is false) the bad frame is already gone
    /// from the buffer and reading may go on.
    #[error("bad frame: {0}")]
    Decode(#[from] DecodeError),
    /// The other side closed the stream in the middle of a frame.
    #[error("closed in the middle of a frame")]
    Truncated,
    /// The other side closed the stream where a frame was required.
    #[error("connection closed")]
    Closed,
    /// TLS could not be set up: a certificate or key file, or the handshake.
    #[error("tls: {0}")]
    Tls(String),
    /// Nothing arrived in time.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// The reading half: a stream and the bytes read from it but not yet decoded.
#[derive(Debug)]
pub struct FrameReader<R, In> {
    rd: R,
    buf: BytesMut,
    limits: Limits,
    /// Bytes of frames decoded (or skipped as bad) so far.
    consumed: u64,
    _in: PhantomData<fn() -> In>,
}

/// The writing half: a stream and a reusable encode buffer.
#[derive(Debug)]
pub struct FrameWriter<W, Out> {
    wr: W,
    buf: BytesMut,
    _out: PhantomData<fn(Out)>,
}

/// A connection that reads frames of kind `In` and writes frames of kind `Out`.
#[derive(Debug)]
pub struct FrameConn<S, In, Out> {
    stream: S,
    rbuf: BytesMut,
    wbuf: BytesMut,
    limits: Limits,
    _kinds: PhantomData<fn(Out) -> In>,
}

/// Spare room kept in the read buffer before a read: a full buffer would
/// otherwise be grown by 64 bytes a read, one syscall per few frames.
pub const READ_SPARE: usize = 4096;
/// How much the read buffer grows when it runs short.
pub const READ_CHUNK: usize = 16384;

/// Decodes the next frame from `buf`, reading from `rd` while it is incomplete.
async fn read_into<R: AsyncRead + Unpin, In: Frame>(
    rd: &mut R,
    buf: &mut BytesMut,
    limits: &Limits,
    consumed: &mut u64,
) -> Result<Option<In>, ConnError> {
    loop {
        if let Some(f) = decode_counted(buf, limits, consumed)? {
            return Ok(Some(f));
        }
        if buf.capacity() - buf.len() < READ_SPARE {
            buf.reserve(READ_CHUNK);
        }
        if rd.read_buf(buf).await? == 0 {
            return if buf.is_empty() { Ok(None) } else { Err(ConnError::Truncated) };
        }
    }
}

/// Decodes the next frame in `buf`, if it is whole, adding the bytes it
/// took (a bad frame's too: it is gone from the buffer) to `consumed`.
fn decode_counted<In: Frame>(buf: &mut BytesMut, limits: &Limits, consumed: &mut u64) -> Result<Option<In>, ConnError> {
    let before = buf.len();
    let r = In::decode_buf(buf, limits);
    *consumed += (before - buf.len()) as u64;
    Ok(r?)
}

async fn write_from<W: AsyncWrite + Unpin, Out: Frame>(
    wr: &mut W,
    buf: &mut BytesMut,
    f: &Out,
) -> Result<(), ConnError> {
    buf.clear();
    f.encode(buf);
    wr.write_all(buf).await?;
    Ok(())
}

async fn within<T>(d: Duration, fut: impl std::future::Future<Output = Result<T, ConnError>>) -> Result<T, ConnError> {
    tokio::time::timeout(d, fut).await.map_err(|_| ConnError::Timeout(d))?
}

impl<S: AsyncRead + AsyncWrite + Unpin, In: Frame, Out: Frame> FrameConn<S, In, Out> {
    /// A connection over `stream` with the default limits.
    pub fn new(stream: S) -> Self {
        FrameConn::with_buffer(stream, BytesMut::new())
    }

    /// A connection over `stream` whose first bytes were already read into `buf`.
    pub fn with_buffer(stream: S, buf: BytesMut) -> Self {
        FrameConn { stream, rbuf: buf, wbuf: BytesMut::new(), limits: Limits::default(), _kinds: PhantomData }
    }

    /// Changes the limits frames are decoded with (a peer handshake reads
    /// with tighter ones than the link that follows).
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// The next frame, or `None` when the other side closed cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<In>, ConnError> {
        read_into(&mut self.stream, &mut self.rbuf, &self.limits, &mut 0).await
    }

    /// The next frame within `d`; a clean close is [`ConnError::Closed`] here.
    pub async fn read_within(&mut self, d: Duration) -> Result<In, ConnError> {
        within(d, async { self.read_frame().await?.ok_or(ConnError::Closed) }).await
    }

    /// Writes one frame.
    pub async fn write_frame(&mut self, f: &Out) -> Result<(), ConnError> {
        write_from(&mut self.stream, &mut self.wbuf, f).await
    }

    /// Writes bytes as they are (tests speak malformed input this way).
    pub async fn write_raw(&mut self, b: &[u8]) -> Result<(), ConnError> {
        self.stream.write_all(b).await?;
        Ok(())
    }

    /// Reads more bytes into the read buffer; 0 at end of stream.
    pub async fn fill(&mut self) -> Result<usize, ConnError> {
        Ok(self.stream.read_buf(&mut self.rbuf).await?)
    }

    /// The bytes read but not yet decoded.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// The stream, for socket options and shutdown.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The stream, to look at.
    pub fn stream_ref(&self) -> &S {
        &self.stream
    }

    /// The stream and the bytes read past the last frame.
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.rbuf)
    }

    /// Splits into halves on any stream (through `tokio::io::split`).
    pub fn split(self) -> (FrameReader<tokio::io::ReadHalf<S>, In>, FrameWriter<tokio::io::WriteHalf<S>, Out>) {
        let (rd, wr) = tokio::io::split(self.stream);
        (FrameReader::with_buffer(rd, self.rbuf), FrameWriter::new(wr))
    }
}

impl<In: Frame, Out: Frame> FrameConn<TcpStream, In, Out> {
    /// Connects within `d`, with `TCP_NODELAY` (frames are small and interactive).
    pub async fn connect(addr: std::net::SocketAddr, d: Duration) -> Result<Self, ConnError> {
        let stream = within(d, async { Ok(TcpStream::connect(addr).await?) }).await?;
        let _ = stream.set_nodelay(true);
        Ok(FrameConn::new(stream))
    }

    /// Splits a TCP connection into owned halves, with no lock between them.
    pub fn into_split(self) -> (FrameReader<OwnedReadHalf, In>, FrameWriter<OwnedWriteHalf, Out>) {
        let (rd, wr) = self.stream.into_split();
        (FrameReader::with_buffer(rd, self.rbuf), FrameWriter::new(wr))
    }
}

impl<In: Frame, Out: Frame> FrameConn<crate::tls::Stream, In, Out> {
    /// Connects within `d`, through TLS with `tls`.
    pub async fn connect_over(
        tls: Option<&crate::tls::TlsClient>,
        addr: std::net::SocketAddr,
        d: Duration,
    ) -> Result<Self, ConnError> {
        Ok(FrameConn::new(crate::tls::TlsClient::connect(tls, addr, d).await?))
    }
}

impl<R: AsyncRead + Unpin, In: Frame> FrameReader<R, In> {
    /// A reader whose first bytes were already read into `buf`.
    pub fn with_buffer(rd: R, buf: BytesMut) -> Self {
        FrameReader { rd, buf, limits: Limits::default(), consumed: 0, _in: PhantomData }
    }

    /// The next frame, or `None` when the other side closed cleanly between frames.
    pub async fn read_frame(&mut self) -> Result<Option<In>, ConnError> {
        read_into(&mut self.rd, &mut self.buf, &self.limits, &mut self.consumed).await
    }

    /// The next frame if it is already read whole, without reading;
    /// `None` when the next [`FrameReader::read_frame`] would have to wait.
    pub fn try_frame(&mut self) -> Result<Option<In>, ConnError> {
        decode_counted(&mut self.buf, &self.limits, &mut self.consumed)
    }

    /// Reads more bytes, for [`FrameReader::try_frame`] to decode: `Ok(false)`
    /// at a clean end between frames, [`ConnError::Truncated`] inside one.
    pub async fn fill(&mut self) -> Result<bool, ConnError> {
        if self.buf.capacity() - self.buf.len() < READ_SPARE {
            self.buf.reserve(READ_CHUNK);
        }
        match self.rd.read_buf(&mut self.buf).await? {
            0 if self.buf.is_empty() => Ok(false),
            0 => Err(ConnError::Truncated),
            _ => Ok(true),
        }
    }

    /// Bytes of frames this reader has returned (or skipped as bad) since
    /// it was made: a position in the other side's stream.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The next frame within `d`; a clean close is [`ConnError::Closed`] here.
    pub async fn read_within(&mut self, d: Duration) -> Result<In, ConnError> {
        within(d, async { self.read_frame().await?.ok_or(ConnError::Closed) }).await
    }
}

impl<W: AsyncWrite + Unpin, Out: Frame> FrameWriter<W, Out> {
    /// A writer over `wr`.
    pub fn new(wr: W) -> Self {
        FrameWriter { wr, buf: BytesMut::new(), _out: PhantomData }
    }

    /// Writes one frame.
    pub async fn write_frame(&mut self, f: &Out) -> Result<(), ConnError> {
        write_from(&mut self.wr, &mut self.buf, f).await
    }

    /// The stream, for writers that batch shared frames themselves.
    pub fn into_inner(self) -> W {
        self.wr
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use rttp_proto::{ClientFrame, ErrCode, ServerFrame, Text};

    use super::*;

    type Both = FrameConn<tokio::io::DuplexStream, ClientFrame, ClientFrame>;

    #[tokio::test]
    async fn frames_cross_in_both_directions_and_a_clean_close_is_none() {
        let (a, b) = tokio::io::duplex(64);
        let (mut a, mut b) = (Both::new(a), Both::new(b));
        let say = ClientFrame::Say { room: "#r".parse().unwrap(), tag: None, text: Text::from("x".repeat(300)) };
        let w = tokio::spawn(async move {
            a.write_frame(&say).await.unwrap();
            a.write_frame(&ClientFrame::Quit).await.unwrap();
            say
        });
        let first = b.read_frame().await.unwrap().unwrap();
        assert_eq!(b.read_frame().await.unwrap(), Some(ClientFrame::Quit));
        assert_eq!(first, w.await.unwrap());
        assert!(b.read_frame().await.unwrap().is_none(), "the writer is gone: a clean end");
    }

    #[tokio::test]
    async fn a_close_inside_a_frame_is_truncated_and_a_bad_frame_is_recoverable() {
        let (a, b) = tokio::io::duplex(1024);
        let mut a = Both::new(a);
        let mut b = Both::new(b);
        a.write_raw(b"JOIN bad-room\r\nQUIT\r\nSAY #r 10\r\nabc").await.unwrap();
        drop(a);
        let e = b.read_frame().await.unwrap_err();
        assert!(matches!(&e, ConnError::Decode(d) if !d.is_fatal() && d.error.code() == ErrCode::BadArgument), "{e}");
        assert_eq!(b.read_frame().await.unwrap(), Some(ClientFrame::Quit), "the bad frame was skipped");
        assert!(matches!(b.read_frame().await, Err(ConnError::Truncated)));
    }

    #[tokio::test(start_paused = true)]
    async fn read_within_times_out_and_leftover_bytes_are_read_first() {
        let (a, _keep) = tokio::io::duplex(64);
        let mut c: FrameConn<_, ServerFrame, ClientFrame> =
            FrameConn::with_buffer(a, BytesMut::from(&b"PONG t\r\n"[..]));
        assert!(matches!(c.read_within(Duration::from_secs(1)).await, Ok(ServerFrame::Pong { .. })));
        let e = c.read_within(Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(e, ConnError::Timeout(_)), "{e}");
        let (_, rest) = c.into_parts();
        assert_eq!(rest.freeze(), Bytes::new());
    }

    #[tokio::test]
    async fn a_reader_counts_the_bytes_of_what_it_returned_and_skipped_and_can_look_without_reading() {
        let (a, b) = tokio::io::duplex(1024);
        let mut a = Both::new(a);
        // The link's first bytes were read with the handshake's last frame.
        let mut rd: FrameReader<_, ClientFrame> =
            FrameReader::with_buffer(b, BytesMut::from(&b"PING a\r\nJOIN bad-room\r\nQU"[..]));
        assert_eq!(rd.consumed(), 0, "counted from the reader's start");
        assert!(matches!(rd.try_frame(), Ok(Some(ClientFrame::Ping { .. }))));
        assert_eq!(rd.consumed(), 8);
        assert!(matches!(rd.try_frame(), Err(ConnError::Decode(_))), "a bad frame is skipped...");
        assert_eq!(rd.consumed(), 23, "...and counted: the sender counted it");
        assert!(matches!(rd.try_frame(), Ok(None)), "half a frame: it would have to read");
        assert_eq!(rd.consumed(), 23);
        a.write_raw(b"IT\r\nSAY #r 3\r\nabc\r\n").await.unwrap();
        assert_eq!(rd.read_frame().await.unwrap(), Some(ClientFrame::Quit));
        assert!(matches!(rd.read_frame().await.unwrap(), Some(ClientFrame::Say { .. })));
        assert_eq!(rd.consumed(), 23 + 6 + 15, "every byte the other side sent");
    }

    #[tokio::test]
    async fn fill_reads_more_and_tells_a_clean_end_from_a_truncated_frame() {
        let (a, b) = tokio::io::duplex(1024);
        let mut a = Both::new(a);
        let mut rd: FrameReader<_, ClientFrame> = FrameReader::with_buffer(b, BytesMut::new());
        a.write_raw(b"QUIT\r\n").await.unwrap();
        assert!(rd.fill().await.unwrap(), "bytes arrived");
        assert_eq!(rd.try_frame().unwrap(), Some(ClientFrame::Quit));
        a.write_raw(b"QU").await.unwrap();
        assert!(rd.fill().await.unwrap());
        assert!(matches!(rd.try_frame(), Ok(None)), "half a frame");
        drop(a);
        assert!(matches!(rd.fill().await, Err(ConnError::Truncated)), "closed inside a frame");
        let (a, b) = tokio::io::duplex(64);
        let mut rd: FrameReader<_, ClientFrame> = FrameReader::with_buffer(b, BytesMut::new());
        drop(a);
        assert!(!rd.fill().await.unwrap(), "closed between frames: a clean end");
    }

    #[tokio::test]
    async fn split_halves_keep_the_bytes_already_read() {
        let (a, b) = tokio::io::duplex(256);
        let mut a = Both::new(a);
        a.write_raw(b"PING a\r\nPING b\r\n").await.unwrap();
        let mut b = Both::new(b);
        assert!(matches!(b.read_frame().await.unwrap(), Some(ClientFrame::Ping { .. })));
        let (mut rd, mut wr) = b.split();
        assert!(matches!(rd.read_frame().await.unwrap(), Some(ClientFrame::Ping { .. })), "the second PING survived");
        wr.write_frame(&ClientFrame::Quit).await.unwrap();
        assert_eq!(a.read_frame().await.unwrap(), Some(ClientFrame::Quit));
    }
}
