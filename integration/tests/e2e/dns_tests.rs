//! farm-dns against a real farm, asked with the real `dig`.

use std::net::UdpSocket;
use std::time::Duration;

use integration::{check_for, first_record, short, Farm, FarmSpec};
use nix::sys::signal::Signal;
use rttp_proto::Status;

const T: Duration = Duration::from_secs(10);

async fn started() -> Farm {
    let mut farm = Farm::start(FarmSpec::default());
    farm.start_dns();
    check_for(T, "three A records", || async { short(&farm.dig(&["chat.farm.test", "A", "+short"]).await).len() == 3 })
        .await;
    farm
}

#[tokio::test]
async fn three_a_records_authoritative_and_rotating() {
    let farm = started().await;
    let p = farm.prefix();
    let out = farm.dig(&["chat.farm.test", "A"]).await;
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("flags: qr aa"), "AA set: {out}");
    assert!(out.contains("ANSWER: 3"), "{out}");
    let mut firsts = Vec::new();
    for _ in 0..3 {
        firsts.push(first_record(&farm.dig(&["chat.farm.test", "A", "+short"]).await));
    }
    let mut sorted = firsts.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted,
        [format!("{p}.1"), format!("{p}.2"), format!("{p}.3")],
        "three queries start with three addresses: {firsts:?}"
    );
    // Without a cookie, dig's queries differ only in their ID: farm-dns's
    // answer cache serves them, and the rotation must go on all the same.
    let mut cached = Vec::new();
    for _ in 0..6 {
        cached.push(first_record(&farm.dig(&["+nocookie", "chat.farm.test", "A", "+short"]).await));
    }
    let mut distinct = cached.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "cached answers rotate too: {cached:?}");
    let tcp = short(&farm.dig(&["+tcp", "chat.farm.test", "A", "+short"]).await);
    assert_eq!(tcp.len(), 3, "TCP works: {tcp:?}");
}

