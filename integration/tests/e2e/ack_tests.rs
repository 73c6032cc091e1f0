//! Acknowledged sends on real processes: senders on one server keep
//! talking while it hangs (`SIGSTOP`); their lines wait in the library,
//! unacknowledged, go again from the server they move to, and every line
//! acknowledged reaches every reader on the other servers exactly once,
//! also after the hung server wakes up (`SIGCONT`) with the old copies.

use std::collections::HashMap;
use std::time::Duration;

use integration::{Farm, FarmSpec, Raw};
use rttp_client::{Client, Event, Strategy};
use rttp_proto::ServerFrame;

const SENDERS: usize = 6;
const LINES: usize = 30;

/// One sender: says `LINES` lines, one every 100 ms, and waits for each to
/// be acknowledged or given up; returns (acknowledged texts, given up).
async fn sender(k: usize, c: Client, mut events: tokio::sync::mpsc::Receiver<Event>) -> (Vec<String>, usize) {
    let mut tags = HashMap::new();
    let (mut acked, mut unacked) = (Vec::new(), 0);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while acked.len() + unacked < LINES && tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick(), if tags.len() < LINES => {
                let text = format!("snd{k}-{}", tags.len());
                tags.insert(c.say("#ack", &text).await.expect("say"), text);
            }
            e = events.recv() => match e {
                Some(Event::Acked { tag, .. }) => acked.push(tags[&tag].clone()),
                Some(Event::Unacked { .. }) => unacked += 1,
                Some(Event::Closed { reason }) => panic!("sender {k} closed: {reason}"),
                Some(_) => {}
                None => break,
            },
        }
    }
    c.quit().await;
    (acked, unacked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_lines_survive_a_hung_server_once_each() {
    // Groups a, b, c: the senders ask for group a, which is s1 alone.
    let spec = FarmSpec { groups: ["a", "b", "c"].map(String::from).into(), ..FarmSpec::default() };
    let farm = Farm::start(spec);
    farm.wait_mesh().await;
    let mut readers = Vec::new();
    for (i, name) in [(1, "r1"), (2, "r2"), (1, "r3"), (2, "r4")] {
        let mut r = Raw::hello(farm.servers[i].client, name).await;
        r.send("JOIN #ack\r\n").await;
        r.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
        readers.push(r);
    }
    let mut senders = Vec::new();
    for k in 0..SENDERS {
        let (c, mut ev) = Client::builder()
            .bootstrap(vec![farm.servers[0].client])
            .group("a")
            .strategy(Strategy::Group)
            .nick(&format!("snd{k}"))
            .seed(k as u64)
            .connect()
            .await
            .expect("a sender connects");
        while let Ok(e) = ev.try_recv() {
            if let Event::Connected { server, .. } = e {
                assert_eq!(server.as_str(), "s1", "sender {k} is on the server that will hang");
            }
        }
        c.join("#ack").await.unwrap();
        senders.push((c, ev));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks: Vec<_> = senders.into_iter().enumerate().map(|(k, (c, ev))| tokio::spawn(sender(k, c, ev))).collect();
    // A second in, s1 hangs with lines in flight; the senders keep typing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    farm.stop(0);
    let mut acked = Vec::new();
    for t in tasks {
        let (a, unacked) = t.await.expect("a sender");
        assert_eq!(unacked, 0, "a line was given up");
        assert_eq!(a.len(), LINES, "every line acknowledged");
        acked.extend(a);
    }
    // The hung server wakes with the old copies; they must not show twice.
    farm.cont(0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for (i, r) in readers.iter_mut().enumerate() {
        let mut seen: HashMap<String, usize> = HashMap::new();
        while let Ok(Some(f)) = r.frame_within(Duration::from_millis(500)).await {
            match f {
                ServerFrame::Msg { text, .. } => *seen.entry(text.to_string()).or_default() += 1,
                ServerFrame::Ping { token } => r.send(&format!("PONG {token}\r\n")).await,
                _ => {}
            }
        }
        let missing: Vec<&String> = acked.iter().filter(|t| !seen.contains_key(*t)).collect();
        let twice: Vec<(&String, &usize)> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(missing.is_empty(), "reader {} lost {} acknowledged lines: {missing:?}", i + 1, missing.len());
        assert!(twice.is_empty(), "reader {} got lines twice: {twice:?}", i + 1);
        assert_eq!(seen.len(), SENDERS * LINES, "reader {}", i + 1);
    }
}
