//! Rate limiters keyed by caller: a token bucket (governor's GCRA) or a sliding window
//! ("at most K in any interval", a bounded log per key).

use std::{
    collections::{HashMap, VecDeque},
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

use governor::{DefaultKeyedRateLimiter, Quota};

use crate::inventory::resilience::{LimitAlgorithm, RateLimit};

pub enum Limiter {
    Bucket(DefaultKeyedRateLimiter<String>),
    Window { requests: usize, interval: Duration, log: Mutex<HashMap<String, VecDeque<Instant>>> },
}

impl Limiter {
    pub fn new(cfg: &RateLimit) -> Self {
        let requests = cfg.requests.max(1);
        match cfg.algorithm {
            LimitAlgorithm::TokenBucket => {
                let period = cfg.interval.0 / requests;
                let burst = NonZeroU32::new(cfg.burst.unwrap_or(requests).max(1)).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                    .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                    .allow_burst(burst);
                Limiter::Bucket(DefaultKeyedRateLimiter::keyed(quota))
            }
            LimitAlgorithm::SlidingWindow => Limiter::Window {
                requests: requests as usize,
                interval: cfg.interval.0,
                log: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Whether a request of `key` is admitted now.
    pub fn admit(&self, key: &str) -> bool {
        match self {
            Limiter::Bucket(l) => l.check_key(&key.to_owned()).is_ok(),
            Limiter::Window { requests, interval, log } => {
                let now = Instant::now();
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                let times = log.entry(key.to_owned()).or_default();
                while times.front().is_some_and(|t| now.duration_since(*t) >= *interval) {
                    times.pop_front();
                }
                if times.len() < *requests {
                    times.push_back(now);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Forgets idle keys (bounded memory with many callers).
    pub fn tidy(&self) {
        match self {
            Limiter::Bucket(l) => l.retain_recent(),
            Limiter::Window { interval, log, .. } => {
                let now = Instant::now();
                log.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|_, t| t.back().is_some_and(|last| now.duration_since(*last) < *interval));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::resilience::{LimitKey, Period, RejectAction};

    fn cfg(algorithm: LimitAlgorithm) -> RateLimit {
        RateLimit {
            requests: 5,
            interval: Period(Duration::from_secs(60)),
            burst: None,
            algorithm,
            key: LimitKey::Route,
            header: None,
            on_reject: RejectAction::default(),
            global: false,
        }
    }

    #[test]
    fn both_algorithms_admit_the_budget_per_key() {
        for algorithm in [LimitAlgorithm::TokenBucket, LimitAlgorithm::SlidingWindow] {
            let l = Limiter::new(&cfg(algorithm));
            assert_eq!((0..10).filter(|_| l.admit("a")).count(), 5, "{algorithm:?}");
            assert!(l.admit("b"), "keys have their own budget");
        }
    }
}
