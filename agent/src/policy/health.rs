//! Subset circuit breakers, as the subset decision sees them.

/// Whether a subset may take traffic.
pub trait SubsetHealth {
    /// Open now: not a candidate (no state change).
    fn open(&self, subset: &str) -> bool;
    /// May take this request (moves an expired breaker to half-open, counts probes).
    fn admit(&self, subset: &str) -> bool;
}

/// No subset breakers.
pub struct AllHealthy;

impl SubsetHealth for AllHealthy {
    fn open(&self, _: &str) -> bool {
        false
    }
    fn admit(&self, _: &str) -> bool {
        true
    }
}
