//! A farm of real `rttp-server` processes on a loopback range of its own
//! (`127.A.B.1` ... `127.A.B.N`, every server on ports 7000/7100/9100, as
//! separate hosts would be), with the faults tests need.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::ask::answers_as;
use crate::claim::{Range, Slot};
use crate::process::{bin, clean_env, die_with_parent};
use crate::spec::{FarmSpec, CLIENT_PORT, METRICS_PORT, PEER_PORT};

/// How long a server may take to answer after its start.
const LAUNCH_WAIT: Duration = Duration::from_secs(20);
/// One server process of a farm.
#[derive(Debug)]
pub struct ServerProc {
    /// Its id: s1, s2, ...
    pub id: String,
    /// Its own loopback address.
    pub ip: Ipv4Addr,
    /// Client address.
    pub client: SocketAddr,
    /// Peer address.
    pub peer: SocketAddr,
    /// Metrics address.
    pub metrics: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

/// A running farm; every process is killed when it is dropped.
#[derive(Debug)]
pub struct Farm {
    /// The servers, s1 first.
    pub servers: Vec<ServerProc>,
    /// Logs and the secret.
    pub dir: PathBuf,
    /// The cluster secret file.
    pub secret_file: PathBuf,
    /// The farm's CA (with [`FarmSpec::tls`] or [`FarmSpec::peer_tls`]).
    pub ca: Option<crate::certs::Ca>,
    /// How clients of the fixture speak TLS to a farm with [`FarmSpec::tls`]
    /// (trusting [`Farm::ca`], names checked by IP address).
    pub tls: Option<rttp_conn::tls::TlsClient>,
    /// farm-dns, once started.
    dns: Option<(SocketAddr, Child)>,
    /// The loopback range and the slot it holds; released after the processes are gone.
    _claim: (Range, Slot),
}

impl Farm {
    /// Starts the servers (s1 first, every other one seeded with s1) and
    /// waits until each accepts connections.
    pub fn start(spec: FarmSpec) -> Farm {
        let slot = Slot::take();
        let range = Range::claim();
        let (a, b) = range.octets;
        let dir = std::env::temp_dir().join(format!("rttp-farm-{}-{a}-{b}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("farm dir");
        let secret_file = dir.join("secret");
        crate::write_secret(&secret_file, &format!("test-secret-{}-{a}-{b}-0123456789\n", std::process::id()));
        let ca = (spec.tls || spec.peer_tls).then(|| crate::certs::Ca::new(&dir.join("certs"), "rttp-test-ca"));
        let tls = match (&ca, spec.tls) {
            (Some(ca), true) => Some(rttp_conn::tls::TlsClient::new(Some(&ca.cert), None).expect("the farm's CA")),
            _ => None,
        };
        let mut servers = Vec::new();
        for i in 0..spec.servers {
            let ip = Ipv4Addr::new(127, a, b, (i + 1) as u8);
            let id = format!("s{}", i + 1);
            let mut args = spec.server_args(i, ip, Ipv4Addr::new(127, a, b, 1), &secret_file);
            if let Some(ca) = &ca {
                args.extend(spec.tls_args(ca, i, ip));
            }
            servers.push(ServerProc {
                id: id.clone(),
                ip,
                client: SocketAddr::from((ip, CLIENT_PORT)),
                peer: SocketAddr::from((ip, PEER_PORT)),
                metrics: SocketAddr::from((ip, METRICS_PORT)),
                args,
                log: dir.join(format!("{id}.log")),
                child: None,
            });
        }
        let mut farm = Farm { servers, dir, secret_file, ca, tls, dns: None, _claim: (range, slot) };
        for i in 0..spec.servers {
            farm.launch_blocking(i);
        }
        farm
    }

    /// Adds flags to server `i` for its next launch.
    pub fn set_extra(&mut self, i: usize, flags: &[&str]) {
        self.servers[i].args.extend(flags.iter().map(|f| f.to_string()));
    }

    /// The address range's prefix, `127.A.B`.
    pub fn prefix(&self) -> String {
        let o = self.servers[0].ip.octets();
        format!("127.{}.{}", o[1], o[2])
    }

    /// Starts server `i` (again) with its arguments, and waits until it
    /// accepts connections without blocking the runtime (clients of the test
    /// keep running meanwhile).
    pub async fn launch(&mut self, i: usize) {
        let deadline = Instant::now() + LAUNCH_WAIT;
        self.spawn(i);
        while !self.started(i, deadline) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Farm::launch`] for callers outside a runtime (a farm being built).
    fn launch_blocking(&mut self, i: usize) {
        let deadline = Instant::now() + LAUNCH_WAIT;
        self.spawn(i);
        while !self.started(i, deadline) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn spawn(&mut self, i: usize) {
        let s = &mut self.servers[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&s.log).expect("log file");
        let mut cmd = Command::new(bin("rttp-server"));
        clean_env(&mut cmd);
        cmd.args(&s.args)
            .env("RUST_LOG", std::env::var("RTTP_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        die_with_parent(&mut cmd);
        s.child = Some(cmd.spawn().expect("spawn rttp-server"));
    }

    /// Whether server `i` is up: ours, and alive (the child still runs and
    /// `FARM` names it at its address). Panics when it exited or `deadline` passed.
    fn started(&mut self, i: usize, deadline: Instant) -> bool {
        let tls = self.tls_for(i).cloned();
        let s = &mut self.servers[i];
        if let Some(Ok(Some(status))) = s.child.as_mut().map(Child::try_wait) {
            panic!("{} exited at start ({status}); see {}", s.id, s.log.display());
        }
        // The row it publishes for itself: at its --advertise address if it has one.
        let published = s.args.iter().rposition(|a| a == "--advertise").and_then(|i| s.args.get(i + 1));
        let published = published.cloned().unwrap_or_else(|| s.client.to_string());
        if answers_as(s.client, &s.id, &published, tls.as_ref()) {
            return true;
        }
        assert!(Instant::now() < deadline, "{} did not start; see {}", s.id, s.log.display());
        false
    }

    /// How to speak to server `i`'s client port: TLS (with [`Farm::tls`]) if
    /// it was started with a certificate, else `None`, the clear.
    pub fn tls_for(&self, i: usize) -> Option<&rttp_conn::tls::TlsClient> {
        self.tls.as_ref().filter(|_| self.servers[i].args.iter().any(|a| a == "--tls-cert"))
    }

    /// The process id of server `i`, if it runs.
    pub fn pid_of(&self, i: usize) -> Option<u32> {
        self.servers[i].child.as_ref().map(Child::id)
    }

    fn pid(&self, i: usize) -> Pid {
        Pid::from_raw(self.servers[i].child.as_ref().expect("running").id() as i32)
    }

    /// Sends a signal to server `i`.
    pub fn signal(&self, i: usize, sig: Signal) {
        kill(self.pid(i), sig).expect("kill");
    }

    /// kill -9, and reaps it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.servers[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP.
    pub fn stop(&self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
    }

    /// SIGCONT.
    pub fn cont(&self, i: usize) {
        self.signal(i, Signal::SIGCONT);
    }

    /// SIGTERM: a drain, then exit.
    pub fn term(&self, i: usize) {
        self.signal(i, Signal::SIGTERM);
    }

    /// kill -9 and start again: a new generation.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.launch(i).await;
    }

    /// Waits up to `timeout` for server `i` to exit, without blocking the runtime.
    pub async fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.servers[i].child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.servers[i].child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts farm-dns on `127.A.B.250:5353` for `chat.farm.test`, learning
    /// the farm from s1 and s2; returns its address.
    pub fn start_dns(&mut self) -> SocketAddr {
        self.start_dns_with(&[])
    }

    /// [`Farm::start_dns`] with more flags (a load generator asking from one
    /// address turns response rate limiting off: `--rrl-rate 0`).
    pub fn start_dns_with(&mut self, extra: &[&str]) -> SocketAddr {
        let addr = SocketAddr::from((
            Ipv4Addr::new(127, self.servers[0].ip.octets()[1], self.servers[0].ip.octets()[2], 250),
            5353,
        ));
        let log = std::fs::File::create(self.dir.join("farm-dns.log")).expect("log");
        let mut cmd = Command::new(bin("farm-dns"));
        clean_env(&mut cmd);
        let farm: Vec<SocketAddr> = self.servers.iter().take(2).map(|s| s.client).collect();
        let ca: Vec<String> = match (&self.tls, &self.ca) {
            (Some(_), Some(ca)) => vec!["--farm-ca".into(), ca.cert.display().to_string()],
            _ => Vec::new(),
        };
        cmd.args(FarmSpec::dns_args(addr, &farm))
            .args(ca)
            .args(extra)
            .env("RUST_LOG", std::env::var("RTTP_TEST_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("spawn farm-dns");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "farm-dns did not start; see {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.dns = Some((addr, child));
        addr
    }

    /// Runs `dig @farm-dns -p PORT <args>` without blocking the runtime and
    /// returns its output. Each try waits 1 s and dig tries 3 times, so a
    /// lost UDP datagram is not a failed test; when dig itself fails, its
    /// stderr follows as `;;` lines (which [`short`] skips).
    pub async fn dig(&self, args: &[&str]) -> String {
        let (addr, _) = self.dns.as_ref().expect("start_dns first");
        let out = tokio::process::Command::new("dig")
            .arg(format!("@{}", addr.ip()))
            .args(["-p", &addr.port().to_string(), "+time=1", "+tries=3"])
            .args(args)
            .output()
            .await
            .expect("dig is installed (Debian package dnsutils; .ci/run installs it)");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            for l in String::from_utf8_lossy(&out.stderr).lines() {
                text.push_str(&format!("\n;; dig failed ({}): {l}", out.status));
            }
        }
        text
    }

    /// Server `i`'s log so far.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.servers[i].log).unwrap_or_default()
    }
}

/// Lines of each server's log a failed test prints.
const LOG_TAIL: usize = 60;

impl Drop for Farm {
    /// No process outlives its farm; logs are kept when the test failed.
    fn drop(&mut self) {
        for i in 0..self.servers.len() {
            if self.servers[i].child.is_some() {
                let _ = kill(self.pid(i), Signal::SIGCONT);
            }
            self.kill(i);
        }
        if let Some((_, mut c)) = self.dns.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            // CI keeps only the output: the last lines of each log go with it.
            for s in &self.servers {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                eprintln!("--- last lines of {}", s.log.display());
                for l in &lines[lines.len().saturating_sub(LOG_TAIL)..] {
                    eprintln!("{l}");
                }
            }
            eprintln!("farm logs kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
