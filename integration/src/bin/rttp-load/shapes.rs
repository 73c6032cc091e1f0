//! The workload shapes written once for any [`LoadTarget`]: fanout, rooms
//! and idle. Each is bounded in count and time and returns a [`Report`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::report::Report;
use crate::stats::{cpu_seconds, histogram, p50_p99, rss_kib};
use crate::target::{LoadTarget, Member};

/// Where readers merge their latencies at the end.
type Hist = Arc<Mutex<Histogram<u64>>>;

fn take(h: &Hist) -> Histogram<u64> {
    h.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// CPU seconds of each node so far.
fn cpu_now(pids: &[u32]) -> Vec<f64> {
    pids.iter().map(|p| cpu_seconds(*p)).collect()
}

/// One reader's deliveries: counted at once in the shared counter (the
/// workload reads it while running), latencies kept locally and merged into
/// the shared histogram when the reader ends.
struct Tally {
    local: Histogram<u64>,
    hist: Hist,
    count: Arc<AtomicU64>,
}

impl Tally {
    fn new(hist: &Hist, count: &Arc<AtomicU64>) -> Tally {
        Tally { local: histogram(), hist: hist.clone(), count: count.clone() }
    }

    /// A delivery with its latency in microseconds (0: unknown).
    fn add(&mut self, latency: u64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        if latency > 0 {
            let _ = self.local.record(latency);
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        let _ = self.hist.lock().unwrap_or_else(|e| e.into_inner()).add(&self.local);
    }
}

/// Reads deliveries until `stop`.
fn reader<M: Member>(mut m: M, mut tally: Tally, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                d = m.next() => match d {
                    Some(l) => tally.add(l),
                    None => break,
                },
                _ = stop.cancelled() => break,
            }
        }
    })
}

/// The sender of fanout: at `rate`/s, or as fast as at most 1,000 messages
/// in flight allow (its own copies coming back mark them delivered). Its
/// own copies are always read, so it is never a slow consumer. Returns how many it sent.
async fn send<M: Member>(m: &mut M, rate: Option<f64>, end: Instant) -> u64 {
    const IN_FLIGHT: u64 = 1000;
    let mut tick = rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
    let (mut sent, mut back) = (0u64, 0u64);
    let end = tokio::time::Instant::from_std(end);
    loop {
        let open = tick.is_none() && sent - back < IN_FLIGHT;
        tokio::select! {
            biased;
            _ = tokio::time::sleep_until(end) => return sent,
            d = m.next() => match d {
                Some(_) => back += 1,
                None => return sent,
            },
            _ = async { tick.as_mut().expect("rate").tick().await }, if tick.is_some() => {
                if !m.say(0, sent).await { return sent }
                sent += 1;
            }
            _ = std::future::ready(()), if open => {
                if !m.say(0, sent).await { return sent }
                sent += 1;
            }
        }
    }
}

