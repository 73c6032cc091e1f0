//! A token bucket: `rate` tokens a second, at most `burst` saved up. Two
//! ways to spend: [`TokenBucket::take`] refuses when empty (SAY, JOIN);
//! [`TokenBucket::charge`] always succeeds and may go into debt, and
//! [`TokenBucket::ready_at`] says when the debt is paid (the reader pauses
//! until then: flow control, nothing dropped).

use std::time::{Duration, Instant};

/// A per-session token bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate: f64, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { rate, burst: f64::from(burst), tokens: f64::from(burst), last: now }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
    }

    /// Takes one token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.take_n(1.0, now)
    }

    /// Takes `n` tokens if there are that many.
    pub fn take_n(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// Spends `n` tokens, going into debt if need be.
    pub fn charge(&mut self, n: f64, now: Instant) {
        self.refill(now);
        self.tokens -= n;
    }

    /// `None` when not in debt; else the instant the debt is paid.
    pub fn ready_at(&self) -> Option<Instant> {
        (self.tokens < 0.0).then(|| self.last + Duration::from_secs_f64(-self.tokens / self.rate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(20.0, 40, t0);
        assert_eq!((0..100).filter(|_| b.take(t0)).count(), 40, "the burst");
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take(t1)).count(), 10, "half a second at 20/s");
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!((0..100).filter(|_| b.take(t2)).count(), 40, "never more than the burst");
    }

    #[test]
    fn a_charge_may_go_into_debt_and_says_when_it_is_paid() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 10, t0);
        b.charge(10.0, t0);
        assert_eq!(b.ready_at(), None, "exactly the burst: no debt");
        b.charge(50.0, t0);
        assert_eq!(b.ready_at(), Some(t0 + Duration::from_millis(500)), "50 tokens at 100/s");
        b.charge(0.0, t0 + Duration::from_millis(500));
        assert_eq!(b.ready_at(), None, "paid");
        assert!(!b.take(t0 + Duration::from_millis(500)), "and nothing saved up yet");
    }
}
