//! A raw RTTP client for tests: bytes in, frames out, every read bounded
//! in time.

use std::net::SocketAddr;
use std::time::Duration;

use rttp_conn::hello::Opened;
use rttp_conn::tls::{Stream, TlsClient};
use rttp_conn::{ClientConn, ConnError};
use rttp_proto::ServerFrame;
use tokio::net::TcpStream;

/// How long a read waits before the test fails.
pub const WAIT: Duration = Duration::from_secs(5);

/// A client connection spoken to in raw bytes.
#[derive(Debug)]
pub struct Raw {
    /// The frame connection underneath.
    pub conn: ClientConn<Stream>,
}

impl Raw {
    /// Wraps an already connected stream (a chosen source address, a small window).
    pub fn over(stream: TcpStream) -> Raw {
        Raw { conn: ClientConn::new(Stream::Plain(stream)) }
    }

    /// Connects through TLS with `tls`, or in the clear without; `None` if
    /// that fails (nothing listens, a bad certificate).
    pub async fn connect_over(tls: Option<&TlsClient>, addr: SocketAddr) -> Option<Raw> {
        Some(Raw { conn: ClientConn::connect_over(tls, addr, WAIT).await.ok()? })
    }

    /// Connects.
    pub async fn connect(addr: SocketAddr) -> Raw {
        Raw::over(TcpStream::connect(addr).await.expect("connect"))
    }

    /// Connects, or `None` if nothing listens.
    pub async fn try_connect(addr: SocketAddr) -> Option<Raw> {
        Some(Raw::over(TcpStream::connect(addr).await.ok()?))
    }

    /// Connects with a tiny receive buffer, so that not reading backs up fast.
    pub async fn connect_small_window(addr: SocketAddr) -> Raw {
        let sock = tokio::net::TcpSocket::new_v4().expect("socket");
        sock.set_recv_buffer_size(4096).expect("rcvbuf");
        Raw::over(sock.connect(addr).await.expect("connect"))
    }

    /// Connects and opens a session as `nick`, consuming WELCOME and FARM_INFO.
    pub async fn hello(addr: SocketAddr, nick: &str) -> Raw {
        let mut c = Raw::connect(addr).await;
        let opened = c.conn.hello(nick.parse().expect("nick"), WAIT).await.expect("HELLO exchange");
        assert!(matches!(opened, Opened::Session { .. }), "expected WELCOME and FARM_INFO, got {opened:?}");
        c
    }

    /// Sends text as is.
    pub async fn send(&mut self, s: &str) {
        self.conn.write_raw(s.as_bytes()).await.expect("write");
    }

    /// Sends bytes as is.
    pub async fn send_bytes(&mut self, b: &[u8]) {
        self.conn.write_raw(b).await.expect("write");
    }

    /// The next frame; panics after [`WAIT`] or at end of stream.
    pub async fn frame(&mut self) -> ServerFrame {
        self.try_frame().await.expect("connection closed while a frame was expected")
    }

    /// The next frame, or `None` at end of stream; panics after [`WAIT`].
    pub async fn try_frame(&mut self) -> Option<ServerFrame> {
        self.frame_within(WAIT).await.expect("no frame within the wait")
    }

    /// The next frame within `d`: `Err(())` on time-out, `Ok(None)` at end of
    /// stream (or a reset); panics on bytes that are not a valid frame.
    pub async fn frame_within(&mut self, d: Duration) -> Result<Option<ServerFrame>, ()> {
        match self.conn.read_within(d).await {
            Ok(f) => Ok(Some(f)),
            Err(ConnError::Timeout(_)) => Err(()),
            Err(ConnError::Closed | ConnError::Truncated | ConnError::Io(_)) => Ok(None),
            Err(e @ (ConnError::Decode(_) | ConnError::Tls(_))) => panic!("the server sent an invalid frame: {e}"),
        }
    }

    /// Reads for `d` and returns the first frame that arrives other than a
    /// `FARM_INFO` push (which may come at any time), or `None` if the
    /// connection stayed quiet: for asserting that nothing else came.
    pub async fn quiet_for(&mut self, d: Duration) -> Option<ServerFrame> {
        let end = tokio::time::Instant::now() + d;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self.frame_within(left).await {
                Err(()) => return None,
                Ok(Some(ServerFrame::FarmInfo(_))) => continue,
                Ok(other) => return other.or_else(|| panic!("the connection closed while it should stay quiet")),
            }
        }
    }

    /// Skips frames until one matches `pred`, and returns it.
    pub async fn until(&mut self, mut pred: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let f = self.frame().await;
            if pred(&f) {
                return f;
            }
        }
    }

    /// The next `n` bytes as text.
    pub async fn bytes(&mut self, n: usize) -> String {
        tokio::time::timeout(WAIT, async {
            while self.conn.buffer().len() < n {
                if self.conn.fill().await.expect("read") == 0 {
                    break;
                }
            }
        })
        .await
        .expect("bytes within the wait");
        let buf = self.conn.buffer();
        String::from_utf8_lossy(&buf.split_to(n.min(buf.len()))).into_owned()
    }

    /// Expects exactly these bytes next.
    pub async fn expect(&mut self, want: &str) {
        let got = self.bytes(want.len()).await;
        assert_eq!(got, want);
    }

    /// Expects an `ERR` with this code, and returns its reason.
    pub async fn expect_err(&mut self, code: u16) -> String {
        match self.frame().await {
            ServerFrame::Err { code: c, reason } if c == code => reason,
            other => panic!("expected ERR {code}, got {other:?}"),
        }
    }

    /// Expects the server to close the connection.
    pub async fn expect_closed(&mut self) {
        let f = self.try_frame().await;
        assert!(f.is_none(), "expected the connection to close, got {f:?}");
    }
}
