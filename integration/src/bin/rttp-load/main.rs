//! `rttp-load`: the load harness. It starts a farm of its own on a loopback
//! range (release binaries), runs one bounded workload, prints a summary and
//! appends a JSON line to `bench/results/<workload>-<time>.json`.
//!
//! ```text
//! rttp-load fanout [--members 300] [--seconds 10] [--rate N]
//! rttp-load rooms [--rooms 2000] [--clients 3000] [--seconds 20]
//! rttp-load idle [--sessions 10000]
//! rttp-load storm [--clients 2000] [--rate 500] [--strategy p2c]
//! rttp-load rebalance [--clients 3000] [--rooms 100] [--steady 300] [--add] [--off]
//! rttp-load failover [--clients 100] [--rooms 20]
//! rttp-load --capacities 1000,2000,... storm   (one server per capacity)
//! ```

mod charts;
mod conn;
mod detours;
mod failover_log;
mod faults;
mod nats;
mod rebalance;
mod report;
mod shapes;
mod stats;
mod target;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use integration::{Farm, FarmSpec};
use report::Report;
use target::LoadTarget;

/// Load tests of an RTTP farm started on loopback.
#[derive(Debug, Parser)]
#[command(name = "rttp-load", version)]
struct Args {
    /// Servers in the farm.
    #[arg(long, default_value_t = 3, global = true)]
    servers: usize,
    /// What to load: our farm, or a 3-node NATS cluster on 127.0.0.1-3:4222
    /// (fanout, rooms and idle; rooms are subjects).
    #[arg(long, default_value = "rttp", value_parser = ["rttp", "nats"], global = true)]
    target: String,
    /// Capacity of each server, comma-separated; sets the number of servers
    /// [default: 100,000 each].
    #[arg(long, value_delimiter = ',', global = true)]
    capacities: Vec<u32>,
    /// TLS on every client port and mutual TLS on every peer link (a CA
    /// made for the run); the load clients speak TLS.
    #[arg(long, global = true)]
    tls: bool,
    /// How members reach the servers: tcp (the client port) or ws (RTTP
    /// over WebSocket to each server's web listener, one frame per message).
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "ws"], global = true)]
    transport: String,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Debug, Subcommand)]
