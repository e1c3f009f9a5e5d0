//! The compiled resilience settings of one service or route.

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use http::HeaderMap;

use super::{
    Breaker, Registry, RetryBudget, SubsetHealth, gate::Gate, global::GlobalLimits, limiter::Limiter,
    registry::Guarded,
};
use crate::{
    inventory::resilience::{Fault, LimitKey, Mirror, RateLimit, RejectAction, Resilience, Retry},
    vocab::Lane,
};

/// A rate limit: the local limiter, and the shared Redis budget for `global` limits (the
/// local limiter is then the fallback).
pub struct Limit {
    pub local: Arc<Limiter>,
    pub global: Option<Arc<GlobalLimits>>,
    pub cfg: RateLimit,
    /// What a limited request is answered with (shared by every rejection).
    pub action: Arc<RejectAction>,
}

pub struct Plan {
    /// `namespace/service` or `namespace/service/route`: names the policy in rejections.
    pub scope: Arc<str>,
    pub timeout: Option<Duration>,
    pub limit: Option<Limit>,
    pub gate: Option<Arc<Gate>>,
    /// Requests in flight per endpoint at most (busy endpoints are skipped).
    pub max_per_endpoint: Option<usize>,
    pub faults: Vec<Fault>,
    pub retry: Option<(Retry, Arc<RetryBudget>)>,
    /// A breaker per endpoint of the service, and the share that may be ejected at once.
    pub breakers: HashMap<SocketAddr, Arc<Breaker>>,
    max_ejection_percent: usize,
    /// A breaker per subset (pods' tag, `base` for untagged ones).
    subset_breakers: HashMap<String, Arc<Breaker>>,
    /// Shadow copies, and the bound on copies in flight (beyond it copies are dropped).
    pub mirror: Option<(Mirror, Arc<tokio::sync::Semaphore>)>,
}

/// Copies in flight per plan at most; more are dropped, never queued.
const MIRROR_IN_FLIGHT: usize = 64;

impl Plan {
    /// `None` when there is nothing to enforce. `subsets` names the service's subsets.
    pub fn compile(
        scope: &str,
        r: &Resilience,
        registry: &Registry,
        endpoints: &[SocketAddr],
        subsets: &[String],
    ) -> Option<Arc<Self>> {
        if *r == Resilience::default() {
            return None;
        }
        let limit = r.rate_limit.as_ref().map(|l| {
            let global = if l.global { registry.global.clone() } else { None };
            if l.global && global.is_none() {
                tracing::warn!(
                    policy = scope,
                    "rateLimit.global needs the agent's --redis; enforcing it per node"
                );
            }
            Limit {
                local: registry.limiter(scope, l),
                global,
                cfg: l.clone(),
                action: Arc::new(l.on_reject.clone()),
            }
        });
        Some(Arc::new(Self {
            scope: scope.into(),
            timeout: r.timeout.map(|t| t.0),
            limit,
            gate: r
                .concurrency
                .as_ref()
                .and_then(|c| c.max_in_flight)
                .map(|max| registry.gate(scope, max as usize)),
            max_per_endpoint: r.concurrency.as_ref().and_then(|c| c.max_per_endpoint).map(|m| m as usize),
            faults: r.faults.clone(),
            retry: r
                .retry
                .as_ref()
                .map(|x| (x.clone(), registry.budget(scope, x.budget_percent, x.min_retries))),
            breakers: r
                .circuit_breaker
                .as_ref()
                .map(|cb| {
                    endpoints
                        .iter()
                        .map(|e| (*e, registry.breaker(scope, Guarded::Endpoint(*e), cb)))
                        .collect()
                })
                .unwrap_or_default(),
            subset_breakers: r
                .subset_breaker
                .as_ref()
                .map(|cb| {
                    subsets
                        .iter()
                        .map(|s| (s.clone(), registry.breaker(scope, Guarded::Subset(s.clone()), cb)))
                        .collect()
                })
                .unwrap_or_default(),
            max_ejection_percent: r.circuit_breaker.as_ref().map_or(0, |cb| cb.max_ejection_percent as usize),
            mirror: r.mirror.clone().map(|m| (m, Arc::new(tokio::sync::Semaphore::new(MIRROR_IN_FLIGHT)))),
        }))
    }

    /// Whether `endpoint` may take this request: its breaker allows it, or too many
    /// endpoints are already ejected (then traffic spreads over all of them).
    pub fn admits(&self, endpoint: SocketAddr) -> bool {
        let Some(b) = self.breakers.get(&endpoint) else { return true };
        let ejected = self.breakers.values().filter(|b| b.is_open()).count();
        if ejected * 100 > self.max_ejection_percent * self.breakers.len() {
            return true;
        }
        b.allow()
    }

    /// Whether `endpoint`'s breaker is open now.
    pub fn ejected(&self, endpoint: SocketAddr) -> bool {
        self.breakers.get(&endpoint).is_some_and(|b| b.is_open())
    }

    /// Records a try's outcome on the endpoint's and the subset's breakers.
    pub fn record(&self, endpoint: SocketAddr, subset: Option<&str>, ok: bool, took: Duration) {
        if let Some(b) = self.breakers.get(&endpoint) {
            b.record(ok, took);
        }
        if let Some(b) = subset.and_then(|s| self.subset_breakers.get(s)) {
            b.record(ok, took);
        }
    }
}

impl SubsetHealth for Plan {
    fn open(&self, subset: &str) -> bool {
        self.subset_breakers.get(subset).is_some_and(|b| b.is_open())
    }

    fn admit(&self, subset: &str) -> bool {
        self.subset_breakers.get(subset).is_none_or(|b| b.allow())
    }
}

/// The budget a request draws from.
pub fn limit_key(cfg: &RateLimit, lane: &Lane, src_pod: Option<&str>, headers: &HeaderMap) -> String {
    let v = match cfg.key {
        LimitKey::Route => None,
        LimitKey::SourcePod => src_pod.map(str::to_owned),
        LimitKey::SourceTag => lane.tag.clone(),
        LimitKey::Tenant => lane.tenant.clone(),
        LimitKey::Header => cfg
            .header
            .as_deref()
            .and_then(|h| headers.get(h))
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    v.unwrap_or_default()
}
