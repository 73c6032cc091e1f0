//! The answer logic, without sockets: queries built with hickory-proto,
//! responses decoded and checked record by record.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use rttp_proto::{FarmInfo, Group, HostPort, ServerEntry, ServerId, Status};

use crate::answer::{live_set, malformed, respond, Live, Transport, Zone};

fn zone() -> Zone {
    Zone::new("farm.test", "chat.farm.test", "127.0.0.1".parse().unwrap(), 1).unwrap()
}

fn live(n: u8) -> Vec<Live> {
    (1..=n)
        .map(|i| Live {
            id: format!("s{i}"),
            ip: format!("127.0.0.{i}").parse().unwrap(),
            port: 7000 + u16::from(i),
            weight: 10,
        })
        .collect()
}

fn query(name: &str, t: RecordType) -> Message {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    m
}

fn ask(q: &Message, live: &[Live], rot: u64) -> Message {
    Message::from_vec(&respond(q, &zone(), live, rot, Transport::Udp).expect("an answer")).unwrap()
}

fn ips(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_records_are_authoritative_and_rotate() {
    let q = query("chat.farm.test.", RecordType::A);
    let first: Vec<IpAddr> = (0..3).map(|rot| ips(&ask(&q, &live(3), rot))[0]).collect();
    assert_eq!(first, ["127.0.0.1", "127.0.0.2", "127.0.0.3"].map(|s| s.parse::<IpAddr>().unwrap()));
    let m = ask(&q, &live(3), 7);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.id, 4242);
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(ips(&m).len(), 3);
    assert!(m.answers.iter().all(|r| r.ttl == 1));
    // Case does not matter.
    assert_eq!(ips(&ask(&query("CHAT.Farm.TEST.", RecordType::A), &live(3), 0)).len(), 3);
}

#[test]
fn duplicate_ips_are_answered_once_and_srv_keeps_the_ports() {
    let mut l = live(3);
    for x in &mut l {
        x.ip = "127.0.0.1".parse().unwrap();
    }
    assert_eq!(ips(&ask(&query("chat.farm.test.", RecordType::A), &l, 0)).len(), 1);
    let m = ask(&query("_rttp._tcp.farm.test.", RecordType::SRV), &l, 0);
    let ports: Vec<u16> =
        m.answers.iter().filter_map(|r| if let RData::SRV(s) = &r.data { Some(s.port) } else { None }).collect();
    assert_eq!(ports, [7001, 7002, 7003], "a laptop farm on one IP is reachable through SRV");
    assert_eq!(m.additionals.len(), 3, "each target's address comes along");
    // The target names answer A themselves.
    assert_eq!(ips(&ask(&query("s2.farm.test.", RecordType::A), &l, 0)), ["127.0.0.1".parse::<IpAddr>().unwrap()]);
}

#[test]
fn soa_ns_nxdomain_nodata_refused_notimp_formerr() {
    let soa = ask(&query("farm.test.", RecordType::SOA), &live(3), 0);
    assert!(matches!(&soa.answers[0].data, RData::SOA(_)));
    let ns = ask(&query("farm.test.", RecordType::NS), &live(3), 0);
    assert!(matches!(&ns.answers[0].data, RData::NS(_)));
    assert_eq!(
        ips(&ask(&query("ns.farm.test.", RecordType::A), &live(3), 0)),
        ["127.0.0.1".parse::<IpAddr>().unwrap()]
    );

    let nx = ask(&query("nope.farm.test.", RecordType::A), &live(3), 0);
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert!(nx.metadata.authoritative && matches!(&nx.authorities[0].data, RData::SOA(_)));

    let nodata = ask(&query("chat.farm.test.", RecordType::MX), &live(3), 0);
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty() && matches!(&nodata.authorities[0].data, RData::SOA(_)));

    let refused = ask(&query("example.com.", RecordType::A), &live(3), 0);
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(!refused.metadata.authoritative);

    let mut status = query("chat.farm.test.", RecordType::A);
    status.metadata.op_code = OpCode::Status;
    assert_eq!(ask(&status, &live(3), 0).metadata.response_code, ResponseCode::NotImp);

    let mut two = query("chat.farm.test.", RecordType::A);
    two.add_query(Query::query(Name::from_ascii("farm.test.").unwrap(), RecordType::SOA));
    assert_eq!(ask(&two, &live(3), 0).metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn an_answer_too_big_for_udp_is_truncated() {
    let many: Vec<Live> = (0..200u16)
        .map(|i| Live {
            id: format!("s{i}"),
            ip: IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
            port: 7000,
            weight: 10,
        })
        .collect();
    let q = query("_rttp._tcp.farm.test.", RecordType::SRV);
    let udp = Message::from_vec(&respond(&q, &zone(), &many, 0, Transport::Udp).unwrap()).unwrap();
    assert!(udp.metadata.truncation && udp.answers.is_empty(), "TC set, retry over TCP");
    let tcp = Message::from_vec(&respond(&q, &zone(), &many, 0, Transport::Tcp).unwrap()).unwrap();
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 200);
    // A client announcing a larger EDNS size still gets at most our 1232.
    let mut big = q.clone();
    let mut e = Edns::new();
    e.set_max_payload(4096);
    big.set_edns(e);
    let bytes = respond(&big, &zone(), &many, 0, Transport::Udp).unwrap();
    assert!(bytes.len() <= 1232);
}

