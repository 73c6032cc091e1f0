//! The RTTP chat server: one process per host.
//!
//! [`Server::start`] takes already bound listeners, so tests bind port 0
//! and embedders choose their own sockets. Shutdown is a
//! [`CancellationToken`]: every loop selects on it, and [`Server::wait`]
//! returns when every task has ended.

pub mod client;
pub mod config;
pub mod error;
pub mod metrics;
pub mod outbound;
pub mod ratelimit;
pub mod rooms;
pub mod state;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Args, Config};
pub use error::{Error, Result};
pub use state::Shared;

/// A running server.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Server {
    /// Starts serving clients on `listener` and, if given, metrics on
    /// `metrics`. Must be called within a tokio runtime.
    pub fn start(
        mut config: Config,
        listener: TcpListener,
        metrics: Option<TcpListener>,
    ) -> Server {
        if let Ok(local) = listener.local_addr() {
            // Port 0 is never an address to publish: use what was bound.
            if config.advertise.port() == 0 {
                config.advertise = local.into();
            }
            tracing::info!(addr = %local, "listening for clients");
        }
        if let Some(local) = metrics.as_ref().and_then(|m| m.local_addr().ok()) {
            tracing::info!(addr = %local, "serving metrics at /metrics");
        }
        let shared = Arc::new(Shared::new(config));
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(client::accept_loop(
            listener,
            shared.clone(),
            token.clone(),
            tracker.clone(),
        ));
        if let Some(m) = metrics {
            tracker.spawn(metrics::serve(
                m,
                shared.clone(),
                token.clone(),
                tracker.clone(),
            ));
        }
        tracing::info!(id = %shared.config.id, advertise = %shared.config.advertise, group = %shared.config.group, "server started");
        Server {
            shared,
            token,
            tracker,
        }
    }

    /// The shared state, for inspection.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The token that stops the server when cancelled.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Waits until the token is cancelled and every task has ended.
    pub async fn wait(&self) {
        self.token.cancelled().await;
        self.tracker.close();
        self.tracker.wait().await;
    }

    /// Stops the server: every session gets `ERR 508`, then every task ends.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.wait().await;
    }
}
