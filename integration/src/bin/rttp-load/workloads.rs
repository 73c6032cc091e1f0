//! The workloads, each bounded in count and time. Each returns a JSON
//! object (as text) and prints a human summary.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use integration::{Farm, Raw};
use rand::Rng;
use rttp_client::{Client, Event, Strategy, Timers};
use rttp_proto::{ClientFrame, Room, ServerFrame};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::conn::{body, now_us, sent_at, LoadConn};
use crate::stats::{cpu_seconds, histogram, p50_p99, rss_kib};

/// Named figures of a run, for comparisons.
pub(crate) type Figures = Vec<(&'static str, f64)>;

/// Readers record latencies here.
type Shared = Arc<Mutex<Histogram<u64>>>;

/// Reads MSG frames until `stop`, recording latency into `hist` and
/// counting into `count`.
fn reader(
    mut c: LoadConn,
    hist: Shared,
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut local = histogram();
        loop {
            tokio::select! {
                f = c.next() => match f {
                    Ok(ServerFrame::Msg { text, .. }) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        if let Some(t) = sent_at(&text) {
                            let _ = local.record(now_us().saturating_sub(t).max(1));
                        }
                    }
                    Ok(ServerFrame::Ping { token }) => { let _ = c.send(&ClientFrame::Pong { token }).await; }
                    Ok(_) => {}
                    Err(_) => break,
                },
                _ = stop.cancelled() => break,
            }
        }
        let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).add(&local);
    })
}

