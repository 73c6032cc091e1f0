//! A session's flow budgets: frames, bytes and room changes, each a token
//! bucket refilled at its `--*-rate` up to its `--*-burst`. Spending may go
//! into debt; while any is in debt the connection stops reading (flow
//! control: nothing is dropped). SAYs have a budget that refuses instead. Compact on purpose, as it lives in every
//! idle session: one timestamp and three `f32`s, the rates read from the
//! configuration rather than copied into each session.

use std::time::{Duration, Instant};

use crate::config::Config;

/// The budgets of one session.
#[derive(Debug, Clone)]
pub(crate) struct SessionBudget {
    last: Instant,
    frames: f32,
    bytes: f32,
    joins: f32,
    /// SAYs: the one budget that refuses (ERR 429) instead of pausing.
    says: f32,
}

impl SessionBudget {
    /// Full budgets.
    pub(crate) fn new(cfg: &Config, now: Instant) -> SessionBudget {
        SessionBudget {
            last: now,
            frames: cfg.frame_burst as f32,
            bytes: cfg.byte_burst as f32,
            joins: cfg.join_burst as f32,
            says: cfg.say_burst as f32,
        }
    }

    fn refill(&mut self, cfg: &Config, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        let up = |tokens: f32, rate: f64, burst: u32| ((f64::from(tokens) + dt * rate).min(f64::from(burst))) as f32;
        self.frames = up(self.frames, cfg.frame_rate, cfg.frame_burst);
        self.bytes = up(self.bytes, cfg.byte_rate, cfg.byte_burst);
        self.joins = up(self.joins, cfg.join_rate, cfg.join_burst);
        self.says = up(self.says, cfg.say_rate, cfg.say_burst);
    }

    /// Takes one SAY if the SAY budget has one.
    pub(crate) fn take_say(&mut self, cfg: &Config, now: Instant) -> bool {
        self.refill(cfg, now);
        if self.says >= 1.0 {
            self.says -= 1.0;
            true
        } else {
            false
        }
    }

    /// Spends `frames` frames, `bytes` bytes and `joins` room changes.
    pub(crate) fn charge(&mut self, cfg: &Config, frames: f32, bytes: f32, joins: f32, now: Instant) {
        self.refill(cfg, now);
        self.frames -= frames;
        self.bytes -= bytes;
        self.joins -= joins;
    }

    /// `None` when no budget is in debt; else when the last debt is paid.
    pub(crate) fn paused_until(&self, cfg: &Config) -> Option<Instant> {
        let paid = |tokens: f32, rate: f64| {
            (tokens < 0.0).then(|| self.last + Duration::from_secs_f64(f64::from(-tokens) / rate))
        };
        [paid(self.frames, cfg.frame_rate), paid(self.bytes, cfg.byte_rate), paid(self.joins, cfg.join_rate)]
            .into_iter()
            .flatten()
            .max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_debt_then_paid_at_the_rate() {
        let mut cfg = Config::new("s1").unwrap();
        (cfg.frame_rate, cfg.frame_burst, cfg.byte_rate, cfg.byte_burst, cfg.join_rate, cfg.join_burst) =
            (100.0, 10, 1000.0, 1000, 10.0, 5);
        let t0 = Instant::now();
        let mut b = SessionBudget::new(&cfg, t0);
        b.charge(&cfg, 10.0, 1000.0, 5.0, t0);
        assert_eq!(b.paused_until(&cfg), None, "exactly the bursts: no debt");
        b.charge(&cfg, 0.0, 500.0, 0.0, t0);
        assert_eq!(b.paused_until(&cfg), Some(t0 + Duration::from_millis(500)), "500 bytes at 1000/s");
        b.charge(&cfg, 0.0, 0.0, 2.0, t0);
        assert_eq!(b.paused_until(&cfg), Some(t0 + Duration::from_millis(500)), "the latest debt wins");
        b.charge(&cfg, 0.0, 0.0, 0.0, t0 + Duration::from_millis(500));
        assert_eq!(b.paused_until(&cfg), None, "paid");
        b.charge(&cfg, 0.0, 0.0, 0.0, t0 + Duration::from_secs(100));
        b.charge(&cfg, 10.0, 0.0, 0.0, t0 + Duration::from_secs(100));
        assert_eq!(b.paused_until(&cfg), None, "refilled to the burst, never above");
        b.charge(&cfg, 1.0, 0.0, 0.0, t0 + Duration::from_secs(100));
        assert!(b.paused_until(&cfg).is_some());
    }

    #[test]
    fn says_are_refused_past_their_burst_and_refill_at_their_rate() {
        let mut cfg = Config::new("s1").unwrap();
        (cfg.say_rate, cfg.say_burst) = (20.0, 40);
        let t0 = Instant::now();
        let mut b = SessionBudget::new(&cfg, t0);
        assert_eq!((0..100).filter(|_| b.take_say(&cfg, t0)).count(), 40, "the burst");
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| b.take_say(&cfg, t1)).count(), 10, "half a second at 20/s");
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!((0..100).filter(|_| b.take_say(&cfg, t2)).count(), 40, "never more than the burst");
    }
}
