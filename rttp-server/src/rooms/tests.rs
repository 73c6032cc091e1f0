//! Room routing, tested with no sockets: members are bare outbound queues.
use std::collections::VecDeque;

use bytes::Bytes;

use super::*;
use crate::metrics::Metrics;

pub(super) fn member(session: SessionId, nick: &str) -> Member {
    Member { session, nick: Nick::new(nick).unwrap(), out: Arc::new(Outbound::new(1 << 20)) }
}

pub(super) fn frames(m: &Member) -> Vec<String> {
    let mut q = VecDeque::new();
    m.out.drain_into(&mut q);
    q.iter().map(|b: &Bytes| String::from_utf8_lossy(b).into_owned()).collect()
}

fn rooms(history: usize) -> Rooms {
    Rooms::new("s1:g".into(), HistoryLimits { messages: history, bytes: 1 << 20 }, 256 << 20, Arc::new(Metrics::new()))
}

/// Rooms with one peer, s9, linked and interested in `#r`; its link queue.
pub(super) fn with_peer(history: usize) -> (Rooms, Room, ServerId, Arc<Outbound>) {
    let r = rooms(history);
    let room = Room::new("#r").unwrap();
    let peer = ServerId::new("s9").unwrap();
    let link = Arc::new(Outbound::new(64 << 20));
    // s9 owns #r among the two: what it relays is taken.
    r.rehome(vec![ServerId::new("s1").unwrap(), peer]);
    r.link_up(peer, link.clone());
    r.remote_interest(peer, room, true);
    (r, room, peer, link)
}

#[test]
fn join_say_part_fan_out() {
    let r = rooms(10);
    let room = Room::new("#r").unwrap();
    let (a, b) = (member(1, "a"), member(2, "b"));
    assert!(r.join(&room, a.clone(), None).first_local);
    assert!(!r.join(&room, b.clone(), None).first_local);
    let said = r.say(&room, 1, a.nick, Text::from("hi"), None).unwrap();
    assert_eq!(said.delivered, 2);
    let msg = format!("MSG #r {} a 2\r\nhi\r\n", said.id);
    // The joiner's own JOINED says where the room stands: no message yet.
    assert_eq!(frames(&a), vec!["JOINED #r a -\r\n".to_string(), "JOINED #r b\r\n".into(), msg.clone()]);
    assert_eq!(frames(&b), vec!["JOINED #r b -\r\n".to_string(), msg]);
    assert!(r.say(&room, 3, Nick::new("c").unwrap(), Text::from("x"), None).is_none(), "not a member");
    assert_eq!(r.part(&room, 2, true), Some(false));
    assert_eq!(frames(&a), vec!["PARTED #r b\r\n"]);
    assert_eq!(frames(&b), vec!["PARTED #r b\r\n"]);
    assert_eq!(r.part(&room, 2, true), None);
    assert_eq!(r.part(&room, 1, false), Some(true));
    assert!(r.is_empty(), "an empty room is removed");
}

