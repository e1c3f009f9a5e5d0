//! Endpoints grouped by tenant and by subset (the pods' tags), and the subset decision:
//! the request's lane, else the route's weighted destinations, else base; a lane with no
//! ready endpoints — or whose subset circuit breaker is open — follows the service's
//! fallback (base, fail fast, or a chain).

use std::{collections::HashMap, sync::Arc};

use rand::Rng as _;

use super::{
    balance::{Balancer, PickKey},
    endpoint::Endpoint,
    matcher::CompiledRoute,
};
use crate::{
    inventory::policy::{Fallback, FallbackMode, LoadBalancer, SubsetDef},
    policy::SubsetHealth,
    vocab::{Lane, SubsetReason},
};

/// The subset of untagged endpoints (or of every endpoint when none is untagged).
pub const BASE: &str = crate::inventory::policy::BASE_SUBSET;

/// The endpoints of subsets that are other Services, by subset name.
pub type Backends = HashMap<String, Vec<Arc<Endpoint>>>;

pub(super) struct Subset {
    pub(super) name: Arc<str>,
    pub(super) endpoints: Vec<Arc<Endpoint>>,
    balancer: Balancer,
}

/// One tenant's endpoints (or the untenanted ones), by subset name.
pub(super) struct Subsets {
    pub(super) by_name: HashMap<String, Subset>,
}

impl Subsets {
    fn build(
        endpoints: &[Arc<Endpoint>],
        lb: &LoadBalancer,
        defs: &[SubsetDef],
        backends: &Backends,
    ) -> Self {
        let mut groups: HashMap<String, Vec<Arc<Endpoint>>> = HashMap::new();
        for e in endpoints {
            let name = e.tag.clone().unwrap_or_else(|| BASE.to_owned());
            groups.entry(name).or_default().push(e.clone());
        }
        // Label subsets: every defined one exists (empty when no pod matches, so a lane or a
        // route naming it follows the fallback instead of base).
        for d in defs {
            let members = endpoints.iter().filter(|e| e.subsets.iter().any(|s| **s == *d.name));
            let group = groups.entry(d.name.clone()).or_default();
            for e in members {
                if !group.iter().any(|g| Arc::ptr_eq(g, e)) {
                    group.push(e.clone());
                }
            }
        }
        // Backend subsets: another Service's endpoints.
        for (name, eps) in backends {
            groups.entry(name.clone()).or_default().extend(eps.iter().cloned());
        }
        if !groups.contains_key(BASE) {
            groups.insert(BASE.to_owned(), endpoints.to_vec());
        }
        let by_name = groups
            .into_iter()
            .map(|(name, eps)| {
                let own = defs.iter().find(|d| d.name == name).and_then(|d| d.load_balancer.as_ref());
                let balancer = Balancer::new(own.unwrap_or(lb), &eps);
                let subset = Subset { name: name.as_str().into(), endpoints: eps, balancer };
                (name, subset)
            })
            .collect();
        Self { by_name }
    }

    fn get(&self, name: &str) -> Option<&Subset> {
        self.by_name.get(name).filter(|s| !s.endpoints.is_empty())
    }
}

/// A subset chosen for a request, before an endpoint of it is picked.
pub struct Chosen<'a> {
    pub(super) subset: &'a Subset,
    pub reason: SubsetReason,
    pub destination: Option<usize>,
}

impl Chosen<'_> {
    pub fn name(&self) -> &Arc<str> {
        &self.subset.name
    }

    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.subset.endpoints
    }
}

#[derive(Clone, Debug)]
pub struct Decision {
    pub subset: Arc<str>,
    pub endpoint: Arc<Endpoint>,
    pub reason: SubsetReason,
    /// The route's destination whose weight chose the subset, by index.
    pub destination: Option<usize>,
}

/// No endpoint may serve the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("service {service} has no ready endpoints")]
    NoEndpoints { service: String },
    #[error("service {service} has no ready endpoints in subset {subset} and falls back to none")]
    SubsetUnavailable { service: String, subset: String },
    #[error("service {service} has no endpoints for tenant {tenant}")]
    TenantIsolation { service: String, tenant: String },
    #[error("service {service}: the circuit breaker of subset {subset} is open and nothing may stand in")]
    CircuitOpen { service: String, subset: String },
}

