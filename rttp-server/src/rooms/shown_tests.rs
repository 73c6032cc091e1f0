//! A room's owner shows its own members a message only once a peer has it,
//! in the room's order, tested with no sockets: peers are bare link queues
//! that confirm (`GOT`) as the tests say.
use std::collections::VecDeque;

use bytes::Bytes;

use super::tests::{frames, member};
use super::*;
use crate::metrics::Metrics;

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

/// A room that s1 owns among s1, s8 and s9.
fn room_of_s1() -> Room {
    let ids = [id("s1"), id("s8"), id("s9")];
    (0..1000)
        .map(|i| Room::new(&format!("#r{i}")).unwrap())
        .find(|r| crate::nicks::rendezvous(r.as_bytes(), &ids) == Some(id("s1")))
        .expect("some room hashes to s1")
}

/// What a link wrote; on a confirming link that hands nothing on yet.
fn written(link: &Outbound) -> Vec<String> {
    let mut q = VecDeque::new();
    link.drain_into(&mut q);
    link.written(q.iter().map(Bytes::len).sum());
    q.iter().map(|b: &Bytes| String::from_utf8_lossy(b).into_owned()).collect()
}

/// s1 owns a room with member `a` here; s8 and s9 are linked over links
/// that confirm, and `interested` of them have members in the room.
fn owner(interested: &[&str]) -> (Rooms, Room, Member, Arc<Outbound>, Arc<Outbound>) {
    let r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 100, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    r.rehome(vec![id("s1"), id("s8"), id("s9")]);
    let (l8, l9) = (Outbound::new(1 << 20), Outbound::new(1 << 20));
    l8.expect_confirmations();
    l9.expect_confirmations();
    r.link_up(id("s8"), l8.clone());
    r.link_up(id("s9"), l9.clone());
    let room = room_of_s1();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    for p in interested {
        r.remote_interest(id(p), room, true);
    }
    frames(&a);
    written(&l8);
    written(&l9);
    (r, room, a, l8, l9)
}

fn tag(s: &str) -> Option<Token> {
    Some(Token::new(s).unwrap())
}

fn text(s: &str) -> Text {
    Text::from(s.to_string())
}

fn last_lines(frames: Vec<String>) -> Vec<String> {
    frames.iter().map(|f| f.lines().last().unwrap().to_string()).collect()
}

#[test]
fn the_owner_shows_its_members_a_message_once_one_peer_has_it_and_acks_once_all_have() {
    let (r, room, a, l8, l9) = owner(&["s8", "s9"]);
    assert_eq!(r.submit(&room, 1, a.nick, text("hi"), tag("t1")), Submitted::Ordered(0));
    assert_eq!(written(&l8).len(), 1, "relayed to s8");
    assert_eq!(written(&l9).len(), 1, "and to s9");
    r.flush_shown();
    // Written is not enough: a server killed now would leave the message on
    // its members' screens only, and its sender's server would have it
    // ordered again by the next owner (shown twice) or not at all.
    assert!(frames(&a).is_empty(), "no peer has confirmed it");
    l9.confirm(l9.position());
    r.flush_shown();
    assert_eq!(last_lines(frames(&a)), ["hi"], "s9 has it: shown here");
    l8.confirm(l8.position());
    r.flush_shown();
    assert_eq!(frames(&a), vec![format!("ACK t1 s1:g:1\r\n")], "every peer has it: acknowledged, after the MSG");
}

#[test]
fn a_room_with_no_peer_shows_at_once() {
    let (r, room, a, l8, _l9) = owner(&[]);
    assert_eq!(r.submit(&room, 1, a.nick, text("alone"), tag("t1")), Submitted::Ordered(1));
    assert_eq!(last_lines(frames(&a)), ["alone", "ACK t1 s1:g:1"]);
    assert!(written(&l8).is_empty());
}

#[test]
fn a_confirmed_message_waits_for_the_ones_ahead_of_it() {
    // m1 goes to s8 only; s9 then joins the room (and syncs), and m2 goes
    // to both. s9 confirms m2 first: nothing shows until s8 has m1.
    let (r, room, a, l8, l9) = owner(&["s8"]);
    let before = l8.position();
    r.submit(&room, 1, a.nick, text("m1"), None);
    r.remote_interest(id("s9"), room, true);
    r.remote_synced(id("s9"), room, None);
    r.submit(&room, 1, a.nick, text("m2"), None);
    let to_s9 = last_lines(written(&l9));
    assert_eq!(to_s9[to_s9.len() - 1], "m2");
    l9.confirm(l9.position());
    r.flush_shown();
    assert!(frames(&a).is_empty(), "m2 is confirmed but m1 is not: the order holds");
    let m1_end = before + written(&l8).iter().take(1).map(|f| f.len() as u64).sum::<u64>();
    l8.confirm(m1_end);
    r.flush_shown();
    assert_eq!(last_lines(frames(&a)), ["m1", "m2"]);
}

