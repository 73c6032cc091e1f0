//! The TUI's state, with no terminal: client events and key presses in,
//! actions out. Rendering reads it (view.rs).

use std::collections::VecDeque;

use rttp_client::Event;
use rttp_proto::FarmInfo;

use crate::commands::{parse, Input, HELP};

/// Lines kept per room.
pub(crate) const SCROLLBACK: usize = 2000;
/// Lines of input history kept.
pub(crate) const INPUT_HISTORY: usize = 200;

/// One line of a room's pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) time: String,
    pub(crate) nick: String,
    pub(crate) text: String,
    /// For a line the user said: where it stands.
    pub(crate) mine: Mine,
}

/// Where a line the user said stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Mine {
    /// Not the user's, or acknowledged: a plain line.
    #[default]
    Done,
    /// Waiting for the farm's ACK (shown dimmed); `echoed` once the room
    /// sent it back, so the echo is not shown twice.
    Pending { tag: String, echoed: bool },
    /// Given up without an ACK: it may not have reached the room.
    Failed(String),
}

/// A room as the user sees it.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoomView {
    pub(crate) name: String,
    pub(crate) lines: VecDeque<Line>,
    pub(crate) unread: usize,
    pub(crate) members: Vec<String>,
}

/// What the app asks the client to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Join(String),
    Part(String),
    Say(String, String),
    Who(String),
    Nick(String),
    Quit,
}

/// Everything on screen.
#[derive(Debug, Default)]
pub(crate) struct App {
    pub(crate) nick: String,
    pub(crate) rooms: Vec<RoomView>,
    pub(crate) current: usize,
    pub(crate) input: String,
    pub(crate) history: VecDeque<String>,
    pub(crate) history_pos: Option<usize>,
    pub(crate) server: Option<(String, String)>,
    pub(crate) state: String,
    pub(crate) last_move: Option<String>,
    pub(crate) table: Option<FarmInfo>,
    pub(crate) show_servers: bool,
    pub(crate) scroll: usize,
    pub(crate) notice: Option<String>,
}

impl App {
    pub(crate) fn new(nick: &str) -> App {
        App { nick: nick.to_string(), state: "connecting".into(), ..App::default() }
    }

    pub(crate) fn current_room(&self) -> Option<&str> {
        self.rooms.get(self.current).map(|r| r.name.as_str())
    }

    fn room_mut(&mut self, name: &str) -> &mut RoomView {
        if let Some(i) = self.rooms.iter().position(|r| r.name == name) {
            return &mut self.rooms[i];
        }
        self.rooms.push(RoomView { name: name.to_string(), ..RoomView::default() });
        self.rooms.last_mut().expect("just pushed")
    }

    fn add_line(&mut self, room: &str, nick: &str, text: &str, time: String) {
        let is_current = self.current_room() == Some(room);
        let r = self.room_mut(room);
        r.lines.push_back(Line {
            time,
            nick: nick.to_string(),
            text: crate::escape::escape_controls(text),
            mine: Mine::Done,
        });
        if r.lines.len() > SCROLLBACK {
            r.lines.pop_front();
        }
        if !is_current {
            r.unread += 1;
        }
    }

    /// The user said `text` in `room`, tagged `tag`: shown at once, pending.
    pub(crate) fn said(&mut self, room: &str, text: &str, tag: &str, now: String) {
        let nick = self.nick.clone();
        self.add_line(room, &nick, text, now);
        if let Some(l) = self.room_mut(room).lines.back_mut() {
            l.mine = Mine::Pending { tag: tag.to_string(), echoed: false };
        }
    }

    fn mine_mut(&mut self, room: &str, tag: &str) -> Option<&mut Line> {
        self.room_mut(room).lines.iter_mut().rev().find(|l| matches!(&l.mine, Mine::Pending { tag: t, .. } if t == tag))
    }

