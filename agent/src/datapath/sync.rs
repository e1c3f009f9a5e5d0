//! Writes a [`KernelState`] into the maps, touching only entries that changed since the
//! last state applied (or, after adopting pinned maps, since what the kernel holds).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use aya::maps::lpm_trie::Key;
use graylane_common::{
    Addr16, Backend, DatapathConfig as KernelConfig, EXCLUDED_PORT_WORDS, LANE_ENDPOINTS, LaneKey, LaneRoute,
    NameKind, PodEntry, config_flags, lane_verdict, map_names,
};
use ipnetwork::IpNetwork;

use super::{
    DatapathError, KernelLane, KernelPod, KernelState, Names, maps::SyncMaps, names::Interner,
    records::addr16, state::ProxyTarget,
};

/// The state in kernel form: ids instead of names, map keys instead of addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Lowered {
    pods: BTreeMap<u64, PodEntry>,
    pod_ips: BTreeMap<Addr16, PodEntry>,
    capture: BTreeSet<(u32, [u8; 16])>,
    excluded: BTreeMap<u32, u32>,
    config: Option<KernelConfig>,
    /// The lane routes wanted (in `next`), or what each of the two tables holds (`applied`:
    /// `tables[config.lane_table]` is live).
    lanes: BTreeMap<LaneKey, LaneRoute>,
    tables: [BTreeMap<LaneKey, LaneRoute>; 2],
}

/// How long after a switch of lane tables the one left behind may be written: every hook
/// that read it has long finished (a connect hook runs for microseconds).
const SWITCH_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// How many entries one sync wrote and removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncStats {
    pub written: usize,
    pub removed: usize,
    /// Lane routes the kernel refused to take (their connects go through the proxy).
    pub lanes_failed: usize,
}

/// The writer of the kernel maps. Single owner: the inventory reconcile loop.
pub struct MapSync {
    maps: SyncMaps,
    interner: Interner,
    applied: Lowered,
    /// When the lane tables last switched.
    switched: std::time::Instant,
}

impl MapSync {
    /// Starts from what the (possibly adopted) maps hold now.
    pub(crate) fn adopt(maps: SyncMaps) -> Self {
        let interner = Interner::load(&maps.names);
        let applied = read_kernel(&maps);
        Self { maps, interner, applied, switched: std::time::Instant::now() }
    }

    /// Makes the maps hold `state`.
    pub fn apply(&mut self, state: &KernelState) -> Result<SyncStats, DatapathError> {
        let mut next = self.lower(state)?;
        let mut stats = SyncStats::default();
        // Lane routes: fill the table the hooks do not read, then switch to it (below, with
        // the config). A route the kernel refuses is left out: the proxy decides those.
        let live = self.applied.config.map_or(0, |c| c.lane_table as usize & 1);
        next.tables = self.applied.tables.clone();
        let mut table = live;
        if next.lanes != self.applied.tables[live] {
            let spare = 1 - live;
            if let Some(wait) = SWITCH_GRACE.checked_sub(self.switched.elapsed()) {
                std::thread::sleep(wait);
            }
            let map = &mut self.maps.lane_routes[spare];
            let held = &mut next.tables[spare];
            for k in gone(held, &next.lanes) {
                let _ = map.remove(&k);
                held.remove(&k);
                stats.removed += 1;
            }
            for (k, v) in changed(held, &next.lanes) {
                match map.insert(k, v, 0) {
                    Ok(()) => {
                        held.insert(k, v);
                        stats.written += 1;
                    }
                    Err(e) => {
                        let _ = map.remove(&k);
                        held.remove(&k);
                        stats.lanes_failed += 1;
                        tracing::debug!(error = %e, "lane route not written; the proxy routes it");
                    }
                }
            }
            if stats.lanes_failed > 0 {
                tracing::warn!(
                    failed = stats.lanes_failed,
                    "lane routes the kernel did not take go through the proxy"
                );
            }
            table = spare;
        }
        if let Some(cfg) = &mut next.config {
            cfg.lane_table = table as u32;
        }
        let maps = &mut self.maps;
        let prev = &self.applied;

        // Config first: READY turns capture on only once the proxy target is known.
        if next.config != prev.config
            && let Some(cfg) = next.config
        {
            maps.config.set(0, cfg, 0).map_err(DatapathError::map(map_names::CONFIG))?;
            stats.written += 1;
        }
        for (k, v) in changed(&prev.pods, &next.pods) {
            maps.pods.insert(k, v, 0).map_err(DatapathError::map(map_names::PODS))?;
            stats.written += 1;
        }
        for k in gone(&prev.pods, &next.pods) {
            let _ = maps.pods.remove(&k);
            stats.removed += 1;
        }
        for (k, v) in changed(&prev.pod_ips, &next.pod_ips) {
            maps.pod_ips.insert(k, v, 0).map_err(DatapathError::map(map_names::POD_IPS))?;
            stats.written += 1;
        }
        for k in gone(&prev.pod_ips, &next.pod_ips) {
            let _ = maps.pod_ips.remove(&k);
            stats.removed += 1;
        }
        for (len, data) in next.capture.difference(&prev.capture) {
            let key = Key::new(*len, *data);
            maps.capture.insert(&key, 1, 0).map_err(DatapathError::map(map_names::CAPTURE))?;
            stats.written += 1;
        }
        for (len, data) in prev.capture.difference(&next.capture) {
            let _ = maps.capture.remove(&Key::new(*len, *data));
            stats.removed += 1;
        }
        for word in 0..EXCLUDED_PORT_WORDS {
            let (old, new) = (prev.excluded.get(&word), next.excluded.get(&word));
            if old != new {
                let bits = new.copied().unwrap_or(0);
                maps.excluded_ports
                    .set(word, bits, 0)
                    .map_err(DatapathError::map(map_names::EXCLUDED_PORTS))?;
                stats.written += 1;
            }
        }
        if table != live {
            self.switched = std::time::Instant::now();
        }
        let used = used_names(&next);
        self.interner.retain(&mut self.maps.names, &used);
        self.applied = next;
        Ok(stats)
    }

