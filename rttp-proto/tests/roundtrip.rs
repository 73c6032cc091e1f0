//! Table-driven round trips: each frame value and its exact bytes, both ways.

use bytes::{Bytes, BytesMut};
use rttp_proto::*;

fn room(s: &str) -> Room {
    Room::new(s).unwrap()
}
fn nick(s: &str) -> Nick {
    Nick::new(s).unwrap()
}
fn tok(s: &str) -> Token {
    Token::new(s).unwrap()
}

fn check<F: Frame + PartialEq + std::fmt::Debug>(value: F, wire: &str) {
    let mut out = BytesMut::new();
    value.encode(&mut out);
    assert_eq!(std::str::from_utf8(&out).unwrap(), wire, "encode {value:?}");
    let buf = Bytes::copy_from_slice(wire.as_bytes());
    let (got, used) = F::decode(&buf, &Limits::default()).unwrap().expect("complete");
    assert_eq!(got, value, "decode {wire:?}");
    assert_eq!(used, wire.len());
    // Every strict prefix needs more bytes.
    for cut in 0..wire.len() {
        assert_eq!(F::decode(&buf.slice(..cut), &Limits::default()).unwrap(), None, "prefix {cut} of {wire:?}");
    }
}

#[test]
fn client_frames() {
    let table = vec![
        (ClientFrame::Hello { version: 1, nick: nick("alice"), token: None, resume: None }, "HELLO 1 alice\r\n"),
        (
            ClientFrame::Hello {
                version: 1,
                nick: nick("alice"),
                token: Some(Credential::new("eyJ.e30.sig").unwrap()),
                resume: None,
            },
            "HELLO 1 alice eyJ.e30.sig\r\n",
        ),
        (
            ClientFrame::Hello {
                version: 1,
                nick: nick("alice"),
                token: Some(Credential::new("-").unwrap()),
                resume: Some(tok("s1-2-f00d")),
            },
            "HELLO 1 alice - s1-2-f00d\r\n",
        ),
        (ClientFrame::Farm { watch: false }, "FARM\r\n"),
        (ClientFrame::Farm { watch: true }, "FARM watch\r\n"),
        (ClientFrame::Join { room: room("#rust"), after: None }, "JOIN #rust\r\n"),
        (ClientFrame::Join { room: room("#rust"), after: Some(tok("s1:7:42")) }, "JOIN #rust s1:7:42\r\n"),
        (ClientFrame::Part { room: room("#a.b-c_d") }, "PART #a.b-c_d\r\n"),
        (
            ClientFrame::Say { room: room("#r"), tag: None, text: Text::from("hello world") },
            "SAY #r 11\r\nhello world\r\n",
        ),
        (ClientFrame::Say { room: room("#r"), tag: None, text: Text::from("") }, "SAY #r 0\r\n\r\n"),
        (
            ClientFrame::Say { room: room("#r"), tag: Some(tok("a1b2-7")), text: Text::from("hi") },
            "SAY #r a1b2-7 2\r\nhi\r\n",
        ),
        (ClientFrame::Say { room: room("#r"), tag: Some(tok("t")), text: Text::from("") }, "SAY #r t 0\r\n\r\n"),
        (
            ClientFrame::Say { room: room("#r"), tag: None, text: Text::from("héllo\r\nx") },
            "SAY #r 9\r\nhéllo\r\nx\r\n",
        ),
        (ClientFrame::Who { room: room("#r") }, "WHO #r\r\n"),
        (ClientFrame::Ping { token: tok("t1") }, "PING t1\r\n"),
        (ClientFrame::Pong { token: tok("t2") }, "PONG t2\r\n"),
        (ClientFrame::Quit, "QUIT\r\n"),
    ];
    for (v, w) in table {
        check(v, w);
    }
}

