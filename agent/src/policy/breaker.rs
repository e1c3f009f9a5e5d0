//! A circuit breaker (per endpoint or per subset), with gradual recovery: closed → open (the
//! endpoint is ejected) → half-open probes → recovering (+step% of traffic every period)
//! → closed. Reopening doubles the open time, up to ten times `openFor`.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use prometheus::IntCounter;
use rand::Rng as _;

use crate::{inventory::resilience::CircuitBreaker, telemetry::metrics};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { successes: u32, probing: u32 },
    Recovering { since: Instant },
}

struct Inner {
    state: State,
    consecutive: u32,
    window_start: Instant,
    calls: u32,
    failures: u32,
    opened: u32,
}

/// What a breaker guards: one endpoint, or one subset of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Endpoint,
    Subset,
}

impl Level {
    const fn as_str(self) -> &'static str {
        match self {
            Level::Endpoint => "endpoint",
            Level::Subset => "subset",
        }
    }
}

/// Transition counters, bound once per breaker.
struct Transitions {
    open: IntCounter,
    half_open: IntCounter,
    recovering: IntCounter,
    closed: IntCounter,
}

impl Transitions {
    fn new(scope: &str, level: Level) -> Self {
        let c = |to| metrics().policy.breaker_transitions.with_label_values(&[scope, level.as_str(), to]);
        Self { open: c("open"), half_open: c("half_open"), recovering: c("recovering"), closed: c("closed") }
    }
}

pub struct Breaker {
    cfg: CircuitBreaker,
    inner: Mutex<Inner>,
    transitions: Transitions,
}

