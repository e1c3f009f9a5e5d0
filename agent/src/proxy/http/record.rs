//! Record once: a request's facts gather here as it goes (trace, plan, retries, the local
//! answer) and become one `RequestRecord` when the response head is known — or, if the
//! caller goes away first and the request is dropped, when it is dropped (status 499). No
//! exit path can forget to record, and none records twice.

use std::{
    sync::{Arc, LazyLock},
    time::{Instant, SystemTime},
};

use http::{Method, Uri, request::Parts};

use crate::{
    proxy::{Proxy, conn::ConnContext, error::ProxyError, plan::RequestPlan},
    telemetry::{LocalAnswer, RequestRecord, trace::Hop},
    vocab::{Lane, TagSource},
};

/// What happened along the way (apart from the plan).
#[derive(Default)]
pub struct Facts {
    pub retries: u32,
    pub budget_exhausted: bool,
    pub mirrored: bool,
    pub delayed: bool,
}

pub struct Recorder<'a> {
    proxy: &'a Proxy,
    conn: &'a ConnContext,
    method: Method,
    uri: Uri,
    started: Instant,
    started_at: SystemTime,
    hop: Option<Hop>,
    request_id: String,
    pub plan: Option<RequestPlan>,
    pub facts: Facts,
    local: Option<ProxyError>,
    done: bool,
}

/// Nginx's "client closed request": the caller went away before the answer.
const CLIENT_CLOSED: u16 = 499;

/// What a request that never got planned is recorded with.
static NO_LANE: LazyLock<Lane> = LazyLock::new(|| Lane {
    tag: None,
    tag_source: TagSource::None,
    tenant: None,
    tenant_source: TagSource::None,
});
static UNKNOWN: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(crate::proxy::plan::UNKNOWN));
static EMPTY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

impl<'a> Recorder<'a> {
    pub fn new(proxy: &'a Proxy, conn: &'a ConnContext, method: &Method, uri: &Uri) -> Self {
        Self {
            proxy,
            conn,
            method: method.clone(),
            uri: uri.clone(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            hop: None,
            request_id: String::new(),
            plan: None,
            facts: Facts::default(),
            local: None,
            done: false,
        }
    }

    /// Joins (or starts) the request's trace, keeps or makes `x-request-id`, and makes
    /// this hop the upstream's parent span.
    pub fn trace(&mut self, parts: &mut Parts) {
        let hop = self.proxy.telemetry.tracer.start(&parts.headers);
        self.request_id = crate::telemetry::trace::request_id(&mut parts.headers);
        hop.inject(&mut parts.headers);
        self.hop = Some(hop);
    }

    /// Whether the caller is inside the mesh (lane headers go back only to them).
    pub fn trusted(&self) -> bool {
        self.plan.as_ref().is_some_and(|p| p.trusted)
    }

    /// The request was answered locally.
    pub fn failed(&mut self, e: ProxyError) {
        if e.side() != crate::proxy::error::Side::Local || e.service.is_none() {
            tracing::debug!(client = %self.conn.client, error = %e, "request failed");
        }
        self.local = Some(e);
    }

    /// Records the request with the status its caller got.
    pub fn finish(mut self, status: u16) {
        self.record(status);
    }

    fn record(&mut self, status: u16) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let (none, unknown, empty) = (&*NO_LANE, &*UNKNOWN, &*EMPTY);
        let hop =
            self.hop.take().unwrap_or_else(|| self.proxy.telemetry.tracer.start(&http::HeaderMap::new()));
        let plan = self.plan.as_ref();
        let target = plan.and_then(|p| p.target.as_ref().ok());
        let decision = target.and_then(|t| t.decision.as_ref());
        let local = self.local.as_ref().map(|e| LocalAnswer {
            reason: e.reason(),
            detail: &e.detail,
            policy: plan.and_then(RequestPlan::scope),
        });
        let record = RequestRecord {
            method: &self.method,
            path: self.uri.path(),
            request_id: &self.request_id,
            hop: &hop,
            started: self.started,
            started_at: self.started_at,
            lane: plan.map_or(none, |p| &p.lane),
            tag_label: plan.map_or(empty, |p| &p.tag_label),
            tenant_label: plan.map_or(empty, |p| &p.tenant_label),
            rule: plan.and_then(|p| p.rule.as_ref()),
            lost: plan.and_then(|p| p.lost.as_ref()),
            service: plan.map_or(unknown, |p| &p.service_label),
            route: plan.and_then(RequestPlan::route_name),
            subset: decision.map(|d| (&d.subset, d.reason)),
            endpoint_pod: target.and_then(|t| t.pod.as_ref()),
            upstream: target.map(|t| t.endpoint.0),
            status,
            local: if status == CLIENT_CLOSED && local.is_none() {
                Some(LocalAnswer { reason: "client_closed", detail: "", policy: None })
            } else {
                local
            },
            retries: self.facts.retries,
            budget_exhausted: self.facts.budget_exhausted,
            mirrored: self.facts.mirrored,
            delayed: self.facts.delayed,
        };
        self.proxy.telemetry.request(&self.conn.telemetry, &record);
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        self.record(CLIENT_CLOSED);
    }
}
