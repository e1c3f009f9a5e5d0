//! Downstream connections at the proxy: active, and refused by reason.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::register;

pub struct ProxyMetrics {
    /// `{reason}`: `no_record` (no original destination: never guessed), `per_pod_cap`,
    /// `total_cap`.
    pub refused: IntCounterVec,
    pub active: IntGauge,
}

impl ProxyMetrics {
    pub fn new(r: &Registry) -> Self {
        let refused = IntCounterVec::new(
            Opts::new("downstream_refused_total", "Downstream connections refused at accept, by reason."),
            &["reason"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let active = IntGauge::new("downstream_connections", "Downstream connections open now.")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        Self { refused: register(r, refused), active: register(r, active) }
    }
}
