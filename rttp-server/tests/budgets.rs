//! The per-session budgets (frames, bytes, JOIN/PART): an attacker is
//! slowed (the server stops reading it; nothing of anyone else's is
//! dropped), and the other members of the room get every message.

mod common;

use std::time::Duration;

use common::{start, Raw};
use rttp_proto::ServerFrame;
use rttp_server::Server;
use tokio::time::Instant;

fn metric(server: &Server, name: &str) -> f64 {
    let text = server.shared().metrics.render(server.shared().gauges());
    integration::parse_metric(&text, name).unwrap_or_else(|| panic!("{name} is exposed: {text}"))
}

/// What `victim` receives during `window`: frames naming `attacker`, and the
/// bodies said by others.
async fn watch(victim: &mut Raw, attacker: &str, window: Duration) -> (usize, usize, Vec<String>) {
    let (mut notices, mut bytes, mut said) = (0, 0, Vec::new());
    let end = Instant::now() + window;
    while let Ok(Ok(Some(f))) = tokio::time::timeout_at(end, async { Ok::<_, ()>(victim.try_frame().await) }).await {
        match f {
            ServerFrame::Joined { nick, .. } | ServerFrame::Parted { nick, .. } if nick.as_str() == attacker => {
                notices += 1
            }
            ServerFrame::Msg { nick, text, .. } if nick.as_str() == attacker => bytes += text.as_str().len(),
            ServerFrame::Msg { text, .. } => said.push(text.as_str().to_string()),
            _ => {}
        }
    }
    (notices, bytes, said)
}

/// The speaker says ten numbered lines, one every 100 ms.
fn speak(mut speaker: Raw) -> tokio::task::JoinHandle<Raw> {
    tokio::spawn(async move {
        for i in 0..10 {
            speaker.send(&format!("SAY #r 2\r\nm{i}\r\n")).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        speaker
    })
}

async fn room(addr: std::net::SocketAddr) -> (Raw, Raw) {
    let mut victim = Raw::hello(addr, "victim").await;
    victim.send("JOIN #r\r\n").await;
    victim.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    let mut speaker = Raw::hello(addr, "speaker").await;
    speaker.send("JOIN #r\r\n").await;
    speaker.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    victim.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    (victim, speaker)
}

#[tokio::test]
async fn a_join_part_flood_is_paced_to_its_budget_and_the_room_hears_everything() {
    let (server, addr) = start(|c| {
        c.join_rate = 10.0;
        c.join_burst = 20;
    })
    .await;
    let (mut victim, speaker) = room(addr).await;
    let mut attacker = Raw::hello(addr, "attacker").await;
    // 5,000 JOIN/PART pairs in one write: 10,000 membership changes.
    attacker.send(&"JOIN #r\r\nPART #r\r\n".repeat(5_000)).await;
    let speaking = speak(speaker);
    let window = Duration::from_secs(2);
    let (notices, _, said) = watch(&mut victim, "attacker", window).await;
    // The burst, then 10/s for the window, with a second of slack.
    assert!(notices <= 20 + 10 * 3, "at most the budget reached the room: {notices}");
    assert!(notices >= 20, "the attacker was slowed, not cut off: {notices}");
    assert_eq!(said, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(), "the room heard everything");
    assert!(metric(&server, "rttp_throttled_reads_total") >= 1.0);
    assert!(
        server.shared().nicks.contains_key(&"attacker".parse::<rttp_proto::Nick>().unwrap()),
        "the attacker is still connected"
    );
    drop(speaking.await.unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn a_byte_flood_is_paced_to_the_byte_budget() {
    let (server, addr) = start(|c| {
        c.say_rate = 1e9; // only the byte budget applies
        c.say_burst = u32::MAX;
        c.byte_rate = 64.0 * 1024.0;
        c.byte_burst = 128 * 1024;
    })
    .await;
    let (mut victim, speaker) = room(addr).await;
    let mut attacker = Raw::hello(addr, "attacker").await;
    attacker.send("JOIN #r\r\n").await;
    let body = "b".repeat(60_000);
    let flood = format!("SAY #r {}\r\n{body}\r\n", body.len()).repeat(40); // 2.4 MB
    let writer = tokio::spawn(async move {
        attacker.send(&flood).await;
        attacker
    });
    let speaking = speak(speaker);
    let (_, bytes, said) = watch(&mut victim, "attacker", Duration::from_secs(2)).await;
    // The burst, then 64 KiB/s for the window with a second of slack, and
    // the one message that went into debt.
    let bound = 128 * 1024 + 3 * 64 * 1024 + 60_000;
    assert!(bytes <= bound, "{bytes} bytes reached the room, over the budget's {bound}");
    assert!(bytes >= 60_000, "the attacker was slowed, not cut off");
    assert_eq!(said, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(), "the room heard everything");
    assert!(metric(&server, "rttp_throttled_reads_total") >= 1.0);
    writer.abort();
    drop(speaking.await.unwrap());
    server.shutdown().await;
}

#[tokio::test]
async fn who_costs_what_it_sends() {
    let (server, addr) = start(|c| {
        c.byte_rate = 2_000.0;
        c.byte_burst = 4_000;
    })
    .await;
    // 200 members with 30-character nicks: a WHO answer of about 6.5 KB.
    let mut members = Vec::new();
    for i in 0..200 {
        let mut m = Raw::hello(addr, &format!("member-with-a-long-nick-{i:06}")).await;
        m.send("JOIN #big\r\n").await;
        members.push(m);
    }
    let mut asker = Raw::hello(addr, "asker").await;
    asker.send("WHO #big\r\n").await;
    let end = asker.until(|f| matches!(f, ServerFrame::EndMembers { .. })).await;
    assert!(matches!(end, ServerFrame::EndMembers { total: 200, .. }), "{end:?}");
    assert_eq!(metric(&server, "rttp_throttled_reads_total"), 1.0, "the answer put the asker over its byte budget");
    // Anyone else is served at once.
    let mut other = Raw::hello(addr, "other").await;
    other.send("PING fine\r\n").await;
    other.expect("PONG fine\r\n").await;
    // The asker is served again once its budget refills (about a second).
    asker.send("PING later\r\n").await;
    asker.until(|f| matches!(f, ServerFrame::Pong { .. })).await;
    server.shutdown().await;
}
