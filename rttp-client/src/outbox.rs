//! What the user said that the farm has not acknowledged yet, as a pure
//! state machine: each `SAY` carries a tag, the server answers `ACK <tag>
//! <msg-id>`, and until then the line is kept and sent again after every
//! move (REDIRECT, a lost or hung server). Servers drop a resent copy by
//! its nick and tag, so it is delivered once. A line not acknowledged
//! within the bound is given up, and the application is told.
//!
//! Lines go out paced ([`SEND_RATE`], [`SEND_BURST`]), in the order said:
//! after a move, a backlog of waiting lines sent at once would meet the
//! server's SAY rate limit, which drops the excess (`ERR 429`, naming no
//! line), and those lines would wait for the next move or be given up.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;
use rttp_proto::{ClientFrame, MsgId, Room, Text, Token};

use crate::event::Event;

/// Lines kept waiting for their `ACK`, at most: a client that says more
/// while its server does not answer gives up the oldest.
pub const MAX_UNACKED: usize = 1024;
/// Lines sent per second, at most: under a server's default SAY limit
/// (20 a second, bursts of 40), so that a backlog resent after a move is
/// never dropped by it.
pub const SEND_RATE: f64 = 16.0;
/// Lines sent at once, at most (then [`SEND_RATE`]).
pub const SEND_BURST: f64 = 32.0;

/// A line said and not acknowledged yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unacked {
    /// Its tag.
    pub tag: Token,
    /// The room.
    pub room: Room,
    /// The text.
    pub text: Text,
    /// When it was first said.
    pub since: Instant,
    /// Sent on the current connection.
    pub sent: bool,
}

/// Makes the tags of one client: a random prefix (so that two clients of
/// one nick, one after the other, never share a tag) and a counter.
#[derive(Debug)]
pub struct Tags {
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl Tags {
    /// A new series.
    pub fn new() -> Tags {
        let prefix: String = (0..8).map(|_| char::from(b"0123456789abcdef"[rand::rng().random_range(0..16)])).collect();
        Tags { prefix, next: std::sync::atomic::AtomicU64::new(1) }
    }

    /// The next tag: `<prefix>-<n>`.
    pub fn next(&self) -> Token {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Token::new(&format!("{}-{n}", self.prefix)).expect("hex and digits make a token")
    }
}

impl Default for Tags {
    fn default() -> Tags {
        Tags::new()
    }
}

/// The lines waiting for their `ACK`, oldest first.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Unacked>,
    /// Lines that may be sent now, and when it was counted.
    tokens: f64,
    counted: Option<Instant>,
}

impl Default for Outbox {
    fn default() -> Outbox {
        Outbox { queue: VecDeque::new(), tokens: SEND_BURST, counted: None }
    }
}

impl Outbox {
    /// Keeps a line, to be sent by [`Outbox::due`]. Past [`MAX_UNACKED`]
    /// the oldest is given up (its event is returned).
    pub fn say(&mut self, room: Room, text: Text, tag: Token, now: Instant) -> Option<Event> {
        self.queue.push_back(Unacked { tag, room, text, since: now, sent: false });
        let dropped = (self.queue.len() > MAX_UNACKED).then(|| self.queue.pop_front()).flatten();
        dropped.map(|u| gave_up(u, "too many lines waiting"))
    }

    /// The `SAY`s to send now: lines not sent on this connection yet, in
    /// the order said, as many as the pace allows.
    pub fn due(&mut self, now: Instant) -> Vec<ClientFrame> {
        if let Some(then) = self.counted {
            let refill = now.saturating_duration_since(then).as_secs_f64() * SEND_RATE;
            self.tokens = (self.tokens + refill).min(SEND_BURST);
        }
        self.counted = Some(now);
        let mut out = Vec::new();
        for u in self.queue.iter_mut().filter(|u| !u.sent) {
            if self.tokens < 1.0 {
                break;
            }
            self.tokens -= 1.0;
            u.sent = true;
            out.push(ClientFrame::Say { room: u.room, tag: Some(u.tag), text: u.text.clone() });
        }
        out
    }

    /// Whether lines wait to be sent (the pace held them back).
    pub fn has_unsent(&self) -> bool {
        self.queue.iter().any(|u| !u.sent)
    }

    /// The server acknowledged `tag` as `id`; the event, if the tag was ours and waiting.
    pub fn acked(&mut self, tag: Token, id: MsgId) -> Option<Event> {
        let i = self.queue.iter().position(|u| u.tag == tag)?;
        let u = self.queue.remove(i)?;
        Some(Event::Acked { room: u.room, tag, id })
    }

