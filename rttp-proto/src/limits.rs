//! The wire limits, named once. Every decoder takes a [`Limits`].

/// Longest line, including its CRLF.
pub const MAX_LINE: usize = 4096;
/// Largest text body, in bytes.
pub const MAX_BODY: usize = 65_536;
/// Most `SERVER` lines one `FARM_INFO` may announce.
pub const MAX_FARM_SERVERS: usize = 1024;
/// Arguments beyond this many are validated but not kept (see
/// "forward compatibility" in docs/PROTOCOL.md).
pub const MAX_ARGS: usize = 10;

/// The limits a decoder enforces. Checked before anything is buffered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line including CRLF.
    pub max_line: usize,
    /// Largest body.
    pub max_body: usize,
    /// Most entries in a `FARM_INFO` block.
    pub max_farm_servers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_line: MAX_LINE, max_body: MAX_BODY, max_farm_servers: MAX_FARM_SERVERS }
    }
}

/// Longest `ERR` reason we encode; longer reasons are cut.
pub const MAX_REASON: usize = 512;
