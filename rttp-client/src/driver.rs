//! The client's I/O driver: one task that performs the connect sequence's
//! commands ([`crate::connect`]) and then carries the live session
//! ([`crate::session`]) over a frame connection, moving it when the
//! session says so. Decisions live in those two state machines; this file
//! only does what they return.

use std::net::SocketAddr;

use rand::Rng;
use rttp_conn::hello::Opened;
use rttp_conn::tls::{Stream, TlsClient};
use rttp_conn::ClientConn;
use rttp_proto::{ClientFrame, ErrCode, FarmInfo, Nick, Room, ServerId, Text, Token};
use tokio::sync::{mpsc, oneshot};

use crate::client::Timers;
use crate::connect::{Cmd, Outcome, Sequence};
use crate::discover::Discovery;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::session::{Move, Session};

/// What the application asks of the session.
#[derive(Debug)]
pub(crate) enum Command {
    Join(Room),
    Part(Room),
    Say(Room, Text, rttp_proto::Token),
    Who(Room),
    Nick(Nick),
    Quit(oneshot::Sender<()>),
}

/// A live connection: where it is and the frames over it.
pub(crate) struct Live {
    conn: ClientConn<Stream>,
    server: ServerId,
    addr: SocketAddr,
}

impl Live {
    async fn send(&mut self, f: &ClientFrame) -> Result<()> {
        self.conn.write_frame(f).await.map_err(|e| Error::conn(self.addr, e))
    }
}

/// How a HELLO on one address ended.
enum Hello {
    Open(Live, FarmInfo),
    Redirected { server: ServerId, addr: SocketAddr, reason: String },
}

/// The driver of one client.
pub(crate) struct Driver {
    pub(crate) discovery: Discovery,
    pub(crate) seq: Sequence,
    pub(crate) timers: Timers,
    pub(crate) events: mpsc::Sender<Event>,
    pub(crate) session: Session,
    /// Sent with every HELLO (a farm in token mode wants one).
    pub(crate) token: Option<rttp_proto::Credential>,
    /// TLS to every server, or none.
    pub(crate) tls: Option<TlsClient>,
    /// The WELCOME token of the last session opened: sent with the next
    /// HELLO, it proves the nick (still held by that session on a hung or
    /// lost server, or by the first server's session) is ours.
    pub(crate) resume: Option<rttp_proto::Token>,
}

impl Driver {
    async fn emit_all(&self, v: impl IntoIterator<Item = Event>) {
        for e in v {
            let _ = self.events.send(e).await;
        }
    }

    /// Runs the connect sequence from its start; returns the live connection.
    pub(crate) async fn connect(&mut self) -> Result<Live> {
        let cmd = self.seq.start();
        self.run_sequence(cmd).await
    }

    /// HELLO as `nick` on `addr`.
    async fn hello(&mut self, addr: SocketAddr, nick: Nick) -> Result<Hello> {
        let mut conn = ClientConn::connect_over(self.tls.as_ref(), addr, self.timers.connect)
            .await
            .map_err(|e| Error::conn(addr, e))?;
        let opened = conn
            .hello_with(nick, self.token.as_ref(), self.resume, self.timers.hello)
            .await
            .map_err(|e| Error::hello(addr, e))?;
        match opened {
            Opened::Session { server, table, session } => {
                self.resume = Some(session);
                Ok(Hello::Open(Live { conn, server, addr }, table))
            }
            Opened::Redirected { server, addr: to, reason } => match to.as_str().parse::<SocketAddr>() {
                Ok(to) => Ok(Hello::Redirected { server, addr: to, reason: reason.to_string() }),
                Err(_) => Err(Error::Redirected { addr, server, reason: format!("{reason}, to an unusable {to}") }),
            },
            Opened::Refused { code, .. } if code == ErrCode::NickInUse.as_u16() => {
                Err(Error::NickInUse(nick.to_string()))
            }
            Opened::Refused { code, reason } if code == ErrCode::AuthFailed.as_u16() => {
                Err(Error::Unauthorized(reason))
            }
            Opened::Refused { code, reason } => Err(Error::Refused { addr, code, reason }),
        }
    }

    /// One HELLO as the connect sequence sees it: a fatal error ends the
    /// sequence; anything else is an outcome.
    async fn attempt(&mut self, addr: SocketAddr, first: bool) -> Result<(Outcome, Option<Live>)> {
        let nick = self.session.nick();
        let fail = |e: String| if first { Outcome::First(Err(e)) } else { Outcome::Chosen(Err(e)) };
        Ok(match self.hello(addr, nick).await {
            Ok(Hello::Open(live, table)) if first => (Outcome::First(Ok((live.server, table))), Some(live)),
            Ok(Hello::Open(live, table)) => {
                self.seq.table = Some(table);
                (Outcome::Chosen(Ok(())), Some(live))
            }
            Ok(Hello::Redirected { server, addr, reason }) => (Outcome::Redirected { server, addr, reason }, None),
            // Another server would refuse the same nick or token: stop here.
            Err(e) if e.ends_sequence(self.resume.is_some()) => return Err(e),
            Err(e) => (fail(e.to_string()), None),
        })
    }

