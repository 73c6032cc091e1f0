//! A tagged message is delivered once per room however often its client
//! sends it, through this server or another: the room's history knows its
//! nick and tag for as long as it keeps the message.

use std::collections::VecDeque;

use bytes::Bytes;

use super::tests::{frames, hand_on, member, with_peer};
use super::*;

fn tag(s: &str) -> Option<Token> {
    Some(Token::new(s).unwrap())
}

/// The RELAYs a link wrote (and so handed on).
fn relays(link: &Outbound) -> Vec<String> {
    let mut q = VecDeque::new();
    link.drain_into(&mut q);
    link.written(q.iter().map(Bytes::len).sum());
    q.iter().map(|b: &Bytes| String::from_utf8_lossy(b).into_owned()).filter(|f| f.starts_with("RELAY ")).collect()
}

#[test]
fn a_resent_say_is_acknowledged_with_the_first_id_and_not_delivered_again() {
    let (r, room, _peer, link) = with_peer(100);
    let a = member(1, "alice");
    r.join(&room, a.clone(), None);
    frames(&a);
    let first = r.say(&room, 1, a.nick, Text::from("hi"), tag("c1-1")).unwrap();
    assert!(!first.repeated);
    assert_eq!(relays(&link), vec![format!("RELAY #r {} alice c1-1 2\r\nhi\r\n", first.id)], "the tag travels");
    let again = r.say(&room, 1, a.nick, Text::from("hi"), tag("c1-1")).unwrap();
    assert!(again.repeated);
    r.flush_shown();
    assert_eq!(again.id, first.id, "the ACK names the message already delivered");
    assert_eq!(frames(&a).len(), 1, "delivered once");
    assert!(relays(&link).is_empty(), "relayed once");
    // Another tag, or the same tag from another nick, is another message.
    assert!(!r.say(&room, 1, a.nick, Text::from("hi"), tag("c1-2")).unwrap().repeated);
    let b = member(2, "bob");
    r.join(&room, b.clone(), None);
    assert!(!r.say(&room, 2, b.nick, Text::from("hi"), tag("c1-1")).unwrap().repeated);
    // Untagged messages are never taken for copies.
    assert!(!r.say(&room, 1, a.nick, Text::from("hi"), None).unwrap().repeated);
    assert!(!r.say(&room, 1, a.nick, Text::from("hi"), None).unwrap().repeated);
}

#[test]
fn a_copy_from_a_peer_is_dropped_either_way_round() {
    let (r, room, peer, link) = with_peer(100);
    let a = member(1, "reader");
    r.join(&room, a.clone(), None);
    let bob = Nick::new("bob").unwrap();
    let w = member(2, "bob");
    r.join(&room, w.clone(), None);
    frames(&a);
    // Said through a peer, then resent here after bob moved: one delivery.
    r.remote_say(peer, room, MsgId::new("s9:g:1").unwrap(), bob, tag("b-1"), Text::from("one"));
    let resent = r.say(&room, 2, bob, Text::from("one"), tag("b-1")).unwrap();
    assert!(resent.repeated);
    assert_eq!(resent.id.as_str(), "s9:g:1");
    // Said here, then the hung old server relays its copy late: dropped.
    let here = r.say(&room, 2, bob, Text::from("two"), tag("b-2")).unwrap();
    r.remote_say(peer, room, MsgId::new("s9:g:2").unwrap(), bob, tag("b-2"), Text::from("two"));
    hand_on(&r, &[&link]);
    let got = frames(&a);
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[1].contains(here.id.as_str()));
}

#[test]
fn the_window_is_the_history() {
    let (r, room, _peer, _link) = with_peer(2);
    let a = member(1, "alice");
    r.join(&room, a.clone(), None);
    let first = r.say(&room, 1, a.nick, Text::from("x"), tag("t-1")).unwrap();
    r.say(&room, 1, a.nick, Text::from("y"), tag("t-2")).unwrap();
    r.say(&room, 1, a.nick, Text::from("z"), tag("t-3")).unwrap();
    // t-1 left the two-message history: a copy now is a new message.
    let late = r.say(&room, 1, a.nick, Text::from("x"), tag("t-1")).unwrap();
    assert!(!late.repeated && late.id != first.id);
}
