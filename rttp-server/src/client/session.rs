//! The command layer: one session's state, and what each frame does to it.
//! It sees frames, never sockets; replies go to the session's outbound queue.

use std::sync::Arc;
use std::time::Instant;

use rttp_proto::{ClientFrame, DecodeError, ErrCode, Frame, Nick, Room, ServerFrame};

use super::budget::SessionBudget;
use crate::outbound::Outbound;
use crate::rooms::{Member, SessionId, Submitted};
use crate::state::{SessionHandle, Shared};

/// Whether the connection goes on after a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// Close after flushing what is queued; the reason is for the log.
    Close(&'static str),
}

/// One client session on this server.
pub(crate) struct Session {
    pub(super) shared: Arc<Shared>,
    pub(super) out: Arc<Outbound>,
    pub(super) id: SessionId,
    pub(super) nick: Option<Nick>,
    rooms: Vec<Room>,
    /// Frames, bytes and room changes (JOIN, PART: membership churn reaches
    /// every member of the room, so it has a budget of its own). A WHO is
    /// charged the lines and bytes it sends.
    budget: SessionBudget,
    bad_in_row: u32,
    /// Receives every `FARM_INFO` push without a session (`FARM watch`).
    watching: bool,
    /// The client said `QUIT`: it leaves its rooms for good. Without it the
    /// session's end is a move or a loss, and its rooms hear of it only if
    /// it is not back within the presence grace.
    quit: bool,
    /// In token mode, what the session's token allows (boxed: rare, and the
    /// session lives in every connection's future).
    pub(super) grant: Option<Box<crate::token::Grant>>,
    /// A HELLO waiting for the nick's owner (a farm member only).
    pub(super) claim: Option<Box<super::hello::Claim>>,
    /// The random part of the session's WELCOME token.
    pub(super) secret: u64,
}

impl Session {
    pub(crate) fn new(shared: Arc<Shared>, out: Arc<Outbound>) -> Session {
        let cfg = &shared.config;
        let now = Instant::now();
        let budget = SessionBudget::new(cfg, now);
        let id = shared.next_session();
        let secret = rand::random();
        Session {
            shared,
            out,
            id,
            nick: None,
            rooms: Vec::new(),
            budget,
            bad_in_row: 0,
            watching: false,
            quit: false,
            grant: None,
            claim: None,
            secret,
        }
    }

    pub(crate) fn nick(&self) -> Option<Nick> {
        self.nick
    }

    /// Past HELLO, or watching the farm table: not subject to the HELLO timeout.
    pub(crate) fn settled(&self) -> bool {
        self.nick.is_some() || self.watching
    }

    /// Charges one frame of `len` bytes read from the client.
    pub(crate) fn charge(&mut self, len: usize) {
        self.budget.charge(&self.shared.config, 1.0, len as f32, 0.0, Instant::now());
    }

    /// When the session is over its frame or byte budget: the instant its
    /// connection may read again. The connection stops reading until then
    /// (TCP pushes back on the client; nothing is dropped).
    pub(crate) fn paused_until(&self) -> Option<Instant> {
        self.budget.paused_until(&self.shared.config)
    }

    /// Queues a frame to this session.
    pub(crate) fn send(&self, f: &ServerFrame) {
        self.shared.metrics.frames_out(f.verb(), 1);
        self.out.push(f.to_bytes());
    }

    /// Queues an `ERR` (made and counted by the metrics, the one place).
    fn send_err(&self, code: ErrCode, reason: impl AsRef<str>) {
        self.shared.metrics.frames_out("ERR", 1);
        self.out.push(self.shared.metrics.err(code, reason));
    }

    /// Queues an `ERR`, and says whether the connection closes after it.
    pub(crate) fn error(&self, code: ErrCode, reason: impl AsRef<str>) -> Flow {
        self.send_err(code, reason);
        if code.closes() {
            Flow::Close(code.label())
        } else {
            Flow::Continue
        }
    }

