//! The one load target: what a workload needs of a system under load, so
//! that each workload is written once and runs against our farm and against
//! a NATS cluster alike (rooms are subjects there).

use std::future::Future;
use std::time::{SystemTime, UNIX_EPOCH};

/// A system under load.
pub(crate) trait LoadTarget: Sync {
    /// One connected client of it.
    type Member: Member;

    /// `rttp` or `nats`.
    fn name(&self) -> &'static str;

    /// Its nodes (servers).
    fn nodes(&self) -> usize;

    /// The process id of each node, for CPU and memory.
    fn pids(&self) -> Vec<u32>;

    /// A client on node `node`, in `rooms` (`#name`), joined before it returns.
    fn member(&self, node: usize, name: &str, rooms: &[String]) -> impl Future<Output = Self::Member> + Send;
}

/// One client: it says numbered messages and reads what it is delivered.
pub(crate) trait Member: Send + 'static {
    /// Says message `seq` in its `room`-th room; false when the connection is gone.
    fn say(&mut self, room: usize, seq: u64) -> impl Future<Output = bool> + Send;

    /// The next message delivered: its latency in microseconds (from the
    /// send time it carries), or `None` once the connection is gone.
    /// Cancel-safe, so that a workload can `select!` on it.
    fn next(&mut self) -> impl Future<Output = Option<u64>> + Send;
}

/// Now, in microseconds since the epoch (all load processes share a clock).
pub(crate) fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// A 64-byte body that carries its send time: `<µs> <seq> xxx...`.
pub(crate) fn body(seq: u64) -> String {
    let mut s = format!("{} {seq} ", now_us());
    while s.len() < 64 {
        s.push('x');
    }
    s
}

/// The latency a delivered body shows, in microseconds (at least 1).
pub(crate) fn latency(body: &[u8]) -> Option<u64> {
    let t: u64 = std::str::from_utf8(body).ok()?.split(' ').next()?.parse().ok()?;
    Some(now_us().saturating_sub(t).max(1))
}
