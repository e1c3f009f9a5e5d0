//! Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) attached to a Service (GAMMA,
//! the mesh profile): matches, weighted backends — the Service itself or per-version
//! Services, which become subsets defined by those Services' selectors — header filters,
//! mirroring, timeouts and retries, ordered by the spec's route precedence.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Emit, ForeignDoc, Fragment, Precedence, Rank, Report, Scope, duration::period};
use crate::inventory::{
    policy::{
        BackendService, Destination, HeaderRewrite, KeyMatch, PrefixRewrite, Redirect, Route, RouteMatch,
        StringMatch, SubsetDef, UrlRewrite,
    },
    resilience::{Fault, FaultAbort, Mirror, Resilience, Retry},
};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParentRef {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
    section_name: Option<String>,
    port: Option<u16>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    name: Option<String>,
    #[serde(default)]
    matches: Vec<Match>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    backend_refs: Vec<BackendRef>,
    timeouts: Option<Timeouts>,
    retry: Option<RetryPolicy>,
    session_persistence: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    path: Option<PathMatch>,
    #[serde(default)]
    headers: Vec<ValueMatch>,
    #[serde(default)]
    query_params: Vec<ValueMatch>,
    method: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct PathMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ValueMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    name: String,
    value: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    #[serde(rename = "type")]
    kind: String,
    request_header_modifier: Option<HeaderModifier>,
    request_mirror: Option<MirrorFilter>,
    response_header_modifier: Option<HeaderModifier>,
    request_redirect: Option<RedirectFilter>,
    #[serde(rename = "urlRewrite")]
    url_rewrite: Option<UrlRewriteFilter>,
    extension_ref: Option<Value>,
    cors: Option<Value>,
    external_auth: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct HeaderModifier {
    #[serde(default)]
    set: Vec<NameValue>,
    #[serde(default)]
    add: Vec<NameValue>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RedirectFilter {
    scheme: Option<String>,
    hostname: Option<String>,
    path: Option<PathModifier>,
    port: Option<u16>,
    status_code: Option<u16>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct UrlRewriteFilter {
    hostname: Option<String>,
    path: Option<PathModifier>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PathModifier {
    #[serde(rename = "type")]
    kind: String,
    replace_full_path: Option<String>,
    replace_prefix_match: Option<String>,
}

impl PathModifier {
    /// (whole path, prefix replacement with the matched prefix filled in later).
    fn split(&self) -> (Option<String>, Option<PrefixRewrite>) {
        match self.kind.as_str() {
            "ReplaceFullPath" => (self.replace_full_path.clone(), None),
            _ => {
                (None, self.replace_prefix_match.clone().map(|to| PrefixRewrite { from: String::new(), to }))
            }
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
struct NameValue {
    name: String,
    value: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MirrorFilter {
    backend_ref: ObjectRef,
    percent: Option<f64>,
    fraction: Option<Fraction>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Fraction {
    numerator: u32,
    denominator: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ObjectRef {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    port: Option<u16>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackendRef {
    #[serde(flatten)]
    target: ObjectRef,
    weight: Option<u32>,
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Timeouts {
    request: Option<String>,
    backend_request: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct RetryPolicy {
    #[serde(default)]
    codes: Vec<u16>,
    attempts: Option<u32>,
    backoff: Option<String>,
}

/// Gateway API `GRPCRoute` on a Service: read as the HTTPRoute it is on the wire (a gRPC call
/// is a request to `/<service>/<method>`), so matches, precedence, filters, weights and
/// backends are the HTTPRoute's.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrpcRoute {
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Vec<GrpcRule>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrpcRule {
    name: Option<String>,
    #[serde(default)]
    matches: Vec<GrpcMatch>,
    #[serde(default)]
    filters: Vec<Filter>,
    #[serde(default)]
    backend_refs: Vec<BackendRef>,
    session_persistence: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct GrpcMatch {
    method: Option<MethodMatch>,
    #[serde(default)]
    headers: Vec<ValueMatch>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct MethodMatch {
    #[serde(rename = "type")]
    kind: Option<String>,
    service: Option<String>,
    method: Option<String>,
}

impl MethodMatch {
    /// The path match of a method match: exact `/<service>/<method>`, the service's prefix,
    /// or a regular expression over both parts.
    fn path(&self) -> PathMatch {
        let (service, method) = (self.service.as_deref(), self.method.as_deref());
        let any = "[^/]+";
        let (kind, value) = match (self.kind.as_deref().unwrap_or("Exact"), service, method) {
            ("Exact", Some(s), Some(m)) => ("Exact", format!("/{s}/{m}")),
            ("Exact", Some(s), None) => ("PathPrefix", format!("/{s}")),
            ("Exact", None, Some(m)) => ("RegularExpression", format!("/{any}/{}", regex::escape(m))),
            ("Exact", None, None) => ("PathPrefix", "/".to_owned()),
            (_, s, m) => ("RegularExpression", format!("/(?:{})/(?:{})", s.unwrap_or(any), m.unwrap_or(any))),
        };
        PathMatch { kind: Some(kind.to_owned()), value: Some(value) }
    }
}

impl GrpcRoute {
    fn as_http(&self) -> HttpRoute {
        let rules = self
            .rules
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                matches: r
                    .matches
                    .iter()
                    .map(|m| Match {
                        path: m.method.as_ref().map(MethodMatch::path),
                        headers: m.headers.clone(),
                        query_params: Vec::new(),
                        method: None,
                    })
                    .collect(),
                filters: r.filters.clone(),
                backend_refs: r.backend_refs.clone(),
                timeouts: None,
                retry: None,
                session_persistence: r.session_persistence.clone(),
            })
            .collect();
        HttpRoute { parent_refs: self.parent_refs.clone(), hostnames: self.hostnames.clone(), rules }
    }
}

pub(super) fn grpc_route(
    route: &GrpcRoute,
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    report: &mut Report,
    emit: &mut Emit<'_>,
) {
    http_route(&route.as_http(), doc, scope, report, emit);
}

fn is_service(group: &Option<String>, kind: &Option<String>, default_kind: &str) -> bool {
    matches!(group.as_deref(), None | Some("" | "core"))
        && kind.as_deref().unwrap_or(default_kind) == "Service"
}

pub(super) fn http_route(
    route: &HttpRoute,
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    report: &mut Report,
    emit: &mut Emit<'_>,
) {
    // Each parent Service with the ports the route attaches to (empty: every port).
    let mut parents: Vec<((String, String), Vec<u16>)> = Vec::new();
    for (i, p) in route.parent_refs.iter().enumerate() {
        if !is_service(&p.group, &p.kind, "Gateway") {
            continue; // a Gateway's route: not the mesh's
        }
        if p.section_name.is_some() {
            report.unsupported(format!("spec.parentRefs[{i}].sectionName"));
        }
        let ns = p.namespace.as_deref().unwrap_or(&doc.namespace);
        match scope.named(ns, &p.name) {
            Some(s) => {
                let port_ok = p.port.is_none_or(|port| {
                    scope.service(&s).is_some_and(|svc| svc.ports.iter().any(|sp| sp.port == port))
                });
                if !port_ok {
                    report.unsupported(format!("spec.parentRefs[{i}].port: the service has no such port"));
                    continue;
                }
                match parents.iter_mut().find(|(k, _)| *k == s) {
                    // Attached to every port already, or now.
                    Some((_, ports)) if ports.is_empty() => {}
                    Some((_, ports)) => match p.port {
                        Some(port) if !ports.contains(&port) => ports.push(port),
                        Some(_) => {}
                        None => ports.clear(),
                    },
                    None => parents.push((s, p.port.into_iter().collect())),
                }
            }
            None => report.message = format!("parent Service {ns}/{} not found", p.name),
        }
    }
    if parents.is_empty() {
        report.reject(
            "NoMatchingParent",
            "no parentRef is a Service graylane knows (graylane serves mesh routes)",
        );
        return;
    }
    if !route.hostnames.is_empty() {
        report.unsupported("spec.hostnames (ignored for Service parents)");
    }
    for (service, mut ports) in parents {
        // Attached to each of the service's ports is attached to every port.
        if scope.service(&service).is_some_and(|svc| svc.ports.iter().all(|p| ports.contains(&p.port))) {
            ports.clear();
        }
        // GAMMA: a route in the Service's namespace is a producer route, for every caller; one
        // in another namespace is a consumer route, for that namespace's callers only.
        let audience = (service.0 != doc.namespace).then(|| vec![doc.namespace.clone()]);
        let mut fragment = Fragment { audience, closed: true, ..Default::default() };
        let mut subsets: BTreeMap<String, SubsetDef> = BTreeMap::new();
        let parent = Parent { key: &service, ports: &ports };
        for (i, rule) in route.rules.iter().enumerate() {
            let at = format!("spec.rules[{i}]");
            let Some(base) = rule_route(rule, &at, &parent, doc, scope, report, &mut subsets) else {
                continue;
            };
            let name = rule.name.clone().unwrap_or_else(|| format!("{}-{i}", doc.name));
            let matches: Vec<Match> =
                if rule.matches.is_empty() { vec![Match::default()] } else { rule.matches.clone() };
            for (j, m) in matches.iter().enumerate() {
                let Some((matches, precedence)) = route_match(m, &format!("{at}.matches[{j}]"), report)
                else {
                    continue;
                };
                // A match without a path is PathPrefix `/`; prefix rewrites need a PathPrefix.
                let prefix = match &m.path {
                    None => Some("/"),
                    Some(p) if p.kind.as_deref().unwrap_or("PathPrefix") == "PathPrefix" => {
                        p.value.as_deref().or(Some("/"))
                    }
                    Some(_) => None,
                };
                let route = super::at_prefix(
                    Route { name: Some(format!("{name}.{j}")), matches, ..base.clone() },
                    prefix,
                );
                fragment.routes.push(route);
                fragment.precedence.push(precedence);
            }
        }
        fragment.subsets = subsets.into_values().collect();
        // One fragment per attached port: the routes of every HTTPRoute attached to a port
        // merge there, whatever other ports each is attached to.
        if ports.is_empty() {
            emit(service, Rank::HttpRoute, fragment, report);
        } else {
            for port in ports {
                emit(
                    service.clone(),
                    Rank::HttpRoute,
                    Fragment { ports: vec![port], ..fragment.clone() },
                    report,
                );
            }
        }
    }
}

/// The parent Service a route's rules are read for, and the ports it is attached to (empty:
/// every port).
struct Parent<'a> {
    key: &'a (String, String),
    ports: &'a [u16],
}

impl Parent<'_> {
    /// Whether `backend` is the parent on the very port every request of the route comes to
    /// (then the route's backend is the service as it is).
    fn is_itself(&self, backend: &BackendService, scope: &Scope<'_>) -> bool {
        let port = match self.ports {
            [only] => Some(*only),
            [] => scope.service(self.key).and_then(|s| match s.ports.as_slice() {
                [only] => Some(only.port),
                _ => None,
            }),
            _ => None,
        };
        backend.namespace == self.key.0 && backend.name == self.key.1 && port == Some(backend.port)
    }
}

/// The subset a backend Service stands for: that Service's endpoints on its `port` (its own
/// target port on its own pods). A Service of another namespace needs a ReferenceGrant there
/// for HTTPRoutes of this one, except the parent itself (a GAMMA consumer route names it).
fn backend_subset(
    target: &ObjectRef,
    at: &str,
    parent: &(String, String),
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    report: &mut Report,
    subsets: &mut BTreeMap<String, SubsetDef>,
) -> Option<String> {
    if !is_service(&target.group, &target.kind, "Service") {
        report.unsupported(format!("{at}: kind {} (only Services)", target.kind.as_deref().unwrap_or("")));
        return None;
    }
    let key = (target.namespace.clone().unwrap_or_else(|| doc.namespace.clone()), target.name.clone());
    let here = key.0 == doc.namespace;
    if !here && key != *parent && !scope.granted("gateway.networking.k8s.io", doc.kind, &doc.namespace, &key)
    {
        report.reason = "RefNotPermitted".into();
        report.message = format!(
            "{at}: Service {}/{} is in another namespace, and no ReferenceGrant there allows HTTPRoutes of {}",
            key.0, key.1, doc.namespace
        );
        return None;
    }
    let Some(svc) = scope.service(&key) else {
        report.reason = "BackendNotFound".into();
        report.message = format!("{at}: Service {}/{} not found", key.0, key.1);
        return None;
    };
    let Some(port) = target.port else {
        report.unsupported(format!("{at}.port: required for a Service backend ({})", key.1));
        return None;
    };
    if !svc.ports.iter().any(|p| p.port == port) {
        report.reason = "BackendNotFound".into();
        report.message = format!("{at}.port: Service {}/{} has no port {port}", key.0, key.1);
        return None;
    }
    let backend = BackendService { namespace: key.0.clone(), name: key.1.clone(), port };
    let base = if here { key.1.clone() } else { format!("{}/{}", key.0, key.1) };
    // One subset per backend Service and port: the first port keeps the plain name.
    let name = match subsets.get(&base) {
        Some(d) if d.backend.as_ref() != Some(&backend) => format!("{base}:{port}"),
        _ => base,
    };
    subsets.entry(name.clone()).or_insert_with(|| SubsetDef {
        name: name.clone(),
        labels: BTreeMap::new(),
        load_balancer: None,
        backend: Some(backend),
    });
    Some(name)
}

fn rule_route(
    rule: &Rule,
    at: &str,
    parent: &Parent<'_>,
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    report: &mut Report,
    subsets: &mut BTreeMap<String, SubsetDef>,
) -> Option<Route> {
    let mut resilience = Resilience::default();
    let mut headers = HeaderRewrite::default();
    let mut response_headers = HeaderRewrite::default();
    let (mut rewrite, mut redirect) = (None, None);
    for (k, f) in rule.filters.iter().enumerate() {
        let at = format!("{at}.filters[{k}]");
        match f.kind.as_str() {
            "RequestHeaderModifier" => {
                if let Some(m) = &f.request_header_modifier {
                    modify(&mut headers, m);
                }
            }
            "RequestMirror" => {
                if let Some(m) = &f.request_mirror {
                    let percentage = match (m.percent, &m.fraction) {
                        (Some(p), _) => p,
                        (None, Some(fr)) => {
                            100.0 * f64::from(fr.numerator) / f64::from(fr.denominator.unwrap_or(100).max(1))
                        }
                        (None, None) => 100.0,
                    };
                    if let Some(subset) = backend_subset(
                        &m.backend_ref,
                        &format!("{at}.requestMirror.backendRef"),
                        parent.key,
                        doc,
                        scope,
                        report,
                        subsets,
                    ) {
                        resilience.mirror = Some(Mirror { subset, percentage: percentage.clamp(0.0, 100.0) });
                    }
                }
            }
            "ResponseHeaderModifier" => {
                if let Some(m) = &f.response_header_modifier {
                    modify(&mut response_headers, m);
                }
            }
            "URLRewrite" => {
                if let Some(u) = &f.url_rewrite {
                    let (path, prefix) = u.path.as_ref().map(PathModifier::split).unwrap_or_default();
                    rewrite = Some(UrlRewrite { path, prefix, host: u.hostname.clone() });
                }
            }
            "RequestRedirect" => {
                if let Some(r) = &f.request_redirect {
                    let (path, prefix) = r.path.as_ref().map(PathModifier::split).unwrap_or_default();
                    redirect = Some(Redirect {
                        scheme: r.scheme.clone(),
                        host: r.hostname.clone(),
                        port: r.port,
                        path,
                        prefix,
                        status: r.status_code.unwrap_or(302),
                    });
                }
            }
            other => report.unsupported(format!("{at}: {other}")),
        }
        let _ = (
            &f.response_header_modifier,
            &f.request_redirect,
            &f.url_rewrite,
            &f.extension_ref,
            &f.cors,
            &f.external_auth,
        );
    }
    if rule.session_persistence.is_some() {
        report.unsupported(format!("{at}.sessionPersistence"));
    }
    let mut destinations = Vec::new();
    let mut broken = 0;
    for (j, b) in rule.backend_refs.iter().enumerate() {
        let at = format!("{at}.backendRefs[{j}]");
        let (mut headers, mut response_headers) = (HeaderRewrite::default(), HeaderRewrite::default());
        for (k, f) in b.filters.iter().enumerate() {
            match (f.kind.as_str(), &f.request_header_modifier, &f.response_header_modifier) {
                ("RequestHeaderModifier", Some(m), _) => modify(&mut headers, m),
                ("ResponseHeaderModifier", _, Some(m)) => modify(&mut response_headers, m),
                (other, _, _) => report.unsupported(format!("{at}.filters[{k}]: {other}")),
            }
        }
        let weight = b.weight.unwrap_or(1);
        match backend_subset(&b.target, &at, parent.key, doc, scope, report, subsets) {
            Some(subset) if weight > 0 => destinations.push(Destination {
                subset,
                weight: weight.min(10_000),
                fallback: None,
                headers,
                response_headers,
            }),
            Some(_) => {}
            None => broken += 1,
        }
    }
    if redirect.is_some() {
        // Answered by the proxy: no backend needed.
    } else if destinations.is_empty() {
        // The spec: requests a rule cannot send anywhere get 500.
        let why = if broken > 0 { "no backend resolves" } else { "no backend has weight" };
        report.message = format!("{at}: {why}; requests get 500");
        resilience.faults = vec![Fault {
            tags: Vec::new(),
            abort: Some(FaultAbort { status: 500, percentage: 100.0 }),
            delay: None,
        }];
    } else if destinations.len() == 1
        && destinations[0].headers.is_empty()
        && destinations[0].response_headers.is_empty()
        && subsets
            .get(&destinations[0].subset)
            .and_then(|d| d.backend.as_ref())
            .is_some_and(|b| parent.is_itself(b, scope))
    {
        // The parent itself on the port the request came to: the lane decides, as without
        // a route.
        destinations.clear();
    }
    if let Some(t) = &rule.timeouts {
        let request =
            t.request.as_deref().and_then(|v| duration(v, &format!("{at}.timeouts.request"), report));
        let backend = t
            .backend_request
            .as_deref()
            .and_then(|v| duration(v, &format!("{at}.timeouts.backendRequest"), report));
        resilience.timeout = request.or(backend);
        if let (Some(b), None) = (backend, &rule.retry) {
            resilience.timeout = Some(resilience.timeout.map_or(b, |r| if b.0 < r.0 { b } else { r }));
        }
        if let Some(r) = &rule.retry {
            resilience.retry = retry(r, backend, &format!("{at}.retry"), report);
        }
    } else if let Some(r) = &rule.retry {
        resilience.retry = retry(r, None, &format!("{at}.retry"), report);
    }
    Some(Route {
        name: None,
        matches: RouteMatch::default(),
        destinations,
        headers,
        response_headers,
        rewrite,
        redirect,
        resilience,
    })
}

/// A header modifier's `set` replaces, `add` appends, `remove` removes.
fn modify(into: &mut HeaderRewrite, m: &HeaderModifier) {
    for nv in &m.set {
        into.add.insert(nv.name.to_ascii_lowercase(), nv.value.clone());
    }
    for nv in &m.add {
        into.append.insert(nv.name.to_ascii_lowercase(), nv.value.clone());
    }
    into.remove.extend(m.remove.iter().map(|n| n.to_ascii_lowercase()));
}

fn duration(text: &str, at: &str, report: &mut Report) -> Option<crate::inventory::resilience::Period> {
    if text.trim() == "0s" {
        return None; // "no timeout"
    }
    period(text).map_err(|e| report.unsupported(format!("{at}: {e}"))).ok()
}

fn retry(
    r: &RetryPolicy,
    per_try: Option<crate::inventory::resilience::Period>,
    at: &str,
    report: &mut Report,
) -> Option<Retry> {
    let attempts = r.attempts.unwrap_or(1);
    if attempts == 0 {
        return None;
    }
    let mut json = serde_json::json!({ "attempts": attempts.min(10) });
    if !r.codes.is_empty() {
        json["statuses"] = serde_json::json!(r.codes);
    }
    let mut out: Retry = serde_json::from_value(json).ok()?;
    out.per_try_timeout = per_try;
    if let Some(b) = &r.backoff
        && let Some(p) = duration(b, &format!("{at}.backoff"), report)
    {
        out.backoff = p;
    }
    Some(out)
}

/// A match as graylane's, with its precedence; `None` when it cannot be honoured.
fn route_match(m: &Match, at: &str, report: &mut Report) -> Option<(RouteMatch, Precedence)> {
    // No path is PathPrefix `/`: it ranks as that prefix.
    let mut precedence =
        Precedence { not_exact: true, shorter_prefix: std::cmp::Reverse(1), ..Default::default() };
    let path = match &m.path {
        None => None,
        Some(p) => {
            let value = p.value.clone().unwrap_or_else(|| "/".into());
            match p.kind.as_deref().unwrap_or("PathPrefix") {
                "Exact" => {
                    precedence.not_exact = false;
                    precedence.shorter_prefix = std::cmp::Reverse(value.len());
                    Some(StringMatch { exact: Some(value), ..Default::default() })
                }
                "PathPrefix" => {
                    precedence.shorter_prefix = std::cmp::Reverse(value.len());
                    let trimmed = value.trim_end_matches('/');
                    // Element-wise: `/foo` matches `/foo` and `/foo/bar`, not `/foobar`.
                    (!trimmed.is_empty()).then(|| StringMatch {
                        regex: Some(format!("{}(/.*)?", regex::escape(trimmed))),
                        ..Default::default()
                    })
                }
                "RegularExpression" => Some(StringMatch { regex: Some(value), ..Default::default() }),
                other => {
                    report.unsupported(format!("{at}.path.type: {other} (the match is skipped)"));
                    return None;
                }
            }
        }
    };
    let mut keyed = |list: &[ValueMatch], what: &str| -> Option<Vec<KeyMatch>> {
        let mut out = Vec::new();
        for (i, v) in list.iter().enumerate() {
            let (exact, regex) = match v.kind.as_deref().unwrap_or("Exact") {
                "Exact" => (Some(v.value.clone()), None),
                "RegularExpression" => (None, Some(v.value.clone())),
                other => {
                    report.unsupported(format!("{at}.{what}[{i}].type: {other} (the match is skipped)"));
                    return None;
                }
            };
            out.push(KeyMatch { name: v.name.clone(), exact, prefix: None, regex, present: None });
        }
        Some(out)
    };
    let headers = keyed(&m.headers, "headers")?;
    let query = keyed(&m.query_params, "queryParams")?;
    precedence.no_method = m.method.is_none();
    precedence.fewer_headers = std::cmp::Reverse(headers.len());
    precedence.fewer_query = std::cmp::Reverse(query.len());
    Some((
        RouteMatch {
            path,
            method: m.method.clone(),
            headers,
            query,
            source_labels: BTreeMap::new(),
            port: None,
        },
        precedence,
    ))
}
