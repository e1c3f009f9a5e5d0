//! The rule languages users already have — Istio `VirtualService` + `DestinationRule`,
//! Gateway API `HTTPRoute` (GAMMA: a Service as parent), OpenSergo traffic and
//! fault-tolerance rules — translated into graylane's one model: a `TrafficPolicySpec` per
//! service (routes, label subsets, load balancing, resilience) and `TrafficLabelRuleSpec`s.
//! No second routing engine: the proxy compiles what comes out of here like any policy.
//!
//! Each object yields fragments (the parts of a service's policy it sets) and a report
//! (accepted or not, why, and every field graylane does not honour, by name). When several
//! objects address one service, each part comes from the first by precedence:
//! graylane `TrafficPolicy`, then `HTTPRoute`, then `VirtualService`, then
//! `DestinationRule`, then OpenSergo; label subsets are merged by name in the same order.

mod duration;
mod gateway;
mod istio;
mod opensergo;

use std::collections::BTreeMap;

pub use super::report::Report;
use super::{
    FieldError,
    model::{Pod, Service},
    policy::{LoadBalancer, Named, Route, SubsetDef, TrafficLabelRuleSpec, TrafficPolicySpec},
    resilience::Resilience,
};

/// A document in another rule language, parsed.
#[derive(Clone, Debug)]
pub struct ForeignDoc {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// Fields present in the document that graylane does not know (typos, newer fields).
    pub unknown: Vec<String>,
    pub object: Foreign,
}

#[derive(Clone, Debug)]
pub enum Foreign {
    VirtualService(Box<istio::VirtualService>),
    /// OpenSergo's VirtualService with fallbacks.
    TrafficRouter(Box<istio::VirtualService>),
    DestinationRule(Box<istio::DestinationRule>),
    HttpRoute(Box<gateway::HttpRoute>),
    WorkloadLabelRule(opensergo::WorkloadLabelRule),
    Strategy(Box<opensergo::Strategy>),
    FaultToleranceRule(opensergo::FaultToleranceRule),
}

/// Whether `api` is the apiVersion of a language read here.
pub fn speaks(api: &str) -> bool {
    let group = api.split_once('/').map_or(api, |(g, _)| g);
    matches!(
        group,
        "networking.istio.io"
            | "gateway.networking.k8s.io"
            | "traffic.opensergo.io"
            | "fault-tolerance.opensergo.io"
    )
}

/// What parsing a document of another language gives: `None` when `api`/`kind` is not one.
pub enum Parsed {
    Foreign(ForeignDoc),
    /// An OpenSergo `TrafficLabelRule`: graylane's own rule under OpenSergo's name.
    Rule(Named<TrafficLabelRuleSpec>),
}

/// Parses a document of a supported language (`None`: not one of them).
pub fn parse(
    api: &str,
    kind: &str,
    namespace: &str,
    name: &str,
    spec: serde_json::Value,
) -> Option<Result<Parsed, FieldError>> {
    let (group, _version) = api.split_once('/').unwrap_or((api, ""));
    let mut unknown = Vec::new();
    let object = match (group, kind) {
        ("networking.istio.io", "VirtualService") => {
            typed(spec, &mut unknown).map(|s| Foreign::VirtualService(Box::new(s)))
        }
        ("networking.istio.io", "DestinationRule") => {
            typed(spec, &mut unknown).map(|s| Foreign::DestinationRule(Box::new(s)))
        }
        ("gateway.networking.k8s.io", "HTTPRoute") => {
            typed(spec, &mut unknown).map(|s| Foreign::HttpRoute(Box::new(s)))
        }
        ("traffic.opensergo.io", "TrafficLabelRule") => {
            let rule = typed::<TrafficLabelRuleSpec>(spec, &mut unknown).and_then(|r| {
                super::policy::validate_rule(&r)?;
                Ok(r)
            });
            return Some(
                rule.map(|spec| Parsed::Rule(Named { namespace: namespace.into(), name: name.into(), spec })),
            );
        }
        ("traffic.opensergo.io", "TrafficRouter") => {
            typed(spec, &mut unknown).map(|s| Foreign::TrafficRouter(Box::new(s)))
        }
        ("traffic.opensergo.io", "WorkloadLabelRule") => {
            typed(spec, &mut unknown).map(Foreign::WorkloadLabelRule)
        }
        ("fault-tolerance.opensergo.io", "FaultToleranceRule") => {
            typed(spec, &mut unknown).map(Foreign::FaultToleranceRule)
        }
        ("fault-tolerance.opensergo.io", kind) => {
            opensergo::strategy(kind, spec, &mut unknown).map(|s| Foreign::Strategy(Box::new(s)))
        }
        _ => return None,
    };
    let kind = match &object {
        Ok(Foreign::VirtualService(_)) => "VirtualService",
        Ok(Foreign::TrafficRouter(_)) => "TrafficRouter",
        Ok(Foreign::DestinationRule(_)) => "DestinationRule",
        Ok(Foreign::HttpRoute(_)) => "HTTPRoute",
        Ok(Foreign::WorkloadLabelRule(_)) => "WorkloadLabelRule",
        Ok(Foreign::Strategy(s)) => s.kind(),
        Ok(Foreign::FaultToleranceRule(_)) => "FaultToleranceRule",
        Err(_) => "",
    };
    Some(object.map(|object| {
        Parsed::Foreign(ForeignDoc { kind, namespace: namespace.into(), name: name.into(), unknown, object })
    }))
}

