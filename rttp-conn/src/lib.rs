//! One frame connection for every RTTP link that is not the server's hot
//! path: the client library, the test clients, the load harness, the farm
//! supervisor and the peer handshake all read and write frames through
//! [`FrameConn`], so there is one "decode, else read more" loop in the tree.
//!
//! The connection is generic over the stream (a `TcpStream`, one half of a
//! `tokio::io::duplex` in tests, a [`tls::Stream`] with or without TLS) and over the frame kinds it
//! reads and writes, so a client connection and a peer connection are
//! different types.

mod conn;
pub mod fdlimit;
pub mod hello;
pub mod tls;

pub use conn::{ConnError, FrameConn, FrameReader, FrameWriter, READ_CHUNK, READ_SPARE};

use rttp_proto::{ClientFrame, PeerFrame, ServerFrame};

/// A client's connection to a server: reads server frames, writes client frames.
pub type ClientConn<S> = FrameConn<S, ServerFrame, ClientFrame>;
/// A server's view of a client connection (used by tests that play the server).
pub type ServerConn<S> = FrameConn<S, ClientFrame, ServerFrame>;
/// Either end of a peer link.
pub type PeerConn<S> = FrameConn<S, PeerFrame, PeerFrame>;