    /// Drives the connect sequence from `cmd` until a session is ready.
    async fn run_sequence(&mut self, mut cmd: Cmd) -> Result<Live> {
        let mut open: Option<Live> = None;
        loop {
            let outcome = match cmd {
                Cmd::Resolve => Outcome::Resolved(self.discovery.resolve().await.map_err(|e| e.to_string())),
                Cmd::ConnectFirst(addr) => {
                    let (o, live) = self.attempt(addr, true).await?;
                    open = live;
                    o
                }
                Cmd::ConnectChosen { addr, .. } => {
                    if let Some(mut first) = open.take() {
                        let _ = first.send(&ClientFrame::Quit).await;
                    }
                    let (o, live) = self.attempt(addr, false).await?;
                    open = live;
                    o
                }
                Cmd::Wait(d) => {
                    tokio::time::sleep(d).await;
                    Outcome::Waited
                }
                Cmd::Ready { .. } => {
                    let live = open.take().ok_or(Error::NoServer)?;
                    let table = self.seq.table.clone().map(Event::Table);
                    self.emit_all([Event::Connected { server: live.server, addr: live.addr }].into_iter().chain(table))
                        .await;
                    return Ok(live);
                }
                Cmd::GiveUp { rounds, last } => {
                    let e = Error::GaveUp { rounds, last };
                    self.emit_all([Event::Closed { reason: e.to_string() }]).await;
                    return Err(e);
                }
            };
            let mut ev = Vec::new();
            cmd = self.seq.on(outcome, &mut ev);
            self.emit_all(ev).await;
        }
    }

    /// After a move: every room again, replaying after the last id seen.
    async fn rejoin(&mut self, live: &mut Live) -> Result<()> {
        for (frame, event) in self.session.rejoin() {
            live.send(&frame).await?;
            self.emit_all([event]).await;
        }
        Ok(())
    }

