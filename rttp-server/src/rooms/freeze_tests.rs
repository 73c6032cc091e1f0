//! A server that did not run for longer than the peer timeout holds the
//! rooms it owns until their peers synced (see `freeze`), with no sockets.

use std::time::Duration;

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
