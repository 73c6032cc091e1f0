//! The farm-aware RTTP client. It finds the farm through DNS, connects to
//! the first server it is given, reads the farm table (`FARM_INFO`), selects
//! the server that will serve it, and connects there. If that fails it
//! retries once, then asks DNS again. It follows REDIRECTs, survives the
//! loss of its server, and keeps the user in their rooms across every move,
//! showing each message once.
//!
//! ```no_run
//! use rttp_client::{Client, Event, Strategy};
//!
//! # async fn demo() -> rttp_client::Result<()> {
//! let (client, mut events) = Client::builder()
//!     .service("chat.farm.test", 7000)
//!     .dns("127.0.0.1:5353".parse().unwrap())
//!     .strategy(Strategy::P2c)
//!     .group("g1")
//!     .nick("u1")
//!     .connect()
//!     .await?;
//! client.join("#rust").await?;
//! client.say("#rust", "hello, farm").await?;
//! while let Some(e) = events.recv().await {
//!     match e {
//!         Event::Message { room, nick, text, .. } => println!("{room} <{nick}> {text}"),
//!         Event::Redirected { server, reason, .. } => println!("moving to {server}: {reason}"),
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Every step of the method is an [`Event`]: `Resolved`, `ConnectedFirst`,
//! `Selected`, `Connected`, `Retry`, `Rediscover`, `Redirected`,
//! `Disconnected`, `Rejoined`. The sequence itself is a state machine with no
//! I/O ([`connect::Sequence`]); its bounds are [`connect::Limits`] (5 rounds,
//! backoff from 200 ms doubling to 5 s with full jitter, a retry after at
//! most 250 ms). Strategies and the herding simulation are in [`select`].

pub mod client;
pub mod connect;
pub mod discover;
mod driver;
pub mod error;
pub mod event;
pub mod outbox;
pub mod select;
pub mod session;
pub mod watch;

pub use client::{Client, ClientBuilder, Timers};
pub use error::{Error, Result};
pub use event::Event;
pub use rttp_proto::select::Strategy;
