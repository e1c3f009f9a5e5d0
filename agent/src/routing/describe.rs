//! `/routes`: the effective routing of every service port, as the proxy will apply it —
//! routes in match order, fallback, resilience scope, and endpoints by tenant and subset
//! with their load and breaker state.

use std::net::SocketAddr;

use serde::Serialize;

use super::{Protocol, RoutingTable, ServiceRoutes, data::DataLaneRule};
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
    /// The store account its connections log in as (`Secret ns/name, user u`), or why it
    /// has none usable.
    pub account: Option<String>,
    /// `store-enforced`, `rewrite-only` or `checking`.
    pub enforcement: &'static str,
    /// Why it is not store-enforced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement_detail: Option<String>,
    /// Its connections are served now (an isolated lane waits for a store-enforced
    /// account unless it allows rewrite-only).
    pub served: bool,
}

/// How the caller knows a lane's standing: (service, lane, the service port's endpoints) →
/// (`store-enforced`/`rewrite-only`/`checking`, why not enforced).
pub type Standing<'a> = &'a dyn Fn(&str, &DataLaneRule, &[SocketAddr]) -> (&'static str, Option<String>);

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
        self.describe_with(service, &|_, rule, _| match &rule.account {
            Some(Ok(_)) => ("checking", None),
            Some(Err(why)) => ("rewrite-only", Some(why.clone())),
            None => ("rewrite-only", Some("the lane names no store account".into())),
        })
    }

    /// As [`RoutingTable::describe`], with each data lane's standing from `standing`.
    pub fn describe_with(&self, service: Option<&str>, standing: Standing<'_>) -> Vec<ServiceView> {
        let mut out: Vec<ServiceView> = self
            .services
            .iter()
            .filter(|(_, s)| {
                service.is_none_or(|w| *s.name == *w || s.name.rsplit_once('/').is_some_and(|(_, n)| n == w))
            })
            .map(|(addr, s)| view(*addr, s, standing))
            .collect();
        out.sort_by(|a, b| (&a.service, a.address).cmp(&(&b.service, b.address)));
        out
    }
}

fn view(address: SocketAddr, s: &ServiceRoutes, standing: Standing<'_>) -> ServiceView {
    let endpoints = s.endpoint_addrs();
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
            .map(|l| {
                let (enforcement, detail) = standing(&s.name, l, &endpoints);
                DataLaneView {
                    lane: l.lane.to_string(),
                    protocol: l.protocol.as_str(),
                    mapping: l.describe.to_string(),
                    on_unsupported: l.on_unsupported,
                    account: l.account.as_ref().map(|a| match a {
                        Ok(c) => format!("Secret {}, user {}", c.secret, c.username),
                        Err(why) => why.clone(),
                    }),
                    enforcement,
                    enforcement_detail: detail,
                    served: !l.require_store || enforcement == "store-enforced",
                }
            })
            .collect(),
    }
}
