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

mod conn;
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
            ("fanout", workloads::fanout(&farm, members, seconds, rate).await)
        }
        Workload::Rooms { rooms, clients, seconds } => {
            ("rooms", workloads::rooms(&farm, rooms, clients, seconds).await)
        }
        Workload::Idle { sessions } => ("idle", workloads::idle(&farm, sessions).await),
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
