//! The nick owner's decisions, and the owner itself.

use super::*;

fn id(s: &str) -> ServerId {
    ServerId::new(s).unwrap()
}

fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}

fn lease(server: &str, session: &str) -> Lease {
    Lease { holder: id(server), session: Token::new(session).unwrap() }
}

fn all_alive(_: ServerId) -> bool {
    true
}

#[test]
fn the_owner_is_one_server_per_nick_and_moves_only_when_its_server_goes() {
    let servers: Vec<ServerId> = (1..=5).map(|i| id(&format!("s{i}"))).collect();
    let mut per_server = HashMap::new();
    for i in 0..1000 {
        let o = owner(&nick(&format!("n{i}")), &servers).unwrap();
        *per_server.entry(o).or_insert(0) += 1;
    }
    // Spread: every server owns some, none most.
    assert_eq!(per_server.len(), 5);
    assert!(per_server.values().all(|&n| (120..=280).contains(&n)), "{per_server:?}");
    // The order of the list does not matter; removing s3 moves only s3's nicks.
    let mut shuffled = servers.clone();
    shuffled.reverse();
    let without: Vec<ServerId> = servers.iter().copied().filter(|s| *s != id("s3")).collect();
    for i in 0..1000 {
        let n = nick(&format!("n{i}"));
        let o = owner(&n, &servers).unwrap();
        assert_eq!(owner(&n, &shuffled), Some(o));
        if o != id("s3") {
            assert_eq!(owner(&n, &without), Some(o), "{n} moved although its owner stayed");
        }
    }
    assert_eq!(owner(&nick("x"), &[]), None);
}

#[test]
fn the_first_claim_wins_and_a_second_is_refused() {
    let mut t = NickTable::default();
    let a = lease("s1", "s1-1-aaaa");
    let b = lease("s2", "s2-7-bbbb");
    assert_eq!(t.claim(nick("alice"), a, Proof::None, all_alive), Decision { granted: true, revoke: None });
    assert_eq!(t.claim(nick("alice"), b, Proof::None, all_alive), Decision { granted: false, revoke: None });
    assert!(t.claim(nick("alice"), a, Proof::None, all_alive).granted, "the holder again: idempotent");
    // Released: free again.
    t.release(nick("alice"), a);
    assert!(t.claim(nick("alice"), b, Proof::None, all_alive).granted);
    // A release of a lease that is not the current one changes nothing.
    t.release(nick("alice"), a);
    assert_eq!(t.get(&nick("alice")), Some(b));
}

#[test]
fn a_resume_token_or_a_valid_jwt_takes_over_and_revokes() {
    let mut t = NickTable::default();
    let old = lease("s1", "s1-1-aaaa");
    let new = lease("s2", "s2-7-bbbb");
    t.claim(nick("alice"), old, Proof::None, all_alive);
    // A wrong resume token proves nothing.
    let wrong = Proof::Resume(Token::new("s1-1-zzzz").unwrap());
    assert!(!t.claim(nick("alice"), new, wrong, all_alive).granted);
    let right = Proof::Resume(old.session);
    assert_eq!(t.claim(nick("alice"), new, right, all_alive), Decision { granted: true, revoke: Some(old) });
    // In token mode the person moved: the holder is replaced.
    let third = lease("s3", "s3-2-cccc");
    assert_eq!(t.claim(nick("alice"), third, Proof::Token, all_alive), Decision { granted: true, revoke: Some(new) });
}

#[test]
fn a_lease_dies_with_its_server() {
    let mut t = NickTable::default();
    t.claim(nick("alice"), lease("s1", "s1-1-a"), Proof::None, all_alive);
    t.claim(nick("bob"), lease("s2", "s2-1-b"), Proof::None, all_alive);
    // s1 is lost but not yet DOWN everywhere: a claim sees it is not alive.
    let s1_gone = |s: ServerId| s != id("s1");
    let d = t.claim(nick("alice"), lease("s3", "s3-1-c"), Proof::None, s1_gone);
    assert_eq!(d, Decision { granted: true, revoke: None }, "nothing to revoke on a dead server");
    t.holder_down(id("s2"));
    assert_eq!(t.get(&nick("bob")), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_hold_never_takes_a_nick_from_another_holder() {
    let mut t = NickTable::default();
    let fresh = lease("s2", "s2-9-new");
    t.claim(nick("alice"), fresh, Proof::None, all_alive);
    let held = lease("s1", "s1-1-old");
    assert!(!t.claim(nick("alice"), held, Proof::Hold, all_alive).granted, "the hold loses: one session");
    assert!(t.claim(nick("bob"), held, Proof::Hold, all_alive).granted, "a hold for a free nick is recorded");
    assert_eq!(Proof::from_token(Proof::Hold.to_token()), Proof::Hold);
    assert_eq!(Proof::from_token(Proof::None.to_token()), Proof::None);
    assert_eq!(Proof::from_token(Proof::Token.to_token()), Proof::Token);
    // Ownership moved away: the leases of nicks no longer owned go.
    t.keep_owned(|n| n.as_str() == "bob");
    assert_eq!((t.get(&nick("alice")), t.len()), (None, 1));
}