#[test]
fn server_frames() {
    let info = FarmInfo {
        epoch: 7,
        servers: vec![
            ServerEntry {
                id: ServerId::new("s1").unwrap(),
                addr: HostPort::new("127.0.0.1:7000").unwrap(),
                status: Status::Up,
                users: 3,
                capacity: 10000,
                group: Group::new("g1").unwrap(),
                transport: Default::default(),
                ws: None,
            },
            ServerEntry {
                id: ServerId::new("s2").unwrap(),
                addr: HostPort::new("[::1]:7001").unwrap(),
                status: Status::Draining,
                users: 0,
                capacity: 5,
                group: Group::new("eu-west.1").unwrap(),
                transport: Transport::Tls,
                ws: Some(tok("wss://c.example/rttp")),
            },
        ],
    };
    let table = vec![
        (ServerFrame::Welcome { server: ServerId::new("s1").unwrap(), session: tok("s1-1") }, "WELCOME s1 s1-1\r\n"),
        (ServerFrame::Ack { tag: tok("a1b2-7"), id: tok("s1:a:9") }, "ACK a1b2-7 s1:a:9\r\n"),
        (
            ServerFrame::FarmInfo(info),
            "FARM_INFO 7 2\r\nSERVER s1 127.0.0.1:7000 UP 3 10000 g1 tcp -\r\nSERVER s2 [::1]:7001 DRAINING 0 5 eu-west.1 tls wss://c.example/rttp\r\n",
        ),
        (ServerFrame::FarmInfo(FarmInfo { epoch: 0, servers: vec![] }), "FARM_INFO 0 0\r\n"),
        (
            ServerFrame::Redirect {
                server: ServerId::new("s2").unwrap(),
                addr: HostPort::new("127.0.0.2:7000").unwrap(),
                reason: tok("drain"),
            },
            "REDIRECT s2 127.0.0.2:7000 drain\r\n",
        ),
        (
            ServerFrame::Msg { room: room("#r"), id: tok("s1:1:5"), nick: nick("bob"), text: Text::from("hi") },
            "MSG #r s1:1:5 bob 2\r\nhi\r\n",
        ),
        (ServerFrame::Joined { room: room("#r"), nick: nick("bob"), at: None }, "JOINED #r bob\r\n"),
        (ServerFrame::Joined { room: room("#r"), nick: nick("bob"), at: Some(tok("s1:g:7")) }, "JOINED #r bob s1:g:7\r\n"),
        (ServerFrame::Parted { room: room("#r"), nick: nick("bob") }, "PARTED #r bob\r\n"),
        (ServerFrame::Members { room: room("#r"), nicks: vec![nick("a"), nick("b")] }, "MEMBERS #r a b\r\n"),
        (
            ServerFrame::Members { room: room("#r"), nicks: (0..20).map(|i| nick(&format!("n{i}"))).collect() },
            &*Box::leak(format!("MEMBERS #r {}\r\n", (0..20).map(|i| format!("n{i}")).collect::<Vec<_>>().join(" ")).into_boxed_str()),
        ),
        (ServerFrame::EndMembers { room: room("#r"), total: 2 }, "END_MEMBERS #r 2\r\n"),
        (ServerFrame::Ping { token: tok("p") }, "PING p\r\n"),
        (ServerFrame::Pong { token: tok("p") }, "PONG p\r\n"),
        (ServerFrame::err(ErrCode::NotInRoom, "you are not in #r"), "ERR 407 you are not in #r\r\n"),
    ];
    for (v, w) in table {
        check(v, w);
    }
}

#[test]
fn bare_lf_is_accepted_and_crlf_is_written() {
    let buf = Bytes::from_static(b"SAY #r 2\nhi\nPING x\n");
    let (f, used) = ClientFrame::decode(&buf, &Limits::default()).unwrap().unwrap();
    assert_eq!(f, ClientFrame::Say { room: room("#r"), tag: None, text: Text::from("hi") });
    assert_eq!(used, 12);
    let (f, _) = ClientFrame::decode(&buf.slice(used..), &Limits::default()).unwrap().unwrap();
    assert_eq!(f.to_bytes(), Bytes::from_static(b"PING x\r\n"));
}

#[test]
fn unknown_trailing_arguments_are_ignored() {
    let buf = Bytes::from_static(b"PING a future-arg\r\n");
    let (f, _) = ClientFrame::decode(&buf, &Limits::default()).unwrap().unwrap();
    assert_eq!(f, ClientFrame::Ping { token: tok("a") });
}

#[test]
fn a_long_err_reason_is_cut_to_max_reason() {
    let f = ServerFrame::err(ErrCode::BadArgument, "x".repeat(10 * MAX_REASON));
    let ServerFrame::Err { reason, .. } = &f else { panic!() };
    assert_eq!(reason.len(), MAX_REASON);
    let (back, _) = ServerFrame::decode(&f.to_bytes(), &Limits::default()).unwrap().unwrap();
    assert_eq!(back, f, "it still fits a line and decodes");
}

