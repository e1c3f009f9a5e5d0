//! A concurrency cap: beyond `max` requests in flight, reject at once (no queue).

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

pub struct Gate {
    max: usize,
    in_flight: AtomicUsize,
}

/// Holds a place in the gate until dropped.
pub struct Pass(Arc<Gate>);

impl Drop for Pass {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Gate {
    pub fn new(max: usize) -> Self {
        Self { max, in_flight: AtomicUsize::new(0) }
    }

    pub fn enter(self: &Arc<Self>) -> Option<Pass> {
        let admitted = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max).then_some(n + 1))
            .is_ok();
        admitted.then(|| Pass(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_max_and_frees_on_drop() {
        let g = Arc::new(Gate::new(2));
        let (a, b) = (g.enter(), g.enter());
        assert!(a.is_some() && b.is_some() && g.enter().is_none());
        drop(a);
        assert!(g.enter().is_some());
    }
}
