//! Upstream connections: opened and reused (the pool's hit rate: connections opened per
//! request), idle pooled connections now, and where they leave from (the calling pod's
//! address, or the node's and why).

use prometheus::{IntCounterVec, IntGauge, Registry};

use super::{counter_vec, define};

pub struct UpstreamMetrics {
    /// `{result}`: `opened` (a new connection), `reused` (from the pool).
    pub connections: IntCounterVec,
    /// Idle pooled connections (as of the last idle sweep).
    pub idle: IntGauge,
    /// `{source, reason}`: captured connections served from the pod's own address
    /// (`pod`, reason empty) or the node's (`node`, and why).
    pub source: IntCounterVec,
    /// Pods whose network namespace the proxy holds open.
    pub namespaces: IntGauge,
}

impl UpstreamMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            connections: counter_vec(
                r,
                "upstream_connections_total",
                "Upstream connections taken for requests: opened anew or reused from the pool.",
                &["result"],
            ),
            idle: define(r, IntGauge::new("upstream_idle_connections", "Idle pooled upstream connections.")),
            source: counter_vec(
                r,
                "upstream_source_total",
                "Captured connections by the address their upstream connections leave from: the calling pod's (pod) or the node's (node, with the reason).",
                &["source", "reason"],
            ),
            namespaces: define(
                r,
                IntGauge::new(
                    "upstream_pod_namespaces",
                    "Pods whose network namespace the proxy holds open.",
                ),
            ),
        }
    }
}
