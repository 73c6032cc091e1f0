//! The queue's bounds, its write positions and what waits on them.

use super::*;

#[test]
fn a_waiter_fires_once_every_queue_has_written_its_mark() {
    let (a, b, session) = (Outbound::new(100), Outbound::new(100), Outbound::new(100));
    a.push(Bytes::from_static(b"12345"));
    b.push(Bytes::from_static(b"123"));
    let w = Waiter::new(3, session.clone(), Bytes::from_static(b"ACK t id\r\n"));
    a.when_taken(a.position(), w.clone());
    b.when_taken(b.position(), w.clone());
    w.release();
    let acks = || session.queued_bytes();
    a.written(4);
    b.written(3);
    assert_eq!(acks(), 0, "a has one byte to go");
    a.written(1);
    assert_eq!(acks(), 10, "both written: the ACK is queued");
    // A link that closes or overflows releases what waits on it.
    let w = Waiter::new(2, session.clone(), Bytes::from_static(b"ACK u id\r\n"));
    a.push(Bytes::from_static(b"x"));
    a.when_taken(a.position(), w.clone());
    w.release();
    assert_eq!(acks(), 10);
    a.release_all();
    assert_eq!(acks(), 20);
    let w = Waiter::new(2, session.clone(), Bytes::from_static(b"ACK v id\r\n"));
    b.push(Bytes::from_static(b"y"));
    b.when_taken(b.position(), w.clone());
    w.release();
    b.overflow();
    assert_eq!(acks(), 30);
}

/// The race a room's order runs with a dying link: it pushes a `RELAY`,
/// the link ends (and releases its waiters), then the order comes to wait
/// on the `RELAY`'s position. That wait must end at once: it holds the
/// owner's own members' view of the room, and everything behind it.
#[test]
fn a_wait_that_comes_after_the_link_is_gone_is_released_at_once() {
    let (link, session) = (Outbound::new(100), Outbound::new(100));
    link.expect_confirmations();
    let mark = link.push_at(Bytes::from_static(b"RELAY one")).unwrap();
    link.release_all();
    link.when_taken(mark, Waiter::new(1, session.clone(), Bytes::from_static(b"shown")));
    assert_eq!(session.queued_bytes(), 5, "released at once, not left waiting on a dead link");
    // A live link keeps the wait until its peer confirms.
    let live = Outbound::new(100);
    live.expect_confirmations();
    let mark = live.push_at(Bytes::from_static(b"RELAY two")).unwrap();
    live.when_taken(mark, Waiter::new(1, session.clone(), Bytes::from_static(b"later")));
    assert_eq!(session.queued_bytes(), 5);
    live.confirm(mark);
    assert_eq!(session.queued_bytes(), 10);
}

#[test]
fn on_a_confirming_link_a_mark_is_taken_when_the_peer_confirms_it_not_when_written() {
    let (link, session) = (Outbound::new(100), Outbound::new(100));
    link.expect_confirmations();
    let first = link.push_at(Bytes::from_static(b"RELAY one")).unwrap();
    let second = link.push_at(Bytes::from_static(b"RELAY two")).unwrap();
    assert_eq!((first, second), (9, 18), "each frame's end in the stream");
    // Registered out of order: released in mark order all the same.
    let w2 = Waiter::new(1, session.clone(), Bytes::from_static(b"2"));
    let w1 = Waiter::new(1, session.clone(), Bytes::from_static(b"1"));
    link.when_taken(second, w2);
    link.when_taken(first, w1);
    link.written(18);
    assert_eq!(session.queued_bytes(), 0, "written is not taken on a confirming link");
    link.confirm(12);
    let mut got = VecDeque::new();
    session.drain_into(&mut got);
    assert_eq!(got, VecDeque::from([Bytes::from_static(b"1")]), "the first is taken, the second not yet");
    link.confirm(5);
    link.confirm(u64::MAX);
    session.drain_into(&mut got);
    assert_eq!(got.len(), 2, "a confirmation past the end counts as everything queued");
    // Already taken: released at once.
    let w = Waiter::new(1, session.clone(), Bytes::from_static(b"3"));
    link.when_taken(first, w);
    session.drain_into(&mut got);
    assert_eq!(got.len(), 3);
    // A queue that does not confirm ignores confirmations.
    let plain = Outbound::new(100);
    let at = plain.push_at(Bytes::from_static(b"x")).unwrap();
    plain.when_taken(at, Waiter::new(1, session.clone(), Bytes::from_static(b"4")));
    plain.confirm(1);
    session.drain_into(&mut got);
    assert_eq!(got.len(), 3, "only a write takes it");
    plain.written(1);
    session.drain_into(&mut got);
    assert_eq!(got.len(), 4);
}

