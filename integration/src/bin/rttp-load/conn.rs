//! Our farm as a load target: raw RTTP over the shared frame connection,
//! cheap enough for thousands of members per process.

use std::net::SocketAddr;
use std::time::Duration;

use integration::Farm;
use rttp_conn::hello::Opened;
use rttp_conn::ClientConn;
use rttp_proto::{ClientFrame, Nick, Room, ServerFrame, Text};
use tokio::net::TcpStream;

use crate::target::{body, latency, LoadTarget, Member};

/// An RTTP member: its connection and its rooms.
pub(crate) struct RttpMember {
    conn: ClientConn<TcpStream>,
    rooms: Vec<Room>,
}

impl RttpMember {
    /// Connects, HELLO (WELCOME and FARM_INFO), then joins each room and waits for its own JOINED.
    pub(crate) async fn open(addr: SocketAddr, nick: &str, rooms: &[String]) -> std::io::Result<RttpMember> {
        let mut conn = ClientConn::connect(addr, Duration::from_secs(5)).await.map_err(std::io::Error::other)?;
        let nick = Nick::new(nick).map_err(std::io::Error::other)?;
        match conn.hello(nick, Duration::from_secs(10)).await.map_err(std::io::Error::other)? {
            Opened::Session { .. } => {}
            other => return Err(std::io::Error::other(format!("no session: {other:?}"))),
        }
        let rooms: Vec<Room> =
            rooms.iter().map(|r| r.parse().map_err(std::io::Error::other)).collect::<Result<_, _>>()?;
        let mut m = RttpMember { conn, rooms: rooms.clone() };
        for room in rooms {
            m.conn.write_frame(&ClientFrame::Join { room, after: None }).await.map_err(std::io::Error::other)?;
            loop {
                match m.conn.read_frame().await.map_err(std::io::Error::other)? {
                    Some(ServerFrame::Joined { room: r, nick: n }) if r == room && n == nick => break,
                    Some(_) => {}
                    None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                }
            }
        }
        Ok(m)
    }
}

impl Member for RttpMember {
    async fn say(&mut self, room: usize, seq: u64) -> bool {
        let room = self.rooms[room % self.rooms.len()];
        self.conn.write_frame(&ClientFrame::Say { room, text: Text::from(body(seq)) }).await.is_ok()
    }

    async fn next(&mut self) -> Option<u64> {
        loop {
            match self.conn.read_frame().await {
                Ok(Some(ServerFrame::Msg { text, .. })) => return Some(latency(text.as_str().as_bytes()).unwrap_or(0)),
                Ok(Some(ServerFrame::Ping { token })) => {
                    let _ = self.conn.write_frame(&ClientFrame::Pong { token }).await;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

impl LoadTarget for Farm {
    type Member = RttpMember;

    fn name(&self) -> &'static str {
        "rttp"
    }

    fn nodes(&self) -> usize {
        self.servers.len()
    }

    fn pids(&self) -> Vec<u32> {
        (0..self.servers.len()).filter_map(|i| self.pid_of(i)).collect()
    }

    async fn member(&self, node: usize, name: &str, rooms: &[String]) -> RttpMember {
        RttpMember::open(self.servers[node].client, name, rooms).await.expect("an RTTP member")
    }
}
