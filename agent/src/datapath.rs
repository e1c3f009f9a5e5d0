//! The kernel side as the agent sees it: load, attach, pin and adopt the eBPF programs,
//! typed map handles, and the sync of inventory snapshots into kernel maps.

mod bpffs;
mod cgroup;
mod error;
mod events;
mod health;
mod hooks;
mod install;
mod layout;
mod listeners;
mod maps;
mod names;
mod owner;
mod records;
mod state;
mod status;
mod sync;
mod uninstall;

pub use bpffs::PinPaths;
pub use cgroup::{CgroupRoot, cgroup_id};
pub use error::DatapathError;
pub use events::{ConnectEvents, KernelConnect};
pub use health::{DatapathHealth, check as check_health};
pub use hooks::Hook;
pub use install::{Datapath, DatapathConfig};
pub use listeners::{ListenerSocket, Listeners, STANDBY_SLOTS};
pub use maps::Counters;
pub use names::Names;
pub use owner::{Holder, PinOwner};
pub use records::socket_addr;
pub use records::{OrigDstRecord, Records};
pub use state::{KernelLane, KernelLaneKey, KernelPod, KernelState, ProxyTarget};
pub use status::{DatapathStatus, LinkStatus, MapStatus};
pub use sync::{MapSync, SyncStats, lane_key, lane_route};
pub use uninstall::uninstall;

/// The compiled eBPF object, built once by `build.rs`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/graylane"));

/// FNV-1a of the eBPF object: tells a new agent whether the attached programs are its own.
pub fn program_hash() -> u64 {
    EBPF_OBJECT
        .iter()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}
