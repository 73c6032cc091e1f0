//! One nick, one person, farm-wide, on real processes: a nick live on one
//! server is refused on the others (`ERR 433`), simultaneous HELLOs for one
//! nick on two servers end with one session, and a client whose server dies
//! or hangs comes back as itself elsewhere (its resume token proves the
//! nick is its own); the hung server's old session ends with `ERR 512`.

use std::time::{Duration, Instant};

use integration::{check_for, Farm, FarmSpec, Raw};
use rttp_client::{Client, Event, Strategy, Timers};
use rttp_proto::ServerFrame;

const T: Duration = Duration::from_secs(20);

/// HELLO `line` on `addr`: the WELCOME's session token, or the ERR code.
async fn hello(addr: std::net::SocketAddr, line: &str) -> Result<String, u16> {
    let mut c = Raw::connect(addr).await;
    c.send(line).await;
    match c.frame().await {
        ServerFrame::Welcome { session, .. } => {
            // Keep the session open for the rest of the test.
            std::mem::forget(c);
            Ok(session.to_string())
        }
        ServerFrame::Err { code, .. } => Err(code),
        other => panic!("unexpected answer to {line:?}: {other:?}"),
    }
}

/// A library client as `nick` in group g2 (served by s2, alone in it), with
/// short timers, in `room`; returns once s2 counts its session.
async fn on_s2(farm: &Farm, nick: &str, room: &str) -> (Client, tokio::sync::mpsc::Receiver<Event>) {
    let timers =
        Timers { silence: Duration::from_secs(2), ping_every: Duration::from_millis(500), ..Timers::default() };
    let (c, events) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .strategy(Strategy::Group)
        .group("g2")
        .nick(nick)
        .timers(timers)
        .connect()
        .await
        .unwrap();
    c.join(room).await.unwrap();
    check_for(T, &format!("{nick} on s2"), || async { farm.metric(1, "rttp_sessions ").await == Some(1.0) }).await;
    (c, events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nick_is_one_session_farm_wide() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let (s1, s2, s3) = (farm.servers[0].client, farm.servers[1].client, farm.servers[2].client);
    // Sequential: alice on s1, then on s2 and s3.
    let mut alice = Raw::hello(s1, "alice").await;
    for other in [s2, s3] {
        let mut c = Raw::connect(other).await;
        c.send("HELLO 1 alice\r\n").await;
        let reason = c.expect_err(433).await;
        assert!(reason.contains("another server"), "{reason}");
    }
    // Simultaneous: twenty nicks, each asked on s1 and s2 at the same moment.
    for k in 0..20 {
        let line = format!("HELLO 1 twin{k}\r\n");
        let (a, b) = tokio::join!(hello(s1, &line), hello(s2, &line));
        assert!(a.is_ok() != b.is_ok(), "twin{k}: exactly one session, got {a:?} and {b:?}");
        assert!(matches!((&a, &b), (Err(433), _) | (_, Err(433))), "the other gets 433: {a:?} {b:?}");
    }
    // alice leaves: her nick is free on every server again.
    alice.send("QUIT\r\n").await;
    alice.expect_closed().await;
    check_for(T, "alice free on s3", || async { hello(s3, "HELLO 1 alice\r\n").await.is_ok() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_server_dies_comes_back_as_itself() {
    let mut farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let (alice, mut events) = on_s2(&farm, "alice", "#n").await;
    let killed = Instant::now();
    farm.kill(1);
    let back = tokio::time::timeout(T, async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Rejoined { .. } => return true,
                Event::Closed { reason } => panic!("alice gave up: {reason}"),
                _ => {}
            }
        }
        false
    })
    .await
    .expect("alice is back");
    assert!(back);
    println!("alice back as alice {:?} after kill -9 of her server", killed.elapsed());
    // Nobody else can take her nick meanwhile.
    let mut c = Raw::connect(farm.servers[2].client).await;
    c.send("HELLO 1 alice\r\n").await;
    c.expect_err(433).await;
    alice.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_s_session_is_taken_over_and_ends_with_512_on_sigcont() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    // carol's old session on s1, and the token that proves it is hers.
    let mut old = Raw::connect(farm.servers[0].client).await;
    old.send("HELLO 1 carol\r\n").await;
    let ServerFrame::Welcome { session, .. } = old.frame().await else { panic!("no WELCOME") };
    old.until(|f| matches!(f, ServerFrame::FarmInfo(_))).await;
    farm.stop(0);
    // carol's client moves to s2 with her resume token; until s1 is DOWN
    // (if s1 owns the nick) the claim may time out: she tries again.
    let line = format!("HELLO 1 carol - {session}\r\n");
    let started = Instant::now();
    let mut took = None;
    while started.elapsed() < T {
        match hello(farm.servers[1].client, &line).await {
            Ok(_) => {
                took = Some(started.elapsed());
                break;
            }
            Err(code) => assert!(code == 503 || code == 433, "ERR {code}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let took = took.expect("carol took her nick over on s2");
    println!("carol resumed on s2 {took:?} after s1 hung");
    // Someone else still cannot.
    let mut c = Raw::connect(farm.servers[2].client).await;
    c.send("HELLO 1 carol\r\n").await;
    c.expect_err(433).await;
    // s1 wakes up: its old carol session ends with ERR 512.
    farm.cont(0);
    // (FARM_INFO pushes come first: s1 sees its peers DOWN, then back.)
    let f = tokio::time::timeout(T, old.until(|f| matches!(f, ServerFrame::Err { .. })))
        .await
        .expect("the old session gets an ERR");
    let ServerFrame::Err { code, reason } = f else { unreachable!() };
    assert_eq!(code, 512, "{reason}");
    assert!(reason.contains("elsewhere"), "{reason}");
    old.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_resumes_its_nick_away_from_a_hung_server() {
    let farm = Farm::start(FarmSpec::default());
    farm.wait_mesh().await;
    let (dave, mut events) = on_s2(&farm, "dave", "#h").await;
    let stopped = Instant::now();
    farm.stop(1);
    let mut server = None;
    tokio::time::timeout(T, async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Connected { server: s, .. } => server = Some(s.to_string()),
                Event::Rejoined { .. } => break,
                Event::Closed { reason } => panic!("dave gave up: {reason}"),
                _ => {}
            }
        }
    })
    .await
    .expect("dave is back in #h");
    let took = stopped.elapsed();
    println!("dave back as dave on {server:?} {took:?} after SIGSTOP of s2");
    assert_ne!(server.as_deref(), Some("s2"));
    // s2 wakes up: it holds no dave any more (his old connection is gone,
    // and the nick is the new session's).
    farm.cont(1);
    check_for(T, "s2 without dave's old session", || async { farm.metric(1, "rttp_sessions ").await == Some(0.0) })
        .await;
    let mut c = Raw::connect(farm.servers[2].client).await;
    c.send("HELLO 1 dave\r\n").await;
    c.expect_err(433).await;
    dave.quit().await;
}

/// A `HELLO` waiting for a nick's owner that then counts DOWN is asked of
/// the nick's new owner at once: the session opens, with no `ERR 503` and
/// no retry (peer timeout 1 s here; a claim waits at most 3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_waiting_for_an_owner_that_goes_down_asks_the_next_owner() {
    let farm = Farm::start(FarmSpec { extra: vec!["--peer-timeout".into(), "1".into()], ..FarmSpec::default() });
    farm.wait_mesh().await;
    let ids: Vec<rttp_proto::ServerId> = ["s1", "s2", "s3"].iter().map(|s| s.parse().unwrap()).collect();
    let nick = (0..1000)
        .map(|i| format!("eve{i}"))
        .find(|n| rttp_proto::rendezvous(n.as_bytes(), &ids) == Some(ids[0]))
        .expect("some nick is s1's");
    let mut first = Raw::connect(farm.servers[2].client).await;
    first.send(&format!("HELLO 1 {nick}\r\n")).await;
    let ServerFrame::Welcome { session, .. } = first.frame().await else { panic!("no WELCOME") };
    farm.stop(0);
    let mut moved = Raw::connect(farm.servers[1].client).await;
    moved.send(&format!("HELLO 1 {nick} - {session}\r\n")).await;
    let answer = tokio::time::timeout(T, moved.frame()).await.expect("an answer");
    farm.cont(0);
    assert!(matches!(answer, ServerFrame::Welcome { .. }), "{answer:?}");
    replaced_by(&mut first).await;
}

/// Waits for `ERR 512` on `c`.
async fn replaced_by(c: &mut Raw) {
    c.until(|f| matches!(f, ServerFrame::Err { code: 512, .. })).await;
}
