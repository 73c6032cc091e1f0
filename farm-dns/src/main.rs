//! `farm-dns`: the farm's authoritative DNS shim. It follows the farm table
//! over the RTTP client port (`FARM watch`) and answers for the service name
//! with the live servers, rotated on every query.

mod answer;
#[cfg(test)]
mod answer_tests;
mod cache;
#[cfg(test)]
mod cache_tests;
mod rrl;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use answer::{live_set, respond, Live, Transport, Zone};
use cache::AnswerCache;
use clap::Parser;
use hickory_proto::op::Message;
use rttp_client::watch::{watch_farm, WatchTimers, Watched};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long an idle TCP client may keep its connection.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Most TCP clients served at once.
const TCP_MAX_CLIENTS: usize = 512;
/// Most TCP clients from one IP address at once: one address cannot hold
/// every slot (and so break TCP fallback for everyone else).
const TCP_MAX_PER_IP: u32 = 16;

/// An authoritative DNS server for a chat farm: A/AAAA of the live servers,
/// rotated on every query, plus SRV, SOA and NS.
#[derive(Debug, Parser)]
#[command(name = "farm-dns", version)]
struct Args {
    /// Address to answer on, UDP and TCP.
    #[arg(long, default_value = "127.0.0.1:5353", value_name = "IP:PORT")]
    listen: SocketAddr,
    /// The zone served (its apex gets SOA and NS).
    #[arg(long, default_value = "farm.test", value_name = "ZONE")]
    zone: String,
    /// The service name, inside the zone: answered with the live servers.
    #[arg(long, default_value = "chat.farm.test", value_name = "FQDN")]
    name: String,
    /// RTTP client address of a server to learn the farm from; repeatable.
    /// When it is lost, farm-dns moves to another one of these, or to any
    /// server of the last table.
    #[arg(long = "farm", required = true, value_name = "HOST:PORT")]
    farm: Vec<String>,
    /// TTL of every record, in seconds.
    #[arg(long, default_value_t = 1, value_name = "SECONDS")]
    ttl: u32,
    /// Response rate limiting: UDP answers per second to one source prefix
    /// (/24, /56), as NSD and Knot do; 0 turns it off.
    #[arg(long, default_value_t = 100, value_name = "PER_SECOND")]
    rrl_rate: u32,
    /// Of the answers over --rrl-rate, every Nth is sent truncated (TC, so a
    /// real client retries over TCP) instead of dropped; 0: drop them all.
    #[arg(long, default_value_t = 2, value_name = "N")]
    rrl_slip: u32,
    /// Client port assumed for --farm addresses given without one. (SRV
    /// records always carry each server's own port, from its FARM_INFO row.)
    #[arg(long, default_value_t = 7000, value_name = "PORT")]
    port: u16,
    /// The farm's client ports speak TLS: watch them through TLS, checking
    /// each certificate for the service name (--name) against the system's
    /// roots, or --farm-ca. (DNS itself stays plain DNS.)
    #[arg(long)]
    farm_tls: bool,
    /// A CA certificate (PEM) to trust for --farm-tls instead of the system's roots; implies --farm-tls.
    #[arg(long, value_name = "PEM")]
    farm_ca: Option<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let zone = match Zone::new(&args.zone, &args.name, args.listen.ip(), args.ttl) {
        Ok(z) => z,
        Err(e) => {
            eprintln!("farm-dns: invalid --zone/--name: {e}");
            return ExitCode::from(2);
        }
    };
    let needed = rttp_conn::fdlimit::needed(TCP_MAX_CLIENTS as u64, 2);
    if let Err(why) = rttp_conn::fdlimit::raise_for(needed) {
        eprintln!("farm-dns: {TCP_MAX_CLIENTS} TCP clients do not fit: {why}");
        return ExitCode::from(2);
    }
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("farm-dns: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(args, zone))
}

async fn run(args: Args, zone: Zone) -> ExitCode {
    let mut seeds = Vec::new();
    for f in &args.farm {
        let f = if f.contains(':') { f.clone() } else { format!("{f}:{}", args.port) };
        let resolved = tokio::net::lookup_host(f.clone()).await;
        match resolved {
            Ok(mut addrs) => seeds.extend(addrs.next()),
            Err(e) => {
                eprintln!("farm-dns: invalid --farm {f}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let udp = match UdpSocket::bind(args.listen).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("farm-dns: cannot listen on udp {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    let tcp = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("farm-dns: cannot listen on tcp {}: {e}", args.listen);
            return ExitCode::from(1);
        }
    };
    tracing::info!(addr = %args.listen, zone = %zone.apex, name = %zone.service, farm = ?seeds, "farm-dns answering");
    let token = CancellationToken::new();
    let (tx, rx) = watch::channel(Watched::default());
    let mut tasks = tokio::task::JoinSet::new();
    let tls = match (args.farm_tls || args.farm_ca.is_some())
        .then(|| rttp_conn::tls::TlsClient::new(args.farm_ca.as_deref(), Some(args.name.trim_end_matches('.'))))
    {
        None => None,
        Some(Ok(t)) => Some(t),
        Some(Err(e)) => {
            eprintln!("farm-dns: {e}");
            return ExitCode::from(2);
        }
    };
    tasks.spawn(watch_farm(seeds, WatchTimers::default(), tls, tx, token.clone()));
    let rrl = (0..RRL_SHARDS).map(|_| std::sync::Mutex::new(rrl::Rrl::new(args.rrl_rate, args.rrl_slip))).collect();
    let state =
        Arc::new(State { zone, live: watch::channel(Arc::new(Vec::new())).0, rotation: AtomicU64::new(0), rrl });
    tasks.spawn(follow(rx, state.clone(), token.clone()));
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    for _ in 0..workers {
        tasks.spawn(serve_udp(udp.clone(), state.clone(), token.clone()));
    }
    tasks.spawn(serve_tcp(tcp, state.clone(), token.clone()));
    let signals = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut t), Ok(mut i)) => tokio::select! { _ = t.recv() => {}, _ = i.recv() => {} },
            _ => std::future::pending().await,
        }
    };
    signals.await;
    tracing::info!("stopping");
    token.cancel();
    while tasks.join_next().await.is_some() {}
    ExitCode::SUCCESS
}

