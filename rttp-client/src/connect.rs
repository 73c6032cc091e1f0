//! The connect sequence as a state machine with no I/O. The driver performs
//! each [`Cmd`] and feeds back its [`Outcome`]; the machine decides what comes
//! next and reports every step as an [`Event`]:
//!
//! ```text
//! Resolve -> ConnectFirst(addr) -> Select(table)
//!   Select: same server -> Ready
//!           other       -> ConnectChosen -> Ready
//!                                        -> fail: Retry once after a jittered delay
//!                                                 -> fail: Rediscover (DNS again), excluding it
//! DNS fails, or none of its addresses answers -> the servers of the last table
//!   (once a round, in random order) stand in as first servers
//! a failed round -> exponential backoff with full jitter -> Resolve, at most `max_rounds` rounds
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rttp_proto::select::{select, Strategy};
use rttp_proto::{FarmInfo, Group, ServerEntry, ServerId, Transport};

use crate::event::Event;

/// The bounds of the sequence; every one documented and configurable.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Rounds (DNS look-ups) before giving up.
    pub max_rounds: u32,
    /// First backoff between rounds; doubles each round, full jitter.
    pub backoff_base: Duration,
    /// Longest backoff between rounds.
    pub backoff_max: Duration,
    /// Upper bound of the jittered delay before retrying the chosen server.
    pub retry_delay: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_rounds: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            retry_delay: Duration::from_millis(250),
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Resolve the service (DNS or the bootstrap list).
    Resolve,
    /// Connect to this address and send HELLO; report WELCOME's server id
    /// and the FARM_INFO that follows.
    ConnectFirst(SocketAddr),
    /// QUIT the first server (if still connected) and open the session on
    /// the chosen one.
    ConnectChosen {
        /// The server.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// Wait, then report [`Outcome::Waited`].
    Wait(Duration),
    /// Done: the session is on this server.
    Ready {
        /// The server.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
    },
    /// The bounded rounds are exhausted.
    GiveUp {
        /// Rounds tried.
        rounds: u32,
        /// The last failure.
        last: String,
    },
}

/// What happened to the last command.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Resolving gave addresses, or failed.
    Resolved(Result<Vec<SocketAddr>, String>),
    /// The first server answered (its id and table), or did not.
    First(Result<(ServerId, FarmInfo), String>),
    /// The chosen server accepted the session, or did not.
    Chosen(Result<(), String>),
    /// The server answered `HELLO` with a `REDIRECT` instead of a session.
    Redirected {
        /// Where it sends the client.
        server: ServerId,
        /// Its address.
        addr: SocketAddr,
        /// `full`, `drain`, ...
        reason: String,
    },
    /// The wait is over.
    Waited,
}

/// REDIRECTs in answer to `HELLO` followed within one round; past it the
/// round counts as failed, so two servers that send clients to each other
/// cannot hold one in a loop.
pub const MAX_REDIRECTS_PER_ROUND: u32 = 3;

#[derive(Debug, Clone)]
enum State {
    Resolving,
    First { queue: Vec<SocketAddr>, current: SocketAddr },
    Chosen { server: ServerId, addr: SocketAddr, attempt: u8 },
    Backoff,
    RetryWait { server: ServerId, addr: SocketAddr },
    Done,
}

/// The connect sequence of one client.
#[derive(Debug)]
pub struct Sequence {
    state: State,
    strategy: Strategy,
    group: Option<Group>,
    limits: Limits,
    round: u32,
    exclude: Vec<ServerId>,
    rng: SmallRng,
    last_error: String,
    /// REDIRECTs followed in this round.
    redirects: u32,
    /// A failed REDIRECT target falls back to selecting from the table.
    table_fallback: bool,
    /// The most recent table, for reconnecting without DNS.
    pub table: Option<FarmInfo>,
    /// What this client speaks: it selects and follows only servers that do.
    transport: Transport,
    /// This round already fell back to the last table's servers.
    known_tried: bool,
    /// What DNS gave this round: the fallback does not try them again.
    resolved: Vec<SocketAddr>,
}

impl Sequence {
    /// A sequence that starts with DNS.
    pub fn new(strategy: Strategy, group: Option<Group>, limits: Limits, seed: u64) -> Sequence {
        Sequence {
            state: State::Resolving,
            strategy,
            group,
            limits,
            round: 0,
            exclude: Vec::new(),
            rng: SmallRng::seed_from_u64(seed),
            last_error: String::new(),
            redirects: 0,
            table_fallback: false,
            table: None,
            transport: Transport::Tcp,
            known_tried: false,
            resolved: Vec::new(),
        }
    }

    /// A sequence for a client that speaks `t` (TLS: it never moves to a
    /// plaintext server, nor a plaintext client to a TLS one).
    pub fn speaking(mut self, t: Transport) -> Sequence {
        self.transport = t;
        self
    }

