//! Presence through a server's loss (`--presence-grace`): the members it
//! had are announced gone only if they are not back in their rooms within
//! the grace, and those back in time are announced neither gone nor back.

use std::time::Duration;

use integration::{check_for, Farm, FarmSpec, Raw};
use rttp_client::{Client, Event};
use rttp_proto::select::Strategy;
use rttp_proto::{ServerFrame, Status};

const DETECT: Duration = Duration::from_secs(10);

fn grace(seconds: &str) -> FarmSpec {
    FarmSpec { extra: vec!["--presence-grace".into(), seconds.into()], ..FarmSpec::default() }
}

/// alice on s1 and bob on s2, both in `#r`; alice has seen bob join.
async fn alice_and_bob(farm: &Farm) -> (Raw, Raw) {
    farm.wait_mesh().await;
    let mut a = Raw::hello(farm.servers[0].client, "alice").await;
    let mut b = Raw::hello(farm.servers[1].client, "bob").await;
    a.send("JOIN #r\r\n").await;
    a.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    b.send("JOIN #r\r\n").await;
    a.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob")).await;
    (a, b)
}

/// Reads until `nick`'s message `text`; returns the membership notices
/// about `nick` read before it.
async fn notices_before(r: &mut Raw, nick: &str, text: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        match r.frame().await {
            ServerFrame::Msg { nick: n, text: t, .. } if n.as_str() == nick && t.as_str() == text => return seen,
            ServerFrame::Joined { nick: n, .. } if n.as_str() == nick => seen.push(format!("JOINED {n}")),
            ServerFrame::Parted { nick: n, .. } if n.as_str() == nick => seen.push(format!("PARTED {n}")),
            _ => {}
        }
    }
}

#[tokio::test]
async fn members_of_a_lost_server_are_announced_gone_when_the_grace_ends() {
    let mut farm = Farm::start(grace("1"));
    let (mut a, _b) = alice_and_bob(&farm).await;
    farm.kill(1);
    assert_eq!(a.quiet_for(Duration::from_millis(500)).await, None, "not at once: bob may be on his way");
    let p = a.until(|f| matches!(f, ServerFrame::Parted { .. })).await;
    assert!(matches!(p, ServerFrame::Parted { nick, .. } if nick.as_str() == "bob"), "netsplit notice: {p:?}");
}

#[tokio::test]
async fn members_of_a_lost_server_back_within_the_grace_are_announced_neither_gone_nor_back() {
    // 5 s: room for a loaded machine to see the loss and bob to come back
    // (a grace that ran out first would show PARTED then JOINED).
    let mut farm = Farm::start(grace("5"));
    let (mut a, _b) = alice_and_bob(&farm).await;
    farm.kill(1);
    // bob's client sees the loss and comes back on s3, once the survivors
    // have seen it too (its nick's lease went with s2).
    for at in [0, 2] {
        check_for(DETECT, &format!("s{} sees s2 DOWN", at + 1), || async {
            farm.status_seen(at, "s2").await == Some(Status::Down)
        })
        .await;
    }
    let mut b = Raw::hello(farm.servers[2].client, "bob").await;
    b.send("JOIN #r\r\n").await;
    let own = b.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    assert!(matches!(own, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob"), "his own JOINED: {own:?}");
    b.send("SAY #r 4\r\nback\r\n").await;
    assert_eq!(notices_before(&mut a, "bob", "back").await, Vec::<String>::new(), "nothing about bob");
    // Past the grace he is here: still nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    b.send("SAY #r 4\r\nhere\r\n").await;
    assert_eq!(notices_before(&mut a, "bob", "here").await, Vec::<String>::new(), "nothing after the grace either");
    let mut w = Raw::hello(farm.servers[0].client, "watcher").await;
    w.send("WHO #r\r\n").await;
    let m = w.until(|f| matches!(f, ServerFrame::Members { .. })).await;
    let ServerFrame::Members { nicks, .. } = m else { unreachable!() };
    let nicks: Vec<&str> = nicks.iter().map(|n| n.as_str()).collect();
    assert_eq!(nicks, ["alice", "bob"], "bob is listed, once");
}

/// The next event that matches, within 10 s.
async fn event(ev: &mut tokio::sync::mpsc::Receiver<Event>, mut pred: impl FnMut(&Event) -> bool) -> Event {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = ev.recv().await.expect("event stream open");
            if pred(&e) {
                return e;
            }
        }
    })
    .await
    .expect("the event within 10 s")
}

#[tokio::test]
async fn a_member_moved_by_a_drain_is_announced_neither_gone_nor_back() {
    let farm = Farm::start(FarmSpec { drain_window: 1.0, ..grace("5") });
    farm.wait_mesh().await;
    // bob, on the client library, wherever he lands; alice on another server.
    let (bob, mut ev) = Client::builder()
        .bootstrap(vec![farm.servers[1].client])
        .strategy(Strategy::Random)
        .nick("bob")
        .connect()
        .await
        .unwrap();
    let Event::Connected { server, .. } = event(&mut ev, |e| matches!(e, Event::Connected { .. })).await else {
        unreachable!()
    };
    let i: usize = server.as_str()[1..].parse::<usize>().unwrap() - 1;
    let mut a = Raw::hello(farm.servers[(i + 1) % 3].client, "alice").await;
    a.send("JOIN #r\r\n").await;
    a.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    bob.join("#r").await.unwrap();
    a.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob")).await;
    // Drain bob's server: he is moved (REDIRECT), his session there ends
    // without QUIT, and he rejoins #r elsewhere.
    farm.term(i);
    event(&mut ev, |e| matches!(e, Event::Rejoined { .. })).await;
    bob.say("#r", "moved").await.unwrap();
    assert_eq!(notices_before(&mut a, "bob", "moved").await, Vec::<String>::new(), "nothing about bob");
    tokio::time::sleep(Duration::from_secs(6)).await;
    bob.say("#r", "still").await.unwrap();
    assert_eq!(notices_before(&mut a, "bob", "still").await, Vec::<String>::new(), "nor after the grace");
    bob.quit().await;
    let p = a.until(|f| matches!(f, ServerFrame::Parted { .. })).await;
    assert!(matches!(p, ServerFrame::Parted { nick, .. } if nick.as_str() == "bob"), "a QUIT at once: {p:?}");
}
