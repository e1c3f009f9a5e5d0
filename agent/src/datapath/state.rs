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
