//! Response rate limiting (RRL), as NSD and Knot do it: answers to one
//! source prefix (/24 for IPv4, /56 for IPv6) are limited to a rate, so
//! that farm-dns cannot be used to amplify traffic at a spoofed victim (an
//! SRV answer is several times its query). Past the rate most answers are
//! dropped, and every `slip`-th is sent truncated instead (TC set, no
//! records), so a real client behind that prefix retries over TCP and is
//! still served. Pure: no sockets, the time is given.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Prefixes tracked at most; past it, idle ones are forgotten.
pub(crate) const RRL_TABLE_MAX: usize = 65_536;

/// What to do with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: send it.
    Send,
    /// Over the rate, and this one slips through truncated.
    Slip,
    /// Over the rate: no answer.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u64,
}

/// The limiter: answers per second per prefix, and the slip.
#[derive(Debug)]
pub(crate) struct Rrl {
    rate: f64,
    burst: f64,
    slip: u64,
    table: HashMap<u128, Bucket>,
}

/// The prefix an address is limited by.
fn prefix(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4) & 0xffff_ff00),
        IpAddr::V6(v6) => (u128::from(v6) & !((1u128 << 72) - 1)) | (1 << 127),
    }
}

impl Rrl {
    /// `rate` answers a second per prefix (0: no limit), bursts of `rate`,
    /// every `slip`-th limited answer truncated (0: none).
    pub(crate) fn new(rate: u32, slip: u32) -> Rrl {
        Rrl { rate: f64::from(rate), burst: f64::from(rate.max(1)), slip: u64::from(slip), table: HashMap::new() }
    }

    /// The verdict for one answer to `ip` at `now`.
    pub(crate) fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.rate <= 0.0 {
            return Verdict::Send;
        }
        if self.table.len() >= RRL_TABLE_MAX {
            self.forget_idle(now);
        }
        let burst = self.burst;
        let b = self.table.entry(prefix(ip)).or_insert(Bucket { tokens: burst, last: now, limited: 0 });
        let dt = now.saturating_duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + dt * self.rate).min(burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            return Verdict::Send;
        }
        b.limited += 1;
        if self.slip > 0 && b.limited.is_multiple_of(self.slip) {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }

    /// Forgets prefixes whose bucket has refilled (idle for a burst's time).
    fn forget_idle(&mut self, now: Instant) {
        let full = Duration::from_secs_f64(self.burst / self.rate);
        self.table.retain(|_, b| now.saturating_duration_since(b.last) < full);
        if self.table.len() >= RRL_TABLE_MAX {
            // All busy (a spoofed flood from everywhere): start over rather than grow.
            self.table.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_prefix_is_limited_with_slips_and_another_is_not() {
        let t0 = Instant::now();
        let mut r = Rrl::new(10, 2);
        let a: IpAddr = "192.0.2.7".parse().unwrap();
        let same_prefix: IpAddr = "192.0.2.200".parse().unwrap();
        let other: IpAddr = "198.51.100.1".parse().unwrap();
        let verdicts: Vec<Verdict> = (0..30).map(|i| r.check(if i % 2 == 0 { a } else { same_prefix }, t0)).collect();
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 10, "the burst, shared by the /24");
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Slip).count(), 10, "every second limited one slips");
        assert_eq!(r.check(other, t0), Verdict::Send, "another prefix is answered");
        let t1 = t0 + Duration::from_millis(500);
        let later = (0..10).filter(|_| r.check(a, t1) == Verdict::Send).count();
        assert_eq!(later, 5, "half a second at 10/s");
    }

    #[test]
    fn zero_means_no_limit_and_the_table_is_bounded() {
        let t0 = Instant::now();
        let mut off = Rrl::new(0, 2);
        assert!((0..1000).all(|_| off.check("192.0.2.1".parse().unwrap(), t0) == Verdict::Send));
        let mut r = Rrl::new(5, 0);
        for i in 0..(RRL_TABLE_MAX as u32 + 10) {
            r.check(IpAddr::from(std::net::Ipv4Addr::from(i << 8)), t0);
        }
        assert!(r.table.len() <= RRL_TABLE_MAX, "{}", r.table.len());
        let v6: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let v6_same: IpAddr = "2001:db8:0:1:ffff::2".parse().unwrap();
        let mut r = Rrl::new(1, 0);
        assert_eq!(r.check(v6, t0), Verdict::Send);
        assert_eq!(r.check(v6_same, t0), Verdict::Drop, "one /56");
    }
}
