//! The compiled table: every service port by cluster IP, with its protocol, routes,
//! fallback, and endpoints grouped for the subset decision; plus the coloring rules.

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use http::HeaderMap;
use xxhash_rust::xxh3::xxh3_64;

use super::{
    CompiledRoute, CompiledRule, RequestView,
    balance::PickKey,
    data::DataRules,
    endpoint::Endpoint,
    rules::cookie,
    subset::{BASE, Backends, Decision, RouteError, ServiceEndpoints},
};
use crate::inventory::{
    ServicePort, Snapshot,
    policy::{Fallback, HashOn, TrafficPolicySpec, admits},
    resilience::Resilience,
};
use crate::policy::{Plan, Registry};
use crate::{
    policy::{AllHealthy, SubsetHealth},
    vocab::Lane,
};

/// An endpoint as the inventory gives it: its pod and address.
type PodAddr = (Arc<crate::inventory::Pod>, SocketAddr);

/// What a service port speaks, from its `appProtocol` or name; `Detect` peeks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    Detect,
    Http1,
    Http2,
    Opaque,
}

impl Protocol {
    /// Kubernetes conventions: `appProtocol`, else the port name's prefix (`http-web`).
    pub fn of_port(port: &ServicePort) -> Self {
        let hint =
            port.app_protocol.as_deref().or(port.name.as_deref()).map(|h| {
                h.rsplit('/').next().unwrap_or(h).split('-').next().unwrap_or(h).to_ascii_lowercase()
            });
        match hint.as_deref() {
            Some("http") => Protocol::Http1,
            Some("http2" | "h2c" | "grpc") => Protocol::Http2,
            Some(
                "tcp" | "mysql" | "mariadb" | "nats" | "mongo" | "redis" | "postgres" | "postgresql" | "amqp"
                | "kafka" | "smtp",
            ) => Protocol::Opaque,
            _ => Protocol::Detect,
        }
    }
}

pub struct ServiceRoutes {
    /// `namespace/name`.
    pub name: Arc<str>,
    /// The service port.
    port: u16,
    pub protocol: Protocol,
    pub(super) routes: Vec<CompiledRoute>,
    /// Who each run of `routes` is for.
    views: Views,
    /// The service's own endpoints' addresses, sorted.
    own: Vec<SocketAddr>,
    pub(super) fallback: Fallback,
    hash_on: Option<HashOn>,
    pub(super) endpoints: ServiceEndpoints,
    /// The service's resilience plan (routes may replace it).
    pub plan: Option<Arc<Plan>>,
    /// The policy the routes come from (for a translated one: its objects, e.g.
    /// `VirtualService default/reviews + DestinationRule default/reviews`).
    pub source: Option<Arc<str>>,
    /// A data store's lanes (`dataLanes`): the protocol spoken and each lane's mapping.
    pub data: Option<Arc<DataRules>>,
    /// The pick depends on the caller (ring hash, deterministic subsetting).
    by_caller: bool,
}

/// A run of a service port's routes and the callers it is for ([`RouteView`], compiled).
#[derive(Clone)]
struct View {
    audience: Option<Vec<String>>,
    origin: String,
    routes: std::ops::Range<usize>,
    closed: bool,
    source: Arc<str>,
}

/// The views of a service port, and which one each caller takes, decided once.
#[derive(Clone, Default)]
struct Views {
    list: Vec<View>,
    /// The view a caller in each namespace some view names takes.
    by_namespace: HashMap<String, Option<usize>>,
    /// The view every other caller (another namespace, or no known pod) takes.
    other: Option<usize>,
}