    /// After a move: every waiting line goes again ([`Outbox::due`]), in
    /// the order first said.
    pub fn resend(&mut self) {
        self.queue.iter_mut().for_each(|u| u.sent = false);
    }

    /// Gives up the lines waiting longer than `bound`.
    pub fn expire(&mut self, now: Instant, bound: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        while self.queue.front().is_some_and(|u| now.saturating_duration_since(u.since) > bound) {
            let u = self.queue.pop_front().expect("checked");
            out.push(gave_up(u, &format!("not acknowledged within {bound:?}")));
        }
        out
    }

    /// Forgets the lines of a room the user left.
    pub fn forget_room(&mut self, room: Room) -> Vec<Event> {
        let (gone, kept): (VecDeque<_>, VecDeque<_>) = self.queue.drain(..).partition(|u| u.room == room);
        self.queue = kept;
        gone.into_iter().map(|u| gave_up(u, "left the room")).collect()
    }

    /// Lines waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

fn gave_up(u: Unacked, why: &str) -> Event {
    Event::Unacked { room: u.room, tag: u.tag, text: u.text, reason: why.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> Room {
        "#r".parse().unwrap()
    }

    #[test]
    fn a_line_waits_for_its_ack_and_is_resent_until_then() {
        let (tags, mut o, t0) = (Tags::new(), Outbox::default(), Instant::now());
        let (a, b) = (tags.next(), tags.next());
        assert_ne!(a, b);
        assert!(o.say(room(), Text::from("one"), a, t0).is_none());
        assert_eq!(o.due(t0), vec![ClientFrame::Say { room: room(), tag: Some(a), text: Text::from("one") }]);
        o.say(room(), Text::from("two"), b, t0);
        assert_eq!(o.due(t0).len(), 1, "only the new line");
        assert!(o.due(t0).is_empty(), "sent once per connection");
        o.resend();
        assert_eq!(o.due(t0).len(), 2, "both go again after a move, in order");
        let id: MsgId = "s2:x:9".parse().unwrap();
        assert_eq!(o.acked(b, id), Some(Event::Acked { room: room(), tag: b, id }));
        assert_eq!(o.acked(b, id), None, "a second ACK of the same tag is not news");
        o.resend();
        assert_eq!(o.due(t0), vec![ClientFrame::Say { room: room(), tag: Some(a), text: Text::from("one") }]);
    }

    #[test]
    fn a_backlog_goes_out_at_the_pace_in_order() {
        let (tags, mut o, t0) = (Tags::new(), Outbox::default(), Instant::now());
        for i in 0..100 {
            o.say(room(), Text::from(format!("{i:03}")), tags.next(), t0);
        }
        let text = |f: &ClientFrame| match f {
            ClientFrame::Say { text, .. } => text.as_str().to_string(),
            _ => unreachable!(),
        };
        let first: Vec<String> = o.due(t0).iter().map(text).collect();
        assert_eq!(first.len(), SEND_BURST as usize, "a burst at once");
        assert!(o.has_unsent());
        let next: Vec<String> = o.due(t0 + Duration::from_millis(500)).iter().map(text).collect();
        assert_eq!(next.len(), (SEND_RATE / 2.0) as usize, "then the rate");
        assert_eq!(next[0], format!("{:03}", SEND_BURST as usize), "in the order said");
        let later = o.due(t0 + Duration::from_secs(60)).len();
        assert_eq!(later, SEND_BURST as usize, "a long pause allows a burst, no more");
        let last = o.due(t0 + Duration::from_secs(120)).len();
        assert_eq!(first.len() + next.len() + later + last, 100, "every line went, once");
        assert!(!o.has_unsent());
    }

    #[test]
    fn lines_are_given_up_after_the_bound_or_past_the_cap() {
        let (tags, mut o, t0) = (Tags::new(), Outbox::default(), Instant::now());
        o.say(room(), Text::from("old"), tags.next(), t0);
        o.say(room(), Text::from("new"), tags.next(), t0 + Duration::from_secs(20));
        let gone = o.expire(t0 + Duration::from_secs(31), Duration::from_secs(30));
        assert!(matches!(&gone[..], [Event::Unacked { text, .. }] if text.as_str() == "old"), "{gone:?}");
        assert_eq!(o.len(), 1);
        for _ in 0..MAX_UNACKED {
            o.say(room(), Text::from("x"), tags.next(), t0);
        }
        assert_eq!(o.len(), MAX_UNACKED);
        assert!(o.forget_room(room()).len() == MAX_UNACKED && o.is_empty());
    }
}
