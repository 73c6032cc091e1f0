//! Replayed frames in a session's queue. A rejoin's replay is the room's
//! history: the same shared frames (`Bytes`), not copies, so while the
//! history keeps them they cost the queue a reference each, not their
//! bytes. They are therefore not counted against the session's own bounds
//! (`--outbound-limit`, `--outbound-max`), which guard memory held for that
//! session alone: a replay of many megabytes streams to a joiner that
//! reads it instead of cutting it off as a slow consumer (`ERR 507` every
//! time, and a client moving between servers forever).
//!
//! What bounds them instead: each replayed frame is charged its bytes plus
//! [`REF_COST`] (its queue slot and span) to a per-session and a
//! server-wide budget ([`ReplayBudget`]); frames the history drops while a
//! slow joiner still has them queued are held by the queue, so the budget
//! bounds that memory too. Past either bound the session is a slow
//! consumer as before. A joiner that stops reading is cut after
//! `--slow-consumer-after` (see `Outbound::account_written`).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What one replayed frame costs beyond its bytes: its `Bytes` handle in
/// the queue (32 bytes) and its span here (16).
pub const REF_COST: usize = 48;

/// The bounds of replayed frames queued to sessions, and what all sessions
/// hold together. One per server.
#[derive(Debug)]
pub struct ReplayBudget {
    /// Bytes (with [`REF_COST`] per frame) one session may have queued.
    pub per_session: usize,
    /// Bytes all sessions together may have queued.
    pub total: usize,
    queued: AtomicUsize,
}

impl ReplayBudget {
    /// A budget of `per_session` bytes each (at most `total`) and `total`
    /// bytes for all sessions.
    pub fn new(per_session: usize, total: usize) -> ReplayBudget {
        ReplayBudget { per_session: per_session.min(total), total, queued: AtomicUsize::new(0) }
    }

    /// Bytes queued as replay in all sessions now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes from the server-wide budget, if they fit.
    fn take(&self, n: usize) -> bool {
        self.queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| q.checked_add(n).filter(|&t| t <= self.total))
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.queued.fetch_sub(n, Ordering::Relaxed);
    }
}

/// The replayed frames of one queue not yet written: their positions in
/// the queue's byte stream, oldest first. Allocated by a queue's first
/// replayed frame and dropped once all are written: an idle session pays
/// one pointer for it.
#[derive(Debug)]
pub(super) struct Replayed {
    budget: Arc<ReplayBudget>,
    /// `[start, end)` of each replayed frame not yet fully written.
    spans: VecDeque<(u64, u64)>,
    /// Their bytes not yet written (what the session's own bounds leave out).
    pub(super) bytes: usize,
    /// What they are charged to the budgets (bytes and [`REF_COST`] each).
    charged: usize,
    /// Bytes written since the queue's `behind_since` last moved on while
    /// it was behind only by these frames.
    pub(super) progress: usize,
}

impl Replayed {
    /// Nothing replayed yet, charged to `budget`.
    pub(super) fn new(budget: &Arc<ReplayBudget>) -> Box<Replayed> {
        Box::new(Replayed { budget: budget.clone(), spans: VecDeque::new(), bytes: 0, charged: 0, progress: 0 })
    }

    /// Records a replayed frame of `len` bytes at stream position `start`,
    /// if both budgets admit it.
    pub(super) fn add(&mut self, start: u64, len: usize) -> bool {
        let cost = len + REF_COST;
        if self.charged + cost > self.budget.per_session || !self.budget.take(cost) {
            return false;
        }
        self.charged += cost;
        self.bytes += len;
        self.spans.push_back((start, start + len as u64));
        true
    }

    /// The stream's bytes `from..to` were written: forgets the replayed
    /// frames they complete and gives back what their bytes held. Returns
    /// whether none is left.
    pub(super) fn written(&mut self, from: u64, to: u64) -> bool {
        while let Some(&mut (start, end)) = self.spans.front_mut() {
            if start >= to {
                break;
            }
            let done = (end.min(to) - start.max(from)) as usize;
            self.bytes -= done;
            if end > to {
                self.spans[0].0 = to;
                self.charged -= done;
                self.budget.give_back(done);
                break;
            }
            // A whole frame is gone: its reference too.
            self.spans.pop_front();
            self.charged -= done + REF_COST;
            self.budget.give_back(done + REF_COST);
        }
        self.spans.is_empty()
    }
}

impl Drop for Replayed {
    /// Whatever is not written goes back to the budget (the queue was
    /// dropped, or overflowed).
    fn drop(&mut self) {
        self.budget.give_back(self.charged);
    }
}
