//! The routing table compiled for the kernel: for every Service port whose connections need
//! nothing from userspace, and every lane (tag, tenant) of this node's pods, the subset the
//! planner would choose (its endpoints) or the refusal it would answer. The connect hooks
//! route those connects themselves; everything else still goes through the proxy.

use std::collections::{BTreeMap, BTreeSet};

use graylane_common::{LANE_ENDPOINTS, lane_reason};

use super::{RouteError, RoutingTable, ServiceRoutes, table::Protocol};
use crate::{
    datapath::{KernelLane, KernelLaneKey},
    policy::AllHealthy,
    vocab::{Lane, SubsetReason},
};

/// `errno` of a connect refused by tenant isolation.
pub const EACCES: u32 = 13;
/// `errno` of a connect to a lane with nowhere to go (no endpoints, no fallback).
pub const ECONNREFUSED: u32 = 111;

/// A caller's lane as the kernel knows it: its pod's tag and tenant.
pub type CallerLane = (Option<String>, Option<String>);

/// Why a Service port (or one lane of it) stays with the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProxyNeeded {
    /// HTTP, gRPC, or a port whose protocol is detected from the first bytes.
    NotOpaque,
    /// Limits, breakers, retries or faults.
    Resilience,
    /// Ring hash or deterministic subsetting: the pick depends on the caller.
    Affinity,
    /// The lane's connection goes through the data store's codec.
    DataLane,
    /// More endpoints in the subset than a kernel route holds.
    TooManyEndpoints,
}

impl ProxyNeeded {
    pub const fn as_str(self) -> &'static str {
        match self {
            ProxyNeeded::NotOpaque => "not_opaque",
            ProxyNeeded::Resilience => "resilience",
            ProxyNeeded::Affinity => "affinity",
            ProxyNeeded::DataLane => "data_lane",
            ProxyNeeded::TooManyEndpoints => "too_many_endpoints",
        }
    }
}

impl ServiceRoutes {
    /// Whether this port's connections can be routed at connect(): `Err` says why not.
    pub fn kernel_routable(&self) -> Result<(), ProxyNeeded> {
        if self.protocol != Protocol::Opaque {
            return Err(ProxyNeeded::NotOpaque);
        }
        if self.plan.is_some() {
            return Err(ProxyNeeded::Resilience);
        }
        if self.by_caller() {
            return Err(ProxyNeeded::Affinity);
        }
        Ok(())
    }

    /// What the kernel does with a connect of `caller` to this port, exactly as
    /// [`crate::proxy::plan::plan`] plans an opaque connection: `Err` when the proxy must.
    pub fn kernel_lane(&self, caller: &CallerLane) -> Result<KernelLane, ProxyNeeded> {
        self.kernel_routable()?;
        let lane = caller_lane(caller);
        if self.data.as_ref().is_some_and(|rules| rules.needs_codec(lane.tag.as_deref())) {
            return Err(ProxyNeeded::DataLane);
        }
        let refuse = |reason, errno| Ok(KernelLane::Refuse { reason, errno });
        match self.endpoints.choose(&lane, None, &self.fallback, &AllHealthy) {
            Ok(chosen) => {
                let reason = match chosen.reason {
                    SubsetReason::Lane => lane_reason::LANE,
                    SubsetReason::Base => lane_reason::BASE,
                    SubsetReason::FallbackBase => lane_reason::FALLBACK_BASE,
                    SubsetReason::FallbackChain => lane_reason::FALLBACK_CHAIN,
                    // Neither happens without a route or breakers; the proxy would know.
                    SubsetReason::Route | SubsetReason::FallbackUnhealthy => {
                        return Err(ProxyNeeded::Resilience);
                    }
                };
                let endpoints: Vec<_> = chosen.endpoints().iter().map(|e| e.addr).collect();
                if endpoints.len() > LANE_ENDPOINTS {
                    return Err(ProxyNeeded::TooManyEndpoints);
                }
                Ok(KernelLane::Route { subset: chosen.name().to_string(), reason, endpoints })
            }
            Err(RouteError::TenantIsolation { .. }) => refuse(lane_reason::TENANT_ISOLATION, EACCES),
            Err(RouteError::SubsetUnavailable { .. }) => {
                refuse(lane_reason::SUBSET_UNAVAILABLE, ECONNREFUSED)
            }
            Err(RouteError::NoEndpoints { .. }) => refuse(lane_reason::NO_ENDPOINTS, ECONNREFUSED),
            Err(RouteError::CircuitOpen { .. }) => Err(ProxyNeeded::Resilience),
        }
    }
}

/// The lane of an opaque connection from a pod with this tag and tenant (its source pod's).
pub fn caller_lane((tag, tenant): &CallerLane) -> Lane {
    Lane::of_source_pod(tag.clone(), tenant.clone())
}

/// Every lane route the kernel holds for `callers` (the lanes of this node's pods), at most
/// the table's capacity (beyond it, and said so, the proxy routes the rest).
pub fn compile(table: &RoutingTable, callers: &BTreeSet<CallerLane>) -> BTreeMap<KernelLaneKey, KernelLane> {
    let cap = graylane_common::max_entries::LANE_ROUTES as usize;
    let mut out = BTreeMap::new();
    let mut services: Vec<_> = table.services.iter().collect();
    services.sort_by_key(|(addr, _)| **addr);
    for (addr, svc) in services {
        if svc.kernel_routable().is_err() {
            continue;
        }
        for caller in callers {
            if let Ok(lane) = svc.kernel_lane(caller) {
                if out.len() == cap {
                    tracing::warn!(
                        cap,
                        "more lane routes than the kernel's table holds: the rest go through the proxy"
                    );
                    return out;
                }
                let key = KernelLaneKey { service: *addr, tag: caller.0.clone(), tenant: caller.1.clone() };
                out.insert(key, lane);
            }
        }
    }
    out
}

/// The names of [`lane_reason`] values, as flows and metrics show them.
pub const fn lane_reason_name(reason: u32) -> &'static str {
    match reason {
        lane_reason::LANE => SubsetReason::Lane.as_str(),
        lane_reason::BASE => SubsetReason::Base.as_str(),
        lane_reason::FALLBACK_BASE => SubsetReason::FallbackBase.as_str(),
        lane_reason::FALLBACK_CHAIN => SubsetReason::FallbackChain.as_str(),
        lane_reason::TENANT_ISOLATION => "tenant_isolation",
        lane_reason::SUBSET_UNAVAILABLE => "subset_unavailable",
        lane_reason::NO_ENDPOINTS => "no_endpoints",
        _ => "unknown",
    }
}

/// The subset reason of a routed [`lane_reason`], for escapes.
pub const fn subset_reason(reason: u32) -> Option<SubsetReason> {
    match reason {
        lane_reason::LANE => Some(SubsetReason::Lane),
        lane_reason::BASE => Some(SubsetReason::Base),
        lane_reason::FALLBACK_BASE => Some(SubsetReason::FallbackBase),
        lane_reason::FALLBACK_CHAIN => Some(SubsetReason::FallbackChain),
        _ => None,
    }
}
