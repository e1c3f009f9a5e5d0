//! One HTTP request through the proxy: decide (the plan), execute (admission, deadline,
//! the upstream exchange with retries and mirroring), record once. Every failure is a
//! `ProxyError` that comes back here and is answered in one place (`respond`).

use std::sync::Arc;

use tokio::time::Instant;

use http::{HeaderValue, Request, Response, Version, header};
use hyper::body::Incoming;

use super::{admit::admit, deadline, exchange, headers, outgoing, record::Recorder, rewrite, upgrade};
use crate::{
    proxy::{
        Proxy, ProxyState,
        body::Body,
        carriers,
        conn::ConnContext,
        continuity::{Keys, RequestId},
        error::{ErrorKind, ProxyError},
        plan::{self, LaneMemory},
        respond,
        upstream::LocalConn,
    },
    routing::RequestView,
};

/// `local`: the HTTP/1.1 downstream connection's own upstream connection (see
/// [`LocalConn`]); none over HTTP/2, whose requests run on tasks of their own.
pub async fn handle(
    proxy: &Proxy,
    conn: &ConnContext,
    req: Request<Incoming>,
    h2: bool,
    local: Option<&Arc<LocalConn>>,
) -> Response<Body> {
    let mut rec = Recorder::new(proxy, conn, req.method(), req.uri());
    let grpc = respond::is_grpc(req.headers());
    let framed_twice = headers::ambiguous_framing(req.headers());
    let resp = match forward(proxy, conn, req, h2, local, framed_twice, &mut rec).await {
        Ok(resp) => resp,
        Err(e) => {
            let resp = respond::error(&e, grpc);
            rec.failed(e);
            resp
        }
    };
    let trusted = rec.trusted();
    rec.finish(resp.status().as_u16());
    let mut resp = resp;
    if !trusted {
        carriers::strip(resp.headers_mut());
    }
    if framed_twice {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    *resp.version_mut() = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
    resp
}

async fn forward(
    proxy: &Proxy,
    conn: &ConnContext,
    mut req: Request<Incoming>,
    h2: bool,
    local: Option<&Arc<LocalConn>>,
    framed_twice: bool,
    rec: &mut Recorder<'_>,
) -> Result<Response<Body>, ProxyError> {
    if framed_twice {
        return Err(ProxyError::new(
            ErrorKind::BadRequest,
            "Content-Length and Transfer-Encoding together: ambiguous framing",
        ));
    }
    let upgrade = !h2 && headers::is_upgrade(req.headers());
    let on_downstream_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // Only ids the caller brought can be remembered: read them before this hop mints its own.
    let brought = match proxy.continuity.remembers() {
        true => proxy.continuity.keys(&parts.headers),
        false => Keys::default(),
    };
    rec.trace(&mut parts);

    // Decide (and remember the lane, or tell the callee's node, before forwarding).
    let planned = {
        let state = proxy.state.load();
        let lookup = TraceLookup { proxy, state: &state, headers: &parts.headers, brought };
        let view = RequestView {
            method: &parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
        };
        let planned = plan::plan(&state, conn, Some(&view), &lookup);
        if let Ok(target) = &planned.target
            && let Some(pod) = &target.pod
        {
            let tag = planned.lane.tag.as_deref().map(|t| match &planned.tag_label {
                known if **known == *t => known.clone(),
                _ => Arc::from(t),
            });
            let tenant = planned.lane.tenant.as_deref();
            let brought_tracer = lookup.brought.has_tracer();
            proxy.continuity.forwarded(
                tag.as_ref(),
                tenant,
                pod,
                target.placement,
                |r| lookup.keys(r),
                brought_tracer,
            );
        }
        planned
    };
    if planned.tenant_spoof {
        tracing::warn!(client = %conn.client, src_pod = ?conn.src_pod, "tenant header differs from the pod's own tenant; ignored");
    }
    let target = planned.target.clone();
    let plan = &*rec.plan.insert(planned);
    // A route that redirects answers here, whatever the endpoints.
    if let Some(r) = plan.route().and_then(|r| r.redirect.as_ref()) {
        return Ok(rewrite::redirect(r, &parts));
    }
    let target = target?;

    // Execute.
    if !plan.trusted {
        carriers::strip(&mut parts.headers);
    }
    carriers::write(&mut parts.headers, &plan.lane);
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, authority);
    }
    plan.rewrite(&mut parts.headers);
    if let Some(rw) = plan.route().and_then(|r| r.url.as_ref()) {
        rewrite::apply(rw, &mut parts)?;
    }
    parts.version = if h2 { Version::HTTP_2 } else { Version::HTTP_11 };
    let _admitted = match &plan.policy {
        Some(policy) => {
            Some(admit(policy, &plan.lane, conn.src_pod.as_deref(), &parts.headers, &mut rec.facts).await?)
        }
        None => None,
    };
    // Never work past the caller's deadline (or this route's timeout), and pass it on.
    let deadline = deadline::effective(&parts.headers, plan.policy.as_ref().and_then(|p| p.timeout));
    if let Some(d) = deadline {
        if d <= Instant::now() {
            return Err(ProxyError::new(ErrorKind::DeadlineExceeded, "the caller's deadline has passed"));
        }
        deadline::stamp(&mut parts.headers, d);
    }
    let (head, _) = outgoing::Head::from_parts(parts);
    // An upgraded connection outlives its request: its upstream one runs on its own task.
    let local = local.filter(|_| !upgrade).cloned();
    let out = outgoing::Outgoing { head, body, h2, deadline, from: conn.origin.clone(), local };
    let (mut resp, served_by) = exchange::run(proxy, plan, target, out, &mut rec.facts).await?;
    plan.rewrite_response(resp.headers_mut());
    if let Some(p) = rec.plan.as_mut() {
        p.target = Ok(served_by);
    }
    if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS
        && let Some(down) = on_downstream_upgrade
    {
        upgrade::tunnel(down, hyper::upgrade::on(&mut resp));
    } else {
        headers::strip_hop_by_hop(resp.headers_mut(), false);
    }
    Ok(resp.map(Body::Upstream))
}

/// The trace memory as the planner sees it for one request: an untagged request from a pod
/// is looked up by the ids its caller brought (none: nothing to recall, no lookup); a
/// request forwarded into a pod is remembered by the ids it leaves with (read only then),
/// this hop's fresh ones included.
struct TraceLookup<'a> {
    proxy: &'a Proxy,
    state: &'a ProxyState,
    headers: &'a http::HeaderMap,
    brought: Keys,
}

impl TraceLookup<'_> {
    fn keys(&self, request_id: RequestId) -> Keys {
        self.proxy.continuity.keys_with(self.headers, request_id)
    }
}

impl LaneMemory for TraceLookup<'_> {
    fn recall(&self, pod: &str, tenant: Option<&str>) -> Option<Arc<str>> {
        if self.brought.is_empty() {
            return None;
        }
        self.proxy.continuity.recall(pod, &self.brought, tenant, self.state)
    }

    fn serving(&self, pod: &str) -> Option<Arc<str>> {
        self.proxy.continuity.serving(pod)
    }
}
