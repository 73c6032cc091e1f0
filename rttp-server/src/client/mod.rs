//! Client connections: the accept loop, the connection, the session.

mod budget;
mod conn;
mod hello;
mod session;
pub(crate) mod tls;
pub(crate) mod transport;

pub(crate) use conn::ClientConn;
pub(crate) use transport::{Raw, Transport};

use std::sync::Arc;
use std::time::Duration;

use rttp_proto::ErrCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::info;

pub use conn::{CLOSE_FLUSH, CLOSE_LINGER};

use crate::state::Shared;

/// Gives the connection slots (the server's and its IP's) back on every exit
/// path, a panic included.
pub(crate) struct SlotGuard(Arc<Shared>, std::net::SocketAddr);

impl SlotGuard {
    /// Takes a connection slot and one of `addr`'s address's; `None` when
    /// either cap is reached.
    pub(crate) fn take(shared: &Arc<Shared>, addr: std::net::SocketAddr) -> Option<SlotGuard> {
        if !shared.try_add_connection() {
            return None;
        }
        if !shared.try_add_ip(addr.ip()) {
            shared.remove_connection();
            return None;
        }
        Some(SlotGuard(shared.clone(), addr))
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.remove_connection();
        self.0.remove_ip(self.1.ip());
        if std::thread::panicking() {
            tracing::error!("a connection task panicked; its session was cleaned up");
        }
    }
}

/// Accepts client connections until `token` is cancelled.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken, tracker: TaskTracker) {
    loop {
        let Some((stream, addr)) = crate::net::accept(&listener, &token, "clients").await else { break };
        let refused = if !shared.try_add_connection() {
            Some("too many connections: try another server")
        } else if !shared.try_add_ip(addr.ip()) {
            shared.remove_connection();
            Some("too many connections from your address")
        } else {
            None
        };
        if let Some(why) = refused {
            shared.metrics.refused_connections.inc();
            let err = shared.metrics.err(ErrCode::TooManyConnections, why);
            // On a TLS port an ERR in the clear would be noise to the
            // client, and a handshake per refusal is what a flood wants:
            // the connection is just closed.
            let tls = shared.config.tls.is_some();
            tracker.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = stream;
                    if !tls {
                        let _ = stream.write_all(&err).await;
                    }
                    let _ = AsyncWriteExt::shutdown(&mut stream).await;
                })
                .await;
            });
            continue;
        }
        // The guard's address is the one logged at the end: one copy in
        // the task, not two.
        let slot = SlotGuard(shared.clone(), addr);
        let (shared, token) = (shared.clone(), token.clone());
        // One task type per transport: a plaintext session's task has no
        // room for TLS state, a TLS session's none for the plaintext loop.
        match shared.config.tls.clone() {
            None => tracker.spawn(async move {
                let (nick, reason) = conn::ClientConn::new(Arc::new(stream), shared).run(token).await;
                closed(slot, nick, reason);
            }),
            Some(tls) => tracker.spawn(async move {
                // Boxed: the handshake's state would otherwise size the
                // task for the session's whole life.
                let Some(t) = Box::pin(handshake(stream, &tls, &shared, &token)).await else { return };
                // The configuration is not needed past the handshake.
                drop(tls);
                let (nick, reason) = conn::ClientConn::new(t, shared).run(token).await;
                closed(slot, nick, reason);
            }),
        };
    }
}

/// Logs a session's end; the slots go back with the guard.
fn closed(slot: SlotGuard, nick: Option<rttp_proto::Nick>, reason: &'static str) {
    let addr = slot.1;
    match nick {
        Some(nick) => info!(%addr, %nick, reason, "session closed"),
        None => tracing::debug!(%addr, reason, "connection closed before HELLO"),
    }
}

/// The TLS handshake of a client connection, within `--hello-timeout`;
/// `None` (counted and logged at debug level) when it fails: plaintext on a
/// TLS port, an unknown CA, a stall.
async fn handshake(
    stream: tokio::net::TcpStream,
    tls: &crate::tls::ServerTls,
    shared: &Shared,
    token: &CancellationToken,
) -> Option<tls::Tls> {
    let peer = stream.peer_addr().ok();
    let accept = tls::accept(stream, tls.config.clone());
    let r = tokio::select! {
        r = tokio::time::timeout(shared.config.hello_timeout, accept) => r,
        _ = token.cancelled() => return None,
    };
    match r {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            shared.metrics.tls_failures.inc();
            tracing::debug!(?peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            shared.metrics.tls_failures.inc();
            tracing::debug!(?peer, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_task_stays_small() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let s = tokio::net::TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let shared = Arc::new(Shared::new(crate::Config::new("s1").unwrap()));
        let size = conn::ClientConn::task_size(s, shared);
        println!("connection task: {size} bytes");
        assert!(size < 1024, "the per-connection future is {size} bytes");
    }
}