    /// The id → name table as of the last sync.
    pub fn names(&self) -> Names {
        self.interner.snapshot()
    }

    /// Writes the `META` entry.
    pub fn write_meta(&mut self, meta: graylane_common::Meta) -> Result<(), DatapathError> {
        self.maps.meta.set(0, meta, 0).map_err(DatapathError::map(map_names::META))
    }

    fn lower(&mut self, state: &KernelState) -> Result<Lowered, DatapathError> {
        let mut out = Lowered::default();
        for (cgroup, pod) in &state.pods_by_cgroup {
            let entry = self.entry(pod)?;
            out.pods.insert(*cgroup, entry);
        }
        for (ip, pod) in &state.pods_by_ip {
            let entry = self.entry(pod)?;
            out.pod_ips.insert(addr16(*ip), entry);
        }
        out.capture = state.capture.iter().map(lpm_key).collect();
        for port in &state.excluded_ports {
            *out.excluded.entry(u32::from(*port) / 32).or_default() |= 1 << (u32::from(*port) % 32);
        }
        out.config = Some(kernel_config(&state.proxy, state.records_max));
        for (key, lane) in &state.lanes {
            // A name the table cannot hold leaves the lane to the proxy.
            let mut id = |kind, name: Option<&str>| match name {
                Some(n) => self.interner.intern(&mut self.maps.names, kind, n).ok(),
                None => Some(0),
            };
            let subset = match lane {
                KernelLane::Route { subset, .. } => Some(subset.as_str()),
                KernelLane::Refuse { .. } => None,
            };
            let (Some(tag_id), Some(tenant_id), Some(subset_id)) = (
                id(NameKind::Tag, key.tag.as_deref()),
                id(NameKind::Tenant, key.tenant.as_deref()),
                id(NameKind::Subset, subset),
            ) else {
                continue;
            };
            out.lanes.insert(lane_key(key, tag_id, tenant_id), lane_route(lane, subset_id));
        }
        Ok(out)
    }

    fn entry(&mut self, pod: &KernelPod) -> Result<PodEntry, DatapathError> {
        let names = &mut self.maps.names;
        let pod_id = self.interner.intern(names, NameKind::Pod, &pod.name)?;
        let tag_id = match &pod.tag {
            Some(t) => self.interner.intern(names, NameKind::Tag, t)?,
            None => 0,
        };
        let tenant_id = match &pod.tenant {
            Some(t) => self.interner.intern(names, NameKind::Tenant, t)?,
            None => 0,
        };
        Ok(PodEntry { pod_id, tag_id, tenant_id, flags: pod.flags })
    }
}

/// Entries of `next` that are new or differ from `prev`.
fn changed<K: Ord + Copy, V: PartialEq + Copy>(prev: &BTreeMap<K, V>, next: &BTreeMap<K, V>) -> Vec<(K, V)> {
    next.iter().filter(|(k, v)| prev.get(k) != Some(v)).map(|(k, v)| (*k, *v)).collect()
}

/// Keys of `prev` that `next` no longer has.
fn gone<K: Ord + Copy, V>(prev: &BTreeMap<K, V>, next: &BTreeMap<K, V>) -> Vec<K> {
    prev.keys().filter(|k| !next.contains_key(k)).copied().collect()
}

fn used_names(state: &Lowered) -> BTreeSet<(u32, u32)> {
    let mut used = BTreeSet::new();
    for e in state.pods.values().chain(state.pod_ips.values()) {
        used.insert((NameKind::Pod as u32, e.pod_id));
        used.insert((NameKind::Tag as u32, e.tag_id));
        used.insert((NameKind::Tenant as u32, e.tenant_id));
    }
    for (k, v) in state.tables.iter().flatten() {
        used.insert((NameKind::Tag as u32, k.tag_id));
        used.insert((NameKind::Tenant as u32, k.tenant_id));
        used.insert((NameKind::Subset as u32, v.subset_id));
    }
    used
}

