//! The farm: membership over the real peer link, failure detection,
//! farm-wide rooms, authentication, REDIRECT and drain.

use std::time::{Duration, Instant};

use integration::{check_for, Farm, FarmSpec, Raw};
use rttp_proto::{ServerFrame, Status};

const T: Duration = Duration::from_secs(10);
/// Bound for failure detection: the documented 2 s peer timeout plus a 50 ms
/// tick, with generous slack for a loaded machine (latency is a benchmark's job).
const DETECT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn three_servers_with_one_seed_each_form_a_full_mesh() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let t = farm.farm_info(1).await.unwrap();
    let ids: Vec<String> = t.servers.iter().map(|e| format!("{}@{}/{}", e.id, e.addr, e.group)).collect();
    let p = farm.prefix();
    assert_eq!(ids, [format!("s1@{p}.1:7000/g1"), format!("s2@{p}.2:7000/g2"), format!("s3@{p}.3:7000/g1")]);
    for i in 0..3 {
        check_for(T, "two live peer links each", || async { farm.metric(i, "rttp_peers_up ").await == Some(2.0) })
            .await;
    }
}

#[tokio::test]
async fn user_counts_reach_every_server() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(Raw::hello(farm.servers[0].client, &format!("u{i}")).await);
    }
    // Propagation time is measured by rttp-propagation; here it must happen.
    for at in [1, 2] {
        check_for(T, "5 users on s1 seen elsewhere", || async {
            farm.farm_info(at).await.is_some_and(|t| t.servers[0].users == 5)
        })
        .await;
    }
}

#[tokio::test]
async fn a_killed_server_goes_down_and_a_restart_comes_back() {
    let mut farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    farm.kill(1);
    check_for(DETECT, "s2 DOWN on s1 after kill -9", || async {
        farm.status_seen(0, "s2").await == Some(Status::Down)
    })
    .await;
    farm.launch(1).await;
    check_for(T, "s2 UP again after restart", || async { farm.status_seen(0, "s2").await == Some(Status::Up) }).await;
    check_for(T, "and it sees everyone", || farm.sees_all_up(1)).await;
}

#[tokio::test]
async fn a_stopped_server_goes_down_by_heartbeat_and_returns_on_cont() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    farm.stop(1);
    check_for(DETECT, "s2 DOWN on s1 after SIGSTOP", || async {
        farm.status_seen(0, "s2").await == Some(Status::Down)
    })
    .await;
    // s3 judges by its own detector, which may fire a tick later than s1's.
    check_for(DETECT, "s3 agrees: s2 DOWN", || async { farm.status_seen(2, "s2").await == Some(Status::Down) }).await;
    farm.cont(1);
    check_for(T, "s2 UP again after SIGCONT", || async { farm.status_seen(0, "s2").await == Some(Status::Up) }).await;
}

