//! A seeded, socket-free simulation of a farm, to choose the rebalancing
//! defaults: ten servers of capacities 1,000 to 10,000, users arriving
//! (first server by DNS rotation, then power of two choices on a table up to
//! 1 s stale), leaving after 5 minutes on average, and two servers drained
//! and restarted (the largest at 300 s, a middle one at 700 s, each
//! draining for 10 s and down for 10 s). Each server runs the [`Rebalancer`] on its own stale view.
//!
//! `cargo run --release -p rttp-proto --example rebalance-sim` prints
//! (seed 1, 1,200 s, about 30,000 users at steady state):
//!
//! | policy | max/mean, mean | worst max/mean from 60 s after a restart | restarted server's load / mean at +60 s | seconds until it holds 90 % of its share | moves |
//! |---|---|---|---|---|---|
//! | none | 1.03 | 1.12 | 0.46, 0.40 | 141, 164 | 0 |
//! | **margin 0.10, rate 0.02 (default)** | 1.00 | 1.03 | 1.00, 1.00 | 9, 5 | 5823 |
//! | margin 0.05, rate 0.02 | 1.00 | 1.01 | 1.00, 1.00 | 9, 5 | 5866 |
//! | margin 0.20, rate 0.02 | 1.01 | 1.04 | 1.00, 0.65 | 9, 117 | 4031 |
//! | margin 0.10, rate 0.01 | 1.01 | 1.02 | 1.00, 1.00 | 17, 9 | 5476 |
//! | margin 0.10, rate 0.05 | 1.00 | 1.01 | 1.00, 1.00 | 4, 3 | 6054 |
//!
//! Max/mean hides a restarted server of ten: it is empty, so it lowers the
//! mean, and the others are only 10 % above it. The fill of the restarted
//! server shows the difference: without rebalancing it fills only from new
//! arrivals (under half its share after a minute, two to three minutes to
//! 90 %). A margin of 0.20 leaves the second (smaller) restarted server
//! short, because its peers never cross the start line; 0.05 makes about
//! the same moves here but starts moving for smaller random imbalances. A
//! faster rate settles sooner for about the same moves, but moves more users
//! at once onto a server that has just started; 2 % per second fills it in
//! seconds here, where each peer sheds only a little, and in about 20 s for
//! one of three servers.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::names::{Group, HostPort, ServerId, Status};
use crate::rebalance::{target, Policy, Rebalancer};
use crate::select::{load, select, Strategy};
use crate::server::ServerEntry;

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Capacity of each server.
    pub capacities: Vec<u32>,
    /// New users per second.
    pub arrivals: f64,
    /// Mean session length in seconds.
    pub session_secs: f64,
    /// `(at, server)`: the server drains at `at` seconds (over 10 s), is
    /// down for the next 10 s, and comes back empty.
    pub restarts: Vec<(f64, usize)>,
    /// Simulated seconds.
    pub secs: u32,
    /// The policy, or `None` for no rebalancing.
    pub policy: Option<Policy>,
    /// The random seed.
    pub seed: u64,
}

