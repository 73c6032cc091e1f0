//! `rttp-chat --plain`, the real binary, as README.md documents it: one
//! event per line on stdout, commands on stdin, and its exit codes.

use std::process::Stdio;
use std::time::Duration;

use integration::{bin, check_for, clean_env, Farm, FarmSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

const T: Duration = Duration::from_secs(20);

fn chat(args: &[&str]) -> Command {
    let mut std = std::process::Command::new(bin("rttp-chat"));
    clean_env(&mut std);
    let mut cmd = Command::from(std);
    cmd.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_prints_the_method_then_the_conversation_and_quits_with_0() {
    let mut farm = Farm::start(FarmSpec::default());
    let dns = farm.start_dns();
    check_for(T, "farm-dns answers with three servers", || async {
        farm.dig(&["chat.farm.test", "A", "+short"]).await.lines().count() == 3
    })
    .await;
    let dns = dns.to_string();
    let mut child =
        chat(&["--plain", "--service", "chat.farm.test:7000", "--dns", &dns, "--nick", "plainy"]).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    stdin.write_all(b"/join #p\nhello there\n").await.unwrap();
    let mut lines = Vec::new();
    tokio::time::timeout(T, async {
        while let Some(l) = out.next_line().await.unwrap() {
            let done = l == "msg #p plainy hello there";
            lines.push(l);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no echo of the message; got {lines:?}"));
    let words: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(words[..6], ["resolved", "first", "table", "selected", "connected", "table"], "{lines:?}");
    assert!(lines[3].ends_with(" stay") || lines[3].ends_with(" move"), "{lines:?}");
    assert!(lines.contains(&"joined #p plainy".to_string()), "{lines:?}");
    // Someone else sends terminal escape sequences: they are printed, not obeyed.
    let mut evil = integration::Raw::hello(farm.servers[0].client, "evil").await;
    evil.send("JOIN #p\r\n").await;
    let body = "\x1b[2J\x1b]0;owned\x07";
    evil.send(&format!("SAY #p {}\r\n{body}\r\n", body.len())).await;
    let shown = tokio::time::timeout(T, async {
        loop {
            let l = out.next_line().await.unwrap().expect("a line");
            if l.starts_with("msg #p evil ") {
                return l;
            }
        }
    })
    .await
    .expect("evil's message shown");
    assert_eq!(shown, "msg #p evil \\x1b[2J\\x1b]0;owned\\x07");
    stdin.write_all(b"/quit\n").await.unwrap();
    let status = tokio::time::timeout(T, child.wait()).await.expect("exits after /quit").unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_exits_1_when_the_name_does_not_resolve_and_2_on_a_bad_flag() {
    let mut farm = Farm::start(FarmSpec::default());
    let dns = farm.start_dns().to_string();
    let out = tokio::time::timeout(
        T,
        chat(&["--plain", "--service", "nope.farm.test:7000", "--dns", &dns, "--nick", "lost"]).output(),
    )
    .await
    .expect("gives up within its bounded rounds")
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("rttp-chat: ")).count(), 1, "one line on stderr: {err}");
    let bad = chat(&["--plain", "--service", "no-port", "--nick", "x"]).output().await.unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", String::from_utf8_lossy(&bad.stderr));
}
