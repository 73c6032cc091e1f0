//! Draining: the server turns DRAINING farm-wide, accepts no new sessions,
//! and sends each client a REDIRECT, spread evenly over the drain window so
//! that the clients do not all land on the others at once.

use std::sync::Arc;
use std::time::Duration;

use rttp_proto::{ErrCode, Frame, ServerFrame, Token};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

/// Extra time after the window for the last clients to leave.
pub const DRAIN_GRACE: Duration = Duration::from_secs(5);

/// Redirects every session, spread over `window`. Returns when the last
/// REDIRECT is queued, when `cancel` fires, or when the drain is undone (or
/// undone and started again: that is another pass). Does nothing when the
/// server is already draining: nobody is redirected twice.
pub async fn redirect_all(shared: Arc<Shared>, window: Duration, cancel: CancellationToken) {
    let Some(pass) = shared.start_drain() else {
        tracing::info!("drain: already draining");
        return;
    };
    let mut sessions: Vec<_> = shared.sessions.iter().map(|e| (*e.key(), e.value().out.clone())).collect();
    sessions.sort_by_key(|(id, _)| *id);
    let n = sessions.len();
    tracing::info!(sessions = n, window = ?window, "drain: redirecting every session");
    // A standalone server has nowhere to send anyone: stop them all now.
    let window = if shared.config.farm.is_some() { window } else { Duration::ZERO };
    let start = Instant::now();
    for (i, (_, out)) in sessions.into_iter().enumerate() {
        let at = start + window.mul_f64(i as f64 / n as f64);
        tokio::select! {
            _ = sleep_until(at) => {}
            _ = cancel.cancelled() => return,
        }
        if !shared.drain_pass_is(pass) {
            tracing::info!("drain pass ended: undone, or superseded by a new drain");
            return;
        }
        if out.close_requested() {
            // Already leaving (an earlier pass, or an ERR): one last frame each.
            continue;
        }
        let frame = match shared.redirect_target() {
            Some((server, addr)) => {
                shared.metrics.redirects.inc();
                ServerFrame::Redirect { server, addr, reason: Token::new("drain").expect("valid token") }
            }
            None => {
                let why = "server shutting down, and no other server is UP: reconnect later";
                shared.metrics.frames_out("ERR", 1);
                out.push_final(shared.metrics.err(ErrCode::ShuttingDown, why));
                continue;
            }
        };
        shared.metrics.frames_out("REDIRECT", 1);
        out.push_final(frame.to_bytes());
    }
}

/// Drains, then waits until the last session has gone or the window plus
/// [`DRAIN_GRACE`] has passed.
pub async fn drain(shared: Arc<Shared>, window: Duration, cancel: CancellationToken) {
    let deadline = Instant::now() + window + DRAIN_GRACE;
    redirect_all(shared.clone(), window, cancel.clone()).await;
    while shared.users() > 0 && Instant::now() < deadline && !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tracing::info!(left = shared.users(), "drain finished");
}