/// What every answering task shares.
struct State {
    zone: Zone,
    live: watch::Sender<Arc<Vec<Live>>>,
    rotation: AtomicU64,
    /// Response rate limiting, sharded by source prefix (one lock per shard).
    rrl: Vec<std::sync::Mutex<rrl::Rrl>>,
}

/// Shards of the response rate limiter.
const RRL_SHARDS: usize = 4;

impl State {
    /// The rate limiter's verdict for an answer to `ip`.
    fn rrl(&self, ip: std::net::IpAddr) -> rrl::Verdict {
        let shard = match ip {
            std::net::IpAddr::V4(v4) => (u32::from(v4) >> 8) as usize,
            std::net::IpAddr::V6(v6) => (u128::from(v6) >> 72) as usize,
        } % RRL_SHARDS;
        let mut r = self.rrl[shard].lock().unwrap_or_else(|e| e.into_inner());
        r.check(ip, std::time::Instant::now())
    }
}

/// Turns each new farm table into the live set.
async fn follow(mut rx: watch::Receiver<Watched>, state: Arc<State>, token: CancellationToken) {
    loop {
        tokio::select! {
            r = rx.changed() => if r.is_err() { return },
            _ = token.cancelled() => return,
        }
        let live = rx.borrow_and_update().table.as_ref().map(live_set);
        if let Some(live) = live {
            let ids: Vec<&str> = live.iter().map(|l| l.id.as_str()).collect();
            tracing::debug!(?ids, "live set");
            state.live.send_if_modified(|cur| {
                let changed = **cur != live;
                if changed {
                    *cur = Arc::new(live.clone());
                }
                changed
            });
        }
    }
}

/// Answers one message (the TCP path; UDP goes through [`AnswerCache`]).
fn answer(state: &State, bytes: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let live = state.live.borrow().clone();
    match Message::from_vec(bytes) {
        Ok(q) => {
            // Rotation steps cycle over the live set, so answers can be cached per step.
            let rot = state.rotation.fetch_add(1, Ordering::Relaxed) % live.len().max(1) as u64;
            respond(&q, &state.zone, &live, rot, transport)
        }
        Err(_) => answer::malformed(bytes),
    }
}

async fn serve_udp(sock: Arc<UdpSocket>, state: Arc<State>, token: CancellationToken) {
    let mut cache = AnswerCache::new(state.live.borrow().clone());
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => { tracing::debug!(error = %e, "udp receive"); continue }
            },
            _ = token.cancelled() => return,
        };
        let verdict = state.rrl(from.ip());
        if verdict == rrl::Verdict::Drop {
            continue;
        }
        let live = state.live.borrow().clone();
        let counter = state.rotation.fetch_add(1, Ordering::Relaxed);
        if let Some(out) = cache.answer(&state.zone, live, counter, &buf[..n]) {
            let out = if verdict == rrl::Verdict::Slip { answer::truncated(&out) } else { Some(out) };
            if let Some(out) = out {
                let _ = sock.send_to(&out, from).await;
            }
        }
    }
}

/// TCP clients per source address.
type PerIp = Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, u32>>>;

async fn serve_tcp(listener: TcpListener, state: Arc<State>, token: CancellationToken) {
    let limit = Arc::new(tokio::sync::Semaphore::new(TCP_MAX_CLIENTS));
    let per_ip: PerIp = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    loop {
        let (stream, from) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue }
            },
            _ = token.cancelled() => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else { continue };
        let ip = from.ip();
        {
            let mut m = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            let n = m.entry(ip).or_insert(0);
            if *n >= TCP_MAX_PER_IP {
                continue;
            }
            *n += 1;
        }
        let (state, token, per_ip) = (state.clone(), token.clone(), per_ip.clone());
        clients.spawn(async move {
            tokio::select! {
                _ = serve_tcp_client(stream, &state) => {}
                _ = token.cancelled() => {}
            }
            let mut m = per_ip.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = m.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    m.remove(&ip);
                }
            }
            drop(permit);
        });
        while clients.try_join_next().is_some() {}
    }
    clients.shutdown().await;
}

/// DNS over TCP: each message is preceded by its 16-bit length. Every read
/// and every write has [`TCP_IDLE`]: a client that stops reading is dropped.
async fn serve_tcp_client(mut stream: TcpStream, state: &State) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let n = usize::from(u16::from_be_bytes(len));
        if tokio::time::timeout(TCP_IDLE, stream.read_exact(&mut buf[..n])).await.map_or(true, |r| r.is_err()) {
            return;
        }
        let Some(out) = answer(state, &buf[..n], Transport::Tcp) else { continue };
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        if !matches!(tokio::time::timeout(TCP_IDLE, stream.write_all(&framed)).await, Ok(Ok(()))) {
            return;
        }
    }
}
