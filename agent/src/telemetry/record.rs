//! One request, recorded once: the proxy fills a [`RequestRecord`] when the response head
//! is known (or the request is abandoned) and hands it here; from it come the metrics
//! (count and duration by lane and destination, a lane escape, a tenant denial, a policy
//! rejection, retries), the connection's flow row, the span and the access-log line.
//! Nothing else records requests.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use super::{
    access_log::AccessLog,
    flows::FlowEntry,
    metrics::{self, code_class},
    trace::{Hop, Tracer, otlp},
};
use crate::vocab::{Lane, SubsetReason, TagSource};

/// Where requests' spans and access-log lines go, and what each request records.
pub struct Telemetry {
    pub tracer: Tracer,
    pub access_log: Option<AccessLog>,
    pub record: Recording,
}

/// What each request records (all by default; less costs less CPU per request). Trace
/// context and `x-request-id` propagate either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Recording {
    /// Request counts and durations, escapes, denials, policy counters.
    pub metrics: bool,
    /// The connection's flow row (what `graylane flows` shows per request).
    pub flows: bool,
    /// Spans (exported when sampled and a collector is configured).
    pub spans: bool,
}

impl Recording {
    pub const ALL: Self = Self { metrics: true, flows: true, spans: true };

    /// `metrics,flows,spans`, any subset, or `none`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut r = Self { metrics: false, flows: false, spans: false };
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "metrics" => r.metrics = true,
                "flows" => r.flows = true,
                "spans" => r.spans = true,
                "none" => {}
                other => return Err(format!("{other:?}: record metrics, flows, spans (or none)")),
            }
        }
        Ok(r)
    }
}

/// Per downstream connection: its flow row, the caller, and the metric series of its last
/// request (a keep-alive connection's requests mostly share one).
pub struct ConnTelemetry {
    pub flow: Arc<FlowEntry>,
    /// The caller's workload (a metric label; `unknown` outside the inventory).
    pub workload: Arc<str>,
    pub client: SocketAddr,
    pub src_pod: Option<Arc<str>>,
    series: Mutex<Option<Series>>,
}

impl ConnTelemetry {
    pub fn new(
        flow: Arc<FlowEntry>,
        workload: Arc<str>,
        client: SocketAddr,
        src_pod: Option<Arc<str>>,
    ) -> Self {
        Self { flow, workload, client, src_pod, series: Mutex::new(None) }
    }
}

struct Series {
    tag: Arc<str>,
    source: TagSource,
    service: Arc<str>,
    subset: Option<Arc<str>>,
    class: &'static str,
    requests: prometheus::IntCounter,
    duration: prometheus::Histogram,
}

impl Series {
    fn is_for(&self, r: &RequestRecord<'_>, class: &str) -> bool {
        self.class == class
            && self.source == r.lane.tag_source
            && self.tag == *r.tag_label
            && self.service == *r.service
            && self.subset.as_ref() == r.subset.map(|(s, _)| s)
    }
}

/// A local answer: its reason token, the detail for logs, the policy that gave it.
#[derive(Clone, Copy, Debug)]
pub struct LocalAnswer<'a> {
    pub reason: &'static str,
    pub detail: &'a str,
    pub policy: Option<&'a str>,
}

/// What the proxy did with one request.
pub struct RequestRecord<'a> {
    pub method: &'a http::Method,
    pub path: &'a str,
    pub request_id: &'a str,
    pub hop: &'a Hop,
    pub started: Instant,
    pub started_at: SystemTime,
    pub lane: &'a Lane,
    /// The lane's tag and tenant as bounded metric labels.
    pub tag_label: &'a Arc<str>,
    pub tenant_label: &'a Arc<str>,
    pub rule: Option<&'a Arc<str>>,
    /// The lane the calling pod serves, when this request lost it (`lane_lost`).
    pub lost: Option<&'a Arc<str>>,
    /// `namespace/name`, `pod` (a pod IP), or `unknown`.
    pub service: &'a Arc<str>,
    pub route: Option<&'a Arc<str>>,
    pub subset: Option<(&'a Arc<str>, SubsetReason)>,
    pub endpoint_pod: Option<&'a Arc<str>>,
    pub upstream: Option<SocketAddr>,
    pub status: u16,
    pub local: Option<LocalAnswer<'a>>,
    /// Tries beyond the first, and whether the retry budget refused one.
    pub retries: u32,
    pub budget_exhausted: bool,
    pub mirrored: bool,
    /// An injected delay.
    pub delayed: bool,
}