/// fanout: one room, `members` spread over the servers, one sender on s1,
/// 64-byte messages, at max rate (at most 1,000 in flight) or at `rate`/s.
pub(crate) async fn fanout(farm: &Farm, members: usize, seconds: f64, rate: Option<f64>) -> (String, Figures) {
    let n = farm.servers.len();
    let stop = CancellationToken::new();
    let (same, other) = (Arc::new(Mutex::new(histogram())), Arc::new(Mutex::new(histogram())));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let pb = crate::progress(members, "members joining");
    for i in 0..members {
        pb.inc(1);
        let mut c = LoadConn::hello(farm.servers[i % n].client, &format!("m{i}")).await.expect("member");
        c.join("#fanout").await.expect("join");
        let h = if i % n == 0 { same.clone() } else { other.clone() };
        tasks.push(reader(c, h, count.clone(), stop.clone()));
    }
    pb.finish_and_clear();
    let mut sender = LoadConn::hello(farm.servers[0].client, "sender").await.expect("sender");
    sender.join("#fanout").await.expect("join");
    let room: Room = "#fanout".parse().expect("room");
    let permits = Arc::new(Semaphore::new(1000));
    let (mut rd, mut wr) = sender.conn.into_split();
    // The sender's own copies come back: each returns a permit.
    let echo_permits = permits.clone();
    let echo_stop = stop.clone();
    let echo = tokio::spawn(async move {
        loop {
            tokio::select! {
                f = rd.read_frame() => match f {
                    Ok(Some(ServerFrame::Msg { .. })) => echo_permits.add_permits(1),
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                },
                _ = echo_stop.cancelled() => break,
            }
        }
    });
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut sent = 0u64;
    let mut tick = rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
    while Instant::now() < end {
        match &mut tick {
            Some(t) => {
                t.tick().await;
            }
            None => match tokio::time::timeout(Duration::from_secs(1), permits.acquire()).await {
                Ok(Ok(p)) => p.forget(),
                _ => continue,
            },
        }
        if wr.write_frame(&ClientFrame::Say { room, text: body(sent) }).await.is_err() {
            break;
        }
        sent += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = echo.await;
    let delivered = count.load(Ordering::Relaxed);
    let same = same.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let other = other.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (s50, s99) = p50_p99(&same);
    let (o50, o99) = p50_p99(&other);
    let mode = rate.map_or("max".to_string(), |r| format!("{r}/s"));
    crate::chart(&format!("fanout-{}-latency.svg", rate.map_or("max".to_string(), |r| format!("{r}"))), |p| {
        crate::charts::latency_cdf(
            p,
            &format!("fanout {mode}: latency CDF"),
            &[("sender's server", &same), ("other servers", &other)],
        )
    });
    let rate_out = delivered as f64 / elapsed;
    println!(
        "fanout {mode}: {members} members on {n} servers, {sent} sent in {elapsed:.1} s, {delivered} deliveries = {rate_out:.0}/s; \
         p50/p99 same server {s50:.2}/{s99:.2} ms, other servers {o50:.2}/{o99:.2} ms"
    );
    let figures = vec![
        ("deliveries_per_s", rate_out),
        ("p50_same_ms", s50),
        ("p99_same_ms", s99),
        ("p50_other_ms", o50),
        ("p99_other_ms", o99),
    ];
    let json = format!(
        "{{\"workload\":\"fanout\",\"mode\":\"{mode}\",\"members\":{members},\"servers\":{n},\"seconds\":{elapsed:.2},\"sent\":{sent},\
         \"deliveries\":{delivered},\"deliveries_per_s\":{rate_out:.0},\"p50_same_ms\":{s50:.3},\"p99_same_ms\":{s99:.3},\
         \"p50_other_ms\":{o50:.3},\"p99_other_ms\":{o99:.3}}}"
    );
    (json, figures)
}

/// rooms: `rooms` rooms, `clients` clients over the servers, each in 2
/// random rooms and saying 1 msg/s (jittered) in one of them.
pub(crate) async fn rooms(farm: &Farm, rooms: usize, clients: usize, seconds: f64) -> (String, Figures) {
    let n = farm.servers.len();
    let stop = CancellationToken::new();
    let hist = Arc::new(Mutex::new(histogram()));
    let count = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let pb = crate::progress(clients, "clients joining");
    for i in 0..clients {
        pb.inc(1);
        let mut c = LoadConn::hello(farm.servers[i % n].client, &format!("r{i}")).await.expect("client");
        let (a, b) = {
            let mut rng = rand::rng();
            (rng.random_range(0..rooms), rng.random_range(0..rooms))
        };
        let mine = [format!("#room{a}"), format!("#room{b}")];
        for r in &mine {
            c.join(r).await.expect("join");
        }
        let (stop, hist, count, sent) = (stop.clone(), hist.clone(), count.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut local = histogram();
            let first = rand::rng().random_range(0..1000u64);
            let mut next = tokio::time::Instant::now() + Duration::from_millis(first);
            let mut seq = 0;
            loop {
                tokio::select! {
                    f = c.next() => match f {
                        Ok(ServerFrame::Msg { text, .. }) => {
                            count.fetch_add(1, Ordering::Relaxed);
                            if let Some(t) = sent_at(&text) { let _ = local.record(now_us().saturating_sub(t).max(1)); }
                        }
                        Ok(ServerFrame::Ping { token }) => { let _ = c.send(&ClientFrame::Pong { token }).await; }
                        Ok(_) => {}
                        Err(_) => break,
                    },
                    _ = tokio::time::sleep_until(next) => {
                        let room: Room = mine[seq % 2].parse().expect("room");
                        if c.send(&ClientFrame::Say { room, text: body(seq as u64) }).await.is_err() { break }
                        sent.fetch_add(1, Ordering::Relaxed);
                        seq += 1;
                        // 1 msg/s, jittered by up to ±10 %.
                        next += Duration::from_millis(rand::rng().random_range(900..1100));
                    }
                    _ = stop.cancelled() => break,
                }
            }
            let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).add(&local);
        }));
    }
    pb.finish_and_clear();
    let pids: Vec<u32> = (0..n).filter_map(|i| farm.pid_of(i)).collect();
    let cpu0: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    count.store(0, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let delivered = count.load(Ordering::Relaxed);
    let cpu: Vec<f64> = pids.iter().zip(&cpu0).map(|(p, c0)| (cpu_seconds(*p) - c0) / elapsed * 100.0).collect();
    let rss: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let hist = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (p50, p99) = p50_p99(&hist);
    crate::chart("rooms-latency.svg", |p| {
        crate::charts::latency_cdf(p, "rooms: latency CDF", &[("all deliveries", &hist)])
    });
    let cpu_mean = cpu.iter().sum::<f64>() / cpu.len().max(1) as f64;
    let rss_mean = rss.iter().sum::<u64>() as f64 / rss.len().max(1) as f64 / 1024.0;
    let rate = delivered as f64 / elapsed;
    println!(
        "rooms: {rooms} rooms, {clients} clients, {elapsed:.1} s: {rate:.0} deliveries/s, p50 {p50:.2} ms, p99 {p99:.2} ms, \
         CPU {cpu_mean:.1} % of a core per server, RSS {rss_mean:.1} MiB per server"
    );
    let figures = vec![
        ("deliveries_per_s", rate),
        ("p50_ms", p50),
        ("p99_ms", p99),
        ("cpu_percent", cpu_mean),
        ("rss_mib", rss_mean),
    ];
    let json = format!(
        "{{\"workload\":\"rooms\",\"rooms\":{rooms},\"clients\":{clients},\"seconds\":{elapsed:.2},\"deliveries_per_s\":{rate:.0},\
         \"p50_ms\":{p50:.3},\"p99_ms\":{p99:.3},\"cpu_percent_per_server\":{cpu_mean:.1},\"rss_mib_per_server\":{rss_mean:.1}}}"
    );
    (json, figures)
}

