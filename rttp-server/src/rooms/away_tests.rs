//! Quiet moves: what the members of a room are told when another server's
//! members are lost with it, come back within the presence grace, or not.

use std::time::{Duration, Instant};

use super::order_tests::sent;
use super::tests::{frames, member, with_peer};
use super::*;

fn nick(n: &str) -> Nick {
    Nick::new(n).unwrap()
}

/// The membership notices among `frames`, as `JOINED bob` / `PARTED bob`.
fn notices(frames: Vec<String>) -> Vec<String> {
    frames
        .iter()
        .filter(|f| f.starts_with("JOINED ") || f.starts_with("PARTED "))
        .map(|f| {
            let w: Vec<&str> = f.split_whitespace().collect();
            format!("{} {}", w[0], w[2])
        })
        .collect()
}

/// `alice` here and `bob` on s9 in `#r`, with a second peer s8 linked;
/// alice's notices so far are read.
fn bob_on_s9(grace: Duration) -> (Rooms, Room, Member) {
    let (mut r, room, s9, _link) = with_peer(100);
    r.set_presence_grace(grace);
    r.link_up(ServerId::new("s8").unwrap(), Outbound::new(1 << 20));
    let alice = member(1, "alice");
    r.join(&room, alice.clone(), None);
    r.remote_joined(s9, room, nick("bob"), true);
    assert_eq!(notices(frames(&alice)), ["JOINED alice", "JOINED bob"]);
    (r, room, alice)
}

#[test]
fn a_member_back_within_the_grace_is_announced_neither_gone_nor_back() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    r.peer_down(ServerId::new("s9").unwrap());
    assert_eq!(notices(frames(&alice)), Vec::<String>::new(), "no PARTED while bob may be on his way");
    // bob comes back here: his own JOINED, and nothing to alice.
    let bob = member(2, "bob");
    r.join(&room, bob.clone(), None);
    assert_eq!(notices(frames(&bob)), ["JOINED bob"]);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
    assert_eq!(r.members(&room), [nick("alice"), nick("bob")], "listed again");
    // Past the grace he is still here: nothing is announced.
    r.tick(Instant::now() + PRESENCE_GRACE * 2);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
}

#[test]
fn a_member_back_on_another_peer_is_silent_too() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    r.peer_down(ServerId::new("s9").unwrap());
    r.remote_joined(ServerId::new("s8").unwrap(), room, nick("bob"), true);
    r.tick(Instant::now() + PRESENCE_GRACE * 2);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
}

#[test]
fn a_member_not_back_by_the_end_of_the_grace_is_announced_gone_once() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    r.peer_down(ServerId::new("s9").unwrap());
    r.tick(Instant::now() + PRESENCE_GRACE / 2);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new(), "within the grace");
    assert_eq!(r.members(&room), [nick("alice")], "away is not listed");
    r.tick(Instant::now() + PRESENCE_GRACE + Duration::from_secs(1));
    assert_eq!(notices(frames(&alice)), ["PARTED bob"]);
    r.tick(Instant::now() + PRESENCE_GRACE * 3);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new(), "once");
    // Joining later is a join like any.
    r.remote_joined(ServerId::new("s8").unwrap(), room, nick("bob"), true);
    assert_eq!(notices(frames(&alice)), ["JOINED bob"]);
}

#[test]
fn with_no_grace_a_lost_member_is_announced_at_once() {
    let (r, _room, alice) = bob_on_s9(Duration::ZERO);
    r.peer_down(ServerId::new("s9").unwrap());
    assert_eq!(notices(frames(&alice)), ["PARTED bob"]);
}

#[test]
fn a_member_still_here_through_another_session_is_never_announced_gone() {
    // bob moved to s8 before s9's loss was seen here: both list him.
    for grace in [Duration::ZERO, PRESENCE_GRACE] {
        let (r, room, alice) = bob_on_s9(grace);
        r.remote_joined(ServerId::new("s8").unwrap(), room, nick("bob"), true);
        frames(&alice);
        r.peer_down(ServerId::new("s9").unwrap());
        r.tick(Instant::now() + PRESENCE_GRACE * 2);
        assert_eq!(notices(frames(&alice)), Vec::<String>::new(), "grace {grace:?}");
        assert_eq!(r.members(&room), [nick("alice"), nick("bob")]);
    }
}

#[test]
fn a_member_who_comes_back_and_then_leaves_is_announced_gone_once() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    r.peer_down(ServerId::new("s9").unwrap());
    let s8 = ServerId::new("s8").unwrap();
    r.remote_joined(s8, room, nick("bob"), true);
    r.remote_parted(s8, room, nick("bob"), false);
    assert_eq!(notices(frames(&alice)), ["PARTED bob"]);
    r.tick(Instant::now() + PRESENCE_GRACE * 2);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
}

#[test]
fn a_client_that_moves_before_its_old_session_ends_is_announced_neither_joined_nor_gone() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    // Its new session joins on s8, then the old one on s9 ends.
    r.remote_joined(ServerId::new("s8").unwrap(), room, nick("bob"), true);
    r.remote_parted(ServerId::new("s9").unwrap(), room, nick("bob"), true);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
    assert_eq!(r.members(&room), [nick("alice"), nick("bob")]);
    // The same here: its new session joins this server.
    let carol_old = ServerId::new("s9").unwrap();
    r.remote_joined(carol_old, room, nick("carol"), true);
    assert_eq!(notices(frames(&alice)), ["JOINED carol"]);
    let carol = member(3, "carol");
    r.join(&room, carol.clone(), None);
    r.remote_parted(carol_old, room, nick("carol"), true);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
    assert_eq!(notices(frames(&carol)), ["JOINED carol"], "the joiner's own JOINED");
}