impl Setup {
    /// The run of the table above, with `policy`.
    pub fn farm_of_ten(policy: Option<Policy>) -> Setup {
        Setup {
            capacities: (1..=10).map(|i| i * 1000).collect(),
            arrivals: 100.0,
            session_secs: 300.0,
            restarts: vec![(300.0, 9), (700.0, 4)],
            secs: 1200,
            policy,
            seed: 1,
        }
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The mean of max/mean users ÷ capacity, sampled each second after the
    /// first 200 s, over UP servers.
    pub mean_imbalance: f64,
    /// The worst max/mean from 60 s after a restarted server is back on.
    pub worst_after_restart: f64,
    /// Per restart: the restarted server's users ÷ capacity over the mean,
    /// 60 s after it is back.
    pub fill_at_60s: Vec<f64>,
    /// Per restart: seconds from the server being back until it holds 90 %
    /// of its share (`None`: not before the next restart or the end).
    pub settle_secs: Vec<Option<u32>>,
    /// Sessions moved by rebalancing.
    pub moves: u64,
}

const STEP: f64 = 0.1;
const DRAIN_SECS: f64 = 10.0;
const DOWN_SECS: f64 = 20.0;
const STALE_STEPS: usize = 10;

struct Server {
    capacity: u32,
    status: Status,
    /// Arrival time of each session, in seconds.
    sessions: Vec<f64>,
    rebalancer: Option<Rebalancer>,
    next_tick: f64,
}

/// Runs one simulation.
pub fn run(setup: &Setup) -> Outcome {
    let mut rng = SmallRng::seed_from_u64(setup.seed);
    let group = Group::new("g").expect("valid group");
    let ids: Vec<ServerId> =
        (0..setup.capacities.len()).map(|i| ServerId::new(&format!("s{i}")).expect("valid id")).collect();
    let mut servers: Vec<Server> = setup
        .capacities
        .iter()
        .map(|&capacity| Server {
            capacity,
            status: Status::Up,
            sessions: Vec::new(),
            rebalancer: setup.policy.map(Rebalancer::new),
            next_tick: 0.0,
        })
        .collect();
    let table = |servers: &[Server]| -> Vec<ServerEntry> {
        servers
            .iter()
            .zip(&ids)
            .map(|(s, id)| ServerEntry {
                id: *id,
                addr: HostPort::new("127.0.0.1:7000").expect("valid address"),
                status: if s.status == Status::Up && s.sessions.len() as u32 >= s.capacity {
                    Status::Full
                } else {
                    s.status
                },
                users: s.sessions.len() as u32,
                capacity: s.capacity,
                group,
                transport: Default::default(),
                ws: None,
            })
            .collect()
    };
    // The tables of the last second: every view is one of them.
    let mut history: std::collections::VecDeque<Vec<ServerEntry>> = std::collections::VecDeque::new();
    let mut out = Outcome {
        mean_imbalance: 0.0,
        worst_after_restart: 1.0,
        fill_at_60s: Vec::new(),
        settle_secs: Vec::new(),
        moves: 0,
    };
    let (mut samples, mut sum) = (0u32, 0.0);
    let mut back_at: Vec<f64> = Vec::new();
    let steps = (f64::from(setup.secs) / STEP) as u32;
    for step in 0..steps {
        let now = f64::from(step) * STEP;
        history.push_back(table(&servers));
        if history.len() > STALE_STEPS {
            history.pop_front();
        }
        // Drains and returns.
        for &(at, i) in &setup.restarts {
            if (now - at).abs() < STEP / 2.0 {
                servers[i].status = Status::Draining;
            }
            if now >= at && now < at + DRAIN_SECS {
                // The drain spreads its REDIRECTs over its window.
                let left = ((at + DRAIN_SECS - now) / STEP).max(1.0);
                let n = (servers[i].sessions.len() as f64 / left).ceil() as usize;
                for _ in 0..n {
                    servers[i].sessions.pop();
                    let view = history[rng.random_range(0..history.len())].clone();
                    place(&mut servers, &view, &ids, None, now, &mut rng);
                }
            }
            if (now - at - DRAIN_SECS).abs() < STEP / 2.0 {
                servers[i].sessions.clear();
                servers[i].status = Status::Down;
            }
            if (now - at - DOWN_SECS).abs() < STEP / 2.0 {
                servers[i].status = Status::Up;
                servers[i].rebalancer = setup.policy.map(Rebalancer::new);
                back_at.push(now);
                out.settle_secs.push(None);
            }
        }
        // Departures, then arrivals, each seeing a table up to 1 s old.
        let leave = STEP / setup.session_secs;
        for s in servers.iter_mut() {
            let gone = poisson(s.sessions.len() as f64 * leave, &mut rng).min(s.sessions.len() as u32);
            for _ in 0..gone {
                let k = rng.random_range(0..s.sessions.len());
                s.sessions.swap_remove(k);
            }
        }
        let arrivals = poisson(setup.arrivals * STEP, &mut rng);
        for _ in 0..arrivals {
            let view = history[rng.random_range(0..history.len())].clone();
            let up: Vec<usize> = (0..servers.len()).filter(|&i| servers[i].status == Status::Up).collect();
            if up.is_empty() {
                continue;
            }
            let first = up[rng.random_range(0..up.len())];
            place(&mut servers, &view, &ids, Some(first), now, &mut rng);
        }
        // Rebalancing: each server on its own stale view, its own row live.
        for i in 0..servers.len() {
            if servers[i].rebalancer.is_none() || now < servers[i].next_tick || servers[i].status != Status::Up {
                continue;
            }
            servers[i].next_tick = now + rng.random_range(0.15..0.25);
            let mut view = history[rng.random_range(0..history.len())].clone();
            view[i] = table(&servers)[i].clone();
            let min_stay = setup.policy.map_or(0.0, |p| p.min_stay.as_secs_f64());
            let k = servers[i].rebalancer.as_mut().map_or(0, |r| r.tick(Duration::from_secs_f64(now), &view, ids[i]));
            for _ in 0..k {
                // A random session old enough to move (a few draws: most are).
                let n = servers[i].sessions.len();
                let pick = (0..8)
                    .map(|_| rng.random_range(0..n.max(1)))
                    .find(|&j| j < n && now - servers[i].sessions[j] >= min_stay);
                let Some(to) =
                    target(&view, ids[i], &group, &mut rng).and_then(|t| ids.iter().position(|x| *x == t.id))
                else {
                    break;
                };
                let (Some(j), Status::Up) = (pick, servers[to].status) else {
                    break;
                };
                servers[i].sessions.swap_remove(j);
                servers[to].sessions.push(now);
                out.moves += 1;
            }
        }
        if step % 10 == 0 && now >= 200.0 {
            let t = table(&servers);
            let r = imbalance(&t);
            samples += 1;
            sum += r;
            let mean = crate::rebalance::balance(&t, &group).map_or(1.0, |b| b.mean);
            for (k, &b) in back_at.iter().enumerate() {
                let next = back_at.get(k + 1).copied().unwrap_or(f64::INFINITY);
                let fill = load(&t[setup.restarts[k].1]) / mean;
                if now >= b && now < next && fill >= 0.9 && out.settle_secs[k].is_none() {
                    out.settle_secs[k] = Some((now - b).round() as u32);
                }
                if (now - b - 60.0).abs() < STEP / 2.0 {
                    out.fill_at_60s.push(fill);
                }
                if now >= b + 60.0 && now < next {
                    out.worst_after_restart = out.worst_after_restart.max(r);
                }
            }
        }
    }
    out.mean_imbalance = sum / f64::from(samples.max(1));
    out
}

/// Max over mean of users ÷ capacity, over the servers taking users.
pub fn imbalance(table: &[ServerEntry]) -> f64 {
    let live: Vec<&ServerEntry> = table.iter().filter(|e| matches!(e.status, Status::Up | Status::Full)).collect();
    let users: u64 = live.iter().map(|e| u64::from(e.users)).sum();
    let cap: u64 = live.iter().map(|e| u64::from(e.capacity)).sum();
    if users == 0 || cap == 0 {
        return 1.0;
    }
    let mean = users as f64 / cap as f64;
    live.iter().map(|e| load(e)).fold(0.0, f64::max) / mean
}

/// One user placed: from `first` (or from anywhere, after a drain) to a
/// server chosen by p2c on `view`; it stays on `first` when that is full
/// or nothing else is UP.
fn place(
    servers: &mut [Server],
    view: &[ServerEntry],
    ids: &[ServerId],
    first: Option<usize>,
    now: f64,
    rng: &mut SmallRng,
) {
    let chosen = select(view, None, Strategy::P2c, &[], rng).and_then(|e| ids.iter().position(|x| *x == e.id));
    let ok = |s: &Server| s.status == Status::Up && (s.sessions.len() as u32) < s.capacity;
    let at = match (chosen, first) {
        (Some(c), _) if ok(&servers[c]) => c,
        (_, Some(f)) if ok(&servers[f]) => f,
        _ => match (0..servers.len()).find(|&i| ok(&servers[i])) {
            Some(i) => i,
            None => return,
        },
    };
    servers[at].sessions.push(now);
}

/// A Poisson-distributed count with mean `mean` (Knuth's method; small means).
fn poisson(mean: f64, rng: &mut SmallRng) -> u32 {
    let l = (-mean).exp();
    let (mut k, mut p) = (0u32, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebalancing_evens_out_restarts_and_none_does_not() {
        // A shorter run of the same farm: one restart at 300 s.
        let short = |policy| Setup { secs: 480, restarts: vec![(300.0, 9)], ..Setup::farm_of_ten(policy) };
        let none = run(&short(None));
        let ours = run(&short(Some(Policy::default())));
        assert_eq!(none.moves, 0);
        assert!(none.fill_at_60s[0] < 0.5 && none.settle_secs[0].is_none_or(|s| s > 120), "{none:?}");
        assert!(ours.fill_at_60s[0] >= 0.9 && ours.worst_after_restart <= 1.10, "{ours:?}");
        assert!(ours.settle_secs[0].is_some_and(|s| s <= 60), "{ours:?}");
        assert!(ours.mean_imbalance < none.mean_imbalance, "{ours:?} vs {none:?}");
    }
}