impl Views {
    /// A caller takes the first view that admits it, written in its own namespace, else in
    /// the service's (`home`), else elsewhere.
    fn new(list: Vec<View>, home: &str) -> Self {
        let choose = |ns: Option<&str>| {
            let class = |v: &View| {
                if Some(v.origin.as_str()) == ns {
                    0
                } else if v.origin == home {
                    1
                } else {
                    2
                }
            };
            list.iter()
                .enumerate()
                .filter(|(_, v)| admits(v.audience.as_deref(), ns))
                .min_by_key(|(_, v)| class(v))
                .map(|(i, _)| i)
        };
        let named: std::collections::BTreeSet<&str> = list
            .iter()
            .flat_map(|v| {
                std::iter::once(v.origin.as_str()).chain(v.audience.iter().flatten().map(String::as_str))
            })
            .collect();
        let by_namespace = named.into_iter().map(|n| (n.to_owned(), choose(Some(n)))).collect();
        let other = choose(None);
        Self { list, by_namespace, other }
    }
}

/// A closed view had no route for the request: the rules it came from (answered 404).
#[derive(Debug)]
pub struct NoRoute(pub Arc<str>);

impl ServiceRoutes {
    /// The first route that matches a request from `caller` (its namespace and labels;
    /// `None`: not a known pod), with its index, among the routes of the view the caller
    /// takes: the first that admits it, written in its own namespace, else in the service's,
    /// else elsewhere. `Ok(None)`: the service without a route.
    pub fn route(
        &self,
        req: &RequestView<'_>,
        caller: Option<(&str, &std::collections::BTreeMap<String, String>)>,
    ) -> Result<Option<(usize, &CompiledRoute)>, NoRoute> {
        let chosen = match caller {
            Some((ns, _)) => self.views.by_namespace.get(ns).copied().unwrap_or(self.views.other),
            None => self.views.other,
        };
        let Some(view) = chosen.and_then(|i| self.views.list.get(i)) else {
            return Ok(None);
        };
        let labels = caller.map(|(_, l)| l);
        let found = self.routes[view.routes.clone()]
            .iter()
            .enumerate()
            .find(|(_, r)| r.admits_port(self.port) && r.matches(req) && r.admits_source(labels))
            .map(|(i, r)| (view.routes.start + i, r));
        match found {
            None if view.closed => Err(NoRoute(view.source.clone())),
            found => Ok(found),
        }
    }

    /// The route at `index` (from [`ServiceRoutes::route`]).
    pub fn route_at(&self, index: usize) -> Option<&CompiledRoute> {
        self.routes.get(index)
    }

    /// The service's own endpoints' addresses (every tenant and subset; never a backend
    /// Service's), once each.
    pub fn endpoint_addrs(&self) -> Vec<SocketAddr> {
        self.own.clone()
    }

    /// Whether the endpoint picked depends on who calls (ring hash, subsetting).
    pub fn by_caller(&self) -> bool {
        self.by_caller
    }

    /// Subset and endpoint for a request; `plan`'s subset breakers steer lanes away from
    /// open subsets.
    pub fn decide(
        &self,
        lane: &Lane,
        route: Option<&CompiledRoute>,
        key: &PickKey<'_>,
        plan: Option<&Plan>,
    ) -> Result<Decision, RouteError> {
        let health: &dyn SubsetHealth = match plan {
            Some(p) => p,
            None => &AllHealthy,
        };
        self.endpoints.decide(lane, route, &self.fallback, key, health)
    }

    /// The ring-hash key of a request, if the policy hashes and the request has it.
    pub fn hash(&self, headers: Option<&HeaderMap>, client: SocketAddr) -> Option<u64> {
        let on = self.hash_on.as_ref()?;
        if on.source_ip == Some(true) {
            return Some(xxh3_64(client.ip().to_string().as_bytes()));
        }
        let headers = headers?;
        let value = match (&on.header, &on.cookie) {
            (Some(h), _) => headers.get(h.as_str()).and_then(|v| v.to_str().ok()),
            (_, Some(c)) => cookie(headers, c),
            _ => None,
        };
        value.map(|v| xxh3_64(v.as_bytes()))
    }
}

#[derive(Default)]
pub struct RoutingTable {
    pub(super) services: HashMap<SocketAddr, Arc<ServiceRoutes>>,
    /// Data stores by their endpoints' addresses (pod IP and target port): a lane that
    /// dials a store's pod directly keeps its data lane.
    data_endpoints: HashMap<SocketAddr, Arc<ServiceRoutes>>,
    pub rules: Vec<CompiledRule>,
}

