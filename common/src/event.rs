//! A connect the hooks let pass (or refused) for a managed pod: why, and what it asked for.
//! Sent through the `CONNECT_EVENTS` ring buffer so bypassed flows show in the flow table.

use crate::{Addr16, OrigDst};

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectEvent {
    /// The destination and the pod, as a captured connect would have recorded them.
    pub record: OrigDst,
    /// A [`crate::Reason`] value.
    pub reason: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<ConnectEvent>() == 56);

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
            _pad: 0,
        })
    }
}
