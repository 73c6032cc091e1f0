//! The connect sequence's state machine, tested with no sockets: events in,
//! steps out.

use rttp_proto::{HostPort, ServerEntry, Status};

use super::*;

fn table(n: u8) -> FarmInfo {
    FarmInfo {
        epoch: 1,
        servers: (1..=n)
            .map(|i| ServerEntry {
                id: ServerId::new(&format!("s{i}")).unwrap(),
                addr: HostPort::new(&format!("127.0.0.{i}:7000")).unwrap(),
                status: Status::Up,
                users: 0,
                capacity: 100,
                group: Group::new(&format!("g{i}")).unwrap(),
                transport: Default::default(),
                ws: None,
            })
            .collect(),
    }
}

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

fn addr(i: u8) -> SocketAddr {
    format!("127.0.0.{i}:7000").parse().unwrap()
}

fn seq(group: &str) -> Sequence {
    Sequence::new(Strategy::Group, Some(Group::new(group).unwrap()), Limits::default(), 1)
}

#[test]
fn the_first_server_is_also_the_chosen_one() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    assert_eq!(s.start(), Cmd::Resolve);
    assert_eq!(s.on(Outcome::Resolved(Ok(vec![addr(1), addr(2)])), &mut ev), Cmd::ConnectFirst(addr(1)));
    let next = s.on(Outcome::First(Ok((id("s1"), table(3)))), &mut ev);
    assert_eq!(next, Cmd::Ready { server: id("s1"), addr: addr(1) });
    assert_eq!(
        ev,
        vec![
            Event::Resolved { addrs: vec![addr(1), addr(2)] },
            Event::ConnectedFirst { server: id("s1"), addr: addr(1) },
            Event::Table(table(3)),
            Event::Selected { server: id("s1"), addr: addr(1), stay: true },
        ]
    );
}

#[test]
fn the_chosen_server_fails_once_then_succeeds() {
    let (mut s, mut ev) = (seq("g2"), Vec::new());
    s.start();
    s.on(Outcome::Resolved(Ok(vec![addr(1)])), &mut ev);
    assert_eq!(
        s.on(Outcome::First(Ok((id("s1"), table(3)))), &mut ev),
        Cmd::ConnectChosen { server: id("s2"), addr: addr(2) }
    );
    let Cmd::Wait(d) = s.on(Outcome::Chosen(Err("refused".into())), &mut ev) else { panic!("a jittered wait") };
    assert!(d <= Limits::default().retry_delay);
    assert_eq!(s.on(Outcome::Waited, &mut ev), Cmd::ConnectChosen { server: id("s2"), addr: addr(2) });
    assert_eq!(s.on(Outcome::Chosen(Ok(())), &mut ev), Cmd::Ready { server: id("s2"), addr: addr(2) });
    assert!(ev.contains(&Event::Retry { server: id("s2"), reason: "refused".into() }));
    assert!(!ev.iter().any(|e| matches!(e, Event::Rediscover { .. })));
}

#[test]
fn it_fails_twice_and_dns_is_asked_again_without_it() {
    let (mut s, mut ev) = (seq("g2"), Vec::new());
    s.start();
    s.on(Outcome::Resolved(Ok(vec![addr(1)])), &mut ev);
    s.on(Outcome::First(Ok((id("s1"), table(3)))), &mut ev);
    s.on(Outcome::Chosen(Err("refused".into())), &mut ev);
    s.on(Outcome::Waited, &mut ev);
    assert_eq!(s.on(Outcome::Chosen(Err("refused again".into())), &mut ev), Cmd::Resolve);
    assert_eq!(ev.last(), Some(&Event::Rediscover { excluded: vec![id("s2")] }));
    // The fresh table still lists s2 as UP: it is excluded anyway.
    s.on(Outcome::Resolved(Ok(vec![addr(3)])), &mut ev);
    let next = s.on(Outcome::First(Ok((id("s3"), table(3)))), &mut ev);
    assert!(matches!(next, Cmd::Ready { .. } | Cmd::ConnectChosen { .. }));
    assert!(!matches!(next, Cmd::ConnectChosen { server, .. } if server == id("s2")));
}

