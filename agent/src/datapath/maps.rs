//! Typed handles on the pinned maps, grouped by who uses them.

use aya::maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray};
use graylane_common::{
    Addr16, DatapathConfig as KernelConfig, LaneKey, LaneRoute, Meta, NameKey, NameValue, PodEntry, Reason,
    map_names,
};

use super::DatapathError;

/// The maps the inventory sync writes.
pub struct SyncMaps {
    pub config: Array<MapData, KernelConfig>,
    pub meta: Array<MapData, Meta>,
    pub pods: HashMap<MapData, u64, PodEntry>,
    pub pod_ips: HashMap<MapData, Addr16, PodEntry>,
    pub capture: LpmTrie<MapData, [u8; 16], u32>,
    pub excluded_ports: Array<MapData, u32>,
    pub names: HashMap<MapData, NameKey, NameValue>,
    /// The two lane-route tables (`DatapathConfig::lane_table` names the live one).
    pub lane_routes: [HashMap<MapData, LaneKey, LaneRoute>; 2],
}

/// Per-reason counters, summed over CPUs on read.
pub struct Counters {
    map: PerCpuArray<MapData, u64>,
}

impl Counters {
    pub(crate) fn new(map: PerCpuArray<MapData, u64>) -> Self {
        Self { map }
    }

    /// Every reason with its total over all CPUs.
    pub fn read(&self) -> Result<Vec<(Reason, u64)>, DatapathError> {
        Reason::ALL
            .iter()
            .map(|r| {
                let values =
                    self.map.get(&(*r as u32), 0).map_err(DatapathError::map(map_names::COUNTERS))?;
                Ok((*r, values.iter().sum()))
            })
            .collect()
    }
}
