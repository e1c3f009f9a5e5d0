//! The upstream exchange of one request: a single streamed try, or — under a retry policy,
//! for idempotent methods and small bodies — tries on fresh endpoint picks within the
//! retry budget, the per-try timeout and the request's deadline, with jittered backoff.
//! Whether to try again is the error's to say (`retryable`), or the policy's for a status
//! the upstream answered with; a local answer is never read back.

use std::{sync::Arc, time::Duration};

use tokio::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, header};
use http_body_util::BodyExt as _;
use hyper::body::{Body as _, Incoming};
use rand::Rng as _;

use super::{
    mirror,
    outgoing::{Outgoing, build, build_copy},
    record::Facts,
};
use crate::proxy::{
    Proxy,
    error::{ErrorKind, ProxyError},
    plan::{RequestPlan, Target},
    upstream::{IdleBody, LocalConn, Origin, Pooled, ReqBody},
};
use crate::routing::InFlight;

/// Bodies up to this size are buffered so a try can be replayed.
const REPLAYABLE: u64 = 64 * 1024;

/// Sends the request (and its retries); returns the response and the endpoint that gave it.
pub async fn run(
    proxy: &Proxy,
    plan: &RequestPlan,
    target: Target,
    out: Outgoing,
    facts: &mut Facts,
) -> Result<(Response<Pooled>, Target), ProxyError> {
    let Outgoing { head, body, h2, deadline, from, local } = out;
    let local = local.as_ref();
    let retry = plan
        .policy
        .as_ref()
        .and_then(|p| p.retry.clone())
        .filter(|(r, _)| r.all_methods || idempotent(&head.method))
        .filter(|_| replayable(&head.headers, &body));
    let copy = mirror::wanted(plan) && replayable(&head.headers, &body);
    if retry.is_none() && !copy {
        let body = if body.is_end_stream() {
            ReqBody::Empty
        } else {
            ReqBody::Stream(IdleBody::new(body, proxy.cfg.limits.body_idle_timeout))
        };
        let (target, _slot) = reserve(plan, target)?;
        let req = build(head, &target, body, h2)?;
        let to = Upstream { from: &from, local, target: &target };
        return try_once(proxy, plan, to, req, h2, deadline).await.map(|r| (r, target));
    }
    // Replayable: buffer the (small) body once, for the copy and for every try.
    let bytes = read_body(proxy, body).await?;
    if copy {
        facts.mirrored = mirror::send(proxy, plan, &from, &head, bytes.clone());
    }
    let Some((cfg, budget)) = retry else {
        let (target, _slot) = reserve(plan, target)?;
        let req = build(head, &target, ReqBody::full(bytes), h2)?;
        let to = Upstream { from: &from, local, target: &target };
        return try_once(proxy, plan, to, req, h2, deadline).await.map(|r| (r, target));
    };
    let _active = budget.request();
    let mut backoff = cfg.backoff.0;
    let mut target = target;
    let mut tries = 0;
    loop {
        tries += 1;
        let (reserved, slot) = reserve(plan, target)?;
        target = reserved;
        let req = build_copy(&head, &target, bytes.clone(), h2)?;
        let per_try = cfg.per_try_timeout.map(|t| Instant::now() + t.0);
        let try_deadline = match (deadline, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let to = Upstream { from: &from, local, target: &target };
        let outcome = try_once(proxy, plan, to, req, h2, try_deadline).await;
        let again = match &outcome {
            Ok(r) => cfg.statuses.contains(&r.status().as_u16()),
            Err(e) => e.retryable(),
        };
        let out_of_time = deadline.is_some_and(|d| Instant::now() + backoff >= d);
        if !again || tries > cfg.attempts as usize || out_of_time {
            return outcome.map(|r| (r, target));
        }
        let Some(_retrying) = budget.retry() else {
            facts.budget_exhausted = true;
            return outcome.map(|r| (r, target));
        };
        facts.retries += 1;
        drop((outcome, slot));
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(cfg.backoff.0 * 10);
        if let Some(next) = plan.repick(target.endpoint) {
            target = next;
        }
    }
}

/// Takes the request's in-flight slot on its endpoint, held for one try. Planning only read
/// the count, so under a per-endpoint cap two concurrent requests may both have picked the
/// last free endpoint: the slot is taken atomically here, and the one that lost is re-picked
/// onto another endpoint, or refused at once when every endpoint is busy.
fn reserve(plan: &RequestPlan, target: Target) -> Result<(Target, Option<InFlight>), ProxyError> {
    let Some(d) = &target.decision else { return Ok((target, None)) };
    let max = plan.policy.as_ref().and_then(|p| p.max_per_endpoint);
    if let Some(slot) = d.endpoint.try_start(max) {
        return Ok((target, Some(slot)));
    }
    for _ in 0..3 {
        let Some(next) = plan.repick(target.endpoint) else { break };
        if let Some(slot) = next.decision.as_ref().and_then(|d| d.endpoint.try_start(max)) {
            return Ok((next, Some(slot)));
        }
    }
    let e = ProxyError::new(
        ErrorKind::EndpointsBusy,
        format!("every picked endpoint is at its in-flight cap (last {})", target.endpoint),
    );
    Err(match &plan.service {
        Some(svc) => e.for_service(&svc.name),
        None => e,
    })
}

/// Where a try goes, and from where.
#[derive(Clone, Copy)]
struct Upstream<'a> {
    from: &'a Origin,
    local: Option<&'a Arc<LocalConn>>,
    target: &'a Target,
}

