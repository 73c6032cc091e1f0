//! The membership state machine with no sockets: several instances joined
//! by an in-memory transport, on a paused clock.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rttp_proto::{Frame, Group, HostPort, Limits, PeerFrame, PeerStateMsg, ServerId, Status};
use tokio::time::Instant;

use super::{Action, Event, LinkId, Membership, Timers};

struct Node {
    m: Membership,
    id: ServerId,
    generation: u64,
    addr: SocketAddr,
    /// Every action it emitted that the transport does not carry.
    log: Vec<Action>,
}

/// An in-memory network: links are pairs of endpoints; a partition drops
/// frames, refuses dials and hides closes, as a real one would.
struct Net {
    nodes: Vec<Node>,
    ends: HashMap<(usize, LinkId), (usize, LinkId)>,
    next_link: LinkId,
    blocked: HashSet<(usize, usize)>,
}

fn msg(id: &str, generation: u64, addr: SocketAddr) -> PeerStateMsg {
    PeerStateMsg {
        id: ServerId::new(id).unwrap(),
        generation,
        client_addr: HostPort::new(&format!("{}:7000", addr.ip())).unwrap(),
        peer_addr: addr.into(),
        status: Status::Up,
        users: 0,
        capacity: 100,
        group: Group::new("g").unwrap(),
        transport: Default::default(),
        ws: None,
    }
}

impl Net {
    fn new() -> Net {
        Net { nodes: Vec::new(), ends: HashMap::new(), next_link: 0, blocked: HashSet::new() }
    }

    fn add(&mut self, id: &str, generation: u64, seeds: &[usize]) -> usize {
        let i = self.nodes.len();
        let addr: SocketAddr = format!("127.0.0.{}:7100", i + 1).parse().unwrap();
        let seeds: Vec<SocketAddr> =
            seeds.iter().map(|&s| format!("127.0.0.{}:7100", s + 1).parse().unwrap()).collect();
        let m = Membership::new(msg(id, generation, addr), &seeds, Timers::default(), Instant::now(), i as u64);
        self.nodes.push(Node { m, id: ServerId::new(id).unwrap(), generation, addr, log: Vec::new() });
        i
    }

    /// Replaces node `i` with a fresh run (a restart) at the same address.
    fn restart(&mut self, i: usize, generation: u64, seeds: &[usize]) {
        self.ends.retain(|(a, _), (b, _)| *a != i && *b != i);
        let id = self.nodes[i].id.to_string();
        let addr = self.nodes[i].addr;
        let seeds: Vec<SocketAddr> =
            seeds.iter().map(|&s| format!("127.0.0.{}:7100", s + 1).parse().unwrap()).collect();
        let m = Membership::new(msg(&id, generation, addr), &seeds, Timers::default(), Instant::now(), 99);
        self.nodes[i] = Node { m, id: ServerId::new(&id).unwrap(), generation, addr, log: Vec::new() };
    }

    fn cut(&self, a: usize, b: usize) -> bool {
        self.blocked.contains(&(a, b)) || self.blocked.contains(&(b, a))
    }

    fn deliver(&mut self, first: Vec<(usize, Action)>) {
        let mut q: VecDeque<(usize, Action)> = first.into();
        let now = Instant::now();
        while let Some((i, a)) = q.pop_front() {
            let feed = |net: &mut Net, j: usize, ev: Event, q: &mut VecDeque<(usize, Action)>| {
                for a in net.nodes[j].m.handle(ev, now) {
                    q.push_back((j, a));
                }
            };
            match a {
                Action::Dial { addr } => match self.nodes.iter().position(|n| n.addr == addr) {
                    Some(j) if !self.cut(i, j) => {
                        let (li, lj) = (self.next_link + 1, self.next_link + 2);
                        self.next_link += 2;
                        self.ends.insert((i, li), (j, lj));
                        self.ends.insert((j, lj), (i, li));
                        let (gi, gj) = (self.nodes[i].generation, self.nodes[j].generation);
                        let (idi, idj) = (self.nodes[i].id, self.nodes[j].id);
                        feed(self, j, Event::Accepted { link: lj, peer: idi, generation: gi }, &mut q);
                        feed(self, i, Event::Dialed { addr, link: li, peer: idj, generation: gj }, &mut q);
                    }
                    _ => feed(self, i, Event::DialFailed { addr }, &mut q),
                },
                Action::Send { link, frame } => {
                    let Some(&(j, lj)) = self.ends.get(&(i, link)) else { continue };
                    if self.cut(i, j) {
                        continue;
                    }
                    feed(self, j, Event::Heard { link: lj }, &mut q);
                    // Through the wire format, so that a test network catches wire bugs too.
                    let mut wire = BytesMut::from(&frame.to_bytes()[..]);
                    let frame = PeerFrame::decode_buf(&mut wire, &Limits::default()).unwrap().unwrap();
                    assert!(wire.is_empty(), "one frame, whole");
                    match frame {
                        PeerFrame::State(state) => feed(self, j, Event::State { link: lj, state: *state }, &mut q),
                        PeerFrame::Member { id, generation, peer_addr } => {
                            feed(self, j, Event::Member { id, generation, peer_addr }, &mut q)
                        }
                        _ => {}
                    }
                }
                Action::Close { link, .. } => {
                    if let Some((j, lj)) = self.ends.remove(&(i, link)) {
                        self.ends.remove(&(j, lj));
                        if !self.cut(i, j) {
                            feed(self, j, Event::LinkClosed { link: lj }, &mut q);
                        }
                    }
                }
                other => self.nodes[i].log.push(other),
            }
        }
    }