#[test]
fn everything_fails_and_it_gives_up_after_the_bound() {
    let limits = Limits { max_rounds: 3, ..Limits::default() };
    let mut s = Sequence::new(Strategy::P2c, None, limits, 9);
    let mut ev = Vec::new();
    let mut cmd = s.start();
    let mut resolves = 0;
    let mut waits = Vec::new();
    for _ in 0..100 {
        cmd = match cmd {
            Cmd::Resolve => {
                resolves += 1;
                s.on(Outcome::Resolved(Err("NXDOMAIN".into())), &mut ev)
            }
            Cmd::Wait(d) => {
                waits.push(d);
                s.on(Outcome::Waited, &mut ev)
            }
            Cmd::GiveUp { .. } => break,
            other => panic!("{other:?}"),
        };
    }
    let Cmd::GiveUp { rounds, last } = cmd else { panic!("gave up") };
    assert_eq!(rounds, 3);
    assert_eq!(last, "NXDOMAIN");
    assert_eq!(resolves, 3);
    assert_eq!(waits.len(), 2);
    assert!(waits[0] <= Duration::from_millis(400) && waits[1] <= Duration::from_millis(800), "{waits:?}");
}

#[test]
fn a_failed_redirect_target_falls_back_to_the_table_then_dns() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.table = Some(table(3));
    assert_eq!(s.start_redirect(id("s3"), addr(3), id("s1")), Cmd::ConnectChosen { server: id("s3"), addr: addr(3) });
    // Not s1 (the drainer) nor s3 (just failed): s2 is all that is left.
    assert_eq!(
        s.on(Outcome::Chosen(Err("refused".into())), &mut ev),
        Cmd::ConnectChosen { server: id("s2"), addr: addr(2) }
    );
    s.on(Outcome::Chosen(Err("refused".into())), &mut ev);
    s.on(Outcome::Waited, &mut ev);
    assert_eq!(s.on(Outcome::Chosen(Err("refused".into())), &mut ev), Cmd::Resolve);
    assert!(matches!(ev.last(), Some(Event::Rediscover { .. })));
}

#[test]
fn a_lost_server_is_replaced_from_the_last_table_without_dns() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    let cmd = s.start_from_table(table(3), &[id("s1")], &mut ev);
    assert!(matches!(cmd, Cmd::ConnectChosen { server, .. } if server != id("s1")), "{cmd:?}");
    assert!(!ev.iter().any(|e| matches!(e, Event::Resolved { .. })));
}

#[test]
fn a_dead_first_address_moves_to_the_next_one() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.start();
    s.on(Outcome::Resolved(Ok(vec![addr(1), addr(2)])), &mut ev);
    assert_eq!(s.on(Outcome::First(Err("refused".into())), &mut ev), Cmd::ConnectFirst(addr(2)));
}

#[test]
fn no_up_server_in_the_table_is_a_failed_round() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.start();
    s.on(Outcome::Resolved(Ok(vec![addr(1)])), &mut ev);
    let mut t = table(2);
    for e in &mut t.servers {
        e.status = Status::Draining;
    }
    assert!(matches!(s.on(Outcome::First(Ok((id("s1"), t))), &mut ev), Cmd::Wait(_)));
}

