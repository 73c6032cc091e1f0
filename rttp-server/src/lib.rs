//! The RTTP chat server: one process per host.
//!
//! [`Server::start`] takes already bound listeners, so tests bind port 0
//! and embedders choose their own sockets. Shutdown is a
//! [`CancellationToken`]: every loop selects on it, and [`Server::wait`]
//! returns when every task has ended.

pub mod client;
pub mod config;
pub mod drain;
pub mod error;
pub mod farm;
pub mod leases;
pub mod metrics;
pub mod net;
pub mod nicks;
pub mod outbound;
pub mod ratelimit;
pub mod rebalance;
pub mod rooms;
pub mod state;
pub mod tls;
pub mod token;
pub mod web;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{Args, Config};
pub use error::{Error, Result};
pub use state::Shared;

/// The sockets a server serves, bound by the caller.
#[derive(Debug)]
pub struct Listeners {
    /// Client connections.
    pub client: TcpListener,
    /// Prometheus metrics.
    pub metrics: Option<TcpListener>,
    /// Peer links (farm members only).
    pub peer: Option<TcpListener>,
    /// Web clients: RTTP over WebSocket (`--ws-listen`).
    pub web: Option<TcpListener>,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    shared: Arc<Shared>,
    token: CancellationToken,
    tracker: TaskTracker,
    farm: Option<farm::FarmHandle>,
}

impl Server {
    /// Starts serving clients on `listener`, metrics on `metrics` and, for
    /// a farm member, peers on `peers`. Must be called within a tokio runtime.
    pub fn start(config: Config, listener: TcpListener, metrics: Option<TcpListener>) -> Server {
        Server::start_with(config, Listeners { client: listener, metrics, peer: None, web: None })
    }

    /// Starts a server on already bound listeners.
    pub fn start_with(mut config: Config, l: Listeners) -> Server {
        if let Ok(local) = l.client.local_addr() {
            // Port 0 is never an address to publish: use what was bound.
            if config.advertise.port() == 0 {
                config.advertise = local.into();
            }
            tracing::info!(addr = %local, "listening for clients");
        }
        if let Some(local) = l.metrics.as_ref().and_then(|m| m.local_addr().ok()) {
            tracing::info!(addr = %local, "serving metrics at /metrics");
        }
        if let (Some(farm), Some(local)) = (config.farm.as_mut(), l.peer.as_ref().and_then(|p| p.local_addr().ok())) {
            if farm.peer_advertise.port() == 0 {
                farm.peer_advertise = local.into();
            }
            tracing::info!(addr = %local, seeds = ?farm.seeds, "listening for peers");
        }
        if let Some(local) = l.web.as_ref().and_then(|w| w.local_addr().ok()) {
            // Port 0 is never a URL to publish: use what was bound.
            if config.ws_listen.is_some_and(|a| a.port() == 0) || config.ws_url.is_none() {
                let scheme = if config.tls.is_some() { "wss" } else { "ws" };
                config.ws_url = rttp_proto::Token::new(&format!("{scheme}://{local}{}", web::WS_PATH)).ok();
            }
            tracing::info!(addr = %local, "listening for web clients (RTTP over WebSocket at {})", web::WS_PATH);
        }
        let shared = Arc::new(Shared::new(config));
        let token = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(client::accept_loop(l.client, shared.clone(), token.clone(), tracker.clone()));
        if let Some(w) = l.web {
            tracker.spawn(web::accept_loop(w, shared.clone(), token.clone(), tracker.clone()));
        }
        if let Some(m) = l.metrics {
            let s = shared.clone();
            tracker.spawn(metrics::serve(
                m,
                shared.metrics.clone(),
                move || s.gauges(),
                token.clone(),
                tracker.clone(),
            ));
        }
        let farm = match (l.peer, shared.config.farm.is_some()) {
            (Some(p), true) => Some(farm::spawn(shared.clone(), p, &token)),
            (None, true) => {
                tracing::error!("a farm member was started without a peer listener");
                None
            }
            _ => None,
        };
        if farm.is_some() {
            // The end of the warm-up by its time bound is a status change too.
            let (s, t) = (shared.clone(), token.clone());
            tracker.spawn(async move {
                for end in [state::WARMUP_MIN, state::WARMUP_MAX] {
                    tokio::select! {
                        _ = tokio::time::sleep_until(tokio::time::Instant::from_std(s.started + end)) => {
                            s.local_changed.notify_one()
                        }
                        _ = t.cancelled() => return,
                    }
                }
            });
        }
        {
            // Shutdown reaches every client connection through its queue.
            let (s, t) = (shared.clone(), token.clone());
            tracker.spawn(async move {
                t.cancelled().await;
                for c in s.queues.iter() {
                    c.value().shut_down();
                }
            });
        }
        if let (Some(policy), Some(_)) = (shared.config.rebalance, &farm) {
            tracker.spawn(rebalance::run(shared.clone(), policy, token.clone()));
        }
        tracing::info!(id = %shared.config.id, advertise = %shared.config.advertise, group = %shared.config.group, "server started");
        Server { shared, token, tracker, farm }
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
        if let Some(f) = &self.farm {
            f.join().await;
        }
    }

    /// Drains: REDIRECTs spread over the drain window, then waits for the
    /// sessions to leave (at most the window plus a grace period).
    pub async fn drain(&self) {
        drain::drain(self.shared.clone(), self.shared.config.drain_window, self.token.clone()).await
    }

    /// Reads the TLS certificate files again (the client port's and the
    /// peer links'): new handshakes use the new ones, live sessions and
    /// links keep theirs. A file that fails to load leaves the old pair in
    /// use, with an error in the log. Returns how many pairs were reloaded.
    pub fn reload_certificates(&self) -> usize {
        let stores = [
            self.shared.config.tls.as_ref().map(|t| t.certs.clone()),
            self.shared.config.farm.as_ref().and_then(|f| f.tls.as_ref()).map(|t| t.certs.clone()),
        ];
        let mut reloaded = 0;
        for store in stores.into_iter().flatten() {
            match store.reload() {
                Ok(()) => {
                    reloaded += 1;
                    tracing::info!(cert = %store.cert_path().display(), "TLS certificate reloaded")
                }
                Err(e) => tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays in use"),
            }
        }
        if reloaded == 0 {
            tracing::info!("SIGHUP: no TLS certificate to reload");
        }
        reloaded
    }

    /// Stops the server: every session gets `ERR 508`, then every task ends.
    pub async fn shutdown(&self) {
        self.token.cancel();
        self.wait().await;
    }
}
