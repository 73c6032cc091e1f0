//! Direct writes at the end of a batch, over real loopback sockets.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;

use bytes::Bytes;
use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpListener, TcpStream};

use super::{Batch, Direct, Outbound};

/// A connected pair: the server's side (shared, as a session's) and a
/// blocking client that reads what it is sent.
async fn pair() -> (Arc<TcpStream>, std::net::TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().await.unwrap();
    (Arc::new(s), c)
}

/// What the client can read now, without waiting.
fn read_now(c: &mut std::net::TcpStream) -> Vec<u8> {
    c.set_nonblocking(true).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        }
    }
    got
}

#[tokio::test]
async fn a_batch_writes_what_it_pushed_when_it_ends_and_not_before() {
    let (s, mut c) = pair().await;
    let q = Outbound::new(1 << 20);
    let counted = Counter::<u64>::default();
    q.set_direct(Direct::new(s, counted.clone()));
    {
        let _batch = Batch::start();
        q.push(Bytes::from_static(b"MSG a\r\n"));
        {
            let _inner = Batch::start();
            q.push(Bytes::from_static(b"MSG b\r\n"));
        }
        assert_eq!(q.queued_bytes(), 14, "an inner batch ends with the outer one");
    }
    assert_eq!(q.queued_bytes(), 0, "written from this thread, nobody woken");
    assert_eq!(counted.get(), 14);
    assert_eq!(q.position(), 14);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read_now(&mut c), b"MSG a\r\nMSG b\r\n");
    // Outside a batch a push waits for the connection, as without a socket.
    q.push(Bytes::from_static(b"MSG c\r\n"));
    assert_eq!(q.queued_bytes(), 7);
}

#[tokio::test]
async fn frames_a_writer_holds_are_never_overtaken_and_a_closing_queue_is_left_to_its_connection() {
    let (s, mut c) = pair().await;
    let q = Outbound::new(1 << 20);
    q.set_direct(Direct::new(s, Counter::default()));
    q.push(Bytes::from_static(b"one\r\n"));
    let mut wq = VecDeque::new();
    assert!(!q.drain_into(&mut wq), "nothing was partly written");
    {
        let _batch = Batch::start();
        q.push(Bytes::from_static(b"two\r\n"));
    }
    assert_eq!(q.queued_bytes(), 10, "the connection holds `one`: `two` waits behind it");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read_now(&mut c), b"", "nothing written out of order");
    q.written(5);
    q.push_final(Bytes::from_static(b"ERR 508 bye\r\n"));
    {
        let _batch = Batch::start();
        q.push(Bytes::from_static(b"late\r\n"));
    }
    q.drain_into(&mut wq);
    assert_eq!(
        wq,
        VecDeque::from([
            Bytes::from_static(b"one\r\n"),
            Bytes::from_static(b"two\r\n"),
            Bytes::from_static(b"ERR 508 bye\r\n")
        ])
    );
    // Once the connection lets go of the socket, nothing is written to it.
    let q = Outbound::new(1 << 20);
    let (s, mut c) = pair().await;
    q.set_direct(Direct::new(s, Counter::default()));
    q.take_direct();
    {
        let _batch = Batch::start();
        q.push(Bytes::from_static(b"x\r\n"));
    }
    assert_eq!(q.queued_bytes(), 3);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read_now(&mut c), b"");
}

#[tokio::test]
async fn what_a_full_socket_does_not_take_stays_queued_marked_as_a_partly_written_frame() {
    let (s, mut c) = pair().await;
    let q = Outbound::new(64 << 20);
    q.set_direct(Direct::new(s, Counter::default()));
    // Far more than loopback buffers hold while nobody reads.
    let big = Bytes::from(vec![b'x'; 32 << 20]);
    {
        let _batch = Batch::start();
        q.push(big.clone());
    }
    let left = q.queued_bytes();
    assert!(left > 0 && left < big.len(), "part written, the rest queued: {left}");
    assert!(q.partly_written(), "nothing else may be written before the rest");
    let mut wq = VecDeque::new();
    assert!(q.drain_into(&mut wq), "the connection learns its first frame is a remainder");
    assert_eq!(wq.iter().map(|b| b.len()).sum::<usize>(), left);
    assert!(!q.partly_written());
    assert_eq!(read_now(&mut c).len(), big.len() - left, "what the socket took arrived whole");
}

/// Notes, when a member's write is done, whether the link was written.
#[derive(Debug)]
struct LinkWritten {
    link: Arc<Outbound>,
    seen: std::sync::Mutex<Option<usize>>,
}

impl super::Release for LinkWritten {
    fn release(&self) {
        *self.seen.lock().unwrap() = Some(self.link.queued_bytes());
    }
}

#[tokio::test]
async fn a_batch_writes_its_peer_links_before_its_members() {
    let (ls, mut lc) = pair().await;
    let link = Outbound::new(1 << 20);
    link.set_direct(Direct::new(ls, Counter::default()));
    link.expect_confirmations();
    let mut members = Vec::new();
    for _ in 0..3 {
        let (s, c) = pair().await;
        let m = Outbound::new(1 << 20);
        m.set_direct(Direct::new(s, Counter::default()));
        members.push((m, c));
    }
    let watch = Arc::new(LinkWritten { link: link.clone(), seen: Default::default() });
    {
        let _batch = Batch::start();
        // The members are pushed first, as a relayed message's deliveries
        // are before its GOT; the first member's write is watched.
        for (m, _) in &members {
            m.push(Bytes::from_static(b"MSG #r m:1 ann hi\r\n"));
        }
        let mark = members[0].0.position();
        members[0].0.when_taken(mark, watch.clone());
        link.push(Bytes::from_static(b"GOT 42\r\n"));
        assert_eq!(*watch.seen.lock().unwrap(), None, "nothing is written before the batch ends");
    }
    assert_eq!(*watch.seen.lock().unwrap(), Some(0), "the link was written before the first member");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read_now(&mut lc), b"GOT 42\r\n");
    for (m, mut c) in members {
        assert_eq!(m.queued_bytes(), 0);
        assert_eq!(read_now(&mut c), b"MSG #r m:1 ann hi\r\n");
    }
}

#[tokio::test]
async fn membership_news_is_left_to_the_connection_and_written_with_what_follows_it() {
    let (s, mut c) = pair().await;
    let q = Outbound::new(1 << 20);
    q.set_direct(Direct::new(s, Counter::default()));
    {
        let _batch = Batch::start();
        assert!(q.push_lazy(Bytes::from_static(b"JOINED #r a\r\n")));
    }
    assert_eq!(q.queued_bytes(), 13, "not written from the reading thread");
    {
        // A message after it waits behind it: one write, in order.
        let _batch = Batch::start();
        q.push(Bytes::from_static(b"MSG x\r\n"));
        q.push_lazy(Bytes::from_static(b"JOINED #r b\r\n"));
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(read_now(&mut c), b"", "nothing overtook the news");
    let mut wq = VecDeque::new();
    q.drain_into(&mut wq);
    assert_eq!(
        wq,
        VecDeque::from([
            Bytes::from_static(b"JOINED #r a\r\n"),
            Bytes::from_static(b"MSG x\r\n"),
            Bytes::from_static(b"JOINED #r b\r\n")
        ]),
        "the connection writes all three at once"
    );
}
