//! Asking a running farm what it knows: each server's table (`FARM`), the
//! mesh, and its metrics.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use rttp_conn::tls::TlsClient;
use rttp_proto::{FarmInfo, ServerFrame, Status};

use crate::farm::Farm;
use crate::raw::Raw;
use crate::spec::MESH_WAIT;
use crate::text::parse_metric;

impl Farm {
    /// Server `i`'s farm table, asked with `FARM`; `None` if it does not
    /// answer within 2 s (dead, stopped).
    pub async fn farm_info(&self, i: usize) -> Option<FarmInfo> {
        let addr = self.servers[i].client;
        tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = Raw::connect_over(self.tls_for(i), addr).await?;
            c.send("FARM\r\n").await;
            match c.frame_within(Duration::from_secs(1)).await {
                Ok(Some(ServerFrame::FarmInfo(info))) => Some(info),
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// The status of server `of` in server `at`'s table.
    pub async fn status_seen(&self, at: usize, of: &str) -> Option<rttp_proto::Status> {
        self.farm_info(at).await?.servers.iter().find(|e| e.id.as_str() == of).map(|e| e.status)
    }

    /// Whether server `i` lists every server of the farm, each UP.
    pub async fn sees_all_up(&self, i: usize) -> bool {
        let n = self.servers.len();
        self.farm_info(i)
            .await
            .is_some_and(|t| t.servers.len() == n && t.servers.iter().all(|e| e.status == Status::Up))
    }

    /// Whether every running server lists every server UP.
    pub async fn all_up(&self) -> bool {
        for i in 0..self.servers.len() {
            if !self.sees_all_up(i).await {
                return false;
            }
        }
        true
    }

    /// Waits until every server lists every server UP (a full mesh);
    /// panics after [`MESH_WAIT`], naming the server that does not.
    pub async fn wait_mesh(&self) {
        for i in 0..self.servers.len() {
            let what = format!("s{} lists all {} servers UP", i + 1, self.servers.len());
            crate::check_for(MESH_WAIT, &what, || self.sees_all_up(i)).await;
        }
    }

    /// Server `i`'s Prometheus text (without blocking the runtime: tests
    /// scrape while the same thread drives their clients).
    pub async fn metrics(&self, i: usize) -> String {
        scrape(self.servers[i].metrics).await.expect("a metrics scrape within 10 s")
    }

    /// One sample of server `i`'s metrics, by the start of its line
    /// (`rttp_peers_up `, `rttp_err_replies_total{code="508"}`). `None` when
    /// the metric's family is not exposed at all (no `# TYPE` line: a typo or
    /// a metric that does not exist), so an assertion on it cannot pass by
    /// accident; `Some(0.0)` when the family exists but this labelled sample
    /// was never counted.
    pub async fn metric(&self, i: usize, line_prefix: &str) -> Option<f64> {
        parse_metric(&self.metrics(i).await, line_prefix)
    }

    /// One figure of every server's metrics, s1 first: 0 for a server that
    /// is not running (or does not have it).
    pub async fn metric_each(&self, line_prefix: &str) -> Vec<f64> {
        let mut out = Vec::new();
        for i in 0..self.servers.len() {
            out.push(match self.pid_of(i) {
                Some(_) => self.metric(i, line_prefix).await.unwrap_or(0.0),
                None => 0.0,
            });
        }
        out
    }
}

/// Whether the server at `addr` answers `FARM` with a table that has a row
/// `id` at `published` (and not some other process that holds the port).
/// Through TLS with `tls` (rustls's blocking stream: this runs outside a runtime too).
pub(crate) fn answers_as(addr: SocketAddr, id: &str, published: &str, tls: Option<&TlsClient>) -> bool {
    use bytes::BytesMut;
    use rttp_proto::{Frame, Limits};
    let Ok(tcp) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else { return false };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
    let mut s: Box<dyn ReadWrite> = match tls {
        None => Box::new(tcp),
        Some(t) => match rustls::ClientConnection::new(t.config().clone(), t.name_for(addr)) {
            Ok(c) => Box::new(rustls::StreamOwned::new(c, tcp)),
            Err(_) => return false,
        },
    };
    if s.write_all(b"FARM\r\n").is_err() {
        return false;
    }
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        match ServerFrame::decode_buf(&mut buf, &Limits::default()) {
            Ok(Some(ServerFrame::FarmInfo(t))) => {
                return t.servers.iter().any(|e| e.id.as_str() == id && e.addr.as_str() == published);
            }
            Ok(Some(_)) => continue,
            Ok(None) => {}
            Err(_) => return false,
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A blocking stream, plain or TLS.
trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// The Prometheus text of the metrics listener at `addr`; `None` when it
/// cannot be reached or does not answer within 10 s (a server that died).
pub async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let get = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: farm\r\nConnection: close\r\n\r\n").await.ok()?;
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        Some(out)
    };
    tokio::time::timeout(Duration::from_secs(10), get).await.ok().flatten()
}
