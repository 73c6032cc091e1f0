//! Rebalancing, decided purely: the farm table in, how many sessions this
//! server should move now out. The server's loop around it is thin: it
//! ticks, asks [`Rebalancer::tick`] for a number, picks that many sessions
//! and sends each `REDIRECT <server> <addr> rebalance` to a [`target`].
//!
//! Load is users ÷ capacity everywhere, so servers of unequal size are
//! each given their *share*: `capacity × (users in the group ÷ capacity of
//! the group)`, counted over the group's UP and FULL servers (a DRAINING or
//! DOWN server holds no share). The rules, and why:
//!
//! * **Start and stop lines (hysteresis).** A server starts shedding when it
//!   holds at least [`MIN_EXCESS`] users more than its share and either more
//!   than its share × (1 + margin), or more than its share × (1 + margin ÷ 2)
//!   while another server is *short* (below the mean × (1 − margin)). It
//!   sheds down to its share × (1 + margin ÷ 2), or down to its share while
//!   some server is still below the mean × (1 − margin ÷ 2), then stops.
//!   Between the lines it does nothing, so a farm that is nearly even makes
//!   no moves, and one user arriving at the edge never starts a move. The
//!   short rule matters for many servers: one restarted server of ten lowers
//!   the mean so little that the others sit just at the start line.
//! * **Receivers never shed.** Only servers below the mean load are targets;
//!   a server that was below the mean × (1 − margin ÷ 2) within the last
//!   `min_stay` does not shed, so no server sheds and receives at once, and a server that
//!   overshot by receiving from a stale table settles instead of passing
//!   users on.
//! * **Bounded rate.** At most `rate` × its users per second (at least one
//!   per second), so a restarted server is filled over seconds, not stormed.
//! * **Targets by power of two choices** on users ÷ capacity among the
//!   servers below the mean, drawn by capacity, so that several shedders with
//!   the same stale table still spread their users.
//! * **Minimum stay.** The server never moves a session younger than
//!   `min_stay` (it cannot tell a new arrival from a moved one, so it spares
//!   both): no user is moved twice in a row.
//!
//! `sim` compares this policy with no rebalancing on a farm of ten unequal
//! servers; its table is in the crate docs of `rttp-proto` (`sim` module).

use std::time::Duration;

use rand::Rng;

use crate::names::{Group, ServerId, Status};
use crate::select::{load, select, Strategy};
use crate::server::ServerEntry;

/// A server never starts shedding for fewer users above its share than this:
/// with a handful of users, one more or less is not an imbalance.
pub const MIN_EXCESS: f64 = 2.0;

/// The rebalancing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Shedding starts above the share × (1 + margin) and stops at the share
    /// × (1 + margin ÷ 2).
    pub margin: f64,
    /// The largest fraction of its users a server moves per second.
    pub rate: f64,
    /// Sessions younger than this are never moved; a server below the mean
    /// this recently does not shed.
    pub min_stay: Duration,
}

impl Default for Policy {
    /// 10 % margin (a settled farm is within 5 % of even; the goal is 10 %),
    /// 2 % of the users per second (a 1,500-user server sheds 450 in about
    /// 15 s), 30 s minimum stay (longer than a drain window plus a restart).
    fn default() -> Policy {
        Policy { margin: 0.10, rate: 0.02, min_stay: Duration::from_secs(30) }
    }
}

/// The balance of one group, as a table shows it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Balance {
    /// Users ÷ capacity over the group's UP and FULL servers.
    pub mean: f64,
    /// UP and FULL servers counted.
    pub servers: usize,
}

/// The balance of `group`: `None` when it has no UP or FULL server with a
/// capacity.
pub fn balance(table: &[ServerEntry], group: &Group) -> Option<Balance> {
    let live = table.iter().filter(|e| &e.group == group && matches!(e.status, Status::Up | Status::Full));
    let (mut users, mut capacity, mut servers) = (0u64, 0u64, 0usize);
    for e in live {
        users += u64::from(e.users);
        capacity += u64::from(e.capacity);
        servers += 1;
    }
    (capacity > 0).then(|| Balance { mean: users as f64 / capacity as f64, servers })
}

