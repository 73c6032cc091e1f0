//! What every listener shares: accepting until shutdown, backing off on
//! errors (out of file descriptors and the like) instead of spinning.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Pause after a failed accept.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The next connection, or `None` once `token` is cancelled.
pub async fn accept(listener: &TcpListener, token: &CancellationToken, what: &str) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            _ = token.cancelled() => return None,
            r = listener.accept() => match r {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return Some((stream, addr));
                }
                Err(e) => {
                    tracing::warn!(error = %e, listener = what, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
}