/// fanout: one room, `members` spread over the nodes, one sender on node 0,
/// 64-byte messages, at max rate (at most 1,000 in flight) or at `rate`/s.
pub(crate) async fn fanout<T: LoadTarget>(t: &T, members: usize, seconds: f64, rate: Option<f64>) -> Report {
    let n = t.nodes();
    let room = vec!["#fanout".to_string()];
    let stop = CancellationToken::new();
    let (same, other): (Hist, Hist) = (Arc::new(Mutex::new(histogram())), Arc::new(Mutex::new(histogram())));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let pb = crate::progress(members, "members joining");
    for i in 0..members {
        pb.inc(1);
        let m = t.member(i % n, &format!("m{i}"), &room).await;
        let h = if i % n == 0 { same.clone() } else { other.clone() };
        tasks.push(reader(m, Tally::new(&h, &count), stop.clone()));
    }
    pb.finish_and_clear();
    let mut sender = t.member(0, "sender", &room).await;
    // Every member's interest has reached every node before the clock starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pids = t.pids();
    let cpu0 = cpu_now(&pids);
    let start = Instant::now();
    let sent = send(&mut sender, rate, start + Duration::from_secs_f64(seconds)).await;
    let elapsed = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cpu: f64 = cpu_now(&pids).iter().zip(&cpu0).map(|(a, b)| a - b).sum();
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let delivered = count.load(Ordering::Relaxed);
    let (same, other) = (take(&same), take(&other));
    let ((s50, s99), (o50, o99)) = (p50_p99(&same), p50_p99(&other));
    let mode = rate.map_or("max".to_string(), |r| format!("{r}/s"));
    crate::chart(&format!("{}-fanout-{}-latency.svg", t.name(), mode.replace('/', "per")), |p| {
        crate::charts::latency_cdf(
            p,
            &format!("{} fanout {mode}: latency CDF", t.name()),
            &[("sender's server", &same), ("other servers", &other)],
        )
    });
    let rate_out = delivered as f64 / elapsed;
    let per_core = delivered as f64 / cpu.max(1e-9);
    let cpu_pct = cpu / elapsed / n as f64 * 100.0;
    println!(
        "{} fanout {mode}: {members} members on {n} nodes, {sent} sent in {elapsed:.1} s, {delivered} deliveries = {rate_out:.0}/s \
         ({per_core:.0} per server core-second, CPU {cpu_pct:.1} % per node); p50/p99 same node {s50:.2}/{s99:.2} ms, others {o50:.2}/{o99:.2} ms",
        t.name()
    );
    Report::new(format!("fanout {mode}"), t.name())
        .param("members", members as f64)
        .param("nodes", n as f64)
        .param("seconds", elapsed)
        .param("sent", sent as f64)
        .param("deliveries", delivered as f64)
        .higher("deliveries_per_s", rate_out)
        .higher("deliveries_per_core_s", per_core)
        .lower("cpu_percent_per_node", cpu_pct)
        .lower("p50_same_ms", s50)
        .lower("p99_same_ms", s99)
        .lower("p50_other_ms", o50)
        .lower("p99_other_ms", o99)
}

/// One rooms client: says 1 msg/s (jittered) in one of its two rooms, reads
/// everything delivered, until `stop`.
async fn chat<M: Member>(mut m: M, mut tally: Tally, stop: CancellationToken) {
    let mut next = tokio::time::Instant::now() + Duration::from_millis(rand::rng().random_range(0..1000));
    let mut seq = 0u64;
    loop {
        tokio::select! {
            d = m.next() => match d {
                Some(l) => tally.add(l),
                None => break,
            },
            _ = tokio::time::sleep_until(next) => {
                if !m.say((seq % 2) as usize, seq).await { break }
                seq += 1;
                // 1 msg/s, jittered by up to ±10 %.
                next += Duration::from_millis(rand::rng().random_range(900..1100));
            }
            _ = stop.cancelled() => break,
        }
    }
}

