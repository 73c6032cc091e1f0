//! A table of malformed inputs, each with the error it must give and
//! whether decoding can continue after it.

use bytes::{Bytes, BytesMut};
use rttp_proto::*;

fn client(input: &[u8]) -> Result<Option<(ClientFrame, usize)>, DecodeError> {
    ClientFrame::decode(&Bytes::copy_from_slice(input), &Limits::default())
}

#[test]
fn malformed_client_input() {
    let long_line = {
        let mut v = b"PING ".to_vec();
        v.resize(MAX_LINE, b'a');
        v
    };
    // (input, expected code, Some(skip) or None for fatal)
    let table: Vec<(Vec<u8>, ErrCode, Option<usize>)> = vec![
        (long_line.clone(), ErrCode::LineTooLong, None),
        (b"SAY #r 65537\r\n".to_vec(), ErrCode::BodyTooLarge, None),
        (b"SAY #r 99999999999999999999999\r\n".to_vec(), ErrCode::BodyTooLarge, None),
        (b"SAY #r 3\r\nabcdef\r\n".to_vec(), ErrCode::FramingLost, None),
        (b"SAY #r 2\r\n\xff\xfe\r\n".to_vec(), ErrCode::BadUtf8, Some(14)),
        (b"SAY #r x\r\nab\r\n".to_vec(), ErrCode::BadArgument, Some(10)),
        (b"SAY #r\r\n".to_vec(), ErrCode::BadArgument, Some(8)),
        (b"JOIN room\r\n".to_vec(), ErrCode::BadArgument, Some(11)),
        (b"JOIN #bad/room\r\n".to_vec(), ErrCode::BadArgument, Some(16)),
        (b"HELLO 1 bad.nick\r\n".to_vec(), ErrCode::BadArgument, Some(18)),
        (b"HELLO x alice\r\n".to_vec(), ErrCode::BadArgument, Some(15)),
        (b"HELLO 1\r\n".to_vec(), ErrCode::BadArgument, Some(9)),
        (b"JOIN\r\n".to_vec(), ErrCode::BadArgument, Some(6)),
        (b"FOO bar\r\n".to_vec(), ErrCode::UnknownVerb, Some(9)),
        (b"join #r\r\n".to_vec(), ErrCode::BadFrame, Some(9)),
        (b"Join #r\r\n".to_vec(), ErrCode::BadFrame, Some(9)),
        (b"JOIN  #r\r\n".to_vec(), ErrCode::BadFrame, Some(10)),
        (b"JOIN #r \r\n".to_vec(), ErrCode::BadFrame, Some(10)),
        (b" JOIN #r\r\n".to_vec(), ErrCode::BadFrame, Some(10)),
        (b"JOIN\t#r\r\n".to_vec(), ErrCode::BadFrame, Some(9)),
        (b"\r\n".to_vec(), ErrCode::BadFrame, Some(2)),
        (b"PING a\rb\r\n".to_vec(), ErrCode::BadFrame, Some(10)),
        (b"WELCOME s1 x\r\n".to_vec(), ErrCode::WrongLink, Some(14)),
        (b"MSG #r 1 a 2\r\nhi\r\n".to_vec(), ErrCode::WrongLink, Some(14)),
    ];
    for (input, code, skip) in table {
        let err = client(&input).expect_err(&String::from_utf8_lossy(&input));
        assert_eq!(err.error.code(), code, "{:?}: {}", String::from_utf8_lossy(&input), err);
        assert_eq!(err.skip, skip, "{:?}", String::from_utf8_lossy(&input));
    }
}

