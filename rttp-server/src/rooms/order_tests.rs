//! One order per room, tested with no sockets: peers are bare link queues.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::tests::{frames, hand_on, member};
use super::*;
use crate::metrics::Metrics;

pub(super) fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

pub(super) fn tag(s: &str) -> Option<Token> {
    Some(Token::new(s).unwrap())
}

/// What a link's writer would take from its queue, written.
pub(super) fn sent(link: &Outbound) -> Vec<String> {
    let mut q = VecDeque::new();
    link.drain_into(&mut q);
    link.written(q.iter().map(Bytes::len).sum());
    q.iter().map(|b: &Bytes| String::from_utf8_lossy(b).into_owned()).collect()
}

/// A room owned by `owner` among s1, s8 and s9, and by `then` among the
/// first two once s9 is gone.
pub(super) fn room_owned_by(owner: &str, then: &str) -> Room {
    let ids = [id("s1"), id("s8"), id("s9")];
    (0..1000)
        .map(|i| Room::new(&format!("#r{i}")).unwrap())
        .find(|r| {
            crate::nicks::rendezvous(r.as_bytes(), &ids) == Some(id(owner))
                && crate::nicks::rendezvous(r.as_bytes(), &ids[..2]) == Some(id(then))
        })
        .expect("some room name hashes to each pair")
}

/// This server (s1) and linked peers s8 and s9, all UP; a room owned by
/// `owner` (and by `then` without s9) has member `a` here and is of
/// interest to both peers. The links' queues.
pub(super) fn farm(owner: &str, then: &str) -> (Rooms, Room, Member, Arc<Outbound>, Arc<Outbound>) {
    let ids = vec![id("s1"), id("s8"), id("s9")];
    let r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 100, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    r.rehome(ids.clone());
    let room = room_owned_by(owner, then);
    let (l8, l9) = (Outbound::new(1 << 20), Outbound::new(1 << 20));
    r.link_up(id("s8"), l8.clone());
    r.link_up(id("s9"), l9.clone());
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    r.remote_interest(id("s8"), room, true);
    r.remote_interest(id("s9"), room, true);
    frames(&a);
    sent(&l8);
    sent(&l9);
    (r, room, a, l8, l9)
}

/// s9 is lost: s1 and s8 are the live servers now.
pub(super) fn lose_s9(r: &Rooms) {
    r.peer_down(id("s9"));
    r.rehome(vec![id("s1"), id("s8")]);
}

pub(super) fn text(s: &str) -> Text {
    Text::from(s.to_string())
}

#[test]
fn a_say_goes_to_the_owner_and_shows_here_when_its_relay_comes_back() {
    let (r, room, a, _l8, l9) = farm("s9", "s1");
    assert_eq!(r.submit(&room, 1, a.nick, text("hi"), tag("t1")), Submitted::Waiting);
    assert_eq!(sent(&l9), vec![format!("SUBMIT {room} a t1 2\r\nhi\r\n")]);
    assert!(frames(&a).is_empty(), "nothing shows before the owner ordered it");
    r.remote_say(id("s9"), room, Token::new("s9:x:5").unwrap(), a.nick, tag("t1"), text("hi"));
    assert_eq!(frames(&a), vec![format!("MSG {room} s9:x:5 a 2\r\nhi\r\n"), "ACK t1 s9:x:5\r\n".into()]);
    // The same RELAY again (a takeover's fill): not shown twice.
    r.remote_say(id("s9"), room, Token::new("s9:x:5").unwrap(), a.nick, None, text("hi"));
    assert!(frames(&a).is_empty());
}

#[test]
fn a_relay_from_a_server_that_does_not_own_the_room_is_dropped() {
    let (r, room, a, _l8, _l9) = farm("s9", "s1");
    r.remote_say(id("s8"), room, Token::new("s8:x:1").unwrap(), Nick::new("b").unwrap(), None, text("late"));
    assert!(frames(&a).is_empty(), "a woken old owner cannot slip a message in");
}

