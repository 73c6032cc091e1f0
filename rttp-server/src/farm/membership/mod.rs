//! Membership as a state machine with no I/O: [`Membership::handle`] takes
//! an event and the time, and returns actions for the driver (dial, send,
//! close, tell the rooms, publish the table). It is the one owner of the
//! farm table and of its epoch: every change leaves as one
//! [`Action::Publish`], which the driver hands to sessions, farm-dns's
//! watchers and metrics. Silence is judged by [`Detector`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rttp_proto::{FarmInfo, PeerFrame, PeerStateMsg, ServerEntry, ServerId, Status};
use tokio::time::Instant;

pub use self::types::{Action, Event, LinkId, PeerState, Timers};
use crate::farm::detector::Detector;

#[cfg(test)]
mod tests;
mod types;

#[derive(Debug, Clone)]
struct Link {
    peer: ServerId,
    generation: u64,
}

/// What changed in the table during one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Change {
    None,
    /// Only numbers (users): publish, push later.
    Quiet,
    /// Membership or status: publish and push.
    Loud,
}

/// Most addresses dialed: seeds plus what peers told us. More `MEMBER`s
/// are ignored, so a peer cannot make us dial the world.
pub const MAX_DIAL_TARGETS: usize = 256;
/// Failed dials in a row after which a learned address (not a seed) of a
/// server that is not in the table (it never answered) is forgotten.
pub const FORGET_AFTER_FAILURES: u32 = 8;

#[derive(Debug, Clone)]
struct Target {
    next_dial: Instant,
    backoff: Duration,
    in_flight: bool,
    /// Who answers there, once known.
    peer: Option<ServerId>,
    /// Given on the command line: dialed for ever.
    seed: bool,
    /// Failed dials since the last success.
    failures: u32,
}

impl Target {
    fn new(now: Instant, backoff: Duration, peer: Option<ServerId>, seed: bool) -> Target {
        Target { next_dial: now, backoff, in_flight: false, peer, seed, failures: 0 }
    }
}

/// The membership state machine of one server.
#[derive(Debug)]
pub struct Membership {
    me: PeerStateMsg,
    timers: Timers,
    table: HashMap<ServerId, PeerState>,
    epoch: u64,
    change: Change,
    detector: Detector,
    links: HashMap<LinkId, Link>,
    by_peer: HashMap<ServerId, LinkId>,
    targets: HashMap<SocketAddr, Target>,
    rng: SmallRng,
    last_beat: Instant,
    state_due: Option<Instant>,
}

impl Membership {
    /// A server that knows only itself and its seeds.
    pub fn new(me: PeerStateMsg, seeds: &[SocketAddr], timers: Timers, now: Instant, rng_seed: u64) -> Membership {
        let table = HashMap::from([(me.id, PeerState::from_msg(&me, now))]);
        let own_peer = me.peer_addr.as_str().parse::<SocketAddr>().ok();
        let targets = seeds
            .iter()
            .filter(|s| Some(**s) != own_peer)
            .map(|s| (*s, Target::new(now, timers.redial_min, None, true)))
            .collect();
        Membership {
            me,
            timers,
            table,
            epoch: 1,
            change: Change::None,
            detector: Detector::new(timers.down_after),
            links: HashMap::new(),
            by_peer: HashMap::new(),
            targets,
            rng: SmallRng::seed_from_u64(rng_seed),
            last_beat: now,
            state_due: None,
        }
    }

    /// The table as this server knows it, itself included.
    pub fn table(&self) -> &HashMap<ServerId, PeerState> {
        &self.table
    }

    /// The table as clients see it: every row, sorted by id, with the epoch.
    pub fn farm_info(&self) -> FarmInfo {
        let mut servers: Vec<ServerEntry> = self.table.values().map(PeerState::entry).collect();
        servers.sort_by_key(|e| e.id);
        FarmInfo { epoch: self.epoch, servers }
    }

    fn changed(&mut self, c: Change) {
        self.change = self.change.max(c);
    }

    /// The peer an established link belongs to.
    pub fn link_peer(&self, link: LinkId) -> Option<ServerId> {
        self.links.get(&link).map(|l| l.peer)
    }

    /// When coalesced user counts are due to go out, if they are.
    pub fn state_due(&self) -> Option<Instant> {
        self.state_due
    }

    /// How many peers have a live link (no allocation: the driver asks after every event).
    pub fn linked_count(&self) -> usize {
        self.by_peer.len()
    }

    /// Whether this server has reached every server it knows of: at least
    /// one link, and a link to every dial target (seeds and servers peers
    /// named). A just-started server holds the rooms it owns until then.
    pub fn settled(&self) -> bool {
        !self.by_peer.is_empty() && self.targets.values().all(|t| t.peer.is_some_and(|p| self.by_peer.contains_key(&p)))
    }

