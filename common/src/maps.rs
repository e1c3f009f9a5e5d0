//! Names and sizes of the pinned maps, shared so both sides agree.

/// Map names as they appear in the ELF and under the pin directory.
pub mod map_names {
    pub const CONFIG: &str = "CONFIG";
    pub const META: &str = "META";
    pub const PODS: &str = "PODS";
    pub const POD_IPS: &str = "POD_IPS";
    pub const CAPTURE: &str = "CAPTURE";
    pub const EXCLUDED_PORTS: &str = "EXCLUDED_PORTS";
    pub const PENDING: &str = "PENDING";
    pub const RECORDS: &str = "RECORDS";
    pub const RECORD_COUNT: &str = "RECORD_COUNT";
    pub const NAMES: &str = "NAMES";
    pub const COUNTERS: &str = "COUNTERS";
    pub const LISTENERS: &str = "LISTENERS";
    pub const CONNECT_EVENTS: &str = "CONNECT_EVENTS";
    /// The two lane-route tables (`DatapathConfig::lane_table` says which is live).
    pub const LANE_ROUTES: [&str; 2] = ["LANE_ROUTES_0", "LANE_ROUTES_1"];
    pub const KERNEL_CONNS: &str = "KERNEL_CONNS";
    /// Every pinned map.
    pub const ALL: [&str; 16] = [
        CONFIG,
        META,
        PODS,
        POD_IPS,
        CAPTURE,
        EXCLUDED_PORTS,
        PENDING,
        RECORDS,
        RECORD_COUNT,
        NAMES,
        COUNTERS,
        LISTENERS,
        CONNECT_EVENTS,
        LANE_ROUTES[0],
        LANE_ROUTES[1],
        KERNEL_CONNS,
    ];
}

/// Default capacities.
pub mod max_entries {
    /// Local pods (by cgroup).
    pub const PODS: u32 = 16_384;
    /// Every pod IP of the cluster (two per dual-stack pod); allocated on demand.
    pub const POD_IPS: u32 = 262_144;
    /// Service CIDRs and every pod IP.
    pub const CAPTURE: u32 = 262_144;
    pub const PENDING: u32 = 65_536;
    pub const RECORDS: u32 = 262_144;
    pub const NAMES: u32 = 131_072;
    /// (Service port, tag, tenant) routes per table; allocated on demand.
    pub const LANE_ROUTES: u32 = 16_384;
    /// Kernel-routed connections open at once; beyond it connects go to the proxy.
    pub const KERNEL_CONNS: u32 = 65_536;
}

/// 65 536 ports as a bitmap of `u32` words.
pub const EXCLUDED_PORT_WORDS: u32 = 65_536 / 32;

/// Slots of the `LISTENERS` sockmap: one per live proxy listener (an old and a new agent
/// overlap during a restart).
pub const LISTENER_SLOTS: u32 = 4;

/// How many cgroup ancestors the connect hooks walk looking for a pod cgroup.
pub const MAX_CGROUP_DEPTH: i32 = 16;

/// The single entry of the `META` array: what layout and programs wrote the pinned state.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    /// [`crate::LAYOUT_HASH`] of the agent that created the maps.
    pub layout_hash: u64,
    /// A hash of the eBPF object whose programs are attached.
    pub program_hash: u64,
    /// The cgroup (id) the pinned links are attached to.
    pub cgroup_id: u64,
    /// Pid of the agent that last adopted the state.
    pub agent_pid: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<Meta>() == 32);
