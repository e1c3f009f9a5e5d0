//! One request: lane → route → subset → endpoint (decided under one snapshot, no I/O), then
//! the upstream exchange.

use std::{net::SocketAddr, sync::Arc, time::Instant};

use http::{HeaderMap, HeaderValue, Request, Response, Version, header, request::Parts};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;

use super::{Body, deadline, enforce::enforce, exchange, headers, lane, observe, rescue, upgrade};
use crate::proxy::{
    Proxy,
    routing::{Decision, Lane, PickKey, RequestView, ServiceRoutes},
    source::ConnContext,
};
use crate::telemetry::metrics;

/// Where a request goes, and why.
pub struct Routed {
    pub target: SocketAddr,
    pub lane: Lane,
    pub trusted: bool,
    pub rule: Option<Arc<str>>,
    pub decision: Option<Decision>,
    /// The route's resilience plan, else the service's.
    pub plan: Option<Arc<crate::policy::Plan>>,
    /// For retries: the service and the matched route, to pick again.
    pub svc: Option<Arc<ServiceRoutes>>,
    pub route_index: Option<usize>,
    /// For metrics: the lane's tag as a bounded label, and when the request arrived.
    pub tag_label: Arc<str>,
    pub started: Instant,
    /// This hop in the request's trace, its request id, and what the span and access log
    /// name it by.
    pub trace: observe::RequestTrace,
}

pub async fn handle(
    proxy: &Proxy,
    ctx: &ConnContext,
    mut req: Request<Incoming>,
    h2: bool,
) -> Response<Body> {
    if headers::ambiguous_framing(req.headers()) {
        let mut resp = rescue::local(
            http::StatusCode::BAD_REQUEST,
            "bad_request",
            "Content-Length and Transfer-Encoding together: ambiguous framing",
        );
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return finish(resp, false, h2);
    }
    let upgrade = !h2 && headers::is_upgrade(req.headers());
    let on_downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let trace = observe::RequestTrace::start(proxy, &mut parts);
    let mut routed = match decide(proxy, ctx, &mut parts, trace) {
        Ok(r) => r,
        Err(rejected) => return finish(rejected.resp, rejected.trusted, h2),
    };

    headers::propagate(&mut parts.headers, &routed.lane);
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, authority);
    }
    parts.version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };

    let _admitted = match &routed.plan {
        Some(plan) => match enforce(plan, &routed.lane, ctx.src_pod.as_deref(), &parts.headers).await {
            Ok(a) => Some(a),
            Err(resp) => {
                record(proxy, ctx, &routed, resp.status().as_u16());
                return finish(*resp, routed.trusted, h2);
            }
        },
        None => None,
    };
    // Never work past the caller's deadline (or this route's timeout), and pass it on.
    let deadline = deadline::effective(&parts.headers, routed.plan.as_ref().and_then(|p| p.timeout));
    if let Some(d) = deadline {
        if d <= Instant::now() {
            let resp = rescue::local(
                http::StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                "the caller's deadline has passed",
            );
            if let Some(plan) = &routed.plan {
                metrics().policy.rejected.with_label_values(&[&*plan.scope, "deadline_exceeded"]).inc();
            }
            record(proxy, ctx, &routed, 504);
            return finish(resp, routed.trusted, h2);
        }
        deadline::stamp(&mut parts.headers, d);
    }
    let _in_flight = routed.decision.as_ref().map(|d| d.endpoint.start());
    let resp = match exchange::run(proxy, ctx, &mut routed, parts, body, h2, deadline).await {
        Ok(mut resp) => {
            if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS
                && let Some(down) = on_downstream_upgrade
            {
                upgrade::tunnel(down, hyper::upgrade::on(&mut resp));
            } else {
                headers::strip_hop_by_hop(resp.headers_mut(), false);
            }
            resp.map(|b| b.boxed())
        }
        Err(local) => *local,
    };
    record(proxy, ctx, &routed, resp.status().as_u16());
    finish(resp, routed.trusted, h2)
}

/// A request answered locally, and whether its caller is inside the mesh.
struct Rejected {
    resp: Response<Body>,
    trusted: bool,
}

