//! A room's owner holds new messages while it may lack part of the room's
//! order: a peer newly interested in a room with history has not synced, or
//! the server has just started and not yet reached the farm. No sockets:
//! peers are bare link queues.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::order_tests::{farm, id, last_lines, room_owned_by, sent, tag, text};
use super::tests::{frames, member};
use super::*;
use crate::metrics::Metrics;

/// s1 alone (just started: holding its rooms for a minute when `hold`),
/// owning a room with member `a` in it; the JOINED read.
fn lone_owner(hold: bool) -> (Rooms, Room, Member) {
    let mut r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 100, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    r.set_takeover_wait(Duration::from_secs(60));
    if hold {
        r.hold_at_start(Duration::from_secs(60));
    }
    r.rehome(vec![id("s1")]);
    let room = room_owned_by("s1", "s1");
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    frames(&a);
    (r, room, a)
}

#[test]
fn an_owner_holds_new_messages_until_a_newly_interested_peer_has_synced() {
    // s1 restarted and was alone for a moment: it owns the room and ordered
    // a message its member said. s8 comes back with the room's older
    // messages. What s1's member says next waits until s8 synced, so that
    // s8 gets the lone message before the next one, as s1 has them.
    let (r, room, a) = lone_owner(false);
    assert_eq!(r.submit(&room, 1, a.nick, text("alone"), tag("t1")), Submitted::Ordered(1));
    let l8 = Outbound::new(1 << 20);
    r.link_up(id("s8"), l8.clone());
    r.rehome(vec![id("s1"), id("s8")]);
    r.remote_interest(id("s8"), room, true);
    assert_eq!(r.submit(&room, 1, a.nick, text("next"), tag("t2")), Submitted::Waiting, "held until s8 synced");
    let early: Vec<String> = sent(&l8).into_iter().filter(|f| f.contains("\r\nnext\r\n")).collect();
    assert!(early.is_empty(), "nothing new reaches s8 before its SYNCED: {early:?}");
    let b = Nick::new("b").unwrap();
    r.remote_tail(id("s8"), room, Token::new("s9:x:1").unwrap(), b, None, text("old"));
    r.remote_synced(id("s8"), room, Some(Token::new("s9:x:1").unwrap()));
    let texts = last_lines(sent(&l8));
    assert_eq!(texts, ["alone", "next"], "s8 gets the lone message, then the next one");
    r.flush_shown();
    let here = last_lines(frames(&a));
    assert_eq!(here, ["alone", "ACK t1 s1:g:1", "old", "next", "ACK t2 s1:g:3"], "s1's order is the same");
}

#[test]
fn a_peer_whose_first_member_joins_a_quiet_room_holds_nothing() {
    // No history yet: a new peer's interest makes nobody wait.
    let (r, room, a, _l8, _l9) = farm("s1", "s1");
    r.remote_interest(id("s8"), room, false);
    r.remote_interest(id("s8"), room, true);
    assert_eq!(r.submit(&room, 1, a.nick, text("hi"), tag("t1")), Submitted::Ordered(0), "ordered, not held");
}

#[test]
fn a_just_started_server_holds_the_rooms_it_owns_until_its_start_wait_ends() {
    // s1 has just started (and owns the room): what its member says waits,
    // even once a peer synced, until the start wait is over.
    let (r, room, a) = lone_owner(true);
    assert_eq!(r.submit(&room, 1, a.nick, text("early"), tag("t1")), Submitted::Waiting);
    let l8 = Outbound::new(1 << 20);
    r.link_up(id("s8"), l8.clone());
    r.rehome(vec![id("s1"), id("s8")]);
    r.remote_interest(id("s8"), room, true);
    sent(&l8);
    let b = Nick::new("b").unwrap();
    r.remote_tail(id("s8"), room, Token::new("s8:x:1").unwrap(), b, None, text("older"));
    r.remote_synced(id("s8"), room, Some(Token::new("s8:x:1").unwrap()));
    r.tick(Instant::now());
    let here = last_lines(frames(&a));
    assert_eq!(here, ["older"], "s8's part shows; s1's own waits");
    r.tick(Instant::now() + Duration::from_secs(61));
    let texts = last_lines(sent(&l8));
    assert_eq!(texts, ["early"], "ordered once the wait is over and relayed to s8");
    r.flush_shown();
    let here = last_lines(frames(&a));
    assert_eq!(here, ["early", "ACK t1 s1:g:2"], "after what was synced, and acknowledged once handed on");
}

#[test]
fn a_just_started_server_that_reached_every_server_it_knows_orders_at_once() {
    // The hold ends when the farm driver says so (every known server
    // linked): what was held is ordered, and new messages go straight on.
    let (r, room, a) = lone_owner(true);
    assert_eq!(r.submit(&room, 1, a.nick, text("held"), None), Submitted::Waiting);
    r.end_start_hold();
    let here = last_lines(frames(&a));
    assert_eq!(here, ["held"]);
    assert_eq!(r.submit(&room, 1, a.nick, text("next"), None), Submitted::Ordered(1));
    let other = Room::new("#another").unwrap();
    r.join(&other, a.clone(), None);
    assert_eq!(r.submit(&other, 1, a.nick, text("new room"), None), Submitted::Ordered(1), "new rooms are not held");
}
