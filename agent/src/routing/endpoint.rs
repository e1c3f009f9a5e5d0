//! An endpoint of a service: a pod's address with its tag and tenant, and the requests in
//! flight on it (for least-request balancing and per-endpoint caps).

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

#[derive(Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `addr` as a URI authority, made once (upstream URIs are built per request).
    pub authority: http::uri::Authority,
    /// `namespace/name` of the pod.
    pub pod: Arc<str>,
    pub tag: Option<String>,
    pub tenant: Option<String>,
    /// Where the pod runs, relative to this node.
    pub placement: Placement,
    /// The label-defined subsets (a policy's `subsets`) the pod is in.
    pub subsets: Vec<Arc<str>>,
    in_flight: AtomicUsize,
}

/// Where an endpoint's pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On this node (its cgroup is known).
    Local,
    /// On another node, whose agent listens at this address.
    Remote(std::net::IpAddr),
    Unknown,
}

impl Placement {
    pub fn of(pod: &crate::inventory::Pod) -> Self {
        match (pod.local(), pod.host_ip) {
            (true, _) => Placement::Local,
            (false, Some(ip)) => Placement::Remote(ip),
            (false, None) => Placement::Unknown,
        }
    }
}

/// Counts a request in flight on an endpoint until dropped.
pub struct InFlight(Arc<Endpoint>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Endpoint {
    pub fn new(addr: SocketAddr, pod: String, tag: Option<String>, tenant: Option<String>) -> Self {
        let authority = http::uri::Authority::try_from(addr.to_string().as_str())
            .unwrap_or_else(|_| http::uri::Authority::from_static("invalid"));
        Self {
            addr,
            authority,
            pod: pod.into(),
            tag,
            tenant,
            placement: Placement::Unknown,
            subsets: Vec::new(),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// The endpoint of `pod` at `addr`, in the label subsets of `defs` the pod matches.
    pub fn of(
        addr: SocketAddr,
        pod: &crate::inventory::Pod,
        defs: &[crate::inventory::policy::SubsetDef],
    ) -> Self {
        let mut e = Self::new(addr, pod.key().0, pod.tag.clone(), pod.tenant.clone());
        e.placement = Placement::of(pod);
        e.subsets = defs
            .iter()
            .filter(|d| d.backend.is_none() && d.labels.iter().all(|(k, v)| pod.labels.get(k) == Some(v)))
            .map(|d| Arc::from(d.name.as_str()))
            .collect();
        e
    }
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
    /// Counts a request in flight, unless `max` are already: the check and the count are one
    /// atomic step, so concurrent requests cannot both take the last slot.
    pub fn try_start(self: &Arc<Self>, max: Option<usize>) -> Option<InFlight> {
        let max = max.unwrap_or(usize::MAX);
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .ok()?;
        Some(InFlight(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_requests_never_take_more_slots_than_the_cap() {
        let e = Arc::new(Endpoint::new("10.0.0.1:80".parse().expect("addr"), "ns/p".into(), None, None));
        let barrier = std::sync::Barrier::new(8);
        let taken: Vec<Option<InFlight>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        e.try_start(Some(2))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        assert_eq!(taken.iter().filter(|t| t.is_some()).count(), 2);
        assert_eq!(e.in_flight(), 2);
        drop(taken);
        assert_eq!(e.in_flight(), 0);
        assert!(e.try_start(None).is_some(), "no cap: always counted");
    }
}
