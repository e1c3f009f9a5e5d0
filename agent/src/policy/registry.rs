//! Budgets that outlive a routing table: the same scope and settings get the same limiter
//! and gate after an unrelated inventory change, so pod churn never resets a rate limit.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use super::{Breaker, RetryBudget, breaker::Level, gate::Gate, global::GlobalLimits, limiter::Limiter};
use crate::inventory::resilience::{CircuitBreaker, RateLimit};

/// What a breaker is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Guarded {
    Endpoint(SocketAddr),
    Subset(String),
}

#[derive(Default)]
pub struct Registry {
    /// Shared budgets for `global` rate limits (the agent's `--redis`).
    pub global: Option<Arc<GlobalLimits>>,
    limiters: Mutex<HashMap<(String, RateLimit), Arc<Limiter>>>,
    gates: Mutex<HashMap<(String, usize), Arc<Gate>>>,
    budgets: Mutex<HashMap<(String, u32, u32), Arc<RetryBudget>>>,
    breakers: Mutex<HashMap<(String, Guarded, CircuitBreaker), Arc<Breaker>>>,
}

impl Registry {
    pub fn new(global: Option<Arc<GlobalLimits>>) -> Self {
        Self { global, ..Self::default() }
    }

    pub fn limiter(&self, scope: &str, cfg: &RateLimit) -> Arc<Limiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((scope.to_owned(), cfg.clone())).or_insert_with(|| Arc::new(Limiter::new(cfg))).clone()
    }

    pub fn gate(&self, scope: &str, max: usize) -> Arc<Gate> {
        let mut map = self.gates.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((scope.to_owned(), max)).or_insert_with(|| Arc::new(Gate::new(max))).clone()
    }

    pub fn budget(&self, scope: &str, percent: u32, min: u32) -> Arc<RetryBudget> {
        let mut map = self.budgets.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((scope.to_owned(), percent, min))
            .or_insert_with(|| Arc::new(RetryBudget::new(percent, min)))
            .clone()
    }

    pub fn breaker(&self, scope: &str, guarded: Guarded, cfg: &CircuitBreaker) -> Arc<Breaker> {
        let level = match guarded {
            Guarded::Endpoint(_) => Level::Endpoint,
            Guarded::Subset(_) => Level::Subset,
        };
        let mut map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((scope.to_owned(), guarded, cfg.clone()))
            .or_insert_with(|| Arc::new(Breaker::new(cfg.clone(), scope, level)))
            .clone()
    }

    /// Drops state no table uses any more and forgets idle callers.
    pub fn tidy(&self) {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters.retain(|_, l| Arc::strong_count(l) > 1);
        for l in limiters.values() {
            l.tidy();
        }
        self.gates.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, g| Arc::strong_count(g) > 1);
        self.budgets.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, b| Arc::strong_count(b) > 1);
        self.breakers.lock().unwrap_or_else(|p| p.into_inner()).retain(|_, b| Arc::strong_count(b) > 1);
    }
}
