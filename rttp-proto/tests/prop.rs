//! Property tests: arbitrary valid frames survive encode then decode, and a
//! stream split at arbitrary points decodes to the same frames.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use rttp_proto::*;

fn name(chars: &'static str, max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[{chars}]{{1,{max}}}")).unwrap()
}
fn room() -> impl Strategy<Value = Room> {
    name("A-Za-z0-9._-", 64).prop_map(|s| Room::new(&format!("#{s}")).unwrap())
}
fn nick() -> impl Strategy<Value = Nick> {
    name("A-Za-z0-9_-", 32).prop_map(|s| Nick::new(&s).unwrap())
}
fn token() -> impl Strategy<Value = Token> {
    name("!-~", 40).prop_map(|s| Token::new(&s).unwrap())
}
fn text() -> impl Strategy<Value = Text> {
    any::<String>().prop_map(Text::from)
}

fn client_frame() -> impl Strategy<Value = ClientFrame> {
    prop_oneof![
        (any::<u32>(), nick()).prop_map(|(version, nick)| ClientFrame::Hello {
            version,
            nick,
            token: None,
            resume: None
        }),
        any::<bool>().prop_map(|watch| ClientFrame::Farm { watch }),
        (room(), proptest::option::of(token())).prop_map(|(room, after)| ClientFrame::Join { room, after }),
        room().prop_map(|room| ClientFrame::Part { room }),
        room().prop_map(|room| ClientFrame::Who { room }),
        (room(), proptest::option::of(token()), text()).prop_map(|(room, tag, text)| ClientFrame::Say {
            room,
            tag,
            text
        }),
        token().prop_map(|token| ClientFrame::Ping { token }),
        token().prop_map(|token| ClientFrame::Pong { token }),
        Just(ClientFrame::Quit),
    ]
}

fn entry() -> impl Strategy<Value = ServerEntry> {
    (
        name("A-Za-z0-9._-", 64),
        name("a-z0-9.-", 30),
        1u16..,
        prop_oneof![Just(Status::Up), Just(Status::Full), Just(Status::Draining), Just(Status::Down)],
        any::<u32>(),
        any::<u32>(),
        name("A-Za-z0-9._-", 64),
    )
        .prop_map(|(id, host, port, status, users, capacity, group)| ServerEntry {
            id: ServerId::new(&id).unwrap(),
            addr: HostPort::new(&format!("{host}:{port}")).unwrap(),
            status,
            users,
            capacity,
            group: Group::new(&group).unwrap(),
            transport: Default::default(),
            ws: None,
        })
}

fn server_frame() -> impl Strategy<Value = ServerFrame> {
    prop_oneof![
        (name("A-Za-z0-9._-", 64), token())
            .prop_map(|(s, session)| ServerFrame::Welcome { server: ServerId::new(&s).unwrap(), session }),
        (any::<u64>(), proptest::collection::vec(entry(), 0..20))
            .prop_map(|(epoch, servers)| ServerFrame::FarmInfo(FarmInfo { epoch, servers })),
        (room(), token(), nick(), text()).prop_map(|(room, id, nick, text)| ServerFrame::Msg { room, id, nick, text }),
        (room(), nick(), proptest::option::of(token())).prop_map(|(room, nick, at)| ServerFrame::Joined {
            room,
            nick,
            at
        }),
        (room(), nick()).prop_map(|(room, nick)| ServerFrame::Parted { room, nick }),
        (room(), proptest::collection::vec(nick(), 0..100))
            .prop_map(|(room, nicks)| ServerFrame::Members { room, nicks }),
        (room(), any::<u32>()).prop_map(|(room, total)| ServerFrame::EndMembers { room, total }),
        token().prop_map(|token| ServerFrame::Ping { token }),
        (proptest::sample::select(ErrCode::ALL.to_vec()), "[ -~]{1,100}").prop_map(|(c, r)| ServerFrame::err(c, r)),
    ]
}

fn peer_frame() -> impl Strategy<Value = PeerFrame> {
    prop_oneof![
        (any::<u32>(), name("A-Za-z0-9._-", 64), any::<u64>(), token(), proptest::option::of(token())).prop_map(
            |(version, id, generation, nonce, features)| {
                PeerFrame::Hello { version, id: ServerId::new(&id).unwrap(), generation, nonce, features }
            }
        ),
        any::<u64>().prop_map(|position| PeerFrame::Got { position }),
        token().prop_map(|mac| PeerFrame::Auth { mac }),
        Just(PeerFrame::Ok),
        Just(PeerFrame::Beat),
        (entry(), any::<u64>(), 1u16..).prop_map(|(e, generation, port)| PeerFrame::State(Box::new(PeerStateMsg {
            id: e.id,
            generation,
            client_addr: e.addr,
            peer_addr: HostPort::new(&format!("127.0.0.1:{port}")).unwrap(),
            status: e.status,
            users: e.users,
            capacity: e.capacity,
            group: e.group,
            transport: Default::default(),
            ws: None,
        }))),
        room().prop_map(|room| PeerFrame::Interest { room }),
        room().prop_map(|room| PeerFrame::Uninterest { room }),
        (room(), token(), nick(), proptest::option::of(token()), text())
            .prop_map(|(room, id, nick, tag, text)| PeerFrame::Relay { room, id, nick, tag, text }),
        (room(), nick(), any::<bool>()).prop_map(|(room, nick, rejoin)| PeerFrame::Joined { room, nick, rejoin }),
        (room(), nick()).prop_map(|(room, nick)| PeerFrame::RoomMember { room, nick }),
        (room(), token()).prop_map(|(room, after)| PeerFrame::History { room, after }),
        (room(), token(), nick(), text()).prop_map(|(room, id, nick, text)| PeerFrame::Replay { room, id, nick, text }),
        (room(), nick(), proptest::option::of(token()), text()).prop_map(|(room, nick, tag, text)| PeerFrame::Submit {
            room,
            nick,
            tag,
            text
        }),
        (room(), token(), nick(), proptest::option::of(any::<u64>()), text())
            .prop_map(|(room, id, nick, key, text)| PeerFrame::Tail { room, id, nick, key, text }),
        (room(), proptest::option::of(token())).prop_map(|(room, last)| PeerFrame::Synced { room, last }),
    ]
}