#[test]
fn the_owner_orders_every_server_s_messages_into_one_sequence_for_all() {
    let (r, room, a, l8, l9) = farm("s1", "s1");
    let b = Nick::new("b").unwrap();
    r.remote_submit(id("s8"), room, b, tag("b1"), text("one"));
    assert_eq!(r.submit(&room, 1, a.nick, text("two"), None), Submitted::Ordered(0), "shown once a peer has it");
    r.remote_submit(id("s9"), room, Nick::new("c").unwrap(), None, text("three"));
    assert!(frames(&a).is_empty(), "no peer has taken them yet");
    for link in [&l8, &l9] {
        let texts = last_lines(sent(link));
        assert_eq!(texts, ["one", "two", "three"], "each server gets the owner's order, its own messages too");
    }
    r.flush_shown();
    let here = last_lines(frames(&a));
    assert_eq!(here, ["one", "two", "three"]);
    // s8 submits `b1` again (its server moved it): ordered once, and only s8 hears of it again.
    r.remote_submit(id("s8"), room, b, tag("b1"), text("one"));
    assert!(frames(&a).is_empty());
    assert_eq!(sent(&l8).len(), 1);
    assert!(sent(&l9).is_empty());
}

#[test]
fn a_new_owner_holds_new_messages_until_the_others_synced_and_fills_their_gaps() {
    // s9 owns the room; s1 has m1 and m2 from it, s8 has m1..m3.
    let (mut r, room, a, l8, l9) = farm("s9", "s1");
    r.set_takeover_wait(Duration::from_secs(60));
    let b = Nick::new("b").unwrap();
    let m = |n: u32| Token::new(&format!("s9:x:{n}")).unwrap();
    r.remote_say(id("s9"), room, m(1), b, None, text("m1"));
    r.remote_say(id("s9"), room, m(2), b, None, text("m2"));
    frames(&a);
    // s9 is lost: s1 owns the room now.
    lose_s9(&r);
    drop(l9);
    // A SAY now is held: the order waits for s8.
    assert_eq!(r.submit(&room, 1, a.nick, text("new"), tag("n1")), Submitted::Waiting);
    assert!(frames(&a).is_empty());
    // s8's tail: m1, m2 (known) and m3 (not): m3 is shown and kept.
    r.remote_tail(id("s8"), room, m(1), b, None, text("m1"));
    r.remote_tail(id("s8"), room, m(2), b, None, text("m2"));
    r.remote_tail(id("s8"), room, m(3), b, None, text("m3"));
    assert_eq!(frames(&a), vec![format!("MSG {room} s9:x:3 b 2\r\nm3\r\n")]);
    r.remote_synced(id("s8"), room, Some(m(3)));
    // Synced: the held SAY is ordered after everything of the old owner...
    let now = frames(&a);
    assert!(now.is_empty(), "neither shown nor acknowledged before s8's link took the RELAY: {now:?}");
    let to_s8 = sent(&l8);
    assert_eq!(to_s8.len(), 1, "s8 lacked nothing but the new message: {to_s8:?}");
    assert!(to_s8[0].starts_with(&format!("RELAY {room} s1:g:")));
    // ...shown and acknowledged once s8's link has taken it.
    r.flush_shown();
    let now = frames(&a);
    assert!(now[0].ends_with("\r\nnew\r\n"), "{now:?}");
    assert!(now[1].starts_with("ACK n1 s1:g:"), "{now:?}");
}

#[test]
fn a_server_that_is_not_the_new_owner_sends_it_its_tail_then_its_waiting_messages() {
    let ids = vec![id("s1"), id("s8"), id("s9")];
    // The room is owned by s9 now and by s8 once s9 is gone.
    let room = room_owned_by("s9", "s8");
    let r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 100, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    r.rehome(ids.clone());
    let (l8, l9) = (Outbound::new(1 << 20), Outbound::new(1 << 20));
    r.link_up(id("s8"), l8.clone());
    r.link_up(id("s9"), l9.clone());
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    r.remote_say(id("s9"), room, Token::new("s9:x:1").unwrap(), a.nick, None, text("old"));
    r.submit(&room, 1, a.nick, text("lost?"), tag("t2"));
    sent(&l8);
    r.peer_down(id("s9"));
    r.rehome(ids[..2].to_vec());
    let to_s8 = sent(&l8);
    assert_eq!(
        to_s8,
        vec![
            format!("TAIL {room} s9:x:1 a 3\r\nold\r\n"),
            format!("SYNCED {room} s9:x:1\r\n"),
            format!("SUBMIT {room} a t2 5\r\nlost?\r\n"),
        ]
    );
    // s8 orders it: the RELAY acknowledges it here.
    r.remote_say(id("s8"), room, Token::new("s8:y:1").unwrap(), a.nick, tag("t2"), text("lost?"));
    let f = frames(&a);
    assert_eq!(f.last().unwrap(), "ACK t2 s8:y:1\r\n");
}