/// Deserializes `spec`, naming the failing field, and collects the fields it ignored.
fn typed<T: serde::de::DeserializeOwned>(
    spec: serde_json::Value,
    unknown: &mut Vec<String>,
) -> Result<T, FieldError> {
    let mut note = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
    let ignored = serde_ignored::Deserializer::new(spec, &mut note);
    serde_path_to_error::deserialize(ignored)
        .map_err(|e| FieldError::new(format!("spec.{}", e.path()), e.inner().to_string()))
}

/// `spec.http[0].name`, the way Kubernetes names fields.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => "spec".into(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => format!("{}.{key}", field_path(parent)),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            field_path(parent)
        }
    }
}

/// Precedence of a language: lower wins a part of a service's policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Graylane,
    HttpRoute,
    VirtualService,
    DestinationRule,
    OpenSergo,
}

/// The parts of one service's policy one object sets.
#[derive(Clone, Debug, Default)]
struct Fragment {
    routes: Vec<Route>,
    /// Gateway API precedence of each route (HTTPRoutes of one service are merged and
    /// ordered by it); empty for the other languages, whose order is as written.
    precedence: Vec<Precedence>,
    subsets: Vec<SubsetDef>,
    load_balancer: Option<LoadBalancer>,
    resilience: Resilience,
}

/// Gateway API route precedence, smallest first: exact path, then longer path prefixes,
/// then a method, then more header matches, then more query matches; ties keep order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Precedence {
    not_exact: bool,
    shorter_prefix: std::cmp::Reverse<usize>,
    no_method: bool,
    fewer_headers: std::cmp::Reverse<usize>,
    fewer_query: std::cmp::Reverse<usize>,
}

/// Where a translator sends a service's fragment (checked, then kept for the merge).
type Emit<'a> = dyn FnMut((String, String), Rank, Fragment, &mut Report) + 'a;

/// A fragment for a service, with where it came from.
struct Contribution {
    service: (String, String),
    rank: Rank,
    /// `Kind namespace/name`, for the merged policy's name and for reports.
    source: String,
    report: usize,
    fragment: Fragment,
}

/// What the translation gives the snapshot.
pub struct Translated {
    pub policies: Vec<Named<TrafficPolicySpec>>,
    pub reports: Vec<Report>,
}