impl Telemetry {
    pub fn request(&self, conn: &ConnTelemetry, r: &RequestRecord<'_>) {
        if self.record.metrics {
            count(conn, r);
        }
        if self.record.flows {
            flow(conn, r);
        }
        if self.record.spans {
            self.span(conn, r);
        }
        if let Some(log) = &self.access_log {
            log.write(access_line(conn, r));
        }
    }

    fn span(&self, conn: &ConnTelemetry, r: &RequestRecord<'_>) {
        if !self.tracer.records(r.hop) {
            return;
        }
        let s = |k: &str, v: &str| otlp::kv(k, otlp::Value::String(v.to_owned()));
        let mut attrs = vec![
            s("http.request.method", r.method.as_str()),
            s("url.path", r.path),
            otlp::kv("http.response.status_code", otlp::Value::Int(i64::from(r.status))),
            s("graylane.request_id", r.request_id),
            s("graylane.source.pod", conn.src_pod.as_deref().unwrap_or("")),
            s("graylane.source.workload", &conn.workload),
            s("graylane.tag", r.lane.tag.as_deref().unwrap_or("")),
            s("graylane.tag_source", r.lane.tag_source.as_str()),
            s("graylane.tenant", r.lane.tenant.as_deref().unwrap_or("")),
            s("graylane.destination.service", r.service),
        ];
        if let Some(up) = r.upstream {
            attrs.push(s("server.address", &up.to_string()));
        }
        if let Some((subset, reason)) = r.subset {
            attrs.push(s("graylane.subset", subset));
            attrs.push(s("graylane.subset_reason", reason.as_str()));
            if let Some(escape) = escape(r) {
                attrs.push(s("graylane.fallback_reason", escape));
            }
        }
        if let Some(lost) = r.lost {
            attrs.push(s("graylane.lane_lost", lost));
        }
        if let Some(e) = r.endpoint_pod {
            attrs.push(s("graylane.endpoint", e));
        }
        if let Some(l) = &r.local {
            attrs.push(s("graylane.reason", l.reason));
        }
        let name = format!("{} {}", r.method, r.service);
        self.tracer.finish(r.hop, name, r.started_at, attrs, r.status >= 500);
    }
}

/// The escape reason of an untagged request from a pod serving a lane.
pub const LANE_LOST: &str = "lane_lost";