    /// Lets `d` pass, ticking every node every 50 ms.
    async fn run_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            tokio::time::advance(Duration::from_millis(50)).await;
            let now = Instant::now();
            let mut acts = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                acts.extend(n.m.handle(Event::Tick, now).into_iter().map(|a| (i, a)));
            }
            self.deliver(acts);
        }
    }

    fn status(&self, at: usize, of: &str) -> Option<Status> {
        self.nodes[at].m.table().get(&ServerId::new(of).unwrap()).map(|p| p.status)
    }

    fn linked(&self, at: usize) -> Vec<String> {
        self.nodes[at].m.linked().iter().map(|s| s.to_string()).collect()
    }
}

fn all_up(net: &Net, names: &[&str]) {
    for i in 0..net.nodes.len() {
        for n in names {
            assert_eq!(net.status(i, n), Some(Status::Up), "node {i} sees {n}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn three_servers_with_one_seed_each_form_a_full_mesh() {
    let mut net = Net::new();
    net.add("s1", 1, &[]);
    net.add("s2", 1, &[0]);
    net.add("s3", 1, &[0]);
    net.run_for(Duration::from_secs(2)).await;
    all_up(&net, &["s1", "s2", "s3"]);
    assert_eq!(net.linked(0), ["s2", "s3"]);
    assert_eq!(net.linked(1), ["s1", "s3"], "s2 learned s3 from the seed");
    assert_eq!(net.linked(2), ["s1", "s2"]);
    assert_eq!(net.ends.len(), 6, "exactly one link per pair: {:?}", net.ends);
}

#[tokio::test(start_paused = true)]
async fn simultaneous_dials_leave_exactly_one_link() {
    let mut net = Net::new();
    net.add("s1", 1, &[1]);
    net.add("s2", 1, &[0]);
    net.run_for(Duration::from_secs(3)).await;
    assert_eq!(net.linked(0), ["s2"]);
    assert_eq!(net.linked(1), ["s1"]);
    assert_eq!(net.ends.len(), 2, "one link survives: {:?}", net.ends);
    all_up(&net, &["s1", "s2"]);
    // The survivor is the link dialed by the smaller id (s1).
    let closes = net.nodes[1].log.iter().filter(|a| matches!(a, Action::PeerDown { .. })).count();
    assert_eq!(closes, 0, "resolving the duplicate never marks the peer down");
}

/// s1 and s2 linked and UP, then cut apart: nothing crosses, no dial succeeds.
async fn two_then_cut() -> Net {
    let mut net = Net::new();
    net.add("s1", 1, &[]);
    net.add("s2", 1, &[0]);
    net.run_for(Duration::from_secs(1)).await;
    all_up(&net, &["s1", "s2"]);
    net.blocked.insert((0, 1));
    net
}

#[tokio::test(start_paused = true)]
async fn a_silent_peer_is_down_after_the_timeout_and_comes_back() {
    let mut net = two_then_cut().await;
    net.run_for(Duration::from_millis(1500)).await;
    assert_eq!(net.status(0, "s2"), Some(Status::Up), "not before the 2 s timeout");
    net.run_for(Duration::from_millis(1000)).await;
    assert_eq!(net.status(0, "s2"), Some(Status::Down));
    assert!(net.nodes[0].log.contains(&Action::PeerDown { peer: ServerId::new("s2").unwrap() }));
    net.blocked.clear();
    net.run_for(Duration::from_secs(6)).await;
    all_up(&net, &["s1", "s2"]);
}

#[tokio::test(start_paused = true)]
async fn a_restart_supersedes_the_old_generation() {
    let mut net = Net::new();
    net.add("s1", 1, &[]);
    net.add("s2", 100, &[0]);
    net.run_for(Duration::from_secs(1)).await;
    // s2 dies (its links vanish without a close) and restarts as a new run.
    net.restart(1, 200, &[0]);
    net.run_for(Duration::from_secs(4)).await;
    let p = net.nodes[0].m.table().get(&ServerId::new("s2").unwrap()).map(|p| (p.generation, p.status));
    assert_eq!(p, Some((200, Status::Up)));
    assert_eq!(net.linked(0), ["s2"]);
    // A late STATE from the old run is ignored.
    let link = *net.ends.keys().find(|(n, _)| *n == 0).map(|(_, l)| l).unwrap();
    let stale = PeerStateMsg { status: Status::Draining, ..msg("s2", 100, net.nodes[1].addr) };
    let acts = net.nodes[0].m.handle(Event::State { link, state: stale }, Instant::now());
    assert!(acts.is_empty());
    assert_eq!(net.status(0, "s2"), Some(Status::Up));
}

#[tokio::test(start_paused = true)]
async fn a_partition_heals_and_the_tables_converge() {
    let mut net = Net::new();
    net.add("s1", 1, &[]);
    net.add("s2", 1, &[0]);
    net.add("s3", 1, &[0]);
    net.run_for(Duration::from_secs(2)).await;
    net.blocked.insert((0, 1));
    net.blocked.insert((0, 2));
    net.run_for(Duration::from_secs(3)).await;
    assert_eq!((net.status(0, "s2"), net.status(0, "s3")), (Some(Status::Down), Some(Status::Down)));
    assert_eq!((net.status(1, "s1"), net.status(2, "s1")), (Some(Status::Down), Some(Status::Down)));
    assert_eq!(net.status(1, "s3"), Some(Status::Up), "the majority side stays linked");
    net.blocked.clear();
    net.run_for(Duration::from_secs(8)).await;
    all_up(&net, &["s1", "s2", "s3"]);
    assert_eq!(net.ends.len(), 6);
}

#[tokio::test(start_paused = true)]
async fn user_counts_are_coalesced_and_status_changes_sent_at_once() {
    let mut net = Net::new();
    net.add("s1", 1, &[]);
    net.add("s2", 1, &[0]);
    net.run_for(Duration::from_secs(1)).await;
    let addr = net.nodes[0].addr;
    let now = Instant::now();
    let mut sent = 0;
    for users in 1..=50 {
        let acts = net.nodes[0].m.handle(Event::Local { state: PeerStateMsg { users, ..msg("s1", 1, addr) } }, now);
        sent += acts.iter().filter(|a| matches!(a, Action::Send { frame: PeerFrame::State(_), .. })).count();
    }
    assert_eq!(sent, 0, "a connect storm is not a message storm");
    net.run_for(Duration::from_millis(150)).await;
    assert_eq!(net.nodes[1].m.table().get(&ServerId::new("s1").unwrap()).map(|p| p.users), Some(50), "within 100 ms");
    let acts = net.nodes[0].m.handle(
        Event::Local { state: PeerStateMsg { users: 50, status: Status::Draining, ..msg("s1", 1, addr) } },
        Instant::now(),
    );
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Send { frame: PeerFrame::State(s), .. } if s.status == Status::Draining)));
    assert!(acts
        .iter()
        .any(|a| matches!(a, Action::Publish { push: true, table } if table.servers[0].status == Status::Draining)));
}

