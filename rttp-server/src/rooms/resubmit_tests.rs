//! Messages waiting for a room's owner reach a new owner in the order
//! said: a SAY racing the owner change never overtakes older ones.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

use super::order_tests::{farm, lose_s9, sent, tag, text};

/// The numbers of the tags `SUBMIT`ted on a link, first copies only.
fn first_submits(frames: Vec<String>) -> Vec<u32> {
    let mut seen = Vec::new();
    for f in frames {
        let mut words = f.split_whitespace();
        if words.next() != Some("SUBMIT") {
            continue;
        }
        let Some(n) = words.nth(2).and_then(|t| t.strip_prefix('t')).and_then(|n| n.parse().ok()) else { continue };
        if !seen.contains(&n) {
            seen.push(n);
        }
    }
    seen
}

#[test]
fn a_say_racing_an_owner_change_never_reaches_the_new_owner_before_older_waiting_ones() {
    // Found by `ack_tests::a_hung_room_owner_*` (1 run in 45 under load):
    // every reader read one sender's line 35 before its lines 18 to 34.
    // The senders' server sent the new owner the SAY said during the owner
    // change before it sent again the older ones still waiting.
    for round in 0..200 {
        // s9 owns the room, s8 once s9 is gone; s1 (here) has the sender.
        let (r, room, a, l8, _l9) = farm("s9", "s8");
        for i in 0..5 {
            r.submit(&room, 1, a.nick, text("x"), tag(&format!("t{i}")));
        }
        let (start, done) = (Barrier::new(2), AtomicBool::new(false));
        let said = std::thread::scope(|s| {
            let sayer = s.spawn(|| {
                start.wait();
                let mut i = 5;
                while !done.load(Ordering::Acquire) && i < 5_000 {
                    r.submit(&room, 1, a.nick, text("x"), tag(&format!("t{i}")));
                    i += 1;
                }
                i
            });
            start.wait();
            lose_s9(&r);
            done.store(true, Ordering::Release);
            sayer.join().expect("the sayer")
        });
        let order = first_submits(sent(&l8));
        assert!(order.len() >= 5, "round {round}: the waiting ones go to the new owner: {order:?}");
        let overtaken = order.windows(2).find(|w| w[0] > w[1]);
        assert!(overtaken.is_none(), "round {round} ({said} said): {overtaken:?} in {order:?}");
    }
}