fn decode_all<F: Frame>(chunks: &[Bytes]) -> Vec<F> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for c in chunks {
        buf.extend_from_slice(c);
        while let Some(f) = F::decode_buf(&mut buf, &Limits::default()).unwrap() {
            out.push(f);
        }
    }
    assert!(buf.is_empty(), "bytes left over");
    out
}

fn split(wire: &Bytes, cuts: &[usize]) -> Vec<Bytes> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    let mut at = 0;
    let mut out = Vec::new();
    for c in cuts.into_iter().chain([wire.len()]) {
        out.push(wire.slice(at..c));
        at = c;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn client_round_trip(f in client_frame()) {
        let wire = f.to_bytes();
        let (g, used) = ClientFrame::decode(&wire, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(g, f);
        prop_assert_eq!(used, wire.len());
    }

    #[test]
    fn server_round_trip(f in server_frame()) {
        let wire = f.to_bytes();
        let (g, used) = ServerFrame::decode(&wire, &Limits::default()).unwrap().unwrap();
        prop_assert_eq!(g, f);
        prop_assert_eq!(used, wire.len());
    }

    #[test]
    fn client_stream_split_anywhere(frames in proptest::collection::vec(client_frame(), 1..20),
                                    cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let mut wire = BytesMut::new();
        for f in &frames { f.encode(&mut wire); }
        let got: Vec<ClientFrame> = decode_all(&split(&wire.freeze(), &cuts));
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn server_stream_split_anywhere(frames in proptest::collection::vec(server_frame(), 1..10),
                                    cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let mut wire = BytesMut::new();
        for f in &frames { f.encode(&mut wire); }
        let got: Vec<ServerFrame> = decode_all(&split(&wire.freeze(), &cuts));
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn peer_stream_split_anywhere(frames in proptest::collection::vec(peer_frame(), 1..20),
                                  cuts in proptest::collection::vec(any::<usize>(), 0..10)) {
        let mut wire = BytesMut::new();
        for f in &frames { f.encode(&mut wire); }
        let got: Vec<PeerFrame> = decode_all(&split(&wire.freeze(), &cuts));
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut buf = BytesMut::from(&input[..]);
        for _ in 0..input.len() + 1 {
            match ClientFrame::decode_buf(&mut buf, &Limits::default()) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) if e.is_fatal() => break,
                Err(_) => {}
            }
        }
        let _ = ServerFrame::decode(&Bytes::from(input), &Limits::default());
    }

    /// A view agrees with typed decoding on every input: the same frame
    /// length, the same "need more bytes", the same error and skip when the
    /// framing is bad, and the typed frame it builds is the decoded one.
    #[test]
    fn a_view_decodes_as_the_typed_frame_does(
        frames in proptest::collection::vec(server_frame(), 1..4),
        noise in proptest::collection::vec(prop_oneof![Just(b' '), Just(b'\n'), Just(b'\r'), Just(0u8), any::<u8>()], 0..40),
        at in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut wire = BytesMut::new();
        for f in &frames { f.encode(&mut wire); }
        // Some inputs stay valid, some get bytes of noise spliced in.
        let mut bytes = wire.to_vec();
        let pos = at.index(bytes.len() + 1);
        bytes.splice(pos..pos, noise.iter().copied());
        let bytes = Bytes::from(bytes[..cut.index(bytes.len() + 1)].to_vec());
        let typed = ServerFrame::decode(&bytes, &Limits::default());
        let view = FrameView::<ServerFrame>::decode(&bytes, &Limits::default());
        match (typed, view) {
            (Ok(None), Ok(None)) => {}
            (Ok(Some((f, used))), Ok(Some(v))) => {
                prop_assert_eq!(v.len(), used);
                prop_assert_eq!(v.frame_in(&bytes.slice(..used)).unwrap(), f.clone());
                prop_assert_eq!(v.frame().unwrap(), f);
            }
            // The view checks framing only: what it accepts, the typed
            // frame may still refuse (a bad room name), with a skip.
            (Err(e), Ok(Some(v))) => {
                prop_assert_eq!(e.skip, Some(v.len()));
                prop_assert_eq!(v.frame().unwrap_err(), e.error);
            }
            (Err(e), Err(w)) => prop_assert_eq!(e, w),
            (t, v) => prop_assert!(false, "typed {:?} but view {:?}", t, v.map(|v| v.map(|v| v.len()))),
        }
    }
}