    /// The one place that turns a decode error into a reply and decides
    /// whether the connection survives it.
    pub(crate) fn on_decode_error(&mut self, e: &DecodeError) -> Flow {
        let code = e.error.code();
        if e.is_fatal() {
            // Framing is lost: the code is 5xx or we make it close anyway.
            self.send_err(code, e.error.to_string());
            return Flow::Close(code.label());
        }
        self.bad_in_row += 1;
        if self.bad_in_row >= self.shared.config.max_bad_frames {
            self.send_err(code, e.error.to_string());
            return self.error(ErrCode::TooManyErrors, format!("{} malformed frames in a row", self.bad_in_row));
        }
        self.error(code, e.error.to_string())
    }

    /// Applies one frame.
    pub(crate) fn handle(&mut self, frame: ClientFrame) -> Flow {
        self.bad_in_row = 0;
        self.shared.metrics.frame_in(frame.verb());
        if matches!(frame, ClientFrame::Join { .. } | ClientFrame::Part { .. }) {
            self.budget.charge(&self.shared.config, 0.0, 0.0, 1.0, Instant::now());
        }
        match (&frame, self.nick) {
            (ClientFrame::Hello { .. }, None) if self.claim.is_some() => {
                self.error(ErrCode::AlreadyRegistered, "a HELLO is already waiting for its nick")
            }
            (ClientFrame::Hello { version, nick, token, resume }, None) => {
                self.hello(*version, *nick, token.as_ref(), *resume)
            }
            (ClientFrame::Hello { .. }, Some(n)) => {
                self.error(ErrCode::AlreadyRegistered, format!("this session is already {n}"))
            }
            (ClientFrame::Farm { watch }, _) => {
                if *watch && !self.watching {
                    if !self.shared.try_add_watcher() {
                        let max = self.shared.config.max_watchers;
                        return self
                            .error(ErrCode::TooManyConnections, format!("{max} watchers already: try another server"));
                    }
                    self.watching = true;
                    self.shared.sessions.insert(self.id, SessionHandle::new(self.out.clone(), false, 0));
                }
                self.send(&ServerFrame::FarmInfo(self.shared.farm_info()));
                Flow::Continue
            }
            (ClientFrame::Ping { token }, _) => {
                self.send(&ServerFrame::Pong { token: *token });
                Flow::Continue
            }
            (ClientFrame::Pong { .. }, _) => Flow::Continue,
            (ClientFrame::Quit, _) => {
                self.quit = true;
                Flow::Close("quit")
            }
            (_, None) => {
                self.error(ErrCode::NotRegistered, format!("{} needs a session: send HELLO first", frame.verb()))
            }
            (ClientFrame::Join { room, after }, Some(nick)) => self.join(*room, after.as_ref(), nick),
            (ClientFrame::Part { room }, Some(_)) => self.part(*room),
            (ClientFrame::Say { room, tag, text }, Some(nick)) => self.say(*room, nick, *tag, text.clone()),
            (ClientFrame::Who { room }, Some(_)) => self.who(*room),
        }
    }

    /// Sends the client elsewhere (`full`, `drain`) and closes; `ERR 503`
    /// if no other server is UP.
    pub(super) fn redirect(&mut self, reason: &'static str) -> Flow {
        match self.shared.redirect_target() {
            Some((server, addr)) => {
                self.shared.metrics.redirects.inc();
                let token = rttp_proto::Token::new(reason).expect("valid token");
                self.send(&ServerFrame::Redirect { server, addr, reason: token });
                Flow::Close(reason)
            }
            None => self.error(
                ErrCode::Busy,
                format!("server {} is {reason} and no other server is UP", self.shared.config.id),
            ),
        }
    }

