//! The flow table: active and recent connections in a bounded ring. Each connection owns
//! its entry and updates it per request under its own (uncontended) lock; the ring's lock
//! is taken once per connection, at accept.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use crate::vocab::{ClientAddr, OrigDstAddr};

/// What is known when a connection is accepted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlowStart {
    pub client: ClientAddr,
    pub orig_dst: OrigDstAddr,
    /// `namespace/name` of the pod the kernel attested (by cgroup).
    pub src_pod: Option<String>,
    pub src_cgroup: u64,
    /// The pod's tag and tenant (at connect time).
    pub tag: Option<String>,
    pub tenant: Option<String>,
    /// Where its upstream connections leave from: `pod` (the caller's own address) or
    /// `node`; `None` for connections the proxy did not take.
    pub source_ip: Option<&'static str>,
    /// Why from the node (`no_process`, `host_network`, …), when so.
    pub source_fallback: Option<&'static str>,
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowOutcome {
    Open,
    Closed,
    Failed(String),
    /// The kernel let the connect go its own way (or refused it): the reason.
    Bypassed(&'static str),
}

/// What changes over a connection's life.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FlowState {
    /// `tcp`, `http1`, `http2`.
    pub protocol: &'static str,
    /// Who carried it: `proxy`, `kernel` (routed at connect(), no proxy) or `bypass` (the
    /// kernel let it go its own way, or refused it).
    pub path: &'static str,
    pub service: Option<Arc<str>>,
    pub upstream: Option<SocketAddr>,
    pub outcome: FlowOutcome,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub duration_ms: u64,
    pub requests: u64,
    /// Retried tries (each retry of each request).
    pub retries: u64,
    /// Shadow copies sent.
    pub mirrored: u64,
    pub last_status: Option<u16>,
    /// The last request's lane and routing explanation.
    pub lane_tag: Option<String>,
    pub tag_source: Option<&'static str>,
    pub subset: Option<Arc<str>>,
    /// Why that subset: lane, route, base, fallback_base, fallback_chain.
    pub reason: Option<&'static str>,
    /// The matched route and coloring rule, if any.
    pub route: Option<Arc<str>>,
    pub rule: Option<Arc<str>>,
    /// The lane the source pod was serving when its last request carried none.
    pub lane_lost: Option<Arc<str>>,
    /// The endpoint pod that served the last request.
    pub endpoint_pod: Option<Arc<str>>,
    /// Why graylane answered the last request itself, if it did (`x-graylane-reason`).
    pub local_reason: Option<&'static str>,
    /// A data-lane connection's mapping (`keyPrefix shadow:`), and its commands graylane
    /// refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_lane: Option<Arc<str>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub data_rejected: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug)]
pub struct FlowEntry {
    pub id: u64,
    pub start: FlowStart,
    pub started_ms: u64,
    state: Mutex<FlowState>,
}

impl FlowEntry {
    /// Applies `f` to this flow's state.
    pub fn update(&self, f: impl FnOnce(&mut FlowState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    pub fn close(&self, outcome: FlowOutcome, up: u64, down: u64, took: Duration) {
        self.update(|s| {
            s.outcome = outcome;
            s.bytes_up = up;
            s.bytes_down = down;
            s.duration_ms = took.as_millis() as u64;
        });
    }
}

/// A flow as the admin API shows it.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Flow {
    pub id: u64,
    #[serde(flatten)]
    pub start: FlowStart,
    #[serde(flatten)]
    pub state: FlowState,
    /// Unix time of accept, milliseconds.
    pub started_ms: u64,
}

pub struct Flows {
    ring: Mutex<VecDeque<Arc<FlowEntry>>>,
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

    pub fn open(&self, start: FlowStart, protocol: &'static str) -> Arc<FlowEntry> {
        let started_ms =
            SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let entry = Arc::new(FlowEntry {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            start,
            started_ms,
            state: Mutex::new(FlowState {
                protocol,
                path: "proxy",
                service: None,
                upstream: None,
                outcome: FlowOutcome::Open,
                bytes_up: 0,
                bytes_down: 0,
                duration_ms: 0,
                requests: 0,
                retries: 0,
                mirrored: 0,
                last_status: None,
                lane_tag: None,
                tag_source: None,
                subset: None,
                reason: None,
                route: None,
                rule: None,
                endpoint_pod: None,
                local_reason: None,
                data_lane: None,
                data_rejected: 0,
                lane_lost: None,
            }),
        });
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == self.capacity {
            ring.pop_front();
        }
        ring.push_back(entry.clone());
        entry
    }

    pub fn refused_without_record(&self) {
        self.refused_without_record.fetch_add(1, Ordering::Relaxed);
    }

    pub fn refused_without_record_total(&self) -> u64 {
        self.refused_without_record.load(Ordering::Relaxed)
    }

    /// A copy of the ring, oldest first.
    pub fn list(&self) -> Vec<Flow> {
        let entries: Vec<Arc<FlowEntry>> =
            self.ring.lock().unwrap_or_else(|p| p.into_inner()).iter().cloned().collect();
        entries
            .iter()
            .map(|e| Flow {
                id: e.id,
                start: e.start.clone(),
                state: e.state.lock().unwrap_or_else(|p| p.into_inner()).clone(),
                started_ms: e.started_ms,
            })
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
            source_ip: None,
            source_fallback: None,
        }
    }

    #[test]
    fn ring_is_bounded_and_entries_update_in_place() {
        let flows = Flows::new(2);
        let _a = flows.open(start(), "tcp");
        let b = flows.open(start(), "tcp");
        let c = flows.open(start(), "http1");
        c.close(FlowOutcome::Closed, 1, 2, Duration::from_millis(3));
        let list = flows.list();
        assert_eq!(list.iter().map(|f| f.id).collect::<Vec<_>>(), vec![b.id, c.id]);
        assert_eq!(list[1].state.bytes_down, 2);
    }
}