#[tokio::test(start_paused = true)]
async fn every_change_is_published_once_with_a_new_epoch_and_only_status_pushes() {
    let addr: SocketAddr = "127.0.0.1:7100".parse().unwrap();
    let mut m = Membership::new(msg("s1", 1, addr), &[], Timers::default(), Instant::now(), 1);
    let publishes = |acts: &[Action]| -> Vec<(u64, bool)> {
        acts.iter()
            .filter_map(|a| match a {
                Action::Publish { table, push } => Some((table.epoch, *push)),
                _ => None,
            })
            .collect()
    };
    let e0 = m.farm_info().epoch;
    let users = m.handle(Event::Local { state: PeerStateMsg { users: 3, ..msg("s1", 1, addr) } }, Instant::now());
    assert_eq!(publishes(&users), vec![(e0 + 1, false)], "users: published, pushed later");
    assert!(publishes(&m.handle(Event::Tick, Instant::now())).is_empty(), "nothing changed: nothing published");
    let drain = PeerStateMsg { users: 3, status: Status::Draining, ..msg("s1", 1, addr) };
    assert_eq!(publishes(&m.handle(Event::Local { state: drain }, Instant::now())), vec![(e0 + 2, true)]);
    assert_eq!(m.farm_info().servers[0].users, 3);
}

