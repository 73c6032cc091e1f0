//! The slow-consumer policy, both halves: a member briefly behind in a burst
//! (over `--outbound-limit`, under `--outbound-max`) is kept and gets every
//! message; one that stays behind for `--slow-consumer-after` is cut off
//! with `ERR 507`, and the room goes on.

mod common;

use std::time::Duration;

use common::{no_rate_limits, send_buffer_max, start, Raw};
use rttp_proto::ServerFrame;
use tokio::io::AsyncWriteExt;

/// `n` messages of 1 KiB into `#busy` from a sender whose own copies are
/// read and counted by a task; returns once the server has fanned out all of
/// them (the sender got its own back), or cut the sender off.
async fn flood(addr: std::net::SocketAddr, n: usize) {
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 16];
        let (mut got, mut done_tx) = (0usize, Some(done_tx));
        while let Ok(k @ 1..) = rd.read(&mut buf).await {
            got += k;
            // Each copy is at least 1,050 bytes (its line and 1 KiB body).
            if got >= n * 1050 {
                if let Some(tx) = done_tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    wr.write_all(b"HELLO 1 sender\r\nJOIN #busy\r\n").await.unwrap();
    let frame = format!("SAY #busy 1024\r\n{}\r\n", "z".repeat(1024));
    for _ in 0..n {
        wr.write_all(frame.as_bytes()).await.unwrap();
    }
    // Or the sender itself was cut off (under the old policy it can be).
    let _ = done_rx.await;
    // Kept open: the sender stays a member until the test ends.
    std::mem::forget(wr);
}

async fn member(addr: std::net::SocketAddr, nick: &str, small_window: bool) -> Raw {
    let mut m = if small_window { Raw::connect_small_window(addr).await } else { Raw::connect(addr).await };
    m.send(&format!("HELLO 1 {nick}\r\nJOIN #busy\r\n")).await;
    m.until(|f| matches!(f, ServerFrame::Joined { nick: n, .. } if n.as_str() == nick)).await;
    m
}

/// A burst far over the kernel's buffers and the soft bound, to a member that
/// reads nothing until the server has fanned out all of it, then catches up. Returns how many of
/// the messages it got, and whether it was cut off.
async fn burst(outbound_max: usize) -> (usize, usize, bool) {
    let (server, addr) = start(|c| {
        no_rate_limits(c);
        c.outbound_limit = 64 * 1024;
        c.outbound_max = outbound_max;
        c.slow_consumer_after = Duration::from_secs(30);
    })
    .await;
    let mut late = member(addr, "late", true).await;
    let n = (send_buffer_max() + (2 << 20)) / 1024;
    flood(addr, n).await;
    let mut got = 0;
    while got < n {
        match late.try_frame().await {
            Some(ServerFrame::Msg { .. }) => got += 1,
            Some(ServerFrame::Joined { .. }) => {}
            Some(ServerFrame::Err { code: 507, .. }) | None => break,
            Some(other) => panic!("after {got}: {other:?}"),
        }
    }
    let text = server.shared().metrics.render(server.shared().gauges());
    // `late` got less than all, or a cut was counted (the sender may be one too).
    let cut = integration::parse_metric(&text, "rttp_slow_consumer_disconnects_total ").unwrap_or(0.0) >= 1.0;
    server.shutdown().await;
    (n, got, cut)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_briefly_behind_is_kept_and_gets_everything() {
    // With no room above the soft bound (the old policy) the burst cuts it
    // off: it really was behind.
    let (n, got, cut) = burst(64 * 1024).await;
    assert!(cut && got < n, "without room to be behind, the burst cuts it: got {got} of {n}, cut {cut}");
    // Under the hard bound, briefly behind: kept, and it gets everything.
    let (n, got, cut) = burst(64 << 20).await;
    assert!(!cut, "not cut off");
    assert_eq!(got, n, "every message, none lost to the burst");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stays_behind_is_cut_after_the_time_and_the_room_goes_on() {
    let (server, addr) = start(|c| {
        no_rate_limits(c);
        c.outbound_limit = 64 * 1024;
        c.outbound_max = 64 << 20;
        c.slow_consumer_after = Duration::from_secs(1);
    })
    .await;
    let _stalled = member(addr, "stalled", true).await;
    let mut reader = member(addr, "reader", false).await;
    let n = (send_buffer_max() + (2 << 20)) / 1024;
    let started = tokio::time::Instant::now();
    // `reader` reads all along; `stalled` never reads: it is under the hard
    // bound (64 MiB) but stays behind, so it is cut after a second.
    let reading = tokio::spawn(async move {
        let mut got = 0;
        let mut cut = None;
        while got < n || cut.is_none() {
            match reader.frame().await {
                ServerFrame::Msg { .. } => got += 1,
                ServerFrame::Parted { nick, .. } if nick.as_str() == "stalled" => cut = Some(started.elapsed()),
                ServerFrame::Joined { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        (got, cut)
    });
    flood(addr, n).await;
    let (got, cut) = reading.await.unwrap();
    assert_eq!(got, n, "the reading member got every message");
    let text = server.shared().metrics.render(server.shared().gauges());
    assert!(text.contains("rttp_slow_consumer_disconnects_total 1\n"), "{text}");
    assert!(cut.unwrap() >= Duration::from_secs(1), "not before --slow-consumer-after: {cut:?}");
    server.shutdown().await;
}

/// A rejoin whose replay (20 × 60 KB, 1.2 MB) is over the default 1 MiB
/// `--outbound-limit`: the joiner is behind for a moment, not a slow
/// consumer; it gets all 20 and stays connected.
#[tokio::test]
async fn a_replay_over_the_outbound_limit_is_delivered_not_cut() {
    let (server, addr) = start(no_rate_limits).await;
    assert_eq!(server.shared().config.outbound_limit, 1 << 20, "the default limit");
    let mut alice = Raw::hello(addr, "alice").await;
    alice.send("JOIN #big\r\n").await;
    alice.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    alice.send("SAY #big 5\r\nfirst\r\n").await;
    let ServerFrame::Msg { id: first, .. } = alice.until(|f| matches!(f, ServerFrame::Msg { .. })).await else {
        unreachable!()
    };
    let big = "b".repeat(60_000);
    for i in 0..20 {
        alice.send(&format!("SAY #big {}\r\n{i:02}{big}\r\n", big.len() + 2)).await;
        alice.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    }
    // Bob comes back after `first`: everything after it is replayed.
    let mut bob = Raw::hello(addr, "bob").await;
    bob.send(&format!("JOIN #big {first}\r\n")).await;
    let mut got = Vec::new();
    while got.len() < 20 {
        match bob.frame().await {
            ServerFrame::Msg { text, .. } => got.push(text.as_str()[..2].to_string()),
            ServerFrame::Err { code, reason } => panic!("ERR {code} {reason}"),
            _ => {}
        }
    }
    assert_eq!(got, (0..20).map(|i| format!("{i:02}")).collect::<Vec<_>>());
    bob.send("PING still-here\r\n").await;
    bob.until(|f| matches!(f, ServerFrame::Pong { .. })).await;
    server.shutdown().await;
}