impl RoutingTable {
    pub fn build(snapshot: &Snapshot, registry: &Registry) -> Self {
        let mut services = HashMap::new();
        let mut data_endpoints = HashMap::new();
        for svc in &snapshot.services {
            let policy = policy_for(snapshot, &svc.namespace, &svc.name);
            let name: Arc<str> = format!("{}/{}", svc.namespace, svc.name).into();
            // Endpoints per (cluster IP, port), resolved once; breakers are per endpoint, so
            // plans get every endpoint of the service.
            let ports: Vec<_> = svc
                .cluster_ips
                .iter()
                .flat_map(|ip| svc.ports.iter().map(move |p| (*ip, p)))
                .map(|(ip, p)| (ip, p, snapshot.endpoints(svc, p, ip.is_ipv6())))
                .collect();
            let defs = policy.map(|(_, p)| p.subsets.as_slice()).unwrap_or_default();
            // Subsets that are other Services (Gateway API backends): their endpoints, per
            // address family.
            let backends = |v6: bool| -> Vec<(String, Vec<PodAddr>)> {
                defs.iter()
                    .filter_map(|d| {
                        let b = d.backend.as_ref()?;
                        let bsvc = snapshot
                            .services
                            .iter()
                            .find(|s| s.namespace == b.namespace && s.name == b.name)?;
                        let bport = bsvc.ports.iter().find(|p| p.port == b.port)?;
                        Some((d.name.clone(), snapshot.endpoints(bsvc, bport, v6)))
                    })
                    .collect()
            };
            // A data store's endpoints are its own: a backend never joins them (nor gets the
            // store's accounts asked of it).
            let backend_eps = match policy.is_some_and(|(_, p)| p.data_lanes.is_some()) {
                true => [Vec::new(), Vec::new()],
                false => [backends(false), backends(true)],
            };
            // The service's breakers count its own endpoints; routes', backends' too.
            let mut own_addrs: Vec<SocketAddr> =
                ports.iter().flat_map(|(_, _, eps)| eps.iter().map(|(_, a)| *a)).collect();
            own_addrs.sort_unstable();
            own_addrs.dedup();
            let mut addrs: Vec<SocketAddr> = own_addrs
                .iter()
                .copied()
                .chain(backend_eps.iter().flatten().flat_map(|(_, eps)| eps.iter().map(|(_, a)| *a)))
                .collect();
            addrs.sort_unstable();
            addrs.dedup();
            // The namespace each written route comes from (its view's origin).
            let written_views = policy.map(|(_, p)| p.views.as_slice()).unwrap_or_default();
            let origin_of = |i: usize| {
                written_views
                    .iter()
                    .find(|v| (v.first..v.first + v.len).contains(&i))
                    .map(|v| v.origin.as_str())
            };
            let service_resilience = policy.map(|(_, p)| p.resilience.clone()).unwrap_or_default();
            let mut subsets: Vec<String> = ports
                .iter()
                .flat_map(|(_, _, eps)| {
                    eps.iter().map(|(pod, _)| pod.tag.clone().unwrap_or_else(|| BASE.into()))
                })
                .chain([BASE.to_owned()])
                .chain(policy.iter().flat_map(|(_, p)| p.subsets.iter().map(|d| d.name.clone())))
                .collect();
            subsets.sort_unstable();
            subsets.dedup();
            // Each route compiled, or `None` (skipped, said once here): views keep their places.
            let compiled: Vec<Option<CompiledRoute>> = policy
                .map(|(_, p)| {
                    p.routes
                        .iter()
                        .enumerate()
                        .map(|(i, r)| {
                            let route = r.name.clone().unwrap_or_else(|| format!("route-{i}"));
                            // A route from another namespace: its own budgets and limiters,
                            // beneath the service's settings.
                            let plan = match origin_of(i).filter(|o| *o != svc.namespace) {
                                Some(origin) => {
                                    let scope = format!("{name}/{origin}/{route}");
                                    let resilience = Resilience::under(&service_resilience, &r.resilience);
                                    Plan::compile(&scope, &resilience, registry, &addrs, &subsets)
                                }
                                None => {
                                    let scope = format!("{name}/{route}");
                                    Plan::compile(&scope, &r.resilience, registry, &addrs, &subsets)
                                }
                            };
                            CompiledRoute::compile(r, i, plan)
                                .map_err(|e| tracing::error!(service = %name, error = %e, "route skipped"))
                                .ok()
                        })
                        .collect()
                })
                .unwrap_or_default();
            // Where the routes before each written one went among the compiled.
            let before: Vec<usize> = std::iter::once(0)
                .chain(compiled.iter().scan(0, |n, r| {
                    *n += usize::from(r.is_some());
                    Some(*n)
                }))
                .collect();
            let routes: Vec<CompiledRoute> = compiled.into_iter().flatten().collect();
            let source: Option<Arc<str>> = policy.map(|(n, _)| Arc::from(n));
            let views_of = |port: u16| -> Vec<View> {
                let written = policy.map(|(_, p)| p.views.as_slice()).unwrap_or_default();
                if written.is_empty() {
                    let source = source.clone().unwrap_or_else(|| Arc::from(""));
                    let all = View {
                        audience: None,
                        origin: svc.namespace.clone(),
                        routes: 0..routes.len(),
                        closed: false,
                        source,
                    };
                    return vec![all];
                }
                written
                    .iter()
                    .filter(|v| v.ports.is_empty() || v.ports.contains(&port))
                    .map(|v| {
                        let at = |i: usize| before.get(i).copied().unwrap_or(routes.len());
                        View {
                            audience: v.audience.clone(),
                            origin: v.origin.clone(),
                            routes: at(v.first)..at(v.first + v.len),
                            closed: v.closed,
                            source: Arc::from(v.source.as_str()),
                        }
                    })
                    .collect()
            };
            let lb = policy.map(|(_, p)| p.load_balancer.clone()).unwrap_or_default();
            // One hash key per request: the service's, else the one a subset of the service's
            // own namespace hashes on (another namespace's, `ns/name`, never sets it).
            let hash_on = lb.hash_on.clone().or_else(|| {
                defs.iter()
                    .filter(|d| !d.name.contains('/'))
                    .find_map(|d| d.load_balancer.as_ref().and_then(|l| l.hash_on.clone()))
            });
            let fallback = policy.map(|(_, p)| p.fallback.clone()).unwrap_or_default();
            let by_caller = hash_on.is_some()
                || lb.subset_size.is_some()
                || lb.policy == crate::inventory::policy::LbPolicy::RingHash
                || defs.iter().filter_map(|d| d.load_balancer.as_ref()).any(|l| {
                    l.subset_size.is_some() || l.policy == crate::inventory::policy::LbPolicy::RingHash
                });
            // One plan per service, shared by its ports: one set of budgets and bounds.
            let plan =
                policy.and_then(|(_, p)| Plan::compile(&name, &p.resilience, registry, &own_addrs, &subsets));
            let data_lanes = policy.and_then(|(_, p)| p.data_lanes.as_ref());
            for (ip, port, eps) in ports {
                let data = data_lanes.and_then(|d| {
                    let ns = (svc.namespace.as_str(), &snapshot.secrets);
                    DataRules::compile(d, port, svc.ports.len() == 1, &fallback.isolated, ns)
                        .map_err(|e| tracing::error!(service = %name, error = %e, "dataLanes skipped"))
                        .ok()
                        .flatten()
                        .map(Arc::new)
                });
                // A lane with a data mapping is kept apart inside the shared store: it may
                // use the base endpoints (its own subset still wins when it has pods).
                let mut fallback = fallback.clone();
                if let Some(d) = &data {
                    fallback.isolated.retain(|t| d.lane(Some(t)).is_none());
                }
                let endpoints: Vec<Arc<Endpoint>> =
                    eps.into_iter().map(|(pod, addr)| Arc::new(Endpoint::of(addr, &pod, defs))).collect();
                let backends: Backends = backend_eps[usize::from(ip.is_ipv6())]
                    .iter()
                    .map(|(name, eps)| {
                        let eps =
                            eps.iter().map(|(pod, addr)| Arc::new(Endpoint::of(*addr, pod, &[]))).collect();
                        (name.clone(), eps)
                    })
                    .collect();
                let mut own: Vec<SocketAddr> = endpoints.iter().map(|e| e.addr).collect();
                own.sort_unstable();
                own.dedup();
                let entry = ServiceRoutes {
                    own,
                    name: name.clone(),
                    port: port.port,
                    protocol: Protocol::of_port(port),
                    routes: routes.clone(),
                    views: Views::new(views_of(port.port), &svc.namespace),
                    fallback,
                    hash_on: hash_on.clone(),
                    endpoints: ServiceEndpoints::build(name.to_string(), &endpoints, &lb, defs, &backends),
                    plan: plan.clone(),
                    source: source.clone(),
                    data,
                    by_caller,
                };
                let entry = Arc::new(entry);
                if entry.data.is_some() {
                    for addr in entry.endpoint_addrs() {
                        data_endpoints.entry(addr).or_insert_with(|| entry.clone());
                    }
                }
                services.insert(SocketAddr::new(ip, port.port), entry);
            }
        }
        let rules = snapshot
            .rules
            .iter()
            .filter_map(|r| {
                CompiledRule::compile(r)
                    .map_err(|e| tracing::error!(rule = %r.name, error = %e, "rule skipped"))
                    .ok()
            })
            .collect();
        Self { services, data_endpoints, rules }
    }

