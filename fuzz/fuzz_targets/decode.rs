//! Decodes arbitrary bytes as client, server and peer frames, the way a
//! connection does: frame after frame, skipping recoverable errors. It must
//! never panic, loop forever, or use memory beyond the limits; and every
//! frame it accepts must re-encode to bytes that decode to the same frame.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rttp_proto::{ClientFrame, Frame, Limits, PeerFrame, ServerFrame};

fn run<F: Frame + PartialEq + std::fmt::Debug>(data: &[u8]) {
    let limits = Limits { max_line: 512, max_body: 1024, max_farm_servers: 16 };
    let mut buf = BytesMut::from(data);
    // Each round consumes bytes or stops, so this ends.
    for _ in 0..=data.len() {
        let before = buf.len();
        match F::decode_buf(&mut buf, &limits) {
            Ok(Some(f)) => {
                let wire = f.to_bytes();
                let (g, used) = F::decode(&wire, &Limits::default()).unwrap().unwrap();
                assert_eq!(g, f);
                assert_eq!(used, wire.len());
            }
            Ok(None) => break,
            Err(e) if e.is_fatal() => break,
            Err(_) => assert!(buf.len() < before, "a recoverable error must consume bytes"),
        }
    }
    let _ = F::decode(&Bytes::copy_from_slice(data), &Limits::default());
}

fuzz_target!(|data: &[u8]| {
    run::<ClientFrame>(data);
    run::<ServerFrame>(data);
    run::<PeerFrame>(data);
});
