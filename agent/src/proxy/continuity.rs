//! Lane continuity for apps that forward a trace id but not the lane: the node remembers,
//! per pod and trace, the lane of each request it forwarded into a pod here (`memory`),
//! and tells another node's agent when the pod is there (`hints`); an untagged request a
//! pod sends in a remembered trace gets its lane back (tag source `trace`). A pod that is
//! serving a lane right now (`serving`) and sends an untagged request in no remembered
//! trace lost the lane on its way through the app: that is counted (`lane_lost`), never
//! rerouted.

mod hints;
mod ids;
mod memory;
mod serving;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant, SystemTime},
};

pub use hints::{HintError, PORT as HINT_PORT};
pub use ids::{Keys, RequestId, TraceIds};
use memory::{Learned, TraceMemory};
use serving::Serving;

use crate::{
    inventory::Snapshot,
    proxy::{ProxyState, labels::Labels},
    routing::Placement,
    telemetry::metrics::{LaneMetrics, metrics},
};

/// What continuity needs from the agent's configuration.
#[derive(Clone)]
pub struct ContinuityConfig {
    /// Which ids a lane is remembered by (none: no trace memory, no hints).
    pub ids: TraceIds,
    /// The trace memory's bounds.
    pub entries: usize,
    pub ttl: Duration,
    /// The cluster's shared hint key (`--peer-key-file`); no key, no hints.
    pub peer_key: Option<Arc<[u8]>>,
    /// `SO_MARK` of the hint socket (the connect hooks leave marked sockets alone).
    pub bypass_mark: u32,
}

