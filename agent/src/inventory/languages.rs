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
//!
//! Rules are scoped by the namespace they are written in, the way the cluster scopes them:
//! routes written in the service's own namespace are for every caller; routes written in
//! another namespace are for the callers that namespace may steer (GAMMA consumer routes:
//! its own; Istio: `exportTo`; OpenSergo: its own namespace's services, others' only with a
//! `ReferenceGrant`). Settings for the whole service (load balancing, outlier detection,
//! limits) come only from the service's own namespace, and subsets defined elsewhere are
//! that namespace's alone (`<namespace>/<name>`), so no rule steers another's traffic.

mod duration;
mod gateway;
mod grant;
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
    GrpcRoute(Box<gateway::GrpcRoute>),
    WorkloadLabelRule(opensergo::WorkloadLabelRule),
    Strategy(Box<opensergo::Strategy>),
    FaultToleranceRule(opensergo::FaultToleranceRule),
    /// Gateway API `ReferenceGrant`: what other namespaces' rules may act on here.
    ReferenceGrant(grant::ReferenceGrant),
}

/// Which namespaces see an Istio rule that has no `exportTo` (`--rules-default-export`):
/// `all`, Istio's default, or the rule's own `namespace` (recommended for multi-tenant
/// clusters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Export {
    #[default]
    All,
    Namespace,
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
        ("gateway.networking.k8s.io", "GRPCRoute") => {
            typed(spec, &mut unknown).map(|s| Foreign::GrpcRoute(Box::new(s)))
        }
        ("gateway.networking.k8s.io", "ReferenceGrant") => {
            typed(spec, &mut unknown).map(Foreign::ReferenceGrant)
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
        Ok(Foreign::GrpcRoute(_)) => "GRPCRoute",
        Ok(Foreign::WorkloadLabelRule(_)) => "WorkloadLabelRule",
        Ok(Foreign::Strategy(s)) => s.kind(),
        Ok(Foreign::FaultToleranceRule(_)) => "FaultToleranceRule",
        Ok(Foreign::ReferenceGrant(_)) => "ReferenceGrant",
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
    /// The callers the routes are for (`None`: every caller).
    audience: Option<Vec<String>>,
    /// The namespace the fragment acts for, when not the object's own (a rule another
    /// namespace granted acts as if written there).
    origin: Option<String>,
    /// The service ports the routes are attached to (empty: every port).
    ports: Vec<u16>,
    /// A request no route matches gets 404 (Gateway API), not the service.
    closed: bool,
    routes: Vec<Route>,
    /// Gateway API precedence of each route (HTTPRoutes of one service are merged and
    /// ordered by it); empty for the other languages, whose order is as written.
    precedence: Vec<Precedence>,
    subsets: Vec<SubsetDef>,
    load_balancer: Option<LoadBalancer>,
    resilience: Resilience,
}

/// Gateway API route precedence, smallest first: exact path, then longer paths,
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
    /// The namespace the contribution was written in (or acts for).
    origin: String,
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
    export: Export,
) -> Translated {
    if docs.is_empty() {
        return Translated { policies: own, reports: Vec::new() };
    }
    let grants: Vec<(&str, &grant::ReferenceGrant)> = docs
        .iter()
        .filter_map(|d| match &d.object {
            Foreign::ReferenceGrant(g) => Some((d.namespace.as_str(), g)),
            _ => None,
        })
        .collect();
    let scope = Scope { services, export, grants };
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
                origin: fragment.origin.clone().unwrap_or_else(|| doc.namespace.clone()),
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
            Foreign::GrpcRoute(r) => gateway::grpc_route(r, doc, &scope, &mut report, &mut add),
            Foreign::FaultToleranceRule(r) => {
                opensergo::fault_tolerance(r, doc, &scope, &strategies, &mut report, &mut add)
            }
            Foreign::WorkloadLabelRule(r) => opensergo::workload_labels(r, doc, pods, &mut report),
            Foreign::Strategy(_) => {} // used through the FaultToleranceRules that name them
            Foreign::ReferenceGrant(g) => grant::check(g, &mut report),
        }
        reports.push(report);
    }
    let policies = merge(own, out, &mut reports);
    Translated { policies, reports }
}

/// The services a document can name, and what it may do to them.
pub struct Scope<'a> {
    services: &'a [Service],
    /// Who sees an Istio rule without `exportTo`.
    export: Export,
    /// Every `ReferenceGrant`, with its namespace.
    grants: Vec<(&'a str, &'a grant::ReferenceGrant)>,
}