impl Breaker {
    /// A closed breaker; `scope` and `level` label its transition counters.
    pub fn new(cfg: CircuitBreaker, scope: &str, level: Level) -> Self {
        let inner = Inner {
            state: State::Closed,
            consecutive: 0,
            window_start: Instant::now(),
            calls: 0,
            failures: 0,
            opened: 0,
        };
        Self { cfg, inner: Mutex::new(inner), transitions: Transitions::new(scope, level) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    pub fn state(&self) -> State {
        self.lock().state
    }

    /// Whether a call may go through now (a probe counts while half-open).
    pub fn allow(&self) -> bool {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> bool {
        let mut s = self.lock();
        match s.state {
            State::Closed => true,
            State::Open { until } if now < until => false,
            State::Open { .. } => {
                s.state = State::HalfOpen { successes: 0, probing: 1 };
                self.transitions.half_open.inc();
                true
            }
            State::HalfOpen { successes, probing } => {
                if successes + probing < self.cfg.half_open_probes.max(1) {
                    s.state = State::HalfOpen { successes, probing: probing + 1 };
                    true
                } else {
                    false
                }
            }
            State::Recovering { since } => {
                let share = self.share(now.duration_since(since));
                if share >= 100 {
                    s.state = State::Closed;
                    self.transitions.closed.inc();
                    return true;
                }
                rand::rng().random_range(0..100) < share
            }
        }
    }

    /// Percent of traffic admitted `elapsed` into recovery.
    fn share(&self, elapsed: Duration) -> u32 {
        let steps = (elapsed.as_millis() / self.cfg.recovery_every.0.as_millis().max(1)) as u32 + 1;
        (steps * self.cfg.recovery_step_percent).min(100)
    }

    /// Whether this breaker is open now (an endpoint ejected, a subset avoided).
    pub fn is_open(&self) -> bool {
        self.is_open_at(Instant::now())
    }

    fn is_open_at(&self, now: Instant) -> bool {
        matches!(self.lock().state, State::Open { until } if now < until)
    }

    /// Records a call's outcome (`took` decides slow calls).
    pub fn record(&self, ok: bool, took: Duration) {
        self.record_at(ok, took, Instant::now());
    }

    fn record_at(&self, ok: bool, took: Duration, now: Instant) {
        let failed = !ok || self.cfg.slow_call.is_some_and(|s| took > s.0);
        let mut s = self.lock();
        if now.duration_since(s.window_start) >= self.cfg.window.0 {
            s.window_start = now;
            s.calls = 0;
            s.failures = 0;
        }
        s.calls += 1;
        s.consecutive = if failed { s.consecutive + 1 } else { 0 };
        if failed {
            s.failures += 1;
        }
        s.state = match s.state {
            State::HalfOpen { .. } | State::Recovering { .. } if failed => self.open(&mut s, now),
            State::HalfOpen { successes, probing } => {
                let successes = successes + 1;
                if successes >= self.cfg.half_open_probes.max(1) {
                    self.transitions.recovering.inc();
                    State::Recovering { since: now }
                } else {
                    State::HalfOpen { successes, probing: probing.saturating_sub(1) }
                }
            }
            State::Closed if self.trips(&s) => self.open(&mut s, now),
            other => other,
        };
    }

    fn trips(&self, s: &Inner) -> bool {
        let consecutive = self.cfg.consecutive_failures > 0 && s.consecutive >= self.cfg.consecutive_failures;
        let ratio = self.cfg.failure_percent > 0
            && s.calls >= self.cfg.min_requests.max(1)
            && s.failures * 100 >= s.calls * self.cfg.failure_percent;
        consecutive || ratio
    }

    fn open(&self, s: &mut Inner, now: Instant) -> State {
        s.opened += 1;
        s.consecutive = 0;
        self.transitions.open.inc();
        let factor = 2u32.saturating_pow(s.opened - 1).min(10);
        State::Open { until: now + self.cfg.open_for.0 * factor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::resilience::Period;

    fn cfg() -> CircuitBreaker {
        serde_norway::from_str("consecutiveFailures: 3\nopenFor: 50ms\nhalfOpenProbes: 2\nrecoveryStepPercent: 50\nrecoveryEvery: 50ms")
            .expect("yaml")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    // Time is given, not slept: each step happens at a stated instant after `t0`.
    #[test]
    fn opens_probes_and_recovers_in_steps() {
        let b = Breaker::new(cfg(), "test", Level::Endpoint);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(b.allow_at(t0));
            b.record_at(false, Duration::ZERO, t0);
        }
        assert!(!b.allow_at(t0 + ms(49)) && b.is_open_at(t0 + ms(49)), "open for 50 ms");
        assert!(!b.is_open_at(t0 + ms(50)));
        let t1 = t0 + ms(60);
        assert!(b.allow_at(t1) && b.allow_at(t1) && !b.allow_at(t1), "two probes");
        b.record_at(true, Duration::ZERO, t1);
        b.record_at(true, Duration::ZERO, t1);
        assert_eq!(b.state(), State::Recovering { since: t1 });
        // 50 % in the first step: Binomial(4000, 0.5) within its 1e-6 bounds (±155).
        let admitted = (0..4000).filter(|_| b.allow_at(t1 + ms(49))).count();
        assert!((1845..=2155).contains(&admitted), "50% in the first step: {admitted}");
        assert_eq!(b.state(), State::Recovering { since: t1 });
        // The second step admits 100 %: closed.
        assert!(b.allow_at(t1 + ms(50)));
        assert_eq!(b.state(), State::Closed);
    }

    #[test]
    fn a_failed_probe_reopens_for_longer_and_slow_calls_count() {
        let mut c = cfg();
        c.slow_call = Some(Period(ms(10)));
        let b = Breaker::new(c, "test", Level::Subset);
        let t0 = Instant::now();
        b.record_at(true, ms(10), t0);
        assert!(!b.is_open_at(t0), "a call of exactly the slow bound is not slow");
        for _ in 0..3 {
            b.record_at(true, ms(11), t0);
        }
        assert!(b.is_open_at(t0), "three slow calls");
        let t1 = t0 + ms(50);
        assert!(b.allow_at(t1));
        b.record_at(false, Duration::ZERO, t1);
        assert_eq!(b.state(), State::Open { until: t1 + ms(100) }, "reopened for twice as long");
    }
}
