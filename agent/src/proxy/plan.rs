//! Decide: one function from a routing snapshot, a caller and (for HTTP) a request to a
//! typed plan — the lane (and where it came from), the route, the subset and endpoint,
//! and the resilience policy that applies. No I/O, no metrics: the same function serves
//! HTTP requests, opaque TCP connections, retries' re-picks, the fuzzer and the tests.
//! (Picking consults circuit breakers and round-robin counters, which is state, not I/O.)

mod coloring;

use std::sync::Arc;

use http::{HeaderMap, HeaderValue};

use super::{
    conn::ConnContext,
    error::{ErrorKind, ProxyError},
    state::ProxyState,
};
use crate::{
    inventory::policy::{Destination, HeaderRewrite},
    policy::Plan as Policy,
    routing::{CompiledRoute, Decision, NoRoute, PickKey, Placement, RequestView, RouteError, ServiceRoutes},
    vocab::{Lane, UpstreamAddr},
};

/// The metric label of a destination that is a pod IP, and of one graylane does not know.
pub const POD: &str = "pod";
pub const UNKNOWN: &str = "unknown";
static UNKNOWN_LABEL: std::sync::LazyLock<Arc<str>> = std::sync::LazyLock::new(|| Arc::from(UNKNOWN));

/// What the node remembers of lanes, consulted while coloring (state, like breakers).
pub trait LaneMemory {
    /// The lane `pod`'s request in this request's trace was in, if remembered for a
    /// caller of `tenant`.
    fn recall(&self, pod: &str, tenant: Option<&str>) -> Option<Arc<str>>;
    /// The lane `pod` is serving right now, if any.
    fn serving(&self, pod: &str) -> Option<Arc<str>>;
}

/// Remembers nothing (opaque connections, the fuzzer, tests of other things).
pub struct NoMemory;

impl LaneMemory for NoMemory {
    fn recall(&self, _: &str, _: Option<&str>) -> Option<Arc<str>> {
        None
    }
    fn serving(&self, _: &str) -> Option<Arc<str>> {
        None
    }
}

/// What graylane will do with a request (or an opaque connection).
pub struct RequestPlan {
    pub lane: Lane,
    /// Lane headers from this caller are honored (a pod in the mesh, not an ingress).
    pub trusted: bool,
    /// The caller claimed a tenant that is not its own (ignored, logged).
    pub tenant_spoof: bool,
    /// The coloring rule that gave the lane, if one did.
    pub rule: Option<Arc<str>>,
    /// The lane the calling pod serves, when this request lost it (`lane_lost`).
    pub lost: Option<Arc<str>>,
    /// The lane's tag and tenant as bounded metric labels.
    pub tag_label: Arc<str>,
    pub tenant_label: Arc<str>,
    /// `namespace/name`, `pod` or `unknown` (a metric label).
    pub service_label: Arc<str>,
    /// The destination service, its matched route and the resilience policy in force.
    pub service: Option<Arc<ServiceRoutes>>,
    pub route: Option<usize>,
    pub policy: Option<Arc<Policy>>,
    /// The ring-hash key and the calling workload (for re-picks on retries).
    hash: Option<u64>,
    client: Option<Arc<str>>,
    pub target: Result<Target, ProxyError>,
}

/// Where the request goes.
#[derive(Clone, Debug)]
pub struct Target {
    pub endpoint: UpstreamAddr,
    /// Subset, endpoint and why (a service destination); `None` for a pod IP.
    pub decision: Option<Decision>,
    /// `namespace/name` of the endpoint pod.
    pub pod: Option<Arc<str>>,
    /// Where that pod runs.
    pub placement: Placement,
}

impl RequestPlan {
    /// The matched route, if any.
    pub fn route(&self) -> Option<&CompiledRoute> {
        self.service.as_ref().zip(self.route).and_then(|(s, i)| s.route_at(i))
    }

    /// The route's name, for explanations.
    pub fn route_name(&self) -> Option<&Arc<str>> {
        self.route().map(|r| &r.name)
    }

