//! Per-CPU reason counters.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use graylane_common::Reason;

use crate::maps::{COUNTERS, RECORD_COUNT};

/// Adds one to `reason`'s counter on this CPU.
#[inline(always)]
pub fn count(reason: Reason) {
    if let Some(slot) = COUNTERS.get_ptr_mut(reason as u32) {
        // SAFETY: per-CPU slot; no other writer runs on this CPU concurrently.
        unsafe { *slot += 1 };
    }
}

/// Adds `delta` (wrapping: `u64::MAX` is -1) to the live record count, atomically.
#[inline(always)]
pub fn add_records(delta: u64) {
    if let Some(slot) = RECORD_COUNT.get_ptr_mut(0) {
        // SAFETY: a valid, aligned map value shared by all CPUs; updated only atomically.
        // (The bpf target offers no `AtomicU64::fetch_add`; this lowers to BPF_XADD.)
        unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, delta) };
    }
}

/// The live record count.
#[inline(always)]
pub fn records() -> u64 {
    match RECORD_COUNT.get_ptr(0) {
        // SAFETY: a valid map value; a torn read is impossible for an aligned u64.
        Some(slot) => unsafe { core::ptr::read_volatile(slot) },
        None => 0,
    }
}