#[test]
fn a_takeover_that_waits_too_long_orders_the_held_messages_on_the_tick() {
    let (mut r, room, a, l8, _l9) = farm("s9", "s1");
    r.set_takeover_wait(Duration::from_millis(1));
    lose_s9(&r);
    assert_eq!(r.submit(&room, 1, a.nick, text("held"), None), Submitted::Waiting);
    assert!(frames(&a).is_empty());
    r.tick(Instant::now() + Duration::from_millis(10));
    hand_on(&r, &[&l8]);
    let f = frames(&a);
    assert_eq!(f.len(), 1);
    assert!(f[0].ends_with("\r\nheld\r\n"));
}

#[test]
fn held_messages_are_bounded_and_the_sender_is_told() {
    let (mut r, room, a, _l8, _l9) = farm("s9", "s1");
    r.set_takeover_wait(Duration::from_secs(60));
    lose_s9(&r);
    for i in 0..MAX_HELD {
        assert_eq!(r.submit(&room, 1, a.nick, text(&format!("{i}")), None), Submitted::Waiting);
    }
    assert_eq!(r.submit(&room, 1, a.nick, text("one too many"), None), Submitted::Busy);
}

#[test]
fn after_a_partition_each_side_gets_the_other_s_recent_messages_once() {
    // s1 and s8 were cut off from each other (and s9 is gone): each side
    // ordered the room alone. On the heal s1 owns it, and s8 syncs.
    let (mut r, room, a, l8, _l9) = farm("s9", "s1");
    r.set_takeover_wait(Duration::from_secs(60));
    r.peer_down(id("s9"));
    r.peer_down(id("s8"));
    r.rehome(vec![id("s1")]);
    let mine = r.submit(&room, 1, a.nick, text("said on s1's side"), tag("a1"));
    assert_eq!(mine, Submitted::Ordered(1));
    frames(&a);
    // The link comes back, s8 is UP again and syncs its side's message.
    r.link_up(id("s8"), l8.clone());
    r.remote_interest(id("s8"), room, true);
    r.rehome(vec![id("s1"), id("s8")]);
    sent(&l8);
    let b = Nick::new("b").unwrap();
    r.remote_tail(id("s8"), room, Token::new("s8:y:1").unwrap(), b, Some(7), text("said on s8's side"));
    r.remote_synced(id("s8"), room, Some(Token::new("s8:y:1").unwrap()));
    // s1's member gets s8's message; s8 gets s1's (with its key), not its own back.
    let here = frames(&a);
    assert_eq!(here.len(), 1, "{here:?}");
    assert!(here[0].ends_with("\r\nsaid on s8's side\r\n"));
    let to_s8 = sent(&l8);
    assert_eq!(to_s8.len(), 1, "{to_s8:?}");
    assert!(to_s8[0].starts_with(&format!("TAIL {room} s1:g:")) && to_s8[0].ends_with("\r\nsaid on s1's side\r\n"));
    // Told again (a second SYNCED): nothing is sent twice... to s1's members.
    r.remote_tail(id("s8"), room, Token::new("s8:y:1").unwrap(), b, Some(7), text("said on s8's side"));
    assert!(frames(&a).is_empty());
}

#[test]
fn a_restarted_owner_waits_for_every_server_that_shows_interest_while_it_takes_over() {
    // s1 has just started and owns the room; s8 and s9 both had it.
    let mut r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 100, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    r.set_takeover_wait(Duration::from_secs(60));
    r.rehome(vec![id("s1"), id("s8"), id("s9")]);
    let room = room_owned_by("s1", "s1");
    let (l8, l9) = (Outbound::new(1 << 20), Outbound::new(1 << 20));
    r.link_up(id("s8"), l8.clone());
    r.link_up(id("s9"), l9.clone());
    r.remote_interest(id("s8"), room, true);
    r.remote_interest(id("s9"), room, true);
    let b = Nick::new("b").unwrap();
    r.remote_submit(id("s8"), room, b, tag("new"), text("new"));
    r.remote_tail(id("s8"), room, Token::new("s2:x:1").unwrap(), b, None, text("old"));
    r.remote_synced(id("s8"), room, Some(Token::new("s2:x:1").unwrap()));
    let to_s9: Vec<String> = sent(&l9).into_iter().filter(|f| f.contains("\r\nnew\r\n")).collect();
    assert!(to_s9.is_empty(), "nothing new is ordered before s9 synced: {to_s9:?}");
    r.remote_tail(id("s9"), room, Token::new("s2:x:2").unwrap(), b, None, text("old too"));
    r.remote_synced(id("s9"), room, Some(Token::new("s2:x:2").unwrap()));
    let texts = last_lines(sent(&l8));
    assert_eq!(texts, ["old too", "new"], "s8 gets s9's old message, then the new one");
}

