//! What farm the fixture starts ([`FarmSpec`]) and the flags each process
//! gets from it; shared by the fixture, `rttp-farm` and `rttp-load`.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

/// Client, peer and metrics ports of every server.
pub const CLIENT_PORT: u16 = 7000;
/// Where each server of a fixture farm with [`FarmSpec::web`] serves web clients.
pub const WEB_PORT: u16 = 8080;
/// The service name farm-dns answers for, and the name in test certificates.
pub const SERVICE: &str = "chat.farm.test";
/// Peer port.
pub const PEER_PORT: u16 = 7100;
/// Metrics port.
pub const METRICS_PORT: u16 = 9100;
/// How long [`Farm::wait_mesh`] waits: joining takes a few redial rounds at most.
pub const MESH_WAIT: Duration = Duration::from_secs(15);

/// What farm to start.
#[derive(Debug, Clone)]
pub struct FarmSpec {
    /// How many servers.
    pub servers: usize,
    /// The group of each server, cycled (default g1, g2, g1).
    pub groups: Vec<String>,
    /// Capacity of every server not in `capacities`.
    pub capacity: u32,
    /// Capacity of each server, s1 first (servers past its end: `capacity`).
    pub capacities: Vec<u32>,
    /// Seconds a drain spreads over.
    pub drain_window: f64,
    /// More flags for every server.
    pub extra: Vec<String>,
    /// More flags for one server: (index, flags).
    pub extra_for: Vec<(usize, Vec<String>)>,
    /// Whether each server serves metrics on its IP at [`METRICS_PORT`].
    pub metrics: bool,
    /// TLS on every client port, with a certificate from a CA made for the farm.
    pub tls: bool,
    /// Mutual TLS on every peer link, with the same CA.
    pub peer_tls: bool,
    /// With `tls`: the servers whose client port stays plaintext (a mixed farm).
    pub plaintext: Vec<usize>,
    /// A web listener (RTTP over WebSocket, the page) on each server's IP at [`WEB_PORT`].
    pub web: bool,
}

/// `rttp-server` flags that lift every per-session budget (SAY, frames,
/// bytes, JOIN/PART): for load generators, and for attack tests where the
/// attack under test must be the only limit in play.
pub fn no_rate_limit_flags() -> Vec<String> {
    [
        "--say-rate",
        "1000000",
        "--say-burst",
        "1000000",
        "--frame-rate",
        "1000000000",
        "--frame-burst",
        "1000000000",
        "--byte-rate",
        "1000000000000",
        "--byte-burst",
        "4000000000",
        "--join-rate",
        "1000000",
    ]
    .map(String::from)
    .into()
}

impl Default for FarmSpec {
    fn default() -> FarmSpec {
        FarmSpec {
            servers: 3,
            groups: vec!["g1".into(), "g2".into()],
            capacity: 10_000,
            capacities: Vec::new(),
            drain_window: 3.0,
            extra: Vec::new(),
            extra_for: Vec::new(),
            metrics: true,
            tls: false,
            peer_tls: false,
            plaintext: Vec::new(),
            web: false,
        }
    }
}

impl FarmSpec {
    /// The flags of server `i` (s1 is `i = 0`) on its own `ip`; every server
    /// but s1 joins through `seed_ip`. Used by the fixture and by `rttp-farm`.
    pub fn server_args(&self, i: usize, ip: Ipv4Addr, seed_ip: Ipv4Addr, secret: &Path) -> Vec<String> {
        let group = self.groups.get(i % self.groups.len().max(1)).cloned().unwrap_or_else(|| "g1".into());
        let mut args: Vec<String> = vec![
            "--id".into(),
            format!("s{}", i + 1),
            "--listen".into(),
            format!("{ip}:{CLIENT_PORT}"),
            "--peer-listen".into(),
            format!("{ip}:{PEER_PORT}"),
            "--group".into(),
            group,
            "--capacity".into(),
            self.capacities.get(i).copied().unwrap_or(self.capacity).to_string(),
            "--drain-window".into(),
            self.drain_window.to_string(),
            "--secret-file".into(),
            secret.display().to_string(),
        ];
        if self.metrics {
            args.extend(["--metrics".into(), format!("{ip}:{METRICS_PORT}")]);
        }
        if self.web {
            args.extend(["--ws-listen".into(), format!("{ip}:{WEB_PORT}")]);
        }
        if i > 0 {
            args.extend(["--seed".into(), format!("{seed_ip}:{PEER_PORT}")]);
        }
        args.extend(self.extra.iter().cloned());
        for (j, more) in &self.extra_for {
            if *j == i {
                args.extend(more.iter().cloned());
            }
        }
        args
    }

    /// The TLS flags of server `i` on `ip`, with a certificate `ca` issues
    /// now for the service name, `localhost` and `ip` (one for both ports).
    pub fn tls_args(&self, ca: &crate::certs::Ca, i: usize, ip: Ipv4Addr) -> Vec<String> {
        if !self.tls && !self.peer_tls {
            return Vec::new();
        }
        let pair = ca.issue(&format!("s{}", i + 1), &[SERVICE, "localhost", &ip.to_string()]);
        let (cert, key) = (pair.cert.display().to_string(), pair.key.display().to_string());
        let mut args = Vec::new();
        if self.tls && !self.plaintext.contains(&i) {
            args.extend(["--tls-cert".into(), cert.clone(), "--tls-key".into(), key.clone()]);
        }
        if self.peer_tls {
            args.extend(["--peer-ca".into(), ca.cert.display().to_string(), "--peer-cert".into(), cert]);
            args.extend(["--peer-key".into(), key]);
        }
        args
    }

    /// The flags of farm-dns on `listen` for `chat.farm.test`, following the farm through `farm`.
    pub fn dns_args(listen: SocketAddr, farm: &[SocketAddr]) -> Vec<String> {
        let mut args: Vec<String> =
            ["--listen", &listen.to_string(), "--zone", "farm.test", "--name", "chat.farm.test"]
                .map(String::from)
                .into();
        for c in farm {
            args.extend(["--farm".into(), c.to_string()]);
        }
        args
    }
}
