//! `rttp-farm`: a local farm in the foreground, for `make farm`. farm-dns on
//! 127.0.0.1:5353 for chat.farm.test, and servers s1..sN on 127.0.0.1..N:7000
//! (peers on :7100, groups g1, g2, g1, ...), sharing a freshly generated
//! secret. Every line a process logs is prefixed with its name; the farm
//! table is printed every few seconds. Ctrl-C drains every server and exits;
//! a second Ctrl-C stops everything at once. Children die with the
//! supervisor (PR_SET_PDEATHSIG), even if it is killed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use clap::Parser;
use integration::certs::Ca;
use integration::{bin, die_with_parent, FarmSpec, CLIENT_PORT, SERVICE, WEB_PORT};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rttp_conn::tls::TlsClient;
use rttp_conn::ClientConn;
use rttp_proto::{ClientFrame, ServerFrame};

/// Runs a local RTTP farm in the foreground.
#[derive(Debug, Parser)]
#[command(name = "rttp-farm", version)]
struct Args {
    /// How many servers (s1 on 127.0.0.1, s2 on 127.0.0.2, ...).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=50))]
    servers: u8,
    /// Where farm-dns answers.
    #[arg(long, default_value = "127.0.0.1:5353")]
    dns: SocketAddr,
    /// Seconds between two prints of the farm table.
    #[arg(long, default_value_t = 5)]
    table_every: u64,
    /// TLS on every client port and mutual TLS on every peer link, with a
    /// CA generated for this farm (its certificate path is printed: give it
    /// to rttp-chat --ca). farm-dns follows the farm through TLS.
    #[arg(long)]
    tls: bool,
}

struct Proc {
    name: String,
    child: Child,
}

fn spawn(name: &str, program: &str, args: &[String]) -> std::io::Result<Proc> {
    let mut cmd = Command::new(bin(program));
    cmd.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "info");
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn()?;
    for stream in [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let prefix = format!("{name:>8} | ");
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{prefix}{line}");
            }
        });
    }
    Ok(Proc { name: name.to_string(), child })
}

fn secret_file() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("rttp-farm-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("cluster.secret");
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)?;
    writeln!(f, "{text}")?;
    Ok(path)
}

