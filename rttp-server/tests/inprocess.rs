//! A farm of three `Server`s in one test process, on listeners bound to
//! port 0: the farm driver (handshake, mesh, failure of a link, a drain)
//! without spawning processes.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{check_for, Raw};
use rttp_proto::{ServerFrame, Status};
use rttp_server::config::FarmConfig;
use rttp_server::farm::auth::Secret;
use rttp_server::farm::membership::Timers;
use rttp_server::{Config, Listeners, Server};
use tokio::net::TcpListener;

const T: Duration = Duration::from_secs(10);

/// One server of the in-process farm, joining through `seed`.
async fn member(id: &str, seed: Option<SocketAddr>) -> (Server, SocketAddr, SocketAddr) {
    member_with(id, seed, |_| {}).await
}

async fn member_with(
    id: &str,
    seed: Option<SocketAddr>,
    tweak: impl FnOnce(&mut Config),
) -> (Server, SocketAddr, SocketAddr) {
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (caddr, paddr) = (client.local_addr().unwrap(), peer.local_addr().unwrap());
    let mut cfg = Config::new(id).unwrap();
    cfg.listen = caddr;
    cfg.advertise = caddr.into();
    cfg.drain_window = Duration::from_millis(200);
    cfg.farm = Some(FarmConfig {
        peer_listen: paddr,
        peer_advertise: paddr.into(),
        seeds: seed.into_iter().collect(),
        secret: Secret::new("in-process-farm-secret").unwrap(),
        timers: Timers::default(),
        tls: None,
    });
    tweak(&mut cfg);
    (Server::start_with(cfg, Listeners { client, metrics: None, peer: Some(peer), web: None }), caddr, paddr)
}

fn status(s: &Server, of: &str) -> Option<Status> {
    s.shared().farm_info().servers.iter().find(|e| e.id.as_str() == of).map(|e| e.status)
}

