//! Decode and encode throughput over realistic buffers, against the floor
//! any line protocol pays: splitting the same bytes into lines with memchr.

use bytes::{Bytes, BytesMut};
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rttp_proto::*;

const FRAMES: usize = 1000;

fn msg(body: usize, i: usize) -> ServerFrame {
    ServerFrame::Msg {
        room: Room::new("#general").unwrap(),
        id: Token::new(&format!("s1:1:{i}")).unwrap(),
        nick: Nick::new("alice_42").unwrap(),
        text: Text::from("x".repeat(body)),
    }
}

fn farm_info() -> ServerFrame {
    ServerFrame::FarmInfo(FarmInfo {
        epoch: 42,
        servers: (0..16)
            .map(|i| ServerEntry {
                id: ServerId::new(&format!("s{i}")).unwrap(),
                addr: HostPort::new(&format!("127.0.0.{}:7000", i + 1)).unwrap(),
                status: Status::Up,
                users: 1234 + i,
                capacity: 10000,
                group: Group::new(if i % 2 == 0 { "g1" } else { "g2" }).unwrap(),
                transport: Default::default(),
                ws: None,
            })
            .collect(),
    })
}

fn buffer<F: Frame>(frames: &[F]) -> Bytes {
    let mut b = BytesMut::new();
    for f in frames {
        f.encode(&mut b);
    }
    b.freeze()
}

fn decode_all<F: Frame>(buf: &Bytes) -> usize {
    let limits = Limits::default();
    let mut at = 0;
    let mut n = 0;
    while let Some((f, used)) = F::decode(&buf.slice(at..), &limits).unwrap() {
        black_box(f);
        at += used;
        n += 1;
    }
    n
}

/// Decoding borrowed views and reading every field a `MSG` reader uses
/// (room, id, nick, text): no copy, no allocation, no reference count.
fn view_all<'a, F>(buf: &'a Bytes, decode: impl Fn(&'a [u8]) -> Option<FrameView<'a, F>>) -> usize {
    let mut at = 0;
    let mut n = 0;
    while let Some(v) = decode(&buf[at..]) {
        black_box((v.verb(), v.arg(0), v.arg(1), v.arg(2), v.text()));
        at += v.len();
        n += 1;
    }
    n
}

#[inline(always)]
fn server_view(b: &[u8]) -> Option<FrameView<'_, ServerFrame>> {
    FrameView::<ServerFrame>::decode(b, &Limits::default()).unwrap()
}

#[inline(always)]
fn client_view(b: &[u8]) -> Option<FrameView<'_, ClientFrame>> {
    FrameView::<ClientFrame>::decode(b, &Limits::default()).unwrap()
}

/// The floor any line protocol pays: find every line end with memchr and
/// hand each line to the caller as a zero-copy `Bytes`, as a line codec does.
fn memchr_lines(buf: &Bytes) -> usize {
    let mut at = 0;
    let mut n = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[at..]) {
        black_box(buf.slice(at..at + i + 1));
        at += i + 1;
        n += 1;
    }
    n
}

/// Only counting line ends (SIMD memchr, nothing handed out): shown for
/// reference, not a decoder anyone could ship.
fn memchr_count(buf: &[u8]) -> usize {
    memchr::memchr_iter(b'\n', buf).count()
}

fn bench(c: &mut Criterion) {
    let sets: Vec<(&str, Bytes, usize, bool)> = vec![
        ("msg-64", buffer(&(0..FRAMES).map(|i| msg(64, i)).collect::<Vec<_>>()), FRAMES, true),
        ("msg-1k", buffer(&(0..FRAMES).map(|i| msg(1024, i)).collect::<Vec<_>>()), FRAMES, true),
        (
            "say-64",
            buffer(
                &(0..FRAMES)
                    .map(|_| ClientFrame::Say {
                        room: Room::new("#general").unwrap(),
                        tag: None,
                        text: Text::from("y".repeat(64)),
                    })
                    .collect::<Vec<_>>(),
            ),
            FRAMES,
            false,
        ),
        ("farm-info-16", buffer(&(0..100).map(|_| farm_info()).collect::<Vec<_>>()), 100, true),
    ];
    let mut g = c.benchmark_group("decode");
    for (name, buf, frames, server) in &sets {
        g.throughput(Throughput::Bytes(buf.len() as u64));
        g.bench_with_input(BenchmarkId::new("rttp", name), buf, |b, buf| {
            b.iter(|| {
                let n = if *server { decode_all::<ServerFrame>(buf) } else { decode_all::<ClientFrame>(buf) };
                assert_eq!(n, *frames);
            })
        });
        g.bench_with_input(BenchmarkId::new("rttp-view", name), buf, |b, buf| {
            b.iter(|| {
                let n = if *server { view_all(buf, server_view) } else { view_all(buf, client_view) };
                assert_eq!(n, *frames);
            })
        });
        g.bench_with_input(BenchmarkId::new("memchr-lines", name), buf, |b, buf| {
            b.iter(|| black_box(memchr_lines(buf)))
        });
        g.bench_with_input(BenchmarkId::new("memchr-count", name), buf, |b, buf| {
            b.iter(|| black_box(memchr_count(buf)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("encode");
    let msgs: Vec<ServerFrame> = (0..FRAMES).map(|i| msg(64, i)).collect();
    g.throughput(Throughput::Elements(FRAMES as u64));
    g.bench_function("msg-64", |b| {
        let mut out = BytesMut::with_capacity(256 * FRAMES);
        b.iter(|| {
            out.clear();
            for m in &msgs {
                m.encode(&mut out);
            }
            black_box(out.len())
        })
    });
    let fi = farm_info();
    g.throughput(Throughput::Elements(1));
    g.bench_function("farm-info-16", |b| b.iter(|| black_box(fi.to_bytes())));
    g.finish();
}

#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
criterion_main!(group::benches);