#[test]
fn err_reason_is_sanitised_and_codes_classify() {
    let f = ServerFrame::err(ErrCode::Busy, "full\r\nINJECT");
    assert_eq!(f.to_bytes(), Bytes::from_static(b"ERR 503 full??INJECT\r\n"));
    assert!(ErrCode::Busy.closes());
    assert!(!ErrCode::RateLimited.closes());
    for c in ErrCode::ALL {
        assert_eq!(ErrCode::from_u16(c.as_u16()), Some(c));
    }
    assert_eq!(f.err_code(), Some(ErrCode::Busy));
}

#[test]
fn body_is_a_zero_copy_slice_of_the_input() {
    let buf = Bytes::from(b"SAY #r 5\r\nhello\r\n".to_vec());
    let (f, _) = ClientFrame::decode(&buf, &Limits::default()).unwrap().unwrap();
    let ClientFrame::Say { text, .. } = f else { panic!("not a SAY") };
    let start = buf.as_ptr() as usize;
    let body = text.bytes().as_ptr() as usize;
    assert_eq!(body - start, 10, "the body points into the input buffer");
}

#[test]
fn peer_frames() {
    let state = PeerStateMsg {
        id: ServerId::new("s2").unwrap(),
        generation: 1700000000123,
        client_addr: HostPort::new("127.0.0.2:7000").unwrap(),
        peer_addr: HostPort::new("127.0.0.2:7100").unwrap(),
        status: Status::Full,
        users: 10,
        capacity: 10,
        group: Group::new("g2").unwrap(),
        transport: Default::default(),
        ws: Some(tok("ws://127.0.0.2:8080/rttp")),
    };
    let table = vec![
        (
            PeerFrame::Hello {
                version: 1,
                id: ServerId::new("s1").unwrap(),
                generation: 5,
                nonce: tok("ab12"),
                features: None,
            },
            "PEER_HELLO 1 s1 5 ab12\r\n",
        ),
        (
            PeerFrame::Hello {
                version: 1,
                id: ServerId::new("s1").unwrap(),
                generation: 5,
                nonce: tok("ab12"),
                features: Some(tok("got")),
            },
            "PEER_HELLO 1 s1 5 ab12 got\r\n",
        ),
        (
            PeerFrame::Challenge {
                version: 1,
                id: ServerId::new("s2").unwrap(),
                generation: 6,
                nonce: tok("cd34"),
                mac: tok("ff00"),
                features: Some(tok("got,x")),
            },
            "PEER_CHALLENGE 1 s2 6 cd34 ff00 got,x\r\n",
        ),
        (PeerFrame::Got { position: 123_456 }, "GOT 123456\r\n"),
        (PeerFrame::Auth { mac: tok("0a0b") }, "PEER_AUTH 0a0b\r\n"),
        (PeerFrame::Ok, "PEER_OK\r\n"),
        (
            PeerFrame::State(Box::new(state)),
            "STATE s2 1700000000123 127.0.0.2:7000 127.0.0.2:7100 FULL 10 10 g2 tcp ws://127.0.0.2:8080/rttp\r\n",
        ),
        (
            PeerFrame::Member {
                id: ServerId::new("s3").unwrap(),
                generation: 9,
                peer_addr: HostPort::new("127.0.0.3:7100").unwrap(),
            },
            "MEMBER s3 9 127.0.0.3:7100\r\n",
        ),
        (PeerFrame::Beat, "BEAT\r\n"),
        (PeerFrame::Interest { room: room("#r") }, "INTEREST #r\r\n"),
        (PeerFrame::Uninterest { room: room("#r") }, "UNINTEREST #r\r\n"),
        (
            PeerFrame::Relay {
                room: room("#r"),
                id: tok("s1:a:1"),
                nick: nick("bob"),
                tag: None,
                text: Text::from("yo"),
            },
            "RELAY #r s1:a:1 bob 2\r\nyo\r\n",
        ),
        (
            PeerFrame::Relay {
                room: room("#r"),
                id: tok("s1:a:2"),
                nick: nick("bob"),
                tag: Some(tok("x-1")),
                text: Text::from("yo"),
            },
            "RELAY #r s1:a:2 bob x-1 2\r\nyo\r\n",
        ),
        (PeerFrame::Joined { room: room("#r"), nick: nick("bob"), rejoin: false }, "RJOINED #r bob\r\n"),
        (PeerFrame::Joined { room: room("#r"), nick: nick("bob"), rejoin: true }, "RJOINED #r bob rejoin\r\n"),
        (PeerFrame::Parted { room: room("#r"), nick: nick("bob"), away: false }, "RPARTED #r bob\r\n"),
        (PeerFrame::Parted { room: room("#r"), nick: nick("bob"), away: true }, "RPARTED #r bob away\r\n"),
        (PeerFrame::RoomMember { room: room("#r"), nick: nick("bob") }, "RMEMBER #r bob\r\n"),
        (PeerFrame::History { room: room("#r"), after: tok("s1:a:7") }, "HISTORY #r s1:a:7\r\n"),
        (
            PeerFrame::Replay { room: room("#r"), id: tok("s1:a:8"), nick: nick("bob"), text: Text::from("hi") },
            "REPLAY #r s1:a:8 bob 2\r\nhi\r\n",
        ),
        (
            PeerFrame::Submit { room: room("#r"), nick: nick("bob"), tag: Some(tok("x-1")), text: Text::from("yo") },
            "SUBMIT #r bob x-1 2\r\nyo\r\n",
        ),
        (
            PeerFrame::Submit { room: room("#r"), nick: nick("bob"), tag: None, text: Text::from("yo") },
            "SUBMIT #r bob 2\r\nyo\r\n",
        ),
        (
            PeerFrame::Tail {
                room: room("#r"),
                id: tok("s1:a:2"),
                nick: nick("bob"),
                key: Some(77),
                text: Text::from("yo"),
            },
            "TAIL #r s1:a:2 bob 77 2\r\nyo\r\n",
        ),
        (PeerFrame::Synced { room: room("#r"), last: Some(tok("s1:a:2")) }, "SYNCED #r s1:a:2\r\n"),
        (PeerFrame::Synced { room: room("#r"), last: None }, "SYNCED #r\r\n"),
        (PeerFrame::err(ErrCode::AuthFailed, "bad mac"), "ERR 511 bad mac\r\n"),
    ];
    for (v, w) in table {
        check(v, w);
    }
}

