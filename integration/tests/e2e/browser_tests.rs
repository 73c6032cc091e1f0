//! The web chat page in a real headless Chromium, driven over WebDriver
//! (chromedriver, fantoccini): two pages opened on two different servers
//! and a terminal-library client on the third chat in one room, each sees
//! the others' lines once; draining the server of one page moves it (its
//! `#status` names the new server) and the conversation goes on with
//! nothing lost; the page shows the farm table. Screenshots of both pages
//! are kept in `target/tmp/browser-screenshots/` and named in any failure.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client as Browser, ClientBuilder, Locator};
use integration::{check_for, Farm, FarmSpec, WEB_PORT};
use rttp_client::{Client, Event};
use serde_json::json;

const T: Duration = Duration::from_secs(20);

/// chromedriver on a free loopback port; killed when dropped.
async fn chromedriver() -> (tokio::process::Child, String) {
    let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let child = tokio::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver runs (Debian's chromium-driver; .ci/run installs it)");
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    check_for(T, "chromedriver listens", || async { tokio::net::TcpStream::connect(addr).await.is_ok() }).await;
    (child, format!("http://{addr}"))
}

async fn page(driver: &str, url: &str) -> Browser {
    let mut caps = serde_json::Map::new();
    let args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,700"];
    caps.insert("goog:chromeOptions".into(), json!({ "args": args }));
    let b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(driver)
        .await
        .expect("a Chromium session");
    b.goto(url).await.expect("the page loads");
    b
}

/// The text of an element.
async fn text_of(b: &Browser, css: &str) -> String {
    match b.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// The lines of `#messages`: (data-nick, text).
async fn messages(b: &Browser) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for li in b.find_all(Locator::Css("#messages li")).await.unwrap_or_default() {
        let nick = li.attr("data-nick").await.ok().flatten().unwrap_or_default();
        let text = match li.find(Locator::Css(".text")).await {
            Ok(t) => t.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push((nick, text));
    }
    out
}

async fn say(b: &Browser, text: &str) {
    let input = b.find(Locator::Css("#say")).await.expect("#say");
    input.send_keys(&format!("{text}\u{E007}")).await.expect("typed, Enter");
}

/// Waits until every page shows every `want` line exactly once.
async fn all_see(pages: &[(&str, &Browser)], want: &[&str], shots: &std::path::Path) {
    for (name, b) in pages {
        let ok = tokio::time::timeout(T, async {
            loop {
                let got = messages(b).await;
                if want.iter().all(|w| got.iter().filter(|(_, t)| t == w).count() == 1) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if ok.is_err() {
            let got = messages(b).await;
            panic!("{name} does not show {want:?} once each: {got:?} (screenshots in {})", shots.display());
        }
    }
}

async fn shoot(pages: &[(&str, &Browser)], dir: &std::path::Path) {
    for (name, b) in pages {
        if let Ok(png) = b.screenshot().await {
            let _ = std::fs::write(dir.join(format!("{name}.png")), png);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pages_and_a_terminal_chat_and_a_drained_page_moves_on() {
    let spec = FarmSpec { web: true, groups: vec!["g".into()], drain_window: 1.0, ..FarmSpec::default() };
    let farm = Farm::start(spec);
    farm.wait_mesh().await;
    let (_driver, driver) = chromedriver().await;
    let url = |i: usize, nick: &str| format!("http://{}:{WEB_PORT}/?nick={nick}&room=%23web", farm.servers[i].ip);
    let a = page(&driver, &url(0, "pagea")).await;
    let b = page(&driver, &url(1, "pageb")).await;
    let pages = [("pagea", &a), ("pageb", &b)];
    // Kept after the run (the farm's own directory goes with the farm).
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let (term, mut tev) =
        Client::builder().bootstrap(vec![farm.servers[2].client]).nick("term").seed(3).connect().await.unwrap();
    term.join("#web").await.unwrap();
    for (name, p) in pages {
        let ok = tokio::time::timeout(T, async {
            while !text_of(p, "#status").await.starts_with("connected to s") {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        shoot(&pages, &shots).await;
        assert!(ok.is_ok(), "{name}: {:?} (screenshots in {})", text_of(p, "#status").await, shots.display());
    }
    // The farm table is on the page: three servers.
    let rows = a.find_all(Locator::Css("#servers tbody tr")).await.unwrap().len();
    assert_eq!(rows, 3, "the page shows the farm table");
    tokio::time::sleep(Duration::from_millis(500)).await;
    say(&a, "hello from a").await;
    say(&b, "hello from b").await;
    term.say("#web", "hello from term").await.unwrap();
    all_see(&pages, &["hello from a", "hello from b", "hello from term"], &shots).await;
    // Drain page a's server: it moves, names its new server, and goes on.
    let before = text_of(&a, "#status").await;
    let on: usize = before.trim_start_matches("connected to s").parse::<usize>().unwrap() - 1;
    farm.term(on);
    let moved = tokio::time::timeout(T, async {
        loop {
            let s = text_of(&a, "#status").await;
            if s.starts_with("connected to s") && s != before {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    shoot(&pages, &shots).await;
    let after =
        moved.unwrap_or_else(|_| panic!("page a did not move off s{} (screenshots in {})", on + 1, shots.display()));
    assert_ne!(after, before);
    say(&a, "after the move").await;
    term.say("#web", "term again").await.unwrap();
    all_see(&pages, &["hello from a", "hello from b", "hello from term", "after the move", "term again"], &shots).await;
    // The terminal client saw each page's lines once.
    let mut seen = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(2), tev.recv()).await {
        if let Event::Message { text, .. } = e {
            seen.push(text.to_string());
        }
    }
    for w in ["hello from a", "hello from b", "after the move"] {
        assert_eq!(seen.iter().filter(|t| *t == w).count(), 1, "term saw {w:?} once: {seen:?}");
    }
    shoot(&pages, &shots).await;
    let _ = a.close().await;
    let _ = b.close().await;
    term.quit().await;
}