    /// Whether the last table lists `server` with another transport than ours.
    fn speaks_other(&self, server: ServerId) -> bool {
        let row = self.table.as_ref().and_then(|t| t.servers.iter().find(|e| e.id == server));
        row.is_some_and(|e| e.transport != self.transport)
    }

    /// The first command.
    pub fn start(&mut self) -> Cmd {
        self.round = 1;
        self.state = State::Resolving;
        Cmd::Resolve
    }

    /// Starts from a known table instead of DNS (after losing a server):
    /// selects excluding `lost`, and falls back to DNS if that fails.
    pub fn start_from_table(&mut self, table: FarmInfo, lost: &[ServerId], events: &mut Vec<Event>) -> Cmd {
        self.round = 1;
        self.exclude = lost.to_vec();
        self.select(table, None, events)
    }

    /// Starts by going to a named server (a REDIRECT); falls back to
    /// selection, then to DNS.
    pub fn start_redirect(&mut self, server: ServerId, addr: SocketAddr, from: ServerId) -> Cmd {
        self.round = 1;
        self.exclude = vec![from];
        self.table_fallback = true;
        if self.speaks_other(server) {
            let why = format!("REDIRECT to {server}, which does not speak {}", self.transport.as_str());
            return self.chosen_failed(server, why, &mut Vec::new());
        }
        self.state = State::Chosen { server, addr, attempt: 2 };
        Cmd::ConnectChosen { server, addr }
    }

    /// A REDIRECT (answering HELLO): followed as one during a session, with
    /// no retry of its target; if that fails, the table we have, then DNS.
    fn redirected(&mut self, server: ServerId, addr: SocketAddr, reason: String, events: &mut Vec<Event>) -> Cmd {
        events.push(Event::Redirected { server, addr, reason: reason.clone() });
        self.redirects += 1;
        if self.redirects > MAX_REDIRECTS_PER_ROUND {
            self.last_error = format!("more than {MAX_REDIRECTS_PER_ROUND} REDIRECTs (last: {reason})");
            return self.next_round();
        }
        self.table_fallback = true;
        if self.speaks_other(server) {
            let why = format!("REDIRECT to {server}, which does not speak {}", self.transport.as_str());
            return self.chosen_failed(server, why, events);
        }
        self.state = State::Chosen { server, addr, attempt: 2 };
        Cmd::ConnectChosen { server, addr }
    }

    /// The chosen server failed for the last time: it is excluded, and the
    /// client selects from the table it has (after a REDIRECT) or asks DNS again.
    fn chosen_failed(&mut self, server: ServerId, e: String, events: &mut Vec<Event>) -> Cmd {
        self.last_error = e;
        if !self.exclude.contains(&server) {
            self.exclude.push(server);
        }
        if std::mem::take(&mut self.table_fallback) {
            if let Some(t) = self.table.clone() {
                return self.select(t, None, events);
            }
        }
        events.push(Event::Rediscover { excluded: self.exclude.clone() });
        self.round += 1;
        if self.round > self.limits.max_rounds {
            return self.give_up();
        }
        self.state = State::Resolving;
        Cmd::Resolve
    }

    /// Applies an outcome; returns the next command, and pushes the events.
    pub fn on(&mut self, outcome: Outcome, events: &mut Vec<Event>) -> Cmd {
        match (std::mem::replace(&mut self.state, State::Done), outcome) {
            (State::First { .. } | State::Chosen { .. }, Outcome::Redirected { server, addr, reason }) => {
                self.redirected(server, addr, reason, events)
            }
            (State::Resolving, Outcome::Resolved(Ok(addrs))) if !addrs.is_empty() => {
                self.known_tried = false;
                self.resolved.clone_from(&addrs);
                events.push(Event::Resolved { addrs: addrs.clone() });
                let mut queue = addrs;
                let current = queue.remove(0);
                self.state = State::First { queue, current };
                Cmd::ConnectFirst(current)
            }
            (State::Resolving, Outcome::Resolved(r)) => {
                self.known_tried = false;
                self.resolved.clear();
                self.last_error = r.err().unwrap_or_else(|| "no address".into());
                self.known_or_next_round(events)
            }
            (State::First { current, .. }, Outcome::First(Ok((server, table)))) => {
                events.push(Event::ConnectedFirst { server, addr: current });
                // The table the first server sent, which the selection reads (step 3).
                events.push(Event::Table(table.clone()));
                self.select(table, Some((server, current)), events)
            }
            (State::First { mut queue, .. }, Outcome::First(Err(e))) => {
                self.last_error = e;
                if queue.is_empty() {
                    self.known_or_next_round(events)
                } else {
                    let current = queue.remove(0);
                    self.state = State::First { queue, current };
                    Cmd::ConnectFirst(current)
                }
            }
            (State::Chosen { server, addr, .. }, Outcome::Chosen(Ok(()))) => {
                self.state = State::Done;
                Cmd::Ready { server, addr }
            }
            (State::Chosen { server, addr, attempt: 1 }, Outcome::Chosen(Err(e))) => {
                events.push(Event::Retry { server, reason: e });
                self.state = State::RetryWait { server, addr };
                let d = self.limits.retry_delay.mul_f64(self.rng.random_range(0.5..1.0));
                Cmd::Wait(d)
            }
            (State::Chosen { server, .. }, Outcome::Chosen(Err(e))) => self.chosen_failed(server, e, events),
            (State::RetryWait { server, addr }, Outcome::Waited) => {
                self.state = State::Chosen { server, addr, attempt: 2 };
                Cmd::ConnectChosen { server, addr }
            }
            (State::Backoff, Outcome::Waited) => {
                self.state = State::Resolving;
                Cmd::Resolve
            }
            (state, other) => {
                // An outcome that does not fit the state is a driver bug: keep
                // the state and repeat the safest command.
                tracing::error!(?state, ?other, "connect sequence: unexpected outcome");
                self.state = state;
                Cmd::Resolve
            }
        }
    }

