//! The client: a builder, a handle to join, part and say, and a stream of
//! [`Event`]s. One task per client drives the connect sequence and then the
//! session: it follows REDIRECTs, survives the loss of its server, rejoins
//! every room after a move and shows each message once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use rttp_proto::select::Strategy;
use rttp_proto::{
    ClientFrame, FarmInfo, Group, MsgId, Nick, Room, ServerFrame, ServerId, Text, Token, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::conn::Conn;
use crate::connect::{Cmd, Limits, Outcome, Sequence};
use crate::discover::Discovery;
use crate::error::{Error, Result};
use crate::event::Event;

/// The client's timers.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// Time allowed to connect to a server.
    pub connect: Duration,
    /// Time allowed for WELCOME and FARM_INFO after HELLO.
    pub hello: Duration,
    /// How often a silent session sends PING.
    pub ping_every: Duration,
    /// Silence after which the server counts as lost.
    pub silence: Duration,
    /// Upper bound of the jittered pause before reconnecting after a loss,
    /// so that the clients of a dead server do not land in one burst.
    pub reconnect_jitter: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            connect: Duration::from_secs(2),
            hello: Duration::from_secs(3),
            ping_every: Duration::from_secs(2),
            silence: Duration::from_secs(6),
            reconnect_jitter: Duration::from_millis(500),
        }
    }
}

/// Messages remembered per room for dropping duplicates after a move.
pub const DEDUP_PER_ROOM: usize = 4096;
/// Events buffered for the application before the session waits for it.
pub const EVENT_QUEUE: usize = 4096;

/// Builds a [`Client`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    discovery: Option<Discovery>,
    strategy: Strategy,
    group: Option<Group>,
    nick: Option<String>,
    limits: Limits,
    timers: Timers,
    seed: Option<u64>,
}

/// A connected client. Dropping it closes the session.
#[derive(Debug)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
enum Command {
    Join(Room),
    Part(Room),
    Say(Room, Text),
    Who(Room),
    Nick(Nick),
    Quit(oneshot::Sender<()>),
}

impl Client {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            discovery: None,
            strategy: Strategy::P2c,
            group: None,
            nick: None,
            limits: Limits::default(),
            timers: Timers::default(),
            seed: None,
        }
    }

    async fn cmd(&self, c: Command) -> Result<()> {
        self.tx.send(c).await.map_err(|_| Error::ClientClosed)
    }

    /// Joins a room (and rejoins it after every move).
    pub async fn join(&self, room: &str) -> Result<()> {
        self.cmd(Command::Join(room.parse().map_err(|e| Error::Invalid(format!("{e}")))?)).await
    }

    /// Leaves a room.
    pub async fn part(&self, room: &str) -> Result<()> {
        self.cmd(Command::Part(room.parse().map_err(|e| Error::Invalid(format!("{e}")))?)).await
    }

    /// Says text in a room.
    pub async fn say(&self, room: &str, text: &str) -> Result<()> {
        let room = room.parse().map_err(|e| Error::Invalid(format!("{e}")))?;
        self.cmd(Command::Say(room, Text::from(text))).await
    }

    /// Asks for a room's members; they arrive as [`Event::Members`].
    pub async fn who(&self, room: &str) -> Result<()> {
        self.cmd(Command::Who(room.parse().map_err(|e| Error::Invalid(format!("{e}")))?)).await
    }

    /// Changes nick: a new session under the new nick on the same server,
    /// back in every room; the old session then ends. A taken nick is an
    /// [`Event::ServerError`] 433 and the old session stays.
    pub async fn nick(&self, nick: &str) -> Result<()> {
        self.cmd(Command::Nick(Nick::new(nick).map_err(|e| Error::Invalid(format!("{e}")))?)).await
    }

    /// Ends the session and waits for the client's task.
    pub async fn quit(self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Quit(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        let _ = self.task.await;
    }
}