#[test]
fn bounded_in_bytes_and_marks_overflow() {
    let q = Outbound::new(10);
    assert!(q.push(Bytes::from_static(b"12345")));
    assert!(q.push(Bytes::from_static(b"12345")));
    assert_eq!(q.queued_bytes(), 10);
    assert!(!q.push(Bytes::from_static(b"1")));
    assert!(q.overflowed());
    let mut v = VecDeque::new();
    q.drain_into(&mut v);
    assert!(v.is_empty(), "an overflowed queue is emptied at once");
    assert!(!q.push(Bytes::from_static(b"1")), "and stays closed");
}

#[test]
fn behind_past_the_soft_bound_until_written_back_under_it() {
    let q = Outbound::with_soft_limit(10, 100);
    assert!(q.push(Bytes::from_static(b"1234567890")));
    assert_eq!(q.behind_since(), None, "at the soft bound: not behind");
    assert!(q.push(Bytes::from_static(b"1")));
    let since = q.behind_since().expect("behind past it");
    assert!(q.push(Bytes::from(vec![b'x'; 80])), "a burst up to the hard bound is kept");
    assert_eq!(q.behind_since(), Some(since), "behind since the first byte over");
    q.written(50);
    assert_eq!(q.behind_since(), Some(since), "41 bytes queued: still behind");
    q.written(31);
    assert_eq!(q.behind_since(), None, "caught up");
    assert!(!q.push(Bytes::from(vec![b'x'; 91])), "past the hard bound: cut at once");
}

#[test]
fn consume_pops_whole_frames_and_advances_a_partial_one() {
    let mut wq: VecDeque<Bytes> = [Bytes::from_static(b"abc"), Bytes::from_static(b"defg")].into();
    assert!(consume(&mut wq, 5));
    assert_eq!(wq, VecDeque::from([Bytes::from_static(b"fg")]));
    assert!(!consume(&mut wq, 2));
    assert!(wq.is_empty());
}

#[test]
fn nothing_follows_a_final_frame() {
    let q = Outbound::new(100);
    q.push(Bytes::from_static(b"a"));
    q.push_final(Bytes::from_static(b"REDIRECT"));
    q.push(Bytes::from_static(b"FARM_INFO"));
    let mut v = VecDeque::new();
    q.drain_into(&mut v);
    assert_eq!(v, VecDeque::from([Bytes::from_static(b"a"), Bytes::from_static(b"REDIRECT")]));
    assert!(q.close_requested());
}

#[test]
fn drained_bytes_count_until_written() {
    let q = Outbound::new(10);
    assert!(q.push(Bytes::from_static(b"12345678")));
    let mut v = VecDeque::new();
    q.drain_into(&mut v);
    assert_eq!(v.len(), 1);
    assert!(!q.push(Bytes::from_static(b"123")), "unwritten bytes still count");
    let q = Outbound::new(10);
    q.push(Bytes::from_static(b"12345678"));
    q.drain_into(&mut v);
    q.written(8);
    assert!(q.push(Bytes::from_static(b"123")));
}

/// A queue with a soft bound of 10 and a hard one of 100, and a replay budget.
fn replaying(per_session: usize, total: usize) -> (Arc<Outbound>, Arc<ReplayBudget>) {
    (Outbound::with_soft_limit(10, 100), Arc::new(ReplayBudget::new(per_session, total)))
}

