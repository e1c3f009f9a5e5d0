//! The trace memory: (pod, trace key) → the lane the pod's request in that trace was in,
//! and the tenant it was in, so an untagged request the pod sends in the same trace gets
//! the lane back. Learned when the proxy forwards a lane request into a pod on this node,
//! or told by the caller's node (a hint). A request forwarded into the pod in the same
//! trace with no lane overwrites the entry as base (a stranger's lane request with a
//! borrowed id does not outlive the owner's next request), and an entry learnt under one
//! tenant is not recalled for a caller of another. Bounded in entries and time: two
//! generations per shard — lookups see both, writes go to the newer, and the older is
//! dropped (its entries counted as evicted) when the newer is full or half the
//! time-to-live has passed; after a quiet TTL both go. An entry lives about the TTL (at
//! least half of it).

use std::{
    collections::HashMap,
    hash::{BuildHasherDefault, Hasher},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use prometheus::IntCounter;
use xxhash_rust::xxh3::xxh3_64;

use super::ids::Keys;
use crate::telemetry::metrics::metrics;

const SHARDS: usize = 16;

/// Distinct lanes and tenants a shard names at once; past it the shard starts afresh (they
/// are few: this only bounds a stream of made-up tags).
const MAX_LANES: usize = 1024;
const _: () = assert!(MAX_LANES < NONE as usize, "a name index is a u16 below NONE");
/// No lane (an entry that says base), or no tenant.
const NONE: u16 = u16::MAX;

/// One (pod, trace) pair as a map key.
pub fn key(pod: &str, trace: u64) -> u64 {
    pair(xxh3_64(pod.as_bytes()), trace)
}

fn pair(pod_hash: u64, trace: u64) -> u64 {
    pod_hash ^ trace.rotate_left(17)
}

/// Keys are hashes already: the map uses them as they are.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Map = HashMap<u64, Entry, BuildHasherDefault<KeyHasher>>;

/// The memory's counters, resolved once.
struct Counts {
    learned: IntCounter,
    hinted: IntCounter,
    evicted: IntCounter,
}

/// How the memory learned a lane.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learned {
    /// This node forwarded the lane request into the pod.
    Here,
    /// The caller's node said so.
    Hint,
}

/// 6 bytes: the lane and the tenant are indexes into their shard's `lanes` (no reference
/// count to touch on every request, less memory than holding the names); `NONE` for base
/// and for no tenant.
#[derive(Clone, Copy, Debug)]
struct Entry {
    lane: u16,
    tenant: u16,
    learned: Learned,
    /// Recalled at least once.
    recalled: bool,
}

struct Shard {
    current: Map,
    previous: Map,
    since: Instant,
    /// The lanes and tenants entries of both generations name, by index.
    lanes: Vec<Arc<str>>,
}

impl Shard {
    fn new() -> Self {
        Self { current: Map::default(), previous: Map::default(), since: Instant::now(), lanes: Vec::new() }
    }

    /// `name`'s index, if the shard names it.
    fn find(&self, name: &str) -> Option<u16> {
        self.lanes.iter().position(|l| **l == *name).map(|i| i as u16)
    }

    /// `name`'s index, added if new (the caller made room).
    fn name(&mut self, name: &str) -> u16 {
        self.find(name).unwrap_or_else(|| {
            self.lanes.push(Arc::from(name));
            (self.lanes.len() - 1) as u16
        })
    }

    /// The indexes of a lane and a tenant (or none), added if new; a shard that has no
    /// room for the new ones starts afresh first (both at once: a fresh start for the
    /// tenant would invalidate the lane's index). Also how many entries that evicted.
    fn names(&mut self, tag: &str, tenant: Option<&str>) -> (u16, u16, usize) {
        let new = usize::from(self.find(tag).is_none())
            + usize::from(tenant.is_some_and(|t| self.find(t).is_none()));
        let evicted = if self.lanes.len() + new > MAX_LANES { self.clear() } else { 0 };
        let lane = self.name(tag);
        let tenant = tenant.map_or(NONE, |t| self.name(t));
        (lane, tenant, evicted)
    }

    /// Forgets everything; how many entries went.
    fn clear(&mut self) -> usize {
        let n = self.current.len() + self.previous.len();
        self.current.clear();
        self.previous.clear();
        self.lanes.clear();
        self.since = Instant::now();
        n
    }
}

pub struct TraceMemory {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    ttl: Duration,
    counts: Counts,
    /// A lane was ever learnt (until then a base request has nothing to overwrite).
    any_lane: std::sync::atomic::AtomicBool,
}

