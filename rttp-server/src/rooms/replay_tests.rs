//! Replays: a rejoin after an id, gaps (`ERR 409`) and what peers are
//! asked for them, within their bounds, the order of replayed messages
//! among live ones, and the position a joiner is told.
use std::collections::VecDeque;

use bytes::Bytes;

use super::tests::{frames, hand_on, kept, member, rooms, with_peer};
use super::*;

#[test]
fn replay_after_an_id_and_gaps() {
    let r = rooms(3);
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let ids: Vec<MsgId> =
        (0..5).map(|i| r.say(&room, 1, a.nick, Text::from(format!("m{i}")), None).unwrap().id).collect();
    frames(&a);
    let b = member(2, "b");
    let j = r.join(&room, b.clone(), Some(&ids[3]));
    assert_eq!((j.gap, j.replayed), (false, 1));
    let got = frames(&b);
    assert_eq!(got.len(), 2);
    assert!(got[1].ends_with("m4\r\n"), "{got:?}");
    // ids[0] fell out of the 3-message history.
    let c = member(3, "c");
    let j = r.join(&room, c.clone(), Some(&ids[0]));
    assert_eq!((j.gap, j.replayed), (true, 3));
    let got = frames(&c);
    assert!(got[1].starts_with("ERR 409 "), "{got:?}");
    assert!(got[2].ends_with("m2\r\n") && got[4].ends_with("m4\r\n"), "{got:?}");
}

#[test]
fn a_gap_asks_interested_peers_and_replays_reach_only_the_joiner_once() {
    let (r, room, peer, link) = with_peer(10);
    let old = member(1, "old");
    r.join(&room, old.clone(), None);
    frames(&old);
    let _ = frames(&Member { session: 0, nick: Nick::new("x").unwrap(), out: link.clone() });
    let newcomer = member(2, "new");
    let j = r.join(&room, newcomer.clone(), Some(&Token::new("s9:g:5").unwrap()));
    assert!(j.gap);
    let sent: Vec<String> = frames(&Member { session: 0, nick: Nick::new("x").unwrap(), out: link.clone() });
    assert!(sent.iter().any(|f| f == "HISTORY #r s9:g:5\r\n"), "{sent:?}");
    frames(&old);
    frames(&newcomer);
    let id = Token::new("s9:g:6").unwrap();
    r.remote_replay(peer, room, id, Nick::new("bob").unwrap(), Text::from("missed"));
    r.remote_replay(peer, room, id, Nick::new("bob").unwrap(), Text::from("missed"));
    assert_eq!(frames(&newcomer), vec!["MSG #r s9:g:6 bob 6\r\nmissed\r\n".to_string()], "once, to the joiner");
    assert!(frames(&old).is_empty(), "the member who was there does not get it again");
}

fn link_frames(link: &Arc<Outbound>) -> Vec<Bytes> {
    let mut q = VecDeque::new();
    link.drain_into(&mut q);
    q.into()
}

/// Issue 12 item 3: joins with a gap cost the peers one HISTORY per room
/// per second, and only new members ask at all.
#[test]
fn a_thousand_gap_joins_ask_the_peers_once() {
    let (r, room, _peer, link) = with_peer(10);
    let gap = Token::new("s9:g:5").unwrap();
    let first = member(1, "first");
    r.join(&room, first.clone(), Some(&gap));
    // The same member again, and a thousand newcomers, all with a gap.
    r.join(&room, first.clone(), Some(&gap));
    for i in 0..1000 {
        r.join(&room, member(10 + i, &format!("n{i}")), Some(&gap));
    }
    let asks = link_frames(&link).iter().filter(|f| f.starts_with(b"HISTORY ")).count();
    assert_eq!(asks, 1, "one ask for the room");
}

