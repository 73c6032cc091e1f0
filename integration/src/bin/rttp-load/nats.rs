//! The NATS side of the comparison: a 3-node nats-server cluster with routes
//! on a loopback range of its own, and the same workload shapes (rooms are
//! subjects), driven with the async-nats crate.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use integration::die_with_parent;
use rand::Rng;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::conn::now_us;
use crate::stats::{cpu_seconds, histogram, p50_p99, rss_kib};

/// A nats-server cluster, killed when dropped.
pub(crate) struct Nats {
    pub(crate) addrs: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Nats {
    /// Starts `n` nodes on 127.0.0.1..n, port 4222, routes on 6222.
    pub(crate) fn start(n: usize) -> Nats {
        let ip = |i: usize| Ipv4Addr::new(127, 0, 0, (i + 1) as u8);
        let mut children = Vec::new();
        for i in 0..n {
            let routes: Vec<String> = (0..n).filter(|j| *j != i).map(|j| format!("nats://{}:6222", ip(j))).collect();
            let mut cmd = Command::new("nats-server");
            cmd.args(["-a", &ip(i).to_string(), "-p", "4222", "--cluster_name", "rttpbench"])
                .args(["--cluster", &format!("nats://{}:6222", ip(i)), "--routes", &routes.join(",")])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            children.push(cmd.spawn().expect("nats-server is installed (Debian package nats-server)"));
        }
        let addrs: Vec<SocketAddr> = (0..n).map(|i| SocketAddr::from((ip(i), 4222))).collect();
        for a in &addrs {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
                assert!(Instant::now() < deadline, "nats-server on {a} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Let the routes form.
        std::thread::sleep(Duration::from_secs(2));
        Nats { addrs, children }
    }

    pub(crate) fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn client(addr: SocketAddr) -> async_nats::Client {
    async_nats::ConnectOptions::new().connect(addr.to_string()).await.expect("connect to nats")
}

fn payload(seq: u64) -> Bytes {
    let mut s = format!("{} {seq} ", now_us());
    while s.len() < 64 {
        s.push('x');
    }
    Bytes::from(s)
}

fn latency(p: &[u8]) -> Option<u64> {
    let t: u64 = std::str::from_utf8(p).ok()?.split(' ').next()?.parse().ok()?;
    Some(now_us().saturating_sub(t).max(1))
}

type Hist = Arc<Mutex<Histogram<u64>>>;

fn subscriber(
    mut sub: async_nats::Subscriber,
    hist: Hist,
    count: Arc<AtomicU64>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut local = histogram();
        loop {
            tokio::select! {
                m = sub.next() => match m {
                    Some(m) => {
                        count.fetch_add(1, Ordering::Relaxed);
                        if let Some(l) = latency(&m.payload) { let _ = local.record(l); }
                    }
                    None => break,
                },
                _ = stop.cancelled() => break,
            }
        }
        let _ = hist.lock().unwrap_or_else(|e| e.into_inner()).add(&local);
    })
}

/// The fanout shape on NATS: (deliveries/s, p50/p99 same node, p50/p99 others).
pub(crate) async fn fanout(
    nats: &Nats,
    members: usize,
    seconds: f64,
    rate: Option<f64>,
) -> (f64, (f64, f64), (f64, f64)) {
    let n = nats.addrs.len();
    let stop = CancellationToken::new();
    let (same, other): (Hist, Hist) = (Arc::new(Mutex::new(histogram())), Arc::new(Mutex::new(histogram())));
    let count = Arc::new(AtomicU64::new(0));
    let mut keep = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..members {
        let c = client(nats.addrs[i % n]).await;
        let sub = c.subscribe("fanout").await.expect("subscribe");
        let h = if i % n == 0 { same.clone() } else { other.clone() };
        tasks.push(subscriber(sub, h, count.clone(), stop.clone()));
        keep.push(c);
    }
    let publisher = client(nats.addrs[0]).await;
    let mut echo = publisher.subscribe("fanout").await.expect("subscribe");
    publisher.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let permits = Arc::new(Semaphore::new(1000));
    let p2 = permits.clone();
    let echo_stop = stop.clone();
    let echo_task = tokio::spawn(async move {
        loop {
            tokio::select! {
                m = echo.next() => if m.is_none() { break } else { p2.add_permits(1) },
                _ = echo_stop.cancelled() => break,
            }
        }
    });
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut tick = rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r)));
    let mut seq = 0;
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
        if publisher.publish("fanout", payload(seq)).await.is_err() {
            break;
        }
        seq += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _ = publisher.flush().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let _ = echo_task.await;
    let rate_out = count.load(Ordering::Relaxed) as f64 / elapsed;
    let s = p50_p99(&same.lock().unwrap_or_else(|e| e.into_inner()));
    let o = p50_p99(&other.lock().unwrap_or_else(|e| e.into_inner()));
    (rate_out, s, o)
}

/// The rooms shape on NATS: (deliveries/s, p50, p99, CPU % per node, RSS MiB per node).
pub(crate) async fn rooms(nats: &Nats, rooms: usize, clients: usize, seconds: f64) -> (f64, f64, f64, f64, f64) {
    let n = nats.addrs.len();
    let stop = CancellationToken::new();
    let hist: Hist = Arc::new(Mutex::new(histogram()));
    let count = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..clients {
        let c = client(nats.addrs[i % n]).await;
        let (a, b) = {
            let mut rng = rand::rng();
            (rng.random_range(0..rooms), rng.random_range(0..rooms))
        };
        let mine = [format!("room{a}"), format!("room{b}")];
        for r in &mine {
            let sub = c.subscribe(r.clone()).await.expect("subscribe");
            tasks.push(subscriber(sub, hist.clone(), count.clone(), stop.clone()));
        }
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut next = tokio::time::Instant::now() + Duration::from_millis(rand::rng().random_range(0..1000));
            let mut seq = 0u64;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(next) => {
                        let _ = c.publish(mine[(seq % 2) as usize].clone(), payload(seq)).await;
                        seq += 1;
                        next += Duration::from_millis(rand::rng().random_range(900..1100));
                    }
                    _ = stop.cancelled() => break,
                }
            }
        }));
    }
    let pids = nats.pids();
    let cpu0: Vec<f64> = pids.iter().map(|p| cpu_seconds(*p)).collect();
    count.store(0, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    let elapsed = start.elapsed().as_secs_f64();
    let delivered = count.load(Ordering::Relaxed);
    let cpu: f64 =
        pids.iter().zip(&cpu0).map(|(p, c0)| (cpu_seconds(*p) - c0) / elapsed * 100.0).sum::<f64>() / n as f64;
    let rss: f64 = pids.iter().map(|p| rss_kib(*p) as f64 / 1024.0).sum::<f64>() / n as f64;
    stop.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let (p50, p99) = p50_p99(&hist.lock().unwrap_or_else(|e| e.into_inner()));
    (delivered as f64 / elapsed, p50, p99, cpu, rss)
}

/// The idle shape on NATS: bytes of server RSS per connection.
pub(crate) async fn idle(nats: &Nats, sessions: usize) -> f64 {
    let pid = nats.pids()[0];
    let before = rss_kib(pid);
    let mut keep = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let c = client(nats.addrs[0]).await;
        let _sub = c.subscribe(format!("idle{}", i % 100)).await.expect("subscribe");
        keep.push((c, _sub));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = rss_kib(pid);
    (after.saturating_sub(before)) as f64 * 1024.0 / sessions as f64
}