    /// The service port behind a cluster IP:port.
    pub fn service(&self, dst: SocketAddr) -> Option<&Arc<ServiceRoutes>> {
        self.services.get(&dst)
    }

    /// The data store whose endpoint (pod IP:port) `dst` is.
    pub fn data_endpoint(&self, dst: SocketAddr) -> Option<&Arc<ServiceRoutes>> {
        self.data_endpoints.get(&dst)
    }

    /// Every data store's service ports (one per cluster IP and port).
    pub fn data_stores(&self) -> impl Iterator<Item = &Arc<ServiceRoutes>> {
        self.services.values().filter(|s| s.data.is_some())
    }
}

/// The policy of a service (the first by name if several target it).
fn policy_for<'a>(
    snapshot: &'a Snapshot,
    namespace: &str,
    service: &str,
) -> Option<(&'a str, &'a TrafficPolicySpec)> {
    let mut matching: Vec<_> =
        snapshot.policies.iter().filter(|p| p.namespace == namespace && p.spec.service == service).collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    if matching.len() > 1 {
        tracing::warn!(service, used = %matching[0].name, "several TrafficPolicies target one service; using the first by name");
    }
    matching.first().map(|p| (p.name.as_str(), &p.spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::TargetPort;

    fn port(name: Option<&str>, app: Option<&str>) -> ServicePort {
        ServicePort {
            name: name.map(Into::into),
            port: 80,
            target_port: TargetPort::Number(80),
            app_protocol: app.map(Into::into),
        }
    }

    #[test]
    fn protocol_hints_follow_kubernetes_conventions() {
        assert_eq!(Protocol::of_port(&port(Some("http-web"), None)), Protocol::Http1);
        assert_eq!(Protocol::of_port(&port(None, Some("kubernetes.io/h2c"))), Protocol::Http2);
        assert_eq!(Protocol::of_port(&port(Some("grpc"), None)), Protocol::Http2);
        assert_eq!(Protocol::of_port(&port(Some("tcp-db"), Some("tcp"))), Protocol::Opaque);
        assert_eq!(Protocol::of_port(&port(Some("mysql"), None)), Protocol::Opaque);
        assert_eq!(Protocol::of_port(&port(None, None)), Protocol::Detect);
    }
}
