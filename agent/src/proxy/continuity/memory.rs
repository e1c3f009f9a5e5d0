//! The trace memory: (pod, trace key) → the lane the pod's request in that trace was in,
//! so an untagged request the pod sends in the same trace gets the lane back. Learned when
//! the proxy forwards a lane request into a pod on this node, or told by the caller's
//! node (a hint). Bounded in entries and time: two generations per shard — lookups see
//! both, writes go to the newer, and the older is dropped (its entries counted as evicted)
//! when the newer is full or half the time-to-live has passed; after a quiet TTL both go.
//! An entry lives about the TTL (at least half of it).

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

/// Distinct lanes a shard names at once; past it the shard starts afresh (lanes are few:
/// this only bounds a stream of made-up tags).
const MAX_LANES: usize = 1024;
const _: () = assert!(MAX_LANES <= u16::MAX as usize, "a lane index is a u16");

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

/// 4 bytes: the lane is an index into its shard's `lanes` (no reference count to touch
/// on every request, half the memory of holding the name).
#[derive(Clone, Copy, Debug)]
struct Entry {
    lane: u16,
    learned: Learned,
    /// Recalled at least once.
    recalled: bool,
}

struct Shard {
    current: Map,
    previous: Map,
    since: Instant,
    /// The lanes entries of both generations name, by index.
    lanes: Vec<Arc<str>>,
}

impl Shard {
    fn new() -> Self {
        Self { current: Map::default(), previous: Map::default(), since: Instant::now(), lanes: Vec::new() }
    }

    /// `tag`'s index, added if new; a shard that names `MAX_LANES` already starts afresh
    /// first. Also how many entries that start evicted.
    fn lane(&mut self, tag: &Arc<str>) -> (u16, usize) {
        if let Some(i) = self.lanes.iter().position(|l| Arc::ptr_eq(l, tag) || **l == **tag) {
            return (i as u16, 0);
        }
        let evicted = if self.lanes.len() >= MAX_LANES { self.clear() } else { 0 };
        self.lanes.push(tag.clone());
        ((self.lanes.len() - 1) as u16, evicted)
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

    /// Remembers that `pod`'s request in these traces was in lane `tag`.
    pub fn learn(&self, pod: &str, keys: &Keys, tag: &Arc<str>, learned: Learned) {
        let pod_hash = xxh3_64(pod.as_bytes());
        for trace in keys.as_slice() {
            let key = pair(pod_hash, *trace);
            let mut shard = self.shard(key);
            self.maintain(&mut shard);
            let (lane, evicted) = shard.lane(tag);
            if evicted > 0 {
                self.counts.evicted.inc_by(evicted as u64);
            }
            shard.current.insert(key, Entry { lane, learned, recalled: false });
        }
        match learned {
            Learned::Here => self.counts.learned.inc(),
            Learned::Hint => self.counts.hinted.inc(),
        }
    }

    /// The lane of `pod`'s request in any of these traces, if remembered (and fresh), how
    /// it was learned, and whether this is the first time it is recalled.
    pub fn recall(&self, pod: &str, keys: &Keys) -> Option<(Arc<str>, Learned, bool)> {
        let pod_hash = xxh3_64(pod.as_bytes());
        for trace in keys.as_slice() {
            let key = pair(pod_hash, *trace);
            let mut shard = self.shard(key);
            self.maintain(&mut shard);
            let Shard { current, previous, lanes, .. } = &mut *shard;
            if let Some(e) = current.get_mut(&key).or_else(|| previous.get_mut(&key)) {
                let first = !e.recalled;
                e.recalled = true;
                let tag = lanes.get(usize::from(e.lane))?.clone();
                return Some((tag, e.learned, first));
            }
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
        m.learn("default/relay", &keys, &Arc::from("gray"), Learned::Here);
        assert_eq!(
            m.recall("default/relay", &Keys::from_slice(&[2])).map(|(t, _, _)| t.to_string()),
            Some("gray".into())
        );
        assert!(m.recall("default/other", &keys).is_none(), "another pod's request in the same trace");
        assert!(m.recall("default/relay", &Keys::from_slice(&[3])).is_none());
    }

    #[test]
    fn bounded_by_entries_and_by_time() {
        let m = TraceMemory::new(320, Duration::from_millis(100));
        for i in 0..10_000u64 {
            m.learn("p", &Keys::from_slice(&[i]), &Arc::from("gray"), Learned::Here);
        }
        let (n, _) = m.size();
        assert!(n <= 320 + SHARDS, "{n}");
        assert!(m.recall("p", &Keys::from_slice(&[9_999])).is_some(), "the newest stays");
        assert!(m.recall("p", &Keys::from_slice(&[0])).is_none(), "the oldest went");
        std::thread::sleep(Duration::from_millis(110));
        assert!(m.recall("p", &Keys::from_slice(&[9_999])).is_none(), "past the TTL");
    }

    #[test]
    fn each_entry_recalls_its_own_lane_past_the_lane_bound() {
        let m = TraceMemory::new(1_000_000, Duration::from_secs(60));
        let lanes = (SHARDS * MAX_LANES + 100) as u64;
        for i in 0..lanes {
            m.learn("p", &Keys::from_slice(&[i]), &Arc::from(format!("lane-{i}")), Learned::Here);
        }
        let newest = lanes - 1;
        let recalled = m.recall("p", &Keys::from_slice(&[newest])).map(|(t, _, _)| t.to_string());
        assert_eq!(recalled, Some(format!("lane-{newest}")));
        for shard in &m.shards {
            assert!(shard.lock().expect("shard").lanes.len() <= MAX_LANES);
        }
        let (n, _) = m.size();
        assert!(n > 0 && n <= lanes as usize, "{n}");
    }
}