#[tokio::test(start_paused = true)]
async fn a_down_server_is_forgotten_after_ten_minutes_and_not_before() {
    // s2 is gone for good: every frame and every dial to it fails.
    let mut net = two_then_cut().await;
    net.run_for(Duration::from_secs(3)).await;
    assert_eq!(net.status(0, "s2"), Some(Status::Down));
    let forget = Timers::default().forget_after;
    net.run_for(forget - Duration::from_secs(5)).await;
    assert_eq!(net.status(0, "s2"), Some(Status::Down), "still listed DOWN before the bound");
    net.run_for(Duration::from_secs(10)).await;
    assert_eq!(net.status(0, "s2"), None, "forgotten after {forget:?}");
    assert!(
        net.nodes[0].m.farm_info().servers.iter().all(|e| e.id.as_str() != "s2"),
        "and gone from the published table"
    );
}

#[tokio::test(start_paused = true)]
async fn a_member_flood_is_bounded_and_addresses_nobody_answers_at_are_forgotten() {
    use super::{FORGET_AFTER_FAILURES, MAX_DIAL_TARGETS};
    let me: SocketAddr = "127.0.0.1:7100".parse().unwrap();
    let seed: SocketAddr = "127.0.0.2:7100".parse().unwrap();
    let now = Instant::now();
    let mut m = Membership::new(msg("s1", 1, me), &[seed], Timers::default(), now, 7);
    // A peer (authenticated, but bad) tells us of 10,000 members at random addresses.
    m.handle(Event::Accepted { link: 1, peer: ServerId::new("bad").unwrap(), generation: 1 }, now);
    for i in 0..10_000u32 {
        let addr = format!("10.{}.{}.{}:7100", i >> 16, (i >> 8) & 255, i & 255);
        let ev = Event::Member {
            id: ServerId::new(&format!("fake{i}")).unwrap(),
            generation: 1,
            peer_addr: HostPort::new(&addr).unwrap(),
        };
        m.handle(ev, now);
    }
    assert_eq!(m.dial_targets(), MAX_DIAL_TARGETS, "the dial set is bounded");
    // Every dial fails: after the bound, only the seed is still dialed.
    let mut t = now;
    for _ in 0..FORGET_AFTER_FAILURES + 2 {
        t += Timers::default().redial_max * 2;
        let dials: Vec<SocketAddr> = m
            .handle(Event::Tick, t)
            .into_iter()
            .filter_map(|a| if let Action::Dial { addr } = a { Some(addr) } else { None })
            .collect();
        assert!(dials.len() <= MAX_DIAL_TARGETS);
        for addr in dials {
            m.handle(Event::DialFailed { addr }, t);
        }
    }
    assert_eq!(m.dial_targets(), 1, "the seed is kept, the fake addresses forgotten");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_server_is_settled_only_once_it_reached_every_server_it_heard_of() {
    // s1 is the others' seed and has none: restarted, it knows nobody until
    // a peer dials it, and that peer names the third, which it must reach too.
    let mut net = Net::new();
    net.add("s1", 1, &[]);
    net.add("s2", 1, &[0]);
    net.add("s3", 1, &[0]);
    assert!(!net.nodes[0].m.settled(), "alone: not settled");
    net.run_for(Duration::from_secs(2)).await;
    assert!(net.nodes.iter().all(|n| n.m.settled()), "a full mesh is settled");
    net.restart(0, 2, &[]);
    assert!(!net.nodes[0].m.settled(), "restarted, alone again");
    net.blocked.insert((0, 2));
    net.run_for(Duration::from_secs(6)).await;
    assert_eq!(net.linked(0), ["s2"], "s2 came back to it; s3 cannot reach it");
    assert!(!net.nodes[0].m.settled(), "s2 named s3, which it has not reached");
    net.blocked.clear();
    net.run_for(Duration::from_secs(5)).await;
    assert_eq!(net.linked(0), ["s2", "s3"]);
    assert!(net.nodes[0].m.settled());
}
