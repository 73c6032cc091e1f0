//! RTTP over WebSocket, over real sockets: a conversation verb by verb
//! (one frame per text message), a WebSocket session and a TCP session in
//! one room, what a browser may not send (a binary message, a message that
//! is not whole frames, one over the frame limits: an `ERR`, then the
//! documented close code, and everyone else unaffected), the `Origin`
//! allow-list, and the TCP port's malformed-input cases. The client is
//! tungstenite's, blocking, on its own thread.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::Raw;
use rttp_proto::{Frame, Limits, ServerFrame};
use rttp_server::{Config, Listeners, Server};
use tokio::net::TcpListener;
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};

type Ws = WebSocket<std::net::TcpStream>;

/// A server with a client port and a web listener; (server, client addr, web addr).
async fn start(origins: &[&str]) -> (Server, SocketAddr, SocketAddr) {
    start_with(origins, |_| {}).await
}

async fn start_with(origins: &[&str], tweak: impl FnOnce(&mut Config)) -> (Server, SocketAddr, SocketAddr) {
    let client = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let web = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (caddr, waddr) = (client.local_addr().unwrap(), web.local_addr().unwrap());
    let mut cfg = Config::new("s1").unwrap();
    cfg.listen = caddr;
    cfg.advertise = caddr.into();
    cfg.ws_listen = Some(waddr);
    cfg.ws_origins = origins.iter().map(|o| o.to_string()).collect();
    tweak(&mut cfg);
    (Server::start_with(cfg, Listeners { client, metrics: None, peer: None, web: Some(web) }), caddr, waddr)
}

// Test code: the error is inspected at once, its size does not matter.
#[allow(clippy::result_large_err)]
fn connect(addr: SocketAddr, origin: Option<&str>) -> Result<Ws, tungstenite::Error> {
    let mut req = format!("ws://{addr}/rttp").into_client_request()?;
    if let Some(o) = origin {
        req.headers_mut().insert("Origin", o.parse().unwrap());
    }
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    tungstenite::client(req, tcp).map(|(ws, _)| ws).map_err(|e| match e {
        tungstenite::HandshakeError::Failure(e) => e,
        tungstenite::HandshakeError::Interrupted(_) => tungstenite::Error::ConnectionClosed,
    })
}

fn send(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).unwrap();
}

