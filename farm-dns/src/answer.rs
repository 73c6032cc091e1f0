//! The answer logic: a pure function (query, zone, live farm set, rotation)
//! -> response, over hickory-proto's wire types. No sockets here.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, NS, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rttp_proto::{FarmInfo, Status};

/// Our own EDNS payload size (the value recommended since DNS flag day 2020).
pub(crate) const OUR_EDNS_PAYLOAD: u16 = 1232;
/// Largest message over TCP.
pub(crate) const TCP_MAX: usize = 65_535;

/// What farm-dns is authoritative for.
#[derive(Debug, Clone)]
pub(crate) struct Zone {
    /// The zone apex, e.g. `farm.test.`.
    pub(crate) apex: Name,
    /// The service name, e.g. `chat.farm.test.`.
    pub(crate) service: Name,
    /// `_rttp._tcp.<zone>`.
    pub(crate) srv: Name,
    /// `ns.<zone>`: this server, named in NS and SOA.
    pub(crate) ns: Name,
    /// Where farm-dns itself answers (the A/AAAA of `ns.<zone>`).
    pub(crate) ns_ip: IpAddr,
    /// TTL of every record.
    pub(crate) ttl: u32,
}

impl Zone {
    /// A zone from its names; `service` must lie inside `apex`.
    pub(crate) fn new(apex: &str, service: &str, ns_ip: IpAddr, ttl: u32) -> Result<Zone, String> {
        let fqdn = |s: &str| {
            let s = if s.ends_with('.') { s.to_string() } else { format!("{s}.") };
            Name::from_ascii(&s).map(|n| n.to_lowercase()).map_err(|e| format!("{s}: {e}"))
        };
        let apex = fqdn(apex)?;
        let service = fqdn(service)?;
        if !apex.zone_of(&service) || apex == service {
            return Err(format!("the name {service} is not inside the zone {apex}"));
        }
        let under =
            |label: &str| Name::from_ascii(label).and_then(|n| n.append_domain(&apex)).map_err(|e| e.to_string());
        Ok(Zone { srv: under("_rttp._tcp")?, ns: under("ns")?, apex, service, ns_ip, ttl })
    }

    fn soa(&self) -> Record {
        let rname = Name::from_ascii("hostmaster").and_then(|n| n.append_domain(&self.apex)).unwrap_or_default();
        // The serial is fixed: the zone's data changes at the farm's pace, and
        // with a 1 s TTL nobody transfers it.
        let soa = SOA::new(self.ns.clone(), rname, 1, 3600, 600, 86400, self.ttl);
        Record::from_rdata(self.apex.clone(), self.ttl, RData::SOA(soa))
    }
}

/// One server that may be answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Live {
    /// Its id (also its host name under the zone, for SRV targets).
    pub(crate) id: String,
    /// Its client IP.
    pub(crate) ip: IpAddr,
    /// Its client port.
    pub(crate) port: u16,
    /// Its SRV weight: its free capacity (capacity − users), scaled into
    /// 1..=65535 when the largest is over 65,535.
    pub(crate) weight: u16,
}

/// The servers to answer with: the UP ones; if there is none, the
/// DRAINING and FULL ones rather than nothing; never a DOWN one.
pub(crate) fn live_set(table: &FarmInfo) -> Vec<Live> {
    let most_free = table.servers.iter().map(|e| e.capacity.saturating_sub(e.users)).max().unwrap_or(0);
    let pick = |ok: &dyn Fn(Status) -> bool| -> Vec<Live> {
        table
            .servers
            .iter()
            .filter(|e| ok(e.status))
            .filter_map(|e| {
                let a: std::net::SocketAddr = e.addr.as_str().parse().ok()?;
                let weight = srv_weight(e.capacity.saturating_sub(e.users), most_free);
                Some(Live { id: e.id.to_string(), ip: a.ip(), port: a.port(), weight })
            })
            .collect()
    };
    let up = pick(&|s| s == Status::Up);
    if up.is_empty() {
        pick(&|s| matches!(s, Status::Draining | Status::Full))
    } else {
        up
    }
}

