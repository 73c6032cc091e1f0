//! NATS as a load target: a 3-node nats-server cluster with routes on
//! 127.0.0.1-3, driven with the async-nats crate; a room is a subject.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use integration::die_with_parent;

use crate::target::{body, latency, LoadTarget, Member};

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

/// A NATS member: its client, its subjects and their subscriptions.
pub(crate) struct NatsMember {
    client: async_nats::Client,
    subjects: Vec<String>,
    subs: Vec<async_nats::Subscriber>,
    /// The subscription polled first next time, so that none starves.
    turn: usize,
}

impl Member for NatsMember {
    async fn say(&mut self, room: usize, seq: u64) -> bool {
        let subject = self.subjects[room % self.subjects.len()].clone();
        self.client.publish(subject, Bytes::from(body(seq))).await.is_ok()
    }

    async fn next(&mut self) -> Option<u64> {
        // Polled in turn rather than through `SelectAll`, which allocates a
        // task node per message: at a million deliveries a second that cost
        // was the load generator's, and it made NATS look slow.
        std::future::poll_fn(|cx| {
            let n = self.subs.len();
            for k in 0..n {
                let i = (self.turn + k) % n;
                match self.subs[i].poll_next_unpin(cx) {
                    std::task::Poll::Ready(Some(m)) => {
                        self.turn = i + 1;
                        return std::task::Poll::Ready(Some(latency(&m.payload).unwrap_or(0)));
                    }
                    std::task::Poll::Ready(None) => return std::task::Poll::Ready(None),
                    std::task::Poll::Pending => {}
                }
            }
            std::task::Poll::Pending
        })
        .await
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
        let client =
            async_nats::ConnectOptions::new().connect(self.addrs[node].to_string()).await.expect("connect to nats");
        let subjects: Vec<String> = rooms.iter().map(|r| r.trim_start_matches('#').to_string()).collect();
        let mut subs = Vec::with_capacity(subjects.len());
        for s in &subjects {
            subs.push(client.subscribe(s.clone()).await.expect("subscribe"));
        }
        // Subscriptions are in place at the server once a flush returns, as a JOIN's JOINED says for RTTP.
        client.flush().await.expect("flush");
        NatsMember { client, subjects, subs, turn: 0 }
    }
}
