//! A retry budget: retries in flight stay under a share of requests in flight (with a
//! floor), so retries never multiply an outage.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

pub struct RetryBudget {
    percent: usize,
    min: usize,
    active: AtomicUsize,
    retrying: AtomicUsize,
}

/// A request counted as in flight until dropped.
pub struct Active(Arc<RetryBudget>);
/// A retry counted as in flight until dropped.
pub struct Retrying(Arc<RetryBudget>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Retrying {
    fn drop(&mut self) {
        self.0.retrying.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RetryBudget {
    pub fn new(percent: u32, min: u32) -> Self {
        Self {
            percent: percent as usize,
            min: min as usize,
            active: AtomicUsize::new(0),
            retrying: AtomicUsize::new(0),
        }
    }

    pub fn request(self: &Arc<Self>) -> Active {
        self.active.fetch_add(1, Ordering::AcqRel);
        Active(self.clone())
    }

    /// A retry if the budget allows one now.
    pub fn retry(self: &Arc<Self>) -> Option<Retrying> {
        let limit = (self.active.load(Ordering::Acquire) * self.percent / 100).max(self.min);
        self.retrying
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1))
            .ok()
            .map(|_| Retrying(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stay_within_the_share_or_the_floor() {
        let b = Arc::new(RetryBudget::new(20, 1));
        let _active: Vec<_> = (0..10).map(|_| b.request()).collect();
        let (r1, r2) = (b.retry(), b.retry());
        assert!(r1.is_some() && r2.is_some() && b.retry().is_none(), "20% of 10 = 2");
        drop(r1);
        assert!(b.retry().is_some());
    }
}