/// Resolves the lane and picks the endpoint; a local response if none may serve.
fn decide(
    proxy: &Proxy,
    ctx: &ConnContext,
    parts: &mut Parts,
    trace: observe::RequestTrace,
) -> Result<Routed, Box<Rejected>> {
    let state = proxy.state.load();
    let pod = ctx.pod(&state).cloned();
    let trusted = ctx.trusted(pod.as_deref());
    if !trusted {
        headers::strip_lane(&mut parts.headers);
    }
    let view = RequestView {
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
    };
    let resolved = lane::resolve(ctx, pod.as_deref(), trusted, &view, &state.routing.rules);
    if resolved.tenant_spoof {
        tracing::warn!(client = %ctx.client, src_pod = ?ctx.src_pod, "tenant header differs from the pod's own tenant; ignored");
    }
    let mut routed = Routed {
        target: ctx.orig_dst.0,
        tag_label: state.labels.tag(resolved.lane.tag.as_deref()),
        lane: resolved.lane,
        trusted,
        rule: resolved.rule,
        decision: None,
        plan: None,
        svc: None,
        route_index: None,
        started: Instant::now(),
        trace,
    };
    let Some(svc) = state.routing.service(ctx.orig_dst.0) else {
        if state.snapshot.pod_by_ip(ctx.orig_dst.0.ip()).is_some() {
            return Ok(routed);
        }
        record(proxy, ctx, &routed, 503);
        return Err(Box::new(Rejected { resp: rescue::unknown_destination(ctx.orig_dst), trusted }));
    };
    routed.svc = Some(svc.clone());
    let matched = svc.route(&view);
    let route = matched.map(|(_, r)| r);
    routed.route_index = matched.map(|(i, _)| i);
    let key = PickKey {
        hash: svc.hash(Some(view.headers), ctx.client.0),
        client: ctx.src_pod.as_deref().unwrap_or(""),
    };
    let plan = route.and_then(|r| r.plan.clone()).or_else(|| svc.plan.clone());
    let decision = match pick(svc, &routed.lane, route, &key, plan.as_deref()) {
        Ok(d) => d,
        Err(resp) => {
            if resp.headers().get(headers::REASON).is_some_and(|r| r == "tenant_isolation") {
                let tenant = state.labels.tenant(routed.lane.tenant.as_deref());
                metrics().requests.tenant_denied.with_label_values(&[&*tenant, &*svc.name]).inc();
            }
            record(proxy, ctx, &routed, resp.status().as_u16());
            return Err(Box::new(Rejected { resp: *resp, trusted }));
        }
    };
    if let Some(r) = route {
        rewrite(&mut parts.headers, &r.rewrite);
    }
    routed.plan = plan;
    routed.target = decision.endpoint.addr;
    routed.decision = Some(decision);
    Ok(routed)
}

/// An endpoint for the request whose breaker admits it (ejected endpoints are skipped) and
/// that is not at its in-flight cap; a fail-fast answer when every pick is refused.
pub fn pick(
    svc: &ServiceRoutes,
    lane: &Lane,
    route: Option<&crate::proxy::routing::CompiledRoute>,
    key: &PickKey<'_>,
    plan: Option<&crate::policy::Plan>,
) -> Result<Decision, Box<Response<Body>>> {
    let Some(plan) = plan else {
        return svc.decide(lane, route, key, None).map_err(|e| Box::new(rescue::route_error(&e)));
    };
    let (mut ejected, mut busy) = (None, None);
    for _ in 0..8 {
        let d = svc.decide(lane, route, key, Some(plan)).map_err(|e| Box::new(rescue::route_error(&e)))?;
        if plan.max_per_endpoint.is_some_and(|max| d.endpoint.in_flight() >= max) {
            busy = Some(d.endpoint.addr);
        } else if !plan.admits(d.endpoint.addr) {
            ejected = Some(d.endpoint.addr);
        } else {
            return Ok(d);
        }
    }
    let (reason, detail) = match (ejected, busy) {
        (Some(last), _) => (
            "circuit_open",
            format!("{}: every picked endpoint is ejected by its circuit breaker (last {last})", svc.name),
        ),
        (None, last) => (
            "concurrency_limit",
            format!("{}: every picked endpoint is at its in-flight cap (last {last:?})", svc.name),
        ),
    };
    metrics().policy.rejected.with_label_values(&[&*plan.scope, reason]).inc();
    Err(Box::new(rescue::local(http::StatusCode::SERVICE_UNAVAILABLE, reason, &detail)))
}

fn rewrite(headers: &mut HeaderMap, rw: &crate::inventory::policy::HeaderRewrite) {
    for name in &rw.remove {
        headers.remove(name.as_str());
    }
    for (k, v) in &rw.add {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
}

/// Last touches on every response: the downstream's version, and no lane headers back to
/// callers outside the mesh.
fn finish(mut resp: Response<Body>, trusted: bool, h2: bool) -> Response<Body> {
    if !trusted {
        headers::strip_lane(resp.headers_mut());
    }
    *resp.version_mut() = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
    resp
}

/// The request's routing explanation, on its connection's flow; its metrics, span and
/// access-log line.
fn record(proxy: &Proxy, ctx: &ConnContext, r: &Routed, status: u16) {
    observe::request(proxy, ctx, r, status);
    ctx.flow.update(|s| {
        s.requests += 1;
        s.last_status = Some(status);
        s.lane_tag = r.lane.tag.clone();
        s.tag_source = Some(r.lane.tag_source.as_str());
        s.service = r.svc.as_ref().map(|svc| svc.name.clone());
        s.route = r.route_index.and_then(|i| r.svc.as_ref()?.route_at(i)).map(|route| route.name.clone());
        s.rule.clone_from(&r.rule);
        s.subset = r.decision.as_ref().map(|d| d.subset.clone());
        s.reason = r.decision.as_ref().map(|d| d.reason.as_str());
        s.endpoint_pod = r.decision.as_ref().map(|d| d.endpoint.pod.clone());
        s.upstream = Some(r.target);
    });
}
