//! The flow table: active and recent connections in a bounded ring.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::proxy::{ClientAddr, OrigDstAddr};

/// What is known when a connection is accepted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlowStart {
    pub client: ClientAddr,
    pub orig_dst: OrigDstAddr,
    /// `namespace/name` of the pod the kernel attested (by cgroup).
    pub src_pod: Option<String>,
    pub src_cgroup: u64,
    pub tag: Option<String>,
    pub tenant: Option<String>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowOutcome {
    Open,
    Closed,
    Failed(String),
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Flow {
    pub id: u64,
    #[serde(flatten)]
    pub start: FlowStart,
    pub service: Option<String>,
    pub upstream: Option<SocketAddr>,
    pub outcome: FlowOutcome,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    /// Unix time of accept, milliseconds.
    pub started_ms: u64,
}

/// Bounded: the oldest flows fall off. One short lock per connection open and close.
pub struct Flows {
    ring: Mutex<VecDeque<Flow>>,
    capacity: usize,
    next_id: AtomicU64,
    refused_without_record: AtomicU64,
}

impl Flows {
    pub fn new(capacity: usize) -> Self {
        Self {
            ring: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            next_id: AtomicU64::new(1),
            refused_without_record: AtomicU64::new(0),
        }
    }

    pub fn open(
        &self,
        start: FlowStart,
        service: Option<String>,
        upstream: Option<SocketAddr>,
    ) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let started_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let flow = Flow {
            id,
            start,
            service,
            upstream,
            outcome: FlowOutcome::Open,
            bytes_up: 0,
            bytes_down: 0,
            duration_ms: 0,
            started_ms,
        };
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(flow);
        id
    }

    pub fn close(&self, id: u64, outcome: FlowOutcome, up: u64, down: u64, took: Duration) {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        // Ids grow along the ring, so search from the back (recent flows).
        if let Some(flow) = ring.iter_mut().rev().find(|f| f.id == id) {
            flow.outcome = outcome;
            flow.bytes_up = up;
            flow.bytes_down = down;
            flow.duration_ms = took.as_millis() as u64;
        }
    }

    pub fn refused_without_record(&self, _client: ClientAddr) {
        self.refused_without_record.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_without_record_total(&self) -> u64 {
        self.refused_without_record.load(Ordering::Relaxed)
    }

    /// A copy of the ring, oldest first.
    pub fn list(&self) -> Vec<Flow> {
        self.ring
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> FlowStart {
        FlowStart {
            client: ClientAddr("10.0.0.1:1".parse().expect("sa")),
            orig_dst: OrigDstAddr("10.0.0.2:2".parse().expect("sa")),
            src_pod: None,
            src_cgroup: 0,
            tag: None,
            tenant: None,
        }
    }

    #[test]
    fn ring_is_bounded_and_close_updates() {
        let flows = Flows::new(2);
        let a = flows.open(start(), None, None);
        let b = flows.open(start(), None, None);
        let c = flows.open(start(), None, None);
        flows.close(c, FlowOutcome::Closed, 1, 2, Duration::from_millis(3));
        flows.close(a, FlowOutcome::Closed, 0, 0, Duration::ZERO);
        let list = flows.list();
        assert_eq!(list.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b, c]);
        assert_eq!(list[1].bytes_down, 2);
    }
}
