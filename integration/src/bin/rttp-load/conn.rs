//! Our farm as a load target: HELLO and JOIN over the shared frame
//! connection, then deliveries read by [`Wire`], as for NATS.

use std::net::SocketAddr;
use std::time::Duration;

use integration::Farm;
use rttp_conn::hello::Opened;
use rttp_conn::tls::TlsClient;
use rttp_conn::ClientConn;
use rttp_proto::{ClientFrame, Frame, Nick, Room, ServerFrame, Text};

use crate::target::{body, LoadTarget, Member};
use crate::wire::Wire;

/// An RTTP member: its connection (after HELLO and JOIN, read by the same
/// [`Wire`] as the NATS member's) and its rooms.
pub(crate) struct RttpMember {
    wire: Wire,
    rooms: Vec<Room>,
}

impl RttpMember {
    /// Connects, HELLO (WELCOME and FARM_INFO), then joins each room and waits for its own JOINED.
    pub(crate) async fn open(
        tls: Option<&TlsClient>,
        addr: SocketAddr,
        nick: &str,
        rooms: &[String],
    ) -> std::io::Result<RttpMember> {
        let mut conn: ClientConn<_> =
            ClientConn::connect_over(tls, addr, Duration::from_secs(5)).await.map_err(std::io::Error::other)?;
        let nick = Nick::new(nick).map_err(std::io::Error::other)?;
        match conn.hello(nick, Duration::from_secs(10)).await.map_err(std::io::Error::other)? {
            Opened::Session { .. } => {}
            other => return Err(std::io::Error::other(format!("no session: {other:?}"))),
        }
        let rooms: Vec<Room> =
            rooms.iter().map(|r| r.parse().map_err(std::io::Error::other)).collect::<Result<_, _>>()?;
        for room in rooms.iter().copied() {
            conn.write_frame(&ClientFrame::Join { room, after: None }).await.map_err(std::io::Error::other)?;
            loop {
                match conn.read_frame().await.map_err(std::io::Error::other)? {
                    Some(ServerFrame::Joined { room: r, nick: n, .. }) if r == room && n == nick => break,
                    Some(_) => {}
                    None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                }
            }
        }
        let (stream, buf) = conn.into_parts();
        Ok(RttpMember { wire: Wire::new(stream, buf), rooms })
    }
}

/// Whether members speak RTTP over WebSocket (`--transport ws`) to each
/// server's web listener instead of its client port.
pub(crate) static OVER_WS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl RttpMember {
    /// The same over WebSocket: the upgrade, HELLO, then each room's JOIN
    /// up to its own JOINED.
    pub(crate) async fn open_ws(addr: SocketAddr, nick: &str, rooms: &[String]) -> std::io::Result<RttpMember> {
        let mut wire = Wire::websocket(addr).await?;
        wire.send(format!("HELLO 1 {nick}\r\n").as_bytes()).await?;
        let rooms: Vec<Room> =
            rooms.iter().map(|r| r.parse().map_err(std::io::Error::other)).collect::<Result<_, _>>()?;
        for room in &rooms {
            wire.send(format!("JOIN {room}\r\n").as_bytes()).await?;
            let want = format!("JOINED {room} {nick}");
            loop {
                let line = wire.line().await?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
                if line.starts_with(b"ERR ") {
                    return Err(std::io::Error::other(String::from_utf8_lossy(&line).into_owned()));
                }
                // The joiner's own JOINED may name the room's position after.
                if line.strip_prefix(want.as_bytes()).is_some_and(|rest| rest.is_empty() || rest[0] == b' ') {
                    break;
                }
            }
        }
        Ok(RttpMember { wire, rooms })
    }
}

impl Member for RttpMember {
    async fn say(&mut self, room: usize, seq: u64) -> bool {
        let room = self.rooms[room % self.rooms.len()];
        let frame = ClientFrame::Say { room, tag: None, text: Text::from(body(seq)) }.to_bytes();
        self.wire.send(&frame).await.is_ok()
    }

    async fn next(&mut self) -> Option<u64> {
        // `PING <token>` is answered `PONG <token>`.
        self.wire.delivery(|l| l.strip_prefix(b"PING ").map(|token| [&b"PONG "[..], token, b"\r\n"].concat())).await
    }
}

impl LoadTarget for Farm {
    type Member = RttpMember;

    fn name(&self) -> &'static str {
        match (self.tls.is_some(), OVER_WS.load(std::sync::atomic::Ordering::Relaxed)) {
            (_, true) => "rttp-ws",
            (true, false) => "rttp-tls",
            (false, false) => "rttp",
        }
    }

    fn nodes(&self) -> usize {
        self.servers.len()
    }

    fn pids(&self) -> Vec<u32> {
        (0..self.servers.len()).filter_map(|i| self.pid_of(i)).collect()
    }

    async fn member(&self, node: usize, name: &str, rooms: &[String]) -> RttpMember {
        if OVER_WS.load(std::sync::atomic::Ordering::Relaxed) {
            let web = SocketAddr::new(self.servers[node].ip.into(), integration::WEB_PORT);
            return RttpMember::open_ws(web, name, rooms).await.expect("an RTTP member over WebSocket");
        }
        RttpMember::open(self.tls_for(node), self.servers[node].client, name, rooms).await.expect("an RTTP member")
    }
}