#[test]
fn a_replay_is_charged_to_its_budget_not_to_the_session_s_bounds() {
    let (q, budget) = replaying(10_000, 10_000);
    for _ in 0..5 {
        assert!(q.push_replay(Bytes::from(vec![b'r'; 60]), &budget), "300 bytes of replay past a hard bound of 100");
    }
    assert_eq!(budget.queued(), 5 * (60 + REF_COST));
    assert!(q.push(Bytes::from(vec![b'l'; 90])), "the session's own bound still has room for live frames");
    assert!(!q.push(Bytes::from(vec![b'l'; 11])), "and is still enforced on them");
    assert!(q.overflowed());
    assert_eq!(budget.queued(), 0, "an overflowed queue gives its replay back");
}

#[test]
fn written_replay_frames_go_back_to_the_budget_a_partial_one_by_its_bytes() {
    let (q, budget) = replaying(10_000, 10_000);
    q.push(Bytes::from_static(b"live1"));
    q.push_replay(Bytes::from(vec![b'r'; 100]), &budget);
    q.push(Bytes::from_static(b"live2"));
    q.push_replay(Bytes::from(vec![b'r'; 100]), &budget);
    let mut v = VecDeque::new();
    q.drain_into(&mut v);
    q.written(5 + 40);
    assert_eq!(budget.queued(), 60 + REF_COST + 100 + REF_COST, "40 bytes of the first replayed frame written");
    q.written(60 + 5 + 50);
    assert_eq!(budget.queued(), 50 + REF_COST, "the first frame done, half of the second");
    q.written(50);
    assert_eq!(budget.queued(), 0);
    assert_eq!(q.queued_bytes(), 0);
    q.push_replay(Bytes::from(vec![b'r'; 100]), &budget);
    drop(q);
    assert_eq!(budget.queued(), 0, "a dropped queue gives its replay back");
}

#[test]
fn each_session_and_all_together_are_bounded() {
    let (a, budget) = replaying(2 * (100 + REF_COST), 3 * (100 + REF_COST));
    let b = Outbound::with_soft_limit(10, 100);
    assert!(a.push_replay(Bytes::from(vec![b'r'; 100]), &budget));
    assert!(a.push_replay(Bytes::from(vec![b'r'; 100]), &budget));
    assert!(!a.push_replay(Bytes::from(vec![b'r'; 100]), &budget), "past one session's share: a slow consumer");
    assert!(a.overflowed());
    assert!(b.push_replay(Bytes::from(vec![b'r'; 100]), &budget));
    assert!(b.push_replay(Bytes::from(vec![b'r'; 100]), &budget));
    let c = Outbound::with_soft_limit(10, 100);
    assert!(c.push_replay(Bytes::from(vec![b'r'; 100]), &budget));
    assert!(!c.push_replay(Bytes::from(vec![b'r'; 100]), &budget), "past what all sessions may hold");
    assert_eq!(budget.queued(), 2 * (100 + REF_COST), "b's two frames; a and c gave theirs back");
}

#[test]
fn behind_only_by_a_replay_the_clock_restarts_with_each_soft_bound_read() {
    let (q, budget) = replaying(1 << 20, 1 << 20);
    for _ in 0..10 {
        q.push_replay(Bytes::from(vec![b'r'; 100]), &budget);
    }
    let since = q.behind_since().expect("1,000 bytes queued: behind");
    let mut v = VecDeque::new();
    q.drain_into(&mut v);
    std::thread::sleep(std::time::Duration::from_millis(2));
    q.written(9);
    assert_eq!(q.behind_since(), Some(since), "less than a soft bound read: the clock runs on");
    q.written(1);
    let moved = q.behind_since().expect("still behind");
    assert!(moved > since, "a soft bound read: the clock starts again");
    // Live frames past the soft bound behind the replay: a reader too slow
    // for the room, whose clock no longer moves.
    assert!(q.push(Bytes::from(vec![b'l'; 20])));
    std::thread::sleep(std::time::Duration::from_millis(2));
    q.written(50);
    assert_eq!(q.behind_since(), Some(moved), "behind by its own frames: the clock runs on");
}
