//! Faults with clients chatting through them. Every message carries its
//! sender's sequence number; every client's deliveries are counted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration::{check_for, Farm, FarmSpec, Raw};
use rttp_client::{Client, Event, Strategy, Timers};
use rttp_proto::ServerFrame;

const T: Duration = Duration::from_secs(20);

/// What one client saw.
#[derive(Debug, Default)]
struct Seen {
    /// (room, text) of every message shown, in order.
    msgs: Vec<(String, String)>,
    rejoined: Vec<String>,
    connected: Vec<String>,
    /// REDIRECTs followed (a move the server asked for).
    redirected: usize,
    /// Losses of the server (a move the client had to find by itself).
    disconnected: Vec<String>,
    closed: bool,
}

/// Starts `n` clients named `<prefix><i>` on the server of group `group`
/// (reached through `first`), each in room `#r<i % rooms>`; their events
/// are recorded.
async fn clients(
    farm: &Farm,
    first: usize,
    group: &str,
    prefix: &str,
    n: usize,
    rooms: usize,
) -> (Vec<Client>, Vec<Arc<Mutex<Seen>>>) {
    let timers =
        Timers { silence: Duration::from_secs(2), ping_every: Duration::from_millis(500), ..Timers::default() };
    let mut cs = Vec::new();
    let mut seen = Vec::new();
    for i in 0..n {
        let (c, mut ev) = Client::builder()
            .bootstrap(vec![farm.servers[first].client])
            .strategy(Strategy::Group)
            .group(group)
            .nick(&format!("{prefix}{i}"))
            .timers(timers)
            .connect()
            .await
            .unwrap();
        c.join(&format!("#r{}", i % rooms)).await.unwrap();
        let s = Arc::new(Mutex::new(Seen::default()));
        let s2 = s.clone();
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                let mut s = s2.lock().unwrap();
                match e {
                    Event::Message { room, text, .. } => s.msgs.push((room.to_string(), text.to_string())),
                    Event::Rejoined { room, .. } => s.rejoined.push(room.to_string()),
                    Event::Connected { server, .. } => s.connected.push(server.to_string()),
                    Event::Redirected { .. } => s.redirected += 1,
                    Event::Disconnected { reason, .. } => s.disconnected.push(reason),
                    Event::Closed { .. } => s.closed = true,
                    _ => {}
                }
            }
        });
        cs.push(c);
        seen.push(s);
    }
    (cs, seen)
}

