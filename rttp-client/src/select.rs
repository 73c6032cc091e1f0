//! Choosing the serving server: the strategies are pure functions of
//! (table, own group, rng), shared with the server's REDIRECT and defined in
//! [`rttp_proto::select`]; this module adds the herding simulation.
//!
//! Measured by [`simulate`] (10 servers of equal capacity, 10,000 clients,
//! seed 7; `cargo test -p rttp-client p2c -- --nocapture` prints it), max/mean
//! users per server, lower is better:
//!
//! | table refreshed every | random | least-users | p2c |
//! |---|---|---|---|
//! | 1 arrival (fresh) | 1.035 | 1.000 | 1.001 |
//! | 100 arrivals | 1.035 | 1.051 | 1.004 |
//! | 500 arrivals | 1.035 | 1.282 | 1.031 |
//! | 2,000 arrivals | 1.035 | 2.198 | 1.015 |
//!
//! With a stale table least-users sends every newcomer to the same server
//! (herding); power of two choices stays close to even.

pub use rttp_proto::select::{load, select, Strategy};

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rttp_proto::{FarmInfo, Group, HostPort, ServerEntry, ServerId, Status};

/// Simulates `clients` arrivals over `servers` servers: each client chooses
/// from a table that is refreshed only every `refresh_every` arrivals.
/// Returns max/mean users per server at the end.
pub fn simulate(strategy: Strategy, servers: usize, clients: usize, refresh_every: usize, seed: u64) -> f64 {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut users = vec![0u32; servers];
    let entry = |i: usize, u: u32| ServerEntry {
        id: ServerId::new(&format!("s{i}")).expect("valid id"),
        addr: HostPort::new(&format!("10.0.0.{}:7000", i + 1)).expect("valid address"),
        status: Status::Up,
        users: u,
        capacity: 1_000_000,
        group: Group::new("g").expect("valid group"),
        transport: Default::default(),
        ws: None,
    };
    let mut table = FarmInfo { epoch: 0, servers: (0..servers).map(|i| entry(i, 0)).collect() };
    for n in 0..clients {
        if n % refresh_every.max(1) == 0 {
            table = FarmInfo { epoch: n as u64, servers: (0..servers).map(|i| entry(i, users[i])).collect() };
        }
        let chosen = select(&table.servers, None, strategy, &[], &mut rng).expect("an UP server");
        let i = table.servers.iter().position(|e| e.id == chosen.id).expect("in the table");
        users[i] += 1;
    }
    let max = f64::from(*users.iter().max().unwrap_or(&0));
    let mean = clients as f64 / servers as f64;
    max / mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p2c_beats_random_and_does_not_herd_on_stale_tables() {
        let run = |s, k| simulate(s, 10, 10_000, k, 7);
        for k in [1, 100, 500, 2000] {
            let (r, l, p) = (run(Strategy::Random, k), run(Strategy::LeastUsers, k), run(Strategy::P2c, k));
            println!("table refreshed every {k:>4} arrivals, max/mean: random {r:.3}, least-users {l:.3}, p2c {p:.3}");
        }
        for k in [100, 500, 2000] {
            let (random, least, p2c) = (run(Strategy::Random, k), run(Strategy::LeastUsers, k), run(Strategy::P2c, k));
            assert!(p2c < random, "every {k}: p2c {p2c} vs random {random}");
            assert!(p2c < least, "every {k}: p2c {p2c} vs least-users {least} (herding)");
        }
        let (fr, fp) = (run(Strategy::Random, 1), run(Strategy::P2c, 1));
        assert!(fp < fr, "with fresh tables too");
    }
}
