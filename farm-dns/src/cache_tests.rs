//! The UDP answer cache, without sockets: a hit is byte-identical to a fresh
//! answer but for the patched ID, a new live set empties it, and it never holds
//! more than [`CACHE_MAX`] entries.

use std::sync::Arc;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use crate::answer::{respond, Live, Transport, Zone};
use crate::cache::{AnswerCache, CACHE_MAX};

fn zone() -> Zone {
    Zone::new("farm.test", "chat.farm.test", "127.0.0.1".parse().unwrap(), 1).unwrap()
}

fn live(n: u8) -> Arc<Vec<Live>> {
    Arc::new(
        (1..=n)
            .map(|i| Live { id: format!("s{i}"), ip: format!("127.0.0.{i}").parse().unwrap(), port: 7000, weight: 10 })
            .collect(),
    )
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    m.to_vec().unwrap()
}

fn first_a(bytes: &[u8]) -> String {
    let m = Message::from_vec(bytes).unwrap();
    match &m.answers[0].data {
        RData::A(a) => a.0.to_string(),
        other => panic!("not an A record: {other:?}"),
    }
}

#[test]
fn a_hit_is_the_fresh_answer_with_the_asker_s_id() {
    let (zone, set) = (zone(), live(3));
    let mut cache = AnswerCache::new(set.clone());
    let first = cache.answer(&zone, set.clone(), 0, &query(0x0101, "chat.farm.test")).unwrap();
    assert_eq!(cache.hits, 0);
    // Counter 3 is step 0 again with three servers: the same entry.
    let hit = cache.answer(&zone, set.clone(), 3, &query(0xbeef, "chat.farm.test")).unwrap();
    assert_eq!(cache.hits, 1, "served from the cache");
    assert_eq!(&hit[..2], &[0xbe, 0xef], "the ID is the asker's");
    assert_eq!(&hit[2..], &first[2..], "the rest is the cached answer");
    let fresh =
        respond(&Message::from_vec(&query(0xbeef, "chat.farm.test")).unwrap(), &zone, &set, 0, Transport::Udp).unwrap();
    assert_eq!(hit, fresh, "byte for byte what an uncached answer would be");
}

#[test]
fn each_rotation_step_is_its_own_entry() {
    let (zone, set) = (zone(), live(3));
    let mut cache = AnswerCache::new(set.clone());
    let firsts: Vec<String> =
        (0..6).map(|c| first_a(&cache.answer(&zone, set.clone(), c, &query(7, "chat.farm.test")).unwrap())).collect();
    assert_eq!(firsts, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    assert_eq!((cache.len(), cache.hits), (3, 3), "three steps cached, the second round hits");
}

#[test]
fn a_new_live_set_empties_the_cache() {
    let zone = zone();
    let mut cache = AnswerCache::new(live(3));
    let three = live(3);
    cache.answer(&zone, three.clone(), 0, &query(1, "chat.farm.test")).unwrap();
    assert_eq!(cache.len(), 1);
    // The same servers in a new set (a table change) still invalidate: the
    // cache compares sets by identity, so it can never serve an old one.
    let two = live(2);
    let out = cache.answer(&zone, two.clone(), 0, &query(1, "chat.farm.test")).unwrap();
    assert_eq!(cache.hits, 0, "not served from the old set");
    assert_eq!(Message::from_vec(&out).unwrap().answers.len(), 2, "the new set's two servers");
    assert_eq!(cache.len(), 1);
}

#[test]
fn the_cache_never_holds_more_than_its_bound() {
    let (zone, set) = (zone(), live(1));
    let mut cache = AnswerCache::new(set.clone());
    let mut most = 0;
    for i in 0..CACHE_MAX + 10 {
        // Distinct names: NXDOMAIN answers, each its own entry.
        cache.answer(&zone, set.clone(), 0, &query(1, &format!("n{i}.farm.test"))).unwrap();
        most = most.max(cache.len());
    }
    assert_eq!(most, CACHE_MAX, "filled up to the bound");
    assert_eq!(cache.len(), 10, "emptied once full, then refilled");
}

#[test]
fn garbage_and_responses_are_not_cached() {
    let (zone, set) = (zone(), live(3));
    let mut cache = AnswerCache::new(set.clone());
    assert!(cache.answer(&zone, set.clone(), 0, &[1, 2, 3]).is_none(), "a short packet gets nothing");
    let mut response = Message::from_vec(&query(9, "chat.farm.test")).unwrap();
    response.metadata.message_type = hickory_proto::op::MessageType::Response;
    assert!(cache.answer(&zone, set.clone(), 0, &response.to_vec().unwrap()).is_none(), "responses are ignored");
    assert_eq!(cache.len(), 0);
}