/// A service port's endpoints, grouped by tenant then subset.
pub struct ServiceEndpoints {
    service: String,
    pub(super) by_tenant: HashMap<Option<String>, Subsets>,
}

impl ServiceEndpoints {
    /// `backends`: the endpoints of the subsets that are other Services ([`SubsetDef::backend`]).
    pub fn build(
        service: String,
        endpoints: &[Arc<Endpoint>],
        lb: &LoadBalancer,
        defs: &[SubsetDef],
        backends: &Backends,
    ) -> Self {
        let mut tenants: HashMap<Option<String>, (Vec<Arc<Endpoint>>, Backends)> = HashMap::new();
        for e in endpoints {
            tenants.entry(e.tenant.clone()).or_default().0.push(e.clone());
        }
        if tenants.is_empty() && !backends.is_empty() {
            tenants.insert(None, Default::default());
        }
        // A backend's endpoints join the tenants the service has: a backend never makes a
        // tenant group of its own (its callers would lose the service's shared endpoints).
        for (name, eps) in backends {
            for e in eps {
                if let Some((_, b)) = tenants.get_mut(&e.tenant) {
                    b.entry(name.clone()).or_default().push(e.clone());
                }
            }
        }
        let by_tenant =
            tenants.into_iter().map(|(t, (eps, b))| (t, Subsets::build(&eps, lb, defs, &b))).collect();
        Self { service, by_tenant }
    }

    /// Chooses the subset and the endpoint.
    pub fn decide(
        &self,
        lane: &Lane,
        route: Option<&CompiledRoute>,
        fallback: &Fallback,
        key: &PickKey<'_>,
        health: &dyn SubsetHealth,
    ) -> Result<Decision, RouteError> {
        let chosen = self.choose(lane, route, fallback, health)?;
        let subset = chosen.subset;
        let i = subset.balancer.pick(&subset.endpoints, key);
        Ok(Decision {
            subset: subset.name.clone(),
            endpoint: subset.endpoints[i].clone(),
            reason: chosen.reason,
            destination: chosen.destination,
        })
    }

    /// The subset a request goes to, and why: every endpoint of it is one
    /// [`ServiceEndpoints::decide`] may pick (the kernel's lane routes are compiled from it).
    pub fn choose(
        &self,
        lane: &Lane,
        route: Option<&CompiledRoute>,
        fallback: &Fallback,
        health: &dyn SubsetHealth,
    ) -> Result<Chosen<'_>, RouteError> {
        let group = self.group(lane)?;
        let routed = route.map(|r| r.destinations.as_slice()).unwrap_or_default();
        let up = |name: &str| group.get(name).is_some() && !health.open(name);
        let mut destination = None;
        let (mut name, mut reason): (&str, _) = match lane.tag.as_deref() {
            Some(tag) if group.get(tag).is_some() && health.admit(tag) => (tag, SubsetReason::Lane),
            Some(tag) if fallback.isolated.iter().any(|t| t == tag) => return Err(self.unavailable(tag)),
            Some(tag) => match fallback.mode {
                FallbackMode::Fail => return Err(self.unavailable(tag)),
                FallbackMode::Chain => {
                    let next = fallback.chain.iter().find(|s| up(s)).ok_or_else(|| self.unavailable(tag))?;
                    (next, SubsetReason::FallbackChain)
                }
                FallbackMode::Base => {
                    let reason = if group.get(tag).is_some() {
                        SubsetReason::FallbackUnhealthy
                    } else {
                        SubsetReason::FallbackBase
                    };
                    let drawn = weighted(routed, &up);
                    destination = drawn.map(|(_, i)| i);
                    (drawn.map_or(BASE, |(name, _)| name), reason)
                }
            },
            None => match weighted(routed, &up) {
                Some((s, i)) => {
                    destination = Some(i);
                    (s, SubsetReason::Route)
                }
                None if !routed.is_empty() => return Err(self.no_endpoints()),
                None => (BASE, SubsetReason::Base),
            },
        };
        // The lane's subset was admitted above; others pass their breaker here (base
        // stands in for an unhealthy one).
        if reason != SubsetReason::Lane && !health.admit(name) {
            if name == BASE || !health.admit(BASE) {
                return Err(RouteError::CircuitOpen {
                    service: self.service.clone(),
                    subset: name.to_owned(),
                });
            }
            (name, reason) = (BASE, SubsetReason::FallbackUnhealthy);
            destination = None;
        }
        let subset = group.get(name).ok_or_else(|| self.no_endpoints())?;
        Ok(Chosen { subset, reason, destination })
    }

    /// A tenant's own endpoints, else the untenanted (shared) ones; never another tenant's.
    fn group(&self, lane: &Lane) -> Result<&Subsets, RouteError> {
        match &lane.tenant {
            Some(t) => {
                self.by_tenant.get(&Some(t.clone())).or_else(|| self.by_tenant.get(&None)).ok_or_else(|| {
                    RouteError::TenantIsolation { service: self.service.clone(), tenant: t.clone() }
                })
            }
            None => self.by_tenant.get(&None).ok_or_else(|| {
                if self.by_tenant.is_empty() {
                    self.no_endpoints()
                } else {
                    RouteError::TenantIsolation { service: self.service.clone(), tenant: "(none)".into() }
                }
            }),
        }
    }

    fn unavailable(&self, subset: &str) -> RouteError {
        RouteError::SubsetUnavailable { service: self.service.clone(), subset: subset.to_owned() }
    }

    fn no_endpoints(&self) -> RouteError {
        RouteError::NoEndpoints { service: self.service.clone() }
    }
}

