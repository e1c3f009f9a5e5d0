//! Load balancing within a subset: round robin, least request (power of two choices),
//! random, ring hash (on a header, cookie or source IP, with a minimum ring size), and
//! deterministic subsetting (Google SRE) before any of them for large backends.

use std::sync::atomic::{AtomicUsize, Ordering};

use rand::{Rng as _, SeedableRng as _, seq::SliceRandom as _};
use xxhash_rust::xxh3::xxh3_64;

use super::endpoint::Endpoint;
use crate::inventory::policy::{LbPolicy, LoadBalancer};

/// What a pick may use from the request.
pub struct PickKey<'a> {
    /// The ring-hash key's hash, if the request has the configured header/cookie/IP.
    pub hash: Option<u64>,
    /// The calling workload, for deterministic subsetting.
    pub client: &'a str,
}

/// One subset's balancer: built with the endpoint list it serves.
pub struct Balancer {
    policy: LbPolicy,
    rr: AtomicUsize,
    /// Sorted (point, endpoint index); only for ring hash.
    ring: Vec<(u64, usize)>,
    subset_size: Option<usize>,
}

impl Balancer {
    pub fn new(cfg: &LoadBalancer, endpoints: &[std::sync::Arc<Endpoint>]) -> Self {
        let ring = if cfg.policy == LbPolicy::RingHash {
            build_ring(endpoints, cfg.min_ring_size.unwrap_or(1024) as usize)
        } else {
            Vec::new()
        };
        Self {
            policy: cfg.policy,
            rr: AtomicUsize::new(0),
            ring,
            subset_size: cfg.subset_size.map(|n| n as usize),
        }
    }

    /// An index into `endpoints` (non-empty).
    pub fn pick(&self, endpoints: &[std::sync::Arc<Endpoint>], key: &PickKey<'_>) -> usize {
        let n = endpoints.len();
        if let Some(size) = self.subset_size.filter(|s| *s < n) {
            let chosen = deterministic_subset(n, xxh3_64(key.client.as_bytes()), size);
            return chosen[self.rr.fetch_add(1, Ordering::Relaxed) % chosen.len()];
        }
        match self.policy {
            LbPolicy::RoundRobin => self.rr.fetch_add(1, Ordering::Relaxed) % n,
            LbPolicy::Random => rand::rng().random_range(0..n),
            LbPolicy::LeastRequest => {
                let mut rng = rand::rng();
                let (a, b) = (rng.random_range(0..n), rng.random_range(0..n));
                if endpoints[b].in_flight() < endpoints[a].in_flight() { b } else { a }
            }
            LbPolicy::RingHash => match key.hash {
                Some(h) => ring_lookup(&self.ring, h),
                None => rand::rng().random_range(0..n),
            },
        }
    }
}

/// Each endpoint gets `ceil(min_size / n)` points on the ring.
fn build_ring(endpoints: &[std::sync::Arc<Endpoint>], min_size: usize) -> Vec<(u64, usize)> {
    if endpoints.is_empty() {
        return Vec::new();
    }
    let per = min_size.div_ceil(endpoints.len()).max(1);
    let mut ring: Vec<(u64, usize)> = endpoints
        .iter()
        .enumerate()
        .flat_map(|(i, e)| (0..per).map(move |r| (xxh3_64(format!("{}#{r}", e.addr).as_bytes()), i)))
        .collect();
    ring.sort_unstable();
    ring
}

fn ring_lookup(ring: &[(u64, usize)], hash: u64) -> usize {
    let i = ring.partition_point(|(p, _)| *p < hash);
    ring[if i == ring.len() { 0 } else { i }].1
}

/// Google SRE deterministic subsetting: clients in the same round shuffle the backends the
/// same way and take disjoint slices, so load spreads evenly with few connections each.
pub fn deterministic_subset(backends: usize, client_id: u64, size: usize) -> Vec<usize> {
    let subset_count = (backends / size).max(1) as u64;
    let round = client_id / subset_count;
    let mut order: Vec<usize> = (0..backends).collect();
    order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(round));
    let id = (client_id % subset_count) as usize;
    order[id * size..(id * size + size).min(backends)].to_vec()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn endpoints(n: usize) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|i| {
                Arc::new(Endpoint::new(
                    format!("10.0.0.{i}:80").parse().expect("sa"),
                    format!("p{i}"),
                    None,
                    None,
                ))
            })
            .collect()
    }

    fn lb(policy: LbPolicy) -> LoadBalancer {
        LoadBalancer { policy, ..Default::default() }
    }

    #[test]
    fn round_robin_is_even_and_ring_hash_is_sticky() {
        let eps = endpoints(4);
        let key = PickKey { hash: None, client: "c" };
        let b = Balancer::new(&lb(LbPolicy::RoundRobin), &eps);
        let mut counts = [0; 4];
        for _ in 0..400 {
            counts[b.pick(&eps, &key)] += 1;
        }
        assert_eq!(counts, [100; 4]);
        let ring = Balancer::new(&LoadBalancer { policy: LbPolicy::RingHash, ..Default::default() }, &eps);
        let k = PickKey { hash: Some(xxh3_64(b"alice")), client: "c" };
        let first = ring.pick(&eps, &k);
        assert!((0..50).all(|_| ring.pick(&eps, &k) == first));
        // Removing another endpoint keeps alice where she was (consistent hashing).
        let fewer: Vec<_> =
            eps.iter().enumerate().filter(|(i, _)| *i != (first + 1) % 4).map(|(_, e)| e.clone()).collect();
        let ring2 = Balancer::new(&LoadBalancer { policy: LbPolicy::RingHash, ..Default::default() }, &fewer);
        assert_eq!(fewer[ring2.pick(&fewer, &k)].addr, eps[first].addr);
    }

    #[test]
    fn least_request_avoids_the_busy_endpoint() {
        let eps = endpoints(2);
        let _busy: Vec<_> = (0..10).map(|_| eps[0].try_start(None)).collect();
        let b = Balancer::new(&lb(LbPolicy::LeastRequest), &eps);
        let key = PickKey { hash: None, client: "c" };
        let to_busy = (0..1000).filter(|_| b.pick(&eps, &key) == 0).count();
        // Only when both random choices land on the busy one: ~25%.
        assert!(to_busy < 350, "{to_busy}");
    }

    #[test]
    fn deterministic_subsets_are_disjoint_within_a_round_and_cover_backends() {
        let size = 3;
        let subsets: Vec<Vec<usize>> = (0..4).map(|c| deterministic_subset(12, c, size)).collect();
        let mut all: Vec<usize> = subsets.concat();
        all.sort_unstable();
        assert_eq!(all, (0..12).collect::<Vec<_>>());
        assert_eq!(deterministic_subset(12, 2, size), subsets[2], "stable for a client");
    }
}
