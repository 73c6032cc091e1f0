//! `rttp-chat`: the terminal chat client of the farm. `--plain` reads
//! commands on stdin and writes one event per line, for scripts and tests.

mod commands;
mod escape;
mod plain;
mod tui;

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use rttp_client::{Client, Strategy};

/// Chat on an RTTP farm: find it by DNS, pick a server, stay connected.
#[derive(Debug, Parser)]
#[command(name = "rttp-chat", version)]
struct Args {
    /// The farm's service name and port, e.g. chat.farm.test:7000.
    #[arg(long, value_name = "NAME:PORT")]
    service: Option<String>,
    /// A DNS server to ask instead of the system's, e.g. 127.0.0.1:5353.
    #[arg(long, value_name = "IP:PORT")]
    dns: Option<SocketAddr>,
    /// Your nick: 1-32 of [A-Za-z0-9_-].
    #[arg(long)]
    nick: String,
    /// How to choose the serving server: p2c, random, least-users or group.
    #[arg(long, default_value = "p2c")]
    strategy: Strategy,
    /// Your group (zone or region): the group strategy and p2c prefer it.
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Skip DNS: connect first to this server.
    #[arg(long, value_name = "HOST:PORT")]
    connect: Option<String>,
    /// Try SRV _rttp._tcp.<zone> before A/AAAA.
    #[arg(long)]
    srv: bool,
    /// No TUI: commands on stdin, one event per line on stdout.
    #[arg(long)]
    plain: bool,
    /// The token for a farm in token mode (a JWT for your nick; `rttp-token`
    /// mints one). Prefer --token-file or RTTP_TOKEN: other users can read
    /// a command line.
    #[arg(long, env = "RTTP_TOKEN", hide_env_values = true, conflicts_with = "token_file")]
    token: Option<String>,
    /// A file holding the token.
    #[arg(long, value_name = "PATH")]
    token_file: Option<std::path::PathBuf>,
    /// Speak TLS to every server, verifying certificates against the
    /// system's root certificates (or --ca); never moves to a plaintext server.
    #[arg(long)]
    tls: bool,
    /// A CA certificate (PEM) to trust instead of the system's roots; implies --tls.
    #[arg(long, value_name = "PEM")]
    ca: Option<std::path::PathBuf>,
    /// The name every server's certificate must carry [default: the service
    /// name, or the --connect host name; for an IP address, each server's IP].
    #[arg(long, value_name = "NAME")]
    tls_name: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rttp-chat: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let mut b = Client::builder().nick(&args.nick).strategy(args.strategy);
    match (&args.token, &args.token_file) {
        (Some(t), _) => b = b.token(t),
        (None, Some(path)) => match std::fs::read_to_string(path) {
            Ok(t) => b = b.token(&t),
            Err(e) => {
                eprintln!("rttp-chat: cannot read --token-file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        (None, None) => {}
    }
    if let Some(g) = &args.group {
        b = b.group(g);
    }
    if args.tls || args.ca.is_some() {
        b = b.tls(args.ca.as_deref());
        let host = args.connect.as_deref().and_then(|c| c.rsplit_once(':')).map(|(h, _)| h);
        match (&args.tls_name, host) {
            (Some(n), _) => b = b.tls_name(n),
            (None, Some(h)) if h.parse::<std::net::IpAddr>().is_err() => b = b.tls_name(h),
            _ => {}
        }
    }
    match (&args.connect, &args.service) {
        (Some(c), _) => match tokio::net::lookup_host(c.as_str()).await {
            Ok(addrs) => b = b.bootstrap(addrs.collect()),
            Err(e) => {
                eprintln!("rttp-chat: cannot resolve --connect {c}: {e}");
                return ExitCode::from(2);
            }
        },
        (None, Some(s)) => {
            let Some((name, port)) = s.rsplit_once(':').and_then(|(n, p)| Some((n, p.parse::<u16>().ok()?))) else {
                eprintln!("rttp-chat: --service takes NAME:PORT, e.g. chat.farm.test:7000");
                return ExitCode::from(2);
            };
            b = b.service(name, port).srv(args.srv);
            if let Some(d) = args.dns {
                b = b.dns(d);
            }
        }
        (None, None) => {
            eprintln!(
                "rttp-chat: give --service NAME:PORT (with --dns IP:PORT for a test farm) or --connect HOST:PORT"
            );
            return ExitCode::from(2);
        }
    }
    let (client, mut events) = match b.connect().await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("rttp-chat: {e}");
            return ExitCode::from(1);
        }
    };
    // The steps of the connect sequence are already queued.
    let mut backlog = Vec::new();
    while let Ok(e) = events.try_recv() {
        backlog.push(e);
    }
    if args.plain {
        return ExitCode::from(plain::run(client, events, backlog).await as u8);
    }
    ExitCode::from(tui::run(client, events, backlog, &args.nick).await as u8)
}