#[test]
fn tails_to_a_new_owner_stay_within_the_peer_s_replay_budget() {
    // A room owned by s9 (then s8) with 300 messages of 60 KB here (18 MB):
    // the tail to s8 stops at the peer's budget (16 MiB in a burst), and
    // SYNCED still goes.
    let r = Rooms::new(
        "s1:g".into(),
        HistoryLimits { messages: 1000, bytes: 64 << 20 },
        256 << 20,
        Arc::new(Metrics::new()),
    );
    let ids = vec![id("s1"), id("s8"), id("s9")];
    r.rehome(ids.clone());
    let room = room_owned_by("s9", "s8");
    let (l8, l9) = (Outbound::new(64 << 20), Outbound::new(64 << 20));
    r.link_up(id("s8"), l8.clone());
    r.link_up(id("s9"), l9);
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let big = "x".repeat(60_000);
    for n in 1..=300 {
        r.remote_say(id("s9"), room, Token::new(&format!("s9:x:{n}")).unwrap(), a.nick, None, text(&big));
    }
    sent(&l8);
    r.peer_down(id("s9"));
    r.rehome(ids[..2].to_vec());
    let to_s8 = sent(&l8);
    let tails = to_s8.iter().filter(|f| f.starts_with("TAIL ")).count();
    let budget = REPLAY_BURST as usize / 60_000;
    assert!(tails < 300 && tails + 5 >= budget && tails <= budget, "cut at the budget: {tails} of 300");
    assert!(to_s8.last().unwrap().starts_with(&format!("SYNCED {room} s9:x:300")), "and still synced");
}

#[test]
fn messages_waiting_for_an_owner_are_bounded_and_the_sender_is_told() {
    // s9 owns the room and never answers: each tagged SAY waits here.
    let (r, room, a, _l8, _l9) = farm("s9", "s1");
    for i in 0..MAX_PENDING {
        let t = Token::new(&format!("t-{i}")).unwrap();
        assert_eq!(r.submit(&room, 1, a.nick, text("x"), Some(t)), Submitted::Waiting);
    }
    assert_eq!(r.submit(&room, 1, a.nick, text("one too many"), tag("t-x")), Submitted::Busy);
    assert_eq!(r.submit(&room, 1, a.nick, text("untagged too"), None), Submitted::Busy);
}

#[test]
fn a_stash_of_submits_for_a_room_this_server_does_not_own_is_bounded() {
    // s9 owns the room; s9 itself submits to s1 (it takes s1 for the owner):
    // s1 keeps at most MAX_HELD of them, and orders those, in order, once it
    // owns the room.
    let (mut r, room, a, l8, _l9) = farm("s9", "s1");
    r.set_takeover_wait(Duration::from_secs(60));
    let b = Nick::new("b").unwrap();
    for i in 0..MAX_HELD + 100 {
        r.remote_submit(id("s9"), room, b, tag(&format!("k{i}")), text(&format!("{i}")));
    }
    assert!(frames(&a).is_empty(), "nothing ordered by a server that does not own the room");
    lose_s9(&r);
    r.remote_synced(id("s8"), room, None);
    hand_on(&r, &[&l8]);
    let got = last_lines(frames(&a));
    assert_eq!(got.len(), MAX_HELD, "the stash is bounded");
    assert_eq!(got[..3], ["0", "1", "2"], "and kept in order");
}

/// The last line of each frame (a message's text, or the frame itself).
pub(super) fn last_lines(frames: Vec<String>) -> Vec<String> {
    frames.iter().map(|f| f.lines().last().unwrap().to_string()).collect()
}
