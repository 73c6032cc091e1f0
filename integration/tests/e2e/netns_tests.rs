//! The farm across hosts: one network namespace per server, joined by veth
//! pairs to a bridge (needs root; CI runs as root). One host is cut off and
//! healed, and the tables converge again: nothing assumes a single host.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use integration::{bin, check_for, die_with_parent, Raw};
use rttp_proto::{ServerFrame, Status};

const T: Duration = Duration::from_secs(15);

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip (iproute2)");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// Namespaces, links and processes of one test; all removed on drop.
struct Hosts {
    tag: String,
    n: usize,
    subnet: u8,
    procs: Vec<Child>,
}

impl Hosts {
    fn ns(&self, i: usize) -> String {
        format!("{}-h{i}", self.tag)
    }

    fn veth(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }

    fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 251, self.subnet, i as u8)
    }

    fn create(n: usize) -> Hosts {
        let id = std::process::id() % 10_000;
        let h = Hosts { tag: format!("rt{id}"), n, subnet: (id % 250) as u8, procs: Vec::new() };
        let br = format!("{}br", h.tag);
        ip(&["link", "add", &br, "type", "bridge"]);
        ip(&["addr", "add", &format!("10.251.{}.254/24", h.subnet), "dev", &br]);
        ip(&["link", "set", &br, "up"]);
        for i in 1..=n {
            let ns = h.ns(i);
            ip(&["netns", "add", &ns]);
            ip(&["link", "add", &h.veth(i), "type", "veth", "peer", "name", "eth0", "netns", &ns]);
            ip(&["link", "set", &h.veth(i), "master", &br]);
            ip(&["link", "set", &h.veth(i), "up"]);
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", h.addr(i)), "dev", "eth0"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        h
    }

    fn start_servers(&mut self, secret: &std::path::Path) {
        for i in 1..=self.n {
            let a = self.addr(i);
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", &self.ns(i)])
                .arg(bin("rttp-server"))
                .args([
                    "--id",
                    &format!("h{i}"),
                    "--listen",
                    &format!("{a}:7000"),
                    "--secret-file",
                    secret.to_str().unwrap(),
                ])
                .args(["--peer-listen", &format!("{a}:7100")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if i > 1 {
                cmd.args(["--seed", &format!("{}:7100", self.addr(1))]);
            }
            die_with_parent(&mut cmd);
            self.procs.push(cmd.spawn().expect("spawn in a namespace"));
        }
    }

    /// Host `i`'s view: status of every server, or None if unreachable.
    async fn view(&self, i: usize) -> Option<Vec<(String, Status)>> {
        let addr = SocketAddr::from((self.addr(i), 7000));
        tokio::time::timeout(Duration::from_secs(2), async {
            let mut c = Raw::try_connect(addr).await?;
            c.send("FARM\r\n").await;
            match c.frame_within(Duration::from_secs(1)).await {
                Ok(Some(ServerFrame::FarmInfo(t))) => {
                    Some(t.servers.iter().map(|e| (e.id.to_string(), e.status)).collect())
                }
                _ => None,
            }
        })
        .await
        .ok()
        .flatten()
    }

    async fn all_up_at(&self, i: usize) -> bool {
        self.view(i).await.is_some_and(|v| v.len() == self.n && v.iter().all(|(_, s)| *s == Status::Up))
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for i in 1..=self.n {
            let _ = Command::new("ip").args(["netns", "del", &self.ns(i)]).status();
        }
        let _ = Command::new("ip").args(["link", "del", &format!("{}br", self.tag)]).status();
    }
}

#[tokio::test]
async fn a_farm_across_hosts_survives_a_cut_link() {
    if !nix::unistd::Uid::effective().is_root() {
        panic!("the multi-host test creates network namespaces and needs root (CI runs as root)");
    }
    let dir = std::env::temp_dir().join(format!("rttp-netns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "netns-test-secret-0123456789\n").unwrap();
    let mut hosts = Hosts::create(3);
    hosts.start_servers(&secret);
    for i in 1..=3 {
        check_for(T, &format!("host {i} sees three servers UP"), || hosts.all_up_at(i)).await;
    }
    // The peers really are other hosts: h2's table lists h1 at h1's own address.
    // Cut h3 off (its link down) and see both sides notice.
    ip(&["link", "set", &hosts.veth(3), "down"]);
    check_for(T, "h1 sees h3 DOWN", || async {
        hosts.view(1).await.is_some_and(|v| v.iter().any(|(id, s)| id == "h3" && *s == Status::Down))
    })
    .await;
    check_for(T, "h2 sees h3 DOWN", || async {
        hosts.view(2).await.is_some_and(|v| v.iter().any(|(id, s)| id == "h3" && *s == Status::Down))
    })
    .await;
    assert!(hosts.view(3).await.is_none(), "h3 is unreachable from here while cut off");
    // Heal: everyone converges to three UP again.
    ip(&["link", "set", &hosts.veth(3), "up"]);
    for i in 1..=3 {
        check_for(T, &format!("host {i} sees three servers UP after the heal"), || hosts.all_up_at(i)).await;
    }
    let v = hosts.view(3).await.unwrap();
    assert!(v.iter().all(|(_, s)| *s == Status::Up), "h3's own view converged: {v:?}");
    drop(hosts);
    let _ = std::fs::remove_dir_all(dir);
}