/// Translates every foreign document against the inventory's services and pods (a
/// `WorkloadLabelRule` tags the pods it selects), and merges them with graylane's own
/// policies. With no foreign document the own policies pass through unchanged.
pub fn translate(
    pods: &mut [Pod],
    services: &[Service],
    own: Vec<Named<TrafficPolicySpec>>,
    docs: &[ForeignDoc],
) -> Translated {
    if docs.is_empty() {
        return Translated { policies: own, reports: Vec::new() };
    }
    let scope = Scope { services };
    let mut reports: Vec<Report> = Vec::new();
    let mut out: Vec<Contribution> = Vec::new();
    let strategies: Vec<(&ForeignDoc, &opensergo::Strategy)> = docs
        .iter()
        .filter_map(|d| match &d.object {
            Foreign::Strategy(s) => Some((d, &**s)),
            _ => None,
        })
        .collect();
    for doc in docs {
        let mut report = Report::new(doc.kind, &doc.namespace, &doc.name, &doc.unknown);
        let index = reports.len();
        let mut add = |service: (String, String), rank: Rank, fragment: Fragment, report: &mut Report| {
            // What comes out must be a valid graylane policy, or it is not taken.
            let check = TrafficPolicySpec {
                service: service.1.clone(),
                routes: fragment.routes.clone(),
                subsets: fragment.subsets.clone(),
                load_balancer: fragment.load_balancer.clone().unwrap_or_default(),
                resilience: fragment.resilience.clone(),
                ..Default::default()
            };
            if let Err(e) = super::policy::validate_policy(&check) {
                report.reject("Invalid", format!("{}: {}", e.field, e.message));
                return;
            }
            let key = format!("{}/{}", service.0, service.1);
            if !report.services.contains(&key) {
                report.services.push(key);
            }
            out.push(Contribution {
                service,
                rank,
                source: format!("{} {}/{}", doc.kind, doc.namespace, doc.name),
                report: index,
                fragment,
            });
        };
        match &doc.object {
            Foreign::VirtualService(vs) => {
                istio::virtual_service(vs, doc, &scope, Rank::VirtualService, &mut report, &mut add)
            }
            Foreign::TrafficRouter(vs) => {
                istio::virtual_service(vs, doc, &scope, Rank::OpenSergo, &mut report, &mut add)
            }
            Foreign::DestinationRule(dr) => istio::destination_rule(dr, doc, &scope, &mut report, &mut add),
            Foreign::HttpRoute(r) => gateway::http_route(r, doc, &scope, &mut report, &mut add),
            Foreign::FaultToleranceRule(r) => {
                opensergo::fault_tolerance(r, doc, &scope, &strategies, &mut report, &mut add)
            }
            Foreign::WorkloadLabelRule(r) => opensergo::workload_labels(r, doc, pods, &mut report),
            Foreign::Strategy(_) => {} // used through the FaultToleranceRules that name them
        }
        reports.push(report);
    }
    let policies = merge(own, out, &mut reports);
    Translated { policies, reports }
}

/// The services a document can name.
pub struct Scope<'a> {
    services: &'a [Service],
}

impl Scope<'_> {
    /// The service a host names, seen from `namespace`: `name`, `name.ns`, `name.ns.svc`
    /// or `name.ns.svc.<cluster domain>`.
    fn host(&self, host: &str, namespace: &str) -> Option<(String, String)> {
        let mut parts = host.split('.');
        let name = parts.next()?;
        let ns = parts.next().unwrap_or(namespace);
        if parts.next().is_some_and(|svc| svc != "svc") {
            return None;
        }
        self.named(ns, name)
    }

    fn named(&self, namespace: &str, name: &str) -> Option<(String, String)> {
        self.services
            .iter()
            .find(|s| s.namespace == namespace && s.name == name)
            .map(|s| (s.namespace.clone(), s.name.clone()))
    }

    fn service(&self, key: &(String, String)) -> Option<&Service> {
        self.services.iter().find(|s| s.namespace == key.0 && s.name == key.1)
    }

    /// Services of `namespace` whose selector carries every label of `selector`.
    fn selected(&self, namespace: &str, selector: &BTreeMap<String, String>) -> Vec<(String, String)> {
        self.services
            .iter()
            .filter(|s| s.namespace == namespace && !s.selector.is_empty())
            .filter(|s| selector.iter().all(|(k, v)| s.selector.get(k) == Some(v)))
            .map(|s| (s.namespace.clone(), s.name.clone()))
            .collect()
    }
}

/// `route` for a match whose path prefix is `prefix`: a rewrite or redirect that replaces
/// "the matched prefix" (written with an empty `from`) gets it; without a prefix match it
/// replaces the whole path.
fn at_prefix(mut route: Route, prefix: Option<&str>) -> Route {
    let fill = |path: &mut Option<String>, pre: &mut Option<super::policy::PrefixRewrite>| {
        if let Some(p) = pre.as_mut().filter(|p| p.from.is_empty()) {
            match prefix {
                Some(m) => p.from = m.to_owned(),
                None => {
                    *path = Some(p.to.clone());
                    *pre = None;
                }
            }
        }
    };
    if let Some(rw) = route.rewrite.as_mut() {
        fill(&mut rw.path, &mut rw.prefix);
    }
    if let Some(rd) = route.redirect.as_mut() {
        fill(&mut rd.path, &mut rd.prefix);
    }
    route
}

