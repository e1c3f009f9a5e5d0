//! What the kernel maps should hold, in names (not ids): built from an inventory snapshot.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, SocketAddr},
};

use ipnetwork::IpNetwork;

/// One pod as the kernel sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPod {
    /// `namespace/name`.
    pub name: String,
    pub tag: Option<String>,
    pub tenant: Option<String>,
    /// [`graylane_common::pod_flags`].
    pub flags: u32,
}

/// The desired content of every map the agent writes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelState {
    /// Local pods, by the id of their cgroup.
    pub pods_by_cgroup: BTreeMap<u64, KernelPod>,
    /// Every known pod, by IP.
    pub pods_by_ip: BTreeMap<IpAddr, KernelPod>,
    /// Destinations to capture: service CIDRs and pod IPs.
    pub capture: BTreeSet<IpNetwork>,
    /// Destination ports never captured.
    pub excluded_ports: BTreeSet<u16>,
    /// Where captured connections go.
    pub proxy: ProxyTarget,
    /// Live connections the record table holds; beyond it connects are not captured.
    pub records_max: u32,
    /// Lanes the kernel routes at connect(), compiled from the routing table.
    pub lanes: BTreeMap<KernelLaneKey, KernelLane>,
}

/// A lane the kernel routes: the Service port dialled, and the caller's tag and tenant.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelLaneKey {
    pub service: SocketAddr,
    pub tag: Option<String>,
    pub tenant: Option<String>,
}

/// What the kernel does with such a connect: what the proxy's planner would.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelLane {
    /// One of these endpoints of `subset` (at most [`graylane_common::LANE_ENDPOINTS`]).
    Route {
        subset: String,
        /// A [`graylane_common::lane_reason`] value.
        reason: u32,
        endpoints: Vec<SocketAddr>,
    },
    /// Refused with `errno`, for a [`graylane_common::lane_reason`].
    Refuse { reason: u32, errno: u32 },
}

/// The proxy addresses and the mark of its own sockets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyTarget {
    pub v4: SocketAddr,
    pub v6: Option<SocketAddr>,
    pub bypass_mark: u32,
}

impl Default for ProxyTarget {
    fn default() -> Self {
        Self { v4: SocketAddr::from(([127, 0, 0, 1], graylane_common::PROXY_PORT)), v6: None, bypass_mark: 0 }
    }
}
