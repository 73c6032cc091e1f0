//! The server's one error enum.

use std::path::PathBuf;

/// Everything that can stop the server or a connection.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The configuration is invalid.
    #[error("{0}")]
    Config(String),
    /// The configuration file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A client's token was refused (token mode): the reason is sent with `ERR 511`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
}

/// The server's result alias.
pub type Result<T, E = Error> = std::result::Result<T, E>;
