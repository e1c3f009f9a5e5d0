//! The memory budget of data-lane connections: what their buffers hold of messages still
//! arriving (a command, statement or reply not yet whole) comes from a per-pod and a
//! per-node budget, like descriptors do. A connection whose message needs more than its pod
//! or the node has left is refused (the protocol's error, then closed) and counted; the
//! others are not touched. Each connection's first `ALLOWANCE` bytes are free (the relay's
//! own read buffers), so ordinary traffic never draws on it.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

/// Buffer bytes a connection holds without drawing on the budget (two read chunks).
pub const ALLOWANCE: usize = 128 * 1024;

/// Where the budget ran out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    Pod,
    Node,
}

impl Exceeded {
    pub fn as_str(self) -> &'static str {
        match self {
            Exceeded::Pod => "pod",
            Exceeded::Node => "node",
        }
    }
}

#[derive(Debug)]
pub struct DataBudget {
    node_limit: usize,
    pod_limit: usize,
    /// (node total, per pod).
    used: Mutex<(usize, HashMap<Arc<str>, usize>)>,
}

impl DataBudget {
    pub fn new(node_limit: usize, pod_limit: usize) -> Arc<Self> {
        Arc::new(Self { node_limit, pod_limit, used: Mutex::new((0, HashMap::new())) })
    }

    /// A connection's share, drawn for `pod` (unknown callers share one name).
    pub fn hold(self: &Arc<Self>, pod: Option<&Arc<str>>) -> Held {
        Held { budget: self.clone(), pod: pod.cloned().unwrap_or_else(|| Arc::from("")), bytes: 0 }
    }

    /// Bytes drawn now: (node, `pod`'s).
    pub fn used(&self, pod: &str) -> (usize, usize) {
        let used = self.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (used.0, used.1.get(pod).copied().unwrap_or(0))
    }

    pub fn limits(&self) -> (usize, usize) {
        (self.node_limit, self.pod_limit)
    }
}

/// One connection's draw on the budget; given back when dropped.
#[derive(Debug)]
pub struct Held {
    budget: Arc<DataBudget>,
    pod: Arc<str>,
    bytes: usize,
}

impl Held {
    /// The node's and the pod's limits.
    pub fn limits(&self) -> (usize, usize) {
        self.budget.limits()
    }

    /// Sets the connection's draw to what its buffers hold beyond the allowance; a larger
    /// draw than the pod or the node has left is refused (and nothing changes).
    pub fn set(&mut self, buffered: usize) -> Result<(), Exceeded> {
        let want = buffered.saturating_sub(ALLOWANCE);
        if want == self.bytes {
            return Ok(());
        }
        let mut used = self.budget.used.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (node, pods) = &mut *used;
        let pod = pods.entry(self.pod.clone()).or_insert(0);
        if want > self.bytes {
            let more = want - self.bytes;
            if *pod + more > self.budget.pod_limit {
                return Err(Exceeded::Pod);
            }
            if *node + more > self.budget.node_limit {
                return Err(Exceeded::Node);
            }
            *pod += more;
            *node += more;
        } else {
            let less = self.bytes - want;
            *pod -= less;
            *node -= less;
        }
        if *pod == 0 {
            pods.remove(&self.pod);
        }
        self.bytes = want;
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pod_cannot_take_more_than_its_share_nor_the_node_more_than_its_own() {
        let b = DataBudget::new(100 << 20, 64 << 20);
        let (p, q): (Arc<str>, Arc<str>) = (Arc::from("a/p"), Arc::from("a/q"));
        let mut first = b.hold(Some(&p));
        assert!(first.set(ALLOWANCE).is_ok() && b.used("a/p") == (0, 0), "the allowance is free");
        assert!(first.set(60 << 20).is_ok());
        let mut second = b.hold(Some(&p));
        assert_eq!(second.set(10 << 20), Err(Exceeded::Pod));
        let mut other = b.hold(Some(&q));
        assert!(other.set(30 << 20).is_ok());
        assert_eq!(other.set(50 << 20), Err(Exceeded::Node));
        drop(first);
        assert!(second.set(10 << 20).is_ok(), "given back when the connection ends");
        drop((second, other));
        assert_eq!(b.used("a/p"), (0, 0));
    }
}
