//! Shared helpers: a server on 127.0.0.1:0; the raw client that speaks
//! bytes, as a person with `nc` would, comes from the integration crate.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::time::Duration;

use rttp_server::{Config, Server};
use tokio::net::TcpListener;

#[allow(unused_imports)]
pub use integration::{Raw, WAIT};

pub async fn start(mut tweak: impl FnMut(&mut Config)) -> (Server, std::net::SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut cfg = Config::new("s1").unwrap();
    cfg.listen = addr;
    cfg.advertise = addr.into();
    tweak(&mut cfg);
    (Server::start(cfg, listener, None), addr)
}

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
pub async fn check_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    integration::check_for(timeout, what, || std::future::ready(cond())).await
}

/// Lifts every per-session budget (SAY, frames, bytes, JOIN): for tests whose
/// subject is something else (queues, slow consumers) and that send floods.
pub fn no_rate_limits(c: &mut Config) {
    c.say_rate = 1e9;
    c.say_burst = u32::MAX;
    c.frame_rate = 1e12;
    c.frame_burst = u32::MAX;
    c.byte_rate = 1e15;
    c.byte_burst = u32::MAX;
    c.join_rate = 1e9;
    c.join_burst = u32::MAX;
}

/// The most the kernel lets a TCP send buffer grow to (tcp_wmem's third
/// field): what a stalled reader's server side can absorb before its queue.
pub fn send_buffer_max() -> usize {
    let wmem = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_wmem").expect("Linux: tcp_wmem");
    wmem.split_whitespace().nth(2).and_then(|m| m.parse().ok()).expect("tcp_wmem has three numbers")
}
