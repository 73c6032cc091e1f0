//! Choosing a server from the farm table: pure functions of (table, own
//! group, excluded servers, random source). The client uses them to pick its
//! serving server; a server uses them to pick a REDIRECT target. They live
//! here, beside the table type, so that both sides share one implementation
//! without the server depending on the client's DNS stack.

use std::fmt;
use std::str::FromStr;

use rand::Rng;

use crate::names::{Group, ServerId, Status};
use crate::server::ServerEntry;

/// How to choose among the UP servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Uniformly at random.
    Random,
    /// The lowest users/capacity (ties broken at random).
    LeastUsers,
    /// At random within the own group; any UP server if the group has none.
    Group,
    /// Power of two choices: two servers drawn at random, weighted by
    /// capacity, from the own group if it has UP servers (else from all);
    /// keep the one with the lower users/capacity.
    #[default]
    P2c,
}

impl Strategy {
    /// Every strategy, for help texts and tests.
    pub const ALL: [Strategy; 4] = [Strategy::P2c, Strategy::Random, Strategy::LeastUsers, Strategy::Group];

    /// The name used on command lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Random => "random",
            Strategy::LeastUsers => "least-users",
            Strategy::Group => "group",
            Strategy::P2c => "p2c",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Strategy, String> {
        Strategy::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| format!("unknown strategy {s:?}: use p2c, random, least-users or group"))
    }
}

/// users/capacity; a server with no capacity counts as infinitely loaded.
pub fn load(e: &ServerEntry) -> f64 {
    if e.capacity == 0 {
        f64::INFINITY
    } else {
        f64::from(e.users) / f64::from(e.capacity)
    }
}

/// Chooses a server: only UP servers not in `exclude` are candidates
/// (FULL, DRAINING and DOWN are never chosen). `None` if there is none.
pub fn select<'t, R: Rng + ?Sized>(
    table: &'t [ServerEntry],
    own_group: Option<&Group>,
    strategy: Strategy,
    exclude: &[ServerId],
    rng: &mut R,
) -> Option<&'t ServerEntry> {
    let up: Vec<&ServerEntry> =
        table.iter().filter(|e| e.status == Status::Up && e.capacity > e.users && !exclude.contains(&e.id)).collect();
    if up.is_empty() {
        return None;
    }
    let in_group: Vec<&ServerEntry> = match own_group {
        Some(g) => up.iter().copied().filter(|e| e.group == *g).collect(),
        None => Vec::new(),
    };
    let pool = if in_group.is_empty() { &up } else { &in_group };
    Some(match strategy {
        Strategy::Random => up[rng.random_range(0..up.len())],
        Strategy::Group => pool[rng.random_range(0..pool.len())],
        Strategy::LeastUsers => {
            let min = up.iter().map(|e| load(e)).fold(f64::INFINITY, f64::min);
            let best: Vec<&&ServerEntry> = up.iter().filter(|e| load(e) <= min).collect();
            best[rng.random_range(0..best.len())]
        }
        Strategy::P2c => {
            let a = weighted(pool, rng);
            let b = if pool.len() > 1 {
                // Draw the second from the others, so the two are distinct.
                let rest: Vec<&ServerEntry> = pool.iter().copied().filter(|e| e.id != a.id).collect();
                weighted(&rest, rng)
            } else {
                a
            };
            if load(b) < load(a) {
                b
            } else {
                a
            }
        }
    })
}

/// One server drawn with probability proportional to its capacity.
fn weighted<'t, R: Rng + ?Sized>(pool: &[&'t ServerEntry], rng: &mut R) -> &'t ServerEntry {
    let total: u64 = pool.iter().map(|e| u64::from(e.capacity)).sum();
    if total == 0 {
        return pool[rng.random_range(0..pool.len())];
    }
    let mut x = rng.random_range(0..total);
    for e in pool {
        if x < u64::from(e.capacity) {
            return e;
        }
        x -= u64::from(e.capacity);
    }
    pool[pool.len() - 1]
}

