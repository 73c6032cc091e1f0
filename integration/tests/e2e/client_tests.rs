//! The client library against a real farm found through farm-dns: the
//! connect sequence, group selection, and moves (kill -9, drain).

use std::time::Duration;

use integration::{check_for, Farm, FarmSpec, Raw};
use rttp_client::{Client, Event, Strategy};
use rttp_proto::ServerFrame;
use tokio::sync::mpsc::Receiver;

const T: Duration = Duration::from_secs(10);

async fn farm_with_dns(spec: FarmSpec) -> (Farm, std::net::SocketAddr) {
    let mut farm = Farm::start(spec);
    let dns = farm.start_dns();
    check_for(T, "farm-dns answers with three servers", || async {
        farm.dig(&["chat.farm.test", "A", "+short"]).await.lines().count() == 3
    })
    .await;
    (farm, dns)
}

/// The next event matching `pred`, within 10 s; the skipped ones are returned
/// too (and printed if none matched, to tell a slow farm from a lost event).
async fn until(ev: &mut Receiver<Event>, mut pred: impl FnMut(&Event) -> bool) -> (Event, Vec<Event>) {
    let mut skipped = Vec::new();
    let found = tokio::time::timeout(T, async {
        loop {
            let e = ev.recv().await.expect("event stream open");
            if pred(&e) {
                return e;
            }
            skipped.push(e);
        }
    })
    .await;
    match found {
        Ok(e) => (e, skipped),
        Err(_) => panic!("no matching event within {T:?}; skipped: {skipped:?}"),
    }
}

fn drain(ev: &mut Receiver<Event>) -> Vec<Event> {
    let mut v = Vec::new();
    while let Ok(e) = ev.try_recv() {
        v.push(e);
    }
    v
}