/// What a peer asks for is answered within its REPLAY budget: a big history
/// does not fill the link's queue.
#[test]
fn a_history_answer_is_bounded_per_peer() {
    let r = Rooms::new(
        "s1:g".into(),
        HistoryLimits { messages: 1000, bytes: 64 << 20 },
        256 << 20,
        Arc::new(Metrics::new()),
    );
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let big = "z".repeat(60_000);
    let mut first = None;
    for _ in 0..500 {
        let said = r.say(&room, 1, a.nick, Text::from(big.clone()), None).unwrap();
        first.get_or_insert(said.id);
        frames(&a);
    }
    let peer = ServerId::new("s9").unwrap();
    let link = Outbound::new(64 << 20);
    r.link_up(peer, link.clone());
    r.remote_history(peer, room, first.unwrap());
    let sent: usize = link_frames(&link).iter().filter(|f| f.starts_with(b"REPLAY ")).map(|f| f.len()).sum();
    assert!(sent <= REPLAY_BURST as usize, "{sent} bytes: within the burst");
    assert!(sent >= REPLAY_BURST as usize - 61_000, "{sent} bytes: the burst is used");
    r.remote_history(peer, room, first.unwrap());
    let again: usize = link_frames(&link).iter().map(|f| f.len()).sum();
    // A full budget would send the 16 MiB again; under a second of refill is under 4 MiB.
    assert!(again < 4 << 20, "the budget refills at {REPLAY_RATE} bytes/s, not at once: {again}");
}

/// A peer's REPLAY arrives after live messages that followed what it
/// replays: the history keeps the peer's order, so a later joiner whose last
/// id is a replayed message still gets the live ones after it.
#[test]
fn replayed_messages_keep_their_order_before_live_ones() {
    let (r, room, peer, _link) = with_peer(100);
    let first = member(1, "first");
    r.join(&room, first.clone(), Some(&Token::new("s9:g:1").unwrap()));
    // Live relays reach this server before the answer to its HISTORY ask.
    let nick = Nick::new("bob").unwrap();
    for k in 4..=5 {
        r.remote_say(peer, room, Token::new(&format!("s9:g:{k}")).unwrap(), nick, None, Text::from(format!("m{k}")));
    }
    // The answer: 2, 3, then 4 and 5, which are here already.
    for k in 2..=5 {
        r.remote_replay(peer, room, Token::new(&format!("s9:g:{k}")).unwrap(), nick, Text::from(format!("m{k}")));
    }
    assert_eq!(kept(&r, &room, 7).len(), 4);
    // A joiner that saw up to 2 gets 3, 4 and 5: nothing live is skipped.
    let late = member(8, "late");
    let j = r.join(&room, late.clone(), Some(&Token::new("s9:g:2").unwrap()));
    assert!(!j.gap);
    let got: Vec<String> = frames(&late).into_iter().filter(|f| f.starts_with("MSG ")).collect();
    let want: Vec<String> = (3..=5).map(|k| format!("MSG #r s9:g:{k} bob 2\r\nm{k}\r\n")).collect();
    assert_eq!(got, want);
}

/// Joiners that saw up to different messages each get an ask (a few per
/// second), so each gets what it missed.
#[test]
fn gap_joins_with_different_ids_each_ask() {
    let (r, room, _peer, link) = with_peer(10);
    for i in 0..10 {
        r.join(&room, member(10 + i, &format!("n{i}")), Some(&Token::new(&format!("s9:g:{i}")).unwrap()));
    }
    let asks = link_frames(&link).iter().filter(|f| f.starts_with(b"HISTORY ")).count();
    assert_eq!(asks, HISTORY_ASKS, "one ask per distinct id, at most {HISTORY_ASKS} a second");
}

