//! A load connection: raw RTTP, cheap enough for thousands per process.
//! Message bodies carry the send time, so every delivery gives a latency.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rttp_conn::hello::Opened;
use rttp_conn::ClientConn;
use rttp_proto::{ClientFrame, Nick, Room, ServerFrame, Text};
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

/// A load client: the shared frame connection plus the two steps every
/// workload takes (HELLO, JOIN and wait for it).
pub(crate) struct LoadConn {
    pub(crate) conn: ClientConn<TcpStream>,
}

impl LoadConn {
    /// Connects, sends HELLO, and waits for WELCOME and FARM_INFO.
    pub(crate) async fn hello(addr: SocketAddr, nick: &str) -> std::io::Result<LoadConn> {
        let mut conn = ClientConn::connect(addr, Duration::from_secs(5)).await.map_err(std::io::Error::other)?;
        let nick = Nick::new(nick).map_err(std::io::Error::other)?;
        match conn.hello(nick, Duration::from_secs(10)).await.map_err(std::io::Error::other)? {
            Opened::Session { .. } => Ok(LoadConn { conn }),
            other => Err(std::io::Error::other(format!("no session: {other:?}"))),
        }
    }

    pub(crate) async fn send(&mut self, f: &ClientFrame) -> std::io::Result<()> {
        self.conn.write_frame(f).await.map_err(std::io::Error::other)
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
        match self.conn.read_frame().await.map_err(std::io::Error::other)? {
            Some(f) => Ok(f),
            None => Err(std::io::ErrorKind::UnexpectedEof.into()),
        }
    }
}
