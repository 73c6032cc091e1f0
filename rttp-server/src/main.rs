//! `rttp-server`: parse the configuration, bind, serve, stop on a signal.

use std::io::IsTerminal;
use std::process::ExitCode;

use rttp_server::{Config, Server};
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
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rttp-server: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    rt.block_on(serve(config))
}

async fn serve(config: Config) -> ExitCode {
    let listener = match TcpListener::bind(config.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rttp-server: cannot listen on {}: {e}", config.listen);
            return ExitCode::from(1);
        }
    };
    let metrics = match config.metrics {
        Some(addr) => match TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("rttp-server: cannot serve metrics on {addr}: {e}");
                return ExitCode::from(1);
            }
        },
        None => None,
    };
    let (mut term, mut int) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(t), Ok(i)) => (t, i),
        _ => {
            eprintln!("rttp-server: cannot install signal handlers");
            return ExitCode::from(1);
        }
    };
    let server = Server::start(config, listener, metrics);
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    server.token().cancel();
    tokio::select! {
        _ = server.wait() => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        _ = term.recv() => { tracing::warn!("second signal: exiting now"); ExitCode::from(130) }
        _ = int.recv() => { tracing::warn!("second signal: exiting now"); ExitCode::from(130) }
    }
}