/// idle: `sessions` idle sessions (HELLO and one JOIN) on s1; memory per
/// session from its RSS.
pub(crate) async fn idle(farm: &Farm, sessions: usize) -> (String, Figures) {
    let pid = farm.pid_of(0).expect("s1 runs");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut conns = Vec::with_capacity(sessions);
    let pb = crate::progress(sessions, "idle sessions");
    for i in 0..sessions {
        pb.inc(1);
        let mut c = LoadConn::hello(farm.servers[0].client, &format!("i{i}")).await.expect("session");
        c.join(&format!("#idle{}", i % 100)).await.expect("join");
        conns.push(c);
    }
    pb.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / sessions as f64;
    println!("idle: {sessions} sessions on s1: RSS {before} -> {after} KiB, {per:.0} bytes per session");
    drop(conns);
    let json = format!("{{\"workload\":\"idle\",\"sessions\":{sessions},\"rss_before_kib\":{before},\"rss_after_kib\":{after},\"bytes_per_session\":{per:.0}}}");
    (json, vec![("bytes_per_session", per)])
}

/// storm: `clients` clients connect through DNS at `rate`/s with p2c;
/// connect-time percentiles and users per server (max/mean) over time.
pub(crate) async fn storm(farm: &Farm, dns: std::net::SocketAddr, clients: usize, rate: f64) -> String {
    let n = farm.servers.len();
    let hist = Arc::new(Mutex::new(histogram()));
    let mut handles = Vec::new();
    let mut kept = Vec::new();
    let mut spread = Vec::new();
    let mut samples: Vec<(f64, Vec<u32>)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    let started = Instant::now();
    let mut last_sample = Instant::now();
    let pb = crate::progress(clients, "clients connecting through DNS");
    for i in 0..clients {
        tick.tick().await;
        pb.inc(1);
        let hist = hist.clone();
        handles.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let r = Client::builder().service("chat.farm.test", 7000).dns(dns).nick(&format!("st{i}")).connect().await;
            if r.is_ok() {
                let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).record(t0.elapsed().as_micros() as u64);
            }
            r.ok()
        }));
        if last_sample.elapsed() > Duration::from_millis(500) {
            last_sample = Instant::now();
            if let Some(t) = farm.farm_info(0).await {
                let users: Vec<u32> = t.servers.iter().map(|e| e.users).collect();
                samples.push((started.elapsed().as_secs_f64(), users.clone()));
                let mean = users.iter().sum::<u32>() as f64 / n as f64;
                let max = *users.iter().max().unwrap_or(&0) as f64;
                spread.push(if mean > 0.0 { max / mean } else { 1.0 });
            }
        }
    }
    pb.finish_and_clear();
    for h in handles {
        if let Ok(Some(c)) = h.await {
            kept.push(c);
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let users: Vec<u32> =
        farm.farm_info(0).await.map(|t| t.servers.iter().map(|e| e.users).collect()).unwrap_or_default();
    samples.push((started.elapsed().as_secs_f64(), users.clone()));
    let per_server: Vec<(String, Vec<(f64, f64)>)> = (0..users.len())
        .map(|k| {
            (format!("s{}", k + 1), samples.iter().filter_map(|(t, u)| u.get(k).map(|v| (*t, f64::from(*v)))).collect())
        })
        .collect();
    crate::chart("storm-users.svg", |p| crate::charts::users_over_time(p, "storm: users per server", &per_server));
    let mean = users.iter().sum::<u32>() as f64 / n as f64;
    let max_mean = *users.iter().max().unwrap_or(&0) as f64 / mean.max(1.0);
    let worst = spread.iter().copied().fold(max_mean, f64::max);
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (p50, p99) = p50_p99(&h);
    println!(
        "storm: {clients} clients through DNS at {rate}/s: {} connected; connect p50 {p50:.1} ms, p99 {p99:.1} ms; \
         users per server {users:?}, max/mean {max_mean:.3} at the end, worst {worst:.3} during",
        kept.len()
    );
    let connected = kept.len();
    for (c, _events) in kept {
        c.quit().await;
    }
    format!(
        "{{\"workload\":\"storm\",\"clients\":{clients},\"rate\":{rate},\"connected\":{connected},\"connect_p50_ms\":{p50:.2},\
         \"connect_p99_ms\":{p99:.2},\"max_over_mean_end\":{max_mean:.3},\"max_over_mean_worst\":{worst:.3}}}"
    )
}

/// What one failover client saw: messages, when it lost its server, when it
/// was back in its room.
type ClientLog = (Vec<String>, Option<Instant>, Option<Instant>);

/// failover: `clients` clients on s1 (group a) in `rooms` rooms, senders on
/// s2; s1 is killed mid-run. Time until each client is back in its room,
/// and messages lost or duplicated.
pub(crate) async fn failover(farm: &mut Farm, clients: usize, rooms: usize) -> String {
    let timers =
        Timers { silence: Duration::from_secs(2), ping_every: Duration::from_millis(500), ..Timers::default() };
    let seen: Arc<Mutex<HashMap<usize, ClientLog>>> = Default::default();
    let mut cs = Vec::new();
    let pb = crate::progress(clients, "clients on the server to kill");
    for i in 0..clients {
        pb.inc(1);
        let (c, mut ev) = Client::builder()
            .bootstrap(vec![farm.servers[0].client])
            .strategy(Strategy::Group)
            .group("a")
            .nick(&format!("f{i}"))
            .timers(timers)
            .connect()
            .await
            .expect("client");
        c.join(&format!("#f{}", i % rooms)).await.expect("join");
        let seen = seen.clone();
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                let entry = s.entry(i).or_default();
                match e {
                    Event::Message { text, .. } => entry.0.push(text.to_string()),
                    Event::Disconnected { .. } => entry.1 = Some(Instant::now()),
                    Event::Rejoined { .. } if entry.1.is_some() && entry.2.is_none() => entry.2 = Some(Instant::now()),
                    _ => {}
                }
            }
        });
        cs.push(c);
    }
    pb.finish_and_clear();
    let mut senders = Vec::new();
    for r in 0..rooms {
        let mut s = Raw::hello(farm.servers[1].client, &format!("fs{r}")).await;
        s.send(&format!("JOIN #f{r}\r\n")).await;
        s.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
        senders.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_room = 50;
    for k in 0..per_room {
        if k == 15 {
            farm.kill(0);
        }
        for (r, s) in senders.iter_mut().enumerate() {
            let t = format!("f{r}-{k}");
            s.send(&format!("SAY #f{r} {}\r\n{t}\r\n", t.len())).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (mut lost, mut dup, mut times) = (0usize, 0usize, Vec::new());
    for i in 0..clients {
        let Some((msgs, down, back)) = s.get(&i) else {
            lost += per_room;
            continue;
        };
        let r = i % rooms;
        for k in 0..per_room {
            let n = msgs.iter().filter(|m| **m == format!("f{r}-{k}")).count();
            if n == 0 {
                lost += 1;
            } else {
                dup += n - 1;
            }
        }
        if let (Some(d), Some(b)) = (down, back) {
            times.push(b.duration_since(*d).as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    println!(
        "failover: {clients} clients in {rooms} rooms on the killed server: {} back; back in rooms p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         {} messages expected, lost {lost}, duplicated {dup}",
        times.len(),
        pct(0.5),
        pct(0.99),
        times.last().copied().unwrap_or(f64::NAN),
        clients * per_room
    );
    for c in cs {
        c.quit().await;
    }
    format!(
        "{{\"workload\":\"failover\",\"clients\":{clients},\"rooms\":{rooms},\"back\":{},\"back_p50_ms\":{:.1},\"back_p99_ms\":{:.1},\
         \"expected\":{},\"lost\":{lost},\"duplicated\":{dup}}}",
        times.len(),
        pct(0.5),
        pct(0.99),
        clients * per_room
    )
}
