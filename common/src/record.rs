//! Original-destination records: what the connect hook saw, keyed by the connection.

use crate::Addr16;

/// A TCP connection as the pod's socket sees it after redirection: (pod address, pod port)
/// → (proxy address, proxy port). The proxy sees the same tuple from the accepting side.
/// Ports are in host byte order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub src: Addr16,
    pub dst: Addr16,
    pub src_port: u16,
    pub dst_port: u16,
    pub _pad: u32,
}

const _: () = assert!(size_of::<FlowKey>() == 40);

/// What the pod asked for and who it is: written by `connect4`/`connect6`, moved under its
/// [`FlowKey`] by `sock_ops` once the local port is known, deleted when the socket closes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OrigDst {
    /// The destination the pod connected to.
    pub addr: Addr16,
    /// Destination port, host byte order.
    pub port: u16,
    /// `AF_INET` or `AF_INET6`: the family of the pod's socket.
    pub family: u16,
    /// The agent's id for the source pod (see [`crate::PodEntry`]).
    pub pod_id: u32,
    /// The pod's tag id at connect time (0 = no tag).
    pub tag_id: u32,
    /// The pod's tenant id at connect time (0 = no tenant).
    pub tenant_id: u32,
    /// The pod cgroup that matched: the kernel-attested identity of the caller.
    pub cgroup_id: u64,
    /// `bpf_ktime_get_ns()` at connect; lets the agent expire records stuck before `sock_ops`.
    pub created_ns: u64,
}

const _: () = assert!(size_of::<OrigDst>() == 48);