#[test]
fn limits_are_checked_before_buffering() {
    // 4,095 bytes without a line end still might become a valid line.
    let mut v = b"PING ".to_vec();
    v.resize(MAX_LINE - 1, b'a');
    assert_eq!(client(&v).unwrap(), None);
    // A line of exactly 4,096 bytes including CRLF is accepted.
    v.truncate(MAX_LINE - 2);
    v.extend_from_slice(b"\r\n");
    assert!(
        ClientFrame::decode(&Bytes::from(v), &Limits { max_line: MAX_LINE, ..Limits::default() })
            .is_err_and(|e| e.error.code() == ErrCode::BadArgument),
        "too long a token, but a complete line"
    );
    // A body declared over the limit is refused from its header alone.
    let e = client(b"SAY #r 70000\r\n").unwrap_err();
    assert_eq!(e.error, Error::BodyTooLarge { len: 70000, limit: MAX_BODY });
    // Smaller configured limits apply.
    let small = Limits { max_line: 16, max_body: 4, max_farm_servers: 2 };
    let e = ClientFrame::decode(&Bytes::from_static(b"PING 0123456789abcdef"), &small).unwrap_err();
    assert_eq!(e.error, Error::LineTooLong { limit: 16 });
    let e = ClientFrame::decode(&Bytes::from_static(b"SAY #r 5\r\n"), &small).unwrap_err();
    assert_eq!(e.error.code(), ErrCode::BodyTooLarge);
    assert!(ClientFrame::decode(&Bytes::from_static(b"SAY #r 4\r\nabcd\r\n"), &small).unwrap().is_some());
}

#[test]
fn malformed_server_input() {
    let d = |b: &'static [u8]| ServerFrame::decode(&Bytes::from_static(b), &Limits::default());
    // FARM_INFO announcing 2 servers but followed by another frame.
    let e = d(b"FARM_INFO 1 2\r\nSERVER s1 127.0.0.1:7000 UP 0 10 g\r\nPONG x\r\n").unwrap_err();
    assert_eq!(e.error.code(), ErrCode::BadFrame);
    assert_eq!(e.skip, Some(15 + 36), "skips the header and the one good line");
    // Incomplete block: need more.
    assert_eq!(d(b"FARM_INFO 1 2\r\nSERVER s1 127.0.0.1:7000 UP 0 10 g\r\n").unwrap(), None);
    // Bad status, bad address, missing fields.
    for b in [
        &b"FARM_INFO 1 1\r\nSERVER s1 127.0.0.1:7000 SLEEPY 0 10 g\r\n"[..],
        b"FARM_INFO 1 1\r\nSERVER s1 nowhere UP 0 10 g\r\n",
        b"FARM_INFO 1 1\r\nSERVER s1 127.0.0.1:7000 UP 0 10\r\n",
        b"FARM_INFO 1 1\r\nSERVER s1 127.0.0.1:7000 UP -1 10 g\r\n",
    ] {
        let e = ServerFrame::decode(&Bytes::copy_from_slice(b), &Limits::default()).unwrap_err();
        assert_eq!(e.error.code(), ErrCode::BadArgument, "{}", String::from_utf8_lossy(b));
        assert_eq!(e.skip, Some(b.len()));
    }
    // A block over the configured limit is refused at its header.
    let e = d(b"FARM_INFO 1 5000\r\n").unwrap_err();
    assert!(e.is_fatal());
    assert_eq!(e.error.code(), ErrCode::BodyTooLarge);
    // A SERVER line on its own, an ERR without a three-digit code or reason.
    assert_eq!(d(b"SERVER s1 h:1 UP 0 1 g\r\n").unwrap_err().error.code(), ErrCode::BadFrame);
    assert_eq!(d(b"ERR 40 short\r\n").unwrap_err().error.code(), ErrCode::BadArgument);
    assert_eq!(d(b"ERR 400\r\n").unwrap_err().error.code(), ErrCode::BadArgument);
    assert_eq!(d(b"HELLO 1 a\r\n").unwrap_err().error.code(), ErrCode::WrongLink);
}

#[test]
fn decode_buf_drops_bad_frames_and_continues() {
    let mut buf = BytesMut::from(&b"FOO\r\nJOIN #ok\r\n"[..]);
    let e = ClientFrame::decode_buf(&mut buf, &Limits::default()).unwrap_err();
    assert_eq!(e.error.code(), ErrCode::UnknownVerb);
    let f = ClientFrame::decode_buf(&mut buf, &Limits::default()).unwrap().unwrap();
    assert_eq!(f, ClientFrame::Join { room: Room::new("#ok").unwrap(), after: None });
    assert!(buf.is_empty());
}
