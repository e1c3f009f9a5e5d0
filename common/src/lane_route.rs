//! Lanes the kernel routes at `connect()`: for a Service port and the calling pod's tag and
//! tenant, the endpoints the proxy's planner would choose among, or the refusal it would
//! answer. Written by the agent (`LANE_ROUTES`), read by `connect4`/`connect6`; a missing
//! entry means "the proxy decides".

use crate::Addr16;

/// Endpoints one lane route holds at most; a subset with more goes through the proxy.
pub const LANE_ENDPOINTS: usize = 32;

/// Key of `LANE_ROUTES`: the Service address the pod dialled and who is calling.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LaneKey {
    /// The Service's cluster IP (v4 as mapped v6).
    pub service: Addr16,
    /// The Service port, host byte order.
    pub port: u16,
    pub _pad0: u16,
    /// The caller's interned tag and tenant (0 = none), as in its [`crate::PodEntry`].
    pub tag_id: u32,
    pub tenant_id: u32,
    pub _pad1: u32,
}

const _: () = assert!(size_of::<LaneKey>() == 32);

/// One endpoint: a pod address and its target port.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub addr: Addr16,
    /// Host byte order.
    pub port: u16,
    pub _pad: u16,
}

const _: () = assert!(size_of::<Backend>() == 20);

/// Value of `LANE_ROUTES`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneRoute {
    /// [`lane_verdict`].
    pub verdict: u32,
    /// The errno a refused connect gets.
    pub errno: u32,
    /// Why (a [`lane_reason`] value): the subset's reason, or the refusal's.
    pub reason: u32,
    /// The interned subset name (0 for a refusal).
    pub subset_id: u32,
    /// Endpoints used at the front of `endpoints`.
    pub count: u32,
    pub _pad: u32,
    pub endpoints: [Backend; LANE_ENDPOINTS],
}

const _: () = assert!(size_of::<LaneRoute>() == 24 + 20 * LANE_ENDPOINTS);
const _: () = assert!(LANE_ENDPOINTS.is_power_of_two());

impl Default for LaneRoute {
    fn default() -> Self {
        Self {
            verdict: lane_verdict::ROUTE,
            errno: 0,
            reason: 0,
            subset_id: 0,
            count: 0,
            _pad: 0,
            endpoints: [Backend::default(); LANE_ENDPOINTS],
        }
    }
}

impl LaneRoute {
    /// The endpoint a connect goes to, from a random draw: `None` for a refusal or an empty
    /// route. The kernel runs exactly this; the agent's tests run it against the planner.
    #[inline(always)]
    pub fn pick(&self, random: u32) -> Option<Backend> {
        let count = self.count;
        if self.verdict != lane_verdict::ROUTE || count == 0 || count as usize > LANE_ENDPOINTS {
            return None;
        }
        let drawn = (random % count) as usize;
        // The eBPF verifier forgets a remainder's bound: read it back opaquely and mask it, so
        // the index it checks is provably within the array (a no-op: `drawn < count <= 32`).
        // SAFETY: a read of a local.
        let index = unsafe { core::ptr::read_volatile(&drawn) } & (LANE_ENDPOINTS - 1);
        self.endpoints.get(index).copied()
    }
}

/// Values of [`LaneRoute::verdict`].
pub mod lane_verdict {
    /// Connect to one of the endpoints.
    pub const ROUTE: u32 = 0;
    /// Refuse the connect with [`super::LaneRoute::errno`].
    pub const REFUSE: u32 = 1;
}

/// Values of [`LaneRoute::reason`] (and of kernel-routed connect events).
pub mod lane_reason {
    /// The caller's tag named the subset.
    pub const LANE: u32 = 1;
    /// An untagged caller: base.
    pub const BASE: u32 = 2;
    /// The lane's subset had no ready endpoint: base.
    pub const FALLBACK_BASE: u32 = 3;
    /// The lane's subset had no ready endpoint: the next in the fallback chain.
    pub const FALLBACK_CHAIN: u32 = 4;
    /// Refused: no endpoint belongs to the caller's tenant or is shared.
    pub const TENANT_ISOLATION: u32 = 5;
    /// Refused: the lane's subset is empty and the lane may not fall back.
    pub const SUBSET_UNAVAILABLE: u32 = 6;
    /// Refused: the Service has no ready endpoints.
    pub const NO_ENDPOINTS: u32 = 7;
}

/// A connection the kernel routed, by socket cookie, until it closes: what the pod dialled
/// (for `getpeername`) and where it went (for the close event).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelConn {
    /// The Service address and port the pod dialled, and who it is.
    pub orig: crate::OrigDst,
    pub endpoint: Backend,
    /// [`lane_reason`].
    pub reason: u32,
    pub subset_id: u32,
    /// [`kernel_conn_flags`].
    pub flags: u32,
    pub _pad: u32,
}

const _: () = assert!(size_of::<KernelConn>() == 88);

/// Bits of [`KernelConn::flags`].
pub mod kernel_conn_flags {
    /// `sock_ops` saw the SYN leave: its close callback reports the connection.
    pub const SEEN: u32 = 1 << 0;
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    fn picks_only_among_the_routes_endpoints() {
        let mut r = LaneRoute::default();
        assert_eq!(r.pick(7), None, "empty");
        r.count = 3;
        for (i, e) in r.endpoints.iter_mut().take(3).enumerate() {
            e.port = 100 + i as u16;
        }
        let seen: std::collections::BTreeSet<u16> =
            (0..50).filter_map(|n| r.pick(n)).map(|b| b.port).collect();
        assert_eq!(seen, [100, 101, 102].into());
        r.verdict = lane_verdict::REFUSE;
        assert_eq!(r.pick(1), None);
        r.verdict = lane_verdict::ROUTE;
        r.count = LANE_ENDPOINTS as u32 + 1;
        assert_eq!(r.pick(1), None, "a corrupt count picks nothing");
    }
}