/// A subset drawn by weight among the route's destinations that are `up` (or whose
/// fallback subset is: a destination whose subset is down stands in with its fallback).
/// With the subset, the index of the destination drawn.
fn weighted<'a>(
    destinations: &'a [crate::inventory::policy::Destination],
    up: &dyn Fn(&str) -> bool,
) -> Option<(&'a str, usize)> {
    let serving = |d: &'a crate::inventory::policy::Destination| -> Option<&'a str> {
        if up(&d.subset) { Some(d.subset.as_str()) } else { d.fallback.as_deref().filter(|f| up(f)) }
    };
    let live: Vec<_> = destinations
        .iter()
        .enumerate()
        .filter(|(_, d)| d.weight > 0)
        .filter_map(|(i, d)| Some((serving(d)?, i, d.weight)))
        .collect();
    let total: u32 = live.iter().map(|(_, _, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut draw = rand::rng().random_range(0..total);
    for (name, i, weight) in live {
        if draw < weight {
            return Some((name, i));
        }
        draw -= weight;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    use crate::{policy::AllHealthy, vocab::TagSource};

    fn ep(i: u8, tag: Option<&str>, tenant: Option<&str>) -> Arc<Endpoint> {
        Arc::new(Endpoint::new(
            SocketAddr::from(([10, 0, 0, i], 80)),
            format!("p{i}"),
            tag.map(Into::into),
            tenant.map(Into::into),
        ))
    }

    fn lane(tag: Option<&str>, tenant: Option<&str>) -> Lane {
        Lane {
            tag: tag.map(Into::into),
            tag_source: TagSource::Header,
            tenant: tenant.map(Into::into),
            tenant_source: TagSource::Header,
        }
    }

    fn decide(
        svc: &ServiceEndpoints,
        l: &Lane,
        fallback: &Fallback,
    ) -> Result<(String, SubsetReason, String), RouteError> {
        let key = PickKey { hash: None, client: "c" };
        svc.decide(l, None, fallback, &key, &AllHealthy)
            .map(|d| (d.subset.to_string(), d.reason, d.endpoint.pod.to_string()))
    }

    #[test]
    fn a_backend_joins_the_services_tenants_and_never_makes_one() {
        let backends: Backends =
            [("other".to_owned(), vec![ep(7, None, Some("acme")), ep(8, None, None)])].into();
        let svc = ServiceEndpoints::build(
            "s".into(),
            &[ep(1, None, None)],
            &LoadBalancer::default(),
            &[],
            &backends,
        );
        assert_eq!(svc.by_tenant.keys().cloned().collect::<Vec<_>>(), [None]);
        let acme = lane(None, Some("acme"));
        assert_eq!(decide(&svc, &acme, &Fallback::default()).map(|d| d.2), Ok("p1".to_owned()));
    }

    #[test]
    fn lane_then_fallbacks() {
        let svc = ServiceEndpoints::build(
            "s".into(),
            &[ep(1, None, None), ep(2, Some("v2"), None)],
            &LoadBalancer::default(),
            &[],
            &Backends::new(),
        );
        assert_eq!(
            decide(&svc, &lane(Some("v2"), None), &Fallback::default()).expect("v2").1,
            SubsetReason::Lane
        );
        let (subset, reason, _) = decide(&svc, &lane(Some("v3"), None), &Fallback::default()).expect("base");
        assert_eq!((subset.as_str(), reason), ("base", SubsetReason::FallbackBase));
        assert_eq!(
            decide(
                &svc,
                &lane(Some("v3"), None),
                &Fallback { mode: FallbackMode::Fail, ..Fallback::default() }
            ),
            Err(RouteError::SubsetUnavailable { service: "s".into(), subset: "v3".into() })
        );
        let chain = Fallback {
            mode: FallbackMode::Chain,
            chain: vec!["v4".into(), "v2".into(), "base".into()],
            ..Fallback::default()
        };
        let (subset, reason, _) = decide(&svc, &lane(Some("v3"), None), &chain).expect("chain");
        assert_eq!((subset.as_str(), reason), ("v2", SubsetReason::FallbackChain));
        assert_eq!(decide(&svc, &lane(None, None), &Fallback::default()).expect("base").2, "p1");
        // Stress traffic never falls back to production.
        assert!(matches!(
            decide(&svc, &lane(Some("stress"), None), &Fallback::default()),
            Err(RouteError::SubsetUnavailable { .. })
        ));
    }

    #[test]
    fn tenants_never_reach_another_tenants_endpoints() {
        let svc = ServiceEndpoints::build(
            "s".into(),
            &[ep(1, None, Some("acme")), ep(2, None, Some("globex")), ep(3, None, None)],
            &LoadBalancer::default(),
            &[],
            &Backends::new(),
        );
        for _ in 0..20 {
            assert_eq!(decide(&svc, &lane(None, Some("acme")), &Fallback::default()).expect("acme").2, "p1");
            assert_eq!(decide(&svc, &lane(None, None), &Fallback::default()).expect("shared").2, "p3");
            // A tenant without endpoints of its own gets the shared ones.
            assert_eq!(
                decide(&svc, &lane(None, Some("initech")), &Fallback::default()).expect("shared").2,
                "p3"
            );
        }
        let only_acme = ServiceEndpoints::build(
            "s".into(),
            &[ep(1, None, Some("acme"))],
            &LoadBalancer::default(),
            &[],
            &Backends::new(),
        );
        assert!(matches!(
            decide(&only_acme, &lane(None, Some("globex")), &Fallback::default()),
            Err(RouteError::TenantIsolation { .. })
        ));
        assert!(matches!(
            decide(&only_acme, &lane(None, None), &Fallback::default()),
            Err(RouteError::TenantIsolation { .. })
        ));
    }
}

#[cfg(test)]
mod fallback_tests {
    use super::*;
    use crate::inventory::policy::Destination;

    #[test]
    fn a_destination_whose_subset_is_down_stands_in_with_its_fallback() {
        let up = |name: &str| name == "v1";
        let to = |subset: &str, fallback: Option<&str>| Destination {
            subset: subset.into(),
            weight: 100,
            fallback: fallback.map(Into::into),
            ..Default::default()
        };
        assert_eq!(weighted(&[to("v2", Some("v1"))], &up), Some(("v1", 0)));
        assert_eq!(weighted(&[to("v2", None)], &up), None);
        assert_eq!(weighted(&[to("v2", Some("v3"))], &up), None);
        assert_eq!(weighted(&[to("v1", Some("v3"))], &up), Some(("v1", 0)));
    }
}
