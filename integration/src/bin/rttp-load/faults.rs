//! The workloads that exercise the farm method itself, RTTP only: a
//! connect storm through farm-dns, and the failover of a killed server.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use integration::{Farm, Raw};
use rttp_client::{Client, Event, Strategy, Timers};
use rttp_proto::ServerFrame;

use crate::failover_log::{burst_rates, tally_failover, ClientLog, Opened, Phases};
use crate::report::Report;
use crate::stats::{histogram, p50_p99, CoresUsed, CpuWindow};

/// Users of s1, s2, ... in that order (the table sorts s10 before s2).
fn by_index(t: &rttp_proto::FarmInfo, n: usize) -> Vec<u32> {
    let mut users = vec![0; n];
    for e in &t.servers {
        if let Some(i) = e.id.as_str().strip_prefix('s').and_then(|k| k.parse::<usize>().ok()) {
            if (1..=n).contains(&i) {
                users[i - 1] = e.users;
            }
        }
    }
    users
}

/// Max over mean of users ÷ capacity.
fn max_over_mean(users: &[u32], caps: &[u32]) -> f64 {
    let total: u32 = users.iter().sum();
    let cap: u32 = caps.iter().take(users.len()).sum();
    if total == 0 || cap == 0 {
        return 1.0;
    }
    let mean = f64::from(total) / f64::from(cap);
    users.iter().zip(caps).map(|(&u, &c)| f64::from(u) / f64::from(c.max(1))).fold(0.0, f64::max) / mean
}