impl std::fmt::Debug for ContinuityConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContinuityConfig")
            .field("ids", &self.ids)
            .field("entries", &self.entries)
            .field("ttl", &self.ttl)
            .field("peer_key", &self.peer_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Default for ContinuityConfig {
    fn default() -> Self {
        Self {
            ids: TraceIds::ALL,
            entries: 100_000,
            ttl: Duration::from_secs(30),
            peer_key: None,
            bypass_mark: 0,
        }
    }
}

/// Where hints go: the cluster key and an unconnected, non-blocking UDP socket.
struct Peer {
    key: Arc<[u8]>,
    socket: Option<UdpSocket>,
}

pub struct Continuity {
    ids: TraceIds,
    memory: TraceMemory,
    serving: Serving,
    peer: Option<Peer>,
    /// Untagged requests that found no lane, while hints are on: a hint arriving for one
    /// afterwards lost the race (`lane_hint_race_total{result="lost"}`).
    missed: Missed,
    /// The hint listener's socket: a request that would lose its lane first takes the
    /// hints already waiting there (the hint was sent before the request, but its reader
    /// may not have run yet).
    receiver: OnceLock<Arc<tokio::net::UdpSocket>>,
    /// Held while hints are taken off the socket and remembered: a request catching up
    /// waits for a hint the listener is taking instead of finding the socket already
    /// empty and the memory not yet written.
    taking: Mutex<()>,
    metrics: &'static LaneMetrics,
    recalled: prometheus::IntCounter,
    race_won: prometheus::IntCounter,
}

impl Continuity {
    pub fn new(cfg: &ContinuityConfig) -> Self {
        let peer = cfg.peer_key.clone().map(|key| Peer { key, socket: hint_socket(cfg.bypass_mark) });
        Self {
            ids: cfg.ids,
            memory: TraceMemory::new(cfg.entries, cfg.ttl),
            serving: Serving::default(),
            peer,
            missed: Missed::default(),
            receiver: OnceLock::new(),
            taking: Mutex::new(()),
            metrics: &metrics().lanes,
            recalled: metrics().lanes.memory.with_label_values(&["recalled"]),
            race_won: metrics().lanes.hint_race.with_label_values(&["won"]),
        }
    }

    /// Whether any id counts (else requests are never remembered).
    pub fn remembers(&self) -> bool {
        self.ids != TraceIds::NONE
    }

    /// Whether this node sends and takes hints.
    pub fn hints(&self) -> bool {
        self.peer.is_some()
    }

    /// The request's trace keys.
    pub fn keys(&self, headers: &http::HeaderMap) -> Keys {
        ids::keys(headers, self.ids, RequestId::UnlessTracer)
    }

    /// The keys a request forwarded with `headers` is learnt by (see `RequestId`).
    pub fn keys_with(&self, headers: &http::HeaderMap, request_id: RequestId) -> Keys {
        ids::keys(headers, self.ids, request_id)
    }

    /// Where hints arrive (the listener's socket, shared).
    pub fn take_hints_from(&self, socket: Arc<tokio::net::UdpSocket>) {
        let _ = self.receiver.set(socket);
    }

    /// The lane of `pod`'s request in one of these traces, if remembered for a caller of
    /// `tenant`. A pod serving a lane whose trace is unknown first takes the hints already
    /// waiting.
    pub fn recall(
        &self,
        pod: &str,
        keys: &Keys,
        tenant: Option<&str>,
        state: &ProxyState,
    ) -> Option<Arc<str>> {
        if let Some(tag) = self.remembered(pod, keys, tenant) {
            return Some(tag);
        }
        if self.receiver.get().is_some() && self.serving.lane_of(pod).is_some() {
            // Whatever this call takes, the listener may just have taken the hint itself.
            self.take_waiting(state);
            if let Some(tag) = self.remembered(pod, keys, tenant) {
                return Some(tag);
            }
        }
        if self.peer.is_some() {
            self.missed.note(pod, keys);
        }
        None
    }

    fn remembered(&self, pod: &str, keys: &Keys, tenant: Option<&str>) -> Option<Arc<str>> {
        let (tag, learned, first) = self.memory.recall(pod, keys, tenant)?;
        self.recalled.inc();
        if learned == Learned::Hint && first {
            self.race_won.inc();
        }
        Some(tag)
    }

    /// Takes every hint waiting on the listener's socket without waiting for more (the
    /// listener when the socket is readable, a request that needs a hint now); how many.
    pub fn take_waiting(&self, state: &ProxyState) -> usize {
        let Some(socket) = self.receiver.get() else { return 0 };
        let _taking = self.taking.lock().unwrap_or_else(|p| p.into_inner());
        let mut buf = [0u8; hints::MAX_LEN + 1];
        let mut n = 0;
        while let Ok((len, _)) = socket.try_recv_from(&mut buf) {
            self.take(&buf[..len], state);
            n += 1;
        }
        n
    }

    /// A received datagram, accepted or counted as dropped.
    pub fn take(&self, data: &[u8], state: &ProxyState) {
        if let Err(drop) = self.accept(data, &state.labels, &state.snapshot) {
            tracing::debug!(reason = %drop, "lane hint dropped");
            self.metrics.hints.with_label_values(&[drop.as_str()]).inc();
        }
    }

    /// The lane `pod` is serving right now (its latest inbound request was in it).
    pub fn serving(&self, pod: &str) -> Option<Arc<str>> {
        self.serving.lane_of(pod)
    }

    /// The proxy forwards a request in lane `tag` (`None`: base) of `tenant` to `pod`:
    /// remember it (the pod is here; a base request overwrites what the pod's trace held)
    /// or tell the pod's node of a lane (it is not). `keys` reads the forwarded request's
    /// ids; `brought_tracer`: its caller brought a tracer's id (then a request id it also
    /// brought is not learnt: the client chose it).
    pub fn forwarded(
        &self,
        tag: Option<&Arc<str>>,
        tenant: Option<&str>,
        pod: &Arc<str>,
        placement: Placement,
        keys: impl FnOnce(RequestId) -> Keys,
        brought_tracer: bool,
    ) {
        let lane_keys = if brought_tracer { RequestId::UnlessTracer } else { RequestId::Always };
        match placement {
            Placement::Local => {
                self.serving.served(pod, tag);
                if self.remembers() {
                    match tag {
                        Some(tag) => {
                            let keys = keys(lane_keys);
                            if !keys.is_empty() {
                                self.memory.learn(pod, &keys, tag, tenant, Learned::Here);
                            }
                        }
                        None => self.memory.learn_base(pod, &keys(RequestId::Always)),
                    }
                }
            }
            Placement::Remote(node) => {
                if let (Some(tag), Some(peer)) = (tag, &self.peer) {
                    let keys = keys(lane_keys);
                    if !keys.is_empty() {
                        self.send(peer, node, &keys, tag, pod);
                    }
                }
            }
            Placement::Unknown => {}
        }
    }

    /// One datagram, now, without waiting: a full socket buffer or an unreachable node is a
    /// lost hint (counted), never a delay for the request.
    fn send(&self, peer: &Peer, node: IpAddr, keys: &Keys, tag: &str, pod: &str) {
        let sent = hints::encode(&peer.key, keys, tag, pod, SystemTime::now()).and_then(|data| {
            let socket = peer.socket.as_ref()?;
            socket.send_to(&data, SocketAddr::new(node, HINT_PORT)).ok()
        });
        let result = if sent.is_some() { "sent" } else { "send_failed" };
        self.metrics.hints.with_label_values(&[result]).inc();
    }

    /// A datagram from another node: checked (key, freshness, a tag the inventory names, a
    /// pod on this node) and remembered.
    pub fn accept(&self, data: &[u8], labels: &Labels, snapshot: &Snapshot) -> Result<(), HintDrop> {
        let peer = self.peer.as_ref().ok_or(HintDrop::Disabled)?;
        let hint = hints::decode(&peer.key, data, SystemTime::now()).map_err(HintDrop::Invalid)?;
        let tag = labels.known_tag(&hint.tag).ok_or(HintDrop::UnknownTag)?;
        let pod = snapshot.pod_by_name(&hint.pod).filter(|p| p.local()).ok_or(HintDrop::NotLocal)?;
        let pod: Arc<str> = Arc::from(pod.key().0);
        // A hint names no tenant: its entry is recalled for any caller.
        self.memory.learn(&pod, &hint.keys, &tag, None, Learned::Hint);
        self.serving.served(&pod, Some(&tag));
        if self.missed.taken(&pod, &hint.keys) {
            self.metrics.hint_race.with_label_values(&["lost"]).inc();
        }
        self.metrics.hints.with_label_values(&["accepted"]).inc();
        Ok(())
    }

    /// Publishes the memory's size (entries, estimated bytes).
    pub fn publish_size(&self) {
        let (entries, bytes) = self.memory.size();
        self.metrics.memory_size.with_label_values(&["entries"]).set(entries as i64);
        self.metrics.memory_size.with_label_values(&["bytes"]).set(bytes as i64);
    }

    /// Entries held and their estimated bytes.
    pub fn memory_size(&self) -> (usize, usize) {
        self.memory.size()
    }
}

/// Why a received hint was dropped (`lane_hints_total{result}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HintDrop {
    #[error("hints are off on this node (no --peer-key-file)")]
    Disabled,
    #[error(transparent)]
    Invalid(HintError),
    #[error("the hint's tag is not one the inventory names")]
    UnknownTag,
    #[error("the hint's pod is not on this node")]
    NotLocal,
}