impl ClientBuilder {
    /// Finds the farm by DNS: `name` (A/AAAA) with `port`.
    pub fn service(mut self, name: &str, port: u16) -> Self {
        let (server, srv) = match &self.discovery {
            Some(Discovery::Dns { server, srv, .. }) => (*server, *srv),
            _ => (None, false),
        };
        self.discovery = Some(Discovery::Dns { name: name.to_string(), port, server, srv });
        self
    }

    /// Asks this DNS server instead of the system's.
    pub fn dns(mut self, server: SocketAddr) -> Self {
        if let Some(Discovery::Dns { server: s, .. }) = &mut self.discovery {
            *s = Some(server);
        } else {
            self.discovery = Some(Discovery::Dns { name: String::new(), port: 7000, server: Some(server), srv: false });
        }
        self
    }

    /// Tries SRV `_rttp._tcp.<zone>` before A/AAAA.
    pub fn srv(mut self, on: bool) -> Self {
        if let Some(Discovery::Dns { srv, .. }) = &mut self.discovery {
            *srv = on;
        }
        self
    }

    /// Skips DNS: connects first to these addresses, in order.
    pub fn bootstrap(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.discovery = Some(Discovery::Direct(addrs));
        self
    }

    /// The selection strategy (default p2c).
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.strategy = s;
        self
    }

    /// The client's own group (zone or region).
    pub fn group(mut self, g: &str) -> Self {
        self.group = Group::new(g).ok();
        self
    }

    /// The nick.
    pub fn nick(mut self, n: &str) -> Self {
        self.nick = Some(n.to_string());
        self
    }

    /// Bounds of the connect sequence.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }

    /// Timers.
    pub fn timers(mut self, t: Timers) -> Self {
        self.timers = t;
        self
    }

    /// A fixed seed for the client's choices (tests).
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = Some(s);
        self
    }

    /// Runs the connect sequence; returns once a session is established,
    /// with the events of every step so far already in the stream.
    pub async fn connect(self) -> Result<(Client, mpsc::Receiver<Event>)> {
        let nick = self.nick.clone().ok_or_else(|| Error::Invalid("a nick is required".into()))?;
        let nick = Nick::new(&nick).map_err(|e| Error::Invalid(format!("{e}")))?;
        let discovery = match &self.discovery {
            Some(Discovery::Dns { name, .. }) if name.is_empty() => {
                return Err(Error::Invalid("dns() needs service() too".into()))
            }
            Some(d) => d.clone(),
            None => return Err(Error::Invalid("give service() or bootstrap()".into())),
        };
        let seed = self.seed.unwrap_or_else(|| rand::rng().random());
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let mut driver = Driver {
            discovery,
            nick,
            seq: Sequence::new(self.strategy, self.group, self.limits, seed),
            timers: self.timers,
            events: events_tx,
            rooms: Vec::new(),
            last_id: HashMap::new(),
            seen: Dedup::default(),
            members: HashMap::new(),
        };
        let cmd = driver.seq.start();
        let session = driver.run_sequence(cmd).await?;
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(driver.session(session, rx));
        Ok((Client { tx, task }, events_rx))
    }
}

/// The msg-ids seen per room, to show each message once across moves; at
/// most [`DEDUP_PER_ROOM`] per room, the oldest forgotten first.
#[derive(Debug, Default)]
struct Dedup {
    rooms: HashMap<Room, (HashSet<MsgId>, VecDeque<MsgId>)>,
}

impl Dedup {
    /// Whether a message is new (and remembers it).
    fn first_sight(&mut self, room: Room, id: MsgId) -> bool {
        let (set, order) = self.rooms.entry(room).or_default();
        if !set.insert(id) {
            return false;
        }
        order.push_back(id);
        if order.len() > DEDUP_PER_ROOM {
            if let Some(old) = order.pop_front() {
                set.remove(&old);
            }
        }
        true
    }
}