/// A lane's key in kernel form, with its tag's and tenant's ids.
pub fn lane_key(key: &super::KernelLaneKey, tag_id: u32, tenant_id: u32) -> LaneKey {
    LaneKey {
        service: addr16(key.service.ip()),
        port: key.service.port(),
        _pad0: 0,
        tag_id,
        tenant_id,
        _pad1: 0,
    }
}

/// A lane in kernel form (`subset_id`: its subset's interned name). Endpoints beyond
/// [`LANE_ENDPOINTS`] are never written: the compiler leaves such lanes to the proxy.
pub fn lane_route(lane: &KernelLane, subset_id: u32) -> LaneRoute {
    match lane {
        KernelLane::Route { reason, endpoints, .. } => {
            let mut route = LaneRoute { reason: *reason, subset_id, ..LaneRoute::default() };
            for (slot, e) in route.endpoints.iter_mut().zip(endpoints.iter().take(LANE_ENDPOINTS)) {
                *slot = Backend { addr: addr16(e.ip()), port: e.port(), _pad: 0 };
            }
            route.count = endpoints.len().min(LANE_ENDPOINTS) as u32;
            route
        }
        KernelLane::Refuse { reason, errno } => LaneRoute {
            verdict: lane_verdict::REFUSE,
            errno: *errno,
            reason: *reason,
            ..LaneRoute::default()
        },
    }
}

/// An LPM key: v4 networks become mapped v6 with the prefix moved by 96.
fn lpm_key(net: &IpNetwork) -> (u32, [u8; 16]) {
    match net {
        IpNetwork::V4(n) => (96 + u32::from(n.prefix()), n.network().to_ipv6_mapped().octets()),
        IpNetwork::V6(n) => (u32::from(n.prefix()), n.network().octets()),
    }
}

fn kernel_config(proxy: &ProxyTarget, records_max: u32) -> KernelConfig {
    let proxy_ip4 = match proxy.v4.ip() {
        IpAddr::V4(v4) => u32::from_ne_bytes(v4.octets()),
        IpAddr::V6(_) => 0,
    };
    let mut flags = config_flags::READY;
    let proxy_ip6 = match proxy.v6 {
        Some(v6) => {
            flags |= config_flags::HAS_PROXY6;
            addr16(v6.ip())
        }
        None => Addr16::default(),
    };
    KernelConfig {
        proxy_ip4,
        proxy_port: proxy.v4.port(),
        _pad0: 0,
        proxy_ip6,
        bypass_mark: proxy.bypass_mark,
        flags,
        records_max,
        lane_table: 0,
    }
}

/// What the maps hold now, so the first sync after adopting writes only differences.
fn read_kernel(maps: &SyncMaps) -> Lowered {
    let mut out = Lowered {
        pods: maps.pods.iter().filter_map(Result::ok).collect(),
        pod_ips: maps.pod_ips.iter().filter_map(Result::ok).collect(),
        capture: maps
            .capture
            .iter()
            .filter_map(Result::ok)
            .map(|(k, _)| (k.prefix_len(), k.data()))
            .collect(),
        tables: [
            maps.lane_routes[0].iter().filter_map(Result::ok).collect(),
            maps.lane_routes[1].iter().filter_map(Result::ok).collect(),
        ],
        ..Lowered::default()
    };
    for word in 0..EXCLUDED_PORT_WORDS {
        if let Ok(bits) = maps.excluded_ports.get(&word, 0)
            && bits != 0
        {
            out.excluded.insert(word, bits);
        }
    }
    out.config = maps.config.get(&0, 0).ok().filter(|c| c.flags & config_flags::READY != 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_writes_only_changes() {
        let e = |t| PodEntry { pod_id: 1, tag_id: t, tenant_id: 0, flags: 0 };
        let prev: BTreeMap<u64, PodEntry> = [(1, e(1)), (2, e(2))].into();
        let next: BTreeMap<u64, PodEntry> = [(1, e(1)), (2, e(3)), (3, e(1))].into();
        assert_eq!(changed(&prev, &next), vec![(2, e(3)), (3, e(1))]);
        assert_eq!(gone(&next, &prev), vec![3]);
        assert!(gone(&prev, &next).is_empty());
    }

    #[test]
    fn v4_networks_become_mapped_lpm_keys() {
        let net: IpNetwork = "10.96.0.0/12".parse().expect("net");
        let (len, data) = lpm_key(&net);
        assert_eq!(len, 108);
        assert_eq!(&data[10..], &[0xff, 0xff, 10, 96, 0, 0]);
    }
}
