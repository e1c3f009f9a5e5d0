//! The datapath seen from the kernel: connects by decision (captured, bypassed, fail-open,
//! map full, …) from the per-CPU counters, and entries in the connection tables. Read at
//! scrape time.

use prometheus::{IntCounterVec, IntGaugeVec, Registry};

use super::{counter_vec, gauge_vec};

pub struct KernelMetrics {
    /// `{reason}`: the kernel counters (`captured`, `fail_open`, `record_full`, …).
    pub connects: IntCounterVec,
    /// `{map}`: `records`, `pending`.
    pub map_entries: IntGaugeVec,
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
