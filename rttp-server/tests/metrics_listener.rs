//! The metrics listener is bounded like every other: a cap on connections,
//! a header timeout, and the scrape still works once the hogs are gone.

mod common;

use std::time::Duration;

use rttp_server::metrics::{METRICS_HEADER_TIMEOUT, METRICS_MAX_CONNECTIONS};
use rttp_server::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A scrape: the response's status line, or `None` if the connection closed first.
async fn scrape(addr: std::net::SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n").await.ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await.ok()?.ok()?;
    out.lines().next().map(str::to_string)
}

/// Whether the server closes `s` within `d` (reads EOF).
async fn closed_within(s: &mut TcpStream, d: Duration) -> bool {
    let mut buf = [0u8; 64];
    matches!(tokio::time::timeout(d, s.read(&mut buf)).await, Ok(Ok(0)) | Ok(Err(_)))
}

#[tokio::test]
async fn metrics_connections_are_capped_and_slow_headers_cut() {
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let maddr = metrics.local_addr().unwrap();
    let mut cfg = Config::new("s1").unwrap();
    cfg.listen = client.local_addr().unwrap();
    cfg.advertise = cfg.listen.into();
    let server = Server::start(cfg, client, Some(metrics));
    assert_eq!(scrape(maddr).await.as_deref(), Some("HTTP/1.1 200 OK"));
    // Every slot held by a connection that says nothing.
    let mut hogs = Vec::new();
    for _ in 0..METRICS_MAX_CONNECTIONS {
        hogs.push(TcpStream::connect(maddr).await.unwrap());
    }
    let mut extra = TcpStream::connect(maddr).await.unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(5)).await, "one over the cap is closed at accept");
    // The hogs' headers never come: each is cut after the header timeout.
    let slack = Duration::from_secs(5);
    for h in &mut hogs {
        assert!(closed_within(h, METRICS_HEADER_TIMEOUT + slack).await, "a silent metrics connection is cut");
    }
    let mut ok = None;
    for _ in 0..50 {
        ok = scrape(maddr).await;
        if ok.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ok.as_deref(), Some("HTTP/1.1 200 OK"), "scrapes work again");
    server.shutdown().await;
}