#[tokio::test]
async fn rooms_span_the_farm_and_relay_only_where_interested() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let mut a = Raw::hello(farm.servers[0].client, "alice").await;
    let mut c = Raw::hello(farm.servers[2].client, "carol").await;
    let mut b = Raw::hello(farm.servers[1].client, "bob").await;
    a.send("JOIN #room\r\n").await;
    a.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    c.send("JOIN #room\r\n").await;
    // alice sees carol join from s3.
    let j = a.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    assert!(matches!(j, ServerFrame::Joined { nick, .. } if nick.as_str() == "carol"));
    // Remote members arrive over the link: WHO converges to both.
    let mut names = Vec::new();
    for _ in 0..50 {
        c.send("WHO #room\r\n").await;
        let ServerFrame::Members { nicks, .. } = c.until(|f| matches!(f, ServerFrame::Members { .. })).await else {
            unreachable!()
        };
        names = nicks.iter().map(|n| n.as_str().to_string()).collect();
        names.sort();
        if names.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(names, ["alice", "carol"]);
    // Both ways, each message exactly once, each sender's order kept.
    for i in 0..10 {
        a.send(&format!("SAY #room 2\r\na{i}\r\n")).await;
        c.send(&format!("SAY #room 2\r\nc{i}\r\n")).await;
    }
    for who in [&mut a, &mut c] {
        let mut got = Vec::new();
        while got.len() < 20 {
            if let ServerFrame::Msg { text, .. } = who.frame().await {
                got.push(text.as_str().to_string());
            }
        }
        let from_a: Vec<&String> = got.iter().filter(|t| t.starts_with('a')).collect();
        let from_c: Vec<&String> = got.iter().filter(|t| t.starts_with('c')).collect();
        assert_eq!(from_a, (0..10).map(|i| format!("a{i}")).collect::<Vec<_>>().iter().collect::<Vec<_>>());
        assert_eq!(from_c, (0..10).map(|i| format!("c{i}")).collect::<Vec<_>>().iter().collect::<Vec<_>>());
        let extra = who.quiet_for(Duration::from_millis(300)).await;
        assert!(extra.is_none(), "no duplicate, nothing else: {extra:?}");
    }
    // bob on s2 is not in the room: nothing for him, and no relay to s2.
    let quiet = b.quiet_for(Duration::from_millis(300)).await;
    assert!(quiet.is_none(), "bob got {quiet:?}");
    // s1 owns #room: carol's messages go to it (SUBMIT) and come back to
    // s3 in its order with alice's (RELAY); s2, with nobody there, gets none.
    for verb in ["RELAY", "SUBMIT"] {
        let m = format!("rttp_peer_frames_in_total{{verb=\"{verb}\"}}");
        assert_eq!(farm.metric(1, &m).await.unwrap_or(0.0), 0.0, "s2 got a {verb}");
    }
    assert_eq!(farm.metric(0, "rttp_peer_frames_in_total{verb=\"SUBMIT\"}").await, Some(10.0));
    assert_eq!(farm.metric(2, "rttp_peer_frames_in_total{verb=\"RELAY\"}").await, Some(20.0));
    // carol quits: alice sees PARTED from s3 (at once: she said QUIT).
    c.send("QUIT\r\n").await;
    drop(c);
    let p = a.until(|f| matches!(f, ServerFrame::Parted { .. })).await;
    assert!(matches!(p, ServerFrame::Parted { nick, .. } if nick.as_str() == "carol"));
}

/// PROTOCOL §7 with all three servers in one room: the room's owner (s1
/// owns `#all`) orders every message; the others send theirs to it
/// (`SUBMIT`) and get the room back from it (`RELAY`), never from each
/// other. Every member reads every message once, all in one order.
#[tokio::test]
async fn with_three_servers_in_one_room_the_owner_orders_every_message_once() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let nicks = ["alice", "bob", "carol"];
    let mut cs = Vec::new();
    for (i, nick) in nicks.iter().enumerate() {
        let mut c = Raw::hello(farm.servers[i].client, nick).await;
        c.send("JOIN #all\r\n").await;
        c.until(|f| matches!(f, ServerFrame::Joined { nick: n, .. } if n.as_str() == *nick)).await;
        cs.push(c);
    }
    // Every server knows all three members before anyone speaks.
    for (i, c) in cs.iter_mut().enumerate() {
        let mut names = Vec::new();
        for _ in 0..100 {
            c.send("WHO #all\r\n").await;
            let ServerFrame::Members { nicks, .. } = c.until(|f| matches!(f, ServerFrame::Members { .. })).await else {
                unreachable!()
            };
            names = nicks.iter().map(|n| n.as_str().to_string()).collect();
            if names.len() == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(names.len(), 3, "s{} lists all three: {names:?}", i + 1);
    }
    let per = 5;
    for (i, c) in cs.iter_mut().enumerate() {
        for k in 0..per {
            c.send(&format!("SAY #all 2\r\n{}{k}\r\n", &nicks[i][..1])).await;
        }
    }
    let mut orders = Vec::new();
    for (i, c) in cs.iter_mut().enumerate() {
        let mut got = Vec::new();
        while got.len() < 3 * per {
            if let ServerFrame::Msg { text, .. } = c.frame().await {
                got.push(text.as_str().to_string());
            }
        }
        orders.push(got.clone());
        got.sort();
        let mut want: Vec<String> =
            nicks.iter().flat_map(|n| (0..per).map(move |k| format!("{}{k}", &n[..1]))).collect();
        want.sort();
        assert_eq!(got, want, "{} got every message once", nicks[i]);
        let extra = c.quiet_for(Duration::from_millis(300)).await;
        assert!(!matches!(extra, Some(ServerFrame::Msg { .. })), "{} got a duplicate: {extra:?}", nicks[i]);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "one order for all: {orders:?}");
    let all = 3.0 * per as f64;
    let relay_out = farm.metric(0, "rttp_peer_frames_out_total{verb=\"RELAY\"}").await;
    assert_eq!(relay_out, Some(2.0 * all), "the owner relays all {all} messages to both peers, once");
    let submits = farm.metric(0, "rttp_peer_frames_in_total{verb=\"SUBMIT\"}").await;
    assert_eq!(submits, Some(2.0 * per as f64), "the owner got the others' messages once each");
    for i in 1..3 {
        let out = farm.metric(i, "rttp_peer_frames_out_total{verb=\"SUBMIT\"}").await;
        assert_eq!(out, Some(per as f64), "s{} sent its {per} messages to the owner", i + 1);
        let relays_out = farm.metric(i, "rttp_peer_frames_out_total{verb=\"RELAY\"}").await.unwrap_or(0.0);
        assert_eq!(relays_out, 0.0, "s{} relays nothing itself", i + 1);
        let inn = farm.metric(i, "rttp_peer_frames_in_total{verb=\"RELAY\"}").await;
        assert_eq!(inn, Some(all), "s{} got the room's {all} messages once each", i + 1);
    }
}