/// One raw sender per room on the server at `on`, each saying `count` numbered
/// messages, `every` apart.
async fn senders(on: std::net::SocketAddr, rooms: usize, count: usize, every: Duration) {
    let mut raws = Vec::new();
    for r in 0..rooms {
        let mut s = Raw::hello(on, &format!("sender{r}")).await;
        s.send(&format!("JOIN #r{r}\r\n")).await;
        s.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
        raws.push(s);
    }
    for k in 0..count {
        for (r, s) in raws.iter_mut().enumerate() {
            let text = format!("r{r}-{k}");
            s.send(&format!("SAY #r{r} {}\r\n{text}\r\n", text.len())).await;
        }
        tokio::time::sleep(every).await;
    }
    // Keep the senders' sessions until their messages have fanned out.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Lost and duplicated messages over all clients.
fn count(seen: &[Arc<Mutex<Seen>>], rooms: usize, sent: usize) -> (usize, usize) {
    let (mut lost, mut dup) = (0, 0);
    for (i, s) in seen.iter().enumerate() {
        let s = s.lock().unwrap();
        let room = format!("#r{}", i % rooms);
        let mut got: HashMap<&str, usize> = HashMap::new();
        for (r, t) in &s.msgs {
            if *r == room {
                *got.entry(t.as_str()).or_default() += 1;
            }
        }
        let r = i % rooms;
        for k in 0..sent {
            match got.get(format!("r{r}-{k}").as_str()) {
                None => lost += 1,
                Some(&n) => dup += n - 1,
            }
        }
    }
    (lost, dup)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_server_with_100_clients_in_20_rooms() {
    let groups = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let mut farm = Farm::start(FarmSpec { groups, ..FarmSpec::default() });
    farm.wait_mesh().await;
    let (rooms, n, sent) = (20, 100, 40);
    let (cs, seen) = clients(&farm, 0, "a", "c", n, rooms).await;
    for s in &seen {
        let s = s.clone();
        check_for(T, "every client on s1", move || {
            let s = s.clone();
            async move { s.lock().unwrap().connected.last().is_some_and(|c| c == "s1") }
        })
        .await;
    }
    // Senders on s2 talk through the kill: 40 messages per room, 100 ms apart;
    // s1 dies after about a second of it.
    let s2 = farm.servers[1].client;
    let kill = async {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        farm.kill(0);
    };
    tokio::join!(senders(s2, rooms, sent, Duration::from_millis(100)), kill);
    for (i, s) in seen.iter().enumerate() {
        let s = s.clone();
        let room = format!("#r{}", i % rooms);
        check_for(T, &format!("c{i} back in {room} on a survivor"), move || {
            let (s, room) = (s.clone(), room.clone());
            async move {
                let s = s.lock().unwrap();
                s.rejoined.contains(&room) && s.connected.last().is_some_and(|c| c != "s1")
            }
        })
        .await;
    }
    // Replays arrive after the rejoin: wait for the last one, then count.
    check_for(T, "every message delivered once the replays are in", || async { count(&seen, rooms, sent).0 == 0 })
        .await;
    let (lost, dup) = count(&seen, rooms, sent);
    println!(
        "kill -9 with {n} clients in {rooms} rooms, {} messages each expected: lost {lost}, duplicated {dup}",
        sent
    );
    assert_eq!(dup, 0, "no message shown twice");
    assert_eq!(lost, 0, "senders on a survivor: everything said during the move is replayed");
    assert!(seen.iter().all(|s| !s.lock().unwrap().closed), "no client gave up");
    for c in cs {
        c.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigstop_moves_clients_by_heartbeat_and_farm_dns_drops_it() {
    let groups = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let mut farm = Farm::start(FarmSpec { groups, ..FarmSpec::default() });
    farm.start_dns();
    check_for(T, "three A records", || async {
        farm.dig(&["chat.farm.test", "A", "+short"]).await.lines().count() == 3
    })
    .await;
    let (rooms, n, sent) = (5, 10, 30);
    let (cs, seen) = clients(&farm, 0, "a", "c", n, rooms).await;
    let s2 = farm.servers[1].client;
    let stop = async {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        farm.stop(0);
    };
    tokio::join!(senders(s2, rooms, sent, Duration::from_millis(150)), stop);
    check_for(T, "s1 DOWN on s2", || async { farm.status_seen(1, "s1").await == Some(rttp_proto::Status::Down) }).await;
    let gone = format!("{}.1", farm.prefix());
    check_for(T, "farm-dns dropped s1", || async {
        let a = farm.dig(&["chat.farm.test", "A", "+short"]).await;
        a.lines().count() == 2 && !a.lines().any(|l| l.trim() == gone)
    })
    .await;
    for (i, s) in seen.iter().enumerate() {
        let s = s.clone();
        check_for(T, &format!("c{i} moved off the stopped server"), move || {
            let s = s.clone();
            async move {
                let s = s.lock().unwrap();
                !s.rejoined.is_empty() && s.connected.last().is_some_and(|c| c != "s1")
            }
        })
        .await;
    }
    check_for(T, "every message delivered once the replays are in", || async { count(&seen, rooms, sent).0 == 0 })
        .await;
    let (lost, dup) = count(&seen, rooms, sent);
    println!("SIGSTOP with {n} clients in {rooms} rooms, {sent} messages each expected: lost {lost}, duplicated {dup}");
    assert_eq!(dup, 0, "no message shown twice");
    assert_eq!(lost, 0, "senders on a survivor: what was said while s1 hung is replayed after the move");
    farm.cont(0);
    for c in cs {
        c.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_leaves_no_client_disconnected() {
    let mut farm = Farm::start(FarmSpec { drain_window: 1.0, ..FarmSpec::default() });
    farm.wait_mesh().await;
    let mut cs = Vec::new();
    let mut seen = Vec::new();
    for first in 0..3 {
        let (c, s) = clients(&farm, first, ["g1", "g2", "g1"][first], &format!("b{first}x"), 3, 1).await;
        cs.extend(c);
        seen.extend(s);
    }
    for i in 0..3 {
        farm.term(i);
        let status = farm.wait_exit(i, Duration::from_secs(15)).await.expect("the drained server exits");
        assert_eq!(status.code(), Some(0), "s{} exits 0 after its drain", i + 1);
        farm.launch(i).await;
        check_for(T, &format!("s{} UP everywhere after its restart", i + 1), || farm.all_up()).await;
    }
    // Everyone is still connected: a message from anywhere reaches all nine.
    let mut s = Raw::hello(farm.servers[1].client, "last").await;
    s.send("JOIN #r0\r\n").await;
    s.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    s.send("SAY #r0 4\r\ndone\r\n").await;
    for (i, v) in seen.iter().enumerate() {
        let v = v.clone();
        check_for(T, &format!("client {i} still in #r0"), move || {
            let v = v.clone();
            async move { v.lock().unwrap().msgs.iter().any(|(_, t)| t == "done") }
        })
        .await;
    }
    assert!(seen.iter().all(|v| !v.lock().unwrap().closed), "no client gave up");
    let moves: usize = seen.iter().map(|v| v.lock().unwrap().connected.len().saturating_sub(1)).sum();
    let redirects: usize = seen.iter().map(|v| v.lock().unwrap().redirected).sum();
    println!("rolling restart: 9 clients, {moves} moves in all ({redirects} by REDIRECT), none disconnected");
    for (i, v) in seen.iter().enumerate() {
        let v = v.lock().unwrap();
        // Every server drained once, so every client was asked to move at least once.
        assert!(v.redirected >= 1, "client {i} was moved by REDIRECT, not left in place: {v:?}");
        assert!(v.disconnected.is_empty(), "client {i} was redirected, never dropped: {:?}", v.disconnected);
    }
    assert_eq!(moves, redirects, "every move was a REDIRECT followed, none a reconnection after a loss");
    for c in cs {
        c.quit().await;
    }
}
