//! A load connection: raw RTTP, cheap enough for thousands per process.
//! Message bodies carry the send time, so every delivery gives a latency.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use rttp_proto::{ClientFrame, Frame, Limits, Nick, Room, ServerFrame, Text};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Now, in microseconds since the epoch (all load processes share a clock).
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A 64-byte body: the send time, padded.
pub(crate) fn body(seq: u64) -> Text {
    let mut s = format!("{} {seq} ", now_us());
    while s.len() < 64 {
        s.push('x');
    }
    Text::from(s)
}

/// The send time a body carries.
pub(crate) fn sent_at(text: &Text) -> Option<u64> {
    text.as_str().split(' ').next()?.parse().ok()
}

pub(crate) struct LoadConn {
    pub(crate) rd: OwnedReadHalf,
    pub(crate) wr: OwnedWriteHalf,
    pub(crate) buf: BytesMut,
    out: BytesMut,
}

impl LoadConn {
    /// Connects, sends HELLO, and waits for WELCOME and FARM_INFO.
    pub(crate) async fn hello(addr: SocketAddr, nick: &str) -> std::io::Result<LoadConn> {
        let s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
        let _ = s.set_nodelay(true);
        let (rd, wr) = s.into_split();
        let mut c = LoadConn { rd, wr, buf: BytesMut::new(), out: BytesMut::new() };
        let nick = Nick::new(nick).map_err(std::io::Error::other)?;
        c.send(&ClientFrame::Hello { version: 1, nick }).await?;
        loop {
            match c.next().await? {
                ServerFrame::FarmInfo(_) => return Ok(c),
                ServerFrame::Err { code, reason } => return Err(std::io::Error::other(format!("ERR {code} {reason}"))),
                _ => {}
            }
        }
    }

    pub(crate) async fn send(&mut self, f: &ClientFrame) -> std::io::Result<()> {
        self.out.clear();
        f.encode(&mut self.out);
        self.wr.write_all(&self.out).await
    }

    /// Joins and waits for its own JOINED.
    pub(crate) async fn join(&mut self, room: &str) -> std::io::Result<()> {
        let room: Room = room.parse().map_err(std::io::Error::other)?;
        self.send(&ClientFrame::Join { room, after: None }).await?;
        loop {
            if let ServerFrame::Joined { room: r, .. } = self.next().await? {
                if r == room {
                    return Ok(());
                }
            }
        }
    }

    /// The next frame.
    pub(crate) async fn next(&mut self) -> std::io::Result<ServerFrame> {
        loop {
            match ServerFrame::decode_buf(&mut self.buf, &Limits::default()) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
            if self.rd.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}
