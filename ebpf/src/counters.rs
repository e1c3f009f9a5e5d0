//! Per-CPU reason counters.

use graylane_common::Reason;

use crate::maps::COUNTERS;

/// Adds one to `reason`'s counter on this CPU.
#[inline(always)]
pub fn count(reason: Reason) {
    if let Some(slot) = COUNTERS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot; no other writer runs on this CPU concurrently.
        unsafe { *slot += 1 };
    }
}
