//! The upstream exchange of one request: a single streamed try, or — under a retry policy,
//! for idempotent methods and small bodies — tries on fresh endpoint picks, within the
//! retry budget, the per-try timeout and the request's deadline, with jittered backoff.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, request::Parts};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use rand::Rng as _;

use super::{Body, ReqBody, forward::Routed, idle_body::IdleBody, mirror, rescue, upstream::endpoint_uri};
use crate::{
    proxy::{Proxy, routing::PickKey, source::ConnContext},
    telemetry::metrics,
};

/// Bodies up to this size are buffered so a try can be replayed.
const REPLAYABLE: u64 = 64 * 1024;

/// What the upstream said, or the local answer standing in for it.
pub type Outcome = Result<Response<Incoming>, Local>;

/// A locally made answer (boxed: it is large and the rare path).
pub type Local = Box<Response<Body>>;

pub async fn run(
    proxy: &Proxy,
    ctx: &ConnContext,
    routed: &mut Routed,
    parts: Parts,
    body: Incoming,
    h2: bool,
    deadline: Option<Instant>,
) -> Outcome {
    let client = if h2 { &proxy.upstreams.h2 } else { &proxy.upstreams.h1 };
    let retry = routed
        .plan
        .as_ref()
        .and_then(|p| p.retry.clone())
        .filter(|(r, _)| r.all_methods || idempotent(&parts.method))
        .filter(|_| replayable(&parts.headers));
    let copy = replayable(&parts.headers) && mirror::wanted(routed);
    if retry.is_none() && !copy {
        let mut parts = parts;
        parts.uri = uri(routed, &parts.uri)?;
        let body = IdleBody::new(body, proxy.cfg.limits.body_idle_timeout).map_err(Into::into).boxed();
        let req = Request::from_parts(parts, body);
        return timed(client.request(req), deadline, routed).await;
    }
    // Replayable: buffer the (small) body once, for the copy and for every try.
    let body = IdleBody::new(body, proxy.cfg.limits.body_idle_timeout)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| {
            Box::new(rescue::local(
                StatusCode::BAD_REQUEST,
                "bad_request",
                &format!("reading the request body: {e}"),
            ))
        })?;
    let (method, version, headers) = (parts.method, parts.version, parts.headers);
    if copy {
        mirror::send(ctx, routed, client, (&method, &parts.uri, version, &headers), body.clone());
    }
    let Some((cfg, budget)) = retry else {
        let req = build(&method, uri(routed, &parts.uri)?, version, &headers, body)?;
        return timed(client.request(req), deadline, routed).await;
    };
    let _active = budget.request();
    let mut backoff = cfg.backoff.0;
    let mut tries = 0;
    loop {
        tries += 1;
        let req = build(&method, uri(routed, &parts.uri)?, version, &headers, body.clone())?;
        let per_try = cfg.per_try_timeout.map(|t| Instant::now() + t.0);
        let try_deadline = match (deadline, per_try) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let outcome = timed(client.request(req), try_deadline, routed).await;
        let retryable = match &outcome {
            Ok(r) => cfg.statuses.contains(&r.status().as_u16()),
            // Local answers here are connect failures, resets and per-try timeouts.
            Err(r) => {
                r.status() == StatusCode::SERVICE_UNAVAILABLE
                    || r.status() == StatusCode::BAD_GATEWAY
                    || r.status() == StatusCode::GATEWAY_TIMEOUT
            }
        };
        let out_of_time = deadline.is_some_and(|d| Instant::now() + backoff >= d);
        if !retryable || tries > cfg.attempts as usize || out_of_time {
            return outcome;
        }
        let retries = &metrics().policy.retries;
        let scope = routed.plan.as_ref().map_or("", |p| &*p.scope);
        let Some(_retrying) = budget.retry() else {
            retries.with_label_values(&[scope, "budget_exhausted"]).inc();
            return outcome;
        };
        retries.with_label_values(&[scope, "retried"]).inc();
        ctx.flow.update(|s| s.retries += 1);
        tokio::time::sleep(jitter(backoff)).await;
        backoff = (backoff * 2).min(cfg.backoff.0 * 10);
        repick(ctx, routed);
    }
}

/// Another endpoint for a retry, not the one that just failed when the subset has others
/// (the lane stays).
fn repick(ctx: &ConnContext, routed: &mut Routed) {
    let Some(svc) = routed.svc.clone() else { return };
    let route = routed.route_index.and_then(|i| svc.route_at(i));
    let key = PickKey { hash: None, client: ctx.src_pod.as_deref().unwrap_or("") };
    let failed = routed.target;
    for _ in 0..3 {
        if let Ok(d) = super::forward::pick(&svc, &routed.lane, route, &key, routed.plan.as_deref()) {
            let moved = d.endpoint.addr != failed;
            routed.target = d.endpoint.addr;
            routed.decision = Some(d);
            if moved {
                return;
            }
        }
    }
}

async fn timed(
    exchange: impl Future<Output = Result<Response<Incoming>, hyper_util::client::legacy::Error>>,
    deadline: Option<Instant>,
    routed: &Routed,
) -> Outcome {
    let started = Instant::now();
    let outcome = try_once(exchange, deadline, routed).await;
    if let Some(plan) = &routed.plan {
        let ok = matches!(&outcome, Ok(r) if !r.status().is_server_error());
        let subset = routed.decision.as_ref().map(|d| &*d.subset);
        plan.record(routed.target, subset, ok, started.elapsed());
    }
    outcome
}

async fn try_once(
    exchange: impl Future<Output = Result<Response<Incoming>, hyper_util::client::legacy::Error>>,
    deadline: Option<Instant>,
    routed: &Routed,
) -> Outcome {
    let result = match deadline {
        Some(d) => match tokio::time::timeout_at(d.into(), exchange).await {
            Ok(r) => r,
            Err(_) => {
                let detail = format!("{}: no response before the deadline", routed.target);
                return Err(Box::new(rescue::local(StatusCode::GATEWAY_TIMEOUT, "request_timeout", &detail)));
            }
        },
        None => exchange.await,
    };
    result.map_err(|e| Box::new(rescue::upstream_error(&e, routed.target)))
}

fn uri(routed: &Routed, original: &Uri) -> Result<Uri, Local> {
    let authority = routed.decision.as_ref().map(|d| d.endpoint.authority.clone());
    endpoint_uri(routed.target, authority, original)
        .map_err(|e| Box::new(rescue::local(StatusCode::BAD_REQUEST, "bad_request", &e.to_string())))
}

fn build(
    method: &Method,
    uri: Uri,
    version: Version,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Request<ReqBody>, Local> {
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri)
        .version(version)
        .body(Full::new(body).map_err(|never| match never {}).boxed())
        .map_err(|e| Box::new(rescue::local(StatusCode::BAD_REQUEST, "bad_request", &e.to_string())))?;
    *req.headers_mut() = headers.clone();
    Ok(req)
}

fn idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// A body known to be small: a declared length up to [`REPLAYABLE`], or none at all.
fn replayable(headers: &HeaderMap) -> bool {
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return false;
    }
    match headers.get(http::header::CONTENT_LENGTH) {
        Some(v) => v.to_str().ok().and_then(|v| v.parse::<u64>().ok()).is_some_and(|n| n <= REPLAYABLE),
        None => true,
    }
}

/// Full jitter: a random wait up to `d`.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::rng().random_range(0.0..=1.0))
}