#[test]
fn the_frame_is_shared_not_copied() {
    let r = rooms(10);
    let room = Room::new("#r").unwrap();
    let (a, b) = (member(1, "a"), member(2, "b"));
    r.join(&room, a.clone(), None);
    r.join(&room, b.clone(), None);
    frames(&a);
    frames(&b);
    r.say(&room, 1, a.nick, Text::from("x".repeat(1000)), None).unwrap();
    let (mut qa, mut qb) = (VecDeque::new(), VecDeque::new());
    a.out.drain_into(&mut qa);
    b.out.drain_into(&mut qb);
    assert_eq!(qa[0].as_ptr(), qb[0].as_ptr(), "both members hold the same buffer");
}

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
fn ids_are_ordered_within_a_room() {
    let r = rooms(100);
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let seqs: Vec<u64> = (0..50)
        .map(|_| {
            r.say(&room, 1, a.nick, Text::from("x"), None)
                .unwrap()
                .id
                .as_str()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn history_is_bounded_in_bytes_too() {
    let r = Rooms::new("s1:g".into(), HistoryLimits { messages: 1000, bytes: 200 }, 1 << 20, Arc::new(Metrics::new()));
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    for i in 0..10 {
        r.say(&room, 1, a.nick, Text::from(format!("{i:02}{}", "y".repeat(48))), None).unwrap();
    }
    frames(&a);
    let b = member(2, "b");
    let j = r.join(&room, b.clone(), Some(&Token::new("nope").unwrap()));
    // About 70 bytes a message, 200 kept: two, and they are the newest.
    assert_eq!(j.replayed, 2, "about 70 bytes a frame, 200 kept");
    let replayed: Vec<String> = frames(&b).into_iter().filter(|f| f.starts_with("MSG ")).collect();
    assert_eq!(replayed.len(), 2);
    assert!(replayed[0].contains("\r\n08y") && replayed[1].contains("\r\n09y"), "{replayed:?}");
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

/// PROTOCOL.md §7, the one-hop rule: what came from a peer goes to local
/// members only, never to another peer, or a full mesh would loop.
#[test]
fn a_relayed_message_reaches_local_members_and_no_peer() {
    let r = rooms(10);
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let (p2, p3) = (ServerId::new("s2").unwrap(), ServerId::new("s3").unwrap());
    let (q2, q3) = (Arc::new(Outbound::new(1 << 20)), Arc::new(Outbound::new(1 << 20)));
    // s3 owns #r among the three: it relays the room's messages.
    r.rehome(vec![ServerId::new("s1").unwrap(), p2, p3]);
    r.link_up(p2, q2.clone());
    r.link_up(p3, q3.clone());
    r.remote_interest(p2, room, true);
    r.remote_interest(p3, room, true);
    let drain = |q: &Outbound| {
        let mut v = VecDeque::new();
        q.drain_into(&mut v);
        v.iter().map(|b: &Bytes| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>()
    };
    // What link_up and our own member sent so far is not the point here.
    drain(&q2);
    drain(&q3);
    frames(&a);

    let id = MsgId::new("s2:g:7").unwrap();
    r.remote_say(p3, room, id, Nick::new("bob").unwrap(), None, Text::from("hi"));
    assert_eq!(frames(&a), vec![format!("MSG #r {id} bob 2\r\nhi\r\n")], "the local member got it");
    assert_eq!(drain(&q2), Vec::<String>::new(), "not forwarded to the other interested peer");
    assert_eq!(drain(&q3), Vec::<String>::new(), "nor back to the one it came from");

    // Our own member's message, by contrast, goes to both interested peers once.
    r.say(&room, 1, a.nick, Text::from("yo"), None).unwrap();
    assert_eq!(drain(&q2).iter().filter(|f| f.starts_with("RELAY ")).count(), 1);
    assert_eq!(drain(&q3).iter().filter(|f| f.starts_with("RELAY ")).count(), 1);
}

/// Replays the whole kept history of `room` to a new member; returns the texts.
fn kept(r: &Rooms, room: &Room, session: SessionId) -> Vec<String> {
    let m = member(session, &format!("k{session}"));
    r.join(room, m.clone(), Some(&Token::new("nope").unwrap()));
    let texts = frames(&m).into_iter().filter(|f| f.starts_with("MSG ")).collect();
    r.part(room, session, false);
    texts
}

#[test]
fn the_server_wide_budget_evicts_the_oldest_messages_of_any_room_first() {
    // Each room may keep 1 MiB, but all rooms together 2,000 bytes.
    let r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 1000, bytes: 1 << 20 }, 2_000, Arc::new(Metrics::new()));
    let (old, new) = (Room::new("#old").unwrap(), Room::new("#new").unwrap());
    let a = member(1, "a");
    r.join(&old, a.clone(), None);
    r.join(&new, a.clone(), None);
    // About 88 bytes a frame: 30 of them are over the budget already.
    for i in 0..30 {
        r.say(&old, 1, a.nick, Text::from(format!("old{i:02}{}", "o".repeat(60))), None).unwrap();
    }
    assert!(r.budget().kept() <= 2_000);
    let before = r.budget().kept();
    // 22 new ones fill all but 64 bytes of it: less than one frame.
    for i in 0..22 {
        r.say(&new, 1, a.nick, Text::from(format!("new{i:02}{}", "n".repeat(60))), None).unwrap();
        assert!(r.budget().kept() <= 2_000, "within budget after every message: {}", r.budget().kept());
    }
    assert!(before > 1_900, "the old room had filled the budget: {before}");
    // The new room's messages pushed the old room's out first.
    let old_kept = kept(&r, &old, 10);
    let new_kept = kept(&r, &new, 11);
    assert!(old_kept.is_empty(), "the oldest went first: {old_kept:?}");
    assert_eq!(new_kept.len(), 22, "the newest stay: {new_kept:?}");
    assert!(r.budget().evicted() >= 30, "{}", r.budget().evicted());
}

#[test]
fn budget_accounting_follows_rooms_that_go_away() {
    let r = Rooms::new("s1:g".into(), HistoryLimits { messages: 3, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    for i in 0..10_000 {
        r.say(&room, 1, a.nick, Text::from(format!("m{i}")), None).unwrap();
        frames(&a);
    }
    assert!(r.budget().kept() > 0 && r.budget().kept() < 200, "3 messages kept: {}", r.budget().kept());
    assert!(r.budget().heap_len() <= 1, "one heap entry per room with history: {}", r.budget().heap_len());
    r.part(&room, 1, false);
    assert_eq!(r.budget().kept(), 0, "the room is gone, and its history with it");
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
    let link = Arc::new(Outbound::new(64 << 20));
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

/// Issue 12 item 11: an authenticated but misbehaving peer cannot make this
/// server hold rooms and members without bound; what it gave back is
/// counted back, and another peer is unaffected.
#[test]
fn a_peer_creates_rooms_and_members_within_its_bounds() {
    let mut r = rooms(10);
    r.set_peer_bounds(50, 80);
    let (bad, good) = (ServerId::new("bad").unwrap(), ServerId::new("good").unwrap());
    r.link_up(bad, Arc::new(Outbound::new(64 << 20)));
    r.link_up(good, Arc::new(Outbound::new(64 << 20)));
    for i in 0..1_000 {
        r.remote_interest(bad, Room::new(&format!("#r{i}")).unwrap(), true);
    }
    assert_eq!(r.len(), 50, "the rooms it may create");
    for i in 0..50 {
        for n in 0..10 {
            r.remote_joined(bad, Room::new(&format!("#r{i}")).unwrap(), Nick::new(&format!("n{n}")).unwrap(), false);
        }
    }
    let members: usize = (0..50).map(|i| r.members(&Room::new(&format!("#r{i}")).unwrap()).len()).sum();
    assert_eq!(members, 80, "the members it may announce");
    // Giving rooms back makes room for more; another peer has bounds of its own.
    for i in 0..10 {
        r.remote_interest(bad, Room::new(&format!("#r{i}")).unwrap(), false);
    }
    r.remote_interest(bad, Room::new("#again").unwrap(), true);
    assert!(r.interested(&Room::new("#again").unwrap()).contains(&bad));
    r.remote_interest(good, Room::new("#good").unwrap(), true);
    r.remote_joined(good, Room::new("#good").unwrap(), Nick::new("g").unwrap(), false);
    assert_eq!(r.members(&Room::new("#good").unwrap()).len(), 1);
    // Its link lost: everything it held is gone, and so is its count.
    r.peer_down(bad);
    r.remote_interest(bad, Room::new("#fresh").unwrap(), true);
    assert!(r.interested(&Room::new("#fresh").unwrap()).contains(&bad), "counted from zero again");
}

#[test]
fn rooms_that_come_and_go_leave_no_pile_in_the_budget() {
    let r =
        Rooms::new("s1:g".into(), HistoryLimits { messages: 10, bytes: 1 << 20 }, 1 << 20, Arc::new(Metrics::new()));
    let a = member(1, "a");
    for i in 0..20_000 {
        let room = Room::new(&format!("#r{i}")).unwrap();
        r.join(&room, a.clone(), None);
        r.say(&room, 1, a.nick, Text::from("hello"), None).unwrap();
        r.part(&room, 1, false);
        frames(&a);
    }
    assert_eq!(r.budget().kept(), 0, "every room went, with its history");
    assert!(r.budget().heap_len() <= 4096 + 1, "leftovers are rebuilt away: {}", r.budget().heap_len());
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
    let (r, room, peer, _link) = with_peer(100);
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
    let b = member(2, "b");
    r.join(&room, b.clone(), Some(&x));
    let got: Vec<String> = frames(&b).into_iter().filter(|f| f.starts_with("MSG ")).collect();
    let want = ["MSG #r s9:g:2 bob 6\r\ntheirs\r\n".to_string(), format!("MSG #r {after} a 5\r\nafter\r\n")];
    assert_eq!(got, want, "not {own0} (this server's, before x), not {old} (older than the window)");
}

/// While a client moves, its old session (on a peer) and its new one (here)
/// are both in the room for a moment: WHO lists the nick once.
#[test]
fn who_lists_a_nick_once_while_it_moves() {
    let (r, room, peer, _link) = with_peer(10);
    let alice = member(1, "alice");
    r.join(&room, alice.clone(), None);
    r.join(&room, member(2, "bob"), None);
    r.remote_joined(peer, room, Nick::new("alice").unwrap(), true);
    r.remote_joined(peer, room, Nick::new("carol").unwrap(), true);
    let names: Vec<String> = r.members(&room).iter().map(|n| n.to_string()).collect();
    assert_eq!(names, ["alice", "bob", "carol"]);
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
