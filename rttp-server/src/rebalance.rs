//! The rebalancing loop: thin, around [`rttp_proto::rebalance::Rebalancer`]
//! (which decides how many sessions to move, from the farm table). Every
//! 150-250 ms (jittered, so that the servers of a farm do not act in step)
//! it asks for a number, picks that many sessions and sends each
//! `REDIRECT <server> <addr> rebalance` to a target chosen for it by power
//! of two choices among the servers below the mean. The client resumes its
//! rooms there, as after a drain.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rttp_proto::rebalance::{target, Policy, Rebalancer};
use rttp_proto::{FarmInfo, Frame, ServerFrame, Token};
use tokio_util::sync::CancellationToken;

use crate::outbound::Outbound;
use crate::state::Shared;

/// Runs until `cancel` fires.
pub async fn run(shared: Arc<Shared>, policy: Policy, cancel: CancellationToken) {
    let origin = Instant::now();
    let mut rebalancer = Rebalancer::new(policy);
    loop {
        let pause = Duration::from_millis(rand::rng().random_range(150..250));
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = cancel.cancelled() => return,
        }
        // A mixed farm balances its TLS and its plaintext servers apart.
        let info = shared.same_transport();
        let n = rebalancer.tick(origin.elapsed(), &info.servers, shared.config.id);
        if n > 0 {
            let moved = move_sessions(&shared, &info, n as usize, policy.min_stay);
            tracing::info!(wanted = n, moved, users = shared.users(), "rebalance: moving sessions");
        }
    }
}

/// Sends `n` sessions elsewhere: user sessions here for at least
/// `min_stay`, not already leaving, quiet longest first (a quiet session
/// has nothing in flight, and its user is least disturbed). Returns how
/// many were sent.
pub fn move_sessions(shared: &Shared, info: &FarmInfo, n: usize, min_stay: Duration) -> usize {
    let now = Instant::now();
    let mut candidates: Vec<(u32, Arc<Outbound>)> = shared
        .sessions
        .iter()
        .filter(|s| s.user && now.duration_since(s.since) >= min_stay && !s.out.close_requested())
        .map(|s| (s.out.said_at(), s.out.clone()))
        .collect();
    if candidates.len() > n {
        candidates.select_nth_unstable_by_key(n - 1, |(said, _)| *said);
        candidates.truncate(n);
    }
    let reason = Token::new("rebalance").expect("valid token");
    let mut rng = rand::rng();
    let mut moved = 0;
    for (_, out) in candidates {
        let Some(to) = target(&info.servers, shared.config.id, &shared.config.group, &mut rng) else {
            break;
        };
        let frame = ServerFrame::Redirect { server: to.id, addr: to.addr, reason };
        shared.metrics.frames_out("REDIRECT", 1);
        shared.metrics.redirects.inc();
        shared.metrics.rebalanced.inc();
        out.push_final(frame.to_bytes());
        moved += 1;
    }
    moved
}
