//! The real binary: flags, environment and file; signals; metrics.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::Raw;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

const BIN: &str = env!("CARGO_BIN_EXE_rttp-server");

/// A server process that is killed when the test ends, passing or failing.
struct Proc(Child);

impl std::ops::Deref for Proc {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary (with none of the caller's `RTTP_*` variables) and
/// returns it with its log lines.
fn spawn(args: &[&str], envs: &[(&str, &str)]) -> (Proc, mpsc::Receiver<String>) {
    let mut cmd = Command::new(BIN);
    integration::clean_env(&mut cmd);
    let mut child = cmd
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (Proc(child), rx)
}

/// Waits for a log line containing `what` and returns the `addr=` in it.
fn logged_addr(rx: &mpsc::Receiver<String>, what: &str) -> std::net::SocketAddr {
    loop {
        let line = rx.recv_timeout(Duration::from_secs(10)).expect("the server logs its address");
        if line.contains(what) {
            let a = line.split("addr=").nth(1).unwrap().split_whitespace().next().unwrap();
            return a.parse().unwrap();
        }
    }
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..200 {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    panic!("the server did not exit");
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(child.id() as i32), sig).unwrap();
}

#[tokio::test]
async fn sigterm_closes_sessions_with_508_and_exits_0() {
    // A long HELLO timeout: the connection that never says HELLO is closed
    // by the shutdown itself, not by its timer.
    let (mut child, rx) = spawn(&["--id", "t1", "--listen", "127.0.0.1:0", "--hello-timeout", "60"], &[]);
    let addr = logged_addr(&rx, "listening for clients");
    let mut quiet = Raw::connect(addr).await;
    let mut c = Raw::hello(addr, "alice").await;
    c.send("FARM\r\n").await;
    let rttp_proto::ServerFrame::FarmInfo(info) = c.frame().await else { panic!() };
    assert_eq!(info.servers[0].addr.to_string(), addr.to_string(), "advertises the bound port, not 0");
    signal(&child, Signal::SIGTERM);
    let reason = c.expect_err(508).await;
    assert!(reason.contains("shutting down"));
    c.expect_closed().await;
    assert!(quiet.expect_err(508).await.contains("shutting down"), "a connection before HELLO is told too");
    quiet.expect_closed().await;
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (&["--id", "s1", "--capacity", "lots"][..], "invalid value 'lots' for '--capacity"),
        (&["--listen", "127.0.0.1:0"], "--id is required"),
        (&["--id", "bad id"], "invalid --id"),
        (&["--id", "s1", "--hello-timeout=-1"], "invalid --hello-timeout"),
        (&["--id", "s1", "--max-bad-frames", "0"], "invalid --max-bad-frames"),
        (&["--id", "s1", "--advertise", "nowhere"], "invalid --advertise"),
        (&["--id", "s1", "--config", "/nonexistent.toml"], "/nonexistent.toml"),
        (&["--id", "s1", "--frobnicate"], "unexpected argument '--frobnicate'"),
        (&["--id", "s1", "--seed", "127.0.0.1:7100"], "needs the cluster secret"),
        (&["--id", "s1", "--peer-listen", "127.0.0.1:7100"], "there is no insecure default"),
        (&["--id", "s1", "--tls-cert", "/nonexistent.pem"], "--tls-cert and --tls-key go together"),
        (&["--id", "s1", "--tls-cert", "/nonexistent.pem", "--tls-key", "/k.pem"], "/nonexistent.pem"),
        (&["--id", "s1", "--peer-ca", "/ca.pem"], "are for a farm member"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn help_explains_every_flag() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--id",
        "--listen",
        "--advertise",
        "--group",
        "--capacity",
        "--metrics",
        "--config",
        "RTTP_ID",
        "--tls-cert",
        "--tls-key",
        "--peer-ca",
        "--peer-cert",
        "--peer-key",
        "SIGHUP",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

#[tokio::test]
async fn flags_win_over_env_over_file() {
    let dir = std::env::temp_dir().join(format!("rttp-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("server.toml");
    std::fs::File::create(&file)
        .unwrap()
        .write_all(b"id = \"from-file\"\ngroup = \"file-group\"\ncapacity = 7\nlisten = \"127.0.0.1:0\"\n")
        .unwrap();
    let (mut child, rx) = spawn(
        &["--config", file.to_str().unwrap(), "--capacity", "9"],
        &[("RTTP_GROUP", "env-group"), ("RTTP_CAPACITY", "8")],
    );
    let addr = logged_addr(&rx, "listening for clients");
    let mut c = Raw::connect(addr).await;
    c.send("FARM\r\n").await;
    let rttp_proto::ServerFrame::FarmInfo(info) = c.frame().await else { panic!() };
    let s = &info.servers[0];
    assert_eq!((s.id.as_str(), s.group.as_str(), s.capacity), ("from-file", "env-group", 9));
    signal(&child, Signal::SIGINT);
    assert_eq!(tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.unwrap().code(), Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let (mut child, rx) = spawn(&["--id", "m1", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0"], &[]);
    let addr = logged_addr(&rx, "listening for clients");
    let maddr = logged_addr(&rx, "serving metrics");
    let mut c = Raw::hello(addr, "alice").await;
    c.send("JOIN #r\r\nSAY #r 2\r\nhi\r\nNOPE\r\n").await;
    c.frame().await;
    c.frame().await;
    c.expect_err(401).await;
    let body = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(maddr).unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    })
    .await
    .unwrap();
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    for line in [
        "rttp_sessions 1",
        "rttp_rooms 1",
        "rttp_frames_in_total{verb=\"SAY\"} 1",
        "rttp_frames_out_total{verb=\"MSG\"} 1",
        "rttp_err_replies_total{code=\"401\"} 1",
    ] {
        assert!(body.lines().any(|l| l == line), "missing {line:?} in\n{body}");
    }
    signal(&child, Signal::SIGTERM);
    assert_eq!(tokio::task::spawn_blocking(move || wait_exit(&mut child)).await.unwrap().code(), Some(0));
}