/// A live session: its connection and where it is.
struct Live {
    conn: Conn,
    server: ServerId,
    addr: SocketAddr,
}

struct Driver {
    discovery: Discovery,
    nick: Nick,
    seq: Sequence,
    timers: Timers,
    events: mpsc::Sender<Event>,
    rooms: Vec<Room>,
    last_id: HashMap<Room, MsgId>,
    seen: Dedup,
    members: HashMap<Room, Vec<Nick>>,
}

impl Driver {
    async fn emit(&self, e: Event) {
        let _ = self.events.send(e).await;
    }

    async fn emit_all(&self, v: Vec<Event>) {
        for e in v {
            self.emit(e).await;
        }
    }

    /// HELLO on `addr`: the connection, the server's id and its table.
    async fn hello(&self, addr: SocketAddr) -> std::result::Result<(Conn, ServerId, FarmInfo), Error> {
        let mut conn = Conn::connect(addr, self.timers.connect).await?;
        conn.send(&ClientFrame::Hello { version: PROTOCOL_VERSION, nick: self.nick }).await?;
        let server = match conn.recv_within(self.timers.hello).await? {
            ServerFrame::Welcome { server, .. } => server,
            ServerFrame::Err { code: 433, .. } => return Err(Error::NickInUse(self.nick.to_string())),
            ServerFrame::Err { code, reason } => return Err(Error::Refused { addr, code, reason }),
            ServerFrame::Redirect { server, reason, .. } => {
                return Err(Error::Refused { addr, code: 0, reason: format!("redirected to {server} ({reason})") })
            }
            other => return Err(Error::Protocol { addr, reason: format!("expected WELCOME, got {}", verb(&other)) }),
        };
        match conn.recv_within(self.timers.hello).await? {
            ServerFrame::FarmInfo(t) => Ok((conn, server, t)),
            other => Err(Error::Protocol { addr, reason: format!("expected FARM_INFO, got {}", verb(&other)) }),
        }
    }

    /// Drives the connect sequence from `cmd` until a session is ready.
    async fn run_sequence(&mut self, mut cmd: Cmd) -> Result<Live> {
        let mut first: Option<Live> = None;
        let mut chosen: Option<Live> = None;
        loop {
            let mut ev = Vec::new();
            let outcome = match cmd {
                Cmd::Resolve => Outcome::Resolved(self.discovery.resolve().await.map_err(|e| e.to_string())),
                Cmd::ConnectFirst(addr) => match self.hello(addr).await {
                    Ok((conn, server, table)) => {
                        first = Some(Live { conn, server, addr });
                        Outcome::First(Ok((server, table)))
                    }
                    Err(e @ Error::NickInUse(_)) => return Err(e),
                    Err(e) => Outcome::First(Err(e.to_string())),
                },
                Cmd::ConnectChosen { server: _, addr } => {
                    if let Some(mut f) = first.take() {
                        let _ = f.conn.send(&ClientFrame::Quit).await;
                    }
                    match self.hello(addr).await {
                        Ok((conn, server, table)) => {
                            self.seq.table = Some(table);
                            chosen = Some(Live { conn, server, addr });
                            Outcome::Chosen(Ok(()))
                        }
                        Err(e @ Error::NickInUse(_)) => return Err(e),
                        Err(e) => Outcome::Chosen(Err(e.to_string())),
                    }
                }
                Cmd::Wait(d) => {
                    tokio::time::sleep(d).await;
                    Outcome::Waited
                }
                Cmd::Ready { .. } => {
                    let live = chosen.take().or(first.take()).ok_or(Error::NoServer)?;
                    self.emit(Event::Connected { server: live.server, addr: live.addr }).await;
                    if let Some(t) = self.seq.table.clone() {
                        self.emit(Event::Table(t)).await;
                    }
                    return Ok(live);
                }
                Cmd::GiveUp { rounds, last } => {
                    let e = Error::GaveUp { rounds, last };
                    self.emit(Event::Closed { reason: e.to_string() }).await;
                    return Err(e);
                }
            };
            cmd = self.seq.on(outcome, &mut ev);
            self.emit_all(ev).await;
        }
    }

