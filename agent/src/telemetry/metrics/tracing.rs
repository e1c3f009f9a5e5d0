//! Span export: spans exported, dropped (queue full) or failed (collector unreachable).

use prometheus::{IntCounterVec, Registry};

use super::counter_vec;

pub struct TracingMetrics {
    /// `{result}`: exported, dropped, failed.
    pub spans: IntCounterVec,
}

impl TracingMetrics {
    pub fn new(r: &Registry) -> Self {
        Self { spans: counter_vec(r, "spans_total", "Finished spans by export result.", &["result"]) }
    }
}
