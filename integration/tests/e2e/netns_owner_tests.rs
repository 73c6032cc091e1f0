//! A room's owner that dies before it handed a message on (issue 11's
//! race, made certain): the owner's outgoing peer traffic is blackholed,
//! so its `RELAY`s never leave; then it is killed. Its own members must not
//! have been shown what no other server has, or they read it twice (the
//! sender's server submits it again to the next owner, under a new id) or
//! the others never do. Runs with the multi-host tests (`netns_tests`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rttp_client::{Client, Event, Strategy};
use tokio::sync::mpsc::Receiver;

use crate::netns_tests::{can_run, ip, log_messages, three_hosts_up, Hosts};

/// A room h1 owns while the three hosts are UP.
fn room_of_h1() -> String {
    let ids: Vec<rttp_proto::ServerId> =
        (1..=3).map(|i| rttp_proto::ServerId::new(&format!("h{i}")).unwrap()).collect();
    (0..1000)
        .map(|i| format!("#cut{i}"))
        .find(|r| rttp_proto::rendezvous(r.as_bytes(), &ids) == Some(ids[0]))
        .expect("some room hashes to h1")
}

/// A library client on host `i`, in `room`: it stays there (its host is
/// its group) unless the host fails.
async fn on(hosts: &Hosts, i: usize, nick: &str, room: &str) -> (Client, Receiver<Event>) {
    let addr = SocketAddr::from((hosts.addr(i), 7000));
    let (c, ev) = Client::builder()
        .bootstrap(vec![addr])
        .strategy(Strategy::Group)
        .group(&format!("h{i}"))
        .nick(nick)
        .connect()
        .await
        .unwrap();
    c.join(room).await.unwrap();
    (c, ev)
}

/// Says `text` and returns once it is acknowledged (panics if given up).
async fn say_acked(c: &Client, ev: &mut Receiver<Event>, room: &str, text: &str) {
    let tag = c.say(room, text).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(40), ev.recv()).await {
            Ok(Some(Event::Acked { tag: t, .. })) if t == tag => return,
            Ok(Some(Event::Unacked { .. })) => panic!("{text} given up"),
            Ok(Some(_)) => {}
            other => panic!("no ACK for {text}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_before_it_handed_a_message_on_showed_it_to_nobody() {
    if !can_run() {
        return;
    }
    // h2 and h3 declare h1 DOWN after this much silence and close their
    // links to it; a link gone releases what h1's members wait for (a lone
    // owner shows what it has). The check below must come before that, on
    // a loaded machine too: 6 s instead of the default 2 s.
    let (mut hosts, dir) = three_hosts_up(2, &["--peer-timeout", "6"]).await;
    let room = room_of_h1();
    let (mut logs, mut readers) = (Vec::new(), Vec::new());
    for i in 0..3 {
        let (c, ev) = on(&hosts, i + 1, &format!("rdr{i}"), &room).await;
        logs.push(log_messages(ev));
        readers.push(c);
    }
    let (a, mut a_ev) = on(&hosts, 1, "snda", &room).await;
    let (b, mut b_ev) = on(&hosts, 2, "sndb", &room).await;
    say_acked(&a, &mut a_ev, &room, "a-before").await;
    say_acked(&b, &mut b_ev, &room, "b-before").await;
    // h1 can no longer send to h2 and h3; it still hears them (and the test).
    for j in [2, 3] {
        ip(&["-n", &hosts.ns(1), "route", "add", "blackhole", &format!("{}/32", hosts.addr(j))]);
    }
    let tag_a = a.say(&room, "a-cut").await.unwrap();
    let tag_b = b.say(&room, "b-cut").await.unwrap();
    // h1 orders both (b's SUBMIT reaches it) but no peer confirms either.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let shown = logs[0].lock().unwrap().clone();
    // The check means something only while h1's links stand: h2 and h3
    // must still count h1 UP after it (else this run was too slow).
    for j in [2, 3] {
        let v = hosts.view(j).await.unwrap_or_default();
        let h1_up = v.iter().any(|(id, s, _)| id == "h1" && *s == rttp_proto::Status::Up);
        assert!(h1_up, "h{j} no longer counts h1 UP at the check: too late to tell ({v:?})");
    }
    assert!(!shown.iter().any(|t| t.ends_with("-cut")), "h1 showed its reader what no other server has: {shown:?}");
    let _ = hosts.procs[0].kill();
    let _ = hosts.procs[0].wait();
    // Both lines are acknowledged after all (resent by a, resubmitted by h2).
    let mut acked = HashMap::new();
    for (who, tag, ev) in [("a", tag_a, &mut a_ev), ("b", tag_b, &mut b_ev)] {
        while !acked.contains_key(who) {
            match tokio::time::timeout(Duration::from_secs(40), ev.recv()).await {
                Ok(Some(Event::Acked { tag: t, .. })) if t == tag => {
                    acked.insert(who, ());
                }
                Ok(Some(Event::Unacked { .. })) => panic!("{who}-cut given up"),
                Ok(Some(_)) => {}
                other => panic!("no ACK for {who}-cut: {other:?}"),
            }
        }
    }
    for (i, log) in logs.iter().enumerate() {
        integration::check_for(Duration::from_secs(30), &format!("reader {i} has both lines"), || {
            let log = log.clone();
            async move {
                let got = log.lock().unwrap();
                got.iter().any(|t| t == "a-cut") && got.iter().any(|t| t == "b-cut")
            }
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let orders: Vec<Vec<String>> = logs.iter().map(|l| l.lock().unwrap().clone()).collect();
    for (i, got) in orders.iter().enumerate() {
        for t in ["a-before", "b-before", "a-cut", "b-cut"] {
            assert_eq!(got.iter().filter(|x| *x == t).count(), 1, "reader {i}: {t} once: {got:?}");
        }
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "one order for every reader: {orders:?}");
    for c in readers.into_iter().chain([a, b]) {
        c.quit().await;
    }
    drop(hosts);
    let _ = std::fs::remove_dir_all(dir);
}
