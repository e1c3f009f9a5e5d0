//! The compiled resilience settings of one service or route.

use std::{sync::Arc, time::Duration};

use http::HeaderMap;

use super::{Registry, RetryBudget, gate::Gate, limiter::Limiter};
use crate::{
    inventory::resilience::{Fault, LimitKey, RateLimit, Resilience, Retry},
    proxy::routing::Lane,
};

pub struct Plan {
    /// `namespace/service` or `namespace/service/route`: names the policy in rejections.
    pub scope: Arc<str>,
    pub timeout: Option<Duration>,
    pub limit: Option<(Arc<Limiter>, RateLimit)>,
    pub gate: Option<Arc<Gate>>,
    pub faults: Vec<Fault>,
    pub retry: Option<(Retry, Arc<RetryBudget>)>,
}

impl Plan {
    /// `None` when there is nothing to enforce.
    pub fn compile(scope: &str, r: &Resilience, registry: &Registry) -> Option<Arc<Self>> {
        if *r == Resilience::default() {
            return None;
        }
        Some(Arc::new(Self {
            scope: scope.into(),
            timeout: r.timeout.map(|t| t.0),
            limit: r.rate_limit.as_ref().map(|l| (registry.limiter(scope, l), l.clone())),
            gate: r.concurrency.as_ref().map(|c| registry.gate(scope, c.max_in_flight as usize)),
            faults: r.faults.clone(),
            retry: r
                .retry
                .as_ref()
                .map(|x| (x.clone(), registry.budget(scope, x.budget_percent, x.min_retries))),
        }))
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