    /// The route's header changes, if the request matched a route.
    pub fn rewrite(&self, headers: &mut HeaderMap) {
        if let Some(r) = self.route() {
            rewrite(headers, &r.rewrite);
            if let Some(d) = self.destination(r) {
                rewrite(headers, &d.headers);
            }
        }
    }

    /// The route's changes to the upstream's response headers.
    pub fn rewrite_response(&self, headers: &mut HeaderMap) {
        if let Some(r) = self.route() {
            if !r.response_headers.is_empty() {
                rewrite(headers, &r.response_headers);
            }
            if let Some(d) = self.destination(r) {
                rewrite(headers, &d.response_headers);
            }
        }
    }

    /// The route's destination whose weight sent the request, when destinations have header
    /// changes of their own (not when the request's lane chose the subset).
    fn destination<'r>(&self, route: &'r CompiledRoute) -> Option<&'r Destination> {
        if !route.destination_headers {
            return None;
        }
        let d = self.target.as_ref().ok()?.decision.as_ref()?;
        route.destinations.get(d.destination?)
    }

    /// Another endpoint for a retry: same lane, route and subset rules, avoiding `failed`
    /// when the subset has others. `None` when nothing else may serve.
    pub fn repick(&self, failed: UpstreamAddr) -> Option<Target> {
        let svc = self.service.as_ref()?;
        let key = PickKey { hash: None, client: self.client.as_deref().unwrap_or("") };
        let mut last = None;
        for _ in 0..3 {
            if let Ok(d) = pick(svc, &self.lane, self.route(), &key, self.policy.as_deref()) {
                let t = target(d);
                if t.endpoint != failed {
                    return Some(t);
                }
                last = Some(t);
            }
        }
        last
    }

    /// The policy's scope (names it in rejections and metrics).
    pub fn scope(&self) -> Option<&str> {
        self.policy.as_deref().map(|p| &*p.scope)
    }

    /// The ring-hash key the request was picked with.
    pub fn hash(&self) -> Option<u64> {
        self.hash
    }
}

/// Plans a request (`request`: the HTTP request's view; `None` for an opaque connection,
/// whose lane is its source pod's).
pub fn plan(
    state: &ProxyState,
    conn: &ConnContext,
    request: Option<&RequestView<'_>>,
    memory: &dyn LaneMemory,
) -> RequestPlan {
    let pod = conn.pod(state).cloned();
    let trusted = ConnContext::trusted(pod.as_deref());
    let resolved = match request {
        Some(view) => coloring::resolve(conn, pod.as_deref(), trusted, view, &state.routing.rules, memory),
        None => coloring::Resolved {
            lane: conn.source_lane(pod.as_deref()),
            tenant_spoof: false,
            rule: None,
            lost: None,
        },
    };
    let lane = resolved.lane;
    let mut plan = RequestPlan {
        tag_label: state.labels.tag(lane.tag.as_deref()),
        tenant_label: state.labels.tenant(lane.tenant.as_deref()),
        lane,
        trusted,
        tenant_spoof: resolved.tenant_spoof,
        rule: resolved.rule,
        lost: resolved.lost.map(|t| state.labels.tag(Some(&t))),
        service_label: UNKNOWN_LABEL.clone(),
        service: None,
        route: None,
        policy: None,
        hash: None,
        client: conn.src_pod.clone(),
        target: Err(ProxyError::new(ErrorKind::UnknownDestination, String::new())),
    };
    let dst = conn.orig_dst.0;
    let Some(svc) = state.routing.service(dst) else {
        // A pod IP: checked like a service endpoint (same tenant, or shared).
        if let Some(dst_pod) = state.snapshot.pod_by_ip(dst.ip()) {
            plan.service_label = Arc::from(POD);
            let allowed = dst_pod.tenant.is_none() || dst_pod.tenant == plan.lane.tenant;
            plan.target = if allowed {
                Ok(Target {
                    endpoint: UpstreamAddr(dst),
                    decision: None,
                    pod: Some(Arc::from(dst_pod.key().0)),
                    placement: Placement::of(dst_pod),
                })
            } else {
                Err(ProxyError::new(
                    ErrorKind::TenantIsolation,
                    format!(
                        "pod {} (tenant {}) is not for tenant {}",
                        dst_pod.key(),
                        dst_pod.tenant.as_deref().unwrap_or("none"),
                        plan.lane.tenant.as_deref().unwrap_or("none")
                    ),
                )
                .for_service(&Arc::from(format!("pod {}", dst_pod.key()))))
            };
        } else {
            plan.target = Err(ProxyError::new(ErrorKind::UnknownDestination, format!("{dst} is unknown")));
        }
        return plan;
    };
    plan.service_label = svc.name.clone();
    let caller = pod.as_deref().map(|p| (p.namespace.as_str(), &p.labels));
    let matched = match request.map(|view| svc.route(view, caller)) {
        Some(Err(NoRoute(rules))) => {
            plan.target = Err(ProxyError::new(ErrorKind::NoRoute, format!("no route of {rules} matches"))
                .for_service(&svc.name));
            plan.service = Some(svc.clone());
            return plan;
        }
        Some(Ok(found)) => found,
        None => None,
    };
    plan.route = matched.map(|(i, _)| i);
    let route = matched.map(|(_, r)| r);
    plan.policy = route.and_then(|r| r.plan.clone()).or_else(|| svc.plan.clone());
    plan.hash = svc.hash(request.map(|v| v.headers), conn.client.0);
    let key = PickKey { hash: plan.hash, client: conn.src_pod.as_deref().unwrap_or("") };
    plan.target = pick(svc, &plan.lane, route, &key, plan.policy.as_deref()).map(target);
    plan.service = Some(svc.clone());
    plan
}