/// Where to move one session: power of two choices on users ÷ capacity
/// among the UP servers of `group` below its mean load, other than `own`.
pub fn target<'t, R: Rng + ?Sized>(
    table: &'t [ServerEntry],
    own: ServerId,
    group: &Group,
    rng: &mut R,
) -> Option<&'t ServerEntry> {
    let mean = balance(table, group)?.mean;
    let below: Vec<ServerEntry> =
        table.iter().filter(|e| &e.group == group && e.id != own && load(e) < mean).cloned().collect();
    let chosen = select(&below, Some(group), Strategy::P2c, &[own], rng)?;
    table.iter().find(|e| e.id == chosen.id)
}

/// One server's rebalancing state: whether it is shedding, when it was last
/// below the mean, and its unspent rate.
#[derive(Debug, Clone)]
pub struct Rebalancer {
    policy: Policy,
    shedding: bool,
    /// When this server was last below the mean (a receiver).
    below_at: Option<Duration>,
    last_tick: Option<Duration>,
    /// Moves allowed by the rate and not yet made (at most one second's).
    tokens: f64,
}

impl Rebalancer {
    /// A server that has just started: it counts as a receiver until it
    /// has been above the mean for `min_stay`.
    pub fn new(policy: Policy) -> Rebalancer {
        Rebalancer { policy, shedding: false, below_at: Some(Duration::ZERO), last_tick: None, tokens: 0.0 }
    }

    /// The settings.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether the last tick left this server shedding.
    pub fn shedding(&self) -> bool {
        self.shedding
    }

    /// How many sessions to move now. `now` is the time since any fixed
    /// origin (it only has to grow); `table` has this server's live row.
    pub fn tick(&mut self, now: Duration, table: &[ServerEntry], own: ServerId) -> u32 {
        let dt = self.last_tick.map_or(Duration::ZERO, |t| now.saturating_sub(t)).min(Duration::from_secs(1));
        self.last_tick = Some(now);
        let want = self.wanted(now, table, own);
        let Some((want, users)) = want else {
            self.shedding = false;
            self.tokens = 0.0;
            return 0;
        };
        let per_second = (self.policy.rate * f64::from(users)).max(1.0);
        self.tokens = (self.tokens + per_second * dt.as_secs_f64()).min(per_second);
        let moves = (self.tokens.floor() as u32).min(want);
        self.tokens -= f64::from(moves);
        moves
    }

    /// How many users above its stop line this server holds, and its users,
    /// when it should be shedding; `None` when it should not.
    fn wanted(&mut self, now: Duration, table: &[ServerEntry], own: ServerId) -> Option<(u32, u32)> {
        let me = table.iter().find(|e| e.id == own)?;
        if !matches!(me.status, Status::Up | Status::Full) || me.capacity == 0 {
            return None;
        }
        let b = balance(table, &me.group)?;
        // Meaningfully below the mean: noise around it does not count.
        if load(me) < b.mean * (1.0 - self.policy.margin / 2.0) {
            self.below_at = Some(now);
        }
        let receiver = self.below_at.is_some_and(|t| now.saturating_sub(t) < self.policy.min_stay);
        let somewhere = table.iter().any(|e| {
            e.id != own && e.group == me.group && e.status == Status::Up && e.users < e.capacity && load(e) < b.mean
        });
        if b.servers < 2 || receiver || !somewhere {
            return None;
        }
        // How far below the mean the lightest possible target is.
        let lowest = table
            .iter()
            .filter(|e| e.id != own && e.group == me.group && e.status == Status::Up && e.users < e.capacity)
            .map(load)
            .fold(f64::INFINITY, f64::min);
        let m = self.policy.margin;
        let share = b.mean * f64::from(me.capacity);
        let users = f64::from(me.users);
        let over = load(me) / b.mean;
        let short = lowest < b.mean * (1.0 - m);
        if !self.shedding && users - share >= MIN_EXCESS && (over > 1.0 + m || (short && over > 1.0 + m / 2.0)) {
            self.shedding = true;
        }
        if !self.shedding {
            return None;
        }
        // While a server is still short of its share, shed down to the own
        // share; otherwise down to the stop line.
        let stop = if lowest < b.mean * (1.0 - m / 2.0) { share } else { share * (1.0 + m / 2.0) };
        let want = (users - stop).floor();
        if want < 1.0 {
            return None;
        }
        Some((want as u32, me.users))
    }
}

#[cfg(test)]
#[path = "rebalance_tests.rs"]
mod tests;
