//! Every limit, each with its own test: the ERR code it gives, and that the
//! server still serves other clients afterwards.

mod common;

use std::time::Duration;

use common::{check_for, no_rate_limits, send_buffer_max, start, Raw, WAIT};

use rttp_proto::ServerFrame;

/// Another client can still open a session and talk.
async fn still_serves(addr: std::net::SocketAddr) {
    let mut c = Raw::hello(addr, &format!("probe{}", rand_suffix())).await;
    c.send("PING ok\r\n").await;
    c.expect("PONG ok\r\n").await;
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn line_too_long_closes() {
    let (server, addr) = start(|_| {}).await;
    let mut c = Raw::hello(addr, "a").await;
    c.send_bytes(&vec![b'A'; 5000]).await;
    let reason = c.expect_err(502).await;
    assert!(reason.contains("4096"), "{reason}");
    c.expect_closed().await;
    still_serves(addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_shorter_max_line_is_enforced_at_its_value() {
    let (server, addr) = start(|c| c.limits.max_line = 128).await;
    let mut ok = Raw::hello(addr, "a").await;
    // 126 bytes and CRLF: exactly the limit, served.
    let room = format!("#{}", "r".repeat(126 - "JOIN #".len()));
    ok.send(&format!("JOIN {room}\r\n")).await;
    let e = ok.frame().await;
    // A 121-character room name is over the room-name limit, not the line limit.
    assert!(matches!(e, ServerFrame::Err { code: 402, .. }), "{e:?}");
    let mut long = Raw::hello(addr, "b").await;
    long.send(&format!("JOIN #{}\r\n", "r".repeat(200))).await;
    let reason = long.expect_err(502).await;
    assert!(reason.contains("128"), "{reason}");
    long.expect_closed().await;
    ok.send("PING still\r\n").await;
    ok.expect("PONG still\r\n").await;
    server.shutdown().await;
}

#[tokio::test]
async fn body_too_large_closes_before_the_body_is_read() {
    let (server, addr) = start(|c| c.limits.max_body = 100).await;
    let mut c = Raw::hello(addr, "a").await;
    c.send("JOIN #r\r\n").await;
    c.frame().await;
    c.send("SAY #r 101\r\n").await;
    c.expect_err(506).await;
    c.expect_closed().await;
    still_serves(addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_get_precise_codes_and_the_session_lives() {
    let (server, addr) = start(|_| {}).await;
    let mut c = Raw::hello(addr, "a").await;
    for (input, code) in [
        (&b"join #r\r\n"[..], 400),
        (b"JOIN  #r\r\n", 400),
        (b"FROB\r\n", 401),
        (b"JOIN r\r\n", 402),
        (b"SAY #r 2\r\n\xff\xfe\r\n", 403),
        (b"WELCOME s1 x\r\n", 404),
    ] {
        c.send_bytes(input).await;
        c.expect_err(code).await;
    }
    c.send("PING alive\r\n").await;
    c.expect("PONG alive\r\n").await;
    server.shutdown().await;
}

#[tokio::test]
async fn too_many_bad_frames_in_a_row_closes() {
    let (server, addr) = start(|c| c.max_bad_frames = 10).await;
    let mut c = Raw::hello(addr, "a").await;
    // Nine bad frames, a good one (the count resets), then ten bad ones.
    for _ in 0..9 {
        c.send("NOPE\r\n").await;
        c.expect_err(401).await;
    }
    c.send("PING p\r\n").await;
    c.expect("PONG p\r\n").await;
    for _ in 0..9 {
        c.send("NOPE\r\n").await;
        c.expect_err(401).await;
    }
    c.send("NOPE\r\n").await;
    c.expect_err(401).await;
    c.expect_err(501).await;
    c.expect_closed().await;
    still_serves(addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn say_flood_is_rate_limited_and_the_session_kept() {
    let (server, addr) = start(|c| {
        c.say_rate = 0.001; // no refill during the test: exactly the burst passes
        c.say_burst = 5;
    })
    .await;
    let mut c = Raw::hello(addr, "a").await;
    c.send("JOIN #r\r\n").await;
    c.frame().await;
    let mut flood = String::new();
    for _ in 0..8 {
        flood.push_str("SAY #r 1\r\nx\r\n");
    }
    c.send(&flood).await;
    let (mut msgs, mut limited) = (0, 0);
    for _ in 0..8 {
        match c.frame().await {
            ServerFrame::Msg { .. } => msgs += 1,
            ServerFrame::Err { code: 429, .. } => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((msgs, limited), (5, 3));
    c.send("PING still\r\n").await;
    c.expect("PONG still\r\n").await;
    assert_eq!(
        server
            .shared()
            .metrics
            .render(server.shared().gauges())
            .lines()
            .find(|l| l.starts_with("rttp_rate_limited_frames_total")),
        Some("rttp_rate_limited_frames_total 3")
    );
    server.shutdown().await;
}

/// Counts MSG and `ERR 429` among the next `n` frames.
async fn say_answers(c: &mut Raw, n: usize) -> (usize, usize) {
    let (mut msgs, mut limited) = (0, 0);
    for _ in 0..n {
        match c.frame().await {
            ServerFrame::Msg { .. } => msgs += 1,
            ServerFrame::Err { code: 429, .. } => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    (msgs, limited)
}

/// The SAY budget refills at `--say-rate` while the server runs, and never
/// past `--say-burst`.
#[tokio::test]
async fn the_say_budget_refills_at_its_rate_up_to_its_burst() {
    let (server, addr) = start(|c| {
        c.say_rate = 10.0; // a token every 100 ms
        c.say_burst = 2;
    })
    .await;
    let mut c = Raw::hello(addr, "a").await;
    c.send("JOIN #r\r\n").await;
    c.frame().await;
    let batch = "SAY #r 1\r\nx\r\n".repeat(4);
    c.send(&batch).await;
    let first = say_answers(&mut c, 4).await;
    assert_eq!(first, (2, 2), "the burst, then refused");
    // Half a second is five tokens' worth: the budget is full again, but
    // holds no more than the burst.
    tokio::time::sleep(Duration::from_millis(500)).await;
    c.send(&batch).await;
    let (msgs, _) = say_answers(&mut c, 4).await;
    assert!(msgs == 2 || msgs == 3, "refilled to the burst of 2 (3 if a token landed mid-batch), got {msgs}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_stalled_reader_is_cut_off_and_the_others_get_everything() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (server, addr) = start(|c| {
        c.outbound_limit = 256 * 1024;
        c.outbound_max = 256 * 1024; // cut at the bound, not after a while behind
        no_rate_limits(c);
    })
    .await;
    let mut stalled = Raw::connect_small_window(addr).await;
    stalled.send("HELLO 1 stalled\r\n").await;
    stalled.frame().await;
    stalled.frame().await;
    stalled.send("JOIN #busy\r\n").await;
    stalled.frame().await;
    let mut reader = Raw::hello(addr, "reader").await;
    reader.send("JOIN #busy\r\n").await;
    reader.frame().await;
    // The sender is a member too: a task keeps reading (and dropping) its copies.
    let (mut rd, mut wr) = tokio::net::TcpStream::connect(addr).await.unwrap().into_split();
    let sink = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    wr.write_all(b"HELLO 1 sender\r\nJOIN #busy\r\n").await.unwrap();
    // `stalled` never reads again. It must fall further behind than the
    // kernel can buffer for it (the server's send buffer grows up to
    // tcp_wmem's maximum; its own receive buffer is 4 KiB) plus its 256 KiB
    // queue: twice that, in 1 KiB messages, in steps of 50 (52 KB, well under
    // the queue bound) so that the reading member is never the slow one.
    let behind = 2 * (send_buffer_max() + 256 * 1024);
    let n = behind.div_ceil(1024 * 50) * 50;
    let frame = format!("SAY #busy 1024\r\n{}\r\n", "z".repeat(1024));
    let mut got = 0;
    let mut stalled_parted = false;
    for _ in 0..n / 50 {
        for _ in 0..50 {
            wr.write_all(frame.as_bytes()).await.unwrap();
        }
        let target = got + 50;
        while got < target {
            match reader.frame().await {
                ServerFrame::Msg { .. } => got += 1,
                ServerFrame::Parted { nick, .. } if nick.as_str() == "stalled" => stalled_parted = true,
                ServerFrame::Joined { .. } => {}
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(got, n, "the reading member got every message");
    assert!(stalled_parted, "the others saw the stalled member leave");
    let text = server.shared().metrics.render(server.shared().gauges());
    assert!(text.contains("rttp_slow_consumer_disconnects_total 1\n"), "{text}");
    let members = server.shared().rooms.members(&"#busy".parse().unwrap());
    assert!(members.iter().all(|n| n.as_str() != "stalled"), "{members:?}");
    drop(wr);
    sink.abort();
    server.shutdown().await;
}

/// A session whose queue overflows while its socket still has room (a
/// replay past its share of the replay budget) is told why: `ERR 507`, then
/// closed. The room and its other member are unaffected.
#[tokio::test]
async fn an_overflowing_queue_is_told_507_then_closed() {
    let (server, addr) = start(|c| {
        // Replays may hold 64 KiB, one session 16 KiB.
        c.history_budget = 32 * 1024;
        no_rate_limits(c);
    })
    .await;
    assert_eq!(server.shared().rooms.replays().per_session, 16 * 1024);
    let mut alice = Raw::hello(addr, "alice").await;
    alice.send("JOIN #r\r\n").await;
    alice.frame().await;
    let mut first = None;
    for _ in 0..20 {
        alice.send(&format!("SAY #r 1024\r\n{}\r\n", "h".repeat(1024))).await;
        let ServerFrame::Msg { id, .. } = alice.frame().await else { panic!("alice's own copy") };
        first.get_or_insert(id);
    }
    // 19 KiB of replay (and 48 bytes a frame) past a 16 KiB share, pushed at once.
    let mut bob = Raw::hello(addr, "bob").await;
    bob.send(&format!("JOIN #r {}\r\n", first.unwrap())).await;
    let reason = loop {
        match bob.try_frame().await {
            Some(ServerFrame::Err { code: 507, reason }) => break reason,
            Some(_) => continue,
            None => panic!("closed without ERR 507"),
        }
    };
    assert!(reason.as_str().contains("read faster"), "{reason}");
    bob.expect_closed().await;
    let text = server.shared().metrics.render(server.shared().gauges());
    assert!(text.contains("rttp_slow_consumer_disconnects_total 1\n"), "{text}");
    assert!(text.contains("rttp_err_replies_total{code=\"507\"} 1\n"), "{text}");
    alice.send("SAY #r 5\r\nstill\r\n").await;
    // Past bob's JOINED and PARTED, her own message comes back.
    let said = alice.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(said, ServerFrame::Msg { text, .. } if text.as_str() == "still"), "alice keeps talking");
    still_serves(addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn the_connection_cap_refuses_with_509() {
    let (server, addr) = start(|c| c.max_connections = 2).await;
    let _a = Raw::hello(addr, "a").await;
    let _b = Raw::connect(addr).await;
    check_for(WAIT, "both connections counted", || server.shared().connections() == 2).await;
    let mut c = Raw::connect(addr).await;
    c.expect_err(509).await;
    c.expect_closed().await;
    drop(_b);
    check_for(WAIT, "the closed connection's slot is free", || server.shared().connections() == 1).await;
    let text = server.shared().metrics.render(server.shared().gauges());
    assert!(text.contains("rttp_refused_connections_total 1\n"), "{text}");
    still_serves(addr).await;
    server.shutdown().await;
}

/// One address cannot take every slot: past `--max-per-ip` it gets
/// `ERR 509`, and another address is still served.
#[tokio::test]
async fn one_address_is_capped_and_another_is_served() {
    let (server, addr) = start(|c| c.max_per_ip = 2).await;
    let _a = Raw::hello(addr, "a").await;
    let _b = Raw::connect(addr).await;
    let mut c = Raw::connect(addr).await;
    let reason = c.expect_err(509).await;
    assert!(reason.contains("your address"), "{reason}");
    c.expect_closed().await;
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = Raw::over(sock.connect(addr).await.unwrap());
    other.send("PING other\r\n").await;
    other.expect("PONG other\r\n").await;
    drop(_b);
    check_for(WAIT, "the address's slot is free again", || server.shared().connections() == 2).await;
    still_serves(addr).await;
    server.shutdown().await;
}

/// Watchers have their own small cap; a freed slot is taken again.
#[tokio::test]
async fn watchers_are_capped_apart_from_sessions() {
    let (server, addr) = start(|c| c.max_watchers = 1).await;
    let mut w1 = Raw::connect(addr).await;
    w1.send("FARM watch\r\n").await;
    assert!(matches!(w1.frame().await, ServerFrame::FarmInfo(_)));
    let mut w2 = Raw::connect(addr).await;
    w2.send("FARM watch\r\n").await;
    let reason = w2.expect_err(509).await;
    assert!(reason.contains("watchers"), "{reason}");
    still_serves(addr).await;
    drop(w1);
    let mut w3 = Raw::connect(addr).await;
    let mut got = false;
    for _ in 0..100 {
        w3.send("FARM watch\r\n").await;
        match w3.frame().await {
            ServerFrame::FarmInfo(_) => {
                got = true;
                break;
            }
            ServerFrame::Err { code: 509, .. } => {
                // The first watcher's slot is freed when its task ends.
                w3 = Raw::connect(addr).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(got, "the freed watcher slot is taken again");
    server.shutdown().await;
}

/// A server whose connection slots are all taken cannot take a user: it
/// reports FULL, and UP again once a slot is free.
#[tokio::test]
async fn all_connection_slots_taken_reports_full() {
    let (server, addr) = start(|c| c.max_connections = 3).await;
    let _a = Raw::hello(addr, "a").await;
    let _b = Raw::connect(addr).await;
    assert_eq!(server.shared().status(), rttp_proto::Status::Up);
    let c = Raw::connect(addr).await;
    check_for(WAIT, "three connections", || server.shared().connections() == 3).await;
    assert_eq!(server.shared().status(), rttp_proto::Status::Full, "no slot left: FULL, with 1 user of 10,000");
    drop(c);
    check_for(WAIT, "a slot free: UP again", || server.shared().status() == rttp_proto::Status::Up).await;
    server.shutdown().await;
}

#[tokio::test]
async fn no_hello_in_time_closes_with_504() {
    let (server, addr) = start(|c| c.hello_timeout = Duration::from_millis(300)).await;
    let mut c = Raw::connect(addr).await;
    let reason = c.expect_err(504).await;
    assert!(reason.contains("HELLO"), "{reason}");
    c.expect_closed().await;
    still_serves(addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed() {
    let (server, addr) = start(|c| {
        c.ping_after = Duration::from_millis(200);
        c.idle_timeout = Duration::from_millis(400);
    })
    .await;
    let mut c = Raw::hello(addr, "quiet").await;
    assert!(matches!(c.frame().await, ServerFrame::Ping { .. }));
    // Answering keeps it alive through another ping.
    c.send("PONG idle\r\n").await;
    assert!(matches!(c.frame().await, ServerFrame::Ping { .. }));
    c.expect_err(504).await;
    c.expect_closed().await;
    still_serves(addr).await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_server_answers_hello_with_busy() {
    let (server, addr) = start(|c| c.capacity = 1).await;
    let mut a = Raw::hello(addr, "a").await;
    a.send("FARM\r\n").await;
    let ServerFrame::FarmInfo(info) = a.frame().await else { panic!() };
    assert_eq!(info.servers[0].status, rttp_proto::Status::Full);
    let mut b = Raw::connect(addr).await;
    b.send("HELLO 1 b\r\n").await;
    b.expect_err(503).await;
    b.expect_closed().await;
    drop(a);
    check_for(WAIT, "a's slot is free", || server.shared().users() == 0).await;
    let _b = Raw::hello(addr, "b").await;
    server.shutdown().await;
}

#[tokio::test]
async fn wrong_version_taken_nick_and_room_cap() {
    let (server, addr) = start(|c| c.max_rooms = 2).await;
    let mut v = Raw::connect(addr).await;
    v.send("HELLO 2 a\r\n").await;
    v.expect_err(505).await;
    v.expect_closed().await;
    let mut a = Raw::hello(addr, "a").await;
    let mut dup = Raw::connect(addr).await;
    dup.send("HELLO 1 a\r\n").await;
    dup.expect_err(433).await;
    // The refused session may try another nick.
    dup.send("HELLO 1 a2\r\n").await;
    assert!(matches!(dup.frame().await, ServerFrame::Welcome { .. }));
    for r in ["#1", "#2"] {
        a.send(&format!("JOIN {r}\r\n")).await;
        a.frame().await;
    }
    a.send("JOIN #3\r\n").await;
    a.expect_err(408).await;
    a.send("JOIN #1\r\n").await;
    a.expect("JOINED #1 a -\r\n").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_panicking_session_does_not_take_the_server_down() {
    let (server, addr) = start(|c| c.panic_nick = Some("boom".parse().unwrap())).await;
    let mut a = Raw::hello(addr, "a").await;
    a.send("JOIN #r\r\n").await;
    a.frame().await;
    let mut p = Raw::connect(addr).await;
    p.send("HELLO 1 boom\r\n").await;
    p.expect_closed().await;
    still_serves(addr).await;
    a.send("SAY #r 2\r\nok\r\n").await;
    assert!(matches!(a.frame().await, ServerFrame::Msg { .. }));
    let shared = server.shared().clone();
    common::check_for(common::WAIT, "only `a` still connected", || shared.connections() == 1).await;
    assert_eq!(shared.users(), 1, "the panicked session gave its user slot back");
    server.shutdown().await;
}