    /// Applies a client event; `now` is the time shown (HH:MM:SS).
    pub(crate) fn on_event(&mut self, e: &Event, now: String) {
        match e {
            Event::Resolved { addrs } => self.state = format!("resolved {} addresses", addrs.len()),
            Event::Known { addrs } => self.state = format!("trying {} servers it knew", addrs.len()),
            Event::ConnectedFirst { server, .. } => self.state = format!("first server {server}"),
            Event::Selected { server, stay, .. } => {
                self.state = if *stay { format!("staying on {server}") } else { format!("moving to {server}") }
            }
            Event::Connected { server, addr } => {
                self.server = Some((server.to_string(), addr.to_string()));
                self.state = "connected".into();
            }
            Event::Retry { server, reason } => self.state = format!("retrying {server}: {reason}"),
            Event::Rediscover { .. } => self.state = "asking DNS again".into(),
            Event::Redirected { server, reason, .. } => {
                self.state = "moving".into();
                self.last_move = Some(format!("redirected to {server} ({reason})"));
            }
            Event::Disconnected { server, reason } => {
                self.state = "reconnecting".into();
                self.last_move = Some(format!("lost {server}: {reason}"));
            }
            Event::Rejoined { room, .. } => self.add_line(room.as_str(), "*", "rejoined after a move", now),
            Event::Table(t) => self.table = Some(t.clone()),
            Event::Message { room, nick, text, .. } => {
                // Our own line coming back: it is on screen already, pending.
                let shown = crate::escape::escape_controls(text.as_str());
                let own = (nick.as_str() == self.nick)
                    .then(|| {
                        self.room_mut(room.as_str())
                            .lines
                            .iter_mut()
                            .find(|l| matches!(l.mine, Mine::Pending { echoed: false, .. }) && l.text == shown)
                    })
                    .flatten();
                match own {
                    Some(l) => {
                        if let Mine::Pending { echoed, .. } = &mut l.mine {
                            *echoed = true;
                        }
                    }
                    None => self.add_line(room.as_str(), nick.as_str(), text.as_str(), now),
                }
            }
            Event::Acked { room, tag, .. } => {
                if let Some(l) = self.mine_mut(room.as_str(), tag.as_str()) {
                    l.mine = Mine::Done;
                }
            }
            Event::Unacked { room, tag, reason, .. } => {
                if let Some(l) = self.mine_mut(room.as_str(), tag.as_str()) {
                    l.mine = Mine::Failed(reason.clone());
                }
            }
            Event::Joined { room, nick } => {
                let r = self.room_mut(room.as_str());
                if !r.members.iter().any(|m| m == nick.as_str()) {
                    r.members.push(nick.to_string());
                }
                self.add_line(room.as_str(), "*", &format!("{nick} joined"), now);
            }
            Event::Parted { room, nick } => {
                self.room_mut(room.as_str()).members.retain(|m| m != nick.as_str());
                self.add_line(room.as_str(), "*", &format!("{nick} left"), now);
            }
            Event::Members { room, nicks } => {
                self.room_mut(room.as_str()).members = nicks.iter().map(|n| n.to_string()).collect();
            }
            Event::NickChanged { nick } => {
                self.nick = nick.to_string();
                self.notice = Some(format!("you are now {nick}"));
            }
            // A rejoin whose last message is older than the server keeps:
            // say in plain words that something may be missing.
            Event::ServerError { code: 409, reason } => {
                self.notice = Some(format!("some messages you missed may be gone (the history is shorter): {reason}"))
            }
            Event::ServerError { code, reason } => self.notice = Some(format!("ERR {code} {reason}")),
            Event::Closed { reason } => {
                self.state = "closed".into();
                self.notice = Some(reason.clone());
            }
        }
    }

    /// Applies a submitted input line.
    pub(crate) fn submit(&mut self) -> Option<Action> {
        let line = std::mem::take(&mut self.input);
        self.history_pos = None;
        if !line.is_empty() {
            self.history.push_back(line.clone());
            if self.history.len() > INPUT_HISTORY {
                self.history.pop_front();
            }
        }
        self.notice = None;
        match parse(&line, self.current_room()) {
            Input::Join(r) => {
                self.room_mut(&r);
                self.switch_to(&r);
                Some(Action::Join(r))
            }
            Input::Part(r) => {
                self.rooms.retain(|x| x.name != r);
                self.current = self.current.min(self.rooms.len().saturating_sub(1));
                Some(Action::Part(r))
            }
            Input::Switch(r) => {
                if !self.switch_to(&r) {
                    self.notice = Some(format!("not in {r}: /join it first"));
                }
                None
            }
            Input::Who(r) => Some(Action::Who(r)),
            Input::Say(r, t) => Some(Action::Say(r, t)),
            Input::Servers => {
                self.show_servers = !self.show_servers;
                None
            }
            Input::Nick(n) if n.is_empty() => {
                self.notice = Some("/nick needs a nick".into());
                None
            }
            Input::Nick(n) => Some(Action::Nick(n)),
            Input::Help => {
                self.notice = Some(HELP.into());
                None
            }
            Input::Quit => Some(Action::Quit),
            Input::Nothing => None,
            Input::Bad(why) => {
                self.notice = Some(why);
                None
            }
        }
    }

    fn switch_to(&mut self, room: &str) -> bool {
        match self.rooms.iter().position(|r| r.name == room) {
            Some(i) => {
                self.select(i);
                true
            }
            None => false,
        }
    }

    /// Shows room `i` (Tab, Alt+number).
    pub(crate) fn select(&mut self, i: usize) {
        if i < self.rooms.len() {
            self.current = i;
            self.rooms[i].unread = 0;
            self.scroll = 0;
        }
    }

    /// The next room (Tab).
    pub(crate) fn next_room(&mut self) {
        if !self.rooms.is_empty() {
            self.select((self.current + 1) % self.rooms.len());
        }
    }

    /// Input history: up.
    pub(crate) fn history_up(&mut self) {
        if self.history.is_empty() {
            return;
        }
        let i = self.history_pos.map_or(self.history.len() - 1, |p| p.saturating_sub(1));
        self.history_pos = Some(i);
        self.input = self.history[i].clone();
    }

    /// Input history: down.
    pub(crate) fn history_down(&mut self) {
        match self.history_pos {
            Some(p) if p + 1 < self.history.len() => {
                self.history_pos = Some(p + 1);
                self.input = self.history[p + 1].clone();
            }
            _ => {
                self.history_pos = None;
                self.input.clear();
            }
        }
    }
}
