//! Rebalancing on real processes: a drained and restarted server gets its
//! share back with nothing lost; a balanced farm makes no moves, and an
//! unbalanced one does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use integration::{check_for, Farm, FarmSpec, Raw};
use rttp_client::{Client, Event, Strategy};
use rttp_proto::ServerFrame;

const T: Duration = Duration::from_secs(30);

/// Fast rebalancing for tests: a session may move after 1 s, a server moves
/// up to a quarter of its users a second.
const FAST: [&str; 4] = ["--rebalance-min-stay", "1", "--rebalance-rate", "0.25"];

fn spec() -> FarmSpec {
    FarmSpec {
        groups: vec!["g".into()],
        drain_window: 1.0,
        extra: FAST.iter().map(|s| s.to_string()).collect(),
        ..FarmSpec::default()
    }
}

/// One figure of each running server's metrics (0 for one that is not).
async fn each(farm: &Farm, metric: &str) -> Vec<u32> {
    farm.metric_each(metric).await.into_iter().map(|v| v as u32).collect()
}

/// Each server's sessions.
async fn users(farm: &Farm) -> Vec<u32> {
    each(farm, "rttp_sessions ").await
}

/// Sessions moved by rebalancing, over the farm.
async fn rebalanced(farm: &Farm) -> u32 {
    each(farm, "rttp_rebalanced_total ").await.iter().sum()
}