enum Workload {
    /// One room, members spread over the servers, one sender on s1.
    Fanout {
        /// Members of the room.
        #[arg(long, default_value_t = 300)]
        members: usize,
        /// Seconds of sending.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Messages per second; omitted: as fast as 1,000 in flight allow.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Many rooms, each client in 2 and saying 1 msg/s.
    Rooms {
        /// Rooms.
        #[arg(long, default_value_t = 2000)]
        rooms: usize,
        /// Clients.
        #[arg(long, default_value_t = 3000)]
        clients: usize,
        /// Seconds measured.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
    /// Idle sessions on one server: memory per session.
    Idle {
        /// Sessions.
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
    },
    /// Clients connecting through farm-dns at a given rate.
    Storm {
        /// Clients.
        #[arg(long, default_value_t = 2000)]
        clients: usize,
        /// Connects per second.
        #[arg(long, default_value_t = 500.0)]
        rate: f64,
        /// How each client chooses its server from the table.
        #[arg(long, default_value_t = rttp_client::Strategy::P2c)]
        strategy: rttp_client::Strategy,
    },
    /// Members chatting through DNS; one server drained and restarted (or
    /// added, with --add); users / capacity per server until settled.
    Rebalance {
        /// Members.
        #[arg(long, default_value_t = 3000)]
        clients: usize,
        /// Rooms, one speaker each saying a line a second.
        #[arg(long, default_value_t = 100)]
        rooms: usize,
        /// Seconds the farm must stay within 1.10 of even once it got there.
        #[arg(long, default_value_t = 300.0)]
        steady: f64,
        /// Add the last server under load instead of draining and restarting it.
        #[arg(long)]
        add: bool,
        /// Run the servers with `--rebalance off`: the baseline.
        #[arg(long)]
        off: bool,
    },
    /// RTTP against a 3-node NATS cluster on the same shapes, back to back:
    /// fanout (max, 1,000/s), rooms, idle; prints every ratio rttp/NATS.
    Compare,
    /// Plaintext then TLS (client ports and peer links) on the same shapes,
    /// back to back: idle, fanout (max, 1,000/s), rooms, handshakes; prints
    /// every ratio tls/plain.
    Tls,
    /// TCP then WebSocket members on the same shapes, back to back (fresh
    /// processes each): idle, fanout (max, 1,000/s), rooms, handshakes;
    /// prints every ratio ws/tcp.
    Ws,
    /// Sessions opened on one server as fast as 8 openers go (connect, TLS
    /// with --tls, HELLO, close): the handshake rate.
    Handshakes {
        /// Sessions to open.
        #[arg(long, default_value_t = 2000)]
        sessions: usize,
    },
    /// Kill one server mid-run: time back in rooms, messages lost or duplicated.
    Failover {
        /// Clients on the server that dies.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Rooms.
        #[arg(long, default_value_t = 20)]
        rooms: usize,
        /// The senders (one per room) are library clients on the killed
        /// server, with acknowledged sends, instead of raw ones on s2.
        #[arg(long)]
        senders_on_killed: bool,
    },
}

/// The standard shapes on one target: idle first, on fresh processes
/// (memory freed by earlier workloads would be reused by new sessions and
/// hide their cost), then fanout at max rate, at 1,000/s and at 100/s (a
/// low rate shows the cost of wake-ups per message), then rooms.
async fn standard<T: LoadTarget>(t: &T) -> Vec<Report> {
    vec![
        shapes::idle(t, 10_000).await,
        shapes::fanout(t, 300, 10.0, None).await,
        shapes::fanout(t, 300, 10.0, Some(1000.0)).await,
        shapes::fanout(t, 300, 10.0, Some(100.0)).await,
        shapes::rooms(t, 2000, 3000, 20.0).await,
    ]
}

/// RTTP then NATS on the same shapes, back to back; prints every ratio and
/// returns the JSON line.
async fn compare(farm: Farm) -> String {
    let ours = standard(&farm).await;
    drop(farm);
    let theirs = standard(&nats::Nats::start(3)).await;
    let rows = report::compare(&ours, &theirs);
    println!("\n{:<40} {:>14} {:>14} {:>10}  goal", "figure", "rttp", "nats", "rttp/nats");
    for r in &rows {
        println!("{:<40} {:>14.3} {:>14.3} {:>10.2}  {}", r.figure, r.rttp, r.nats, r.ratio, r.goal);
    }
    serde_json::json!({ "workload": "compare", "rttp": ours, "nats": theirs, "rows": rows }).to_string()
}

/// The standard shapes plus handshakes on a plaintext farm, then on the
/// same farm with TLS everywhere (fresh processes each); prints every ratio
/// tls/plain and returns the JSON line.
async fn tls_compare(spec: FarmSpec) -> String {
    let plain = FarmSpec { tls: false, peer_tls: false, ..spec.clone() };
    let tls = FarmSpec { tls: true, peer_tls: true, ..spec };
    back_to_back("tls", ("plain", plain, false), ("tls", tls, false)).await
}

/// TCP members, then WebSocket members, each on a fresh farm with web listeners.
async fn ws_compare(spec: FarmSpec) -> String {
    let spec = FarmSpec { web: true, ..spec };
    back_to_back("ws", ("tcp", spec.clone(), false), ("ws", spec, true)).await
}

/// The standard shapes and handshakes on farm `a`, then on farm `b` (fresh
/// processes each; the flag says whether members speak WebSocket); prints
/// every ratio b/a and returns the JSON line.
async fn back_to_back(workload: &str, a: (&str, FarmSpec, bool), b: (&str, FarmSpec, bool)) -> String {
    let run = |spec: FarmSpec, ws: bool| async move {
        conn::OVER_WS.store(ws, std::sync::atomic::Ordering::Relaxed);
        let farm = Farm::start(spec);
        farm.wait_mesh().await;
        let mut r = standard(&farm).await;
        r.push(shapes::handshakes(&farm, 2000).await);
        r
    };
    let first = run(a.1, a.2).await;
    let second = run(b.1, b.2).await;
    let rows = report::compare(&second, &first);
    println!("\n{:<40} {:>14} {:>14} {:>10}", "figure", b.0, a.0, format!("{}/{}", b.0, a.0));
    for r in &rows {
        println!("{:<40} {:>14.3} {:>14.3} {:>10.3}", r.figure, r.rttp, r.nats, r.ratio);
    }
    let rows: Vec<_> = rows
        .iter()
        .map(|r| serde_json::json!({ "figure": r.figure, b.0: r.rttp, a.0: r.nats, "ratio": r.ratio }))
        .collect();
    serde_json::json!({ "workload": workload, b.0: second, a.0: first, "rows": rows }).to_string()
}

/// A shape of the comparison on any target.
async fn shape<T: LoadTarget>(t: &T, w: &Workload) -> Option<Report> {
    Some(match *w {
        Workload::Fanout { members, seconds, rate } => shapes::fanout(t, members, seconds, rate).await,
        Workload::Rooms { rooms, clients, seconds } => shapes::rooms(t, rooms, clients, seconds).await,
        Workload::Idle { sessions } => shapes::idle(t, sessions).await,
        Workload::Handshakes { sessions } => shapes::handshakes(t, sessions).await,
        _ => return None,
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub(crate) fn progress(n: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template("{msg:>32} [{bar:40}] {pos}/{len}") {
        pb.set_style(style);
    }
    pb.set_message(what.to_string());
    pb
}

/// Draws a chart into bench/results/, reporting where (or why not).
pub(crate) fn chart(name: &str, draw: impl FnOnce(&std::path::Path) -> Result<(), String>) {
    let dir = std::path::Path::new("bench/results");
    let _ = std::fs::create_dir_all(dir);
    let path = dir.join(name);
    match draw(&path) {
        Ok(()) => println!("chart: {}", path.display()),
        Err(e) => eprintln!("rttp-load: chart {}: {e}", path.display()),
    }
}

/// As many connections as the servers may take under this machine's
/// open-file limit (a server refuses to start with more than fit: it keeps
/// 336 descriptors for peer links, listeners and the like): 19,488 here,
/// so that `idle --sessions 19000` fits.
fn max_connections() -> u64 {
    let hard = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(4096, |(_, h)| h);
    hard.saturating_sub(512).max(1024)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    // As many connections as the hard limit allows; a run that needs more fails on connect, with its count.
    let _ = rttp_conn::fdlimit::raise_for(0);
    let load_flags: Vec<String> = integration::no_rate_limit_flags()
        .into_iter()
        .chain(["--max-per-ip", "200000", "--outbound-limit", "16777216", "--history", "100"].map(String::from))
        // Three servers and the load generator share this machine's cores:
        // each server gets one thread (NATS likewise gets GOMAXPROCS=1).
        .chain(["--threads", "1"].map(String::from))
        .chain(["--max-connections".to_string(), max_connections().to_string()])
        .collect();
    let (name, json) = if args.target == "nats" {
        match shape(&nats::Nats::start(3), &args.workload).await {
            Some(r) => ("nats", r.json()),
            None => {
                eprintln!("rttp-load: --target nats runs fanout, rooms and idle only");
                return ExitCode::from(2);
            }
        }
    } else {
        // Rebalancing is per group: the workloads about balance run one.
        let groups: Vec<String> = match args.workload {
            Workload::Storm { .. } | Workload::Rebalance { .. } => vec!["g".into()],
            _ => ["a", "b", "c"].map(String::from).into(),
        };
        let servers = if args.capacities.is_empty() { args.servers } else { args.capacities.len() };
        let caps: Vec<u32> = (0..servers).map(|i| args.capacities.get(i).copied().unwrap_or(100_000)).collect();
        let mut extra = load_flags;
        if let Workload::Rebalance { off: true, .. } = args.workload {
            extra.extend(["--rebalance".to_string(), "off".to_string()]);
        }
        let tls = args.tls;
        let spec =
            FarmSpec { servers, groups, capacities: caps.clone(), extra, tls, peer_tls: tls, ..FarmSpec::default() };
        if let Workload::Tls = args.workload {
            let json = tls_compare(spec).await;
            return finish("tls", &json);
        }
        if let Workload::Ws = args.workload {
            let json = ws_compare(spec).await;
            return finish("ws", &json);
        }
        let ws = args.transport == "ws";
        conn::OVER_WS.store(ws, std::sync::atomic::Ordering::Relaxed);
        let spec = FarmSpec { web: spec.web || ws, ..spec };
        let mut farm = Farm::start(spec);
        farm.wait_mesh().await;
        match args.workload {
            Workload::Compare => ("compare", compare(farm).await),
            Workload::Storm { clients, rate, strategy } => {
                // Every client asks from this one address: without this,
                // farm-dns's response rate limiting would be what is measured.
                let dns = farm.start_dns_with(&["--rrl-rate", "0"]);
                ("storm", faults::storm(&farm, dns, &caps, clients, rate, strategy).await.json())
            }
            Workload::Rebalance { clients, rooms, steady, add, .. } => {
                let dns = farm.start_dns_with(&["--rrl-rate", "0"]);
                let plan = rebalance::Plan { clients, rooms: rooms.max(1), steady, add };
                ("rebalance", rebalance::rebalance(&mut farm, dns, &caps, plan).await.json())
            }
            Workload::Failover { clients, rooms, senders_on_killed } => {
                ("failover", faults::failover(&mut farm, clients, rooms, senders_on_killed).await.json())
            }
            ref w => {
                let r = shape(&farm, w).await.expect("a shape");
                ("rttp", r.json())
            }
        }
    };
    let name = match (&args.workload, name) {
        (Workload::Fanout { .. }, t) => format!("fanout-{t}"),
        (Workload::Rooms { .. }, t) => format!("rooms-{t}"),
        (Workload::Idle { .. }, t) => format!("idle-{t}"),
        (Workload::Handshakes { .. }, t) => format!("handshakes-{t}"),
        (_, n) => n.to_string(),
    };
    finish(&name, &json)
}

/// Writes the run's JSON line under bench/results.
fn finish(name: &str, json: &str) -> ExitCode {
    let dir = std::path::Path::new("bench/results");
    let _ = std::fs::create_dir_all(dir);
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let path = dir.join(format!("{name}-{stamp}.json"));
    match std::fs::write(&path, format!("{json}\n")) {
        Ok(()) => println!("results: {}", path.display()),
        Err(e) => eprintln!("rttp-load: cannot write {}: {e}", path.display()),
    }
    ExitCode::SUCCESS
}
