//! What the kernel knows about a pod: keyed by cgroup id (who is calling) and by pod IP.

/// The kernel's view of one pod. The agent writes it under the pod's cgroup id (`PODS`) for
/// the connect hooks and under the pod's IP (`POD_IPS`) for inspection and for capturing
/// pod-IP destinations.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PodEntry {
    /// The agent's id for the pod (interned `namespace/name`; 0 is never used).
    pub pod_id: u32,
    /// Interned `graylane.io/tag` (0 = none).
    pub tag_id: u32,
    /// Interned `graylane.io/tenant` (0 = none).
    pub tenant_id: u32,
    /// [`pod_flags`].
    pub flags: u32,
}

const _: () = assert!(size_of::<PodEntry>() == 16);

/// Bits of [`PodEntry::flags`].
pub mod pod_flags {
    /// `graylane.io/redirect: "false"`: never capture this pod's connections.
    pub const REDIRECT_OFF: u32 = 1 << 0;
    /// `graylane.io/fail-mode: closed`: refuse connects when no proxy listens.
    pub const FAIL_CLOSED: u32 = 1 << 1;
    /// The pod runs on this node (its cgroup is known).
    pub const LOCAL: u32 = 1 << 2;
}
