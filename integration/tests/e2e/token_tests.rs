//! Token mode on real processes: a farm started with `--auth-key-file`,
//! tokens minted by the real `rttp-token`, the client library through the
//! farm method (both HELLOs carry the token) and across a drain, and
//! `rttp-chat --token-file`; a missing or forged token is refused.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use integration::{bin, clean_env, Farm, FarmSpec, Raw};
use rttp_client::{Client, Event};
use rttp_proto::ServerFrame;

const T: Duration = Duration::from_secs(20);

/// A key file (mode 0600) unique to this test.
fn key_file(name: &str, key: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("rttp-token-{}-{name}", std::process::id()));
    integration::write_secret(&path, key);
    path
}

/// `rttp-token --key-file <key> --nick <nick> [--room r]...`.
fn mint(key: &Path, nick: &str, rooms: &[&str]) -> String {
    let mut cmd = std::process::Command::new(bin("rttp-token"));
    clean_env(&mut cmd);
    cmd.arg("--key-file").arg(key).args(["--nick", nick]);
    for r in rooms {
        cmd.args(["--room", r]);
    }
    let out = cmd.output().expect("rttp-token runs");
    assert!(out.status.success(), "rttp-token: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn token_farm(key: &Path) -> Farm {
    let extra = vec!["--auth-key-file".to_string(), key.display().to_string()];
    Farm::start(FarmSpec { groups: vec!["g".into()], drain_window: 1.0, extra, ..FarmSpec::default() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_farm_admits_tokens_through_the_farm_method_and_across_a_drain() {
    let key = key_file("farm", "e2e-token-key-0123456789abcdef0123456789");
    let farm = token_farm(&key);
    farm.wait_mesh().await;
    // No token, or one from another key: ERR 511 and no session.
    let mut c = Raw::connect(farm.servers[0].client).await;
    c.send("HELLO 1 alice\r\n").await;
    assert!(c.expect_err(511).await.contains("needs a token"));
    let forged = mint(&key_file("other", "some-other-key-0123456789abcdef012345"), "alice", &[]);
    let mut c = Raw::connect(farm.servers[0].client).await;
    c.send(&format!("HELLO 1 alice {forged}\r\n")).await;
    assert!(c.expect_err(511).await.contains("signature"));
    // The library with a good token: the first server, then the chosen one.
    let token = mint(&key, "alice", &[]);
    let (alice, mut events) = Client::builder()
        .bootstrap(vec![farm.servers[0].client])
        .nick("alice")
        .token(&token)
        .seed(3)
        .connect()
        .await
        .expect("alice connects with her token");
    alice.join("#t").await.unwrap();
    let mut on = None;
    let mut bob = Raw::connect(farm.servers[1].client).await;
    bob.send(&format!("HELLO 1 bob {}\r\n", mint(&key, "bob", &["#t"]))).await;
    bob.until(|f| matches!(f, ServerFrame::FarmInfo(_))).await;
    bob.send("JOIN #t\r\n").await;
    bob.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    bob.send("SAY #t 5\r\nfirst\r\n").await;
    tokio::time::timeout(T, async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Connected { server, .. } => on = Some(server.to_string()),
                Event::Message { text, .. } if text.to_string() == "first" => break,
                _ => {}
            }
        }
    })
    .await
    .expect("alice hears bob");
    // Drain alice's server: she moves, presenting her token again.
    let i = on.expect("a Connected event").trim_start_matches('s').parse::<usize>().unwrap() - 1;
    farm.term(i);
    let mut moved = false;
    tokio::time::timeout(T, async {
        while let Some(e) = events.recv().await {
            match e {
                Event::Rejoined { .. } => moved = true,
                Event::Closed { reason } => panic!("alice's session ended: {reason}"),
                _ => {}
            }
            if moved {
                break;
            }
        }
    })
    .await
    .expect("alice is back in #t after the drain");
    alice.quit().await;
    // The person moved with a valid token: wherever the old session is, it
    // ends with ERR 512, and the new one opens.
    let up: Vec<usize> = (0..3).filter(|&k| k != i).collect();
    let mut old = Raw::connect(farm.servers[up[0]].client).await;
    old.send(&format!("HELLO 1 zoe {}\r\n", mint(&key, "zoe", &[]))).await;
    old.until(|f| matches!(f, ServerFrame::FarmInfo(_))).await;
    let mut new = Raw::connect(farm.servers[up[1]].client).await;
    new.send(&format!("HELLO 1 zoe {}\r\n", mint(&key, "zoe", &[]))).await;
    assert!(matches!(new.frame().await, ServerFrame::Welcome { .. }), "the new session opens");
    let f = tokio::time::timeout(T, old.until(|f| matches!(f, ServerFrame::Err { .. }))).await.expect("an ERR");
    assert!(matches!(f, ServerFrame::Err { code: 512, .. }), "{f:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rttp_chat_takes_a_token_file_and_reports_a_refusal() {
    let key = key_file("chat", "chat-token-key-0123456789abcdef0123456789");
    let farm = token_farm(&key);
    farm.wait_mesh().await;
    let dir = std::env::temp_dir();
    let good = dir.join(format!("rttp-token-{}-good", std::process::id()));
    std::fs::write(&good, mint(&key, "carol", &[])).unwrap();
    let chat = |token: &Path| {
        let mut std = std::process::Command::new(bin("rttp-chat"));
        clean_env(&mut std);
        std.args(["--plain", "--connect", &farm.servers[0].client.to_string(), "--nick", "carol", "--token-file"])
            .arg(token)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut cmd = tokio::process::Command::from(std);
        cmd.kill_on_drop(true);
        cmd
    };
    let mut ok = chat(&good).spawn().unwrap();
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let mut stdin = ok.stdin.take().unwrap();
    let mut out = tokio::io::BufReader::new(ok.stdout.take().unwrap()).lines();
    stdin.write_all(b"/join #c\nhi\n").await.unwrap();
    let mut lines = Vec::new();
    tokio::time::timeout(T, async {
        while let Ok(Some(l)) = out.next_line().await {
            let done = l == "msg #c carol hi";
            lines.push(l);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("carol's message did not come back: {lines:?}"));
    stdin.write_all(b"/quit\n").await.unwrap();
    let status = tokio::time::timeout(T, ok.wait()).await.expect("rttp-chat ends after /quit").unwrap();
    assert_eq!(status.code(), Some(0));
    // A token for someone else: a clear message and exit 1, no retry loop.
    let bad = dir.join(format!("rttp-token-{}-bad", std::process::id()));
    std::fs::write(&bad, mint(&key, "mallory", &[])).unwrap();
    let out = tokio::time::timeout(T, chat(&bad).output()).await.expect("rttp-chat gives up at once").unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("refused the token") && err.contains("mallory"), "{err}");
}