#[tokio::test]
async fn a_peer_with_the_wrong_secret_is_refused() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let bad_secret = farm.dir.join("bad-secret");
    integration::write_secret(&bad_secret, "not-the-cluster-secret-at-all\n");
    let p = farm.prefix();
    let log = farm.dir.join("intruder.log");
    let mut cmd = std::process::Command::new(integration::bin("rttp-server"));
    cmd.args(["--id", "intruder", "--listen", &format!("{p}.9:7000"), "--peer-listen", &format!("{p}.9:7100")])
        .args(["--seed", &format!("{p}.1:7100"), "--secret-file", bad_secret.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    integration::die_with_parent(&mut cmd);
    let mut intruder = cmd.spawn().unwrap();
    check_for(T, "s1 logs the refusal with the address", || async {
        farm.log(0).contains("peer link refused") && farm.log(0).contains(&format!("{p}.9"))
    })
    .await;
    check_for(T, "the intruder sees it was refused", || async {
        std::fs::read_to_string(&log).unwrap_or_default().contains("authentication failed")
    })
    .await;
    for i in 0..3 {
        let t = farm.farm_info(i).await.unwrap();
        assert!(t.servers.iter().all(|e| e.id.as_str() != "intruder"), "{t:?}");
    }
    assert!(farm.metric(0, "rttp_peer_auth_failures_total").await.is_some_and(|n| n >= 1.0));
    let _ = intruder.kill();
    let _ = intruder.wait();
}

#[tokio::test]
async fn sigterm_drains_with_redirects_spread_over_the_window() {
    let mut farm = Farm::start(FarmSpec { drain_window: 3.0, ..FarmSpec::default() });
    farm.wait_mesh().await;
    let mut clients = Vec::new();
    for i in 0..30 {
        clients.push(Raw::hello(farm.servers[2].client, &format!("c{i}")).await);
    }
    let started = Instant::now();
    farm.term(2);
    let mut times = Vec::new();
    let others = [farm.servers[0].client.to_string(), farm.servers[1].client.to_string()];
    for c in &mut clients {
        let f = c.until(|f| matches!(f, ServerFrame::Redirect { .. })).await;
        let ServerFrame::Redirect { addr, reason, .. } = f else { unreachable!() };
        assert!(others.contains(&addr.to_string()), "{addr} is s1 or s2");
        assert_eq!(reason.as_str(), "drain");
        c.expect_closed().await;
        times.push(started.elapsed());
    }
    times.sort();
    let spread = times[29] - times[0];
    assert!(spread >= Duration::from_millis(1500), "spread over the 3 s window, not at once: {spread:?}");
    assert!(times[29] < Duration::from_secs(6), "all within the window: {:?}", times[29]);
    // Drained servers are DRAINING, then gone; s3 exits 0.
    let status = farm.wait_exit(2, Duration::from_secs(10)).await.expect("s3 exits");
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn a_full_server_redirects_hello_to_its_group_first() {
    let farm = Farm::start(FarmSpec { capacity: 1, ..FarmSpec::default() });
    farm.wait_mesh().await;
    let _a = Raw::hello(farm.servers[0].client, "a").await;
    check_for(T, "s1 FULL on s3", || async { farm.status_seen(2, "s1").await == Some(Status::Full) }).await;
    let mut b = Raw::connect(farm.servers[0].client).await;
    b.send("HELLO 1 b\r\n").await;
    let f = b.frame().await;
    let ServerFrame::Redirect { server, addr, reason } = f else { panic!("expected REDIRECT, got {f:?}") };
    assert_eq!(reason.as_str(), "full");
    assert_eq!(
        (server.as_str(), addr.to_string()),
        ("s3", farm.servers[2].client.to_string()),
        "s3 is in s1's group g1"
    );
    b.expect_closed().await;
}

#[tokio::test]
async fn a_watcher_gets_every_push_without_a_session() {
    let farm = Farm::start(FarmSpec { extra: vec!["--hello-timeout".into(), "0.5".into()], ..FarmSpec::default() });
    farm.wait_mesh().await;
    let mut w = Raw::connect(farm.servers[1].client).await;
    w.send("FARM watch\r\n").await;
    let ServerFrame::FarmInfo(first) = w.frame().await else { panic!("expected FARM_INFO") };
    // Past the HELLO timeout, the watcher is still served, and not counted.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let _u = Raw::hello(farm.servers[0].client, "u1").await;
    let f = w.until(|f| matches!(f, ServerFrame::FarmInfo(t) if t.servers[0].users == 1)).await;
    let ServerFrame::FarmInfo(next) = f else { unreachable!() };
    assert!(next.epoch > first.epoch, "a pushed table has a higher epoch");
    assert_eq!(next.servers[1].users, 0, "the watcher is not a user of s2");
}

#[tokio::test]
async fn sigusr1_drains_without_stopping_and_sigusr2_undoes_it() {
    let farm = Farm::start(FarmSpec { drain_window: 1.0, ..FarmSpec::default() });
    farm.wait_mesh().await;
    let mut c = Raw::hello(farm.servers[0].client, "maint").await;
    farm.signal(0, nix::sys::signal::Signal::SIGUSR1);
    let f = c.until(|f| matches!(f, ServerFrame::Redirect { .. })).await;
    assert!(matches!(f, ServerFrame::Redirect { reason, .. } if reason.as_str() == "drain"));
    c.expect_closed().await;
    check_for(T, "s1 DRAINING on s2", || async { farm.status_seen(1, "s1").await == Some(Status::Draining) }).await;
    // Still running, and new sessions are sent elsewhere.
    let mut d = Raw::connect(farm.servers[0].client).await;
    d.send("HELLO 1 late\r\n").await;
    assert!(matches!(d.frame().await, ServerFrame::Redirect { .. }));
    farm.signal(0, nix::sys::signal::Signal::SIGUSR2);
    check_for(T, "s1 UP again on s2", || async { farm.status_seen(1, "s1").await == Some(Status::Up) }).await;
    let _e = Raw::hello(farm.servers[0].client, "back").await;
}

#[tokio::test]
async fn every_documented_metric_is_exposed_by_a_farm_member() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let mut c = Raw::hello(farm.servers[0].client, "m").await;
    c.send("NOPE\r\n").await;
    c.expect_err(401).await;
    let text = farm.metrics(0).await;
    let documented = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/OPERATIONS.md")).unwrap();
    let mut names: Vec<&str> = documented
        .split('`')
        .filter(|w| w.starts_with("rttp_") && !w.contains(' '))
        .map(|w| w.split('{').next().unwrap())
        .collect();
    names.sort();
    names.dedup();
    assert!(names.len() >= 15, "the metrics table was found: {names:?}");
    for name in names {
        let sample = integration::parse_metric(&text, &format!("{name} "))
            .or_else(|| integration::parse_metric(&text, &format!("{name}{{")));
        assert!(sample.is_some(), "{name} is documented in OPERATIONS.md but not exposed:\n{text}");
    }
}