#[tokio::test]
async fn the_events_follow_the_farm_method() {
    let (farm, dns) = farm_with_dns(FarmSpec::default()).await;
    let (client, mut ev) = Client::builder()
        .service("chat.farm.test", 7000)
        .dns(dns)
        .strategy(Strategy::LeastUsers)
        .nick("alice")
        .connect()
        .await
        .unwrap();
    let steps = drain(&mut ev);
    let kinds: Vec<&str> = steps
        .iter()
        .map(|e| match e {
            Event::Resolved { .. } => "resolved",
            Event::ConnectedFirst { .. } => "first",
            Event::Selected { .. } => "selected",
            Event::Connected { .. } => "connected",
            Event::Table(_) => "table",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["resolved", "first", "table", "selected", "connected", "table"], "{steps:?}");
    let Event::Resolved { addrs } = &steps[0] else { unreachable!() };
    assert_eq!(addrs.len(), 3, "DNS gave the three servers");
    let Event::ConnectedFirst { addr: first, server: first_id } = &steps[1] else { unreachable!() };
    assert_eq!(first, &addrs[0], "the first address DNS gave");
    // Step 3: the first server's own table, the one the selection reads.
    let Event::Table(t) = &steps[2] else { unreachable!() };
    assert_eq!(t.servers.len(), 3, "the first server sent the whole table");
    assert!(t.servers.iter().any(|e| e.id == *first_id && e.addr.as_str() == first.to_string()), "{t:?}");
    let Event::Selected { server: chosen, stay, .. } = &steps[3] else { unreachable!() };
    assert_eq!(*stay, chosen == first_id, "stay exactly when the choice is the first server");
    drop(farm);
    client.quit().await;
}

#[tokio::test]
async fn the_group_strategy_lands_on_the_g2_server() {
    let (farm, dns) = farm_with_dns(FarmSpec::default()).await;
    let (mut stays, mut firsts) = (Vec::new(), Vec::new());
    // farm-dns rotates, so clients start on different servers; a query the
    // resolver sends again under load moves the rotation once more, so the
    // loop goes on (at most 6 clients) until both branches were seen.
    for i in 0..6 {
        if stays.contains(&true) && stays.contains(&false) {
            break;
        }
        let (client, mut ev) = Client::builder()
            .service("chat.farm.test", 7000)
            .dns(dns)
            .strategy(Strategy::Group)
            .group("g2")
            .nick(&format!("g2user{i}"))
            .connect()
            .await
            .unwrap();
        let (e, before) = until(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
        let Event::Connected { server, addr } = e else { unreachable!() };
        assert_eq!((server.as_str(), addr), ("s2", farm.servers[1].client));
        // Step 5: whichever server DNS gave first, the client ends on s2, and
        // stays exactly when s2 was the first.
        let first = before.iter().find_map(|e| match e {
            Event::ConnectedFirst { server, .. } => Some(server.to_string()),
            _ => None,
        });
        let stay = before.iter().find_map(|e| match e {
            Event::Selected { stay, .. } => Some(*stay),
            _ => None,
        });
        assert_eq!(stay, Some(first.as_deref() == Some("s2")), "{before:?}");
        stays.push(stay == Some(true));
        firsts.push(first);
        client.quit().await;
    }
    assert!(stays.contains(&true) && stays.contains(&false), "some started on s2 and stayed, some moved: {stays:?}");
    firsts.sort();
    firsts.dedup();
    assert!(firsts.len() >= 2, "farm-dns rotated the first server: {firsts:?}");
}

#[tokio::test]
async fn a_killed_server_moves_the_client_back_into_its_rooms_with_each_message_once() {
    let groups = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let (mut farm, _dns) = farm_with_dns(FarmSpec { groups, ..FarmSpec::default() }).await;
    // bob talks from s3 and never moves.
    let mut bob = Raw::hello(farm.servers[2].client, "bob").await;
    bob.send("JOIN #r\r\n").await;
    bob.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    // alice stays on s1: the only server of her group.
    let (alice, mut ev) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .strategy(Strategy::Group)
        .group("a")
        .nick("alice")
        .connect()
        .await
        .unwrap();
    let (c, _) = until(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
    assert!(matches!(c, Event::Connected { server, .. } if server.as_str() == "s1"));
    alice.join("#r").await.unwrap();
    until(&mut ev, |e| matches!(e, Event::Joined { nick, .. } if nick.as_str() == "alice")).await;
    // Once bob has seen alice join, his messages reach her (see PROTOCOL.md 8).
    bob.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "alice")).await;
    bob.send("SAY #r 6\r\nbefore\r\n").await;
    until(&mut ev, |e| matches!(e, Event::Message { text, .. } if text.as_str() == "before")).await;
    farm.kill(0);
    for i in 0..5 {
        bob.send(&format!("SAY #r 7\r\nduring{i}\r\n")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, skipped) = until(&mut ev, |e| matches!(e, Event::Rejoined { .. })).await;
    assert!(
        skipped.iter().any(|e| matches!(e, Event::Disconnected { server, .. } if server.as_str() == "s1")),
        "{skipped:?}"
    );
    let moved_to =
        skipped.iter().rev().find_map(|e| if let Event::Connected { server, .. } = e { Some(*server) } else { None });
    assert!(moved_to.is_some_and(|s| s.as_str() != "s1"), "moved to a survivor: {skipped:?}");
    bob.send("SAY #r 5\r\nafter\r\n").await;
    let (_, seen) = until(&mut ev, |e| matches!(e, Event::Message { text, .. } if text.as_str() == "after")).await;
    let texts: Vec<String> = seen
        .iter()
        .filter_map(|e| if let Event::Message { text, .. } = e { Some(text.as_str().to_string()) } else { None })
        .collect();
    for i in 0..5 {
        let n = texts.iter().filter(|t| **t == format!("during{i}")).count();
        assert_eq!(n, 1, "during{i} shown exactly once: {texts:?}");
    }
    assert!(!texts.contains(&"before".to_string()), "what was seen before the move is not shown again: {texts:?}");
    // Step 8, the other way: the new server serves alice's own messages too.
    alice.say("#r", "from alice").await.unwrap();
    let m = bob.until(|f| matches!(f, ServerFrame::Msg { nick, .. } if nick.as_str() == "alice")).await;
    assert!(
        matches!(&m, ServerFrame::Msg { nick, text, .. } if nick.as_str() == "alice" && text.as_str() == "from alice"),
        "{m:?}"
    );
    alice.quit().await;
}

#[tokio::test]
async fn a_drain_redirect_moves_the_client() {
    let (farm, _dns) = farm_with_dns(FarmSpec { drain_window: 1.0, ..FarmSpec::default() }).await;
    let (client, mut ev) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .strategy(Strategy::Group)
        .group("g2")
        .nick("mover")
        .connect()
        .await
        .unwrap();
    let (e, _) = until(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
    let Event::Connected { server, .. } = e else { unreachable!() };
    assert_eq!(server.as_str(), "s2");
    client.join("#r").await.unwrap();
    until(&mut ev, |e| matches!(e, Event::Joined { .. })).await;
    farm.term(1);
    let (r, _) = until(&mut ev, |e| matches!(e, Event::Redirected { .. })).await;
    let Event::Redirected { reason, .. } = r else { unreachable!() };
    assert_eq!(reason, "drain");
    let (c, _) = until(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
    assert!(matches!(c, Event::Connected { server, .. } if server.as_str() != "s2"));
    until(&mut ev, |e| matches!(e, Event::Rejoined { room, .. } if room.as_str() == "#r")).await;
    client.quit().await;
}

/// A farm whose s2 was restarted to publish an address where nothing
/// listens (as a server whose address moved would); and that address.
pub(crate) async fn farm_with_s2_at_a_dead_address() -> (Farm, String) {
    let mut farm = Farm::start(FarmSpec::default());
    let dead = format!("{}.9:7000", farm.prefix());
    farm.kill(1);
    farm.set_extra(1, &["--advertise", &dead]);
    farm.launch(1).await;
    (farm, dead)
}

#[tokio::test]
async fn a_refusing_chosen_server_is_retried_once_then_dns_is_asked_again() {
    // s2 (the only g2 server) publishes an address where nothing listens.
    let (mut farm, dead) = farm_with_s2_at_a_dead_address().await;
    let dns = farm.start_dns();
    // UP: a restarted server reports FULL while it warms up (its first second).
    check_for(T, "s2 listed UP at its dead address", || async {
        farm.farm_info(0).await.is_some_and(|t| {
            t.servers
                .iter()
                .any(|e| e.id.as_str() == "s2" && e.addr.to_string() == dead && e.status == rttp_proto::Status::Up)
        })
    })
    .await;
    let (client, mut ev) = Client::builder()
        .service("chat.farm.test", 7000)
        .dns(dns)
        .strategy(Strategy::Group)
        .group("g2")
        .nick("stubborn")
        .connect()
        .await
        .unwrap();
    let steps = drain(&mut ev);
    let retry = steps.iter().position(|e| matches!(e, Event::Retry { server, .. } if server.as_str() == "s2"));
    let rediscover = steps
        .iter()
        .position(|e| matches!(e, Event::Rediscover { excluded } if excluded.iter().any(|s| s.as_str() == "s2")));
    let resolves: Vec<usize> =
        steps.iter().enumerate().filter(|(_, e)| matches!(e, Event::Resolved { .. })).map(|(i, _)| i).collect();
    assert!(retry.is_some(), "retried s2: {steps:?}");
    let retries = steps.iter().filter(|e| matches!(e, Event::Retry { .. })).count();
    assert_eq!(retries, 1, "exactly one retry before DNS: {steps:?}");
    assert!(rediscover > retry, "then asked DNS again: {steps:?}");
    assert!(resolves.len() >= 2 && resolves[1] > rediscover.unwrap(), "a fresh DNS answer after it: {steps:?}");
    // Step 7: a selection from the fresh table, made after the second answer, and not s2.
    let fresh = steps[resolves[1]..].iter().find_map(|e| match e {
        Event::Selected { server, .. } => Some(server.to_string()),
        _ => None,
    });
    assert!(fresh.as_deref().is_some_and(|s| s != "s2"), "selected again from the fresh table: {steps:?}");
    let connected =
        steps.iter().rev().find_map(|e| if let Event::Connected { server, .. } = e { Some(*server) } else { None });
    assert!(connected.is_some_and(|s| s.as_str() != "s2"), "served by another server: {steps:?}");
    client.quit().await;
}

#[tokio::test]
async fn srv_discovery_finds_each_servers_own_port() {
    let (farm, dns) = farm_with_dns(FarmSpec::default()).await;
    // The A records would be tried with port 1 (nothing there): only SRV's
    // ports lead anywhere.
    let (client, mut ev) =
        Client::builder().service("chat.farm.test", 1).dns(dns).srv(true).nick("srvuser").connect().await.unwrap();
    let steps = drain(&mut ev);
    let Some(Event::Resolved { addrs }) = steps.first() else { panic!("{steps:?}") };
    assert_eq!(addrs.len(), 3);
    assert!(addrs.iter().all(|a| a.port() == 7000), "ports from SRV: {addrs:?}");
    drop(farm);
    client.quit().await;
}

#[tokio::test]
async fn nick_changes_keep_the_rooms_and_refuse_a_taken_nick() {
    let groups = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let (farm, _dns) = farm_with_dns(FarmSpec { groups, ..FarmSpec::default() }).await;
    let mut taken = Raw::hello(farm.servers[0].client, "taken").await;
    taken.send("JOIN #r\r\n").await;
    taken.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    let (c, mut ev) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .strategy(Strategy::Group)
        .group("a")
        .nick("old")
        .connect()
        .await
        .unwrap();
    let (e, _) = until(&mut ev, |e| matches!(e, Event::Connected { .. })).await;
    let Event::Connected { server, .. } = e else { unreachable!() };
    assert_eq!(server.as_str(), "s1", "the only server of group a");
    c.join("#r").await.unwrap();
    until(&mut ev, |e| matches!(e, Event::Joined { nick, .. } if nick.as_str() == "old")).await;
    c.nick("taken").await.unwrap();
    let (e, _) = until(&mut ev, |e| matches!(e, Event::ServerError { .. })).await;
    assert!(matches!(e, Event::ServerError { code: 433, .. }), "{e:?}");
    c.nick("new").await.unwrap();
    until(&mut ev, |e| matches!(e, Event::NickChanged { nick } if nick.as_str() == "new")).await;
    // The room sees the new nick arrive and the old one leave (two
    // connections: either may be processed first).
    let (mut joined, mut parted) = (false, false);
    while !(joined && parted) {
        match taken.frame().await {
            ServerFrame::Joined { nick, .. } if nick.as_str() == "new" => joined = true,
            ServerFrame::Parted { nick, .. } if nick.as_str() == "old" => parted = true,
            _ => {}
        }
    }
    c.say("#r", "renamed").await.unwrap();
    let m = taken.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(m, ServerFrame::Msg { nick, .. } if nick.as_str() == "new"));
    c.quit().await;
}

/// A client whose process stalls (its whole runtime blocked: a busy host,
/// a phone waking up) while frames reach its socket does not count its
/// server lost: on waking, its ping tick and the waiting frames are ready
/// together, and a frame that is here means the server is not silent.
/// Each stall lasts twice the silence bound and until a line said during
/// it has reached the client's socket; before the fix the tick won the
/// draw about half the time, so five stalls caught it.
#[tokio::test]
async fn a_stalled_client_with_frames_waiting_does_not_count_its_server_lost() {
    const SILENCE: Duration = Duration::from_secs(1);
    let farm = Farm::start(FarmSpec { servers: 1, ..FarmSpec::default() });
    let addr = farm.servers[0].client;
    let timers = rttp_client::Timers {
        silence: SILENCE,
        ping_every: Duration::from_millis(200),
        ..rttp_client::Timers::default()
    };
    let (client, mut ev) =
        Client::builder().bootstrap(vec![addr]).nick("sleepy").timers(timers).connect().await.unwrap();
    client.join("#stall").await.unwrap();
    // In the room before the talker comes: its JOINED is then announced.
    until(&mut ev, |e| matches!(e, Event::Joined { nick, .. } if nick.as_str() == "sleepy")).await;
    // A talker on a thread and runtime of its own: it speaks while this
    // test's runtime sleeps, and tells when its line went out to the room.
    let (go, talk) = std::sync::mpsc::channel::<u32>();
    let (said, heard_back) = std::sync::mpsc::channel::<()>();
    let talker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let mut t = Raw::hello(addr, "talker").await;
            t.send("JOIN #stall\r\n").await;
            t.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
            while let Ok(k) = talk.recv() {
                let text = format!("line {k}");
                t.send(&format!("SAY #stall {}\r\n{text}\r\n", text.len())).await;
                // Its own copy back: the server has written the room's.
                t.until(|f| matches!(f, ServerFrame::Msg { text: m, .. } if m.as_str() == text)).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                said.send(()).unwrap();
            }
        })
    });
    until(&mut ev, |e| matches!(e, Event::Joined { nick, .. } if nick.as_str() == "talker")).await;
    let pings = || async { farm.metric(0, "rttp_frames_in_total{verb=\"PING\"}").await.unwrap_or(0.0) };
    let (started, pings_before) = (std::time::Instant::now(), pings().await);
    let mut stalled = Duration::ZERO;
    for k in 0..5 {
        go.send(k).unwrap();
        // No task of this runtime runs, the client's included.
        let stall = std::time::Instant::now();
        heard_back.recv_timeout(T).expect("the talker's line went out");
        std::thread::sleep((2 * SILENCE).saturating_sub(stall.elapsed()));
        stalled += stall.elapsed();
        let (e, _) = until(&mut ev, |e| matches!(e, Event::Message { .. } | Event::Disconnected { .. })).await;
        let Event::Message { text, .. } = e else {
            panic!("stall {k}: the client left a server that was talking: {e:?}");
        };
        assert_eq!(text.as_str(), format!("line {k}"));
    }
    // A wake-up is one tick, not a PING for every period it slept through
    // (ten per stall here).
    let awake = started.elapsed().saturating_sub(stalled);
    let sent = pings().await - pings_before;
    let most = awake.as_secs_f64() / 0.2 + 5.0 + 3.0;
    assert!(sent <= most, "{sent} PINGs in {awake:?} awake and 5 stalls (at most {most:.0})");
    drop(go);
    talker.join().unwrap();
    client.quit().await;
}