async fn table(addr: SocketAddr, tls: Option<&TlsClient>) -> Option<String> {
    let fut = async {
        let mut c: ClientConn<_> = ClientConn::connect_over(tls, addr, Duration::from_secs(1)).await.ok()?;
        c.write_frame(&ClientFrame::Farm { watch: false }).await.ok()?;
        loop {
            if let ServerFrame::FarmInfo(t) = c.read_frame().await.ok()?? {
                let rows: Vec<String> = t
                    .servers
                    .iter()
                    .map(|e| {
                        let (id, addr, status, group) = (e.id, e.addr, e.status, e.group);
                        format!("{id} {addr} {status} {}/{} {group} {}", e.users, e.capacity, e.transport.as_str())
                    })
                    .collect();
                return Some(rows.join("  |  "));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(1), fut).await.ok().flatten()
}

fn signal_all(procs: &[Proc], sig: Signal) {
    for p in procs {
        let _ = kill(Pid::from_raw(p.child.id() as i32), sig);
    }
}

/// Starts the servers and farm-dns; on a failure, says which, kills what
/// started and returns `None`.
async fn start_all(args: &Args, secret: &std::path::Path, ca: Option<&Ca>) -> Option<(Vec<Proc>, Vec<SocketAddr>)> {
    let mut procs = Vec::new();
    let mut clients = Vec::new();
    let spec = FarmSpec {
        servers: usize::from(args.servers),
        drain_window: 10.0,
        metrics: false,
        tls: args.tls,
        peer_tls: args.tls,
        web: true,
        ..FarmSpec::default()
    };
    for i in 0..spec.servers {
        let ip = Ipv4Addr::new(127, 0, 0, i as u8 + 1);
        let mut a = spec.server_args(i, ip, Ipv4Addr::LOCALHOST, secret);
        // The servers share this machine: one thread each (`--threads`).
        a.extend(["--threads".into(), "1".into()]);
        if let Some(ca) = ca {
            a.extend(spec.tls_args(ca, i, ip));
        }
        match spawn(&format!("s{}", i + 1), "rttp-server", &a) {
            Ok(p) => procs.push(p),
            Err(e) => {
                eprintln!("rttp-farm: cannot start s{}: {e}", i + 1);
                signal_all(&procs, Signal::SIGKILL);
                return None;
            }
        }
        clients.push(SocketAddr::from((ip, CLIENT_PORT)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut dns_args = FarmSpec::dns_args(args.dns, &clients[..clients.len().min(2)]);
    if let Some(ca) = ca {
        dns_args.extend(["--farm-ca".into(), ca.cert.display().to_string()]);
    }
    match spawn("farm-dns", "farm-dns", &dns_args) {
        Ok(p) => procs.push(p),
        Err(e) => {
            eprintln!("rttp-farm: cannot start farm-dns: {e}");
            signal_all(&procs, Signal::SIGKILL);
            return None;
        }
    }
    Some((procs, clients))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args = Args::parse();
    let secret = match secret_file() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rttp-farm: cannot write the cluster secret: {e}");
            return ExitCode::from(1);
        }
    };
    let dir = secret.parent().unwrap_or(&secret).to_path_buf();
    let ca = args.tls.then(|| Ca::new(&dir.join("certs"), "rttp-farm-ca"));
    let tls = ca.as_ref().map(|ca| TlsClient::new(Some(&ca.cert), Some(SERVICE)).expect("the farm's own CA"));
    let Some((mut procs, clients)) = start_all(&args, &secret, ca.as_ref()).await else { return ExitCode::from(1) };
    println!("rttp-farm: {} servers and farm-dns are up. To chat:", args.servers);
    match &ca {
        None => println!(
            "    rttp-chat --service chat.farm.test:7000 --dns {} --nick you     (or: make chat NICK=you)",
            args.dns
        ),
        Some(ca) => println!(
            "    rttp-chat --service chat.farm.test:7000 --dns {} --ca {} --nick you     (TLS; this CA lives as long as the farm)",
            args.dns,
            ca.cert.display()
        ),
    }
    println!("    dig @{} -p {} chat.farm.test A", args.dns.ip(), args.dns.port());
    println!(
        "    or in a browser: http://127.0.0.1:{WEB_PORT}/ (every server serves the page on its IP, port {WEB_PORT})"
    );
    println!("rttp-farm: Ctrl-C drains every server and exits; a second Ctrl-C stops at once.");

    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        eprintln!("rttp-farm: cannot install signal handlers");
        return ExitCode::from(1);
    };
    let mut tick = tokio::time::interval(Duration::from_secs(args.table_every.max(1)));
    loop {
        tokio::select! {
            _ = int.recv() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                let t = match table(clients[0], tls.as_ref()).await {
                    Some(t) => t,
                    None => table(clients[clients.len() - 1], tls.as_ref())
                        .await
                        .unwrap_or_else(|| "no server answers".into()),
                };
                println!("   table | {t}");
            }
        }
        if let Some(name) =
            procs.iter_mut().find_map(|p| matches!(p.child.try_wait(), Ok(Some(_))).then(|| p.name.clone()))
        {
            println!("rttp-farm: {name} exited; stopping the farm");
            break;
        }
    }
    println!("rttp-farm: draining (Ctrl-C again to stop at once)");
    signal_all(&procs, Signal::SIGTERM);
    let all_done = async {
        loop {
            if procs.iter_mut().all(|p| matches!(p.child.try_wait(), Ok(Some(_)))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let killed = tokio::select! {
        _ = all_done => false,
        _ = int.recv() => true,
        _ = term.recv() => true,
    };
    if killed {
        println!("rttp-farm: stopping at once");
        signal_all(&procs, Signal::SIGKILL);
    }
    for p in &mut procs {
        let _ = p.child.wait();
    }
    let _ = std::fs::remove_dir_all(secret.parent().unwrap_or(&secret));
    println!("rttp-farm: stopped");
    ExitCode::SUCCESS
}