/// rooms: `rooms` rooms, `clients` clients over the nodes, each in 2 random
/// rooms and saying 1 msg/s in one of them; `seconds` measured.
/// A fixed, well-spread number for `x` (splitmix64's finalizer).
fn spread(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) async fn rooms<T: LoadTarget>(t: &T, rooms: usize, clients: usize, seconds: f64) -> Report {
    let n = t.nodes();
    let stop = CancellationToken::new();
    let hist: Hist = Arc::new(Mutex::new(histogram()));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let pb = crate::progress(clients, "clients joining");
    for i in 0..clients {
        pb.inc(1);
        // The same rooms for every target of a comparison: the offered
        // load (members per room) is then the same, and a ratio measures the
        // servers, not two draws of room sizes (they moved it by ±2 %).
        let (a, b) = (spread(2 * i as u64) as usize % rooms, spread(2 * i as u64 + 1) as usize % rooms);
        let m = t.member(i % n, &format!("r{i}"), &[format!("#room{a}"), format!("#room{b}")]).await;
        tasks.push(tokio::spawn(chat(m, Tally::new(&hist, &count), stop.clone())));
    }
    pb.finish_and_clear();
    let pids = t.pids();
    let cpu0 = cpu_now(&pids);
    count.store(0, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let delivered = count.load(Ordering::Relaxed);
    let cpu = cpu_now(&pids).iter().zip(&cpu0).map(|(a, b)| (a - b) / elapsed * 100.0).sum::<f64>() / n as f64;
    let rss = pids.iter().map(|p| rss_kib(*p) as f64 / 1024.0).sum::<f64>() / n as f64;
    stop.cancel();
    for task in tasks {
        let _ = task.await;
    }
    let hist = take(&hist);
    let (p50, p99) = p50_p99(&hist);
    crate::chart(&format!("{}-rooms-latency.svg", t.name()), |p| {
        crate::charts::latency_cdf(p, &format!("{} rooms: latency CDF", t.name()), &[("all deliveries", &hist)])
    });
    let rate = delivered as f64 / elapsed;
    println!(
        "{} rooms: {rooms} rooms, {clients} clients, {elapsed:.1} s: {rate:.0} deliveries/s, p50 {p50:.2} ms, p99 {p99:.2} ms, \
         CPU {cpu:.1} % of a core per node, RSS {rss:.1} MiB per node",
        t.name()
    );
    Report::new("rooms", t.name())
        .param("rooms", rooms as f64)
        .param("clients", clients as f64)
        .param("seconds", elapsed)
        .higher("deliveries_per_s", rate)
        .lower("p50_ms", p50)
        .lower("p99_ms", p99)
        .lower("cpu_percent_per_node", cpu)
        .lower("rss_mib_per_node", rss)
}

/// idle: `sessions` idle members (each in one of 100 rooms) on node 0;
/// memory per session from the node's RSS.
pub(crate) async fn idle<T: LoadTarget>(t: &T, sessions: usize) -> Report {
    let pid = t.pids()[0];
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(pid);
    let mut kept = Vec::with_capacity(sessions);
    let pb = crate::progress(sessions, "idle sessions");
    for i in 0..sessions {
        pb.inc(1);
        kept.push(t.member(0, &format!("i{i}"), &[format!("#idle{}", i % 100)]).await);
    }
    pb.finish_and_clear();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    let per = after.saturating_sub(before) as f64 * 1024.0 / sessions as f64;
    println!(
        "{} idle: {sessions} sessions on node 0: RSS {before} -> {after} KiB, {per:.0} bytes per session",
        t.name()
    );
    drop(kept);
    Report::new("idle", t.name())
        .param("sessions", sessions as f64)
        .param("rss_before_kib", before as f64)
        .param("rss_after_kib", after as f64)
        .lower("bytes_per_session", per)
}

/// Connections opened on node 0 as fast as 8 concurrent openers go: each
/// connects (and shakes hands, over TLS), says HELLO, waits for its
/// session, and closes. Sessions per second and node 0's CPU per session.
pub(crate) async fn handshakes<T: LoadTarget>(t: &T, count: usize) -> Report {
    const OPENERS: usize = 8;
    let per = count.div_ceil(OPENERS);
    let pid = t.pids()[0];
    let cpu0 = cpu_seconds(pid);
    let start = Instant::now();
    let opener = |w: usize| async move {
        for k in 0..per {
            drop(t.member(0, &format!("h{w}x{k}"), &[]).await);
        }
    };
    tokio::join!(opener(0), opener(1), opener(2), opener(3), opener(4), opener(5), opener(6), opener(7));
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let opened = (per * OPENERS) as f64;
    let rate = opened / elapsed;
    let cpu_us = cpu / opened * 1e6;
    println!("{} handshakes: {opened} sessions opened on node 0 in {elapsed:.2} s: {rate:.0}/s, {cpu_us:.0} µs of server CPU each", t.name());
    Report::new("handshakes", t.name())
        .param("sessions", opened)
        .higher("sessions_per_s", rate)
        .lower("server_cpu_us_per_session", cpu_us)
}