impl TraceMemory {
    /// At most `entries` in all (about: two generations of half each), each at most `ttl`.
    pub fn new(entries: usize, ttl: Duration) -> Self {
        let shard = || Mutex::new(Shard::new());
        let counts = &metrics().lanes.memory;
        Self {
            shards: (0..SHARDS).map(|_| shard()).collect(),
            per_shard: (entries / SHARDS / 2).max(1),
            ttl,
            any_lane: std::sync::atomic::AtomicBool::new(false),
            counts: Counts {
                learned: counts.with_label_values(&["learned"]),
                hinted: counts.with_label_values(&["hinted"]),
                evicted: counts.with_label_values(&["evicted"]),
            },
        }
    }

    fn shard(&self, key: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(key as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ages a shard: a new generation every half TTL (or when full); nothing older than
    /// the TTL survives a quiet spell.
    fn maintain(&self, shard: &mut Shard) {
        let age = shard.since.elapsed();
        let evicted = if age >= self.ttl {
            shard.clear()
        } else if shard.current.len() >= self.per_shard || age >= self.ttl / 2 {
            // The older generation goes; its map (and capacity) becomes the new current.
            let Shard { current, previous, since, .. } = shard;
            std::mem::swap(current, previous);
            let n = current.len();
            current.clear();
            *since = Instant::now();
            n
        } else {
            0
        };
        if evicted > 0 {
            self.counts.evicted.inc_by(evicted as u64);
        }
    }

    /// Remembers that `pod`'s request in these traces was in lane `tag`, for `tenant`.
    pub fn learn(&self, pod: &str, keys: &Keys, tag: &str, tenant: Option<&str>, learned: Learned) {
        self.any_lane.store(true, std::sync::atomic::Ordering::Relaxed);
        let pod_hash = xxh3_64(pod.as_bytes());
        for trace in keys.as_slice() {
            let key = pair(pod_hash, *trace);
            let mut shard = self.shard(key);
            self.maintain(&mut shard);
            let (lane, tenant, evicted) = shard.names(tag, tenant);
            if evicted > 0 {
                self.counts.evicted.inc_by(evicted as u64);
            }
            shard.current.insert(key, Entry { lane, tenant, learned, recalled: false });
        }
        match learned {
            Learned::Here => self.counts.learned.inc(),
            Learned::Hint => self.counts.hinted.inc(),
        }
    }

    /// `pod`'s request in these traces was in no lane: an entry it has in them now says
    /// base (none is added: no entry recalls nothing already). Nothing to do, and no lock
    /// taken, while the memory has never held a lane.
    pub fn learn_base(&self, pod: &str, keys: &Keys) {
        if !self.any_lane.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let pod_hash = xxh3_64(pod.as_bytes());
        for trace in keys.as_slice() {
            let key = pair(pod_hash, *trace);
            let mut shard = self.shard(key);
            let Shard { current, previous, .. } = &mut *shard;
            if let Some(e) = current.get_mut(&key).or_else(|| previous.get_mut(&key)) {
                *e = Entry { lane: NONE, tenant: NONE, learned: Learned::Here, recalled: false };
            }
        }
    }

    /// The lane of `pod`'s request in these traces, if remembered (and fresh) for a caller
    /// of `tenant`, how it was learned, and whether this is the first time it is recalled.
    /// Another tenant's entry (both tenants known and different) is passed over; the first
    /// entry that says base ends the search with nothing.
    pub fn recall(&self, pod: &str, keys: &Keys, tenant: Option<&str>) -> Option<(Arc<str>, Learned, bool)> {
        let pod_hash = xxh3_64(pod.as_bytes());
        for trace in keys.as_slice() {
            let key = pair(pod_hash, *trace);
            let mut shard = self.shard(key);
            self.maintain(&mut shard);
            let Shard { current, previous, lanes, .. } = &mut *shard;
            let Some(e) = current.get_mut(&key).or_else(|| previous.get_mut(&key)) else { continue };
            if e.lane == NONE {
                return None;
            }
            if let (Some(caller), Some(owner)) = (tenant, lanes.get(usize::from(e.tenant)))
                && **owner != *caller
            {
                continue;
            }
            let first = !e.recalled;
            e.recalled = true;
            let tag = lanes.get(usize::from(e.lane))?.clone();
            return Some((tag, e.learned, first));
        }
        None
    }

    /// Entries held now, and an estimate of the bytes they take.
    pub fn size(&self) -> (usize, usize) {
        let per = std::mem::size_of::<(u64, Entry)>() + 1;
        self.shards.iter().fold((0, 0), |(n, bytes), s| {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            (
                n + s.current.len() + s.previous.len(),
                bytes + (s.current.capacity() + s.previous.capacity()) * per,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_trace_recalls_its_lane_and_only_its_own() {
        let m = TraceMemory::new(1000, Duration::from_secs(60));
        let keys = Keys::from_slice(&[1, 2]);
        m.learn("default/relay", &keys, "gray", None, Learned::Here);
        assert_eq!(
            m.recall("default/relay", &Keys::from_slice(&[2]), None).map(|(t, _, _)| t.to_string()),
            Some("gray".into())
        );
        assert!(m.recall("default/other", &keys, None).is_none(), "another pod's request in the same trace");
        assert!(m.recall("default/relay", &Keys::from_slice(&[3]), None).is_none());
    }

    #[test]
    fn a_base_request_in_the_trace_overwrites_the_lane_and_adds_nothing() {
        let m = TraceMemory::new(1000, Duration::from_secs(60));
        m.learn_base("default/relay", &Keys::from_slice(&[1]));
        assert_eq!(m.size().0, 0, "nothing learnt yet, nothing added");
        m.learn("default/relay", &Keys::from_slice(&[1]), "gray", Some("red"), Learned::Here);
        m.learn_base("default/relay", &Keys::from_slice(&[1, 2]));
        assert!(m.recall("default/relay", &Keys::from_slice(&[1]), None).is_none(), "base now");
        assert_eq!(m.size().0, 1, "the base request added no entry for key 2");
        m.learn("default/relay", &Keys::from_slice(&[1]), "gray", None, Learned::Here);
        assert!(m.recall("default/relay", &Keys::from_slice(&[1]), None).is_some(), "a lane again");
    }

    #[test]
    fn an_entry_is_recalled_only_for_callers_of_its_tenant() {
        let m = TraceMemory::new(1000, Duration::from_secs(60));
        let keys = Keys::from_slice(&[7]);
        m.learn("default/relay", &keys, "gray", Some("red"), Learned::Here);
        assert!(m.recall("default/relay", &keys, Some("blue")).is_none(), "another tenant's entry");
        assert!(m.recall("default/relay", &keys, Some("red")).is_some());
        assert!(m.recall("default/relay", &keys, None).is_some(), "a caller with no tenant of its own");
        // Passed over, not a stop: the caller's own entry under another of its ids counts.
        m.learn("default/relay", &Keys::from_slice(&[8]), "blue-lane", Some("blue"), Learned::Here);
        let both = m.recall("default/relay", &Keys::from_slice(&[7, 8]), Some("blue"));
        assert_eq!(both.map(|(t, _, _)| t.to_string()).as_deref(), Some("blue-lane"));
        m.learn("default/relay", &keys, "gray", None, Learned::Hint);
        assert!(m.recall("default/relay", &keys, Some("blue")).is_some(), "learnt under no tenant");
    }

    #[test]
    fn bounded_by_entries_and_by_time() {
        let m = TraceMemory::new(320, Duration::from_millis(100));
        for i in 0..10_000u64 {
            m.learn("p", &Keys::from_slice(&[i]), "gray", None, Learned::Here);
        }
        let (n, _) = m.size();
        assert!(n <= 320 + SHARDS, "{n}");
        assert!(m.recall("p", &Keys::from_slice(&[9_999]), None).is_some(), "the newest stays");
        assert!(m.recall("p", &Keys::from_slice(&[0]), None).is_none(), "the oldest went");
        std::thread::sleep(Duration::from_millis(110));
        assert!(m.recall("p", &Keys::from_slice(&[9_999]), None).is_none(), "past the TTL");
    }

    #[test]
    fn each_entry_recalls_its_own_lane_past_the_lane_bound() {
        let m = TraceMemory::new(1_000_000, Duration::from_secs(60));
        let lanes = (SHARDS * MAX_LANES + 100) as u64;
        for i in 0..lanes {
            m.learn("p", &Keys::from_slice(&[i]), &format!("lane-{i}"), None, Learned::Here);
        }
        let newest = lanes - 1;
        let recalled = m.recall("p", &Keys::from_slice(&[newest]), None).map(|(t, _, _)| t.to_string());
        assert_eq!(recalled, Some(format!("lane-{newest}")));
        for shard in &m.shards {
            assert!(shard.lock().expect("shard").lanes.len() <= MAX_LANES);
        }
        let (n, _) = m.size();
        assert!(n > 0 && n <= lanes as usize, "{n}");
    }
}