#[test]
fn a_session_that_ends_without_quit_is_away_here_and_on_the_peers() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    let link = Outbound::new(1 << 20);
    r.link_up(ServerId::new("s7").unwrap(), link.clone());
    let carol = member(3, "carol");
    r.join(&room, carol.clone(), None);
    frames(&alice);
    sent(&link);
    r.part_away(&room, 3);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new(), "carol may be moving");
    let rparted: Vec<String> = sent(&link).into_iter().filter(|f| f.starts_with("RPARTED")).collect();
    assert_eq!(rparted, ["RPARTED #r carol away\r\n"], "the peers hold it too");
    r.tick(Instant::now() + PRESENCE_GRACE * 2);
    assert_eq!(notices(frames(&alice)), ["PARTED carol"], "not back: gone");
    // A PART is announced at once, here and to the peers.
    r.join(&room, member(4, "dave"), None);
    frames(&alice);
    sent(&link);
    r.part(&room, 4, false);
    assert_eq!(notices(frames(&alice)), ["PARTED dave"]);
    let rparted: Vec<String> = sent(&link).into_iter().filter(|f| f.starts_with("RPARTED")).collect();
    assert_eq!(rparted, ["RPARTED #r dave\r\n"]);
}

#[test]
fn a_peer_s_member_that_ended_without_quit_and_came_back_is_never_announced() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    r.remote_parted(ServerId::new("s9").unwrap(), room, nick("bob"), true);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
    let bob = member(2, "bob");
    r.join(&room, bob, None);
    r.tick(Instant::now() + PRESENCE_GRACE * 2);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
    // With no grace, the same is announced at once.
    let (r, room, alice) = bob_on_s9(Duration::ZERO);
    r.remote_parted(ServerId::new("s9").unwrap(), room, nick("bob"), true);
    assert_eq!(notices(frames(&alice)), ["PARTED bob"]);
}

#[test]
fn a_peer_cannot_keep_nicks_it_never_announced_away() {
    let (r, _room, alice) = bob_on_s9(PRESENCE_GRACE);
    let room = Room::new("#r").unwrap();
    r.remote_parted(ServerId::new("s9").unwrap(), room, nick("nobody"), true);
    assert_eq!(notices(frames(&alice)), ["PARTED nobody"], "told at once, as before: nothing kept");
}

/// Everyone of a room was on one server, which is lost: the survivors had
/// no member there, knew nothing of it, and told nobody anyone left.
#[test]
fn a_rejoin_is_announced_only_where_the_members_were_told_it_left() {
    let r = super::tests::rooms(100);
    let room = Room::new("#r").unwrap();
    let alice = member(1, "alice");
    r.join(&room, alice.clone(), None);
    // A message everyone saw on the lost server: the rejoins name it.
    let at = r.say(&room, 1, alice.nick, rttp_proto::Text::from("hi"), None).unwrap().id;
    frames(&alice);
    let s8 = ServerId::new("s8").unwrap();
    r.remote_interest(s8, room, true);
    // bob back after the move, here and through a peer: nobody was told
    // they left, so nobody is told they are back.
    r.join(&room, member(2, "bob"), Some(&at));
    r.remote_joined_as(s8, room, nick("carol"), true, true);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
    // A first join is news, as ever.
    r.join(&room, member(3, "dave"), None);
    r.remote_joined_as(s8, room, nick("erin"), true, false);
    assert_eq!(notices(frames(&alice)), ["JOINED dave", "JOINED erin"]);
    // carol leaves for good (PART on s8): told; her rejoin later is told too.
    r.remote_parted(s8, room, nick("carol"), false);
    r.remote_joined_as(s8, room, nick("carol"), true, true);
    assert_eq!(notices(frames(&alice)), ["PARTED carol", "JOINED carol"]);
    // And once only: the next rejoin of hers, unannounced gone, is silent.
    r.remote_parted(s8, room, nick("carol"), true);
    r.remote_joined_as(s8, room, nick("carol"), true, true);
    assert_eq!(notices(frames(&alice)), Vec::<String>::new());
}

#[test]
fn a_rejoin_after_the_grace_ran_out_is_announced() {
    let (r, room, alice) = bob_on_s9(PRESENCE_GRACE);
    r.peer_down(ServerId::new("s9").unwrap());
    r.tick(Instant::now() + PRESENCE_GRACE * 2);
    assert_eq!(notices(frames(&alice)), ["PARTED bob"]);
    let at = MsgId::new("s9:g:1").unwrap();
    r.join(&room, member(2, "bob"), Some(&at));
    assert_eq!(notices(frames(&alice)), ["JOINED bob"], "told he left, so told he is back");
}

#[test]
fn the_nicks_remembered_gone_are_bounded() {
    let r = super::tests::rooms(100);
    let room = Room::new("#r").unwrap();
    let alice = member(1, "alice");
    r.join(&room, alice.clone(), None);
    for i in 0..GONE_KEPT + 10 {
        r.join(&room, member(10 + i as u64, &format!("n{i}")), None);
        r.part(&room, 10 + i as u64, false);
    }
    frames(&alice);
    let st = r.map.get(&room).unwrap();
    assert_eq!(st.away.gone_len(), GONE_KEPT);
}
