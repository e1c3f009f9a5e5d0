//! The control plane: inventory snapshots applied or rejected, and the time of the last.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter_vec, define, gauge_vec};

pub struct InventoryMetrics {
    /// `{result}`: `applied`, `rejected` (the last good snapshot stays).
    pub reloads: IntCounterVec,
    pub last_applied: IntGauge,
    /// Pods, services and policies in the applied snapshot, by `kind`.
    pub objects: IntGaugeVec,
}

impl InventoryMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            reloads: counter_vec(
                r,
                "inventory_reloads_total",
                "Inventory snapshots applied or rejected.",
                &["result"],
            ),
            last_applied: define(
                r,
                IntGauge::new(
                    "inventory_last_applied_timestamp_seconds",
                    "Unix time of the last applied inventory snapshot.",
                ),
            ),
            objects: gauge_vec(
                r,
                "inventory_objects",
                "Objects in the applied inventory snapshot.",
                &["kind"],
            ),
        }
    }
}
