//! TLS on real processes, with certificates made by the test (rcgen): a
//! client through the whole farm method over TLS (farm-dns following the
//! farm through TLS, the first server, FARM_INFO, the second server) on a
//! mesh of mutual-TLS peer links; plaintext on a TLS client port and on a
//! TLS peer port gets nothing back; a peer with another CA's certificate
//! stays out; SIGHUP swaps the certificate and keeps live sessions; a TLS
//! client never lands on a plaintext server of a mixed farm.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::time::Duration;

use integration::certs::Ca;
use integration::{bin, check_for, clean_env, die_with_parent, Farm, FarmSpec, Raw, CLIENT_PORT, SERVICE};
use rttp_client::{Client, Event};
use rttp_proto::{Frame, Limits, PeerFrame, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::Receiver;

const T: Duration = Duration::from_secs(20);

fn tls_farm() -> Farm {
    Farm::start(FarmSpec { tls: true, peer_tls: true, drain_window: 1.0, ..FarmSpec::default() })
}

/// Waits for `text` in a room; panics if the session ends first.
async fn hears(events: &mut Receiver<Event>, text: &str) {
    tokio::time::timeout(T, async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Message { text: t, .. } if t.to_string() == text => return,
                Event::Closed { reason } => panic!("the session ended: {reason}"),
                _ => {}
            }
        }
        panic!("the event stream ended");
    })
    .await
    .unwrap_or_else(|_| panic!("{text:?} did not arrive"));
}