    /// Peers with a live link.
    pub fn linked(&self) -> Vec<ServerId> {
        let mut v: Vec<ServerId> = self.by_peer.keys().copied().collect();
        v.sort();
        v
    }

    /// Applies one event.
    pub fn handle(&mut self, ev: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        self.apply(ev, now, &mut out);
        match std::mem::replace(&mut self.change, Change::None) {
            Change::None => {}
            c => {
                // The one place the epoch moves: once per published change.
                self.epoch += 1;
                out.push(Action::Publish { table: self.farm_info(), push: c == Change::Loud });
            }
        }
        out
    }

    fn apply(&mut self, ev: Event, now: Instant, out: &mut Vec<Action>) {
        match ev {
            Event::Tick => self.tick(now, out),
            Event::Dialed { addr, link, peer, generation } => {
                if let Some(t) = self.targets.get_mut(&addr) {
                    t.in_flight = false;
                    t.peer = Some(peer);
                    t.backoff = self.timers.redial_min;
                    t.failures = 0;
                }
                self.link_ready(link, peer, generation, true, now, out);
            }
            Event::Accepted { link, peer, generation } => self.link_ready(link, peer, generation, false, now, out),
            Event::DialFailed { addr } => {
                let jitter = self.rng.random_range(0.5..1.0);
                let mut give_up = false;
                if let Some(t) = self.targets.get_mut(&addr) {
                    t.in_flight = false;
                    t.next_dial = now + t.backoff.mul_f64(jitter);
                    t.backoff = (t.backoff * 2).min(self.timers.redial_max);
                    t.failures += 1;
                    // A server in the table is dialed until its row is
                    // forgotten; an address nobody ever answered at is not.
                    let known = t.peer.is_some_and(|p| self.table.contains_key(&p));
                    give_up = !t.seed && !known && t.failures >= FORGET_AFTER_FAILURES;
                }
                if give_up {
                    self.targets.remove(&addr);
                }
            }
            Event::LinkClosed { link } => self.lose_link(link, now, out),
            Event::Heard { link } => {
                self.detector.heard(link, now);
                if let Some(p) = self.links.get(&link).and_then(|l| self.table.get_mut(&l.peer)) {
                    p.last_heard = now;
                }
            }
            Event::State { link, state } => self.peer_state(link, state, now, out),
            Event::Member { id, generation, peer_addr } => {
                let known_newer = self.table.get(&id).is_some_and(|p| p.generation > generation);
                if id != self.me.id && !self.by_peer.contains_key(&id) && !known_newer {
                    if let Ok(addr) = peer_addr.as_str().parse::<SocketAddr>() {
                        self.add_target(addr, id, now);
                    }
                }
            }
            Event::Local { state } => {
                let status_changed = state.status != self.me.status;
                let users_changed = state.users != self.me.users;
                self.me = state;
                self.table.insert(self.me.id, PeerState::from_msg(&self.me, now));
                if status_changed {
                    self.broadcast_state(out);
                    self.changed(Change::Loud);
                } else if users_changed {
                    self.changed(Change::Quiet);
                    if self.state_due.is_none() {
                        self.state_due = Some(now + self.timers.coalesce);
                    }
                }
            }
        }
    }

