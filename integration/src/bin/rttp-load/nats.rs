//! NATS as a load target: a 3-node nats-server cluster with routes on
//! 127.0.0.1-3, driven over the NATS text protocol; a room is a subject.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use integration::die_with_parent;
use tokio::net::TcpStream;

use crate::target::{body, LoadTarget, Member};
use crate::wire::Wire;

/// A nats-server cluster, killed when dropped.
pub(crate) struct Nats {
    pub(crate) addrs: Vec<SocketAddr>,
    children: Vec<Child>,
}

impl Nats {
    /// Starts `n` nodes on 127.0.0.1..n, port 4222, routes on 6222.
    pub(crate) fn start(n: usize) -> Nats {
        let ip = |i: usize| Ipv4Addr::new(127, 0, 0, (i + 1) as u8);
        let mut children = Vec::new();
        for i in 0..n {
            let routes: Vec<String> = (0..n).filter(|j| *j != i).map(|j| format!("nats://{}:6222", ip(j))).collect();
            let mut cmd = Command::new("nats-server");
            cmd.args(["-a", &ip(i).to_string(), "-p", "4222", "--cluster_name", "rttpbench"])
                .args(["--cluster", &format!("nats://{}:6222", ip(i)), "--routes", &routes.join(",")])
                // One thread each, as our servers get (`--threads 1`): three
                // nodes and the load generator share the machine's cores.
                .env("GOMAXPROCS", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            die_with_parent(&mut cmd);
            children.push(cmd.spawn().expect("nats-server is installed (Debian package nats-server)"));
        }
        let addrs: Vec<SocketAddr> = (0..n).map(|i| SocketAddr::from((ip(i), 4222))).collect();
        for a in &addrs {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect_timeout(a, Duration::from_millis(200)).is_err() {
                assert!(Instant::now() < deadline, "nats-server on {a} did not start");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Let the routes form.
        std::thread::sleep(Duration::from_secs(2));
        Nats { addrs, children }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A NATS member: the NATS text protocol over TCP, its deliveries read by
/// the same [`Wire`] as the RTTP member's.
pub(crate) struct NatsMember {
    wire: Wire,
    subjects: Vec<String>,
}

impl NatsMember {
    /// Connects, subscribes to `subjects` (sid = index + 1), and returns once
    /// the server has answered a PING after them, so the subscriptions are in place.
    async fn connect(addr: SocketAddr, subjects: Vec<String>) -> std::io::Result<NatsMember> {
        let tcp = TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let mut wire = Wire::new(tcp, BytesMut::new());
        let mut hello = String::from("CONNECT {\"verbose\":false,\"pedantic\":false,\"echo\":true}\r\n");
        for (i, s) in subjects.iter().enumerate() {
            hello.push_str(&format!("SUB {s} {}\r\n", i + 1));
        }
        hello.push_str("PING\r\n");
        wire.send(hello.as_bytes()).await?;
        loop {
            match wire.line().await? {
                Some(l) if l.starts_with(b"PONG") => return Ok(NatsMember { wire, subjects }),
                Some(l) if l.starts_with(b"-ERR") => {
                    return Err(std::io::Error::other(String::from_utf8_lossy(&l).into_owned()))
                }
                Some(_) => continue,
                None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            }
        }
    }
}

impl Member for NatsMember {
    async fn say(&mut self, room: usize, seq: u64) -> bool {
        let subject = &self.subjects[room % self.subjects.len()];
        let payload = body(seq);
        let frame = format!("PUB {subject} {}\r\n{payload}\r\n", payload.len());
        self.wire.send(frame.as_bytes()).await.is_ok()
    }

    async fn next(&mut self) -> Option<u64> {
        self.wire.delivery(|l| l.starts_with(b"PING").then(|| b"PONG\r\n".to_vec())).await
    }
}

impl LoadTarget for Nats {
    type Member = NatsMember;

    fn name(&self) -> &'static str {
        "nats"
    }

    fn nodes(&self) -> usize {
        self.addrs.len()
    }

    fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    async fn member(&self, node: usize, _name: &str, rooms: &[String]) -> NatsMember {
        let subjects: Vec<String> = rooms.iter().map(|r| r.trim_start_matches('#').to_string()).collect();
        // Subscriptions are in place once the PING after them is answered, as a JOIN's JOINED says for RTTP.
        NatsMember::connect(self.addrs[node], subjects).await.expect("connect to nats")
    }
}
