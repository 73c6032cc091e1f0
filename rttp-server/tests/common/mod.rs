//! Shared helpers: a server on 127.0.0.1:0 and a raw client that speaks
//! bytes, as a person with `nc` would.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use bytes::BytesMut;
use rttp_proto::{Frame, Limits, ServerFrame};
use rttp_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const WAIT: Duration = Duration::from_secs(5);

pub async fn start(mut tweak: impl FnMut(&mut Config)) -> (Server, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = Config::new("s1").unwrap();
    cfg.listen = addr;
    cfg.advertise = addr.into();
    tweak(&mut cfg);
    (Server::start(cfg, listener, None), addr)
}

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
pub async fn check_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub struct Raw {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    /// Connects with a tiny receive buffer, so that not reading backs up fast.
    pub async fn connect_small_window(addr: std::net::SocketAddr) -> Raw {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.set_recv_buffer_size(4096).unwrap();
        Raw {
            stream: sock.connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    pub async fn connect(addr: std::net::SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    /// Connects and opens a session as `nick`, consuming WELCOME and FARM_INFO.
    pub async fn hello(addr: std::net::SocketAddr, nick: &str) -> Raw {
        let mut c = Raw::connect(addr).await;
        c.send(&format!("HELLO 1 {nick}\r\n")).await;
        assert!(matches!(c.frame().await, ServerFrame::Welcome { .. }));
        assert!(matches!(c.frame().await, ServerFrame::FarmInfo(_)));
        c
    }

    pub async fn send(&mut self, s: &str) {
        self.stream.write_all(s.as_bytes()).await.unwrap();
    }

    pub async fn send_bytes(&mut self, b: &[u8]) {
        self.stream.write_all(b).await.unwrap();
    }

    /// The next frame, decoded; panics after `WAIT`.
    pub async fn frame(&mut self) -> ServerFrame {
        self.try_frame()
            .await
            .expect("connection closed while a frame was expected")
    }

    /// The next frame, or `None` at end of stream.
    pub async fn try_frame(&mut self) -> Option<ServerFrame> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(f) = ServerFrame::decode_buf(&mut self.buf, &Limits::default()).unwrap()
                {
                    return Some(f);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("no frame within the wait")
    }

    /// The exact bytes of the next `n` bytes.
    pub async fn bytes(&mut self, n: usize) -> String {
        tokio::time::timeout(WAIT, async {
            while self.buf.len() < n {
                if self.stream.read_buf(&mut self.buf).await.unwrap() == 0 {
                    break;
                }
            }
        })
        .await
        .expect("bytes within the wait");
        String::from_utf8_lossy(&self.buf.split_to(n.min(self.buf.len()))).into_owned()
    }

    /// Expects exactly these bytes next.
    pub async fn expect(&mut self, want: &str) {
        let got = self.bytes(want.len()).await;
        assert_eq!(got, want);
    }

    /// Expects an ERR with this code.
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
