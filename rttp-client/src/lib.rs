//! The farm-aware RTTP client.

pub mod conn;
pub mod connect;
pub mod discover;
pub mod error;
pub mod event;
pub mod select;
pub mod watch;

pub use error::{Error, Result};
