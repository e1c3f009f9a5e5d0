//! Istio `VirtualService` and `DestinationRule` (`networking.istio.io` v1alpha3, v1beta1,
//! v1): HTTP routes, subsets by labels, load balancing, outlier detection, connection
//! limits. Fields graylane does not honour are reported by name.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Emit, ForeignDoc, Fragment, Rank, Report, Scope, duration::period};
use crate::inventory::{
    policy::{
        Destination, HashOn, HeaderRewrite, KeyMatch, LbPolicy, LoadBalancer, PrefixRewrite, Redirect, Route,
        RouteMatch, StringMatch, SubsetDef, UrlRewrite,
    },
    resilience::{
        CircuitBreaker, Concurrency, Fault as GlFault, FaultAbort, FaultDelay, Mirror, Resilience, Retry,
    },
};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VirtualService {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    http: Vec<HttpRoute>,
    gateways: Option<Value>,
    tcp: Option<Value>,
    tls: Option<Value>,
    export_to: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpRoute {
    name: Option<String>,
    #[serde(default, rename = "match")]
    matches: Vec<HttpMatch>,
    #[serde(default)]
    route: Vec<RouteDestination>,
    fault: Option<Fault>,
    retries: Option<Retries>,
    timeout: Option<String>,
    mirror: Option<IstioDestination>,
    mirror_percentage: Option<Percent>,
    headers: Option<Headers>,
    mirror_percent: Option<Value>,
    mirrors: Option<Value>,
    redirect: Option<IstioRedirect>,
    rewrite: Option<IstioRewrite>,
    delegate: Option<Value>,
    cors_policy: Option<Value>,
    direct_response: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IstioRedirect {
    uri: Option<String>,
    authority: Option<String>,
    port: Option<u16>,
    scheme: Option<String>,
    redirect_code: Option<u16>,
    derive_port: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IstioRewrite {
    uri: Option<String>,
    authority: Option<String>,
    uri_regex_rewrite: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpMatch {
    #[serde(rename = "name")]
    _name: Option<String>,
    uri: Option<IstioString>,
    #[serde(default)]
    headers: BTreeMap<String, IstioString>,
    #[serde(default)]
    query_params: BTreeMap<String, IstioString>,
    method: Option<IstioString>,
    #[serde(default)]
    source_labels: BTreeMap<String, String>,
    port: Option<u16>,
    without_headers: Option<Value>,
    authority: Option<Value>,
    scheme: Option<Value>,
    ignore_uri_case: Option<Value>,
    gateways: Option<Value>,
    source_namespace: Option<Value>,
    stat_prefix: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct IstioString {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct RouteDestination {
    destination: IstioDestination,
    weight: Option<u32>,
    headers: Option<Headers>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct IstioDestination {
    host: String,
    subset: Option<String>,
    port: Option<Value>,
    /// OpenSergo TrafficRouter only: where to go when `subset` has no instance.
    fallback: Option<FallbackRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct FallbackRef {
    host: String,
    subset: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Fault {
    delay: Option<Delay>,
    abort: Option<Abort>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Delay {
    fixed_delay: Option<String>,
    percentage: Option<Percent>,
    percent: Option<f64>,
    exponential_delay: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Abort {
    http_status: Option<u16>,
    percentage: Option<Percent>,
    grpc_status: Option<Value>,
    http2_error: Option<Value>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize)]
struct Percent {
    value: f64,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Retries {
    #[serde(default)]
    attempts: u32,
    per_try_timeout: Option<String>,
    retry_on: Option<String>,
    retry_remote_localities: Option<Value>,
    backoff: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Headers {
    request: Option<HeaderOps>,
    response: Option<HeaderOps>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct HeaderOps {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    add: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationRule {
    host: String,
    traffic_policy: Option<TrafficPolicy>,
    #[serde(default)]
    subsets: Vec<Subset>,
    export_to: Option<Vec<String>>,
    workload_selector: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrafficPolicy {
    load_balancer: Option<Lb>,
    connection_pool: Option<ConnectionPool>,
    outlier_detection: Option<Outlier>,
    tls: Option<Value>,
    port_level_settings: Option<Value>,
    tunnel: Option<Value>,
    proxy_protocol: Option<Value>,
    retry_budget: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Lb {
    simple: Option<String>,
    consistent_hash: Option<ConsistentHash>,
    locality_lb_setting: Option<Value>,
    warmup_duration_secs: Option<Value>,
    warmup: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistentHash {
    http_header_name: Option<String>,
    http_cookie: Option<Cookie>,
    use_source_ip: Option<bool>,
    minimum_ring_size: Option<u32>,
    ring_hash: Option<RingHash>,
    http_query_parameter_name: Option<Value>,
    maglev: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cookie {
    name: String,
    ttl: Option<String>,
    path: Option<Value>,
    attributes: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RingHash {
    minimum_ring_size: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct ConnectionPool {
    tcp: Option<BTreeMap<String, Value>>,
    http: Option<HttpPool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HttpPool {
    http2_max_requests: Option<u32>,
    http1_max_pending_requests: Option<Value>,
    max_requests_per_connection: Option<Value>,
    max_retries: Option<Value>,
    idle_timeout: Option<Value>,
    h2_upgrade_policy: Option<Value>,
    use_client_protocol: Option<Value>,
    max_concurrent_streams: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Outlier {
    consecutive_5xx_errors: Option<u32>,
    consecutive_gateway_errors: Option<u32>,
    consecutive_errors: Option<u32>,
    interval: Option<String>,
    base_ejection_time: Option<String>,
    max_ejection_percent: Option<u32>,
    min_health_percent: Option<Value>,
    split_external_local_origin_errors: Option<Value>,
    consecutive_local_origin_failures: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subset {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    traffic_policy: Option<TrafficPolicy>,
}

/// Reports every field of `fields` that is set, under `at`.
fn unsupported(report: &mut Report, at: &str, fields: &[(&str, bool)]) {
    for (name, set) in fields {
        if *set {
            report.unsupported(format!("{at}.{name}"));
        }
    }
}

/// A `VirtualService`, or an OpenSergo `TrafficRouter` (a VirtualService whose
/// destinations may name a fallback), ranked `rank`.
pub(super) fn virtual_service(
    vs: &VirtualService,
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    rank: Rank,
    report: &mut Report,
    emit: &mut Emit<'_>,
) {
    unsupported(
        report,
        "spec",
        &[("gateways", vs.gateways.is_some()), ("tcp", vs.tcp.is_some()), ("tls", vs.tls.is_some())],
    );
    let mut services = Vec::new();
    for (i, host) in vs.hosts.iter().enumerate() {
        match scope.host(host, &doc.namespace) {
            Some(s) if !services.contains(&s) => services.push(s),
            Some(_) => {}
            None => report.unsupported(format!("spec.hosts[{i}]: {host} (no such service)")),
        }
    }
    if services.is_empty() {
        report.reject("NoMatchingParent", "no host of spec.hosts names a service");
        return;
    }
    // Istio: the namespaces that see the rule (`exportTo`). OpenSergo's TrafficRouter acts
    // on its own namespace's Services, on another's only where a ReferenceGrant allows it.
    let audience = match rank {
        Rank::OpenSergo => Some(None),
        _ => export_to(vs.export_to.as_deref(), &doc.namespace, scope.export, report),
    };
    let Some(audience) = audience else {
        report.reject("NotExported", "spec.exportTo is `~`: the rule is visible to no namespace");
        return;
    };
    let mut refused = Vec::new();
    let mut acted = 0;
    for service in services {
        let mut origin = None;
        if rank == Rank::OpenSergo && service.0 != doc.namespace {
            if !scope.granted("traffic.opensergo.io", doc.kind, &doc.namespace, &service) {
                refused.push(format!("{}/{}", service.0, service.1));
                continue;
            }
            origin = Some(service.0.clone());
        }
        acted += 1;
        let svc = scope.service(&service);
        let mut fragment = Fragment { audience: audience.clone(), origin, ..Fragment::default() };
        for (i, http) in vs.http.iter().enumerate() {
            let at = format!("spec.http[{i}]");
            let Some(base) = http_route(http, &at, &service, doc, scope, report) else {
                continue;
            };
            let name = http.name.clone().unwrap_or_else(|| format!("{}-{i}", doc.name));
            if http.matches.is_empty() {
                fragment.routes.push(super::at_prefix(Route { name: Some(name), ..base }, None));
                continue;
            }
            for (j, m) in http.matches.iter().enumerate() {
                let matches = route_match(m, &format!("{at}.match[{j}]"), report);
                let prefix = m.uri.as_ref().and_then(|u| u.prefix.as_deref());
                let route = Route { name: Some(format!("{name}.{j}")), matches, ..base.clone() };
                fragment.routes.push(super::at_prefix(route, prefix));
            }
        }
        // A destination without a subset is the whole service: a subset of its selector.
        if fragment.routes.iter().any(|r| r.destinations.iter().any(|d| d.subset == service.1))
            && let Some(svc) = svc
        {
            fragment.subsets.push(SubsetDef {
                name: service.1.clone(),
                labels: svc.selector.clone(),
                load_balancer: None,
                backend: None,
            });
        }
        emit(service, rank, fragment, report);
    }
    if !refused.is_empty() {
        let why = format!(
            "a {} acts on Services of its own namespace ({}); refused for {} (no ReferenceGrant there allows it)",
            doc.kind,
            doc.namespace,
            refused.join(", ")
        );
        if acted == 0 {
            report.reject("RefNotPermitted", why);
        } else {
            report.message = why;
        }
    }
}

/// Who sees a rule: `exportTo` (`.` its namespace, `*` every namespace, `~` none, or names),
/// else the cluster's default. `None`: nobody; `Some(None)`: every namespace.
fn export_to(
    list: Option<&[String]>,
    own: &str,
    default: super::Export,
    report: &mut Report,
) -> Option<Option<Vec<String>>> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Some(match default {
            super::Export::All => None,
            super::Export::Namespace => Some(vec![own.to_owned()]),
        });
    };
    if list.iter().any(|n| n == "*") {
        return Some(None);
    }
    if list.iter().any(|n| n == "~") {
        if list.len() > 1 {
            report.unsupported("spec.exportTo: `~` with other entries (read as `~`)");
        }
        return None;
    }
    let mut names: Vec<String> =
        list.iter().map(|n| if n == "." { own.to_owned() } else { n.clone() }).collect();
    names.sort();
    names.dedup();
    Some(Some(names))
}

/// One `http` entry without its matches: destinations, rewrites and resilience.
fn http_route(
    http: &HttpRoute,
    at: &str,
    service: &(String, String),
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Option<Route> {
    unsupported(
        report,
        at,
        &[
            ("mirrorPercent", http.mirror_percent.is_some()),
            ("mirrors", http.mirrors.is_some()),
            ("corsPolicy", http.cors_policy.is_some()),
        ],
    );
    for (field, set) in [("directResponse", &http.direct_response), ("delegate", &http.delegate)] {
        if set.is_some() {
            report.unsupported(format!("{at}.{field} (the route is skipped)"));
            return None;
        }
    }
    if let Some(r) = &http.redirect {
        unsupported(report, &format!("{at}.redirect"), &[("derivePort", r.derive_port.is_some())]);
        let redirect = Redirect {
            scheme: r.scheme.clone(),
            host: r.authority.clone(),
            port: r.port,
            // Istio's redirect uri replaces the whole path.
            path: r.uri.clone(),
            prefix: None,
            status: r.redirect_code.unwrap_or(301),
        };
        return Some(Route { redirect: Some(redirect), ..Default::default() });
    }
    // A prefix match's rewrite replaces the matched prefix (filled in per match).
    let rewrite = http.rewrite.as_ref().map(|r| {
        unsupported(report, &format!("{at}.rewrite"), &[("uriRegexRewrite", r.uri_regex_rewrite.is_some())]);
        let prefix = r.uri.clone().map(|to| PrefixRewrite { from: String::new(), to });
        UrlRewrite { path: None, prefix, host: r.authority.clone() }
    });
    let same = |host: &str| scope.host(host, &doc.namespace).as_ref() == Some(service);
    let mut destinations = Vec::new();
    let several = http.route.len() > 1;
    for (j, d) in http.route.iter().enumerate() {
        let at = format!("{at}.route[{j}]");
        if !same(&d.destination.host) {
            report.unsupported(format!("{at}.destination.host: {} (another service)", d.destination.host));
            continue;
        }
        if d.destination.port.is_some() {
            report.unsupported(format!("{at}.destination.port"));
        }
        let subset = d.destination.subset.clone().unwrap_or_else(|| service.1.clone());
        let fallback = match &d.destination.fallback {
            Some(_) if doc.kind != "TrafficRouter" => {
                report.unsupported(format!("{at}.destination.fallback (not a VirtualService field)"));
                None
            }
            Some(f) if same(&f.host) => Some(f.subset.clone().unwrap_or_else(|| service.1.clone())),
            Some(f) => {
                report.unsupported(format!("{at}.destination.fallback.host: {} (another service)", f.host));
                None
            }
            None => None,
        };
        let weight = d.weight.unwrap_or(if several { 0 } else { 100 });
        let (headers, response_headers) = match &d.headers {
            Some(h) => (ops(&h.request), ops(&h.response)),
            None => Default::default(),
        };
        destinations.push(Destination { subset, weight, fallback, headers, response_headers });
    }
    if destinations.is_empty() {
        report.unsupported(format!("{at}: no destination in this service (the route is skipped)"));
        return None;
    }
    if destinations.iter().all(|d| d.weight == 0) {
        destinations.iter_mut().for_each(|d| d.weight = 1);
    }
    // One destination that is the whole service: the lane decides, as without a route.
    if destinations.len() == 1
        && destinations[0].subset == service.1
        && destinations[0].fallback.is_none()
        && destinations[0].headers.is_empty()
        && destinations[0].response_headers.is_empty()
    {
        destinations.clear();
    }
    let mut resilience = Resilience::default();
    if let Some(t) = &http.timeout {
        match period(t) {
            Ok(p) => resilience.timeout = Some(p),
            Err(_) if t.trim() == "0s" => {}
            Err(e) => report.unsupported(format!("{at}.timeout: {e}")),
        }
    }
    if let Some(r) = &http.retries {
        resilience.retry = retry(r, &format!("{at}.retries"), report);
    }
    if let Some(f) = &http.fault {
        resilience.faults = fault(f, &format!("{at}.fault"), report).into_iter().collect();
    }
    if let Some(m) = &http.mirror {
        if same(&m.host) {
            let subset = m.subset.clone().unwrap_or_else(|| service.1.clone());
            let percentage = http.mirror_percentage.map(|p| p.value).unwrap_or(100.0);
            resilience.mirror = Some(Mirror { subset, percentage });
        } else {
            report.unsupported(format!("{at}.mirror.host: {} (another service)", m.host));
        }
    }
    let (headers, response_headers) = match &http.headers {
        Some(h) => (ops(&h.request), ops(&h.response)),
        None => Default::default(),
    };
    Some(Route {
        name: None,
        matches: RouteMatch::default(),
        destinations,
        headers,
        response_headers,
        rewrite,
        redirect: None,
        resilience,
    })
}

/// Istio's header operations: `set` replaces, `add` appends, `remove`.
fn ops(o: &Option<HeaderOps>) -> HeaderRewrite {
    let mut out = HeaderRewrite::default();
    if let Some(o) = o {
        out.add.extend(o.set.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
        out.append.extend(o.add.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())));
        out.remove.extend(o.remove.iter().map(|k| k.to_ascii_lowercase()));
    }
    out
}

fn route_match(m: &HttpMatch, at: &str, report: &mut Report) -> RouteMatch {
    unsupported(
        report,
        at,
        &[
            ("withoutHeaders", m.without_headers.is_some()),
            ("authority", m.authority.is_some()),
            ("scheme", m.scheme.is_some()),
            ("ignoreUriCase", m.ignore_uri_case.is_some()),
            ("gateways", m.gateways.is_some()),
            ("sourceNamespace", m.source_namespace.is_some()),
            ("statPrefix", m.stat_prefix.is_some()),
        ],
    );
    let keyed = |name: &str, s: &IstioString| KeyMatch {
        name: name.to_owned(),
        exact: s.exact.clone(),
        prefix: s.prefix.clone(),
        regex: s.regex.clone(),
        present: (s.exact.is_none() && s.prefix.is_none() && s.regex.is_none()).then_some(true),
    };
    let method = m.method.as_ref().and_then(|s| {
        if s.exact.is_none() {
            report.unsupported(format!("{at}.method (only exact)"));
        }
        s.exact.clone()
    });
    RouteMatch {
        path: m.uri.as_ref().map(|u| StringMatch {
            exact: u.exact.clone(),
            prefix: u.prefix.clone(),
            regex: u.regex.clone(),
        }),
        method,
        headers: m.headers.iter().map(|(k, v)| keyed(k, v)).collect(),
        query: m.query_params.iter().map(|(k, v)| keyed(k, v)).collect(),
        source_labels: m.source_labels.clone(),
        port: m.port,
    }
}

fn retry(r: &Retries, at: &str, report: &mut Report) -> Option<Retry> {
    if r.attempts == 0 {
        return None;
    }
    unsupported(report, at, &[("retryRemoteLocalities", r.retry_remote_localities.is_some())]);
    let mut statuses = Vec::new();
    for cond in r.retry_on.as_deref().unwrap_or("").split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match cond {
            "5xx" => statuses.extend(500..=599),
            "gateway-error" => statuses.extend([502, 503, 504]),
            "retriable-4xx" => statuses.push(409),
            // Transport failures: graylane retries these whatever the list says.
            "connect-failure"
            | "refused-stream"
            | "reset"
            | "retriable-status-codes"
            | "unavailable"
            | "cancelled"
            | "deadline-exceeded"
            | "resource-exhausted"
            | "internal" => {}
            code => match code.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => statuses.push(c),
                _ => report.unsupported(format!("{at}.retryOn: {code}")),
            },
        }
    }
    statuses.sort_unstable();
    statuses.dedup();
    let mut json = serde_json::json!({ "attempts": r.attempts.min(10) });
    if !statuses.is_empty() {
        json["statuses"] = serde_json::json!(statuses);
    }
    let mut out: Retry = serde_json::from_value(json).ok()?;
    if let Some(t) = &r.per_try_timeout {
        match period(t) {
            Ok(p) => out.per_try_timeout = Some(p),
            Err(e) => report.unsupported(format!("{at}.perTryTimeout: {e}")),
        }
    }
    if let Some(b) = &r.backoff {
        match period(b) {
            Ok(p) => out.backoff = p,
            Err(e) => report.unsupported(format!("{at}.backoff: {e}")),
        }
    }
    Some(out)
}

fn fault(f: &Fault, at: &str, report: &mut Report) -> Option<GlFault> {
    let mut out = GlFault { tags: Vec::new(), abort: None, delay: None };
    if let Some(d) = &f.delay {
        unsupported(report, &format!("{at}.delay"), &[("exponentialDelay", d.exponential_delay.is_some())]);
        let percentage = d.percentage.map(|p| p.value).or(d.percent).unwrap_or(100.0);
        match d.fixed_delay.as_deref().map(period) {
            Some(Ok(duration)) => out.delay = Some(FaultDelay { duration, percentage }),
            Some(Err(e)) => report.unsupported(format!("{at}.delay.fixedDelay: {e}")),
            None => {}
        }
    }
    if let Some(a) = &f.abort {
        unsupported(
            report,
            &format!("{at}.abort"),
            &[("grpcStatus", a.grpc_status.is_some()), ("http2Error", a.http2_error.is_some())],
        );
        if let Some(status) = a.http_status {
            let percentage = a.percentage.map(|p| p.value).unwrap_or(100.0);
            out.abort = Some(FaultAbort { status, percentage });
        }
    }
    (out.abort.is_some() || out.delay.is_some()).then_some(out)
}

pub(super) fn destination_rule(
    dr: &DestinationRule,
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    report: &mut Report,
    emit: &mut Emit<'_>,
) {
    unsupported(report, "spec", &[("workloadSelector", dr.workload_selector.is_some())]);
    let Some(service) = scope.host(&dr.host, &doc.namespace) else {
        report.reject("NoMatchingParent", format!("spec.host {} names no service", dr.host));
        return;
    };
    // Subsets written elsewhere serve only the routes of their own namespace, and settings for
    // the whole service come only from its own namespace; `exportTo` can only narrow that.
    match export_to(dr.export_to.as_deref(), &doc.namespace, scope.export, report) {
        None => {
            report.reject("NotExported", "spec.exportTo is `~`: the rule is visible to no namespace");
            return;
        }
        Some(Some(_)) if service.0 == doc.namespace && dr.export_to.is_some() => report.unsupported(
            "spec.exportTo (a DestinationRule in the service's own namespace applies to every caller)",
        ),
        Some(_) => {}
    }
    let mut fragment = Fragment::default();
    if let Some(tp) = &dr.traffic_policy {
        fragment.load_balancer = tp
            .load_balancer
            .as_ref()
            .and_then(|lb| load_balancer(lb, "spec.trafficPolicy.loadBalancer", report));
        fragment.resilience = traffic_policy(tp, "spec.trafficPolicy", report);
    }
    for (i, s) in dr.subsets.iter().enumerate() {
        let at = format!("spec.subsets[{i}]");
        if s.labels.is_empty() {
            report.unsupported(format!("{at}.labels: empty (the subset is skipped)"));
            continue;
        }
        let mut load = None;
        if let Some(tp) = &s.traffic_policy {
            let at = format!("{at}.trafficPolicy");
            load = tp
                .load_balancer
                .as_ref()
                .and_then(|lb| load_balancer(lb, &format!("{at}.loadBalancer"), report));
            if tp.connection_pool.is_some() || tp.outlier_detection.is_some() {
                report.unsupported(format!("{at}: connectionPool and outlierDetection per subset"));
            }
            unsupported(
                report,
                &at,
                &[("tls", tp.tls.is_some()), ("portLevelSettings", tp.port_level_settings.is_some())],
            );
        }
        fragment.subsets.push(SubsetDef {
            name: s.name.clone(),
            labels: s.labels.clone(),
            load_balancer: load,
            backend: None,
        });
    }
    emit(service, Rank::DestinationRule, fragment, report);
}

fn load_balancer(lb: &Lb, at: &str, report: &mut Report) -> Option<LoadBalancer> {
    unsupported(
        report,
        at,
        &[
            ("localityLbSetting", lb.locality_lb_setting.is_some()),
            ("warmupDurationSecs", lb.warmup_duration_secs.is_some()),
            ("warmup", lb.warmup.is_some()),
        ],
    );
    if let Some(ch) = &lb.consistent_hash {
        unsupported(
            report,
            &format!("{at}.consistentHash"),
            &[
                ("httpQueryParameterName", ch.http_query_parameter_name.is_some()),
                ("maglev", ch.maglev.is_some()),
            ],
        );
        let hash_on = match (&ch.http_header_name, &ch.http_cookie, ch.use_source_ip) {
            (Some(h), _, _) => HashOn { header: Some(h.to_ascii_lowercase()), ..Default::default() },
            (None, Some(c), _) => {
                if c.ttl.as_deref().is_some_and(|t| period(t).is_ok()) {
                    report.unsupported(format!(
                        "{at}.consistentHash.httpCookie.ttl (graylane hashes the cookie, it does not set it)"
                    ));
                }
                unsupported(
                    report,
                    &format!("{at}.consistentHash.httpCookie"),
                    &[("path", c.path.is_some()), ("attributes", c.attributes.is_some())],
                );
                HashOn { cookie: Some(c.name.clone()), ..Default::default() }
            }
            (None, None, Some(true)) => HashOn { source_ip: Some(true), ..Default::default() },
            _ => return None,
        };
        let min_ring_size = ch.minimum_ring_size.or(ch.ring_hash.as_ref().and_then(|r| r.minimum_ring_size));
        return Some(LoadBalancer {
            policy: LbPolicy::RingHash,
            hash_on: Some(hash_on),
            min_ring_size,
            subset_size: None,
        });
    }
    let policy = match lb.simple.as_deref() {
        None => return None,
        Some("ROUND_ROBIN" | "UNSPECIFIED") => LbPolicy::RoundRobin,
        Some("LEAST_REQUEST" | "LEAST_CONN") => LbPolicy::LeastRequest,
        Some("RANDOM") => LbPolicy::Random,
        Some(other) => {
            report.unsupported(format!("{at}.simple: {other}"));
            return None;
        }
    };
    Some(LoadBalancer { policy, ..Default::default() })
}

/// Connection pool and outlier detection, as graylane's concurrency cap and breaker.
fn traffic_policy(tp: &TrafficPolicy, at: &str, report: &mut Report) -> Resilience {
    unsupported(
        report,
        at,
        &[
            ("tls", tp.tls.is_some()),
            ("portLevelSettings", tp.port_level_settings.is_some()),
            ("tunnel", tp.tunnel.is_some()),
            ("proxyProtocol", tp.proxy_protocol.is_some()),
            ("retryBudget", tp.retry_budget.is_some()),
        ],
    );
    let mut out = Resilience::default();
    if let Some(pool) = &tp.connection_pool {
        let at = format!("{at}.connectionPool");
        if let Some(tcp) = &pool.tcp {
            for key in tcp.keys() {
                report.unsupported(format!("{at}.tcp.{key}"));
            }
        }
        if let Some(http) = &pool.http {
            let at = format!("{at}.http");
            unsupported(
                report,
                &at,
                &[
                    ("http1MaxPendingRequests", http.http1_max_pending_requests.is_some()),
                    ("maxRequestsPerConnection", http.max_requests_per_connection.is_some()),
                    ("maxRetries", http.max_retries.is_some()),
                    ("idleTimeout", http.idle_timeout.is_some()),
                    ("h2UpgradePolicy", http.h2_upgrade_policy.is_some()),
                    ("useClientProtocol", http.use_client_protocol.is_some()),
                    ("maxConcurrentStreams", http.max_concurrent_streams.is_some()),
                ],
            );
            if let Some(max) = http.http2_max_requests.filter(|m| *m > 0) {
                out.concurrency = Some(Concurrency { max_in_flight: Some(max), max_per_endpoint: None });
            }
        }
    }
    if let Some(o) = &tp.outlier_detection {
        let at = format!("{at}.outlierDetection");
        unsupported(
            report,
            &at,
            &[
                ("minHealthPercent", o.min_health_percent.is_some()),
                ("splitExternalLocalOriginErrors", o.split_external_local_origin_errors.is_some()),
                ("consecutiveLocalOriginFailures", o.consecutive_local_origin_failures.is_some()),
            ],
        );
        let failures =
            o.consecutive_5xx_errors.or(o.consecutive_gateway_errors).or(o.consecutive_errors).unwrap_or(5);
        let mut json = serde_json::json!({
            "consecutiveFailures": failures.max(1),
            "maxEjectionPercent": o.max_ejection_percent.unwrap_or(10).min(100),
            "openFor": "30s",
        });
        if let Some(t) = &o.base_ejection_time {
            match period(t) {
                Ok(p) => json["openFor"] = serde_json::json!(format!("{}ms", p.0.as_millis().max(1))),
                Err(e) => report.unsupported(format!("{at}.baseEjectionTime: {e}")),
            }
        }
        if let Some(t) = &o.interval {
            match period(t) {
                Ok(p) => json["window"] = serde_json::json!(format!("{}ms", p.0.as_millis().max(1))),
                Err(e) => report.unsupported(format!("{at}.interval: {e}")),
            }
        }
        out.circuit_breaker = serde_json::from_value::<CircuitBreaker>(json).ok();
    }
    out
}
