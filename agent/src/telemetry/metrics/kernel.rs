//! The datapath seen from the kernel: connects by decision (captured, bypassed, fail-open,
//! map full, …) from the per-CPU counters, and entries in the connection tables. Read at
//! scrape time.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter_vec, define, gauge_vec};

pub struct KernelMetrics {
    /// `{reason}`: the kernel counters (`captured`, `fail_open`, `record_full`, …).
    pub connects: IntCounterVec,
    /// `{map}`: `records`, `pending`.
    pub map_entries: IntGaugeVec,
    /// 1 while the link pins hold this agent's links (0: capture belongs to someone else or
    /// stops when this agent exits).
    pub datapath_healthy: IntGauge,
    /// `{what}`: `listener`: our sockmap entry was found missing and put back.
    pub datapath_repairs: IntCounterVec,
    /// 1 while the proxy is saturated and its listeners are out of the sockmap (new
    /// connects fail open).
    pub capture_paused: IntGauge,
}

impl KernelMetrics {
    pub fn new(r: &Registry) -> Self {
        Self {
            connects: counter_vec(
                r,
                "kernel_connects_total",
                "Connect-hook decisions and record events, from the kernel.",
                &["reason"],
            ),
            map_entries: gauge_vec(
                r,
                "kernel_map_entries",
                "Entries in the kernel's connection tables.",
                &["map"],
            ),
            datapath_healthy: define(
                r,
                IntGauge::new("datapath_healthy", "1 while the pinned links are this agent's own."),
            ),
            datapath_repairs: counter_vec(
                r,
                "datapath_repairs_total",
                "Datapath entries found missing and restored.",
                &["what"],
            ),
            capture_paused: define(
                r,
                IntGauge::new(
                    "capture_paused",
                    "1 while the proxy is saturated and new connects go direct (fail-open).",
                ),
            ),
        }
    }

    /// Sets `reason`'s counter to the kernel's value (counters restart when a map is
    /// replaced: then the family restarts too, as Prometheus expects of a reset).
    pub fn observe(&self, reason: &str, value: u64) {
        let c = self.connects.with_label_values(&[reason]);
        let current = c.get();
        if value < current {
            c.reset();
            c.inc_by(value);
        } else {
            c.inc_by(value - current);
        }
    }
}