#[test]
fn a_joiner_gets_what_is_not_shown_yet_once_with_the_others() {
    let (r, room, a, l8, _l9) = owner(&["s8"]);
    let first = r.say(&room, 1, a.nick, text("seen"), None).unwrap().id;
    l8.confirm(l8.position());
    r.flush_shown();
    frames(&a);
    r.say(&room, 1, a.nick, text("in flight"), None).unwrap();
    let b = member(2, "b");
    let joined = r.join(&room, b.clone(), Some(&MsgId::new(rttp_proto::ROOM_START).unwrap()));
    assert_eq!(joined.replayed, 1, "only what is shown here is replayed");
    let got = frames(&b);
    assert_eq!(got[0], format!("JOINED {room} b {first}\r\n"), "its position: the last message shown");
    assert_eq!(last_lines(got[1..].to_vec()), ["seen"]);
    l8.confirm(l8.position());
    r.flush_shown();
    assert_eq!(last_lines(frames(&b)), ["in flight"], "shown to the joiner once, with the others");
    assert_eq!(last_lines(frames(&a)), ["JOINED #r0 b", "in flight"].map(|s| s.replace("#r0", room.as_str())));
}

#[test]
fn a_lost_peer_releases_what_waited_on_it() {
    let (r, room, a, l8, _l9) = owner(&["s8"]);
    r.submit(&room, 1, a.nick, text("hi"), tag("t1"));
    written(&l8);
    r.flush_shown();
    assert!(frames(&a).is_empty());
    // s8 is lost: this server is alive, and nobody else will confirm.
    r.peer_down(id("s8"));
    assert_eq!(last_lines(frames(&a)), ["hi", "ACK t1 s1:g:1"]);
}

#[test]
fn a_relay_from_a_new_owner_waits_behind_this_server_s_unshown_messages() {
    // s1 ordered m1 (unshown); then s9 wins the room (s1 drains, say) and
    // relays m2: the members here read m1 before m2.
    let (r, room, a, l8, _l9) = owner(&["s8"]);
    r.say(&room, 1, a.nick, text("m1"), None).unwrap();
    r.rehome(vec![id("s8"), id("s9")]);
    let new = r.interested(&room);
    assert_eq!(new, vec![id("s8")]);
    let owner_now = crate::nicks::rendezvous(room.as_bytes(), &[id("s8"), id("s9")]).unwrap();
    r.remote_say(owner_now, room, MsgId::new(&format!("{owner_now}:x:1")).unwrap(), a.nick, None, text("m2"));
    assert!(frames(&a).is_empty(), "m2 waits for m1");
    l8.confirm(l8.position());
    r.flush_shown();
    assert_eq!(last_lines(frames(&a)), ["m1", "m2"]);
}

#[test]
fn a_local_sender_s_ack_for_a_new_owner_s_relay_waits_behind_its_msg() {
    // As above, and m2 was said here: its ACK comes after its MSG, which
    // waits for m1 (the ACK used to be pushed at once, ahead of both).
    let (r, room, a, l8, _l9) = owner(&["s8"]);
    r.say(&room, 1, a.nick, text("m1"), None).unwrap();
    r.rehome(vec![id("s8"), id("s9")]);
    let owner_now = crate::nicks::rendezvous(room.as_bytes(), &[id("s8"), id("s9")]).unwrap();
    assert_eq!(r.submit(&room, 1, a.nick, text("m2"), tag("t2")), Submitted::Waiting);
    let m2 = MsgId::new(&format!("{owner_now}:x:1")).unwrap();
    r.remote_say(owner_now, room, m2, a.nick, tag("t2"), text("m2"));
    assert!(frames(&a).is_empty(), "neither m2 nor its ACK before m1");
    l8.confirm(l8.position());
    r.flush_shown();
    assert_eq!(last_lines(frames(&a)), ["m1", "m2", &format!("ACK t2 {m2}")]);
}

#[test]
fn a_room_s_wait_is_bounded_and_a_peer_that_never_confirms_delays_only_past_it() {
    // s8 reads what it is sent but never confirms: the room holds back at
    // most MAX_UNSHOWN messages, then shows the oldest unconfirmed.
    let (r, room, a, l8, _l9) = owner(&["s8"]);
    for i in 0..MAX_UNSHOWN {
        r.say(&room, 1, a.nick, text(&format!("{i}")), None).unwrap();
        written(&l8);
    }
    r.flush_shown();
    assert!(frames(&a).is_empty(), "{MAX_UNSHOWN} waiting: none shown yet");
    r.say(&room, 1, a.nick, text("one more"), None).unwrap();
    assert_eq!(last_lines(frames(&a)), ["0"], "the oldest is shown, in order");
    assert_eq!(r.metrics.shown_unconfirmed.get(), 1);
    // Another room is not held back by this one.
    let other = Room::new("#elsewhere").unwrap();
    let b = member(2, "b");
    r.join(&other, b.clone(), None);
    frames(&b);
    r.say(&other, 2, b.nick, text("free"), None).unwrap();
    assert_eq!(last_lines(frames(&b)), ["free"], "a room with no peer shows at once");
}
