//! The farm-aware RTTP client.

pub mod conn;
pub mod error;
pub mod watch;

pub use error::{Error, Result};