#[test]
fn a_redirect_in_answer_to_hello_is_followed_and_bounded() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.start();
    s.on(Outcome::Resolved(Ok(vec![addr(1)])), &mut ev);
    let to = |i: u8| Outcome::Redirected { server: id(&format!("s{i}")), addr: addr(i), reason: "full".into() };
    assert_eq!(s.on(to(2), &mut ev), Cmd::ConnectChosen { server: id("s2"), addr: addr(2) });
    assert!(matches!(ev.last(), Some(Event::Redirected { server, .. }) if *server == id("s2")));
    assert_eq!(s.on(to(3), &mut ev), Cmd::ConnectChosen { server: id("s3"), addr: addr(3) });
    assert_eq!(s.on(Outcome::Chosen(Ok(())), &mut ev), Cmd::Ready { server: id("s3"), addr: addr(3) });

    // Servers that keep sending the client on: a failed round, not a loop.
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.start();
    s.on(Outcome::Resolved(Ok(vec![addr(1)])), &mut ev);
    for i in 0..MAX_REDIRECTS_PER_ROUND {
        assert!(matches!(s.on(to(2 + (i % 2) as u8), &mut ev), Cmd::ConnectChosen { .. }));
    }
    assert!(matches!(s.on(to(2), &mut ev), Cmd::Wait(_)), "the round failed and backs off");
    assert_eq!(s.on(Outcome::Waited, &mut ev), Cmd::Resolve);
}

/// Three servers: s1 and s3 speak TLS, s2 plaintext.
fn mixed() -> FarmInfo {
    let mut t = table(3);
    for e in &mut t.servers {
        e.group = Group::new("g").unwrap();
        e.transport = if e.id == id("s2") { Transport::Tcp } else { Transport::Tls };
    }
    t
}

#[test]
fn a_client_selects_only_servers_that_speak_its_transport() {
    for (t, allowed) in [(Transport::Tls, ["s1", "s3"]), (Transport::Tcp, ["s2", "s2"])] {
        let mut picked = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let mut s = Sequence::new(Strategy::Random, None, Limits::default(), seed).speaking(t);
            let mut ev = Vec::new();
            let cmd = s.start_from_table(mixed(), &[], &mut ev);
            let Cmd::ConnectChosen { server, .. } = cmd else { panic!("{cmd:?}") };
            assert!(allowed.contains(&server.as_str()), "{} client chose {server}", t.as_str());
            picked.insert(server);
        }
        assert_eq!(picked.len(), if t == Transport::Tls { 2 } else { 1 }, "every allowed server is chosen");
    }
    // Only plaintext servers left for a TLS client: none, and the reason says why.
    let mut s = Sequence::new(Strategy::Random, None, Limits::default(), 1).speaking(Transport::Tls);
    let mut ev = Vec::new();
    assert!(matches!(s.start_from_table(mixed(), &[id("s1"), id("s3")], &mut ev), Cmd::Wait(_)));
    assert!(s.last_error.contains("speaks tls"), "{}", s.last_error);
}

#[test]
fn a_redirect_to_a_server_of_another_transport_falls_back_to_the_table() {
    let mut s = Sequence::new(Strategy::Random, None, Limits::default(), 3).speaking(Transport::Tls);
    let mut ev = Vec::new();
    s.start_from_table(mixed(), &[], &mut ev);
    // On s1, told to go to the plaintext s2: it goes to s3 instead.
    let cmd = s.start_redirect(id("s2"), addr(2), id("s1"));
    assert_eq!(cmd, Cmd::ConnectChosen { server: id("s3"), addr: addr(3) });
    // The same answering a HELLO.
    let mut s = Sequence::new(Strategy::Random, None, Limits::default(), 3).speaking(Transport::Tls);
    s.start_from_table(mixed(), &[id("s3")], &mut ev);
    let redirect = Outcome::Redirected { server: id("s2"), addr: addr(2), reason: "full".into() };
    let cmd = s.on(redirect, &mut ev);
    assert_eq!(cmd, Cmd::ConnectChosen { server: id("s1"), addr: addr(1) }, "back to the TLS server, s2 refused");
}

