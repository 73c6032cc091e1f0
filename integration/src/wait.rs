//! Waiting for a condition with a deadline, never a bare sleep.

use std::future::Future;
use std::time::Duration;

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub async fn check_for<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