/// The SRV weight of a server with `free` user slots when the most free
/// has `most_free`: the free slots themselves, scaled into 1..=65535 when
/// they do not fit (RFC 2782 weights are 16 bits). Never 0, which RFC 2782
/// reserves for "almost never": a full server is still reachable, and it
/// redirects.
pub(crate) fn srv_weight(free: u32, most_free: u32) -> u16 {
    let scaled = if most_free > u32::from(u16::MAX) {
        (u64::from(free) * u64::from(u16::MAX) / u64::from(most_free)) as u32
    } else {
        free
    };
    scaled.clamp(1, u32::from(u16::MAX)) as u16
}

/// How the query reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// UDP: the answer must fit the client's payload size.
    Udp,
    /// TCP: up to 64 KiB.
    Tcp,
}

/// The response to `query`, encoded, or `None` when it deserves no answer
/// (it is itself a response). `rotation` picks the first address.
pub(crate) fn respond(
    query: &Message,
    zone: &Zone,
    live: &[Live],
    rotation: u64,
    transport: Transport,
) -> Option<Vec<u8>> {
    if query.metadata.message_type != MessageType::Query {
        return None;
    }
    let mut resp = Message::response(query.metadata.id, query.metadata.op_code);
    resp.metadata.recursion_desired = query.metadata.recursion_desired;
    resp.queries = query.queries.clone();
    let max = match transport {
        Transport::Tcp => TCP_MAX,
        Transport::Udp => usize::from(query.max_payload()).min(usize::from(OUR_EDNS_PAYLOAD).max(512)),
    };
    if query.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(OUR_EDNS_PAYLOAD);
        resp.set_edns(e);
    }
    fill(&mut resp, query, zone, live, rotation);
    encode(resp, max)
}

/// A and AAAA records of `owner` for `ips`, those of type `want`.
fn addr_records(owner: &Name, ips: &mut dyn Iterator<Item = IpAddr>, want: RecordType, ttl: u32) -> Vec<Record> {
    ips.filter_map(|ip| match (ip, want) {
        (IpAddr::V4(v4), RecordType::A) => Some(Record::from_rdata(owner.clone(), ttl, RData::A(A(v4)))),
        (IpAddr::V6(v6), RecordType::AAAA) => Some(Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(v6)))),
        _ => None,
    })
    .collect()
}

