//! Failure detection as a small pure type: frames heard and ticks in,
//! suspicions out. A link that has been silent for longer than the bound
//! is suspected; membership then closes it and marks its peer DOWN. Peers
//! send `BEAT` every heartbeat, so a live link is never silent for long.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::membership::LinkId;

/// When each live link was last heard from.
#[derive(Debug)]
pub struct Detector {
    down_after: Duration,
    heard: HashMap<LinkId, Instant>,
}

impl Detector {
    /// A detector that suspects a link after `down_after` of silence.
    pub fn new(down_after: Duration) -> Detector {
        Detector { down_after, heard: HashMap::new() }
    }

    /// Starts watching a link, as heard now.
    pub fn watch(&mut self, link: LinkId, now: Instant) {
        self.heard.insert(link, now);
    }

    /// Stops watching a link (closed or replaced).
    pub fn forget(&mut self, link: LinkId) {
        self.heard.remove(&link);
    }

    /// A frame arrived on `link`.
    pub fn heard(&mut self, link: LinkId, now: Instant) {
        if let Some(t) = self.heard.get_mut(&link) {
            *t = (*t).max(now);
        }
    }

    /// The links silent for longer than the bound, no longer watched.
    pub fn suspects(&mut self, now: Instant) -> Vec<LinkId> {
        let bound = self.down_after;
        let mut out: Vec<LinkId> =
            self.heard.iter().filter(|(_, t)| now.duration_since(**t) > bound).map(|(l, _)| *l).collect();
        out.sort_unstable();
        for l in &out {
            self.heard.remove(l);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(2);

    #[tokio::test(start_paused = true)]
    async fn a_silent_link_is_suspected_once_just_after_the_bound() {
        let mut d = Detector::new(BOUND);
        d.watch(1, Instant::now());
        d.watch(2, Instant::now());
        tokio::time::advance(BOUND).await;
        assert!(d.suspects(Instant::now()).is_empty(), "exactly the bound is not yet silence");
        d.heard(2, Instant::now());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(d.suspects(Instant::now()), vec![1]);
        assert!(d.suspects(Instant::now()).is_empty(), "reported once");
        tokio::time::advance(BOUND).await;
        assert_eq!(d.suspects(Instant::now()), vec![2], "link 2 fell silent after its last frame");
    }

    #[tokio::test(start_paused = true)]
    async fn frames_keep_a_link_alive_and_forgotten_links_are_never_suspected() {
        let mut d = Detector::new(BOUND);
        d.watch(1, Instant::now());
        d.watch(2, Instant::now());
        d.forget(2);
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(500)).await;
            d.heard(1, Instant::now());
            d.heard(2, Instant::now());
            assert!(d.suspects(Instant::now()).is_empty());
        }
        tokio::time::advance(BOUND * 10).await;
        assert_eq!(d.suspects(Instant::now()), vec![1], "a heard() for a forgotten link does not bring it back");
    }
}
