//! Applies a resilience plan to one request before it goes upstream: rate limit (local or
//! global, with its fallback action), concurrency cap, fault injection. Rejections carry a
//! reason and are counted.

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::{Body, rescue};
use crate::{
    policy::{GlobalError, Limit, Plan, limit_key, roll_faults},
    proxy::routing::Lane,
    telemetry::metrics,
};

/// Held while the request runs (its place under the concurrency cap).
pub struct Admitted {
    _pass: Option<crate::policy::Pass>,
}

/// Admits the request, or answers it locally.
pub async fn enforce(
    plan: &Arc<Plan>,
    lane: &Lane,
    src_pod: Option<&str>,
    headers: &HeaderMap,
) -> Result<Admitted, Box<Response<Body>>> {
    let reject = |reason: &str| metrics().policy.rejected.with_label_values(&[&*plan.scope, reason]).inc();
    if let Some(limit) = &plan.limit {
        let key = limit_key(&limit.cfg, lane, src_pod, headers);
        if !admit(&plan.scope, limit, &key).await {
            reject("rate_limited");
            return Err(Box::new(rejected(plan, &limit.cfg)));
        }
    }
    let pass = match &plan.gate {
        Some(gate) => match gate.enter() {
            Some(p) => Some(p),
            None => {
                reject("concurrency_limit");
                let detail = format!("{}: concurrency limit reached", plan.scope);
                return Err(Box::new(rescue::local(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "concurrency_limit",
                    &detail,
                )));
            }
        },
        None => None,
    };
    let (abort, delay) = roll_faults(&plan.faults, lane.tag.as_deref());
    let faults = &metrics().policy.faults;
    if let Some(d) = delay {
        faults.with_label_values(&[&*plan.scope, "delay"]).inc();
        tokio::time::sleep(d).await;
    }
    if let Some(status) = abort {
        faults.with_label_values(&[&*plan.scope, "abort"]).inc();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return Err(Box::new(rescue::local(
            status,
            "fault_injected",
            &format!("{}: fault injected", plan.scope),
        )));
    }
    Ok(Admitted { _pass: pass })
}

/// The shared budget for `global` limits; the local limiter otherwise, and whenever Redis
/// cannot answer (fail-open towards the global total: each node enforces the limit alone).
async fn admit(scope: &str, limit: &Limit, key: &str) -> bool {
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

/// The rate limit's fallback action: its status, body and headers, plus the policy name.
fn rejected(plan: &Plan, cfg: &crate::inventory::resilience::RateLimit) -> Response<Body> {
    let action = &cfg.on_reject;
    let status = StatusCode::from_u16(action.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
    let body =
        if action.body.is_empty() { format!("{}: rate limited", plan.scope) } else { action.body.clone() };
    let mut resp = rescue::local(status, "rate_limited", &body);
    if let Ok(v) = HeaderValue::from_str(&plan.scope) {
        resp.headers_mut().insert(HeaderName::from_static("x-graylane-limit"), v);
    }
    for (k, v) in &action.headers {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}