#[test]
fn the_live_set_prefers_up_then_falls_back_never_down() {
    let e = |id: &str, status| ServerEntry {
        id: ServerId::new(id).unwrap(),
        addr: HostPort::new(&format!("127.0.0.{}:7000", &id[1..])).unwrap(),
        status,
        users: 0,
        capacity: 10,
        group: Group::new("g").unwrap(),
        transport: Default::default(),
        ws: None,
    };
    let ids = |t: FarmInfo| live_set(&t).into_iter().map(|l| l.id).collect::<Vec<_>>();
    let t = |v| FarmInfo { epoch: 1, servers: v };
    assert_eq!(
        ids(t(vec![e("s1", Status::Up), e("s2", Status::Down), e("s3", Status::Draining), e("s4", Status::Full)])),
        ["s1"]
    );
    assert_eq!(ids(t(vec![e("s2", Status::Down), e("s3", Status::Draining), e("s4", Status::Full)])), ["s3", "s4"]);
    assert!(ids(t(vec![e("s2", Status::Down)])).is_empty());
}

#[test]
fn garbage_gets_formerr_or_nothing_and_responses_are_ignored() {
    assert_eq!(malformed(&[1, 2, 3]), None, "too short for a header");
    let mut hdr = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    hdr.extend_from_slice(&[64]); // a label claiming 64 bytes, over the 63 limit
    hdr.extend_from_slice(&[b'a'; 64]);
    let f = Message::from_vec(&malformed(&hdr).unwrap()).unwrap();
    assert_eq!((f.metadata.id, f.metadata.response_code), (0x1234, ResponseCode::FormErr));
    let mut resp = hdr.clone();
    resp[2] |= 0x80;
    assert_eq!(malformed(&resp), None, "never answer a response");
    let mut r = query("chat.farm.test.", RecordType::A);
    r.metadata.message_type = MessageType::Response;
    assert_eq!(respond(&r, &zone(), &live(3), 0, Transport::Udp), None);
}

#[test]
fn the_name_must_be_inside_the_zone() {
    assert!(Zone::new("farm.test", "chat.other.test", "127.0.0.1".parse().unwrap(), 1).is_err());
    assert!(Zone::new("farm.test", "farm.test", "127.0.0.1".parse().unwrap(), 1).is_err());
}

#[test]
fn srv_weights_are_the_free_capacity() {
    let e = |id: &str, users, capacity| ServerEntry {
        id: ServerId::new(id).unwrap(),
        addr: HostPort::new(&format!("127.0.0.{}:7000", &id[1..])).unwrap(),
        status: Status::Up,
        users,
        capacity,
        group: Group::new("g").unwrap(),
        transport: Default::default(),
        ws: None,
    };
    // Unequal servers: 900 free, 100 free, and one at capacity whose FULL
    // has not arrived yet: weight 1, never 0.
    let info = FarmInfo { epoch: 1, servers: vec![e("s1", 100, 1000), e("s2", 4900, 5000), e("s3", 10, 10)] };
    let m = ask(&query("_rttp._tcp.farm.test.", RecordType::SRV), &live_set(&info), 0);
    let weights: Vec<(u16, u16)> = m
        .answers
        .iter()
        .filter_map(|r| if let RData::SRV(s) = &r.data { Some((s.port, s.weight)) } else { None })
        .collect();
    assert_eq!(weights, [(7000, 900), (7000, 100), (7000, 1)]);
    // Past 16 bits, scaled so that the most free gets 65535.
    assert_eq!(crate::answer::srv_weight(200_000, 200_000), 65535);
    assert_eq!(crate::answer::srv_weight(100_000, 200_000), 32767);
    assert_eq!(crate::answer::srv_weight(0, 200_000), 1);
    assert_eq!(crate::answer::srv_weight(0, 0), 1);
}
