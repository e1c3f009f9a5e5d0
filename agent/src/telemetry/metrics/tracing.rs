//! Span export: spans exported, dropped (queue full) or failed (collector unreachable).

use prometheus::{IntCounterVec, Opts, Registry};

use super::register;

pub struct TracingMetrics {
    /// `{result}`: exported, dropped, failed.
    pub spans: IntCounterVec,
}

impl TracingMetrics {
    pub fn new(r: &Registry) -> Self {
        let spans =
            IntCounterVec::new(Opts::new("spans_total", "Finished spans by export result."), &["result"])
                .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        Self { spans: register(r, spans) }
    }
}
