//! `/tags`: the kernel's pod maps, decoded with names. Read from the maps themselves (not
//! the agent's memory), so it shows what the connect hooks actually see.

use std::net::IpAddr;

use aya::maps::{HashMap, Map, MapData};
use graylane_common::{Addr16, NameKind, PodEntry, map_names, pod_flags};

use crate::datapath::{DatapathError, Names, PinPaths, socket_addr};

#[derive(Debug, serde::Serialize)]
pub struct TagEntry {
    pub pod: Option<String>,
    pub tag: Option<String>,
    pub tenant: Option<String>,
    /// Set for entries of the cgroup map (pods on this node).
    pub cgroup_id: Option<u64>,
    /// Set for entries of the pod-IP map.
    pub ip: Option<IpAddr>,
    pub redirect: bool,
    pub fail_closed: bool,
}

/// Both maps, cgroup entries first; with `local_only`, just the pods on this node.
pub fn read(pins: &PinPaths, names: &Names, local_only: bool) -> Result<Vec<TagEntry>, DatapathError> {
    let open = |name: &'static str| -> Result<MapData, DatapathError> {
        MapData::from_pin(pins.map(name)).map_err(DatapathError::map(name))
    };
    let pods: HashMap<MapData, u64, PodEntry> = HashMap::try_from(Map::HashMap(open(map_names::PODS)?))
        .map_err(DatapathError::map(map_names::PODS))?;
    let ips: HashMap<MapData, Addr16, PodEntry> = HashMap::try_from(Map::HashMap(open(map_names::POD_IPS)?))
        .map_err(DatapathError::map(map_names::POD_IPS))?;
    let decode = |e: &PodEntry, cgroup_id: Option<u64>, ip: Option<IpAddr>| TagEntry {
        pod: names.get(NameKind::Pod, e.pod_id).map(str::to_owned),
        tag: names.get(NameKind::Tag, e.tag_id).map(str::to_owned),
        tenant: names.get(NameKind::Tenant, e.tenant_id).map(str::to_owned),
        cgroup_id,
        ip,
        redirect: e.flags & pod_flags::REDIRECT_OFF == 0,
        fail_closed: e.flags & pod_flags::FAIL_CLOSED != 0,
    };
    let mut out: Vec<TagEntry> =
        pods.iter().filter_map(Result::ok).map(|(id, e)| decode(&e, Some(id), None)).collect();
    if !local_only {
        out.extend(
            ips.iter().filter_map(Result::ok).map(|(a, e)| decode(&e, None, Some(socket_addr(&a, 0).ip()))),
        );
    }
    Ok(out)
}
