//! Rate limits shared by every node through Redis: one atomic script per request (GCRA for
//! the token bucket, a sorted-set log for the sliding window), keyed by policy scope and
//! caller. When Redis is unreachable or slow the caller's node falls back to its local
//! limiter (fail-open towards the global total, counted) and leaves Redis alone for a
//! short pause instead of adding a timeout to every request.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use redis::{Script, aio::ConnectionManager};
use xxhash_rust::xxh3::xxh3_64;

use crate::inventory::resilience::{LimitAlgorithm, RateLimit};

/// After a failure, requests use their local limiter for this long before Redis is tried again.
const PAUSE_AFTER_FAILURE: Duration = Duration::from_millis(500);

/// Caller keys longer than this are hashed (header values are untrusted input).
const MAX_KEY: usize = 96;

#[derive(Debug, thiserror::Error)]
pub enum GlobalError {
    #[error("redis URL {url:?}: {cause}")]
    Url { url: String, cause: redis::RedisError },
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    #[error("redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("redis was unreachable moments ago; using the local limiter")]
    Paused,
}

pub struct GlobalLimits {
    url: String,
    conn: ConnectionManager,
    timeout: Duration,
    bucket: Script,
    window: Script,
    paused_until: Mutex<Option<Instant>>,
}

impl GlobalLimits {
    /// Connects lazily (a Redis that is down at start is a fallback, not a failed start).
    /// Must be called inside the Tokio runtime.
    pub fn new(url: &str, timeout: Duration) -> Result<Self, GlobalError> {
        let bad_url = |source| GlobalError::Url { url: url.to_owned(), cause: source };
        let client = redis::Client::open(url).map_err(bad_url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(bad_url)?;
        Ok(Self {
            url: url.to_owned(),
            conn,
            timeout,
            bucket: Script::new(include_str!("scripts/token_bucket.lua")),
            window: Script::new(include_str!("scripts/sliding_window.lua")),
            paused_until: Mutex::new(None),
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the shared budget of `scope` admits a request of caller `key` now.
    pub async fn admit(&self, scope: &str, cfg: &RateLimit, key: &str) -> Result<bool, GlobalError> {
        if self.paused() {
            return Err(GlobalError::Paused);
        }
        let redis_key = redis_key(scope, cfg, key);
        let requests = u64::from(cfg.requests.max(1));
        let interval_us = cfg.interval.0.as_micros().max(1) as u64;
        let mut conn = self.conn.clone();
        let call = async {
            match cfg.algorithm {
                LimitAlgorithm::TokenBucket => {
                    let burst = u64::from(cfg.burst.unwrap_or(cfg.requests).max(1));
                    let mut inv = self.bucket.key(&redis_key);
                    inv.arg((interval_us / requests).max(1)).arg(burst);
                    inv.invoke_async::<i64>(&mut conn).await
                }
                LimitAlgorithm::SlidingWindow => {
                    let mut inv = self.window.key(&redis_key);
                    inv.arg(interval_us).arg(requests).arg(rand::random::<u64>());
                    inv.invoke_async::<i64>(&mut conn).await
                }
            }
        };
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(admitted)) => return Ok(admitted == 1),
            Ok(Err(e)) => GlobalError::Redis(e),
            Err(_) => GlobalError::Timeout(self.timeout),
        };
        self.pause();
        Err(result)
    }

    fn paused(&self) -> bool {
        let mut until = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn pause(&self) {
        *self.paused_until.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Instant::now() + PAUSE_AFTER_FAILURE);
    }
}

/// `graylane:rl:{scope}:{algorithm}:{requests}/{interval}:{caller}`: nodes with the same
/// policy share a budget; a changed policy starts a fresh one.
fn redis_key(scope: &str, cfg: &RateLimit, key: &str) -> String {
    let alg = match cfg.algorithm {
        LimitAlgorithm::TokenBucket => "tb",
        LimitAlgorithm::SlidingWindow => "sw",
    };
    let caller = if key.len() > MAX_KEY || key.bytes().any(|b| b.is_ascii_control()) {
        format!("#{:016x}", xxh3_64(key.as_bytes()))
    } else {
        key.to_owned()
    };
    format!("graylane:rl:{{{scope}}}:{alg}:{}/{}ms:{caller}", cfg.requests, cfg.interval.0.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_policy_and_bound_the_caller() {
        let cfg: RateLimit = serde_norway::from_str("{requests: 5, interval: 2s}").expect("yaml");
        assert_eq!(redis_key("ns/app", &cfg, "acme"), "graylane:rl:{ns/app}:tb:5/2000ms:acme");
        let long = "x".repeat(500);
        assert!(redis_key("ns/app", &cfg, &long).len() < 80);
        assert!(redis_key("ns/app", &cfg, "a\r\nb").contains('#'));
    }
}
