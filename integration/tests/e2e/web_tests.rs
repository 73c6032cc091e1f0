//! The browser client, `web/rttp.js`, on real processes: two rttp.js
//! clients (run by Node over a real WebSocket, as a page runs them) first
//! sent to two different servers, and a client of the Rust library, chat in
//! one room; the server of one rttp.js client is drained while they talk.
//! Every line reaches everyone exactly once, the drained client says it is
//! moving and names its new server, and its lines are all acknowledged.
//! The page itself runs in a real Chromium in `browser_tests`.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use integration::{Farm, FarmSpec, WEB_PORT};
use rttp_client::{Client, Event};
use tokio::io::{AsyncBufReadExt, BufReader};

const LINES: usize = 30;

/// `node` with the WebSocket global (a flag on Node 20, the default later).
fn node() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("node");
    let has_ws = std::process::Command::new("node")
        .args(["-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_ws {
        cmd.arg("--experimental-websocket");
    }
    cmd.arg("--no-warnings");
    cmd
}

fn web_client(url: &str, nick: &str) -> tokio::process::Child {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/e2e/farm-client.mjs");
    node()
        .args([script, url, nick, "#web", &LINES.to_string(), &(3 * LINES).to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (make test needs Node.js)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rttp_js_clients_follow_the_farm_method_and_survive_a_drain() {
    let spec = FarmSpec { web: true, groups: vec!["g".into()], drain_window: 1.0, ..FarmSpec::default() };
    let farm = Farm::start(spec);
    farm.wait_mesh().await;
    let url = |i: usize| format!("ws://{}:{WEB_PORT}/rttp", farm.servers[i].ip);
    let (term, mut tev) =
        Client::builder().bootstrap(vec![farm.servers[2].client]).nick("term").seed(1).connect().await.unwrap();
    term.join("#web").await.unwrap();
    let mut a = web_client(&url(0), "weba");
    let mut b = web_client(&url(1), "webb");
    let mut a_out = BufReader::new(a.stdout.take().unwrap()).lines();
    let b_out = BufReader::new(b.stdout.take().unwrap()).lines();
    // The first server weba is served by: drained once weba is talking.
    let first = loop {
        let l = a_out.next_line().await.unwrap().expect("weba's events");
        if let Some(s) = l.strip_prefix("connected ") {
            break s.to_string();
        }
    };
    let read_rest = |mut lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>| async move {
        let mut v = Vec::new();
        while let Ok(Some(l)) = lines.next_line().await {
            v.push(l);
        }
        v
    };
    let b_task = tokio::spawn(read_rest(b_out));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..LINES {
        term.say("#web", &format!("term-{n:02}")).await.unwrap();
        if n == 5 {
            let i = first.trim_start_matches('s').parse::<usize>().unwrap() - 1;
            farm.term(i);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let a_lines = read_rest(a_out).await;
    let b_lines = b_task.await.unwrap();
    assert!(a.wait().await.unwrap().success(), "weba: {a_lines:?}");
    assert!(b.wait().await.unwrap().success(), "webb: {b_lines:?}");
    let mut term_seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(3), tev.recv()).await {
        if let Event::Message { text, .. } = e {
            term_seen.push(text.to_string());
        }
    }
    let want: Vec<String> =
        ["weba", "webb", "term"].iter().flat_map(|who| (0..LINES).map(move |n| format!("{who}-{n:02}"))).collect();
    let texts = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.strip_prefix("message "))
            .map(|m| m.split_once(' ').unwrap().1.to_string())
            .collect()
    };
    for (who, got) in [("weba", texts(&a_lines)), ("webb", texts(&b_lines)), ("term", term_seen)] {
        let mut count: HashMap<&String, usize> = HashMap::new();
        got.iter().for_each(|t| *count.entry(t).or_default() += 1);
        let missing: Vec<&String> = want.iter().filter(|t| !count.contains_key(t)).collect();
        assert!(missing.is_empty(), "{who} missed {missing:?}");
        assert!(count.values().all(|n| *n == 1), "{who} saw a line twice");
    }
    // weba was moved, and named its new server.
    assert!(a_lines.iter().any(|l| l.starts_with("moving ")), "{a_lines:?}");
    let servers: Vec<&str> = a_lines.iter().filter_map(|l| l.strip_prefix("connected ")).collect();
    assert!(servers.last().is_some_and(|s| *s != first), "weba's servers after {first}: {servers:?}");
    assert!(a_lines.iter().filter(|l| l.starts_with("acked ")).count() == LINES, "every line of weba acknowledged");
    term.quit().await;
}

/// A farm with certificates serves its web listener over TLS: the table
/// names `wss://` URLs, the page and `rttp.js` come over `https://`, an
/// rttp.js client (Node, trusting the farm's CA) chats over `wss://` with a
/// TLS client of the Rust library, and plain HTTP on that port gets nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_farm_serves_the_web_over_https_and_wss() {
    let spec = FarmSpec { web: true, tls: true, groups: vec!["g".into()], ..FarmSpec::default() };
    let farm = Farm::start(spec);
    farm.wait_mesh().await;
    let table = farm.farm_info(0).await.expect("a table over TLS");
    for e in &table.servers {
        let ws = e.ws.as_ref().map(|u| u.to_string()).unwrap_or_default();
        assert!(ws.starts_with("wss://"), "{} publishes {ws:?}", e.id);
    }
    let ca = farm.ca.as_ref().expect("the farm's CA").cert.clone();
    let host = |i: usize| format!("{}:{WEB_PORT}", farm.servers[i].ip);
    // The page's files over https (Node's fetch, trusting only the farm's CA).
    let js = format!("https://{}/rttp.js", host(0));
    let fetched = node()
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .args(["-e", "fetch(process.argv[1]).then(r => r.text()).then(t => process.exit(t.includes('class RttpClient') ? 0 : 1), () => process.exit(2))", &js])
        .status()
        .await
        .expect("node runs");
    assert!(fetched.success(), "rttp.js over https: {fetched:?}");
    // Plain HTTP on the TLS port: no answer in the clear.
    let mut s = tokio::net::TcpStream::connect(host(0)).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got)).await;
    assert!(!got.starts_with(b"HTTP/"), "an HTTP answer in the clear: {:?}", String::from_utf8_lossy(&got));
    // A chat over wss.
    let (term, mut tev) = Client::builder()
        .bootstrap(vec![farm.servers[2].client])
        .tls(Some(&ca))
        .nick("term")
        .seed(1)
        .connect()
        .await
        .expect("a TLS client");
    term.join("#web").await.unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../web/e2e/farm-client.mjs");
    let mut web = node()
        .env("NODE_EXTRA_CA_CERTS", &ca)
        .args([script, &format!("wss://{}/rttp", host(0)), "webs", "#web", "10", "20"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs");
    let mut out = BufReader::new(web.stdout.take().unwrap()).lines();
    let first = out.next_line().await.unwrap().expect("webs's events");
    assert!(first.starts_with("connected "), "{first}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in 0..10 {
        term.say("#web", &format!("term-{n:02}")).await.unwrap();
    }
    let mut lines = Vec::new();
    while let Ok(Some(l)) = out.next_line().await {
        lines.push(l);
    }
    assert!(web.wait().await.unwrap().success(), "webs: {lines:?}");
    let heard: Vec<&str> = lines.iter().filter_map(|l| l.strip_prefix("message term ")).collect();
    assert_eq!(heard, (0..10).map(|n| format!("term-{n:02}")).collect::<Vec<_>>(), "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("acked ")).count(), 10, "every line of webs acknowledged");
    let mut term_heard = 0;
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(3), tev.recv()).await {
        if matches!(e, Event::Message { ref nick, .. } if nick.as_str() == "webs") {
            term_heard += 1;
        }
    }
    assert_eq!(term_heard, 10, "term heard each of webs's lines once");
    term.quit().await;
}