#[tokio::test]
async fn every_response_code_through_dig() {
    let farm = started().await;
    let soa = farm.dig(&["farm.test", "SOA"]).await;
    assert!(soa.contains("status: NOERROR") && soa.contains("IN\tSOA\tns.farm.test. hostmaster.farm.test."), "{soa}");
    let ns = farm.dig(&["farm.test", "NS"]).await;
    assert!(ns.contains("IN\tNS\tns.farm.test."), "{ns}");
    let srv = short(&farm.dig(&["_rttp._tcp.farm.test", "SRV", "+short"]).await);
    // Weights are the free capacity: 10,000 each, nobody connected.
    assert_eq!(srv, ["10 10000 7000 s1.farm.test.", "10 10000 7000 s2.farm.test.", "10 10000 7000 s3.farm.test."]);
    let nx = farm.dig(&["nope.farm.test", "A"]).await;
    assert!(nx.contains("status: NXDOMAIN") && nx.contains("flags: qr aa") && nx.contains("SOA"), "{nx}");
    let nodata = farm.dig(&["chat.farm.test", "MX"]).await;
    assert!(nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0") && nodata.contains("SOA"), "{nodata}");
    let refused = farm.dig(&["example.com", "A"]).await;
    assert!(refused.contains("status: REFUSED"), "{refused}");
    let notimp = farm.dig(&["+opcode=status", "chat.farm.test", "A"]).await;
    assert!(notimp.contains("status: NOTIMP"), "{notimp}");
}

#[tokio::test]
async fn a_killed_server_leaves_the_answers_and_comes_back() {
    let mut farm = started().await;
    farm.kill(2);
    check_for(T, "two A records after kill -9", || async {
        short(&farm.dig(&["chat.farm.test", "A", "+short"]).await).len() == 2
    })
    .await;
    farm.launch(2).await;
    check_for(T, "three again after restart", || async {
        short(&farm.dig(&["chat.farm.test", "A", "+short"]).await).len() == 3
    })
    .await;
}

/// farm-dns watches s1 (its first `--farm`). When s1 dies or hangs, farm-dns
/// must move its watch to s2: s1 leaving the answers can only be learned from
/// another server. Until then, and after, no answer is ever empty.
async fn the_watched_server_lost(hang: bool) {
    let mut farm = started().await;
    if hang {
        farm.stop(0);
    } else {
        farm.kill(0);
    }
    let gone = format!("{}.1", farm.prefix());
    let mut asked = 0;
    check_for(Duration::from_secs(20), "s1 out of the answers, learned from another server", || {
        asked += 1;
        async {
            let a = short(&farm.dig(&["chat.farm.test", "A", "+short"]).await);
            assert!(!a.is_empty(), "an empty answer while the watch moved");
            a.len() == 2 && !a.contains(&gone)
        }
    })
    .await;
    assert!(asked > 1, "answers were checked while farm-dns moved");
    if hang {
        farm.cont(0);
        check_for(T, "s1 back in the answers after SIGCONT", || async {
            short(&farm.dig(&["chat.farm.test", "A", "+short"]).await).contains(&gone)
        })
        .await;
    }
}

#[tokio::test]
async fn the_watched_server_killed_never_empties_the_answers() {
    the_watched_server_lost(false).await;
}

#[tokio::test]
async fn the_watched_server_hung_never_empties_the_answers() {
    the_watched_server_lost(true).await;
}

#[tokio::test]
async fn a_draining_server_leaves_the_answers_when_its_drain_starts() {
    let mut farm = started().await;
    // SIGUSR1: a drain that does not stop the server, so that what is tested is
    // the drain leaving the answers, not a server that exited.
    farm.signal(2, Signal::SIGUSR1);
    let gone = format!("{}.3", farm.prefix());
    check_for(T, "s3 out of the answers once it drains", || async {
        let a = short(&farm.dig(&["chat.farm.test", "A", "+short"]).await);
        a.len() == 2 && !a.contains(&gone)
    })
    .await;
    assert!(farm.wait_exit(2, Duration::ZERO).await.is_none(), "s3 still runs");
    assert_eq!(farm.status_seen(2, "s3").await, Some(Status::Draining), "s3 is DRAINING, not DOWN");
    assert_eq!(farm.status_seen(0, "s3").await, Some(Status::Draining), "and s1 knows it");
    // SIGUSR2 ends the drain: s3 is back in the answers.
    farm.signal(2, Signal::SIGUSR2);
    check_for(T, "s3 back in the answers after SIGUSR2", || async {
        short(&farm.dig(&["chat.farm.test", "A", "+short"]).await).contains(&gone)
    })
    .await;
}

#[tokio::test]
async fn malformed_packets_get_formerr_or_nothing_and_service_goes_on() {
    let farm = started().await;
    let out = farm.dig(&["chat.farm.test", "A"]).await;
    assert!(out.contains("ANSWER: 3"));
    let dns = farm.dig(&["+short", "ns.farm.test", "A"]).await;
    let dns_ip = first_record(&dns);
    let sock = UdpSocket::bind((dns_ip.as_str(), 0)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    sock.connect((dns_ip.as_str(), 5353)).unwrap();
    let header = |id: u16| vec![(id >> 8) as u8, id as u8, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    let mut long_label = header(0x1111);
    long_label.push(64);
    long_label.extend_from_slice(&[b'a'; 64]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut loop_ptr = header(0x2222);
    loop_ptr.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // a name pointing at itself
    let mut rng = 0x9e3779b97f4a7c15u64;
    let random: Vec<u8> = (0..100)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    for (what, pkt, formerr_id) in [
        ("truncated header", vec![0x33, 0x33, 0x01], None),
        ("label over 63", long_label, Some(0x1111u16)),
        ("compression loop", loop_ptr, Some(0x2222)),
        ("random bytes", random, None),
    ] {
        sock.send(&pkt).unwrap();
        let mut buf = [0u8; 512];
        match (sock.recv(&mut buf), formerr_id) {
            (Ok(n), Some(id)) => {
                assert!(n >= 12, "{what}");
                assert_eq!(u16::from_be_bytes([buf[0], buf[1]]), id, "{what}");
                assert_eq!(buf[3] & 0x0f, 1, "{what}: FORMERR");
            }
            (Ok(n), None) => assert!(n >= 12 && buf[3] & 0x0f == 1, "{what}: only FORMERR may answer garbage"),
            (Err(_), Some(_)) => panic!("{what}: expected FORMERR"),
            (Err(_), None) => {}
        }
    }
    assert!(farm.dig(&["chat.farm.test", "A"]).await.contains("ANSWER: 3"), "still answering");
}

#[test]
fn bad_flags_exit_2_with_a_message() {
    for (args, needle) in [
        (&["--farm", "127.0.0.1:7000", "--zone", "farm.test", "--name", "chat.other.test"][..], "not inside the zone"),
        (&["--zone", "farm.test"], "--farm"),
        (&["--farm", "127.0.0.1:7000", "--ttl", "soon"], "invalid value 'soon'"),
        (&["--farm", "127.0.0.1:7000", "--listen", "nowhere"], "invalid value 'nowhere'"),
    ] {
        let out = std::process::Command::new(integration::bin("farm-dns")).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
