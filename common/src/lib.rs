//! Types shared by the eBPF programs (`ebpf/`) and the agent (`agent/src/datapath/`).
//!
//! Every type here is `#[repr(C)]`, `Copy`, has explicit padding and no `bool`, and its
//! size is asserted at compile time, so both sides of the kernel boundary agree on layout.
//! Changing any of them changes [`LAYOUT_HASH`], which makes a new agent replace (never
//! reuse) pinned maps written by an older one.
#![no_std]

mod addr;
mod config;
mod event;
mod lane_route;
mod maps;
mod names;
mod pod;
mod reason;
mod record;

pub use addr::Addr16;
pub use config::{DatapathConfig, config_flags};
pub use event::ConnectEvent;
pub use lane_route::{
    Backend, KernelConn, LANE_ENDPOINTS, LaneKey, LaneRoute, kernel_conn_flags, lane_reason, lane_verdict,
};
pub use maps::{EXCLUDED_PORT_WORDS, LISTENER_SLOTS, MAX_CGROUP_DEPTH, Meta, map_names, max_entries};
pub use names::{NAME_BYTES, NameKey, NameKind, NameValue};
pub use pod::{PodEntry, pod_flags};
pub use reason::Reason;
pub use record::{FlowKey, OrigDst};

/// Default port of the node proxy's outbound capture listener (Istio's habit).
pub const PROXY_PORT: u16 = 15001;

/// A hash of every shared layout. Bump [`LAYOUT_VERSION`] on any semantic change that the
/// sizes below would not reveal.
pub const LAYOUT_VERSION: u64 = 3;

/// FNV-1a over the layout version and the size of every shared type.
pub const LAYOUT_HASH: u64 = {
    let sizes: [u64; 14] = [
        LAYOUT_VERSION,
        size_of::<Addr16>() as u64,
        size_of::<FlowKey>() as u64,
        size_of::<OrigDst>() as u64,
        size_of::<PodEntry>() as u64,
        size_of::<DatapathConfig>() as u64,
        size_of::<NameKey>() as u64,
        size_of::<NameValue>() as u64,
        Reason::COUNT as u64,
        size_of::<Meta>() as u64,
        size_of::<ConnectEvent>() as u64,
        size_of::<LaneKey>() as u64,
        size_of::<LaneRoute>() as u64,
        size_of::<KernelConn>() as u64,
    ];
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < sizes.len() {
        hash ^= sizes[i];
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
};

#[cfg(feature = "user")]
mod user {
    //! `aya::Pod` lets the agent read and write these types in maps.
    use super::*;
    // SAFETY: all types are repr(C), Copy, with explicit padding and no invalid bit patterns.
    unsafe impl aya::Pod for Addr16 {}
    unsafe impl aya::Pod for FlowKey {}
    unsafe impl aya::Pod for OrigDst {}
    unsafe impl aya::Pod for PodEntry {}
    unsafe impl aya::Pod for DatapathConfig {}
    unsafe impl aya::Pod for NameKey {}
    unsafe impl aya::Pod for NameValue {}
    unsafe impl aya::Pod for Meta {}
    unsafe impl aya::Pod for LaneKey {}
    unsafe impl aya::Pod for LaneRoute {}
    unsafe impl aya::Pod for KernelConn {}
}
