//! The control plane: inventory snapshots applied or rejected, and the time of the last.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

use super::register;

pub struct InventoryMetrics {
    /// `{result}`: `applied`, `rejected` (the last good snapshot stays).
    pub reloads: IntCounterVec,
    pub last_applied: IntGauge,
    /// Pods, services and policies in the applied snapshot, by `kind`.
    pub objects: prometheus::IntGaugeVec,
}

impl InventoryMetrics {
    pub fn new(r: &Registry) -> Self {
        let reloads = IntCounterVec::new(
            Opts::new("inventory_reloads_total", "Inventory snapshots applied or rejected."),
            &["result"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let last_applied = IntGauge::new(
            "inventory_last_applied_timestamp_seconds",
            "Unix time of the last applied inventory snapshot.",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let objects = prometheus::IntGaugeVec::new(
            Opts::new("inventory_objects", "Objects in the applied inventory snapshot."),
            &["kind"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        Self {
            reloads: register(r, reloads),
            last_applied: register(r, last_applied),
            objects: register(r, objects),
        }
    }
}
