//! `rttp-load`: the load harness. It starts a farm of its own on a loopback
//! range (release binaries), runs one bounded workload, prints a summary and
//! appends a JSON line to `bench/results/<workload>-<time>.json`.
//!
//! ```text
//! rttp-load fanout [--members 300] [--seconds 10] [--rate N]
//! rttp-load rooms [--rooms 2000] [--clients 3000] [--seconds 20]
//! rttp-load idle [--sessions 10000]
//! rttp-load storm [--clients 2000] [--rate 500]
//! rttp-load failover [--clients 100] [--rooms 20]
//! ```

mod charts;
mod conn;
mod nats;
mod stats;
mod workloads;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use integration::{check_for, Farm, FarmSpec};

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
    },
    /// RTTP against a 3-node NATS cluster on the same shapes, back to back:
    /// fanout (max, 1,000/s), rooms, idle; prints every ratio rttp/NATS.
    Compare,
    /// Kill one server mid-run: time back in rooms, messages lost or duplicated.
    Failover {
        /// Clients on the server that dies.
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Rooms.
        #[arg(long, default_value_t = 20)]
        rooms: usize,
    },
}

/// Runs the comparison; returns the JSON line.
async fn compare(farm: Farm) -> String {
    let mut rows: Vec<(String, f64, f64, bool)> = Vec::new();
    let mut add = |name: &str, rttp: &[(&'static str, f64)], nats: &[f64], higher_is_better: &[bool]| {
        for (((k, r), n), h) in rttp.iter().zip(nats).zip(higher_is_better) {
            rows.push((format!("{name} {k}"), *r, *n, *h));
        }
    };
    // Idle first, on fresh processes: memory freed by earlier workloads would
    // be reused by the new sessions and hide their cost.
    let (_, idle) = workloads::idle(&farm, 10_000).await;
    let (_, f_max) = workloads::fanout(&farm, 300, 10.0, None).await;
    let (_, f_1k) = workloads::fanout(&farm, 300, 10.0, Some(1000.0)).await;
    let (_, rooms) = workloads::rooms(&farm, 2000, 3000, 20.0).await;
    drop(farm);
    let cluster = nats::Nats::start(3);
    let ni = nats::idle(&cluster, 10_000).await;
    println!("nats idle: {ni:.0} bytes per connection");
    let nf_max = nats::fanout(&cluster, 300, 10.0, None).await;
    println!("nats fanout max: {:.0} deliveries/s", nf_max.0);
    let nf_1k = nats::fanout(&cluster, 300, 10.0, Some(1000.0)).await;
    println!(
        "nats fanout 1000/s: p50/p99 same {:.2}/{:.2} ms, others {:.2}/{:.2} ms",
        nf_1k.1 .0, nf_1k.1 .1, nf_1k.2 .0, nf_1k.2 .1
    );
    let nr = nats::rooms(&cluster, 2000, 3000, 20.0).await;
    println!(
        "nats rooms: {:.0} deliveries/s, p50 {:.2} ms, p99 {:.2} ms, CPU {:.1} %, RSS {:.1} MiB",
        nr.0, nr.1, nr.2, nr.3, nr.4
    );
    add("fanout max", &f_max[..1], &[nf_max.0], &[true]);
    add("fanout 1000/s", &f_1k[1..], &[nf_1k.1 .0, nf_1k.1 .1, nf_1k.2 .0, nf_1k.2 .1], &[false; 4]);
    add("rooms", &rooms, &[nr.0, nr.1, nr.2, nr.3, nr.4], &[true, false, false, false, false]);
    add("idle", &idle, &[ni], &[false]);
    println!("\n{:<34} {:>14} {:>14} {:>12}  goal", "figure", "rttp", "nats", "rttp/nats");
    let mut json = Vec::new();
    for (name, r, n, higher) in &rows {
        let ratio = r / n;
        let goal = if *higher { ">= 1.0" } else { "<= 1.0" };
        println!("{name:<34} {r:>14.3} {n:>14.3} {ratio:>12.2}  {goal}");
        json.push(format!("{{\"figure\":\"{name}\",\"rttp\":{r:.3},\"nats\":{n:.3},\"ratio\":{ratio:.3}}}"));
    }
    format!("{{\"workload\":\"compare\",\"rows\":[{}]}}", json.join(","))
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

/// `--target nats`: the fanout, rooms and idle shapes on a NATS cluster.
async fn run_nats(w: &Workload) -> ExitCode {
    let cluster = nats::Nats::start(3);
    match *w {
        Workload::Fanout { members, seconds, rate } => {
            let (d, s, o) = nats::fanout(&cluster, members, seconds, rate).await;
            println!(
                "nats fanout {}: {d:.0} deliveries/s; p50/p99 same node {:.2}/{:.2} ms, other nodes {:.2}/{:.2} ms",
                rate.map_or("max".to_string(), |r| format!("{r}/s")),
                s.0,
                s.1,
                o.0,
                o.1
            );
        }
        Workload::Rooms { rooms, clients, seconds } => {
            let (d, p50, p99, cpu, rss) = nats::rooms(&cluster, rooms, clients, seconds).await;
            println!("nats rooms: {d:.0} deliveries/s, p50 {p50:.2} ms, p99 {p99:.2} ms, CPU {cpu:.1} % per node, RSS {rss:.1} MiB per node");
        }
        Workload::Idle { sessions } => {
            let b = nats::idle(&cluster, sessions).await;
            println!("nats idle: {sessions} connections, {b:.0} bytes per connection");
        }
        _ => {
            eprintln!("rttp-load: --target nats runs fanout, rooms and idle only");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args = Args::parse();
    raise_fd_limit();
    let load_flags: Vec<String> = [
        "--say-rate",
        "1000000",
        "--say-burst",
        "1000000",
        "--max-connections",
        "200000",
        "--outbound-limit",
        "16777216",
        "--history",
        "100",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if args.target == "nats" {
        return run_nats(&args.workload).await;
    }
    let groups = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let mut farm = Farm::start(FarmSpec {
        servers: args.servers,
        groups,
        capacity: 100_000,
        extra: load_flags,
        ..FarmSpec::default()
    });
    let n = farm.servers.len();
    check_for(std::time::Duration::from_secs(20), "the farm's mesh", || async {
        for i in 0..n {
            if !farm
                .farm_info(i)
                .await
                .is_some_and(|t| t.servers.len() == n && t.servers.iter().all(|e| e.status == rttp_proto::Status::Up))
            {
                return false;
            }
        }
        true
    })
    .await;
    let (name, json) = match args.workload {
        Workload::Fanout { members, seconds, rate } => {
            ("fanout", workloads::fanout(&farm, members, seconds, rate).await.0)
        }
        Workload::Rooms { rooms, clients, seconds } => {
            ("rooms", workloads::rooms(&farm, rooms, clients, seconds).await.0)
        }
        Workload::Idle { sessions } => ("idle", workloads::idle(&farm, sessions).await.0),
        Workload::Compare => ("compare", compare(farm).await),
        Workload::Storm { clients, rate } => {
            let dns = farm.start_dns();
            ("storm", workloads::storm(&farm, dns, clients, rate).await)
        }
        Workload::Failover { clients, rooms } => ("failover", workloads::failover(&mut farm, clients, rooms).await),
    };
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