/// The service name's records of type `qt`: the live servers' addresses,
/// deduplicated by IP, then rotated (each query starts one further).
fn service_records(zone: &Zone, live: &[Live], qt: RecordType, rotation: u64) -> Vec<Record> {
    if qt != RecordType::A && qt != RecordType::AAAA {
        return Vec::new();
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    for l in live {
        if !ips.contains(&l.ip) {
            ips.push(l.ip);
        }
    }
    let mut recs = addr_records(&zone.service, &mut ips.into_iter(), qt, zone.ttl);
    if !recs.is_empty() {
        let k = (rotation % recs.len() as u64) as usize;
        recs.rotate_left(k);
    }
    recs
}

/// SRV records, one per live server with its own port and its free
/// capacity as its weight (so that a resolver that honours weights sends
/// more users where there is more room), its addresses as additional records.
fn srv_records(resp: &mut Message, zone: &Zone, live: &[Live]) -> Vec<Record> {
    let mut recs = Vec::new();
    for l in live {
        let Ok(target) = Name::from_ascii(&l.id).and_then(|n| n.append_domain(&zone.apex)) else { continue };
        recs.push(Record::from_rdata(
            zone.srv.clone(),
            zone.ttl,
            RData::SRV(SRV::new(10, l.weight, l.port, target.clone())),
        ));
        for want in [RecordType::A, RecordType::AAAA] {
            resp.additionals.extend(addr_records(&target, &mut std::iter::once(l.ip), want, zone.ttl));
        }
    }
    recs
}

/// The answer's records and code.
fn fill(resp: &mut Message, query: &Message, zone: &Zone, live: &[Live], rotation: u64) {
    if query.metadata.op_code != OpCode::Query {
        resp.metadata.response_code = ResponseCode::NotImp;
        return;
    }
    let [q] = query.queries.as_slice() else {
        resp.metadata.response_code = ResponseCode::FormErr;
        return;
    };
    let name = q.name().to_lowercase();
    if q.query_class() != DNSClass::IN || !zone.apex.zone_of(&name) {
        resp.metadata.response_code = ResponseCode::Refused;
        return;
    }
    resp.metadata.authoritative = true;
    let ttl = zone.ttl;
    let qt = q.query_type();
    let addr_records =
        |owner: &Name, ips: &mut dyn Iterator<Item = IpAddr>, want: RecordType| addr_records(owner, ips, want, ttl);
    let answers: Option<Vec<Record>> = if name == zone.service {
        Some(service_records(zone, live, qt, rotation))
    } else if name == zone.srv {
        Some(if qt == RecordType::SRV { srv_records(resp, zone, live) } else { Vec::new() })
    } else if name == zone.apex {
        match qt {
            RecordType::SOA => Some(vec![zone.soa()]),
            RecordType::NS => {
                resp.additionals.extend(addr_records(&zone.ns, &mut std::iter::once(zone.ns_ip), RecordType::A));
                resp.additionals.extend(addr_records(&zone.ns, &mut std::iter::once(zone.ns_ip), RecordType::AAAA));
                Some(vec![Record::from_rdata(zone.apex.clone(), ttl, RData::NS(NS(zone.ns.clone())))])
            }
            _ => Some(Vec::new()),
        }
    } else if name == zone.ns {
        Some(addr_records(&zone.ns, &mut std::iter::once(zone.ns_ip), qt))
    } else {
        // A server's own name (an SRV target).
        let owned = live
            .iter()
            .find(|l| Name::from_ascii(&l.id).and_then(|n| n.append_domain(&zone.apex)).is_ok_and(|n| n == name));
        owned.map(|l| addr_records(&name, &mut std::iter::once(l.ip), qt))
    };
    match answers {
        Some(recs) if !recs.is_empty() => resp.answers = recs,
        Some(_) => resp.authorities.push(zone.soa()), // NODATA
        None => {
            resp.metadata.response_code = ResponseCode::NXDomain;
            resp.authorities.push(zone.soa());
        }
    }
}

/// Encodes; when the answer does not fit, sends it truncated (TC set, no
/// records) so the client retries over TCP.
fn encode(mut resp: Message, max: usize) -> Option<Vec<u8>> {
    let bytes = resp.to_vec().ok()?;
    if bytes.len() <= max {
        return Some(bytes);
    }
    resp.metadata.truncation = true;
    resp.answers.clear();
    resp.authorities.clear();
    resp.additionals.clear();
    resp.to_vec().ok()
}

/// `answer` cut to its header and question, TC set: what response rate
/// limiting "slips" instead of an answer, so a real client retries over TCP.
pub(crate) fn truncated(answer: &[u8]) -> Option<Vec<u8>> {
    let mut resp = Message::from_vec(answer).ok()?;
    resp.metadata.truncation = true;
    resp.answers.clear();
    resp.authorities.clear();
    resp.additionals.clear();
    resp.to_vec().ok()
}

/// The answer to bytes that are not a parsable query: FORMERR when the
/// header can be read and it is a query, else nothing.
pub(crate) fn malformed(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    let op = OpCode::from_u8((bytes[2] >> 3) & 0x0f);
    Message::error_msg(id, op, ResponseCode::FormErr).to_vec().ok()
}
