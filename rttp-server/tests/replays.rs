//! Rejoin replays stream: they are the history's own frames, charged to the
//! replay budget rather than the session's queue bounds, so a rejoin of
//! many rooms whose replays together pass `--outbound-max` is delivered to a
//! joiner that reads it; one that stops reading is still cut, and one that
//! asks for more than its share of the budget is refused, the others
//! unaffected.

mod common;

use std::time::Duration;

use common::{check_for, no_rate_limits, send_buffer_max, start, Raw};
use rttp_proto::ServerFrame;
use rttp_server::Server;

/// Bodies of 60 KB: 68 of them (4.1 MB) fill a room's default 4 MiB history.
const BODY: usize = 60_000;
const PER_ROOM: usize = 68;

/// `alice` says `PER_ROOM` numbered 60 KB lines in each of `rooms`, reading
/// her own copies back (so that her queue never holds more than a room's).
async fn fill(alice: &mut Raw, rooms: &[String]) {
    let big = "b".repeat(BODY - 6);
    for room in rooms {
        alice.send(&format!("JOIN {room}\r\n")).await;
        alice.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
        let says: String = (0..PER_ROOM).map(|i| format!("SAY {room} {BODY}\r\n{i:06}{big}\r\n")).collect();
        alice.send(&says).await;
        for _ in 0..PER_ROOM {
            alice.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
        }
    }
}

fn metric(server: &Server, name: &str) -> f64 {
    let text = server.shared().metrics.render(server.shared().gauges());
    integration::parse_metric(&text, name).unwrap_or_else(|| panic!("{name} in {text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_of_many_rooms_whose_replays_pass_the_hard_bound_streams_to_the_joiner() {
    let (server, addr) = start(no_rate_limits).await;
    let max = server.shared().config.outbound_max;
    assert_eq!(max, 16 << 20, "the default hard bound");
    let rooms: Vec<String> = (0..6).map(|r| format!("#big{r}")).collect();
    let mut alice = Raw::hello(addr, "alice").await;
    fill(&mut alice, &rooms).await;
    assert!(rooms.len() * PER_ROOM * BODY > max + (4 << 20), "the replays together are well past the hard bound");
    // Bob comes back to every room from its start, in one write.
    let mut bob = Raw::hello(addr, "bob").await;
    bob.send(&rooms.iter().map(|r| format!("JOIN {r} -\r\n")).collect::<String>()).await;
    let mut got: Vec<Vec<usize>> = vec![Vec::new(); rooms.len()];
    while got.iter().map(Vec::len).sum::<usize>() < rooms.len() * PER_ROOM {
        match bob.frame().await {
            ServerFrame::Msg { room, text, .. } => {
                let r = rooms.iter().position(|x| x.as_str() == room.as_str()).expect("one of the rooms");
                got[r].push(text.as_str()[..6].parse().expect("numbered"));
            }
            ServerFrame::Err { code, reason } => panic!("ERR {code} {reason}"),
            _ => {}
        }
    }
    for (r, lines) in got.iter().enumerate() {
        assert_eq!(*lines, (0..PER_ROOM).collect::<Vec<_>>(), "every line of {} once, in order", rooms[r]);
    }
    bob.send("PING still-here\r\n").await;
    bob.until(|f| matches!(f, ServerFrame::Pong { .. })).await;
    assert_eq!(metric(&server, "rttp_slow_consumer_disconnects_total "), 0.0);
    check_for(Duration::from_secs(5), "the replay budget given back", || {
        metric(&server, "rttp_replay_queued_bytes ") == 0.0
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_that_stops_reading_its_replay_is_cut_and_the_room_goes_on() {
    let (server, addr) = start(|c| {
        no_rate_limits(c);
        c.slow_consumer_after = Duration::from_secs(1);
    })
    .await;
    let rooms: Vec<String> = (0..5).map(|r| format!("#big{r}")).collect();
    let mut alice = Raw::hello(addr, "alice").await;
    fill(&mut alice, &rooms).await;
    // Mallory asks for every room from its start with a tiny receive
    // window, and never reads.
    let mut mallory = Raw::connect_small_window(addr).await;
    mallory.send("HELLO 1 mallory\r\n").await;
    mallory.send(&rooms.iter().map(|r| format!("JOIN {r} -\r\n")).collect::<String>()).await;
    let mut carol = Raw::hello(addr, "carol").await;
    carol.send("JOIN #big0\r\n").await;
    carol.until(|f| matches!(f, ServerFrame::Joined { nick, .. } if nick.as_str() == "carol")).await;
    check_for(Duration::from_secs(10), "mallory's replay queued", || {
        metric(&server, "rttp_replay_queued_bytes ") > (16 << 20) as f64
    })
    .await;
    // Cut after the second of no progress; the room goes on for carol.
    let parted = carol.until(|f| matches!(f, ServerFrame::Parted { nick, .. } if nick.as_str() == "mallory"));
    tokio::time::timeout(Duration::from_secs(10), parted).await.expect("mallory cut within seconds");
    assert_eq!(metric(&server, "rttp_slow_consumer_disconnects_total "), 1.0);
    check_for(Duration::from_secs(5), "her replay given back", || metric(&server, "rttp_replay_queued_bytes ") == 0.0)
        .await;
    alice.send("SAY #big0 5\r\nafter\r\n").await;
    let said = carol.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(said, ServerFrame::Msg { text, .. } if text.as_str() == "after"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joiner_past_its_share_of_the_replay_budget_is_refused_and_the_others_are_served() {
    // A history budget of 16 MiB: replays may hold 32 MiB, one session 8.
    let (server, addr) = start(|c| {
        no_rate_limits(c);
        c.history_budget = 16 << 20;
    })
    .await;
    let share = server.shared().rooms.replays().per_session;
    assert_eq!(share, 8 << 20);
    let rooms: Vec<String> = (0..4).map(|r| format!("#big{r}")).collect();
    let mut alice = Raw::hello(addr, "alice").await;
    fill(&mut alice, &rooms).await;
    // Four rooms are past one session's share even after the kernel's
    // buffers took all they can of them (which counts as written).
    assert!(rooms.len() * PER_ROOM * BODY > share + send_buffer_max() + (1 << 20));
    let mut greedy = Raw::connect_small_window(addr).await;
    greedy.send("HELLO 1 greedy\r\n").await;
    greedy.send(&rooms.iter().map(|r| format!("JOIN {r} -\r\n")).collect::<String>()).await;
    check_for(Duration::from_secs(10), "greedy cut", || {
        metric(&server, "rttp_slow_consumer_disconnects_total ") == 1.0
    })
    .await;
    let mut fair = Raw::hello(addr, "fair").await;
    fair.send("JOIN #big3 -\r\n").await;
    let mut n = 0;
    while n < PER_ROOM {
        match fair.frame().await {
            ServerFrame::Msg { .. } => n += 1,
            ServerFrame::Err { code, reason } => panic!("ERR {code} {reason}"),
            _ => {}
        }
    }
    assert_eq!(metric(&server, "rttp_slow_consumer_disconnects_total "), 1.0, "only greedy");
    check_for(Duration::from_secs(5), "every replay given back", || {
        metric(&server, "rttp_replay_queued_bytes ") == 0.0
    })
    .await;
    server.shutdown().await;
}
