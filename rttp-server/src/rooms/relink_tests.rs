//! A link replaced by another to the same peer (both servers dialed at
//! once, and the membership keeps the one the smaller id dialed): what was
//! queued on the old link and not written is lost, and no peer was lost, so
//! nothing else would send it again.

use super::order_tests::{farm, id, sent, tag, text};
use super::tests::frames;
use super::*;

/// The first words of each frame of a link's queue.
fn heads(frames: Vec<String>, verb: &str) -> Vec<String> {
    frames.into_iter().filter(|f| f.starts_with(verb)).map(|f| f.lines().next().unwrap_or("").to_string()).collect()
}

#[test]
fn messages_waiting_for_the_owner_go_again_on_the_new_link_before_newer_ones() {
    // s9 owns the room; `t1` went out on the link to s9, which is replaced
    // before it wrote it.
    let (r, room, a, _l8, l9) = farm("s9", "s1");
    assert_eq!(r.submit(&room, 1, a.nick, text("one"), tag("t1")), Submitted::Waiting);
    let l9b = Outbound::new(1 << 20);
    r.link_up(id("s9"), l9b.clone());
    assert_eq!(r.submit(&room, 1, a.nick, text("two"), tag("t2")), Submitted::Waiting);
    let got = sent(&l9b);
    let submits: Vec<String> =
        heads(got.clone(), "SUBMIT").iter().filter_map(|h| h.split(' ').nth(3).map(String::from)).collect();
    assert_eq!(submits, ["t1", "t2"], "the waiting one first, at once (not a tick later, behind `t2`): {got:?}");
    assert_eq!(heads(got, "SYNCED").len(), 1, "and this server's part of the room, as after a loss");
    drop(l9);
}

#[test]
fn what_waited_on_the_old_link_is_released_and_the_peer_gets_the_owner_s_latest() {
    // This server owns the room and s9 alone is interested: `one` waits,
    // unshown here, for s9 to take its RELAY from the old link.
    let (r, room, a, _l8, l9) = farm("s1", "s1");
    r.remote_interest(id("s8"), room, false);
    assert_eq!(r.submit(&room, 1, a.nick, text("one"), tag("t1")), Submitted::Ordered(0));
    assert!(frames(&a).is_empty(), "waits for s9");
    let l9b = Outbound::new(1 << 20);
    r.link_up(id("s9"), l9b.clone());
    let shown = frames(&a);
    assert!(shown.len() == 2 && shown[0].starts_with("MSG ") && shown[1] == "ACK t1 s1:g:1\r\n", "{shown:?}");
    let tails = heads(sent(&l9b), "TAIL");
    assert_eq!(tails.len(), 1, "s9 gets the room's latest on the new link: {tails:?}");
    assert!(tails[0].starts_with(&format!("TAIL {room} s1:g:1 a ")), "{tails:?}");
    drop(l9);
}

#[test]
fn the_same_link_announced_twice_is_not_a_replacement() {
    let (r, room, a, _l8, l9) = farm("s9", "s1");
    assert_eq!(r.submit(&room, 1, a.nick, text("one"), tag("t1")), Submitted::Waiting);
    sent(&l9);
    r.link_up(id("s9"), l9.clone());
    assert!(heads(sent(&l9), "SUBMIT").is_empty(), "nothing was lost: nothing goes again");
}