impl HintDrop {
    pub const fn as_str(self) -> &'static str {
        match self {
            HintDrop::Disabled => "disabled",
            HintDrop::Invalid(e) => e.as_str(),
            HintDrop::UnknownTag => "unknown_tag",
            HintDrop::NotLocal => "not_local",
        }
    }
}

fn hint_socket(mark: u32) -> Option<UdpSocket> {
    let open = || -> std::io::Result<UdpSocket> {
        let s = socket2::Socket::new(socket2::Domain::IPV6, socket2::Type::DGRAM, None)
            .and_then(|s| {
                s.set_only_v6(false)?;
                s.bind(&SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)).into())?;
                Ok(s)
            })
            .or_else(|_| {
                let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
                s.bind(&SocketAddr::from(([0, 0, 0, 0], 0)).into())?;
                Ok::<_, std::io::Error>(s)
            })?;
        if mark != 0 {
            // Needs CAP_NET_ADMIN; without it (tests as a user) the hint goes unmarked.
            let _ = s.set_mark(mark);
        }
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    match open() {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "no socket for lane hints: hints to other nodes are lost");
            None
        }
    }
}

/// Recently missed (pod, trace) pairs: two generations of a bounded set, each at most
/// `MISSED_MAX` and `MISSED_AGE` old.
#[derive(Default)]
struct Missed {
    inner: Mutex<MissedSets>,
}

#[derive(Default)]
struct MissedSets {
    current: HashMap<u64, ()>,
    previous: HashMap<u64, ()>,
    since: Option<Instant>,
}

const MISSED_MAX: usize = 8_192;
const MISSED_AGE: Duration = Duration::from_secs(2);