/// Why a tagged request was served outside its lane, if it was.
fn escape(r: &RequestRecord<'_>) -> Option<&'static str> {
    r.lane.tag.as_ref()?;
    r.subset?.1.escape()
}

fn count(conn: &ConnTelemetry, r: &RequestRecord<'_>) {
    let m = &metrics::metrics();
    let subset = r.subset.map_or("", |(s, _)| &**s);
    let class = code_class(r.status);
    {
        let mut cache = conn.series.lock().unwrap_or_else(|p| p.into_inner());
        let series = match cache.as_ref() {
            Some(c) if c.is_for(r, class) => c,
            _ => {
                let (tag, source, service) = (&**r.tag_label, r.lane.tag_source.as_str(), &**r.service);
                let workload = &*conn.workload;
                cache.insert(Series {
                    tag: r.tag_label.clone(),
                    source: r.lane.tag_source,
                    service: r.service.clone(),
                    subset: r.subset.map(|(s, _)| s.clone()),
                    class,
                    requests: m
                        .requests
                        .requests
                        .with_label_values(&[workload, tag, source, service, subset, class]),
                    duration: m.requests.duration.with_label_values(&[workload, tag, service, subset, class]),
                })
            }
        };
        series.requests.inc();
        series.duration.observe(r.started.elapsed().as_secs_f64());
    }
    if let Some(reason) = escape(r) {
        m.requests.escapes.with_label_values(&[&conn.workload, r.tag_label, r.service, subset, reason]).inc();
    }
    if let Some(lost) = r.lost {
        m.requests.escapes.with_label_values(&[&conn.workload, lost, r.service, subset, LANE_LOST]).inc();
    }
    if let Some(l) = &r.local {
        if l.reason == "tenant_isolation" {
            m.requests.tenant_denied.with_label_values(&[r.tenant_label, r.service]).inc();
        }
        if let Some(policy) = l.policy {
            match l.reason {
                "fault_injected" => m.policy.faults.with_label_values(&[policy, "abort"]).inc(),
                reason => m.policy.rejected.with_label_values(&[policy, reason]).inc(),
            }
        }
    }
    if r.retries > 0 || r.budget_exhausted || r.delayed {
        let policy = r.local.and_then(|l| l.policy).unwrap_or(r.service);
        if r.retries > 0 {
            m.policy.retries.with_label_values(&[policy, "retried"]).inc_by(u64::from(r.retries));
        }
        if r.budget_exhausted {
            m.policy.retries.with_label_values(&[policy, "budget_exhausted"]).inc();
        }
        if r.delayed {
            m.policy.faults.with_label_values(&[policy, "delay"]).inc();
        }
    }
}

fn flow(conn: &ConnTelemetry, r: &RequestRecord<'_>) {
    conn.flow.update(|s| {
        s.requests += 1;
        s.retries += u64::from(r.retries);
        s.mirrored += u64::from(r.mirrored);
        s.last_status = Some(r.status);
        s.lane_tag.clone_from(&r.lane.tag);
        s.tag_source = Some(r.lane.tag_source.as_str());
        s.service = Some(r.service.clone());
        s.route = r.route.cloned();
        s.rule = r.rule.cloned();
        s.lane_lost = r.lost.cloned();
        s.subset = r.subset.map(|(s, _)| s.clone());
        s.reason = r.subset.map(|(_, why)| why.as_str());
        s.endpoint_pod = r.endpoint_pod.cloned();
        s.upstream = r.upstream;
        s.local_reason = r.local.map(|l| l.reason);
    });
}

/// One access-log line, serialized straight from borrowed fields (no intermediate value).
#[derive(serde::Serialize)]
struct AccessLine<'a> {
    ts_ms: u64,
    request_id: &'a str,
    trace_id: &'a str,
    method: &'a str,
    path: &'a str,
    status: u16,
    duration_ms: f64,
    client: SocketAddr,
    src_pod: Option<&'a str>,
    tag: Option<&'a str>,
    tag_source: &'static str,
    tenant: Option<&'a str>,
    service: &'a str,
    route: Option<&'a str>,
    rule: Option<&'a str>,
    lane_lost: Option<&'a str>,
    subset: Option<&'a str>,
    subset_reason: Option<&'static str>,
    fallback_reason: Option<&'static str>,
    endpoint: Option<&'a str>,
    upstream: Option<SocketAddr>,
    reason: Option<&'static str>,
    detail: Option<&'a str>,
    retries: u32,
}

fn access_line(conn: &ConnTelemetry, r: &RequestRecord<'_>) -> Vec<u8> {
    let ts_ms = r.started_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut trace = [0u8; 32];
    super::trace::hex_into(&r.hop.trace_id, &mut trace);
    let line = AccessLine {
        ts_ms,
        request_id: r.request_id,
        trace_id: std::str::from_utf8(&trace).unwrap_or(""),
        method: r.method.as_str(),
        path: r.path,
        status: r.status,
        duration_ms: r.started.elapsed().as_secs_f64() * 1000.0,
        client: conn.client,
        src_pod: conn.src_pod.as_deref(),
        tag: r.lane.tag.as_deref(),
        tag_source: r.lane.tag_source.as_str(),
        tenant: r.lane.tenant.as_deref(),
        service: r.service,
        route: r.route.map(|x| &**x),
        rule: r.rule.map(|x| &**x),
        lane_lost: r.lost.map(|x| &**x),
        subset: r.subset.map(|(s, _)| &**s),
        subset_reason: r.subset.map(|(_, why)| why.as_str()),
        fallback_reason: escape(r),
        endpoint: r.endpoint_pod.map(|x| &**x),
        upstream: r.upstream,
        reason: r.local.map(|l| l.reason),
        detail: r.local.map(|l| l.detail),
        retries: r.retries,
    };
    let mut out = serde_json::to_vec(&line).unwrap_or_default();
    out.push(b'\n');
    out
}
