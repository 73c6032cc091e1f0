//! Client connections: the accept loop, the connection, the session.

mod budget;
mod conn;
mod hello;
mod session;

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
struct SlotGuard(Arc<Shared>, std::net::IpAddr);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.remove_connection();
        self.0.remove_ip(self.1);
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
            tracker.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    use tokio::io::AsyncWriteExt;
                    let mut stream = stream;
                    let _ = stream.write_all(&err).await;
                    let _ = stream.shutdown().await;
                })
                .await;
            });
            continue;
        }
        let shared = shared.clone();
        let token = token.clone();
        tracker.spawn(async move {
            let _slot = SlotGuard(shared.clone(), addr.ip());
            let (nick, reason) = conn::ClientConn::new(stream, shared).run(token).await;
            match nick {
                Some(nick) => info!(%addr, %nick, reason, "session closed"),
                None => tracing::debug!(%addr, reason, "connection closed before HELLO"),
            }
        });
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
        assert!(size < 1280, "the per-connection future is {size} bytes");
    }
}
