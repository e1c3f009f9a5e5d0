//! What each request leaves behind: its metrics (count and duration by lane and
//! destination, a lane escape when a tagged request left its subset), its span (trace
//! context joined and passed on), and its access-log line.

use std::time::SystemTime;

use http::{Method, request::Parts};
use serde_json::json;

use super::forward::Routed;
use crate::{
    proxy::{Proxy, routing::SubsetReason, source::ConnContext},
    telemetry::{
        metrics::{self, code_class},
        trace::{Hop, otlp, request_id},
    },
};

/// A connection's last metric series (labels after the workload, and the handles).
pub struct Series {
    key: [String; 5],
    requests: prometheus::IntCounter,
    duration: prometheus::Histogram,
}

/// This hop's place in the request's trace, and what names the request.
pub struct RequestTrace {
    pub hop: Hop,
    pub request_id: String,
    method: Method,
    path: String,
    started: SystemTime,
}

impl RequestTrace {
    /// Joins (or starts) the trace, keeps or makes `x-request-id`, and makes this hop the
    /// upstream's parent span.
    pub fn start(proxy: &Proxy, parts: &mut Parts) -> Self {
        let hop = proxy.telemetry.tracer.start(&parts.headers);
        let request_id = request_id(&mut parts.headers);
        hop.inject(&mut parts.headers);
        Self {
            hop,
            request_id,
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            started: SystemTime::now(),
        }
    }
}

pub fn request(proxy: &Proxy, ctx: &ConnContext, r: &Routed, status: u16) {
    let service = service_label(ctx, r, status);
    metrics(ctx, r, status, service);
    span(proxy, ctx, r, status, service);
    if let Some(log) = &proxy.telemetry.access_log {
        log.write(&access_line(ctx, r, status, service));
    }
}

fn service_label<'a>(ctx: &ConnContext, r: &'a Routed, status: u16) -> &'a str {
    match (&r.svc, &r.decision) {
        (Some(svc), _) => &svc.name,
        (None, None) if r.target == ctx.orig_dst.0 && status < 500 => "pod",
        _ => "unknown",
    }
}

/// Why a tagged request was served outside its lane, if it was.
fn escape(r: &Routed) -> Option<&'static str> {
    r.lane.tag.as_ref()?;
    match r.decision.as_ref()?.reason {
        SubsetReason::FallbackBase => Some("no_endpoints"),
        SubsetReason::FallbackUnhealthy => Some("unhealthy"),
        SubsetReason::FallbackChain => Some("fallback_chain"),
        _ => None,
    }
}

fn metrics(ctx: &ConnContext, r: &Routed, status: u16, service: &str) {
    let m = &metrics::metrics().requests;
    let subset = r.decision.as_ref().map_or("", |d| &*d.subset);
    let class = code_class(status);
    let tag = &*r.tag_label;
    let source = r.lane.tag_source.as_str();
    // A keep-alive connection's requests mostly share one series: look it up once.
    let key = [tag, source, service, subset, class];
    let mut cache = ctx.series.lock().unwrap_or_else(|p| p.into_inner());
    let series = match cache.as_ref() {
        Some(c) if c.key.iter().zip(key).all(|(a, b)| a == b) => c,
        _ => cache.insert(Series {
            key: key.map(str::to_owned),
            requests: m.requests.with_label_values(&[&*ctx.workload, tag, source, service, subset, class]),
            duration: m.duration.with_label_values(&[&*ctx.workload, tag, service, subset, class]),
        }),
    };
    series.requests.inc();
    series.duration.observe(r.started.elapsed().as_secs_f64());
    drop(cache);
    if let Some(reason) = escape(r) {
        m.escapes.with_label_values(&[tag, service, subset, reason]).inc();
    }
}

fn span(proxy: &Proxy, ctx: &ConnContext, r: &Routed, status: u16, service: &str) {
    let t = &r.trace;
    if !proxy.telemetry.tracer.records(&t.hop) {
        return;
    }
    let s = |k: &str, v: &str| otlp::kv(k, otlp::Value::String(v.to_owned()));
    let mut attrs = vec![
        s("http.request.method", t.method.as_str()),
        s("url.path", &t.path),
        otlp::kv("http.response.status_code", otlp::Value::Int(i64::from(status))),
        s("graylane.request_id", &t.request_id),
        s("graylane.source.pod", ctx.src_pod.as_deref().unwrap_or("")),
        s("graylane.source.workload", &ctx.workload),
        s("graylane.tag", r.lane.tag.as_deref().unwrap_or("")),
        s("graylane.tag_source", r.lane.tag_source.as_str()),
        s("graylane.tenant", r.lane.tenant.as_deref().unwrap_or("")),
        s("graylane.destination.service", service),
        s("server.address", &r.target.to_string()),
    ];
    if let Some(d) = &r.decision {
        attrs.push(s("graylane.subset", &d.subset));
        attrs.push(s("graylane.endpoint", &d.endpoint.pod));
        attrs.push(s("graylane.subset_reason", d.reason.as_str()));
    }
    if let Some(reason) = escape(r) {
        attrs.push(s("graylane.fallback_reason", reason));
    }
    let name = format!("{} {service}", t.method);
    proxy.telemetry.tracer.finish(&t.hop, name, t.started, attrs, status >= 500);
}

fn access_line(ctx: &ConnContext, r: &Routed, status: u16, service: &str) -> serde_json::Value {
    let t = &r.trace;
    let ts = t.started.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let route = r.route_index.and_then(|i| r.svc.as_ref()?.route_at(i)).map(|x| x.name.to_string());
    json!({
        "ts_ms": ts,
        "request_id": t.request_id,
        "trace_id": crate::telemetry::trace::to_hex(&t.hop.trace_id),
        "method": t.method.as_str(),
        "path": t.path,
        "status": status,
        "duration_ms": r.started.elapsed().as_secs_f64() * 1000.0,
        "client": ctx.client.0,
        "src_pod": ctx.src_pod,
        "tag": r.lane.tag,
        "tag_source": r.lane.tag_source.as_str(),
        "tenant": r.lane.tenant,
        "service": service,
        "route": route,
        "rule": r.rule.as_deref(),
        "subset": r.decision.as_ref().map(|d| &*d.subset),
        "subset_reason": r.decision.as_ref().map(|d| d.reason.as_str()),
        "fallback_reason": escape(r),
        "endpoint": r.decision.as_ref().map(|d| &*d.endpoint.pod),
        "upstream": r.target,
    })
}
