//! Room routing, tested with no sockets: members are bare outbound queues.
use std::collections::VecDeque;

use bytes::Bytes;

use super::*;
use crate::metrics::Metrics;

pub(super) fn member(session: SessionId, nick: &str) -> Member {
    Member { session, nick: Nick::new(nick).unwrap(), out: Outbound::new(1 << 20) }
}

pub(super) fn frames(m: &Member) -> Vec<String> {
    let mut q = VecDeque::new();
    m.out.drain_into(&mut q);
    q.iter().map(|b: &Bytes| String::from_utf8_lossy(b).into_owned()).collect()
}

/// The links write what they hold (a link that does not confirm has then
/// handed it on), and the owner shows its members what that let through.
pub(super) fn hand_on(r: &Rooms, links: &[&Outbound]) {
    for link in links {
        let mut q = VecDeque::new();
        link.drain_into(&mut q);
        link.written(q.iter().map(Bytes::len).sum());
    }
    r.flush_shown();
}

pub(super) fn rooms(history: usize) -> Rooms {
    Rooms::new("s1:g".into(), HistoryLimits { messages: history, bytes: 1 << 20 }, 256 << 20, Arc::new(Metrics::new()))
}

/// Rooms with one peer, s9, linked and interested in `#r`; its link queue.
pub(super) fn with_peer(history: usize) -> (Rooms, Room, ServerId, Arc<Outbound>) {
    let r = rooms(history);
    let room = Room::new("#r").unwrap();
    let peer = ServerId::new("s9").unwrap();
    let link = Outbound::new(64 << 20);
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

/// PROTOCOL.md §7, the one-hop rule: what came from a peer goes to local
/// members only, never to another peer, or a full mesh would loop.
#[test]
fn a_relayed_message_reaches_local_members_and_no_peer() {
    let r = rooms(10);
    let room = Room::new("#r").unwrap();
    let a = member(1, "a");
    r.join(&room, a.clone(), None);
    let (p2, p3) = (ServerId::new("s2").unwrap(), ServerId::new("s3").unwrap());
    let (q2, q3) = (Outbound::new(1 << 20), Outbound::new(1 << 20));
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
pub(super) fn kept(r: &Rooms, room: &Room, session: SessionId) -> Vec<String> {
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

/// Issue 12 item 11: an authenticated but misbehaving peer cannot make this
/// server hold rooms and members without bound; what it gave back is
/// counted back, and another peer is unaffected.
#[test]
fn a_peer_creates_rooms_and_members_within_its_bounds() {
    let mut r = rooms(10);
    r.set_peer_bounds(50, 80);
    let (bad, good) = (ServerId::new("bad").unwrap(), ServerId::new("good").unwrap());
    r.link_up(bad, Outbound::new(64 << 20));
    r.link_up(good, Outbound::new(64 << 20));
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
