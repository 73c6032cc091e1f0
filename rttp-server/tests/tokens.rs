//! Token mode on a real socket: a session opens only with a valid JWT for
//! its nick; every refusal is `ERR 511` with its reason and a closed
//! connection; the `rooms` claim limits JOIN (`ERR 410`); a valid token for
//! a nick live here takes it over (the old session gets `ERR 512`).

mod common;

use common::{start, Raw};
use rttp_proto::{Nick, Room, ServerFrame};
use rttp_server::token::{unix_now, Claims, TokenKey};

const KEY: &str = "a-test-key-of-at-least-thirty-two-bytes";

fn key() -> TokenKey {
    TokenKey::new(KEY).unwrap()
}

async fn token_server() -> (rttp_server::Server, std::net::SocketAddr) {
    start(|c| c.token_key = Some(key())).await
}

/// HELLO as `nick` with `token` (none: the plain two-argument HELLO).
async fn hello(addr: std::net::SocketAddr, nick: &str, token: Option<&str>) -> Raw {
    let mut c = Raw::connect(addr).await;
    match token {
        Some(t) => c.send(&format!("HELLO 1 {nick} {t}\r\n")).await,
        None => c.send(&format!("HELLO 1 {nick}\r\n")).await,
    }
    c
}

fn mint(nick: &str, rooms: Option<&[&str]>) -> String {
    let rooms: Option<Vec<Room>> = rooms.map(|r| r.iter().map(|r| Room::new(r).unwrap()).collect());
    key().mint(Nick::new(nick).unwrap(), unix_now(), 3600, rooms.as_deref()).unwrap()
}

#[tokio::test]
async fn every_bad_token_is_refused_with_511_and_a_good_one_opens() {
    let (_server, addr) = token_server().await;
    let now = unix_now();
    let expired = key()
        .mint_claims(&Claims { sub: "alice".into(), exp: Some(now - 3600), nbf: None, iat: None, rooms: None })
        .unwrap();
    let other_key = TokenKey::new("another-key-that-is-long-enough-1234").unwrap();
    let forged = other_key.mint(Nick::new("alice").unwrap(), now, 3600, None).unwrap();
    let cases: [(Option<&str>, &str); 5] = [
        (None, "needs a token"),
        (Some(&expired), "expired"),
        (Some(&forged), "signature is wrong"),
        (Some(&mint("bob", None)), "for \"bob\", not alice"),
        (Some("garbage.not.jwt"), "not a valid JWT"),
    ];
    for (token, why) in cases {
        let mut c = hello(addr, "alice", token).await;
        let reason = c.expect_err(511).await;
        assert!(reason.contains(why), "{why:?} in {reason:?}");
        c.expect_closed().await;
    }
    // Nobody got a session: alice is free, and a good token opens it.
    let mut c = hello(addr, "alice", Some(&mint("alice", None))).await;
    assert!(matches!(c.frame().await, ServerFrame::Welcome { .. }));
    // A token too long for the protocol is a bad argument, not a crash.
    let mut long = hello(addr, "carol", Some(&"x".repeat(rttp_proto::MAX_CREDENTIAL_LEN + 1))).await;
    long.expect_err(402).await;
}

#[tokio::test]
async fn the_rooms_claim_limits_join() {
    let (_server, addr) = token_server().await;
    let mut c = hello(addr, "dave", Some(&mint("dave", Some(&["#ops", "#lobby"])))).await;
    c.until(|f| matches!(f, ServerFrame::FarmInfo(_))).await;
    c.send("JOIN #secret\r\n").await;
    let reason = c.expect_err(410).await;
    assert!(reason.contains("#secret"), "{reason}");
    c.send("JOIN #ops\r\n").await;
    c.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    // Without the claim, any room.
    let mut e = hello(addr, "erin", Some(&mint("erin", None))).await;
    e.until(|f| matches!(f, ServerFrame::FarmInfo(_))).await;
    e.send("JOIN #secret\r\n").await;
    e.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
}

#[tokio::test]
async fn a_valid_token_takes_a_live_nick_over() {
    let (_server, addr) = token_server().await;
    let mut old = hello(addr, "frank", Some(&mint("frank", None))).await;
    old.until(|f| matches!(f, ServerFrame::FarmInfo(_))).await;
    let mut new = hello(addr, "frank", Some(&mint("frank", None))).await;
    assert!(matches!(new.frame().await, ServerFrame::Welcome { .. }), "the new session opens");
    let reason = old.expect_err(512).await;
    assert!(reason.contains("elsewhere"), "{reason}");
    old.expect_closed().await;
}
