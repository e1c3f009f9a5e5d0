//! Bounded waiting for a condition the sandbox cannot be notified of.

use std::time::{Duration, Instant};

/// Polls `cond` every 2 ms until it holds; panics naming `what` after `timeout`. Returns
/// how long it took.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
    start.elapsed()
}
