//! A connect the hooks let pass, refused or routed themselves for a managed pod, and the
//! close of a kernel-routed connection: why, what it asked for, where it went. Sent through
//! the `CONNECT_EVENTS` ring buffer so these flows show in the flow table.

use crate::{Addr16, Backend, OrigDst};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectEvent {
    /// The destination and the pod, as a captured connect would have recorded them.
    pub record: OrigDst,
    /// A [`crate::Reason`] value: `KernelRouted`, `KernelRefused` and `KernelClosed` for
    /// connections the kernel routed, else why the connect was not captured.
    pub reason: u32,
    /// Kernel-routed: a [`crate::lane_reason`] value (0 otherwise).
    pub lane_reason: u32,
    /// Kernel-routed: the endpoint, and the interned subset.
    pub endpoint: Backend,
    pub subset_id: u32,
    /// Kernel-routed: the socket's cookie (pairs `KernelRouted` with `KernelClosed`).
    pub cookie: u64,
    /// `KernelClosed`: bytes the pod sent (acknowledged) and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

const _: () = assert!(size_of::<ConnectEvent>() == 104);

impl ConnectEvent {
    /// Decodes an event from its bytes (native byte order, as the kernel wrote it); `None`
    /// when the buffer is short.
    pub fn decode(b: &[u8]) -> Option<Self> {
        let u16_at = |i: usize| Some(u16::from_ne_bytes([*b.get(i)?, *b.get(i + 1)?]));
        let u32_at = |i: usize| Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_ne_bytes(b.get(i..i + 8)?.try_into().ok()?));
        Some(Self {
            record: OrigDst {
                addr: Addr16 { words: [u32_at(0)?, u32_at(4)?, u32_at(8)?, u32_at(12)?] },
                port: u16_at(16)?,
                family: u16_at(18)?,
                pod_id: u32_at(20)?,
                tag_id: u32_at(24)?,
                tenant_id: u32_at(28)?,
                cgroup_id: u64_at(32)?,
                created_ns: u64_at(40)?,
            },
            reason: u32_at(48)?,
            lane_reason: u32_at(52)?,
            endpoint: Backend {
                addr: Addr16 { words: [u32_at(56)?, u32_at(60)?, u32_at(64)?, u32_at(68)?] },
                port: u16_at(72)?,
                _pad: 0,
            },
            subset_id: u32_at(76)?,
            cookie: u64_at(80)?,
            bytes_sent: u64_at(88)?,
            bytes_received: u64_at(96)?,
        })
    }
}
