//! From an inventory snapshot to what the kernel maps must hold.

use std::collections::BTreeSet;

use graylane_common::pod_flags;
use ipnetwork::IpNetwork;

use crate::datapath::{CgroupRoot, KernelPod, KernelState, cgroup_id};

use super::{Pod, Snapshot};

/// What to capture besides the pods themselves.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    pub service_cidrs: Vec<IpNetwork>,
    pub excluded_ports: BTreeSet<u16>,
    pub proxy: crate::datapath::ProxyTarget,
    pub records_max: u32,
}

/// The kernel state for a snapshot, and which local pods have no cgroup yet.
pub struct KernelView {
    pub state: KernelState,
    /// Pods whose `graylane.io/cgroup` does not exist (yet): retried on the next sync.
    pub unresolved: Vec<String>,
}

impl KernelView {
    pub fn build(snapshot: &Snapshot, capture: &CaptureConfig, root: &CgroupRoot) -> Self {
        let mut state = KernelState {
            capture: capture.service_cidrs.iter().copied().collect(),
            excluded_ports: capture.excluded_ports.clone(),
            proxy: capture.proxy.clone(),
            records_max: capture.records_max,
            ..KernelState::default()
        };
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
        Self { state, unresolved }
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