    fn broadcast_state(&mut self, out: &mut Vec<Action>) {
        self.state_due = None;
        for &link in self.by_peer.values() {
            out.push(Action::Send { link, frame: PeerFrame::State(Box::new(self.me.clone())) });
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.state_due.is_some_and(|t| now >= t) {
            self.broadcast_state(out);
        }
        if now >= self.last_beat + self.timers.heartbeat {
            self.last_beat = now;
            for &link in self.by_peer.values() {
                out.push(Action::Send { link, frame: PeerFrame::Beat });
            }
        }
        for link in self.detector.suspects(now) {
            out.push(Action::Close { link, reason: "heartbeat timeout" });
            self.lose_link(link, now, out);
        }
        for (addr, t) in self.targets.iter_mut() {
            let linked = t.peer.is_some_and(|p| self.by_peer.contains_key(&p));
            if !linked && !t.in_flight && now >= t.next_dial {
                t.in_flight = true;
                out.push(Action::Dial { addr: *addr });
            }
        }
        let forget = self.timers.forget_after;
        let before = self.table.len();
        self.table
            .retain(|id, p| *id == self.me.id || p.status != Status::Down || now.duration_since(p.last_heard) < forget);
        if self.table.len() != before {
            self.changed(Change::Loud);
            // A forgotten server's learned address is forgotten too.
            let table = &self.table;
            self.targets.retain(|_, t| t.seed || t.peer.is_none_or(|p| table.contains_key(&p)));
        }
    }

    fn link_ready(
        &mut self,
        link: LinkId,
        peer: ServerId,
        generation: u64,
        dialed: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        if peer == self.me.id {
            out.push(Action::Close { link, reason: "a link to ourselves" });
            // A seed that is ourselves under another address: stop dialing it.
            self.targets.retain(|_, t| t.peer != Some(peer));
            return;
        }
        if self.table.get(&peer).is_some_and(|p| p.generation > generation) {
            out.push(Action::Close { link, reason: "stale generation" });
            return;
        }
        let new = Link { peer, generation };
        if let Some(&old) = self.by_peer.get(&peer) {
            let old_link = self.links[&old].clone();
            // Same run on both sides: the link dialed by the smaller id survives.
            let new_wins = generation > old_link.generation
                || (generation == old_link.generation && dialed == (self.me.id < peer));
            if !new_wins {
                out.push(Action::Close { link, reason: "duplicate link" });
                return;
            }
            out.push(Action::Close { link: old, reason: "replaced by a newer link" });
            self.links.remove(&old);
            self.detector.forget(old);
            if generation > old_link.generation {
                // A restart: the old run's members are gone.
                out.push(Action::PeerDown { peer });
            }
        }
        self.links.insert(link, new);
        self.by_peer.insert(peer, link);
        self.detector.watch(link, now);
        out.push(Action::LinkUp { link, peer });
        out.push(Action::Send { link, frame: PeerFrame::State(Box::new(self.me.clone())) });
        for p in self.table.values() {
            if p.id != self.me.id && p.id != peer && p.status != Status::Down {
                out.push(Action::Send {
                    link,
                    frame: PeerFrame::Member { id: p.id, generation: p.generation, peer_addr: p.peer_addr },
                });
            }
        }
    }

    /// Dials `addr` (where `peer` answers) from now on, unless the dial set
    /// is full ([`MAX_DIAL_TARGETS`]); the target, if dialed.
    fn add_target(&mut self, addr: SocketAddr, peer: ServerId, now: Instant) -> Option<&mut Target> {
        let full = self.targets.len() >= MAX_DIAL_TARGETS;
        let min = self.timers.redial_min;
        let t = match self.targets.entry(addr) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(_) if full => {
                tracing::debug!(%addr, %peer, "dial set full: address ignored");
                return None;
            }
            std::collections::hash_map::Entry::Vacant(v) => v.insert(Target::new(now, min, Some(peer), false)),
        };
        t.peer = Some(peer);
        Some(t)
    }

    /// The number of addresses dialed (seeds and learned).
    pub fn dial_targets(&self) -> usize {
        self.targets.len()
    }

    fn lose_link(&mut self, link: LinkId, now: Instant, out: &mut Vec<Action>) {
        let Some(l) = self.links.remove(&link) else { return };
        self.detector.forget(link);
        if self.by_peer.get(&l.peer) != Some(&link) {
            return;
        }
        self.by_peer.remove(&l.peer);
        let mut redial = None;
        if let Some(p) = self.table.get_mut(&l.peer) {
            p.status = Status::Down;
            p.last_heard = now;
            redial = p.peer_addr.as_str().parse::<SocketAddr>().ok();
        }
        out.push(Action::PeerDown { peer: l.peer });
        self.changed(Change::Loud);
        if let Some(addr) = redial {
            let jitter = self.rng.random_range(0.5..1.0);
            if let Some(t) = self.add_target(addr, l.peer, now) {
                if !t.in_flight {
                    t.next_dial = now + t.backoff.mul_f64(jitter);
                }
            }
        }
    }

    fn peer_state(&mut self, link: LinkId, st: PeerStateMsg, now: Instant, out: &mut Vec<Action>) {
        // A peer speaks only for itself, and only on its live link.
        if self.links.get(&link).map(|l| l.peer) != Some(st.id) || self.by_peer.get(&st.id) != Some(&link) {
            return;
        }
        let (changed, new_member) = match self.table.get(&st.id) {
            Some(p) if p.generation > st.generation => return,
            Some(p) => (
                p.status != st.status
                    || p.group != st.group
                    || p.client_addr != st.client_addr
                    || p.generation != st.generation,
                p.generation != st.generation || p.status == Status::Down,
            ),
            None => (true, true),
        };
        if new_member {
            // Two servers joining through us at once would otherwise miss each
            // other: tell every other peer about the newcomer.
            let frame = PeerFrame::Member { id: st.id, generation: st.generation, peer_addr: st.peer_addr };
            for (&peer, &other) in &self.by_peer {
                if peer != st.id {
                    out.push(Action::Send { link: other, frame: frame.clone() });
                }
            }
        }
        let users_changed = self.table.get(&st.id).is_none_or(|p| p.users != st.users || p.capacity != st.capacity);
        self.table.insert(st.id, PeerState::from_msg(&st, now));
        if let Ok(addr) = st.peer_addr.as_str().parse::<SocketAddr>() {
            self.add_target(addr, st.id, now);
        }
        if changed {
            self.changed(Change::Loud);
        } else if users_changed {
            self.changed(Change::Quiet);
        }
    }
}