/// A client of s1 lost it; s2, its choice, failed twice; DNS (or the
/// bootstrap list) still names only s1.
fn lost_s1_and_s2(ev: &mut Vec<Event>) -> Sequence {
    let mut s = seq("g2");
    assert_eq!(s.start_from_table(table(3), &[id("s1")], ev), Cmd::ConnectChosen { server: id("s2"), addr: addr(2) });
    s.on(Outcome::Chosen(Err("503".into())), ev);
    s.on(Outcome::Waited, ev);
    assert_eq!(s.on(Outcome::Chosen(Err("503".into())), ev), Cmd::Resolve);
    assert_eq!(s.on(Outcome::Resolved(Ok(vec![addr(1)])), ev), Cmd::ConnectFirst(addr(1)));
    s
}

#[test]
fn dns_naming_only_dead_servers_falls_back_to_the_servers_of_the_last_table() {
    let mut ev = Vec::new();
    let mut s = lost_s1_and_s2(&mut ev);
    // s1 (what DNS gave, just refused) is not tried again; s3 comes before
    // s2, which this sequence excluded.
    assert_eq!(s.on(Outcome::First(Err("refused".into())), &mut ev), Cmd::ConnectFirst(addr(3)));
    assert_eq!(ev.last(), Some(&Event::Known { addrs: vec![addr(3), addr(2)] }));
    assert_eq!(s.on(Outcome::First(Err("refused".into())), &mut ev), Cmd::ConnectFirst(addr(2)));
    // s2 answers this time (its 503 is over): selection goes on from its table.
    let next = s.on(Outcome::First(Ok((id("s2"), table(3)))), &mut ev);
    assert!(matches!(next, Cmd::ConnectChosen { .. } | Cmd::Ready { .. }), "{next:?}");
}

#[test]
fn the_fallback_is_tried_once_a_round_and_the_rounds_stay_bounded() {
    let mut ev = Vec::new();
    let mut s = lost_s1_and_s2(&mut ev);
    let mut cmd = s.on(Outcome::First(Err("refused".into())), &mut ev);
    let (mut firsts, mut resolves) = (1, 0);
    for _ in 0..100 {
        cmd = match cmd {
            Cmd::ConnectFirst(_) => {
                firsts += 1;
                s.on(Outcome::First(Err("refused".into())), &mut ev)
            }
            Cmd::Resolve => {
                resolves += 1;
                s.on(Outcome::Resolved(Ok(vec![addr(1)])), &mut ev)
            }
            Cmd::Wait(_) => s.on(Outcome::Waited, &mut ev),
            Cmd::GiveUp { .. } => break,
            other => panic!("{other:?}"),
        };
    }
    let Cmd::GiveUp { rounds, .. } = cmd else { panic!("gave up") };
    assert_eq!(rounds, Limits::default().max_rounds);
    // Round 1 was the choice from the table; every later one: DNS's s1,
    // then the table's s3 and s2, once; never a loop.
    let knowns = ev.iter().filter(|e| matches!(e, Event::Known { .. })).count() as u32;
    assert_eq!((knowns, firsts), (rounds - 1, 3 * (rounds - 1)));
    assert_eq!(resolves, rounds - 2, "round 2's look-up was made before the loop");
}

#[test]
fn a_failed_dns_look_up_falls_back_to_the_last_table_too() {
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.table = Some(table(2));
    s.start();
    let cmd = s.on(Outcome::Resolved(Err("SERVFAIL".into())), &mut ev);
    assert!(cmd == Cmd::ConnectFirst(addr(1)) || cmd == Cmd::ConnectFirst(addr(2)), "{cmd:?}");
    // With no table (a client that never reached the farm), a failed round.
    let (mut s, mut ev) = (seq("g1"), Vec::new());
    s.start();
    assert!(matches!(s.on(Outcome::Resolved(Err("SERVFAIL".into())), &mut ev), Cmd::Wait(_)));
    assert!(!ev.iter().any(|e| matches!(e, Event::Known { .. })));
}
