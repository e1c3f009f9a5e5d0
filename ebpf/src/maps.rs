//! Every map the programs use. All are pinned by name so they outlive the agent.

use core::cell::UnsafeCell;

use aya_ebpf::{
    bindings::{bpf_map_def, bpf_map_type::BPF_MAP_TYPE_SOCKMAP},
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use graylane_common::{
    Addr16, ConnectEvent, DatapathConfig, EXCLUDED_PORT_WORDS, FlowKey, KernelConn, LISTENER_SLOTS, LaneKey,
    LaneRoute, Meta, NameKey, NameValue, OrigDst, PodEntry, Reason, max_entries,
};

/// Runtime configuration, written by the agent (index 0).
#[map]
pub static CONFIG: Array<DatapathConfig> = Array::pinned(1, 0);

/// Which layout and programs wrote the pinned state (index 0). Only the agent reads it.
#[map]
pub static META: Array<Meta> = Array::pinned(1, 0);

/// Pod cgroup id → pod. Who is calling.
#[map]
pub static PODS: HashMap<u64, PodEntry> = HashMap::pinned(max_entries::PODS, 0);

/// Pod IP → pod, for every pod the agent knows (any node). Read by the agent and CLI.
#[map]
pub static POD_IPS: HashMap<Addr16, PodEntry> =
    HashMap::pinned(max_entries::POD_IPS, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Captured destinations: service CIDRs and pod IPs (v4 as mapped v6, prefix + 96).
/// The value is unused (1); presence means capture.
#[map]
pub static CAPTURE: LpmTrie<[u8; 16], u32> =
    LpmTrie::pinned(max_entries::CAPTURE, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Excluded destination ports as a bitmap: word `port / 32`, bit `port % 32`.
#[map]
pub static EXCLUDED_PORTS: Array<u32> = Array::pinned(EXCLUDED_PORT_WORDS, 0);

/// Socket cookie → what `connect*` saw, until `sock_ops` learns the 4-tuple.
#[map]
pub static PENDING: HashMap<u64, OrigDst> = HashMap::pinned(max_entries::PENDING, 0);

/// The connection's 4-tuple → original destination and source pod, until it closes.
#[map]
pub static RECORDS: HashMap<FlowKey, OrigDst> = HashMap::pinned(max_entries::RECORDS, 0);

/// Live entries of `RECORDS` (index 0), kept with atomic adds: the connect hooks read it to
/// fail open before the record table is full instead of capturing without a record.
#[map]
pub static RECORD_COUNT: Array<u64> = Array::pinned(1, 0);

/// Interned names (pods, tags, tenants). Only the agent reads and writes it.
#[map]
pub static NAMES: HashMap<NameKey, NameValue> = HashMap::pinned(max_entries::NAMES, 0);

/// Connects of managed pods that were not captured (opted out, excluded port, not a
/// captured destination, fail-open/closed, tables full), for the agent's flow table.
/// Full: the event is dropped and counted (`EventsDropped`).
#[map]
pub static CONNECT_EVENTS: RingBuf = RingBuf::pinned(256 * 1024, 0);

/// (Service port, caller's tag, caller's tenant) → the endpoints the planner would choose
/// among, or its refusal: connects the kernel routes itself. No entry: the proxy decides.
/// Two tables: the hooks read the one `CONFIG.lane_table` names while the agent writes the
/// other, so no entry is read while it is written (or freed and reused).
#[map]
pub static LANE_ROUTES_0: HashMap<LaneKey, LaneRoute> =
    HashMap::pinned(max_entries::LANE_ROUTES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);
#[map]
pub static LANE_ROUTES_1: HashMap<LaneKey, LaneRoute> =
    HashMap::pinned(max_entries::LANE_ROUTES, aya_ebpf::bindings::BPF_F_NO_PREALLOC);

/// Socket cookie → a connection the kernel routed, until it closes (`getpeername`, flows).
#[map]
pub static KERNEL_CONNS: HashMap<u64, KernelConn> = HashMap::pinned(max_entries::KERNEL_CONNS, 0);

/// One event being built per CPU (an event is too big for the programs' stack beside the
/// rest). Not pinned: each loaded object has its own.
#[map]
pub static EVENT_SCRATCH: PerCpuArray<ConnectEvent> = PerCpuArray::with_max_entries(1, 0);

/// One counter per [`Reason`].
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::pinned(Reason::COUNT, 0);

/// The proxy's listening sockets. The kernel drops a socket from a sockmap when it closes,
/// so an empty map means no proxy is alive (crash, kill -9, restart): fail open.
#[unsafe(link_section = "maps")]
#[unsafe(export_name = "LISTENERS")]
pub static LISTENERS: SockMapDef = SockMapDef(UnsafeCell::new(bpf_map_def {
    type_: BPF_MAP_TYPE_SOCKMAP,
    key_size: 4,
    value_size: 4,
    max_entries: LISTENER_SLOTS,
    map_flags: 0,
    id: 0,
    pinning: 1, // by name
}));

/// A sockmap definition we can look up from any program: aya-ebpf's `SockMap` only offers
/// redirects, and we need `bpf_map_lookup_elem` + `bpf_sk_release` to test liveness.
#[repr(transparent)]
pub struct SockMapDef(UnsafeCell<bpf_map_def>);

// SAFETY: the kernel owns the map; the definition is only read by the loader.
unsafe impl Sync for SockMapDef {}

impl SockMapDef {
    pub fn as_ptr(&self) -> *mut core::ffi::c_void {
        self.0.get().cast()
    }
}
