//! Following a farm's table in real time: `FARM watch` on one server, and
//! moving to another known server when that one is lost. This is the one
//! place that reads `FARM_INFO` for watchers such as farm-dns.

use std::net::SocketAddr;
use std::time::Duration;

use rttp_conn::ClientConn;
use rttp_proto::{ClientFrame, FarmInfo, ServerFrame, Status, Token};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

/// Timers of a watcher.
#[derive(Debug, Clone, Copy)]
pub struct WatchTimers {
    /// Time allowed to connect.
    pub connect: Duration,
    /// How often the watcher checks the server with `PING`.
    pub ping_every: Duration,
    /// Silence after which the server is taken as lost.
    pub silence: Duration,
    /// Pause before trying the next server after a failure.
    pub retry: Duration,
}

impl Default for WatchTimers {
    fn default() -> WatchTimers {
        WatchTimers {
            connect: Duration::from_secs(1),
            ping_every: Duration::from_millis(500),
            silence: Duration::from_millis(1500),
            retry: Duration::from_millis(200),
        }
    }
}

/// What a watcher publishes.
#[derive(Debug, Clone, Default)]
pub struct Watched {
    /// The latest table, from whichever server answered last.
    pub table: Option<FarmInfo>,
    /// The server it came from.
    pub source: Option<SocketAddr>,
    /// Whether the watcher is connected right now.
    pub connected: bool,
}

/// Follows the farm table until `cancel`: tries `seeds` and then every
/// server of the last table, in turn; publishes each table on `tx`. With
/// `tls`, every connection is through TLS (a farm whose client ports speak it).
pub async fn watch_farm(
    seeds: Vec<SocketAddr>,
    timers: WatchTimers,
    tls: Option<rttp_conn::tls::TlsClient>,
    tx: watch::Sender<Watched>,
    cancel: CancellationToken,
) {
    let mut next = 0usize;
    let mut warned = false;
    loop {
        let candidates = candidates(&seeds, &tx.borrow().table);
        let addr = candidates[next % candidates.len()];
        next += 1;
        let outcome = tokio::select! {
            r = follow(addr, timers, tls.as_ref(), &tx) => r,
            _ = cancel.cancelled() => return,
        };
        tx.send_modify(|w| w.connected = false);
        match outcome {
            Ok(()) => {}
            Err(e) if !warned || next.is_multiple_of(candidates.len()) => {
                tracing::warn!(%addr, error = %e, "farm watch lost; trying the next known server (keeping the last table)");
                warned = true;
            }
            Err(e) => tracing::debug!(%addr, error = %e, "farm watch failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(timers.retry) => {}
            _ = cancel.cancelled() => return,
        }
    }
}

/// The seeds, then every server of the last table that is not DOWN.
pub fn candidates(seeds: &[SocketAddr], table: &Option<FarmInfo>) -> Vec<SocketAddr> {
    let mut v: Vec<SocketAddr> = seeds.to_vec();
    if let Some(t) = table {
        for e in &t.servers {
            if e.status != Status::Down {
                if let Ok(a) = e.addr.as_str().parse::<SocketAddr>() {
                    if !v.contains(&a) {
                        v.push(a);
                    }
                }
            }
        }
    }
    v
}

/// Watches one server until it is lost.
async fn follow(
    addr: SocketAddr,
    timers: WatchTimers,
    tls: Option<&rttp_conn::tls::TlsClient>,
    tx: &watch::Sender<Watched>,
) -> Result<()> {
    let at = |e| Error::conn(addr, e);
    let mut conn: ClientConn<_> = ClientConn::connect_over(tls, addr, timers.connect).await.map_err(at)?;
    conn.write_frame(&ClientFrame::Farm { watch: true }).await.map_err(at)?;
    let mut ping = tokio::time::interval(timers.ping_every);
    let mut last_heard = tokio::time::Instant::now();
    let token = Token::new("w").expect("valid token");
    loop {
        tokio::select! {
            f = conn.read_frame() => {
                last_heard = tokio::time::Instant::now();
                match f.map_err(at)?.ok_or(Error::Closed { addr })? {
                    ServerFrame::FarmInfo(t) => {
                        tracing::debug!(%addr, epoch = t.epoch, servers = t.servers.len(), "farm table");
                        tx.send_modify(|w| { w.table = Some(t); w.source = Some(addr); w.connected = true; });
                    }
                    ServerFrame::Ping { token } => conn.write_frame(&ClientFrame::Pong { token }).await.map_err(at)?,
                    ServerFrame::Redirect { server, reason, .. } => {
                        return Err(Error::Redirected { addr, server, reason: reason.to_string() })
                    }
                    ServerFrame::Err { code, reason } if code >= 500 => return Err(Error::Refused { addr, code, reason }),
                    _ => {}
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > timers.silence {
                    return Err(Error::Timeout { addr });
                }
                conn.write_frame(&ClientFrame::Ping { token }).await.map_err(at)?;
            }
        }
    }
}