/// Messages from two servers can cross the farm in different orders: a
/// rejoin after X also replays what came here from other servers shortly
/// before X (the client drops what it has seen), never this server's own
/// earlier messages (one server's order is the same everywhere), and
/// nothing older than the reorder window.
#[test]
fn a_rejoin_replays_other_servers_messages_just_before_its_id() {
    let (r, room, peer, link) = with_peer(100);
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let bob = Nick::new("bob").unwrap();
    let old = Token::new("s9:g:1").unwrap();
    r.remote_say(peer, room, old, bob, None, Text::from("old"));
    std::thread::sleep(std::time::Duration::from_millis(u64::from(history::REORDER_WINDOW_MS) + 100));
    let own0 = r.say(&room, 1, a.nick, Text::from("own0"), None).unwrap().id;
    r.remote_say(peer, room, Token::new("s9:g:2").unwrap(), bob, None, Text::from("theirs"));
    let x = r.say(&room, 1, a.nick, Text::from("x"), None).unwrap().id;
    let after = r.say(&room, 1, a.nick, Text::from("after"), None).unwrap().id;
    // s9 has them: shown here, and so replayed to a joiner.
    hand_on(&r, &[&link]);
    let b = member(2, "b");
    r.join(&room, b.clone(), Some(&x));
    let got: Vec<String> = frames(&b).into_iter().filter(|f| f.starts_with("MSG ")).collect();
    let want = ["MSG #r s9:g:2 bob 6\r\ntheirs\r\n".to_string(), format!("MSG #r {after} a 5\r\nafter\r\n")];
    assert_eq!(got, want, "not {own0} (this server's, before x), not {old} (older than the window)");
}

#[test]
fn a_joiner_learns_the_room_s_position_and_a_join_from_the_start_replays_all_kept() {
    let r = rooms(10);
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let first = r.say(&room, 1, a.nick, Text::from("one"), None).unwrap().id;
    let second = r.say(&room, 1, a.nick, Text::from("two"), None).unwrap().id;
    let b = member(2, "b");
    r.join(&room, b.clone(), None);
    assert_eq!(frames(&b), vec![format!("JOINED #r b {second}\r\n")], "the last message at the join, no replay");
    // Moved before it saw a message: it rejoins from that position.
    let c = member(3, "c");
    let joined = r.join(&room, c.clone(), Some(&first));
    assert_eq!(joined.replayed, 1);
    // A joiner that saw the room empty rejoins from its start: all kept, no ERR 409.
    let d = member(4, "d");
    let start = MsgId::new(rttp_proto::ROOM_START).unwrap();
    let joined = r.join(&room, d.clone(), Some(&start));
    assert!(!joined.gap);
    let got = frames(&d);
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[1].ends_with("\r\none\r\n") && got[2].ends_with("\r\ntwo\r\n"), "{got:?}");
}

/// A rejoin replayed the latest messages of a dead owner's run here (69,
/// 74: what followed the joiner's last one, 64), and then the new owner's
/// fill brought the older ones (4 .. 64). Each goes in its run's order: a
/// later joiner that saw up to 64 gets 69 and 74 (found at 10,000 clients:
/// the fill went last, and such a joiner got nothing).
#[test]
fn an_older_fill_after_a_replay_keeps_each_run_in_its_order() {
    let (r, room, peer, _link) = with_peer(100);
    let id = |n: u32| Token::new(&format!("s7:x:{n}")).unwrap();
    let bob = Nick::new("bob").unwrap();
    let first = member(1, "first");
    assert!(r.join(&room, first.clone(), Some(&id(64))).gap);
    for n in [69, 74] {
        r.remote_replay(peer, room, id(n), bob, Text::from(format!("m{n}")));
    }
    for n in (4..=64).step_by(5) {
        r.remote_tail(peer, room, id(n), bob, None, Text::from(format!("m{n}")));
    }
    let later = member(2, "later");
    let j = r.join(&room, later.clone(), Some(&id(64)));
    assert!(!j.gap);
    let got: Vec<String> = frames(&later).into_iter().filter(|f| f.starts_with("MSG ")).collect();
    assert_eq!(got, ["MSG #r s7:x:69 bob 3\r\nm69\r\n", "MSG #r s7:x:74 bob 3\r\nm74\r\n"]);
    // A replay of the middle of the run lands in it, not first.
    r.remote_replay(peer, room, id(66), bob, Text::from("m66"));
    let texts: Vec<String> = kept(&r, &room, 3).iter().map(|f| f.lines().last().unwrap().to_string()).collect();
    let at = |t: &str| texts.iter().position(|x| x == t).unwrap();
    assert!(at("m64") < at("m66") && at("m66") < at("m69"), "{texts:?}");
}
