//! RTTP/1, the Real-Time Text Protocol of the chat farm: its frames and
//! their exact bytes, with no I/O and no async runtime.
//!
//! Bytes come in, typed frames go out, and back. Decoding a buffer prefix
//! gives a complete frame and the bytes it used, `Ok(None)` when more
//! bytes are needed, or a [`DecodeError`] that says whether the stream can
//! go on. Limits ([`Limits`]) are checked before anything is buffered.
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use rttp_proto::{ClientFrame, Frame, Limits, Room, Text};
//!
//! let say = ClientFrame::Say { room: Room::new("#rust")?, tag: None, text: Text::from("hi") };
//! let mut out = BytesMut::new();
//! say.encode(&mut out);
//! assert_eq!(&out[..], b"SAY #rust 2\r\nhi\r\n");
//!
//! let wire = Bytes::from_static(b"SAY #rust 2\r\nhi\r\nPI");
//! let (frame, used) = ClientFrame::decode(&wire, &Limits::default())?.unwrap();
//! assert_eq!((frame, used), (say, 17));
//! assert_eq!(ClientFrame::decode(&wire.slice(17..), &Limits::default())?, None);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A reader that needs only a few fields of each frame can decode a
//! [`FrameView`] instead: the same checks of framing and limits, with the
//! frame left in the read buffer and its parts read through accessors (no
//! copy, no allocation); `FrameView::frame` gives the typed frame.
//!
//! The normative spec is `docs/PROTOCOL.md`. Beside the frames: [`select`]
//! (choosing a server from the table), [`rebalance`] (when a server moves
//! sessions, and where) and [`sim`] (the farm simulation that chose the
//! rebalancing defaults, with its table).

mod client;
mod error;
mod frame;
mod limits;
mod names;
mod owner;
mod peer;
pub mod rebalance;
pub mod select;
mod server;
pub mod sim;
mod table;
mod verbs;
mod view;
mod wire;
mod words;

pub use client::{ClientFrame, PROTOCOL_VERSION};
pub use error::{DecodeError, ErrCode, Error, Result};
pub use frame::Frame;
pub use limits::{Limits, MAX_ARGS, MAX_BODY, MAX_FARM_SERVERS, MAX_LINE, MAX_REASON};
pub use names::{
    Credential, Group, HostPort, MsgId, Nick, Room, ServerId, Status, Text, Token, Transport, MAX_CREDENTIAL_LEN,
    MAX_TOKEN_LEN,
};
pub use owner::rendezvous;
pub use peer::{has_feature, PeerFrame, PeerStateMsg, PEER_FEATURE_GOT, PEER_VERSION};
pub use server::{FarmInfo, ServerEntry, ServerFrame, MEMBERS_PER_LINE, ROOM_START};
pub use view::FrameView;
