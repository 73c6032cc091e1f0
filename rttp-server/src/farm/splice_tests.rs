//! The peer handshake inside mutual TLS, over real sockets: it works end to
//! end, and a relay that holds a valid farm certificate (but not the
//! cluster secret) cannot splice two servers together by forwarding their
//! handshake, because each proof carries its own TLS session's exporter
//! value. The same relay succeeds when the binding is left out, which is
//! what shows the binding is the defence.

use std::net::SocketAddr;

use integration::certs::Ca;
use rttp_conn::tls::Stream;
use rttp_conn::PeerConn;
use tokio::net::{TcpListener, TcpStream};

use super::auth::{Secret, EXPORTER_LABEL, EXPORTER_LEN};
use super::handshake::{accept, dial, HandshakeError, Me, Peer};
use crate::tls::PeerTls;

struct Certs {
    a: PeerTls,
    b: PeerTls,
    relay: PeerTls,
}

fn certs(name: &str) -> Certs {
    let dir = std::env::temp_dir().join(format!("rttp-splice-{}-{name}", std::process::id()));
    let ca = Ca::new(&dir, "farm-ca");
    let load = |id: &str| {
        let p = ca.issue(id, &["127.0.0.1"]);
        PeerTls::load(&ca.cert, &p.cert, &p.key).expect("peer TLS")
    };
    Certs { a: load("s1"), b: load("s2"), relay: load("relay") }
}

fn binding(c: &PeerConn<Stream>, bind: bool) -> Vec<u8> {
    if !bind {
        return Vec::new();
    }
    c.stream_ref().exporter(EXPORTER_LABEL, EXPORTER_LEN).expect("a TLS link has an exporter")
}

fn me<'a>(id: &str, secret: &'a Secret, binding: &'a [u8]) -> Me<'a> {
    Me { id: id.parse().unwrap(), generation: 1, secret, binding }
}

/// s1 dials `to`, s2 accepts on `b_listener`; both with TLS and the
/// secret, each binding its own TLS session when `bind`.
async fn pair(
    c: &Certs,
    to: SocketAddr,
    b_listener: TcpListener,
    bind: bool,
) -> (Result<Peer, HandshakeError>, Result<Peer, HandshakeError>) {
    let secret = Secret::new("splice-test-cluster-secret").unwrap();
    let dialer = async {
        let tcp = TcpStream::connect(to).await.unwrap();
        let mut conn = PeerConn::new(c.a.dial(tcp, to).await.expect("s1's TLS"));
        let b = binding(&conn, bind);
        dial(&mut conn, me("s1", &secret, &b)).await
    };
    let acceptor = async {
        let (tcp, _) = b_listener.accept().await.unwrap();
        let mut conn = PeerConn::new(c.b.accept(tcp).await.expect("s2's TLS"));
        let b = binding(&conn, bind);
        accept(&mut conn, me("s2", &secret, &b)).await
    };
    tokio::join!(dialer, acceptor)
}

#[tokio::test]
async fn the_handshake_runs_inside_mutual_tls() {
    let c = certs("direct");
    let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = b.local_addr().unwrap();
    let (d, a) = pair(&c, at, b, true).await;
    assert_eq!(d.expect("s1 authenticated s2").id.as_str(), "s2");
    assert_eq!(a.expect("s2 authenticated s1").id.as_str(), "s1");
}

/// A relay with a farm certificate: terminates s1's TLS, opens its own to
/// s2, and copies the plaintext both ways.
async fn relay(c: &Certs, bind: bool) -> (Result<Peer, HandshakeError>, Result<Peer, HandshakeError>) {
    let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let b_addr = b.local_addr().unwrap();
    let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = front.local_addr().unwrap();
    let relay_tls = c.relay.clone();
    let relay = tokio::spawn(async move {
        let (tcp, _) = front.accept().await.unwrap();
        let mut inner = relay_tls.accept(tcp).await.expect("the relay's TLS with s1");
        let tcp = TcpStream::connect(b_addr).await.unwrap();
        let mut outer = relay_tls.dial(tcp, b_addr).await.expect("the relay's TLS with s2");
        let _ = tokio::io::copy_bidirectional(&mut inner, &mut outer).await;
    });
    let r = pair(c, front_addr, b, bind).await;
    relay.abort();
    r
}

#[tokio::test]
async fn a_relay_with_a_farm_certificate_cannot_splice_a_bound_handshake() {
    let c = certs("relay");
    let (d, a) = relay(&c, true).await;
    assert!(matches!(d, Err(HandshakeError::Refused(_))), "s1 accepted a spliced link: {d:?}");
    assert!(a.is_err(), "s2 accepted a spliced link: {a:?}");
    // Without the binding the same relay gets an authenticated link through:
    // the binding is what refuses it above.
    let (d, a) = relay(&c, false).await;
    assert!(d.is_ok() && a.is_ok(), "an unbound handshake is spliceable: {d:?} {a:?}");
}
