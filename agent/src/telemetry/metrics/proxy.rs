//! Downstream connections at the proxy: active, and refused by reason.

use prometheus::{IntCounterVec, IntGauge, Registry};

use super::{counter_vec, define};

pub struct ProxyMetrics {
    /// `{reason}`: `no_record` (no original destination: never guessed), `per_pod_cap`,
    /// `total_cap`.
    pub refused: IntCounterVec,
    pub active: IntGauge,
    /// `{site}`: admin or metrics connections refused by their caps.
    pub admin_refused: IntCounterVec,
}

impl ProxyMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            refused: counter_vec(
                r,
                "downstream_refused_total",
                "Downstream connections refused at accept, by reason.",
                &["reason"],
            ),
            active: define(r, IntGauge::new("downstream_connections", "Downstream connections open now.")),
            admin_refused: counter_vec(
                r,
                "admin_refused_total",
                "Admin and metrics connections refused by their caps (per source, in total).",
                &["site"],
            ),
        }
    }
}