#[test]
fn verbs_of_other_links_are_refused_with_404() {
    for (input, is_client) in [
        ("PEER_HELLO 1 s1 5 ab\r\n", true),
        ("RELAY #r a b 1\r\nx\r\n", true),
        ("HELLO 1 a\r\n", false),
        ("MSG #r a b 1\r\nx\r\n", false),
    ] {
        let buf = Bytes::copy_from_slice(input.as_bytes());
        let e = if is_client {
            ClientFrame::decode(&buf, &Limits::default()).unwrap_err()
        } else {
            PeerFrame::decode(&buf, &Limits::default()).unwrap_err()
        };
        assert_eq!(e.error.code(), ErrCode::WrongLink, "{input:?}");
    }
}

#[test]
fn rows_of_older_servers_without_a_transport_are_tcp_and_unknown_ones_are_refused() {
    let limits = Limits::default();
    let old = Bytes::from_static(b"FARM_INFO 1 1\r\nSERVER s1 127.0.0.1:7000 UP 0 10 g\r\n");
    let Some((ServerFrame::FarmInfo(t), _)) = ServerFrame::decode(&old, &limits).unwrap() else { panic!() };
    assert_eq!(t.servers[0].transport, Transport::Tcp);
    let newer = Bytes::from_static(b"FARM_INFO 1 1\r\nSERVER s1 127.0.0.1:7000 UP 0 10 g tls ws://x/rttp more\r\n");
    let Some((ServerFrame::FarmInfo(t), _)) = ServerFrame::decode(&newer, &limits).unwrap() else { panic!() };
    assert_eq!(t.servers[0].transport, Transport::Tls, "later fields are ignored");
    let state = Bytes::from_static(b"STATE s2 1 127.0.0.2:7000 127.0.0.2:7100 UP 1 10 g2\r\n");
    let Some((PeerFrame::State(m), _)) = PeerFrame::decode(&state, &limits).unwrap() else { panic!() };
    assert_eq!(m.transport, Transport::Tcp);
    let bad = Bytes::from_static(b"FARM_INFO 1 1\r\nSERVER s1 127.0.0.1:7000 UP 0 10 g quic\r\n");
    assert!(ServerFrame::decode(&bad, &limits).is_err());
}
