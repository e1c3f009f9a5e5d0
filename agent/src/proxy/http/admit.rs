//! Admission: the resilience plan's gates before a request goes upstream — rate limit
//! (local, or global through Redis, with its fallback action), concurrency cap, injected
//! faults (abort or delay). A refusal is a `ProxyError`; nothing is answered or counted
//! here (the request's record does that).

use http::HeaderMap;

use super::record::Facts;
use crate::{
    policy::{GlobalError, Limit, Plan, limit_key, roll_faults},
    proxy::error::{ErrorKind, ProxyError},
    telemetry::metrics,
    vocab::Lane,
};

/// Held while the request runs (its place under the concurrency cap).
pub struct Admitted {
    _pass: Option<crate::policy::Pass>,
}

/// Admits the request under `plan`, or says why not.
pub async fn admit(
    plan: &Plan,
    lane: &Lane,
    src_pod: Option<&str>,
    headers: &HeaderMap,
    facts: &mut Facts,
) -> Result<Admitted, ProxyError> {
    if let Some(limit) = &plan.limit {
        let key = limit_key(&limit.cfg, lane, src_pod, headers);
        if !admit_rate(&plan.scope, limit, &key).await {
            let kind = ErrorKind::RateLimited { action: limit.action.clone(), scope: plan.scope.clone() };
            return Err(ProxyError::new(kind, format!("{}: rate limit reached for {key:?}", plan.scope)));
        }
    }
    let pass = match &plan.gate {
        Some(gate) => match gate.enter() {
            Some(p) => Some(p),
            None => {
                let detail = format!("{}: concurrency limit reached", plan.scope);
                return Err(ProxyError::new(ErrorKind::ConcurrencyLimit, detail));
            }
        },
        None => None,
    };
    let (abort, delay) = roll_faults(&plan.faults, lane.tag.as_deref());
    if let Some(d) = delay {
        facts.delayed = true;
        tokio::time::sleep(d).await;
    }
    if let Some(status) = abort {
        let detail = format!("{}: fault injected ({status})", plan.scope);
        return Err(ProxyError::new(ErrorKind::FaultInjected { status }, detail));
    }
    Ok(Admitted { _pass: pass })
}

/// The shared budget for `global` limits; the local limiter otherwise, and whenever Redis
/// cannot answer (fail-open towards the global total: each node enforces the limit alone).
async fn admit_rate(scope: &str, limit: &Limit, key: &str) -> bool {
    let Some(global) = &limit.global else { return limit.local.admit(key) };
    let counter = |result: &str| metrics().policy.global_limit.with_label_values(&[scope, result]).inc();
    match global.admit(scope, &limit.cfg, key).await {
        Ok(admitted) => {
            counter(if admitted { "admitted" } else { "rejected" });
            admitted
        }
        Err(e) => {
            counter("fallback");
            if !matches!(e, GlobalError::Paused) {
                tracing::warn!(policy = scope, redis = global.url(), error = %e, "global rate limit: using the local limiter");
            }
            limit.local.admit(key)
        }
    }
}