/// storm: `clients` clients connect through DNS at `rate`/s, choosing by
/// `strategy`; connect-time percentiles and users ÷ capacity per server
/// (max/mean) over time.
pub(crate) async fn storm(
    farm: &Farm,
    dns: std::net::SocketAddr,
    caps: &[u32],
    clients: usize,
    rate: f64,
    strategy: Strategy,
) -> Report {
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
            let r = Client::builder()
                .service("chat.farm.test", 7000)
                .dns(dns)
                .strategy(strategy)
                .nick(&format!("st{i}"))
                .connect()
                .await;
            if r.is_ok() {
                let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).record(t0.elapsed().as_micros() as u64);
            }
            r.ok()
        }));
        if last_sample.elapsed() > Duration::from_millis(500) {
            last_sample = Instant::now();
            if let Some(t) = farm.farm_info(0).await {
                let users = by_index(&t, caps.len());
                spread.push(max_over_mean(&users, caps));
                samples.push((started.elapsed().as_secs_f64(), users));
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
    let users: Vec<u32> = farm.farm_info(0).await.map(|t| by_index(&t, caps.len())).unwrap_or_default();
    samples.push((started.elapsed().as_secs_f64(), users.clone()));
    let per_server: Vec<(String, Vec<(f64, f64)>)> = (0..users.len())
        .map(|k| {
            (format!("s{}", k + 1), samples.iter().filter_map(|(t, u)| u.get(k).map(|v| (*t, f64::from(*v)))).collect())
        })
        .collect();
    let title = format!("storm ({strategy}): users per server");
    crate::chart(&format!("storm-{strategy}-users.svg"), |p| crate::charts::users_over_time(p, &title, &per_server));
    let max_mean = max_over_mean(&users, caps);
    let worst = spread.iter().copied().fold(max_mean, f64::max);
    let h = hist.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (p50, p99) = p50_p99(&h);
    println!(
        "storm ({strategy}): {clients} clients through DNS at {rate}/s: {} connected; connect p50 {p50:.1} ms, \
         p99 {p99:.1} ms; users per server {users:?} (capacities {caps:?}), max/mean users/capacity {max_mean:.3} \
         at the end, worst {worst:.3} during",
        kept.len()
    );
    let connected = kept.len();
    for (c, _events) in kept {
        c.quit().await;
    }
    Report::new("storm", "rttp")
        .param("clients", clients as f64)
        .param("rate", rate)
        .param("connected", connected as f64)
        .lower("connect_p50_ms", p50)
        .lower("connect_p99_ms", p99)
        .lower("max_over_mean_end", max_mean)
        .lower("max_over_mean_worst", worst)
}

/// A library client on s1 (group a, alone there) in `room`.
async fn on_s1(farm: &Farm, nick: &str, timers: Timers, room: &str) -> (Client, tokio::sync::mpsc::Receiver<Event>) {
    let (c, ev) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .strategy(Strategy::Group)
        .group("a")
        .nick(nick)
        .timers(timers)
        .connect()
        .await
        .expect("a client on s1");
    c.join(room).await.expect("join");
    (c, ev)
}

/// One sender per room: a raw connection on s2 (untagged `SAY`s), or a
/// library client on the server that dies (tagged lines, kept until
/// acknowledged and sent again after the move).
enum Sender {
    Raw(Raw),
    Library(rttp_client::Client),
}

/// failover: `clients` clients on s1 (group a) in `rooms` rooms, senders on
/// s2 (or, with `senders_on_killed`, library clients on s1 too); s1 is
/// killed mid-run. Time until each client is back in its room, and
/// messages lost or duplicated.
pub(crate) async fn failover(farm: &mut Farm, clients: usize, rooms: usize, senders_on_killed: bool) -> Report {
    let timers =
        Timers { silence: Duration::from_secs(2), ping_every: Duration::from_millis(500), ..Timers::default() };
    let seen: Arc<Mutex<HashMap<usize, ClientLog>>> = Default::default();
    let opened: Opened = Default::default();
    let detours: Arc<crate::detours::Detours> = Default::default();
    // Membership notices about others the clients read (JOINED, PARTED):
    // the failover's noise in their rooms, from the kill on.
    let notices = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut cs = Vec::new();
    let pb = crate::progress(clients, "clients on the server to kill");
    for i in 0..clients {
        pb.inc(1);
        let (c, mut ev) = on_s1(farm, &format!("f{i}"), timers, &format!("#f{}", i % rooms)).await;
        let (seen, opened, detours, notices) = (seen.clone(), opened.clone(), detours.clone(), notices.clone());
        let me = format!("f{i}");
        tokio::spawn(async move {
            while let Some(e) = ev.recv().await {
                let mut s = seen.lock().unwrap_or_else(|e| e.into_inner());
                let entry = s.entry(i).or_default();
                detours.on(&e, entry.down.is_some());
                match e {
                    Event::Joined { nick, .. } | Event::Parted { nick, .. }
                        if entry.down.is_some() && nick.as_str() != me =>
                    {
                        notices.fetch_add(1, Ordering::Relaxed);
                    }
                    Event::Message { text, .. } => entry.msgs.push(text.to_string()),
                    Event::Connected { server, .. } if entry.down.is_some() => {
                        entry.opened.get_or_insert_with(Instant::now);
                        opened.lock().unwrap_or_else(|e| e.into_inner()).push((server, Instant::now()))
                    }
                    // A second loss (of a survivor) is a detour, not a new
                    // start: the time back counts from the kill.
                    Event::Disconnected { .. } => {
                        entry.down.get_or_insert_with(Instant::now);
                        entry.moving = true;
                    }
                    Event::Rejoined { .. } if entry.down.is_some() => {
                        entry.back.get_or_insert_with(Instant::now);
                        entry.moving = false;
                    }
                    _ => {}
                }
            }
        });
        cs.push(c);
    }
    pb.finish_and_clear();
    let mut senders = Vec::new();
    let acks: Arc<Mutex<(usize, usize)>> = Default::default();
    for r in 0..rooms {
        if senders_on_killed {
            let (c, mut ev) = on_s1(farm, &format!("fs{r}"), timers, &format!("#f{r}")).await;
            let acks = acks.clone();
            tokio::spawn(async move {
                while let Some(e) = ev.recv().await {
                    let mut a = acks.lock().unwrap_or_else(|e| e.into_inner());
                    match e {
                        Event::Acked { .. } => a.0 += 1,
                        Event::Unacked { .. } => a.1 += 1,
                        _ => {}
                    }
                }
            });
            senders.push(Sender::Library(c));
        } else {
            let mut s = Raw::hello(farm.servers[1].client, &format!("fs{r}")).await;
            s.send(&format!("JOIN #f{r}\r\n")).await;
            s.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
            senders.push(Sender::Raw(s));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let per_room = 50;
    let mut killed_at = Instant::now();
    // Who used the cores in the second after the kill, when most clients
    // come back: the survivors, or this load generator beside them.
    let survivors: Vec<(String, u32)> =
        (1..farm.servers.len()).filter_map(|i| Some((format!("s{}", i + 1), farm.pid_of(i)?))).collect();
    let mut window = None;
    let mut cpu = CoresUsed::default();
    for k in 0..per_room {
        if k == 15 {
            farm.kill(0);
            killed_at = Instant::now();
            window = Some(CpuWindow::start(survivors.clone()));
        }
        if k == 25 {
            cpu = window.take().map_or(cpu, |w| w.cores());
        }
        for (r, s) in senders.iter_mut().enumerate() {
            let t = format!("f{r}-{k}");
            match s {
                Sender::Raw(s) => s.send(&format!("SAY #f{r} {}\r\n{t}\r\n", t.len())).await,
                Sender::Library(c) => {
                    c.say(&format!("#f{r}"), &t).await.expect("say");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Library senders: until every line is acknowledged or given up (30 s).
    let all = if senders_on_killed { rooms * per_room } else { 0 };
    let until = Instant::now() + Duration::from_secs(40);
    while Instant::now() < until && {
        let a = acks.lock().unwrap_or_else(|e| e.into_inner());
        a.0 + a.1 < all
    } {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Until every client is back in its room and none is on a second move
    // (at most 30 s more: a crowd of 10,000 takes seconds), then time for
    // the last replays: a client still on its way is not a client that
    // lost its messages.
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until && {
        let s = seen.lock().unwrap_or_else(|e| e.into_inner());
        s.values().filter(|e| e.back.is_some() && !e.moving).count() < clients
    } {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, unacked) = *acks.lock().unwrap_or_else(|e| e.into_inner());
    let s = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (lost, dup, mut times) = tally_failover(&s, clients, rooms, per_room);
    let moving = s.values().filter(|e| e.moving).count();
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        times.get(((times.len() as f64 * q) as usize).min(times.len().saturating_sub(1))).copied().unwrap_or(f64::NAN)
    };
    let rates = burst_rates(&opened.lock().unwrap_or_else(|e| e.into_inner()));
    let (again, retries, gave_up) = (
        detours.moved_again.load(Ordering::Relaxed),
        detours.retries.load(Ordering::Relaxed),
        detours.gave_up.load(Ordering::Relaxed),
    );
    let detoured = detours.summary();
    let phases = Phases::of(&s, killed_at);
    let burst_max = rates.iter().map(|r| r.1).fold(0.0, f64::max);
    let shown: Vec<String> = rates.iter().map(|(s, r)| format!("{s} {r:.0}")).collect();
    let who = if senders_on_killed {
        format!("senders on the killed server: {acked} lines acknowledged, {unacked} given up; ")
    } else {
        String::from("senders on s2; ")
    };
    println!(
        "failover: {clients} clients in {rooms} rooms on the killed server: {} back ({moving} on a move at the end); back in rooms p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; \
         {who}{} messages expected, lost {lost}, duplicated {dup}; sessions the moved clients opened per second \
         at each survivor (most in any 250 ms): {}; detours: {detoured}; membership notices read {}\n  phases p50/p99 (ms): kill to loss seen {}, loss to session open {}, open to back in room {}\n  \
         cores used in the {:.1} s after the kill (of {}): rttp-load {:.2}, {}idle {:.2}",
        times.len(),
        pct(0.5),
        pct(0.99),
        times.last().copied().unwrap_or(f64::NAN),
        clients * per_room,
        shown.join(", "),
        notices.load(Ordering::Relaxed),
        phases.seen,
        phases.open,
        phases.rejoin,
        cpu.secs,
        std::thread::available_parallelism().map_or(0, usize::from),
        cpu.own,
        cpu.others.iter().map(|(n, c)| format!("{n} {c:.2}, ")).collect::<String>(),
        cpu.idle
    );
    for c in cs {
        c.quit().await;
    }
    for s in senders {
        if let Sender::Library(c) = s {
            c.quit().await;
        }
    }
    Report::new("failover", "rttp")
        .param("cores_after_kill_load_generator", cpu.own)
        .param("cores_after_kill_survivors", cpu.others.iter().map(|(_, c)| c).sum())
        .param("cores_after_kill_idle", cpu.idle)
        .param("senders_on_killed", f64::from(u8::from(senders_on_killed)))
        .lower("unacked", unacked as f64)
        .param("clients", clients as f64)
        .param("rooms", rooms as f64)
        .param("back", times.len() as f64)
        .lower("moving_at_end", moving as f64)
        .param("expected", (clients * per_room) as f64)
        .lower("back_p50_ms", pct(0.5))
        .lower("back_p99_ms", pct(0.99))
        .lower("lost", lost as f64)
        .lower("duplicated", dup as f64)
        .lower("survivor_sessions_per_s_max", burst_max)
        .lower("moved_again", again as f64)
        .lower("retries", retries as f64)
        .lower("gave_up", gave_up as f64)
        .lower("membership_notices", notices.load(Ordering::Relaxed) as f64)
}
