//! Edge limits: what one downstream connection or caller may cost the node proxy. Every
//! pod's traffic on the node shares this process, so each bound has a safe default.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use prometheus::{IntCounterVec, IntGauge};
use std::sync::atomic::AtomicBool;

use crate::telemetry::metrics;

/// HTTP parsing and connection bounds.
#[derive(Clone, Debug, serde::Serialize)]
pub struct EdgeLimits {
    /// A request's headers must arrive within this (slowloris; idle keep-alive too).
    pub header_read_timeout: Duration,
    /// Headers per request at most (more: 431).
    pub max_headers: usize,
    /// Bytes of request headers at most (more: 431; HTTP/2: the header list size).
    pub max_header_bytes: usize,
    /// A request body that sends nothing for this long is aborted.
    pub body_idle_timeout: Duration,
    /// HTTP/2 streams open at once per connection.
    pub h2_max_streams: u32,
    /// HTTP/2 streams a client may reset before they are accepted (rapid reset), and
    /// streams this side may reset for errors, before the connection is closed.
    pub h2_max_pending_resets: usize,
    pub h2_max_error_resets: usize,
    /// Downstream connections at once, per source pod and in total (more: refused at once).
    pub max_per_pod: usize,
    pub max_total: usize,
    /// Data-lane buffers of messages still arriving, per source pod and in total (beyond
    /// them a connection is refused: `proxy::data_budget`).
    pub data_buffer_per_pod: usize,
    pub data_buffer_total: usize,
}

/// What the proxy does when it is full: takes itself out of capture (new connects then
/// go their own way, fail-open, instead of queueing on a proxy that cannot take them), and
/// back in once there is room again.
pub trait Saturation: Send + Sync {
    fn saturated(&self);
    fn relieved(&self);
}

/// For tests and tools: nothing to switch.
pub struct NoSaturation;

impl Saturation for NoSaturation {
    fn saturated(&self) {}
    fn relieved(&self) {}
}

impl Saturation for crate::datapath::Listeners {
    fn saturated(&self) {
        tracing::warn!("proxy saturated: listeners out of the sockmap, new connects fail open");
        metrics().kernel.capture_paused.set(1);
        self.pause();
    }
    fn relieved(&self) {
        tracing::info!("proxy has room again: capturing new connects");
        metrics().kernel.capture_paused.set(0);
        self.resume();
    }
}

/// Counts downstream connections per source (kernel cgroup id) and in total; at the total
/// cap the proxy steps out of capture until it is back under 90 % of it.
pub struct ConnLimiter {
    max_per_pod: usize,
    max_total: usize,
    total: AtomicUsize,
    per_pod: Mutex<HashMap<u64, usize>>,
    refused: IntCounterVec,
    /// `graylane_downstream_connections`, kept equal to `total`.
    gauge: IntGauge,
    saturation: Arc<dyn Saturation>,
    saturated: AtomicBool,
}

/// A connection's place under the caps, until dropped.
pub struct ConnSlot {
    limiter: Arc<ConnLimiter>,
    pod: u64,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let left = self.limiter.total.fetch_sub(1, Ordering::AcqRel) - 1;
        self.limiter.gauge.dec();
        if left <= self.limiter.max_total / 10 * 9
            && self
                .limiter
                .saturated
                .compare_exchange(true, false, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.limiter.saturation.relieved();
        }
        let mut per_pod = self.limiter.per_pod.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_pod.get_mut(&self.pod) {
            *n -= 1;
            if *n == 0 {
                per_pod.remove(&self.pod);
            }
        }
    }
}

impl ConnLimiter {
    pub fn new(limits: &EdgeLimits, saturation: Arc<dyn Saturation>) -> Arc<Self> {
        Arc::new(Self {
            max_per_pod: limits.max_per_pod.max(1),
            max_total: limits.max_total.max(1),
            total: AtomicUsize::new(0),
            per_pod: Mutex::new(HashMap::new()),
            refused: metrics().proxy.refused.clone(),
            gauge: metrics().proxy.active.clone(),
            saturation,
            saturated: AtomicBool::new(false),
        })
    }

    /// A slot for a connection from the pod with cgroup `pod` (0: unknown), or `None` when
    /// a cap is reached (counted by reason).
    pub fn admit(self: &Arc<Self>, pod: u64) -> Option<ConnSlot> {
        if self
            .total
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.max_total).then_some(n + 1))
            .is_err()
        {
            self.refused.with_label_values(&["total_cap"]).inc();
            return None;
        }
        let mut per_pod = self.per_pod.lock().unwrap_or_else(|p| p.into_inner());
        let n = per_pod.entry(pod).or_insert(0);
        if *n >= self.max_per_pod {
            drop(per_pod);
            self.total.fetch_sub(1, Ordering::AcqRel);
            self.refused.with_label_values(&["per_pod_cap"]).inc();
            return None;
        }
        *n += 1;
        drop(per_pod);
        self.gauge.inc();
        if self.total.load(Ordering::Acquire) >= self.max_total
            && self.saturated.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            self.saturation.saturated();
        }
        Some(ConnSlot { limiter: self.clone(), pod })
    }

    pub fn active(&self) -> usize {
        self.total.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> EdgeLimits {
        EdgeLimits {
            header_read_timeout: Duration::from_secs(1),
            max_headers: 100,
            max_header_bytes: 32 * 1024,
            body_idle_timeout: Duration::from_secs(1),
            h2_max_streams: 100,
            h2_max_pending_resets: 20,
            h2_max_error_resets: 100,
            max_per_pod: 2,
            data_buffer_per_pod: 64 << 20,
            data_buffer_total: 256 << 20,
            max_total: 3,
        }
    }

    #[test]
    fn caps_per_pod_and_in_total_and_slots_free_on_drop() {
        let l = ConnLimiter::new(&limits(), Arc::new(NoSaturation));
        let (a1, a2) = (l.admit(1), l.admit(1));
        assert!(a1.is_some() && a2.is_some() && l.admit(1).is_none(), "per pod");
        let b = l.admit(2);
        assert!(b.is_some() && l.admit(3).is_none(), "in total");
        drop(a1);
        let again = l.admit(1);
        assert!(again.is_some());
        assert_eq!(l.active(), 3);
    }

    #[derive(Default)]
    struct Switch(Mutex<Vec<bool>>);
    impl Saturation for Switch {
        fn saturated(&self) {
            self.0.lock().expect("lock").push(true);
        }
        fn relieved(&self) {
            self.0.lock().expect("lock").push(false);
        }
    }

    #[test]
    fn a_full_proxy_steps_out_of_capture_and_back_in_under_ninety_percent() {
        let switch = Arc::new(Switch::default());
        let mut l = limits();
        (l.max_total, l.max_per_pod) = (20, 20);
        let limiter = ConnLimiter::new(&l, switch.clone());
        let mut held: Vec<_> = (0..20).map(|_| limiter.admit(1).expect("room")).collect();
        assert!(limiter.admit(1).is_none());
        assert_eq!(*switch.0.lock().expect("lock"), [true]);
        held.truncate(19);
        assert_eq!(*switch.0.lock().expect("lock"), [true], "still above 90 %");
        held.truncate(18);
        assert_eq!(*switch.0.lock().expect("lock"), [true, false]);
    }
}
