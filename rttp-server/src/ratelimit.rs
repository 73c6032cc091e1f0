//! A token bucket: `rate` tokens a second, at most `burst` saved up; a take
//! is refused when the bucket has too few. Used where the rate and burst
//! belong to the bucket (the REPLAY budget per peer); a session's budgets
//! are the compact [`crate::client`] ones.

use std::time::Instant;

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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_rate_in_whole_takes_and_in_amounts() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(20.0, 40, t0);
        assert!(!b.take_n(41.0, t0), "more than the burst is refused whole");
        assert_eq!((0..100).filter(|_| b.take_n(1.0, t0)).count(), 40, "the burst");
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take_n(1.0, t1)).count(), 10, "half a second at 20/s");
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!((0..100).filter(|_| b.take_n(1.0, t2)).count(), 40, "never more than the burst");
    }
}