    fn join(&mut self, room: Room, after: Option<&rttp_proto::MsgId>, nick: Nick) -> Flow {
        if self.grant.as_ref().is_some_and(|g| !g.allows(&room)) {
            return self.error(ErrCode::Forbidden, format!("your token does not allow {room}"));
        }
        let member = !self.rooms.contains(&room);
        if member && self.rooms.len() >= self.shared.config.max_rooms {
            return self
                .error(ErrCode::TooManyRooms, format!("a session may be in {} rooms", self.shared.config.max_rooms));
        }
        let m = Member { session: self.id, nick, out: self.out.clone() };
        let j = self.shared.rooms.join(&room, m, after);
        if j.new_member {
            // Grow one room at a time: most sessions are in very few rooms.
            self.rooms.reserve_exact(1);
            self.rooms.push(room);
        }
        Flow::Continue
    }

    fn part(&mut self, room: Room) -> Flow {
        let Some(i) = self.rooms.iter().position(|r| *r == room) else {
            return self.error(ErrCode::NotInRoom, format!("you are not in {room}"));
        };
        self.rooms.swap_remove(i);
        self.shared.rooms.part(&room, self.id, true);
        Flow::Continue
    }

    fn say(&mut self, room: Room, nick: Nick, tag: Option<rttp_proto::Token>, text: rttp_proto::Text) -> Flow {
        if !self.budget.take_say(&self.shared.config, Instant::now()) {
            self.shared.metrics.rate_limited.inc();
            let cfg = &self.shared.config;
            return self.error(
                ErrCode::RateLimited,
                format!("SAY dropped: at most {}/s, bursts of {}", cfg.say_rate, cfg.say_burst),
            );
        }
        if !self.rooms.contains(&room) {
            return self.error(ErrCode::NotInRoom, format!("you are not in {room}: JOIN it first"));
        }
        // Rebalancing moves the sessions that have been quiet longest first.
        self.out.mark_said(self.shared.uptime_secs());
        // The room's owner orders it (here, or over the peer link); the ACK
        // follows once the order has it (see rooms::order).
        match self.shared.rooms.submit(&room, self.id, nick, text, tag) {
            Submitted::Ordered(delivered) => self.shared.metrics.frames_out("MSG", delivered as u64),
            Submitted::Waiting | Submitted::NotMember => {}
            Submitted::Busy => {
                return self
                    .error(ErrCode::Busy, format!("{room} is changing owner and too much is waiting: say it again"))
            }
        }
        Flow::Continue
    }

    /// The members of `room`. A WHO costs what it sends: each line is
    /// charged to the frame budget and its bytes to the byte budget, so a
    /// big room's WHO slows the asker's next reads, not the server.
    fn who(&mut self, room: Room) -> Flow {
        let nicks = self.shared.rooms.members(&room);
        let (mut lines, mut bytes) = (1usize, 0usize);
        for chunk in nicks.chunks(rttp_proto::MEMBERS_PER_LINE) {
            let f = ServerFrame::Members { room, nicks: chunk.to_vec() }.to_bytes();
            lines += 1;
            bytes += f.len();
            self.shared.metrics.frames_out("MEMBERS", 1);
            self.out.push(f);
        }
        self.send(&ServerFrame::EndMembers { room, total: nicks.len() as u32 });
        self.budget.charge(&self.shared.config, lines as f32, bytes as f32, 0.0, Instant::now());
        Flow::Continue
    }
}

impl Drop for Session {
    /// Runs on every exit path, a panic included: the session leaves its
    /// rooms (telling the other members: after the presence grace unless it
    /// said `QUIT`) and frees its nick and slot.
    fn drop(&mut self) {
        for room in std::mem::take(&mut self.rooms) {
            if self.quit {
                self.shared.rooms.part(&room, self.id, false);
            } else {
                self.shared.rooms.part_away(&room, self.id);
            }
        }
        if self.watching {
            self.shared.sessions.remove(&self.id);
            self.shared.remove_watcher();
        }
        if let Some(claim) = self.claim.take() {
            // A HELLO still waiting: its answer goes nowhere, its lease back.
            self.give_back(claim.nick);
        }
        if let Some(nick) = self.nick.take() {
            self.give_back(nick);
            self.shared.sessions.remove(&self.id);
            self.shared.remove_user();
        }
    }
}
