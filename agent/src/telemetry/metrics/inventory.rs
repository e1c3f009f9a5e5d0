//! The control plane: inventory snapshots applied or rejected, and the time of the last.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter_vec, define, gauge_vec};

pub struct InventoryMetrics {
    /// `{result}`: `applied`, `rejected` (the last good snapshot stays).
    pub reloads: IntCounterVec,
    pub last_applied: IntGauge,
    /// Pods, services and policies in the applied snapshot, by `kind`.
    pub objects: IntGaugeVec,
    /// `{workload, service, subset, tag, tenant}` = 1: which version serves which Service's
    /// subset (the lane map joins traffic to versions by it, as Kiali joins pod labels).
    pub workloads: IntGaugeVec,
    /// `{destination_service, lane, protocol, mapping}` = 1: each data lane's mapping.
    pub data_lanes: IntGaugeVec,
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
            workloads: gauge_vec(
                r,
                "workload_info",
                "1 for each version (a workload's pods of one tag) and the Service subset it serves.",
                &["workload", "service", "subset", "tag", "tenant"],
            ),
            data_lanes: gauge_vec(
                r,
                "data_lane_info",
                "1 for each data lane of a store: what its data maps to.",
                &["destination_service", "lane", "protocol", "mapping"],
            ),
        }
    }
}
