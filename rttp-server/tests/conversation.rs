//! Raw-bytes conversations, verb by verb, asserting the exact replies a
//! person with `nc` would see; and two clients sharing a room.

mod common;

use common::{start, Raw};
use rttp_proto::ServerFrame;

#[tokio::test]
async fn each_verb_as_bytes() {
    let (server, addr) = start(|_| {}).await;
    let mut c = Raw::connect(addr).await;
    // Allowed before HELLO: FARM and PING.
    c.send("FARM\r\n").await;
    c.expect(&format!("FARM_INFO 1 1\r\nSERVER s1 {addr} UP 0 10000 default tcp -\r\n")).await;
    c.send("PING abc\r\n").await;
    c.expect("PONG abc\r\n").await;
    // Anything else needs a session.
    c.send("JOIN #r\r\n").await;
    c.expect("ERR 405 JOIN needs a session: send HELLO first\r\n").await;
    c.send("HELLO 1 alice\r\n").await;
    let welcome = c.frame().await;
    let ServerFrame::Welcome { server: id, session } = welcome else { panic!("{welcome:?}") };
    assert_eq!(id.as_str(), "s1");
    assert!(!session.as_str().is_empty());
    // The epoch grew with the user count.
    c.expect(&format!("FARM_INFO 2 1\r\nSERVER s1 {addr} UP 1 10000 default tcp -\r\n")).await;
    c.send("JOIN #r\r\n").await;
    c.expect("JOINED #r alice -\r\n").await;
    c.send("SAY #r 5\r\nhello\r\n").await;
    let ServerFrame::Msg { room, id, nick, text } = c.frame().await else { panic!() };
    assert_eq!((room.as_str(), nick.as_str(), text.as_str()), ("#r", "alice", "hello"));
    assert!(id.as_str().starts_with("s1:"), "msg-id names the server: {id}");
    // A tagged SAY: the message, then its ACK; the same tag again (a resend
    // after a move) gets the same ACK and is not delivered twice.
    c.send("SAY #r k7-1 3\r\nhey\r\n").await;
    let ServerFrame::Msg { id: tagged, .. } = c.frame().await else { panic!() };
    c.expect(&format!("ACK k7-1 {tagged}\r\n")).await;
    c.send("SAY #r k7-1 3\r\nhey\r\n").await;
    c.expect(&format!("ACK k7-1 {tagged}\r\n")).await;
    c.send("WHO #r\r\n").await;
    c.expect("MEMBERS #r alice\r\nEND_MEMBERS #r 1\r\n").await;
    c.send("WHO #empty\r\n").await;
    c.expect("END_MEMBERS #empty 0\r\n").await;
    c.send("PART #r\r\n").await;
    c.expect("PARTED #r alice\r\n").await;
    c.send("PART #r\r\n").await;
    c.expect("ERR 407 you are not in #r\r\n").await;
    c.send("SAY #r 1\r\nx\r\n").await;
    c.expect("ERR 407 you are not in #r: JOIN it first\r\n").await;
    c.send("HELLO 1 again\r\n").await;
    c.expect("ERR 406 this session is already alice\r\n").await;
    c.send("QUIT\r\n").await;
    c.expect_closed().await;
    server.shutdown().await;
}