/// Everything a connection to `addr` gets for `send` until it closes (at most 5 s).
async fn answer_to(addr: SocketAddr, send: &[u8]) -> Vec<u8> {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(send).await.expect("write");
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_goes_through_the_farm_method_on_a_mutual_tls_mesh() {
    let mut farm = tls_farm();
    // The fixture asks every server over TLS: the peers formed the mesh.
    farm.wait_mesh().await;
    let table = farm.farm_info(0).await.expect("a table over TLS");
    assert!(table.servers.iter().all(|e| e.transport == Transport::Tls), "{table:?}");
    let dns = farm.start_dns();
    let ca = farm.ca.as_ref().expect("the farm's CA").cert.clone();
    let connect = |nick: &str, seed: u64| {
        Client::builder().service(SERVICE, CLIENT_PORT).dns(dns).tls(Some(&ca)).nick(nick).seed(seed).connect()
    };
    let (alice, mut a_events) = check_for_client(|| connect("alice", 1)).await;
    let (bob, mut b_events) = connect("bob", 2).await.expect("bob connects over TLS");
    // The steps of the farm method, in order, each over TLS.
    let mut steps = Vec::new();
    while let Ok(e) = b_events.try_recv() {
        steps.push(match e {
            Event::Resolved { .. } => "resolved",
            Event::ConnectedFirst { .. } => "first",
            Event::Selected { .. } => "selected",
            Event::Connected { .. } => "connected",
            _ => continue,
        });
    }
    assert_eq!(steps, ["resolved", "first", "selected", "connected"], "bob's connect sequence");
    alice.join("#tls").await.unwrap();
    bob.join("#tls").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    alice.say("#tls", "over tls").await.unwrap();
    hears(&mut b_events, "over tls").await;
    bob.say("#tls", "and back").await.unwrap();
    hears(&mut a_events, "and back").await;
    for i in 0..3 {
        let failures = farm.metric(i, "rttp_tls_handshake_failures_total").await.unwrap_or(-1.0);
        assert_eq!(failures, 0.0, "s{} saw a failed client handshake", i + 1);
        let refused = farm.metric(i, "rttp_peer_auth_failures_total").await.unwrap_or(-1.0);
        assert_eq!(refused, 0.0, "s{} refused a peer", i + 1);
    }
}

/// farm-dns learns the farm a moment after it starts: retries the connect.
async fn check_for_client<F, Fut>(mut f: F) -> (Client, Receiver<Event>)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = rttp_client::Result<(Client, Receiver<Event>)>>,
{
    let deadline = tokio::time::Instant::now() + T;
    loop {
        match f().await {
            Ok(x) => return x,
            Err(_) if tokio::time::Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("no TLS session through DNS: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_gets_nothing_from_a_tls_client_port_or_a_tls_peer_port() {
    let extra = vec!["--hello-timeout".to_string(), "1".to_string()];
    let farm = Farm::start(FarmSpec { tls: true, peer_tls: true, extra, ..FarmSpec::default() });
    farm.wait_mesh().await;
    // A connection that never starts its TLS handshake holds its slot only
    // until the HELLO deadline (1 s here).
    let started = std::time::Instant::now();
    let silent = answer_to(farm.servers[0].client, b"").await;
    assert!(silent.is_empty(), "{silent:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "a silent handshake was held {:?}", started.elapsed());
    // A plaintext HELLO on the TLS client port: no RTTP frame comes back.
    let got = answer_to(farm.servers[0].client, b"HELLO 1 mallory\r\n").await;
    assert!(!String::from_utf8_lossy(&got).contains("WELCOME"), "a session in the clear: {got:?}");
    assert!(got.is_empty() || got[0] == 0x15, "only a TLS alert, if anything: {got:?}");
    check_for(T, "the stalled and the failed handshakes are counted", || async {
        farm.metric(0, "rttp_tls_handshake_failures_total").await == Some(2.0)
    })
    .await;
    // The plaintext client library fails on every server, and says so.
    let plain = Client::builder()
        .bootstrap(vec![farm.servers[1].client])
        .nick("mallory")
        .timers(rttp_client::Timers { hello: Duration::from_secs(2), ..Default::default() })
        .limits(rttp_client::connect::Limits { max_rounds: 1, ..Default::default() })
        .connect()
        .await;
    assert!(plain.is_err(), "a plaintext client got a session on a TLS farm");
    // A plaintext PEER_HELLO on the TLS peer port: not a single peer frame.
    let hello = "PEER_HELLO 1 s9 1 00112233445566778899aabbccddeeff\r\n";
    let got = answer_to(farm.servers[0].peer, hello.as_bytes()).await;
    let mut buf = bytes::BytesMut::from(&got[..]);
    assert!(
        !matches!(PeerFrame::decode_buf(&mut buf, &Limits::default()), Ok(Some(_))),
        "a peer frame came back in the clear: {got:?}"
    );
    assert!(got.is_empty() || got[0] == 0x15, "only a TLS alert, if anything: {got:?}");
    // Everyone else is unaffected: a TLS session still opens.
    let c = Raw::connect_over(farm.tls.as_ref(), farm.servers[0].client).await.expect("TLS connect");
    drop(c);
    assert!(farm.sees_all_up(0).await, "the mesh is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_a_certificate_from_another_ca_is_refused() {
    let farm = tls_farm();
    farm.wait_mesh().await;
    // A fourth server that knows the cluster secret but holds a certificate
    // from a CA of its own: the mesh must not take it.
    let o = farm.servers[0].ip.octets();
    let ip = Ipv4Addr::new(127, o[1], o[2], 4);
    let rogue = Ca::new(&farm.dir.join("rogue"), "rogue-ca");
    let pair = rogue.issue("s4", &[SERVICE, &ip.to_string()]);
    let spec = FarmSpec::default();
    let mut args = spec.server_args(3, ip, farm.servers[0].ip, &farm.secret_file);
    let p = |p: &std::path::Path| p.display().to_string();
    args.extend(["--peer-ca".into(), p(&rogue.cert), "--peer-cert".into(), p(&pair.cert)]);
    args.extend(["--peer-key".into(), p(&pair.key)]);
    let log = std::fs::File::create(farm.dir.join("s4-rogue.log")).unwrap();
    let mut cmd = Command::new(bin("rttp-server"));
    clean_env(&mut cmd);
    cmd.args(&args).stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("spawn s4");
    check_for(T, "s1 refuses the rogue peer's certificate", || async {
        farm.metric(0, "rttp_peer_auth_failures_total").await.is_some_and(|n| n >= 1.0)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    for i in 0..3 {
        let t = farm.farm_info(i).await.expect("a table");
        assert!(t.servers.iter().all(|e| e.id.as_str() != "s4"), "s{} lists the rogue server: {t:?}", i + 1);
    }
    assert!(farm.sees_all_up(0).await, "the three stay linked");
    let _ = child.kill();
    let _ = child.wait();
}

/// The server of the last `Connected` event queued so far, or the next one within `T`.
async fn connected_to(events: &mut Receiver<Event>) -> String {
    tokio::time::timeout(T, async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Connected { server, .. } => return server.to_string(),
                Event::Closed { reason } => panic!("the session ended: {reason}"),
                _ => {}
            }
        }
        panic!("the event stream ended");
    })
    .await
    .expect("a Connected event")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_never_lands_on_a_plaintext_server_of_a_mixed_farm() {
    // s2's client port is plaintext, s1's and s3's speak TLS.
    let spec =
        FarmSpec { tls: true, plaintext: vec![1], groups: vec!["g".into()], drain_window: 1.0, ..FarmSpec::default() };
    let farm = Farm::start(spec);
    farm.wait_mesh().await;
    let t = farm.farm_info(1).await.expect("s2's table, in the clear");
    let kinds: Vec<(&str, Transport)> = t.servers.iter().map(|e| (e.id.as_str(), e.transport)).collect();
    assert_eq!(kinds, [("s1", Transport::Tls), ("s2", Transport::Tcp), ("s3", Transport::Tls)]);
    let ca = farm.ca.as_ref().unwrap().cert.clone();
    // Twelve TLS clients first on s1, selecting at random: s1 or s3, never s2.
    let mut on_s1 = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for k in 0..12u64 {
        let (c, mut ev) = Client::builder()
            .bootstrap(vec![farm.servers[0].client])
            .tls(Some(&ca))
            .tls_name(SERVICE)
            .strategy(rttp_client::Strategy::Random)
            .nick(&format!("t{k}"))
            .seed(k)
            .connect()
            .await
            .expect("a TLS client connects");
        let server = connected_to(&mut ev).await;
        assert_ne!(server, "s2", "a TLS client selected the plaintext server");
        seen.insert(server.clone());
        if server == "s1" {
            on_s1.push((c, ev));
        }
    }
    assert_eq!(seen.len(), 2, "random selection over s1 and s3 used both: {seen:?}");
    // A plaintext client, first on s2, can only stay there.
    let (_p, mut pev) =
        Client::builder().bootstrap(vec![farm.servers[1].client]).nick("plain").seed(5).connect().await.unwrap();
    assert_eq!(connected_to(&mut pev).await, "s2");
    // Draining s1 sends its TLS clients to s3, never to s2.
    farm.term(0);
    for (_c, ev) in &mut on_s1 {
        assert_eq!(connected_to(ev).await, "s3", "a TLS client was moved off TLS");
    }
}

/// The certificate server `addr` presents now (DER), over a fresh TLS connection.
fn presented(farm: &Farm, addr: SocketAddr) -> Vec<u8> {
    let tls = farm.tls.as_ref().expect("a TLS farm");
    let mut conn = rustls::ClientConnection::new(tls.config().clone(), tls.name_for(addr)).expect("client");
    let mut tcp = std::net::TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("TLS handshake");
    }
    conn.peer_certificates().expect("a certificate")[0].to_vec()
}

fn pem_der(path: &std::path::Path) -> Vec<u8> {
    rttp_conn::tls::load_certs(path).expect("PEM")[0].to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_certificate_and_keeps_live_sessions() {
    let farm = Farm::start(FarmSpec { tls: true, ..FarmSpec::default() });
    farm.wait_mesh().await;
    let addr = farm.servers[0].client;
    let ca = farm.ca.as_ref().unwrap();
    let cert = farm.dir.join("certs/s1.pem");
    let old = presented(&farm, addr);
    assert_eq!(old, pem_der(&cert));
    let mut live = Raw::connect_over(farm.tls.as_ref(), addr).await.expect("TLS");
    live.send("HELLO 1 alice\r\nJOIN #h\r\n").await;
    live.until(|f| matches!(f, rttp_proto::ServerFrame::Joined { .. })).await;
    // A new pair in the same files, then SIGHUP: new handshakes get it.
    let ip = farm.servers[0].ip.to_string();
    ca.issue("s1", &[SERVICE, "localhost", &ip]);
    let new = pem_der(&cert);
    assert_ne!(new, old);
    farm.signal(0, nix::sys::signal::Signal::SIGHUP);
    check_for(T, "s1 presents the new certificate", || async { presented(&farm, addr) == new }).await;
    // The session opened before the swap goes on.
    live.send("PING still\r\n").await;
    live.until(|f| matches!(f, rttp_proto::ServerFrame::Pong { .. })).await;
    // A broken file is not taken: the new pair stays in use.
    std::fs::write(&cert, "not a certificate").unwrap();
    farm.signal(0, nix::sys::signal::Signal::SIGHUP);
    // Once the server has handled that SIGHUP (the operator is told), not
    // after a guessed delay: a slow run would check before the reload.
    check_for(T, "the operator is told", || async {
        std::fs::read_to_string(farm.dir.join("s1.log")).unwrap().contains("TLS certificate not reloaded")
    })
    .await;
    assert_eq!(presented(&farm, addr), new, "a bad reload replaced the certificate");
}
