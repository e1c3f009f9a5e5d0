//! `/routes`: the effective routing of every service port, as the proxy will apply it —
//! routes in match order, fallback, resilience scope, and endpoints by tenant and subset
//! with their load and breaker state.

use std::net::SocketAddr;

use serde::Serialize;

use super::{Protocol, RoutingTable, ServiceRoutes};
use crate::inventory::policy::{Destination, Fallback};

#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub service: String,
    pub address: SocketAddr,
    pub protocol: Protocol,
    /// The policy scope of the service's resilience settings, if any.
    pub policy: Option<String>,
    /// The objects the routing comes from (a TrafficPolicy, or translated rules).
    pub rules_from: Option<String>,
    pub fallback: Fallback,
    pub routes: Vec<RouteView>,
    pub subsets: Vec<SubsetView>,
    /// A data store's lanes: `lane`, `protocol`, the mapping, `on_unsupported`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub data_lanes: Vec<DataLaneView>,
}

#[derive(Debug, Serialize)]
pub struct DataLaneView {
    pub lane: String,
    pub protocol: &'static str,
    pub mapping: String,
    pub on_unsupported: crate::inventory::data_lanes::OnUnsupported,
}

#[derive(Debug, Serialize)]
pub struct RouteView {
    pub name: String,
    #[serde(rename = "match")]
    pub matches: serde_json::Value,
    pub destinations: Vec<Destination>,
    pub policy: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SubsetView {
    /// `None`: endpoints shared by every tenant.
    pub tenant: Option<String>,
    pub subset: String,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub pod: String,
    pub address: SocketAddr,
    pub in_flight: usize,
    /// Ejected by its circuit breaker right now.
    pub ejected: bool,
}

impl RoutingTable {
    /// Every service port (or those of `service`: `name` or `namespace/name`), sorted.
    pub fn describe(&self, service: Option<&str>) -> Vec<ServiceView> {
        let mut out: Vec<ServiceView> = self
            .services
            .iter()
            .filter(|(_, s)| {
                service.is_none_or(|w| *s.name == *w || s.name.rsplit_once('/').is_some_and(|(_, n)| n == w))
            })
            .map(|(addr, s)| view(*addr, s))
            .collect();
        out.sort_by(|a, b| (&a.service, a.address).cmp(&(&b.service, b.address)));
        out
    }
}

fn view(address: SocketAddr, s: &ServiceRoutes) -> ServiceView {
    let routes = s
        .routes
        .iter()
        .map(|r| RouteView {
            name: r.name.to_string(),
            matches: r.written.clone(),
            destinations: r.destinations.clone(),
            policy: r.plan.as_ref().map(|p| p.scope.to_string()),
        })
        .collect();
    let mut subsets: Vec<SubsetView> = s
        .endpoints
        .by_tenant
        .iter()
        .flat_map(|(tenant, group)| {
            group.by_name.values().map(move |sub| SubsetView {
                tenant: tenant.clone(),
                subset: sub.name.to_string(),
                endpoints: sub
                    .endpoints
                    .iter()
                    .map(|e| EndpointView {
                        pod: e.pod.to_string(),
                        address: e.addr,
                        in_flight: e.in_flight(),
                        ejected: s.plan.as_ref().is_some_and(|p| p.ejected(e.addr)),
                    })
                    .collect(),
            })
        })
        .collect();
    subsets.sort_by(|a, b| (&a.tenant, &a.subset).cmp(&(&b.tenant, &b.subset)));
    ServiceView {
        service: s.name.to_string(),
        address,
        protocol: s.protocol,
        policy: s.plan.as_ref().map(|p| p.scope.to_string()),
        rules_from: s.source.as_ref().map(|n| n.to_string()),
        fallback: s.fallback.clone(),
        routes,
        subsets,
        data_lanes: s
            .data
            .iter()
            .flat_map(|d| d.lanes())
            .map(|l| DataLaneView {
                lane: l.lane.to_string(),
                protocol: l.protocol.as_str(),
                mapping: l.describe.to_string(),
                on_unsupported: l.on_unsupported,
            })
            .collect(),
    }
}