#[tokio::test]
async fn two_clients_share_a_room() {
    let (server, addr) = start(|_| {}).await;
    let mut a = Raw::hello(addr, "alice").await;
    let mut b = Raw::hello(addr, "bob").await;
    a.send("JOIN #r\r\n").await;
    // The joiner's own JOINED names the room's position: no message yet.
    a.expect("JOINED #r alice -\r\n").await;
    b.send("JOIN #r\r\n").await;
    b.expect("JOINED #r bob -\r\n").await;
    a.expect("JOINED #r bob\r\n").await;
    for i in 0..20 {
        let (who, text) = if i % 2 == 0 { (&mut a, format!("a{i}")) } else { (&mut b, format!("b{i}")) };
        who.send(&format!("SAY #r {}\r\n{text}\r\n", text.len())).await;
    }
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for _ in 0..20 {
        let ServerFrame::Msg { id, text, .. } = a.frame().await else { panic!() };
        seen_a.push((id, text.as_str().to_string()));
        let ServerFrame::Msg { id, text, .. } = b.frame().await else { panic!() };
        seen_b.push((id, text.as_str().to_string()));
    }
    assert_eq!(seen_a, seen_b, "both members see the same messages in the same order");
    let a_own: Vec<&str> = seen_a.iter().map(|(_, t)| t.as_str()).filter(|t| t.starts_with('a')).collect();
    assert_eq!(a_own, (0..20).step_by(2).map(|i| format!("a{i}")).collect::<Vec<_>>(), "a sender's order is kept");
    b.send("QUIT\r\n").await;
    a.expect("PARTED #r bob\r\n").await;
    // The nick is free again once its session is gone.
    let mut b2 = Raw::hello(addr, "bob").await;
    b2.send("JOIN #r\r\n").await;
    let ServerFrame::Joined { at: Some(at), .. } = b2.frame().await else {
        panic!("the joiner's JOINED names a position")
    };
    assert_eq!(at, seen_a[19].0, "the room's last message");
    a.expect("JOINED #r bob\r\n").await;
    drop(b2);
    a.expect("PARTED #r bob\r\n").await;
    server.shutdown().await;
}

#[tokio::test]
async fn join_replays_after_a_msg_id() {
    let (server, addr) = start(|c| c.history = 5).await;
    let mut a = Raw::hello(addr, "alice").await;
    a.send("JOIN #r\r\n").await;
    a.frame().await;
    let mut ids = Vec::new();
    for i in 0..8 {
        a.send(&format!("SAY #r 2\r\nm{i}\r\n")).await;
        let ServerFrame::Msg { id, .. } = a.frame().await else { panic!() };
        ids.push(id);
    }
    let mut b = Raw::hello(addr, "bob").await;
    b.send(&format!("JOIN #r {}\r\n", ids[5])).await;
    b.expect(&format!("JOINED #r bob {}\r\n", ids[7])).await;
    for want in ["m6", "m7"] {
        let ServerFrame::Msg { text, .. } = b.frame().await else { panic!() };
        assert_eq!(text.as_str(), want);
    }
    // An id older than the 5 kept: ERR 409, then everything kept.
    let mut c = Raw::hello(addr, "carol").await;
    c.send(&format!("JOIN #r {}\r\n", ids[0])).await;
    c.expect(&format!("JOINED #r carol {}\r\n", ids[7])).await;
    c.expect_err(409).await;
    for i in 3..8 {
        let ServerFrame::Msg { text, .. } = c.frame().await else { panic!() };
        assert_eq!(text.as_str(), format!("m{i}"));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn who_splits_a_big_room_into_lines_of_members_per_line() {
    let (server, addr) = start(|_| {}).await;
    let n = rttp_proto::MEMBERS_PER_LINE + 50;
    let mut members = Vec::new();
    for i in 0..n {
        let mut c = Raw::hello(addr, &format!("m{i}")).await;
        c.send("JOIN #big\r\n").await;
        c.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == format!("m{i}"))).await;
        members.push(c);
    }
    let who = &mut members[0];
    who.send("WHO #big\r\n").await;
    let mut lines = Vec::new();
    let total = loop {
        match who.frame().await {
            ServerFrame::Members { nicks, .. } => lines.push(nicks),
            ServerFrame::EndMembers { total, .. } => break total,
            _ => {}
        }
    };
    assert_eq!(lines.iter().map(Vec::len).collect::<Vec<_>>(), [rttp_proto::MEMBERS_PER_LINE, 50]);
    let mut all: Vec<String> = lines.concat().iter().map(|n| n.to_string()).collect();
    all.sort();
    all.dedup();
    assert_eq!((all.len(), total as usize), (n, n), "every member once, and the total");
    server.shutdown().await;
}