    fn select(&mut self, table: FarmInfo, on: Option<(ServerId, SocketAddr)>, events: &mut Vec<Event>) -> Cmd {
        // Only servers that speak what we speak are candidates.
        let usable: Vec<ServerEntry> =
            table.servers.iter().filter(|e| e.transport == self.transport).cloned().collect();
        let choice = select(&usable, self.group.as_ref(), self.strategy, &self.exclude, &mut self.rng)
            .and_then(|e| e.addr.as_str().parse::<SocketAddr>().ok().map(|a| (e.id, a)));
        self.table = Some(table);
        let Some((server, addr)) = choice else {
            self.last_error = match self.transport {
                Transport::Tcp => "no server of the farm is UP".into(),
                t => format!("no server of the farm that speaks {} is UP", t.as_str()),
            };
            return self.next_round();
        };
        let stay = on.is_some_and(|(id, _)| id == server);
        events.push(Event::Selected { server, addr, stay });
        if stay {
            let (server, addr) = on.expect("checked");
            self.state = State::Done;
            return Cmd::Ready { server, addr };
        }
        self.state = State::Chosen { server, addr, attempt: 1 };
        Cmd::ConnectChosen { server, addr }
    }

    /// Nothing DNS gave answered (or DNS failed): once a round, the servers
    /// of the last table (our transport, not just tried) stand in as first
    /// servers, in random order, those this sequence excluded last. A farm
    /// whose DNS (or bootstrap list) names only dead servers is still found
    /// through the servers it told us about, as NATS clients keep the
    /// servers an `INFO` announced. Else the round has failed.
    fn known_or_next_round(&mut self, events: &mut Vec<Event>) -> Cmd {
        if std::mem::replace(&mut self.known_tried, true) {
            return self.next_round();
        }
        let Some(table) = self.table.as_ref() else { return self.next_round() };
        let mut known: Vec<(bool, SocketAddr)> = table
            .servers
            .iter()
            .filter(|e| e.transport == self.transport)
            .filter_map(|e| Some((self.exclude.contains(&e.id), e.addr.as_str().parse::<SocketAddr>().ok()?)))
            .filter(|(_, a)| !self.resolved.contains(a))
            .collect();
        known.shuffle(&mut self.rng);
        // Stable: the shuffled order stays within each half.
        known.sort_by_key(|(excluded, _)| *excluded);
        let mut queue: Vec<SocketAddr> = known.into_iter().map(|(_, a)| a).collect();
        if queue.is_empty() {
            return self.next_round();
        }
        events.push(Event::Known { addrs: queue.clone() });
        let current = queue.remove(0);
        self.state = State::First { queue, current };
        Cmd::ConnectFirst(current)
    }

    fn next_round(&mut self) -> Cmd {
        if self.round >= self.limits.max_rounds {
            return self.give_up();
        }
        // Exponential backoff with full jitter: uniform in [0, base * 2^round].
        let cap = self.limits.backoff_base.saturating_mul(1 << self.round.min(16)).min(self.limits.backoff_max);
        self.round += 1;
        self.redirects = 0;
        self.state = State::Backoff;
        Cmd::Wait(cap.mul_f64(self.rng.random_range(0.0..1.0)))
    }

    fn give_up(&mut self) -> Cmd {
        self.state = State::Done;
        Cmd::GiveUp { rounds: self.round, last: self.last_error.clone() }
    }
}

#[cfg(test)]
#[path = "connect_tests.rs"]
mod tests;
