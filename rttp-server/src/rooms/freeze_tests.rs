//! A server that did not run for longer than the peer timeout holds the
//! rooms it owns until their peers synced (see `freeze`), with no sockets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::order::TAIL_MS;
use super::order_tests::{farm, id, sent, tag, text};
use super::tests::frames;
use super::*;

#[test]
fn a_say_read_after_a_freeze_waits_for_the_peers_before_it_is_shown_or_acknowledged() {
    let (mut r, room, a, l8, l9) = farm("s1", "s1");
    r.set_freeze_after(Duration::from_millis(40));
    // Running normally: ordered at once.
    assert_eq!(r.submit(&room, 1, a.nick, text("before"), tag("t0")), Submitted::Ordered(0));
    assert_eq!(sent(&l8).len(), 1);
    assert_eq!(sent(&l9).len(), 1);
    r.flush_shown();
    assert_eq!(frames(&a).len(), 2, "shown and acknowledged once both links took it");
    // Not stamped for longer than the bound: the server was frozen, and
    // its peers have counted it DOWN meanwhile.
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(r.submit(&room, 1, a.nick, text("late"), tag("t1")), Submitted::Waiting);
    assert_eq!(r.metrics.freezes.get(), 1);
    assert!(sent(&l8).is_empty() && sent(&l9).is_empty(), "no RELAY to peers that sync first");
    r.flush_shown();
    assert!(frames(&a).is_empty(), "neither shown nor acknowledged: this server alone has it");
    // Counted UP again, the peers sync with it (they had what it had).
    let last = Some(Token::new("s1:g:1").unwrap());
    r.remote_synced(id("s8"), room, last);
    assert!(frames(&a).is_empty(), "s9 is still awaited");
    r.remote_synced(id("s9"), room, last);
    let relayed = sent(&l8);
    let late = relayed[0].split(' ').nth(2).expect("an id").to_string();
    assert_eq!(relayed, vec![format!("RELAY {room} {late} a t1 4\r\nlate\r\n")]);
    assert_eq!(sent(&l9).len(), 1);
    r.flush_shown();
    assert_eq!(frames(&a), vec![format!("MSG {room} {late} a 4\r\nlate\r\n"), format!("ACK t1 {late}\r\n")]);
    // Stamped on the driver's tick: no second freeze.
    r.tick(std::time::Instant::now());
    assert_eq!(r.submit(&room, 1, a.nick, text("after"), tag("t2")), Submitted::Ordered(0));
    assert_eq!(r.metrics.freezes.get(), 1);
}

#[test]
fn a_peer_s_submit_read_after_a_freeze_is_held_too_and_a_lone_server_never_counts_one() {
    let (mut r, room, a, l8, _l9) = farm("s1", "s1");
    r.set_freeze_after(Duration::from_millis(40));
    std::thread::sleep(Duration::from_millis(60));
    r.remote_submit(id("s8"), room, a.nick, tag("u1"), text("queued"));
    assert!(sent(&l8).is_empty(), "held, not ordered");
    assert_eq!(r.metrics.freezes.get(), 1);
    // Without the bound (a server with no farm) nothing is ever held.
    let (r, room, a, l8, _l9) = farm("s1", "s1");
    std::thread::sleep(Duration::from_millis(60));
    assert!(matches!(r.submit(&room, 1, a.nick, text("x"), tag("v1")), Submitted::Ordered(_)));
    assert_eq!(sent(&l8).len(), 1);
}

/// s1 owns a room, orders `pre` from its member, then does not run for
/// longer than the freeze bound and notices it on its next tick.
fn ordered_then_frozen() -> (Rooms, Room, Member, Arc<Outbound>, Arc<Outbound>) {
    let (mut r, room, a, l8, l9) = farm("s1", "s1");
    r.set_freeze_after(Duration::from_millis(40));
    assert_eq!(r.submit(&room, 1, a.nick, text("pre"), tag("t0")), Submitted::Ordered(0));
    std::thread::sleep(Duration::from_millis(60));
    r.tick(Instant::now());
    assert_eq!(r.metrics.freezes.get(), 1);
    (r, room, a, l8, l9)
}

/// A message ordered in the instant before a freeze: its `RELAY`s were
/// still in this server's own link queues, the peers closed the links
/// meanwhile, and their loss showed and acknowledged it here. This server
/// alone has it; its sender leaving must not take it away before a peer
/// synced.
#[test]
fn a_room_owned_through_a_freeze_is_kept_without_members_until_a_peer_synced() {
    let (r, room, a, l8, l9) = ordered_then_frozen();
    // The links never wrote the RELAYs; the peers counted this server DOWN.
    drop((l8, l9));
    r.peer_down(id("s8"));
    r.peer_down(id("s9"));
    assert_eq!(frames(&a).len(), 2, "shown and acknowledged: the links are gone");
    assert_eq!(r.part(&room, 1, false), Some(true));
    assert_eq!(r.len(), 1, "kept: the only copy of a message its sender holds acknowledged");
    // Counted UP again, s8 relinks, and syncs with what it has: not `pre`.
    let n8 = Outbound::new(1 << 20);
    r.link_up(id("s8"), n8.clone());
    r.remote_interest(id("s8"), room, true);
    r.remote_synced(id("s8"), room, Some(Token::new("s8:x:3").unwrap()));
    let tails = sent(&n8);
    assert!(tails.iter().any(|t| t.starts_with(&format!("TAIL {room} ")) && t.ends_with("\r\npre\r\n")), "{tails:?}");
    // Handed on: the room goes with its last interested peer.
    r.remote_interest(id("s8"), room, false);
    assert_eq!(r.len(), 0);
}

#[test]
fn a_room_kept_through_a_freeze_goes_once_no_peer_synced_within_the_tail_window() {
    let (r, room, _a, _l8, _l9) = ordered_then_frozen();
    r.peer_down(id("s8"));
    r.peer_down(id("s9"));
    r.part(&room, 1, false);
    r.tick(Instant::now());
    assert_eq!(r.len(), 1, "kept for now");
    // A peer's sync would no longer carry it (TAIL_MS): the room goes.
    r.tick(Instant::now() + Duration::from_millis(u64::from(TAIL_MS)) + Duration::from_secs(1));
    assert_eq!(r.len(), 0);
    // A room that never went through a freeze goes with its last member.
    let (r, room, a, _l8, _l9) = farm("s1", "s1");
    r.peer_down(id("s8"));
    r.peer_down(id("s9"));
    r.part(&room, a.session, false);
    assert_eq!(r.len(), 0);
}