    /// After a move: every room again, replaying after the last id seen.
    async fn rejoin(&mut self, live: &mut Live) -> Result<()> {
        for room in self.rooms.clone() {
            let after = self.last_id.get(&room).copied();
            live.conn.send(&ClientFrame::Join { room, after }).await?;
            self.emit(Event::Rejoined { room, after }).await;
        }
        Ok(())
    }

    async fn session(mut self, mut live: Live, mut rx: mpsc::Receiver<Command>) {
        let mut ping = tokio::time::interval(self.timers.ping_every);
        let mut heard = tokio::time::Instant::now();
        let token = Token::new("c").expect("valid token");
        loop {
            // Why the session must move, if it must.
            let moved: Option<Move> = tokio::select! {
                c = rx.recv() => match c {
                    None => { let _ = live.conn.send(&ClientFrame::Quit).await; return }
                    Some(Command::Quit(done)) => {
                        let _ = live.conn.send(&ClientFrame::Quit).await;
                        self.emit(Event::Closed { reason: "quit".into() }).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(&mut live, c).await.err().map(|e| Move::Lost(e.to_string())),
                },
                f = live.conn.recv() => {
                    heard = tokio::time::Instant::now();
                    match f {
                        Ok(f) => self.frame(&mut live, f).await,
                        Err(e) => Some(Move::Lost(e.to_string())),
                    }
                }
                _ = ping.tick() => {
                    if heard.elapsed() > self.timers.silence {
                        Some(Move::Lost(format!("no frame for {:?}", self.timers.silence)))
                    } else {
                        live.conn.send(&ClientFrame::Ping { token }).await.err().map(|e| Move::Lost(e.to_string()))
                    }
                }
            };
            let Some(m) = moved else { continue };
            let cmd = match m {
                Move::Redirect { server, addr, reason } => {
                    self.emit(Event::Redirected { server, addr, reason }).await;
                    self.seq.start_redirect(server, addr, live.server)
                }
                Move::Lost(reason) => {
                    self.emit(Event::Disconnected { server: live.server, reason }).await;
                    let pause = self.timers.reconnect_jitter.mul_f64(rand::rng().random_range(0.0..1.0));
                    tokio::time::sleep(pause).await;
                    let mut ev = Vec::new();
                    let cmd = match self.seq.table.clone() {
                        Some(t) => self.seq.start_from_table(t, &[live.server], &mut ev),
                        None => self.seq.start(),
                    };
                    self.emit_all(ev).await;
                    cmd
                }
            };
            match self.run_sequence(cmd).await {
                Ok(mut next) => {
                    if self.rejoin(&mut next).await.is_err() {
                        // The new server is gone already: the next loop turn notices.
                    }
                    live = next;
                    heard = tokio::time::Instant::now();
                }
                Err(e) => {
                    self.emit(Event::Closed { reason: e.to_string() }).await;
                    return;
                }
            }
        }
    }

    async fn command(&mut self, live: &mut Live, c: Command) -> Result<()> {
        match c {
            Command::Join(room) => {
                if !self.rooms.contains(&room) {
                    self.rooms.push(room);
                }
                live.conn.send(&ClientFrame::Join { room, after: None }).await
            }
            Command::Part(room) => {
                self.rooms.retain(|r| *r != room);
                live.conn.send(&ClientFrame::Part { room }).await
            }
            Command::Say(room, text) => live.conn.send(&ClientFrame::Say { room, text }).await,
            Command::Who(room) => live.conn.send(&ClientFrame::Who { room }).await,
            Command::Nick(nick) => {
                let old = std::mem::replace(&mut self.nick, nick);
                match self.hello(live.addr).await {
                    Ok((conn, server, table)) => {
                        // JOIN under the new nick is sent before the old session
                        // quits, so the new session does not miss messages.
                        let mut next = Live { conn, server, addr: live.addr };
                        self.seq.table = Some(table);
                        self.rejoin(&mut next).await?;
                        let mut old_live = std::mem::replace(live, next);
                        let _ = old_live.conn.send(&ClientFrame::Quit).await;
                        self.emit(Event::NickChanged { nick }).await;
                        Ok(())
                    }
                    Err(e) => {
                        self.nick = old;
                        let (code, reason) = match e {
                            Error::NickInUse(n) => (433, format!("nick {n} is in use")),
                            other => (0, other.to_string()),
                        };
                        self.emit(Event::ServerError { code, reason }).await;
                        Ok(())
                    }
                }
            }
            Command::Quit(_) => Ok(()),
        }
    }

    async fn frame(&mut self, live: &mut Live, f: ServerFrame) -> Option<Move> {
        match f {
            ServerFrame::Msg { room, id, nick, text } => {
                if self.seen.first_sight(room, id) {
                    self.last_id.insert(room, id);
                    self.emit(Event::Message { room, id, nick, text }).await;
                }
            }
            ServerFrame::Joined { room, nick } => self.emit(Event::Joined { room, nick }).await,
            ServerFrame::Parted { room, nick } => self.emit(Event::Parted { room, nick }).await,
            ServerFrame::Members { room, nicks } => self.members.entry(room).or_default().extend(nicks),
            ServerFrame::EndMembers { room, .. } => {
                let nicks = self.members.remove(&room).unwrap_or_default();
                self.emit(Event::Members { room, nicks }).await;
            }
            ServerFrame::FarmInfo(t) => {
                self.seq.table = Some(t.clone());
                self.emit(Event::Table(t)).await;
            }
            ServerFrame::Ping { token } => {
                if let Err(e) = live.conn.send(&ClientFrame::Pong { token }).await {
                    return Some(Move::Lost(e.to_string()));
                }
            }
            ServerFrame::Redirect { server, addr, reason } => {
                return match addr.as_str().parse::<SocketAddr>() {
                    Ok(addr) => Some(Move::Redirect { server, addr, reason: reason.to_string() }),
                    Err(_) => Some(Move::Lost(format!("redirected to an unusable address {addr}"))),
                };
            }
            ServerFrame::Err { code, reason } => {
                self.emit(Event::ServerError { code, reason: reason.clone() }).await;
                if code >= 500 {
                    return Some(Move::Lost(format!("ERR {code} {reason}")));
                }
            }
            ServerFrame::Welcome { .. } | ServerFrame::Pong { .. } => {}
        }
        None
    }
}

enum Move {
    Redirect { server: ServerId, addr: SocketAddr, reason: String },
    Lost(String),
}

fn verb(f: &ServerFrame) -> &'static str {
    use rttp_proto::Frame;
    f.verb()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_dropped_per_room_within_the_bound() {
        let mut d = Dedup::default();
        let (a, b) = ("#a".parse::<Room>().unwrap(), "#b".parse::<Room>().unwrap());
        let id = |n: usize| MsgId::new(&format!("s1:g:{n}")).unwrap();
        assert!(d.first_sight(a, id(0)));
        assert!(!d.first_sight(a, id(0)), "the same id twice in a room");
        assert!(d.first_sight(b, id(0)), "rooms are separate");
        for n in 1..=DEDUP_PER_ROOM {
            assert!(d.first_sight(a, id(n)));
        }
        // id(0) was the oldest of DEDUP_PER_ROOM + 1: forgotten, memory bounded.
        assert_eq!(d.rooms[&a].0.len(), DEDUP_PER_ROOM);
        assert!(d.first_sight(a, id(0)));
        assert!(!d.first_sight(a, id(DEDUP_PER_ROOM)), "recent ids are still remembered");
    }
}
