//! What the moved clients of `rttp-load failover` went through besides the
//! one move the kill forced, and why: a storm shows here before it shows in
//! the times.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rttp_client::Event;

/// Counts, and the reasons behind them.
#[derive(Debug, Default)]
pub(crate) struct Detours {
    /// Losses of a server that survived (no frame within the silence bound).
    pub(crate) moved_again: AtomicU64,
    /// Retries of a chosen server (connect or `HELLO` timed out, refused).
    pub(crate) retries: AtomicU64,
    /// Clients that gave up (every round failed), before the test quit them.
    pub(crate) gave_up: AtomicU64,
    /// How often each (kind, reason) occurred, addresses left out.
    reasons: Mutex<HashMap<String, u64>>,
}

/// Reasons shown in the summary, most frequent first.
const SHOWN: usize = 4;

impl Detours {
    /// Counts `e`, an event of a client that already lost the killed server
    /// (`moved`) or not.
    pub(crate) fn on(&self, e: &Event, moved: bool) {
        let (counter, kind, reason) = match e {
            Event::Disconnected { reason, .. } if moved => (&self.moved_again, "left a survivor", reason),
            Event::Retry { reason, .. } => (&self.retries, "retry", reason),
            Event::Closed { reason } if reason != "quit" => (&self.gave_up, "gave up", reason),
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let key = format!("{kind}: {}", without_addresses(reason));
        *self.reasons.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += 1;
    }

    /// `a left a survivor, b retries, c gave up (n x reason, ...)`.
    pub(crate) fn summary(&self) -> String {
        let mut reasons: Vec<(String, u64)> =
            self.reasons.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect();
        reasons.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let top: Vec<String> = reasons.iter().take(SHOWN).map(|(k, v)| format!("{v} x {k}")).collect();
        let why = if top.is_empty() { String::new() } else { format!(" ({})", top.join("; ")) };
        format!(
            "{} left a survivor, {} retries, {} gave up{why}",
            self.moved_again.load(Ordering::Relaxed),
            self.retries.load(Ordering::Relaxed),
            self.gave_up.load(Ordering::Relaxed)
        )
    }
}

/// `reason` without its `host:port` words, and with each nick (the bench's
/// are letters then digits) as `<nick>`, so that one cause is one entry.
fn without_addresses(reason: &str) -> String {
    let nick = |w: &str| {
        let digits = w.trim_start_matches(|c: char| c.is_ascii_lowercase());
        digits.len() < w.len() && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    let words = reason.split(' ').filter(|w| w.trim_end_matches(':').parse::<std::net::SocketAddr>().is_err());
    words.map(|w| if nick(w) { "<nick>" } else { w }).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_cause_is_one_entry_whatever_the_address() {
        let d = Detours::default();
        for a in ["127.0.0.2:7000", "127.0.0.3:7000"] {
            let server = rttp_proto::ServerId::new("s2").unwrap();
            d.on(&Event::Retry { server, reason: format!("{a}: timed out") }, true);
        }
        d.on(&Event::Closed { reason: "quit".into() }, true);
        d.on(&Event::Closed { reason: "gave up after 5 rounds: 127.0.0.1:7000: refused".into() }, true);
        for n in ["f12", "f7"] {
            d.on(&Event::Closed { reason: format!("nick {n} is in use") }, true);
        }
        assert_eq!(
            d.summary(),
            "0 left a survivor, 2 retries, 3 gave up (2 x gave up: nick <nick> is in use; 2 x retry: timed out; \
             1 x gave up: gave up after 5 rounds: refused)"
        );
    }
}
