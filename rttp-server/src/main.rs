//! `rttp-server`: parse the configuration, bind, serve, stop on a signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use rttp_server::{Config, Listeners, Server};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rttp-server: {e}");
            return ExitCode::from(2);
        }
    };
    // Every connection is a descriptor: the cap, the peer links (two per
    // peer while a duplicate dial settles, for a farm of up to 128), and the
    // metrics listener's connections.
    let peers = if config.farm.is_some() { 256 } else { 0 };
    let needed = rttp_conn::fdlimit::needed(u64::from(config.max_connections), peers + 16);
    let open_files = match rttp_conn::fdlimit::raise_for(needed) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("rttp-server: --max-connections {} does not fit: {why}", config.max_connections);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    tracing::debug!(open_files, needed, "open-file limit");
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.threads {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rttp-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(serve(config))
}

/// Connections the kernel queues until they are accepted (it caps this at
/// `net.core.somaxconn`, 4096 by default). A failover brings a dead server's
/// clients within a second; past a full queue the kernel drops their SYNs,
/// and a client retries only after 1 s, then 3 s. With tokio's 1,024 the
/// kernel dropped 887 in one `rttp-load failover --clients 10000`; none
/// since.
const ACCEPT_BACKLOG: u32 = 65_535;

async fn bind(what: &str, addr: std::net::SocketAddr) -> Result<TcpListener, ExitCode> {
    let listen = || {
        let s = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        // As `TcpListener::bind` does: a restarted server rebinds at once.
        s.set_reuseaddr(true)?;
        s.bind(addr)?;
        s.listen(ACCEPT_BACKLOG)
    };
    listen().map_err(|e| {
        eprintln!("rttp-server: cannot listen for {what} on {addr}: {e}");
        ExitCode::from(1)
    })
}

async fn serve(config: Config) -> ExitCode {
    let client = match bind("clients", config.listen).await {
        Ok(l) => l,
        Err(code) => return code,
    };
    let metrics = match config.metrics {
        Some(addr) => match bind("metrics", addr).await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        None => None,
    };
    let peer = match &config.farm {
        Some(f) => match bind("peers", f.peer_listen).await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        None => None,
    };
    let web = match config.ws_listen {
        Some(addr) => match bind("web clients", addr).await {
            Ok(l) => Some(l),
            Err(code) => return code,
        },
        None => None,
    };
    let signals = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::hangup()),
    );
    let (mut term, mut int, mut usr1, mut usr2, mut hup) = match signals {
        (Ok(t), Ok(i), Ok(u1), Ok(u2), Ok(h)) => (t, i, u1, u2, h),
        _ => {
            eprintln!("rttp-server: cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    let server = Server::start_with(config, Listeners { client, metrics, peer, web });
    // SIGUSR1 drains without stopping (maintenance); SIGUSR2 undoes it;
    // SIGHUP reads the TLS certificates again.
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: draining, then stopping"); break }
            _ = int.recv() => { tracing::info!("SIGINT: draining, then stopping"); break }
            _ = usr1.recv() => {
                tracing::info!("SIGUSR1: draining; the server stays up (SIGUSR2 to undo)");
                let shared = server.shared().clone();
                let window = shared.config.drain_window;
                tokio::spawn(rttp_server::drain::redirect_all(shared, window, server.token()));
            }
            _ = usr2.recv() => {
                tracing::info!("SIGUSR2: accepting sessions again");
                server.shared().set_draining(false);
            }
            _ = hup.recv() => { server.reload_certificates(); }
        }
    }
    // A second signal stops at once.
    let second = async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    };
    tokio::select! {
        _ = async { server.drain().await; server.shutdown().await } => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        _ = second => {
            tracing::warn!("second signal: exiting now");
            ExitCode::from(130)
        }
    }
}