#[cfg(test)]
pub(crate) mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;
    use crate::names::HostPort;

    /// A table row on 127.0.0.1:7000 (also used by the rebalancing tests).
    pub(crate) fn e(id: &str, status: Status, users: u32, capacity: u32, group: &str) -> ServerEntry {
        ServerEntry {
            id: ServerId::new(id).unwrap(),
            addr: HostPort::new("127.0.0.1:7000").unwrap(),
            status,
            users,
            capacity,
            group: Group::new(group).unwrap(),
            transport: Default::default(),
            ws: None,
        }
    }

    fn pick(t: &[ServerEntry], g: Option<&str>, s: Strategy, n: usize) -> std::collections::HashMap<String, usize> {
        let mut rng = SmallRng::seed_from_u64(7);
        let g = g.map(|g| Group::new(g).unwrap());
        let mut out = std::collections::HashMap::new();
        for _ in 0..n {
            let c = select(t, g.as_ref(), s, &[], &mut rng).unwrap();
            *out.entry(c.id.to_string()).or_insert(0) += 1;
        }
        out
    }

    #[test]
    fn never_full_draining_down_or_excluded() {
        let t = vec![
            e("full", Status::Full, 10, 10, "g"),
            e("drain", Status::Draining, 0, 10, "g"),
            e("down", Status::Down, 0, 10, "g"),
            e("at-cap", Status::Up, 10, 10, "g"),
            e("ok", Status::Up, 5, 10, "g"),
            e("gone", Status::Up, 0, 10, "g"),
        ];
        let mut rng = SmallRng::seed_from_u64(1);
        for s in Strategy::ALL {
            for _ in 0..200 {
                let c = select(&t, None, s, &[ServerId::new("gone").unwrap()], &mut rng).unwrap();
                assert_eq!(c.id.as_str(), "ok", "{s}");
            }
        }
        assert!(select(&t[..4], None, Strategy::P2c, &[], &mut rng).is_none());
    }

    #[test]
    fn least_users_takes_the_lowest_ratio() {
        let t =
            vec![e("a", Status::Up, 50, 100, "g"), e("b", Status::Up, 40, 50, "g"), e("c", Status::Up, 10, 100, "g")];
        assert_eq!(pick(&t, None, Strategy::LeastUsers, 50), [("c".to_string(), 50)].into());
    }

    #[test]
    fn group_prefers_its_own_and_falls_back() {
        let t = vec![e("a", Status::Up, 0, 10, "eu"), e("b", Status::Up, 0, 10, "us"), e("c", Status::Up, 0, 10, "us")];
        assert_eq!(pick(&t, Some("eu"), Strategy::Group, 100), [("a".to_string(), 100)].into());
        let us = pick(&t, Some("us"), Strategy::Group, 1000);
        assert!(us.get("b").is_some_and(|&n| n > 400) && us.get("c").is_some_and(|&n| n > 400), "{us:?}");
        assert_eq!(pick(&t, Some("asia"), Strategy::Group, 300).len(), 3, "falls back to every UP server");
    }

    #[test]
    fn p2c_keeps_the_lighter_of_two_in_the_own_group() {
        let t = vec![
            e("a", Status::Up, 90, 100, "eu"),
            e("b", Status::Up, 10, 100, "eu"),
            e("c", Status::Up, 0, 100, "us"),
        ];
        // Within eu, a pair is always {a, b}: b wins every time; c (us) never.
        assert_eq!(pick(&t, Some("eu"), Strategy::P2c, 200), [("b".to_string(), 200)].into());
        // With no group, the lightest is chosen most, the heaviest never.
        let any = pick(&t, None, Strategy::P2c, 3000);
        assert!(!any.contains_key("a") && any["c"] > any["b"], "{any:?}");
    }

    #[test]
    fn random_spreads_evenly() {
        let t = vec![e("a", Status::Up, 0, 10, "g"), e("b", Status::Up, 9, 10, "g")];
        let r = pick(&t, None, Strategy::Random, 2000);
        assert!(r["a"] > 800 && r["b"] > 800, "{r:?}");
        assert_eq!("least-users".parse::<Strategy>(), Ok(Strategy::LeastUsers));
        assert!("best".parse::<Strategy>().is_err());
    }
}