/// One policy per service: own policies first, then every language by rank, part by part.
fn merge(
    own: Vec<Named<TrafficPolicySpec>>,
    mut contributions: Vec<Contribution>,
    reports: &mut [Report],
) -> Vec<Named<TrafficPolicySpec>> {
    contributions.sort_by(|a, b| (&a.service, a.rank, &a.source).cmp(&(&b.service, b.rank, &b.source)));
    let mut policies: Vec<Named<TrafficPolicySpec>> = Vec::new();
    let mut by_service: BTreeMap<(String, String), Vec<Contribution>> = BTreeMap::new();
    for c in contributions {
        by_service.entry(c.service.clone()).or_default().push(c);
    }
    let mut own_by_service: BTreeMap<(String, String), Vec<Named<TrafficPolicySpec>>> = BTreeMap::new();
    for p in own {
        own_by_service.entry((p.namespace.clone(), p.spec.service.clone())).or_default().push(p);
    }
    for (service, list) in &mut own_by_service {
        list.sort_by(|a, b| a.name.cmp(&b.name));
        if !by_service.contains_key(service) {
            policies.append(list);
        }
    }
    for (service, contributions) in by_service {
        let own = own_by_service.remove(&service).unwrap_or_default();
        let mut spec = own
            .first()
            .map(|p| p.spec.clone())
            .unwrap_or_else(|| TrafficPolicySpec { service: service.1.clone(), ..Default::default() });
        let mut names: Vec<String> = own
            .first()
            .map(|p| vec![format!("TrafficPolicy {}/{}", p.namespace, p.name)])
            .unwrap_or_default();
        let mut routes_from: Option<(Rank, String)> = own
            .first()
            .filter(|p| !p.spec.routes.is_empty())
            .map(|p| (Rank::Graylane, format!("TrafficPolicy {}/{}", p.namespace, p.name)));
        let mut lb_from = own
            .first()
            .filter(|p| p.spec.load_balancer != LoadBalancer::default())
            .map(|p| format!("TrafficPolicy {}/{}", p.namespace, p.name));
        let mut ordered: Vec<(Precedence, Route)> = Vec::new();
        for c in contributions {
            let mut used = false;
            let mut overridden = Vec::new();
            let f = c.fragment;
            if !f.routes.is_empty() {
                match &routes_from {
                    // HTTPRoutes of one parent are merged; other languages' routes are one list.
                    Some((Rank::HttpRoute, _)) if c.rank == Rank::HttpRoute => {
                        ordered.extend(f.precedence.into_iter().zip(f.routes));
                        used = true;
                    }
                    Some((_, first)) if *first != c.source => overridden.push(format!("routes (by {first})")),
                    _ => {
                        if c.rank == Rank::HttpRoute {
                            ordered.extend(f.precedence.into_iter().zip(f.routes));
                        } else {
                            spec.routes.extend(f.routes);
                        }
                        routes_from = Some((c.rank, c.source.clone()));
                        used = true;
                    }
                }
            }
            for d in f.subsets {
                if spec.subsets.iter().any(|s| s.name == d.name) {
                    overridden.push(format!("subset {}", d.name));
                } else {
                    spec.subsets.push(d);
                    used = true;
                }
            }
            if let Some(lb) = f.load_balancer {
                match &lb_from {
                    Some(first) => overridden.push(format!("loadBalancer (by {first})")),
                    None => {
                        spec.load_balancer = lb;
                        lb_from = Some(c.source.clone());
                        used = true;
                    }
                }
            }
            let (took, lost) = fill(&mut spec.resilience, f.resilience);
            used |= took;
            overridden.extend(lost);
            if used {
                names.push(c.source.clone());
            }
            if let Some(r) = reports.get_mut(c.report)
                && !overridden.is_empty()
            {
                r.message = format!(
                    "{}{}overridden for {}/{}: {}",
                    r.message,
                    if r.message.is_empty() { "" } else { "; " },
                    service.0,
                    service.1,
                    overridden.join(", ")
                );
                if !used {
                    r.reason = "Overridden".into();
                }
            }
        }
        ordered.sort_by_key(|(p, _)| *p);
        spec.routes.extend(ordered.into_iter().map(|(_, r)| r));
        policies.push(Named { namespace: service.0.clone(), name: names.join(" + "), spec });
    }
    policies
}

/// Fills the service-level settings `into` does not have from `from`; says whether any was
/// taken and which were already set.
fn fill(into: &mut Resilience, from: Resilience) -> (bool, Vec<String>) {
    let mut took = false;
    let mut lost = Vec::new();
    macro_rules! part {
        ($field:ident, $name:literal) => {
            if from.$field.is_some() {
                if into.$field.is_none() {
                    into.$field = from.$field;
                    took = true;
                } else {
                    lost.push($name.to_string());
                }
            }
        };
    }
    part!(timeout, "timeout");
    part!(rate_limit, "rateLimit");
    part!(concurrency, "concurrency");
    part!(retry, "retry");
    part!(circuit_breaker, "circuitBreaker");
    part!(subset_breaker, "subsetBreaker");
    part!(mirror, "mirror");
    if !from.faults.is_empty() {
        if into.faults.is_empty() {
            into.faults = from.faults;
            took = true;
        } else {
            lost.push("faults".into());
        }
    }
    (took, lost)
}

#[cfg(test)]
mod tests;