/// The next message, which must be exactly one frame.
fn frame(ws: &mut Ws) -> ServerFrame {
    loop {
        match ws.read().expect("a message") {
            Message::Text(t) => {
                let bytes = Bytes::copy_from_slice(t.as_bytes());
                let (f, used) = ServerFrame::decode(&bytes, &Limits::default()).unwrap().expect("a whole frame");
                assert_eq!(used, bytes.len(), "one frame per message: {t:?}");
                return f;
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// The close code the server sends, after any text messages (returned).
fn closed(ws: &mut Ws) -> (Vec<ServerFrame>, Option<CloseCode>) {
    let mut frames = Vec::new();
    loop {
        match ws.read() {
            Ok(Message::Text(t)) => {
                let b = Bytes::copy_from_slice(t.as_bytes());
                frames.push(ServerFrame::decode(&b, &Limits::default()).unwrap().unwrap().0);
            }
            Ok(Message::Close(c)) => return (frames, c.map(|c| c.code)),
            Ok(_) => {}
            Err(_) => return (frames, None),
        }
    }
}

/// A plain HTTP GET of `path`: the whole answer, head and body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = tcp.read_to_string(&mut answer);
    answer
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_session_speaks_rttp_with_tcp_sessions() {
    let (server, caddr, waddr) = start(&[]).await;
    let mut tcp = Raw::hello(caddr, "bob").await;
    tcp.send("JOIN #web\r\n").await;
    tcp.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    let ws = blocking(move || {
        let mut ws = connect(waddr, None).expect("upgrade");
        send(&mut ws, "PING before\r\n");
        assert_eq!(frame(&mut ws), ServerFrame::Pong { token: "before".parse().unwrap() });
        send(&mut ws, "HELLO 1 alice\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Welcome { .. }));
        let ServerFrame::FarmInfo(t) = frame(&mut ws) else { panic!("FARM_INFO") };
        let ws_url = t.servers[0].ws.expect("the table names the web address").to_string();
        assert_eq!(ws_url, format!("ws://{waddr}/rttp"));
        send(&mut ws, "JOIN #web\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Joined { .. }));
        send(&mut ws, "SAY #web k-1 8\r\nfrom web\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Msg { .. }));
        assert!(matches!(frame(&mut ws), ServerFrame::Ack { .. }));
        send(&mut ws, "BOGUS\r\n");
        assert_eq!(frame(&mut ws).err_code(), Some(rttp_proto::ErrCode::UnknownVerb));
        send(&mut ws, "WHO #web\r\n");
        let ServerFrame::Members { nicks, .. } = frame(&mut ws) else { panic!("MEMBERS") };
        assert_eq!(nicks.len(), 2);
        assert!(matches!(frame(&mut ws), ServerFrame::EndMembers { total: 2, .. }));
        ws
    })
    .await;
    // The TCP member hears the web member, and the other way round.
    let heard = tcp.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(heard, ServerFrame::Msg { ref text, .. } if text.as_str() == "from web"), "{heard:?}");
    tcp.send("SAY #web 8\r\nfrom tcp\r\n").await;
    blocking(move || {
        let mut ws = ws;
        let f = frame(&mut ws);
        assert!(matches!(f, ServerFrame::Msg { ref text, .. } if text.as_str() == "from tcp"), "{f:?}");
        // A message many times the server's WebSocket read chunk arrives whole.
        let long = "L".repeat(8_000);
        send(&mut ws, &format!("SAY #web {}\r\n{long}\r\n", long.len()));
        let f = frame(&mut ws);
        assert!(matches!(f, ServerFrame::Msg { ref text, .. } if text.as_str() == long), "a long message, whole");
        send(&mut ws, "QUIT\r\n");
        let (_, code) = closed(&mut ws);
        assert_eq!(code, Some(CloseCode::Normal));
    })
    .await;
    // (after its own "from tcp", which comes back to it first)
    let own = tcp.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(own, ServerFrame::Msg { ref text, .. } if text.as_str() == "from tcp"), "{own:?}");
    let long = tcp.until(|f| matches!(f, ServerFrame::Msg { .. })).await;
    assert!(matches!(long, ServerFrame::Msg { ref text, .. } if text.as_str().len() == 8_000), "the TCP member too");
    assert_eq!(server.shared().metrics.ws_sessions.get(), 1);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_browser_may_not_send_is_refused_and_others_go_on() {
    let (server, caddr, waddr) = start(&[]).await;
    let mut bystander = Raw::hello(caddr, "bystander").await;
    let limit = server.shared().config.limits.max_line + server.shared().config.limits.max_body + 4;
    blocking(move || {
        let cases: [(Message, CloseCode, u16); 3] = [
            (Message::binary(b"HELLO 1 x\r\n".to_vec()), CloseCode::Unsupported, 400),
            (Message::text("HELLO 1 x"), CloseCode::Invalid, 400),
            (Message::text("x".repeat(limit + 1)), CloseCode::Size, 506),
        ];
        for (msg, want_close, want_err) in cases {
            let mut ws = connect(waddr, None).expect("upgrade");
            ws.send(msg).unwrap();
            let (frames, code) = closed(&mut ws);
            assert_eq!(code, Some(want_close));
            assert_eq!(frames.last().and_then(|f| f.err_code()).map(|c| c.as_u16()), Some(want_err), "{frames:?}");
        }
    })
    .await;
    bystander.send("PING fine\r\n").await;
    bystander.until(|f| matches!(f, ServerFrame::Pong { .. })).await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_upgrade() {
    let (server, _, waddr) = start(&["https://chat.example.org"]).await;
    blocking(move || {
        for ok in [None, Some(format!("http://{waddr}")), Some("https://chat.example.org".into())] {
            assert!(connect(waddr, ok.as_deref()).is_ok(), "{ok:?} is allowed");
        }
        match connect(waddr, Some("https://evil.example")) {
            Err(tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
            other => panic!("another site's page got {other:?}"),
        }
        // Anything but the upgrade at /rttp, the page and its client: not found.
        let answer = http_get(waddr, "/nothing");
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        // The JavaScript client is served as an ES module.
        let answer = http_get(waddr, "/rttp.js");
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("text/javascript"), "{answer}");
        assert!(answer.contains("export class RttpClient"), "the library itself");
        // The page, with the hooks tests and people rely on.
        let answer = http_get(waddr, "/");
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("text/html"), "{answer}");
        for hook in ["id=\"messages\"", "id=\"say\"", "id=\"servers\"", "id=\"status\"", "./rttp.js"] {
            assert!(answer.contains(hook), "the page has {hook}");
        }
    })
    .await;
    assert_eq!(server.shared().metrics.ws_refused.get(), 1);
    server.shutdown().await;
}

/// A WebSocket reader that stops reading while 12 MB of messages come
/// (more than the socket buffers hold): frames are cut between writes, and
/// each must still arrive whole and in order when it reads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_cut_by_a_full_socket_arrive_whole() {
    let (server, caddr, waddr) = start_with(&[], common::no_rate_limits).await;
    let ws = blocking(move || {
        let mut ws = connect(waddr, None).expect("upgrade");
        send(&mut ws, "HELLO 1 slow\r\n");
        send(&mut ws, "JOIN #big\r\n");
        loop {
            if let ServerFrame::Joined { .. } = frame(&mut ws) {
                return ws;
            }
        }
    })
    .await;
    let mut talker = Raw::hello(caddr, "talker").await;
    talker.send("JOIN #big\r\n").await;
    talker.until(|f| matches!(f, ServerFrame::Joined { .. })).await;
    let body = "w".repeat(60_000);
    for i in 0..200 {
        talker.send(&format!("SAY #big {}\r\n{i:03}{body}\r\n", body.len() + 3)).await;
    }
    blocking(move || {
        let mut ws = ws;
        let mut got = Vec::new();
        while got.len() < 200 {
            if let ServerFrame::Msg { text, .. } = frame(&mut ws) {
                got.push(text.as_str()[..3].to_string());
            }
        }
        assert_eq!(got, (0..200).map(|i| format!("{i:03}")).collect::<Vec<_>>());
    })
    .await;
    server.shutdown().await;
}

/// The web listener's own limits: a request head over 16 KiB is refused,
/// one that never ends is cut at `--hello-timeout`, and a WebSocket
/// session opened meanwhile is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_stalled_requests_are_cut_and_others_go_on() {
    let (server, _, waddr) = start_with(&[], |c| c.hello_timeout = Duration::from_secs(1)).await;
    assert_eq!(rttp_server::web::MAX_REQUEST_HEAD, 16 * 1024, "the documented bound");
    blocking(move || {
        use std::io::{Read, Write};
        let mut ws = connect(waddr, None).expect("upgrade");
        send(&mut ws, "HELLO 1 steady\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Welcome { .. }));
        // A head of 20 KiB: refused with a 4xx, or cut.
        let mut big = std::net::TcpStream::connect(waddr).unwrap();
        big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let head = format!("GET /rttp HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n", "p".repeat(20 * 1024));
        let _ = big.write_all(head.as_bytes());
        let mut answer = String::new();
        let _ = big.read_to_string(&mut answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
        // A head that never ends: closed after the HELLO deadline, not held.
        let started = std::time::Instant::now();
        let mut slow = std::net::TcpStream::connect(waddr).unwrap();
        slow.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        slow.write_all(b"GET /rttp HTTP/1.1\r\nHost: x\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        assert!(started.elapsed() < Duration::from_secs(4), "a stalled head was held {:?}", started.elapsed());
        // The session opened before goes on.
        send(&mut ws, "PING still\r\n");
        loop {
            match frame(&mut ws) {
                ServerFrame::Pong { token } => break assert_eq!(token.as_str(), "still"),
                ServerFrame::FarmInfo(_) => {}
                other => panic!("the session was disturbed: {other:?}"),
            }
        }
    })
    .await;
    server.shutdown().await;
}

/// The TCP port's conversation and malformed-input cases, over WebSocket:
/// what needs a session before HELLO, each malformed frame answered with
/// its precise code while the session lives on, a resent tagged SAY
/// acknowledged again and not delivered twice, PART and errors after it,
/// and too many bad frames in a row closing the session (`ERR 501`).
/// (Invalid UTF-8 cannot travel in a text message: a binary message gets
/// 1003, `what_a_browser_may_not_send_is_refused_and_others_go_on`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_conversation_and_malformed_input_cases_hold_over_websocket() {
    let (server, _caddr, waddr) = start_with(&[], |c| c.max_bad_frames = 10).await;
    blocking(move || {
        let code = |f: ServerFrame| f.err_code().map(|c| c.as_u16());
        let mut ws = connect(waddr, None).expect("upgrade");
        send(&mut ws, "FARM\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::FarmInfo(_)));
        send(&mut ws, "JOIN #r\r\n");
        assert_eq!(code(frame(&mut ws)), Some(405), "JOIN needs a session");
        send(&mut ws, "HELLO 1 alice\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Welcome { .. }));
        assert!(matches!(frame(&mut ws), ServerFrame::FarmInfo(_)));
        send(&mut ws, "JOIN #r\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Joined { .. }));
        for (input, want) in [
            ("join #r\r\n", 400),
            ("JOIN  #r\r\n", 400),
            ("FROB\r\n", 401),
            ("JOIN r\r\n", 402),
            ("WELCOME s1 x\r\n", 404),
            ("HELLO 1 again\r\n", 406),
            ("PART #nowhere\r\n", 407),
        ] {
            send(&mut ws, input);
            assert_eq!(code(frame(&mut ws)), Some(want), "{input:?}");
        }
        send(&mut ws, "PING alive\r\n");
        assert_eq!(frame(&mut ws), ServerFrame::Pong { token: "alive".parse().unwrap() });
        send(&mut ws, "SAY #r t-1 3\r\nhey\r\n");
        let ServerFrame::Msg { id, .. } = frame(&mut ws) else { panic!("MSG") };
        assert_eq!(frame(&mut ws), ServerFrame::Ack { tag: "t-1".parse().unwrap(), id });
        send(&mut ws, "SAY #r t-1 3\r\nhey\r\n");
        assert_eq!(frame(&mut ws), ServerFrame::Ack { tag: "t-1".parse().unwrap(), id }, "the copy: no MSG, same ACK");
        send(&mut ws, "PART #r\r\n");
        assert!(matches!(frame(&mut ws), ServerFrame::Parted { .. }));
        send(&mut ws, "SAY #r 1\r\nx\r\n");
        assert_eq!(code(frame(&mut ws)), Some(407));
        // Ten bad frames in a row: the tenth's ERR, then 501 and the close.
        for _ in 0..9 {
            send(&mut ws, "NOPE\r\n");
            assert_eq!(code(frame(&mut ws)), Some(401));
        }
        send(&mut ws, "NOPE\r\n");
        let (frames, _) = closed(&mut ws);
        let codes: Vec<Option<u16>> = frames.into_iter().map(code).collect();
        assert_eq!(codes, [Some(401), Some(501)]);
    })
    .await;
    server.shutdown().await;
}