fn all_up(servers: &[&Server], n: usize) -> bool {
    servers.iter().all(|s| {
        let t = s.shared().farm_info();
        t.servers.len() == n && t.servers.iter().all(|e| e.status == Status::Up)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_mesh_lose_a_link_and_drain_in_one_process() {
    let (s1, c1, p1) = member("s1", None).await;
    let (s2, c2, _) = member("s2", Some(p1)).await;
    let (s3, _, _) = member("s3", Some(p1)).await;
    check_for(T, "a full mesh: every server sees three UP", || all_up(&[&s1, &s2, &s3], 3)).await;
    assert_eq!(s1.shared().peers_up(), 2, "s1 has a link to each of the others");

    // A room across the farm, through the driver's links.
    let mut a = Raw::hello(c1, "alice").await;
    let mut b = Raw::hello(c2, "bob").await;
    a.send("JOIN #r\r\n").await;
    a.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    b.send("JOIN #r\r\n").await;
    a.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob")).await;
    a.send("SAY #r 2\r\nhi\r\n").await;
    let m = b.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(m, ServerFrame::Msg { nick, .. } if nick.as_str() == "alice"));

    // s3 stops: its links close, the others mark it DOWN and keep each other.
    s3.shutdown().await;
    check_for(T, "s3 DOWN on s1 and s2", || {
        status(&s1, "s3") == Some(Status::Down) && status(&s2, "s3") == Some(Status::Down)
    })
    .await;
    check_for(T, "s1 keeps exactly one live link", || s1.shared().peers_up() == 1).await;
    assert_eq!(status(&s1, "s2"), Some(Status::Up));

    // s2 drains: s1 sees DRAINING, bob is sent to s1, the only other UP server.
    let drain = tokio::spawn(async move {
        s2.drain().await;
        s2
    });
    let r = b.until(|f| matches!(f, ServerFrame::Redirect { .. })).await;
    assert!(
        matches!(&r, ServerFrame::Redirect { server, reason, .. } if server.as_str() == "s1" && reason.as_str() == "drain"),
        "{r:?}"
    );
    check_for(T, "s1 sees s2 DRAINING", || status(&s1, "s2") == Some(Status::Draining)).await;
    let s2 = drain.await.unwrap();
    s2.shutdown().await;
    s1.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_library_follows_a_redirect_that_answers_hello() {
    let (s1, c1, p1) = member_with("s1", None, |c| c.capacity = 1).await;
    let (s2, c2, _) = member("s2", Some(p1)).await;
    check_for(T, "a mesh of two", || all_up(&[&s1, &s2], 2)).await;
    let _holder = Raw::hello(c1, "alice").await;
    check_for(T, "s2 sees s1 FULL", || status(&s2, "s1") == Some(Status::Full)).await;

    // The only address the client knows is the full server.
    let (client, mut events) =
        rttp_client::Client::builder().bootstrap(vec![c1]).nick("carol").seed(1).connect().await.expect("a session");
    let mut seen = Vec::new();
    while let Ok(e) = events.try_recv() {
        seen.push(e);
    }
    let redirected = seen.iter().position(
        |e| matches!(e, rttp_client::Event::Redirected { server, reason, .. } if server.as_str() == "s2" && reason == "full"),
    );
    let connected = seen.iter().position(|e| matches!(e, rttp_client::Event::Connected { addr, .. } if *addr == c2));
    assert!(redirected.is_some() && connected > redirected, "REDIRECT followed to s2, then connected there: {seen:?}");
    check_for(T, "carol's session is on s2", || s2.shared().users() == 1).await;
    client.quit().await;
    s2.shutdown().await;
    s1.shutdown().await;
}

/// Two drains at once (a second SIGUSR1, or SIGTERM during a SIGUSR1 drain)
/// redirect each session once; undoing a drain stops its pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_drain_redirects_nobody_twice() {
    let (s1, c1, p1) = member_with("s1", None, |c| c.drain_window = Duration::from_millis(600)).await;
    let (s2, _, _) = member("s2", Some(p1)).await;
    check_for(T, "a mesh of two", || all_up(&[&s1, &s2], 2)).await;
    let mut cs = Vec::new();
    for i in 0..4 {
        cs.push(Raw::hello(c1, &format!("u{i}")).await);
    }
    let (shared, token) = (s1.shared().clone(), s1.token());
    let window = Duration::from_millis(600);
    let first = tokio::spawn(rttp_server::drain::redirect_all(shared.clone(), window, token.clone()));
    let second = tokio::spawn(rttp_server::drain::redirect_all(shared.clone(), window, token.clone()));
    for c in &mut cs {
        let r = c.until(|f| matches!(f, ServerFrame::Redirect { .. })).await;
        assert!(matches!(&r, ServerFrame::Redirect { server, .. } if server.as_str() == "s2"), "{r:?}");
        c.expect_closed().await;
    }
    first.await.unwrap();
    second.await.unwrap();
    assert_eq!(shared.metrics.redirects.get(), 4, "four sessions, four REDIRECTs");

    // Undone halfway (SIGUSR2), then started again: the old pass stops and
    // the new one redirects each remaining session once.
    shared.set_draining(false);
    let mut cs = Vec::new();
    for i in 0..4 {
        cs.push(Raw::hello(c1, &format!("v{i}")).await);
    }
    let old = tokio::spawn(rttp_server::drain::redirect_all(shared.clone(), Duration::from_secs(2), token.clone()));
    check_for(T, "the first pass redirected someone", || shared.metrics.redirects.get() >= 5).await;
    shared.set_draining(false);
    let new = tokio::spawn(rttp_server::drain::redirect_all(shared.clone(), window, token.clone()));
    old.await.unwrap();
    new.await.unwrap();
    assert_eq!(shared.metrics.redirects.get(), 8, "each of the four redirected once, across both passes");
    s2.shutdown().await;
    s1.shutdown().await;
}

/// Strangers on the peer port: one address may hold at most four
/// handshakes open (the fifth is closed at once), and a real peer still
/// links while they wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_on_the_peer_port_cannot_keep_the_peers_out() {
    use tokio::io::AsyncReadExt;
    let (s1, _, p1) = member("s1", None).await;
    let from = |ip: &str| {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
        sock.connect(p1)
    };
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(from("127.0.0.5").await.unwrap());
    }
    let mut fifth = from("127.0.0.5").await.unwrap();
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(2), fifth.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "the fifth pending handshake from one address is closed: {r:?}");
    let (s2, _, _) = member("s2", Some(p1)).await;
    check_for(T, "s2 links while the strangers wait", || all_up(&[&s1, &s2], 2)).await;
    // The silent ones are told ERR 511 when their handshake time is up.
    let mut text = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), silent[0].read_to_string(&mut text)).await;
    assert!(text.starts_with("ERR 511 "), "{text:?}");
    s2.shutdown().await;
    s1.shutdown().await;
}

/// Issue 12 item 8: a SAY sent after the server queued a REDIRECT (the
/// client had not read it yet) is delivered, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_say_that_crosses_a_redirect_is_delivered() {
    let (s1, c1, p1) = member("s1", None).await;
    let (s2, c2, _) = member("s2", Some(p1)).await;
    check_for(T, "a mesh of two", || all_up(&[&s1, &s2], 2)).await;
    let mut alice = Raw::hello(c1, "alice").await;
    let mut bob = Raw::hello(c2, "bob").await;
    alice.send("JOIN #r\r\n").await;
    alice.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    bob.send("JOIN #r\r\n").await;
    bob.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob")).await;
    alice.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "bob")).await;
    check_for(T, "s2 knows alice is in #r", || s2.shared().rooms.members(&"#r".parse().unwrap()).len() == 2).await;
    // s1 drains: alice's REDIRECT is queued before she says anything.
    rttp_server::drain::redirect_all(s1.shared().clone(), Duration::ZERO, s1.token()).await;
    assert_eq!(s1.shared().metrics.redirects.get(), 1);
    alice.send("SAY #r 4\r\nlate\r\n").await;
    let got = bob.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(
        matches!(&got, ServerFrame::Msg { text, nick, .. } if text.as_str() == "late" && nick.as_str() == "alice"),
        "{got:?}"
    );
    let r = alice.until(|f| matches!(f, ServerFrame::Redirect { .. })).await;
    assert!(matches!(r, ServerFrame::Redirect { .. }));
    s2.shutdown().await;
    s1.shutdown().await;
}
