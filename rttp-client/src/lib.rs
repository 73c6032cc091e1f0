//! The farm-aware RTTP client.

pub mod client;
pub mod conn;
pub mod connect;
pub mod discover;
pub mod error;
pub mod event;
pub mod select;
pub mod watch;

pub use client::{Client, ClientBuilder, Timers};
pub use error::{Error, Result};
pub use event::Event;
pub use rttp_proto::select::Strategy;
