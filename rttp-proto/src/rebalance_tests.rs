//! The rebalancing decision: table in, moves out, for the margin, the rate,
//! the hysteresis, receivers and the minimum stay.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;

use super::*;

fn e(id: &str, status: Status, users: u32, capacity: u32) -> ServerEntry {
    crate::select::tests::e(id, status, users, capacity, "g")
}

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

const S: Duration = Duration::from_secs(1);

/// A rebalancer past its start-up quiet time, having ticked once at `at`.
fn settled(at: Duration) -> Rebalancer {
    let mut r = Rebalancer::new(Policy::default());
    r.tick(at, &[], id("a"));
    r
}

/// Sum of the moves over `secs` seconds of ticks every 100 ms.
fn run(r: &mut Rebalancer, from: Duration, secs: u32, table: &[ServerEntry]) -> u32 {
    (1..=secs * 10).map(|i| r.tick(from + Duration::from_millis(100 * u64::from(i)), table, id("a"))).sum()
}

#[test]
fn a_balanced_farm_makes_no_moves() {
    let mut r = settled(60 * S);
    let even = [e("a", Status::Up, 1000, 2000), e("b", Status::Up, 500, 1000), e("c", Status::Up, 2500, 5000)];
    assert_eq!(run(&mut r, 60 * S, 30, &even), 0);
    // Within the margin (8 % over): nothing either.
    let near = [e("a", Status::Up, 1080, 1000), e("b", Status::Up, 960, 1000), e("c", Status::Up, 960, 1000)];
    assert_eq!(run(&mut r, 100 * S, 30, &near), 0);
    assert!(!r.shedding());
}

#[test]
fn the_share_is_by_capacity() {
    // a holds 2,000 of capacity 10,000 while b holds 500 of 1,000: a is at
    // 0.2, b at 0.5: b is the heavy one, a sheds nothing.
    let t = [e("a", Status::Up, 2000, 10_000), e("b", Status::Up, 500, 1000)];
    let mut r = settled(60 * S);
    assert_eq!(run(&mut r, 60 * S, 10, &t), 0);
    let b = balance(&t, &Group::new("g").unwrap()).unwrap();
    assert!((b.mean - 2500.0 / 11_000.0).abs() < 1e-9 && b.servers == 2);
}

#[test]
fn sheds_to_its_stop_line_at_the_rate() {
    // After a restart of c: a and b hold 1,500 each, c none.
    let t = [e("a", Status::Up, 1500, 3000), e("b", Status::Up, 1500, 3000), e("c", Status::Up, 0, 3000)];
    let mut r = settled(60 * S);
    // 2 % of 1,500 a second: 30 a second, never more.
    let first = run(&mut r, 60 * S, 1, &t);
    assert!((29..=30).contains(&first), "{first}");
    assert!(r.shedding());
    // With a table that follows the moves, it stops at its share: c is
    // still short of its own (below the mean x 0.95) when a gets there.
    let mut users = 1500u32;
    let mut moved = 0;
    for i in 0..600u64 {
        let t = [e("a", Status::Up, users, 3000), e("b", Status::Up, 1500, 3000), e("c", Status::Up, 0, 3000)];
        // c receives what a sends; b is not shedding in this test.
        let mut t = t.to_vec();
        t[2].users = moved;
        let m = r.tick(61 * S + Duration::from_millis(100 * i), &t, id("a"));
        users -= m;
        moved += m;
    }
    let share = 3000.0 / 3.0;
    assert!(f64::from(users) <= share + 1.0 && f64::from(users) >= share, "{users}");
    assert!(!r.shedding(), "stopped at its stop line");
}

#[test]
fn hysteresis_between_the_start_and_stop_lines() {
    let t = |a: u32| [e("a", Status::Up, a, 1000), e("b", Status::Up, 900, 1000), e("c", Status::Up, 900, 1000)];
    let mut r = settled(60 * S);
    // Mean 0.967 with a at 1,100: start line 1,063: shedding starts.
    assert!(run(&mut r, 60 * S, 1, &t(1100)) > 0 && r.shedding());
    // At 1,040 (mean 0.947, stop line 994): still shedding, down to the stop line.
    assert!(run(&mut r, 61 * S, 1, &t(1040)) > 0);
    // Not shedding, at 1,020 (between the lines): it does not start again.
    let mut fresh = settled(60 * S);
    assert_eq!(run(&mut fresh, 60 * S, 5, &t(1020)), 0);
}

#[test]
fn a_receiver_does_not_shed_for_min_stay() {
    let below = [e("a", Status::Up, 100, 1000), e("b", Status::Up, 900, 1000), e("c", Status::Up, 900, 1000)];
    let above = [e("a", Status::Up, 1500, 1000), e("b", Status::Up, 500, 1000), e("c", Status::Up, 500, 1000)];
    let mut r = settled(60 * S);
    assert_eq!(r.tick(70 * S, &below, id("a")), 0);
    // Overshot (a stale table): no shedding until 30 s after it was last below.
    assert_eq!(run(&mut r, 70 * S, 29, &above), 0);
    assert!(run(&mut r, 100 * S, 2, &above) > 0);
    // A server that has just started counts as a receiver too.
    let mut young = Rebalancer::new(Policy::default());
    assert_eq!(run(&mut young, Duration::ZERO, 20, &above), 0);
}

#[test]
fn nowhere_to_go_no_moves() {
    let mut r = settled(60 * S);
    // The others are all FULL, DRAINING or DOWN: nobody is a target.
    let t = [
        e("a", Status::Up, 900, 1000),
        e("b", Status::Full, 1000, 1000),
        e("c", Status::Draining, 0, 1000),
        e("d", Status::Down, 0, 1000),
    ];
    assert_eq!(run(&mut r, 60 * S, 5, &t), 0);
    // A draining server never rebalances: its drain moves everyone.
    let t = [e("a", Status::Draining, 900, 1000), e("b", Status::Up, 0, 1000)];
    assert_eq!(run(&mut r, 70 * S, 5, &t), 0);
    // A handful of users is never an imbalance.
    let t = [e("a", Status::Up, 3, 1000), e("b", Status::Up, 1, 1000), e("c", Status::Up, 1, 1000)];
    assert_eq!(run(&mut r, 80 * S, 5, &t), 0);
}

#[test]
fn targets_are_below_the_mean_and_spread_by_p2c() {
    let t = [
        e("a", Status::Up, 1500, 1000),
        e("b", Status::Up, 200, 1000),
        e("c", Status::Up, 100, 1000),
        e("d", Status::Up, 900, 1000),
        e("x", Status::Full, 1000, 1000),
    ];
    let g = Group::new("g").unwrap();
    let mut rng = SmallRng::seed_from_u64(3);
    let mut n = std::collections::HashMap::new();
    for _ in 0..1000 {
        let to = target(&t, id("a"), &g, &mut rng).unwrap();
        *n.entry(to.id.to_string()).or_insert(0) += 1;
    }
    // The mean is 0.74: d (0.9), x and a itself are never targets; the pair
    // {b, c} always picks c, the lighter.
    assert_eq!(n, [("c".to_string(), 1000)].into());
}