fn max_over_mean(users: &[u32]) -> f64 {
    let mean = f64::from(users.iter().sum::<u32>()) / users.len() as f64;
    f64::from(users.iter().copied().max().unwrap_or(0)) / mean.max(1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_and_restarted_server_gets_its_share_back_and_nothing_is_lost() {
    let mut farm = Farm::start(spec());
    farm.wait_mesh().await;
    // 45 members in one room, entering through each server in turn and
    // choosing by least users: about a third on each.
    let mut clients = Vec::new();
    let mut seen: Vec<Arc<Mutex<Vec<String>>>> = Vec::new();
    for i in 0..45 {
        let (c, mut ev) = Client::builder()
            .bootstrap(vec![farm.servers[i % 3].client])
            .strategy(Strategy::LeastUsers)
            .nick(&format!("m{i}"))
            .connect()
            .await
            .unwrap();
        c.join("#r").await.unwrap();
        let s = Arc::new(Mutex::new(Vec::new()));
        let s2 = s.clone();
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                // Messages, and the moves and errors that explain a loss ("!").
                let line = match e {
                    Event::Message { text, id, .. } => format!("{text} {id}"),
                    Event::Redirected { server, reason, .. } => format!("! redirected to {server} ({reason})"),
                    Event::Rejoined { after, .. } => format!("! rejoined after {after:?}"),
                    Event::ServerError { code, reason } => format!("! ERR {code} {reason}"),
                    Event::Disconnected { server, reason } => format!("! lost {server}: {reason}"),
                    _ => continue,
                };
                s2.lock().unwrap().push(line);
            }
        });
        clients.push(c);
        seen.push(s);
    }
    check_for(T, "the 45 members spread over the three servers", || async {
        users(&farm).await.iter().all(|&u| u >= 10)
    })
    .await;
    // Three of the members say a numbered line every 100 ms throughout.
    let talk = {
        let speakers: Vec<Client> = clients.drain(..3).collect();
        tokio::spawn(async move {
            for k in 0..150 {
                for (j, c) in speakers.iter().enumerate() {
                    c.say("#r", &format!("m{j}-{k}")).await.unwrap();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            speakers
        })
    };
    // Every member has seen a line before anyone moves, so that what this
    // test counts is the rebalancing. (A member that saw none rejoins from
    // the position its JOINED named: `ack_tests` covers that.)
    for (i, s) in seen.iter().enumerate() {
        let s = s.clone();
        check_for(T, &format!("m{i} saw a line"), move || {
            let s = s.clone();
            async move { s.lock().unwrap().iter().any(|l| !l.starts_with('!')) }
        })
        .await;
    }
    // Drain s3 (its sessions go to s1 and s2), restart it empty.
    farm.term(2);
    farm.wait_exit(2, Duration::from_secs(15)).await.expect("s3 exits after its drain");
    let before = users(&farm).await;
    let moves_before = rebalanced(&farm).await;
    farm.launch(2).await;
    check_for(T, "s3 UP everywhere", || farm.all_up()).await;
    let needed: u32 = before[..2].iter().map(|&u| u.saturating_sub(15)).sum();
    check_for(T, "max/mean users <= 1.10", || async { max_over_mean(&users(&farm).await) <= 1.10 }).await;
    // Settled: no move for 2 s (the last moves finish the fill of s3).
    let mut last = rebalanced(&farm).await;
    for _ in 0..15 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = rebalanced(&farm).await;
        if std::mem::replace(&mut last, now) == now {
            break;
        }
    }
    let settled = users(&farm).await;
    assert!(max_over_mean(&settled) <= 1.10, "{settled:?}");
    let moves = rebalanced(&farm).await - moves_before;
    println!("rebalance: {before:?} after the drain, {settled:?} settled, {moves} moves ({needed} needed)");
    assert!(settled[2] >= 12, "s3 got users back: {settled:?}");
    assert!(f64::from(moves) <= f64::from(needed) * 1.25, "{moves} moves for {needed} needed");
    // Settled means settled: no more moves while the members keep talking.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rebalanced(&farm).await - moves_before, moves, "no moves once balanced");
    let speakers = talk.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Every member (the speakers too) saw every line once.
    for (i, s) in seen.iter().enumerate() {
        let got = s.lock().unwrap();
        let mut n: HashMap<&str, usize> = HashMap::new();
        for t in got.iter().filter(|t| !t.starts_with('!')) {
            *n.entry(t.split(' ').next().unwrap_or_default()).or_default() += 1;
        }
        let lost = (0..3)
            .flat_map(|j| (0..150).map(move |k| format!("m{j}-{k}")))
            .filter(|t| !n.contains_key(t.as_str()))
            .count();
        let dup: usize = n.values().map(|&c| c - 1).sum();
        assert_eq!((lost, dup), (0, 0), "member m{i}: lost, duplicated; what it saw:\n{}", got.join("\n"));
    }
    for c in speakers.into_iter().chain(clients) {
        c.quit().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balanced_farm_makes_no_moves_and_an_unbalanced_one_does() {
    let farm = Farm::start(spec());
    farm.wait_mesh().await;
    // Raw sessions stay exactly where they are put: 8 on each server.
    let mut raws = Vec::new();
    for i in 0..24 {
        raws.push((i % 3, Raw::hello(farm.servers[i % 3].client, &format!("r{i}")).await));
    }
    check_for(T, "8 sessions on each server", || async { users(&farm).await == [8, 8, 8] }).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(rebalanced(&farm).await, 0, "a balanced farm makes no moves");
    for (_, r) in raws.iter_mut() {
        while let Ok(Some(f)) = r.frame_within(Duration::from_millis(20)).await {
            assert!(!matches!(f, ServerFrame::Redirect { .. }), "{f:?}");
        }
    }
    // 16 more on s1 (24, 8, 8): s1 is at 1.8 x the mean and sheds.
    for i in 24..40 {
        raws.push((0, Raw::hello(farm.servers[0].client, &format!("r{i}")).await));
    }
    check_for(T, "s1 sheds its excess", || async { rebalanced(&farm).await >= 8 }).await;
    let mut redirected = 0;
    for (on, r) in raws.iter_mut() {
        while let Ok(Some(f)) = r.frame_within(Duration::from_millis(20)).await {
            if let ServerFrame::Redirect { reason, server, .. } = f {
                assert_eq!(reason.as_str(), "rebalance");
                assert_eq!(*on, 0, "only s1 sheds");
                assert_ne!(server.as_str(), "s1");
                redirected += 1;
            }
        }
    }
    assert!(redirected >= 8, "{redirected} rebalance REDIRECTs seen");
}
