//! From an inventory snapshot to what the kernel maps must hold.

use std::collections::BTreeSet;

use graylane_common::pod_flags;
use ipnetwork::IpNetwork;

use crate::datapath::{CgroupRoot, KernelPod, KernelState, cgroup_id};

use super::{Pod, Snapshot};

/// What to capture besides the pods themselves.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// `--service-cidr`: ranges captured whatever the inventory says.
    pub service_cidrs: Vec<IpNetwork>,
    /// Which Service addresses are captured beyond those ranges.
    pub cluster_ips: ClusterIps,
    pub excluded_ports: BTreeSet<u16>,
    pub proxy: crate::datapath::ProxyTarget,
    pub records_max: u32,
    /// Lanes routed at connect() (`--kernel-lanes`).
    pub kernel_lanes: bool,
}

/// Which Service cluster IPs are captured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterIps {
    /// Every one the inventory names (standalone: the inventory is the whole truth).
    Every,
    /// The cluster's service ranges (`ServiceCIDR` objects) and the flag's; every cluster
    /// IP only when neither names a range (Kubernetes).
    Ranges,
}

/// The kernel state for a snapshot, which local pods have no cgroup yet, and which
/// Services are not captured.
pub struct KernelView {
    pub state: KernelState,
    /// Pods whose `graylane.io/cgroup` does not exist (yet): retried on the next sync.
    pub unresolved: Vec<String>,
    /// Services with a cluster IP outside every captured range (`namespace/name`).
    pub uncaptured: Vec<String>,
}

impl KernelView {
    pub fn build(snapshot: &Snapshot, capture: &CaptureConfig, root: &CgroupRoot) -> Self {
        let mut ranges: Vec<IpNetwork> = capture.service_cidrs.clone();
        ranges.extend(snapshot.service_cidrs.iter().copied());
        let every = capture.cluster_ips == ClusterIps::Every || ranges.is_empty();
        let mut uncaptured = Vec::new();
        let mut state = KernelState {
            capture: ranges.iter().copied().collect(),
            excluded_ports: capture.excluded_ports.clone(),
            proxy: capture.proxy.clone(),
            records_max: capture.records_max,
            ..KernelState::default()
        };
        for svc in &snapshot.services {
            for ip in &svc.cluster_ips {
                if every {
                    state.capture.insert(IpNetwork::from(*ip));
                } else if !ranges.iter().any(|r| r.contains(*ip)) {
                    uncaptured.push(format!("{}/{}", svc.namespace, svc.name));
                }
            }
        }
        uncaptured.dedup();
        let mut unresolved = Vec::new();
        for pod in &snapshot.pods {
            let local = pod.cgroup.as_deref().map(|rel| cgroup_id(&root.join(rel)));
            let mut entry = kernel_pod(pod);
            match local {
                Some(Ok(id)) => {
                    entry.flags |= pod_flags::LOCAL;
                    state.pods_by_cgroup.insert(id, entry.clone());
                }
                Some(Err(_)) => unresolved.push(pod.key().0),
                None => {}
            }
            for ip in &pod.ips {
                state.pods_by_ip.insert(*ip, entry.clone());
                state.capture.insert(IpNetwork::from(*ip));
            }
        }
        Self { state, unresolved, uncaptured }
    }

    /// The lanes (tag, tenant) of this node's pods whose connects are captured: the callers
    /// the kernel may route.
    pub fn caller_lanes(&self) -> BTreeSet<(Option<String>, Option<String>)> {
        self.state
            .pods_by_cgroup
            .values()
            .filter(|p| p.flags & pod_flags::REDIRECT_OFF == 0)
            .map(|p| (p.tag.clone(), p.tenant.clone()))
            .collect()
    }
}

fn kernel_pod(pod: &Pod) -> KernelPod {
    let mut flags = 0;
    if !pod.redirect {
        flags |= pod_flags::REDIRECT_OFF;
    }
    if pod.fail_closed {
        flags |= pod_flags::FAIL_CLOSED;
    }
    KernelPod { name: pod.key().0, tag: pod.tag.clone(), tenant: pod.tenant.clone(), flags }
}