impl Scope<'_> {
    /// Whether a `kind` of `group` in namespace `from` may act on Service `to` (another
    /// namespace's): a `ReferenceGrant` in `to`'s namespace says so.
    fn granted(&self, group: &str, kind: &str, from: &str, to: &(String, String)) -> bool {
        self.grants.iter().any(|(ns, g)| *ns == to.0 && g.allows(group, kind, from, "", "Service", &to.1))
    }

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
/// Routes become views (who they are for); the other parts are the service's.
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
    for (service, mut contributions) in by_service {
        let own = own_by_service.remove(&service).unwrap_or_default();
        let mut spec = own
            .first()
            .map(|p| p.spec.clone())
            .unwrap_or_else(|| TrafficPolicySpec { service: service.1.clone(), ..Default::default() });
        let own_name = own.first().map(|p| format!("TrafficPolicy {}/{}", p.namespace, p.name));
        let mut names: Vec<String> = own_name.iter().cloned().collect();
        let mut views: Vec<Draft> = Vec::new();
        if let Some(name) = own_name.as_ref().filter(|_| !spec.routes.is_empty()) {
            views.push(Draft {
                rank: Rank::Graylane,
                audience: None,
                origin: service.0.clone(),
                ports: Vec::new(),
                closed: false,
                sources: vec![name.clone()],
                routes: std::mem::take(&mut spec.routes)
                    .into_iter()
                    .map(|r| (Precedence::default(), r))
                    .collect(),
            });
        }
        let mut lb_from = own_name.clone().filter(|_| spec.load_balancer != LoadBalancer::default());
        qualify_foreign_subsets(&service.0, &mut contributions);
        for c in contributions {
            let mut used = false;
            let mut overridden = Vec::new();
            let mut f = c.fragment;
            if c.origin != service.0 {
                // Only the service's own namespace sets what every caller gets.
                if f.load_balancer.take().is_some() {
                    overridden
                        .push(format!("loadBalancer (written in {}, not the service's namespace)", c.origin));
                }
                if f.resilience != Resilience::default() {
                    f.resilience = Resilience::default();
                    overridden.push(format!(
                        "settings for the whole service (written in {}, not the service's namespace)",
                        c.origin
                    ));
                }
            }
            if !f.routes.is_empty() {
                let same = |d: &Draft| d.origin == c.origin && d.audience == f.audience && d.ports == f.ports;
                let routes =
                    f.precedence.into_iter().chain(std::iter::repeat(Precedence::default())).zip(f.routes);
                match views.iter_mut().find(|d| same(d)) {
                    // HTTPRoutes of one parent and namespace are merged; other languages'
                    // routes are one list, and the first (by precedence) is taken.
                    Some(d) if d.rank == Rank::HttpRoute && c.rank == Rank::HttpRoute => {
                        d.routes.extend(routes);
                        d.sources.push(c.source.clone());
                        used = true;
                    }
                    Some(d) => overridden.push(format!("routes (by {})", d.sources.join(" + "))),
                    None => {
                        views.push(Draft {
                            rank: c.rank,
                            audience: f.audience.clone(),
                            origin: c.origin.clone(),
                            ports: f.ports.clone(),
                            closed: f.closed,
                            sources: vec![c.source.clone()],
                            routes: routes.collect(),
                        });
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
        let (routes, route_views) = lay_out(views);
        spec.routes = routes;
        spec.views = route_views;
        policies.push(Named { namespace: service.0.clone(), name: names.join(" + "), spec });
    }
    policies
}

/// Routes being gathered for one view.
#[derive(Clone)]
struct Draft {
    rank: Rank,
    audience: Option<Vec<String>>,
    origin: String,
    ports: Vec<u16>,
    closed: bool,
    sources: Vec<String>,
    routes: Vec<(Precedence, Route)>,
}

/// The views in the order callers look at them — by language, a port's own before the
/// every-port ones — with their routes laid out one after another. A port-specific view
/// of HTTPRoutes also holds the every-port routes of the same namespace (all attach there).
fn lay_out(mut views: Vec<Draft>) -> (Vec<Route>, Vec<super::policy::RouteView>) {
    let every_port: Vec<Draft> = views
        .iter()
        .filter(|d| d.rank == Rank::HttpRoute && d.ports.is_empty())
        .map(|d| Draft { sources: Vec::new(), ..d.clone() })
        .collect();
    for d in views.iter_mut().filter(|d| d.rank == Rank::HttpRoute && !d.ports.is_empty()) {
        for e in every_port.iter().filter(|e| e.origin == d.origin && e.audience == d.audience) {
            d.routes.extend(e.routes.iter().cloned());
        }
    }
    views.sort_by_key(|d| (d.rank, d.ports.is_empty()));
    let mut routes = Vec::new();
    let mut out = Vec::new();
    for mut d in views {
        d.routes.sort_by_key(|(p, _)| *p);
        out.push(super::policy::RouteView {
            audience: d.audience,
            origin: d.origin,
            first: routes.len(),
            len: d.routes.len(),
            ports: d.ports,
            closed: d.closed,
            source: d.sources.join(" + "),
        });
        routes.extend(d.routes.into_iter().map(|(_, r)| r));
    }
    (routes, out)
}

/// Subsets written outside the service's namespace are that namespace's alone: renamed
/// `<namespace>/<name>` (no lane can be called that), with the routes of the same namespace
/// that name them.
fn qualify_foreign_subsets(home: &str, contributions: &mut [Contribution]) {
    let mut defined: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in contributions.iter().filter(|c| c.origin != home) {
        defined
            .entry(c.origin.clone())
            .or_default()
            .extend(c.fragment.subsets.iter().map(|s| s.name.clone()));
    }
    for c in contributions.iter_mut().filter(|c| c.origin != home) {
        let names = defined.get(&c.origin).cloned().unwrap_or_default();
        let origin = c.origin.clone();
        let rename = |name: &mut String| {
            if names.contains(name) {
                *name = format!("{origin}/{name}");
            }
        };
        let f = &mut c.fragment;
        f.subsets.iter_mut().for_each(|s| rename(&mut s.name));
        for r in &mut f.routes {
            for d in &mut r.destinations {
                rename(&mut d.subset);
                if let Some(fb) = d.fallback.as_mut() {
                    rename(fb);
                }
            }
            if let Some(m) = r.resilience.mirror.as_mut() {
                rename(&mut m.subset);
            }
        }
    }
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