    /// Carries the session until the application quits or the farm is gone.
    pub(crate) async fn run(mut self, mut live: Live, mut rx: mpsc::Receiver<Command>) {
        let mut ping = tokio::time::interval(self.timers.ping_every);
        // After a stall (a busy process, a phone asleep), one tick, not one
        // per period missed: a session that wakes with its frames waiting
        // stays, and must not then send a PING for every missed period.
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Lines held back by the outbox's pace go out on this beat.
        let mut pace = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / crate::outbox::SEND_RATE));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = tokio::time::Instant::now();
        let token = Token::new("c").expect("valid token");
        loop {
            let moved: Option<Move> = tokio::select! {
                c = rx.recv() => match c {
                    None => { let _ = live.send(&ClientFrame::Quit).await; return }
                    Some(Command::Quit(done)) => {
                        let _ = live.send(&ClientFrame::Quit).await;
                        self.emit_all([Event::Closed { reason: "quit".into() }]).await;
                        let _ = done.send(());
                        return;
                    }
                    Some(c) => self.command(&mut live, c).await.err().map(|e| Move::Lost(e.to_string())),
                },
                f = live.conn.read_frame() => {
                    heard = tokio::time::Instant::now();
                    self.on_read(&mut live, f).await
                }
                _ = pace.tick(), if self.session.outbox.has_unsent() => {
                    self.send_due(&mut live).await.err().map(|e| Move::Lost(e.to_string()))
                }
                _ = ping.tick() => {
                    let gone = self.session.outbox.expire(std::time::Instant::now(), self.timers.give_up_after);
                    self.emit_all(gone).await;
                    if heard.elapsed() > self.timers.silence {
                        // Silent, or this task was not run for a while (a
                        // busy process, a phone waking up) while frames
                        // waited in the socket, and the tick won the draw
                        // against them: a frame that is already here means
                        // the server is not silent.
                        match waiting_frame(&mut live).await {
                            Some(f) => {
                                heard = tokio::time::Instant::now();
                                self.on_read(&mut live, f).await
                            }
                            None => Some(Move::Lost(format!("no frame for {:?}", self.timers.silence))),
                        }
                    } else {
                        live.send(&ClientFrame::Ping { token }).await.err().map(|e| Move::Lost(e.to_string()))
                    }
                }
            };
            let m = match moved {
                None => continue,
                Some(Move::End(reason)) => {
                    self.emit_all([Event::Closed { reason }]).await;
                    return;
                }
                Some(m) => m,
            };
            match self.relocate(m, live.server).await {
                Ok(next) => {
                    live = next;
                    heard = tokio::time::Instant::now();
                }
                Err(e) => {
                    self.emit_all([Event::Closed { reason: e.to_string() }]).await;
                    return;
                }
            }
        }
    }

    /// Moves the session off `from`, then rejoins every room.
    async fn relocate(&mut self, m: Move, from: ServerId) -> Result<Live> {
        let cmd = match m {
            Move::Redirect { server, addr, reason } => {
                self.emit_all([Event::Redirected { server, addr, reason }]).await;
                self.seq.start_redirect(server, addr, from)
            }
            // `run` ends the session on End; treated as a loss if it ever gets here.
            Move::Lost(reason) | Move::End(reason) => {
                self.emit_all([Event::Disconnected { server: from, reason }]).await;
                // Jittered, so that the clients of a dead server do not land in one burst.
                let pause = self.timers.reconnect_jitter.mul_f64(rand::rng().random_range(0.0..1.0));
                tokio::time::sleep(pause).await;
                let mut ev = Vec::new();
                let cmd = match self.seq.table.clone() {
                    Some(t) => self.seq.start_from_table(t, &[from], &mut ev),
                    None => self.seq.start(),
                };
                self.emit_all(ev).await;
                cmd
            }
        };
        let mut next = self.run_sequence(cmd).await?;
        // A failure here means the new server is gone already: the next turn notices.
        if self.rejoin(&mut next).await.is_ok() {
            // What the last server did not acknowledge goes again; servers
            // drop a copy they already had, by nick and tag.
            self.session.outbox.resend();
            let _ = self.send_due(&mut next).await;
        }
        Ok(next)
    }

    /// What a read brought: a frame to handle, or the end of the session.
    async fn on_read(
        &mut self,
        live: &mut Live,
        f: std::result::Result<Option<rttp_proto::ServerFrame>, rttp_conn::ConnError>,
    ) -> Option<Move> {
        match f {
            Ok(Some(f)) => self.frame(live, f).await,
            Ok(None) => Some(Move::Lost(Error::Closed { addr: live.addr }.to_string())),
            Err(e) => Some(Move::Lost(Error::conn(live.addr, e).to_string())),
        }
    }

    async fn frame(&mut self, live: &mut Live, f: rttp_proto::ServerFrame) -> Option<Move> {
        let r = self.session.on_frame(f);
        for e in &r.events {
            if let Event::Table(t) = e {
                self.seq.table = Some(t.clone());
            }
        }
        self.emit_all(r.events).await;
        if let Some(reply) = r.reply {
            if let Err(e) = live.send(&reply).await {
                return Some(Move::Lost(e.to_string()));
            }
        }
        r.moved
    }

    async fn command(&mut self, live: &mut Live, c: Command) -> Result<()> {
        match c {
            Command::Join(room) => live.send(&self.session.join(room)).await,
            Command::Part(room) => {
                let (frame, gone) = self.session.part(room);
                self.emit_all(gone).await;
                live.send(&frame).await
            }
            Command::Say(room, text, tag) => {
                let dropped = self.session.say(room, text, tag, std::time::Instant::now());
                self.emit_all(dropped).await;
                self.send_due(live).await
            }
            Command::Who(room) => live.send(&ClientFrame::Who { room }).await,
            Command::Nick(nick) => self.change_nick(live, nick).await,
            Command::Quit(_) => Ok(()),
        }
    }

    /// Sends the lines the outbox's pace allows now.
    async fn send_due(&mut self, live: &mut Live) -> Result<()> {
        for frame in self.session.outbox.due(std::time::Instant::now()) {
            live.send(&frame).await?;
        }
        Ok(())
    }

    /// A new session under `nick` on the same server, back in every room;
    /// the old one quits only after the new one has rejoined, so nothing is missed.
    async fn change_nick(&mut self, live: &mut Live, nick: Nick) -> Result<()> {
        let refused = |code: u16, reason: String| Event::ServerError { code, reason };
        match self.hello(live.addr, nick).await {
            Ok(Hello::Open(mut next, table)) => {
                self.seq.table = Some(table);
                self.rejoin(&mut next).await?;
                let mut old = std::mem::replace(live, next);
                let _ = old.send(&ClientFrame::Quit).await;
                self.session.set_nick(nick);
                self.emit_all([Event::NickChanged { nick }]).await;
            }
            Ok(Hello::Redirected { server, reason, .. }) => {
                let why = format!("the server sent the new session to {server} ({reason}); keeping the old one");
                self.emit_all([refused(ErrCode::Busy.as_u16(), why)]).await;
            }
            Err(Error::NickInUse(n)) => {
                self.emit_all([refused(ErrCode::NickInUse.as_u16(), format!("nick {n} is in use"))]).await
            }
            Err(Error::Refused { code, reason, .. }) => self.emit_all([refused(code, reason)]).await,
            Err(other) => self.emit_all([refused(ErrCode::Internal.as_u16(), other.to_string())]).await,
        }
        Ok(())
    }
}

/// A read that completes without waiting (bytes or an end already in the
/// socket), if there is one. Outside tokio's budget: a task that was just
/// starved must still see what waits for it.
async fn waiting_frame(
    live: &mut Live,
) -> Option<std::result::Result<Option<rttp_proto::ServerFrame>, rttp_conn::ConnError>> {
    tokio::time::timeout(std::time::Duration::ZERO, tokio::task::unconstrained(live.conn.read_frame())).await.ok()
}