/// Where a routing decision sends the request.
pub fn target(d: Decision) -> Target {
    Target {
        endpoint: UpstreamAddr(d.endpoint.addr),
        pod: Some(d.endpoint.pod.clone()),
        placement: d.endpoint.placement,
        decision: Some(d),
    }
}

/// An endpoint whose breaker admits the request and that is not at its in-flight cap; a
/// fail-fast error when every pick is refused.
fn pick(
    svc: &ServiceRoutes,
    lane: &Lane,
    route: Option<&CompiledRoute>,
    key: &PickKey<'_>,
    policy: Option<&Policy>,
) -> Result<Decision, ProxyError> {
    let routed = |e: RouteError| route_error(e).for_service(&svc.name);
    let Some(policy) = policy else {
        return svc.decide(lane, route, key, None).map_err(routed);
    };
    let (mut ejected, mut busy) = (None, None);
    for _ in 0..8 {
        let d = svc.decide(lane, route, key, Some(policy)).map_err(routed)?;
        if policy.max_per_endpoint.is_some_and(|max| d.endpoint.in_flight() >= max) {
            busy = Some(d.endpoint.addr);
        } else if !policy.admits(d.endpoint.addr) {
            ejected = Some(d.endpoint.addr);
        } else {
            return Ok(d);
        }
    }
    let e = match (ejected, busy) {
        (Some(last), _) => ProxyError::new(
            ErrorKind::CircuitOpen,
            format!("every picked endpoint is ejected by its circuit breaker (last {last})"),
        ),
        (None, last) => ProxyError::new(
            ErrorKind::EndpointsBusy,
            format!("every picked endpoint is at its in-flight cap (last {last:?})"),
        ),
    };
    Err(e.for_service(&svc.name))
}

fn route_error(e: RouteError) -> ProxyError {
    let kind = match &e {
        RouteError::NoEndpoints { .. } => ErrorKind::NoEndpoints,
        RouteError::SubsetUnavailable { .. } => ErrorKind::SubsetUnavailable,
        RouteError::TenantIsolation { .. } => ErrorKind::TenantIsolation,
        RouteError::CircuitOpen { .. } => ErrorKind::CircuitOpen,
    };
    ProxyError::new(kind, e.to_string())
}

fn rewrite(headers: &mut HeaderMap, rw: &HeaderRewrite) {
    for name in &rw.remove {
        headers.remove(name.as_str());
    }
    for (k, v) in &rw.add {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.insert(k, v);
        }
    }
    for (k, v) in &rw.append {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            headers.append(k, v);
        }
    }
}