impl Missed {
    fn note(&self, pod: &str, keys: &Keys) {
        if keys.is_empty() {
            return;
        }
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if m.current.len() >= MISSED_MAX || m.since.is_none_or(|s| now.duration_since(s) >= MISSED_AGE) {
            m.previous = std::mem::take(&mut m.current);
            m.since = Some(now);
        }
        for trace in keys.as_slice() {
            m.current.insert(memory::key(pod, *trace), ());
        }
    }

    /// Whether a request of `pod` in one of these traces missed (forgets it).
    fn taken(&self, pod: &str, keys: &Keys) -> bool {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut found = false;
        for trace in keys.as_slice() {
            let key = memory::key(pod, *trace);
            found |= m.current.remove(&key).is_some() | m.previous.remove(&key).is_some();
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_is_taken_only_with_the_key_a_known_tag_and_a_pod_here() {
        let key: Arc<[u8]> = Arc::from(&b"cluster key"[..]);
        let c = Continuity::new(&ContinuityConfig { peer_key: Some(key.clone()), ..Default::default() });
        let mut pod = crate::inventory::Pod::test("relay", "10.244.0.10");
        pod.cgroup = Some("pod-relay".into());
        let mut remote = crate::inventory::Pod::test("far", "10.244.1.10");
        remote.tag = Some("gray".into());
        let snapshot = Snapshot::with_policies(vec![pod, remote], vec![], vec![], vec![]);
        let labels = Labels::build(&snapshot);
        let keys = Keys::from_slice(&[42]);
        let now = SystemTime::now();
        let hint = |k: &[u8], tag: &str, pod: &str| hints::encode(k, &keys, tag, pod, now).expect("encode");
        assert_eq!(
            c.accept(&hint(b"wrong", "gray", "default/relay"), &labels, &snapshot),
            Err(HintDrop::Invalid(HintError::BadMac))
        );
        assert_eq!(
            c.accept(&hint(&key, "blue", "default/relay"), &labels, &snapshot),
            Err(HintDrop::UnknownTag)
        );
        assert_eq!(c.accept(&hint(&key, "gray", "default/far"), &labels, &snapshot), Err(HintDrop::NotLocal));
        assert!(c.remembered("default/relay", &keys, None).is_none());
        c.accept(&hint(&key, "gray", "default/relay"), &labels, &snapshot).expect("accepted");
        assert_eq!(c.remembered("default/relay", &keys, None).as_deref(), Some("gray"));
        assert_eq!(c.serving("default/relay").as_deref(), Some("gray"));
    }

    /// What learning and recalling cost per request, in this build (a measurement, not a
    /// check: `cargo test --release -p graylane --lib continuity_cost -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, run by hand in release"]
    fn continuity_cost() {
        let c = Continuity::new(&ContinuityConfig { entries: 400_000, ..Default::default() });
        let (pod, tag): (Arc<str>, Arc<str>) = (Arc::from("default/relay"), Arc::from("gray"));
        let all: Vec<http::HeaderMap> = (0..100_000u64)
            .map(|i| {
                let mut h = http::HeaderMap::new();
                let tp = format!("00-{:032x}-00f067aa0ba902b7-01", i + 1);
                h.insert("traceparent", http::HeaderValue::from_str(&tp).expect("traceparent"));
                h.insert("x-request-id", http::HeaderValue::from_str(&format!("req-{i}")).expect("id"));
                h
            })
            .collect();
        let state = ProxyState::default();
        let time = |f: &mut dyn FnMut(&http::HeaderMap)| {
            let started = Instant::now();
            all.iter().for_each(&mut *f);
            started.elapsed().as_nanos() as f64 / all.len() as f64
        };
        let keys = time(&mut |h| {
            std::hint::black_box(c.keys(h));
        });
        let learn =
            time(&mut |h| c.forwarded(Some(&tag), None, &pod, Placement::Local, |r| c.keys_with(h, r), true));
        let recall = time(&mut |h| {
            std::hint::black_box(c.recall(&pod, &c.keys(h), None, &state));
        });
        let base =
            time(&mut |h| c.forwarded(None, None, &pod, Placement::Local, |r| c.keys_with(h, r), true));
        eprintln!(
            "per request: read the ids {keys:.0} ns, learn (ids included) {learn:.0} ns, recall (ids included) {recall:.0} ns, note a base request {base:.0} ns"
        );
    }
}