/// One try: under the deadline, its outcome told to the endpoint's and subset's breakers.
async fn try_once(
    proxy: &Proxy,
    plan: &RequestPlan,
    to: Upstream<'_>,
    req: Request<ReqBody>,
    h2: bool,
    deadline: Option<Instant>,
) -> Result<Response<Pooled>, ProxyError> {
    let Upstream { from, local, target } = to;
    let started = Instant::now();
    let send = proxy.pool.send(from, target.endpoint, h2, req, local);
    let result = match deadline {
        Some(d) => match tokio::time::timeout_at(d, send).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::new(
                ErrorKind::Timeout,
                format!("{}: no response before the deadline", target.endpoint),
            )),
        },
        None => send.await,
    };
    let result = result.map_err(|e| match &plan.service {
        Some(svc) => e.for_service(&svc.name),
        None => e,
    });
    if let Some(policy) = &plan.policy {
        let failed = match &result {
            Ok(r) => r.status().is_server_error(),
            Err(e) => e.endpoint_failure(),
        };
        let subset = target.decision.as_ref().map(|d| &*d.subset);
        policy.record(target.endpoint.0, subset, !failed, started.elapsed());
    }
    result
}

/// The caller's body, whole (it is small: see [`replayable`]).
async fn read_body(proxy: &Proxy, body: Incoming) -> Result<Bytes, ProxyError> {
    match IdleBody::new(body, proxy.cfg.limits.body_idle_timeout).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            let kind = match e {
                crate::proxy::upstream::IdleBodyError::Idle(_) => ErrorKind::RequestBodyTimeout,
                crate::proxy::upstream::IdleBodyError::Body(_) => ErrorKind::BadRequestBody,
            };
            Err(ProxyError::new(kind, e.to_string()))
        }
    }
}

fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// A body known to be small: a declared length up to [`REPLAYABLE`], or none at all (a
/// stream of unknown length, such as gRPC streaming, is never buffered).
fn replayable(headers: &HeaderMap, body: &Incoming) -> bool {
    !headers.contains_key(header::TRANSFER_ENCODING)
        && body.size_hint().upper().is_some_and(|n| n <= REPLAYABLE)
}

/// Full jitter: a random wait up to `d`.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.0..=1.0))
}
