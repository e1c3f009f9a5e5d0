//! Proxied traffic: requests and their durations by lane and destination, lane escapes,
//! tenant denials, and opaque TCP connections.
//!
//! Labels: `source_workload` (pods aggregate to workloads, `unknown` outside the mesh),
//! `source_tag` (a tag some pod, rule or policy names; `other` for anything else; empty
//! for base traffic), `tag_source` (`header`, `tracestate`, `sw8`, `jaeger`, `ot-baggage`,
//! `rule`, `trace`, `source-pod`, `none`), `destination_service`
//! (`namespace/name`, or `pod` for direct pod traffic), `destination_subset`, `code_class`
//! (`2xx`…`5xx`).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Registry};

use super::{counter_vec, define};

pub struct RequestMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    /// `{source_workload, source_tag, destination_service, destination_subset, reason}`: a
    /// tagged request served by another subset (reason `no_endpoints`, `unhealthy`,
    /// `fallback_chain`), or an untagged request from a pod serving lane `source_tag` that
    /// carried no lane and is in no remembered trace (`lane_lost`).
    pub escapes: IntCounterVec,
    /// `{tenant, destination_service}`: requests refused by tenant isolation.
    pub tenant_denied: IntCounterVec,
    /// `{source_workload, destination_service, result}`: opaque TCP connections.
    pub tcp_connections: IntCounterVec,
    /// `{destination_service, direction}`: opaque TCP bytes (`sent` upstream, `received`).
    pub tcp_bytes: IntCounterVec,
}

const REQUEST_LABELS: &[&str] = &[
    "source_workload",
    "source_tag",
    "tag_source",
    "destination_service",
    "destination_subset",
    "code_class",
];

impl RequestMetrics {
    pub fn new(r: &Registry) -> Self {
        let buckets =
            vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to response headers, through the proxy.",
            )
            .buckets(buckets),
            &["source_workload", "source_tag", "destination_service", "destination_subset", "code_class"],
        );
        Self {
            requests: counter_vec(r, "requests_total", "HTTP requests through the proxy.", REQUEST_LABELS),
            duration: define(r, duration),
            escapes: counter_vec(
                r,
                "lane_escapes_total",
                "Requests that left their lane: served outside its subset, or sent without it by a pod serving it (lane_lost).",
                &["source_workload", "source_tag", "destination_service", "destination_subset", "reason"],
            ),
            tenant_denied: counter_vec(
                r,
                "tenant_denied_total",
                "Requests refused because no endpoint belongs to the caller's tenant or is shared.",
                &["tenant", "destination_service"],
            ),
            tcp_connections: counter_vec(
                r,
                "tcp_connections_total",
                "Opaque TCP connections through the proxy.",
                &["source_workload", "destination_service", "result"],
            ),
            tcp_bytes: counter_vec(
                r,
                "tcp_bytes_total",
                "Opaque TCP bytes through the proxy.",
                &["destination_service", "direction"],
            ),
        }
    }
}

/// `2xx` … `5xx`.
pub fn code_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
