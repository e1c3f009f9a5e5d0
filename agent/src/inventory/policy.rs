//! graylane's own objects (`graylane.io/v1alpha1`): `TrafficPolicy` (per service: routes,
//! subsets and fallback, load balancing) and `TrafficLabelRule` (entry coloring).
//! Defined once, here: the CRDs in `deploy/crds/` are generated from these types
//! (`graylane crds`), both inventory sources parse them, `proxy::routing` compiles them.

use super::FieldError;
use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::data_lanes::{self, DataLanes};
use super::resilience::{self, Resilience};

/// Routing policy of one service: routes, subset fallback, load balancing.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "graylane.io",
    version = "v1alpha1",
    kind = "TrafficPolicy",
    namespaced,
    shortname = "gtp",
    printcolumn = r#"{"name":"Service","type":"string","jsonPath":".spec.service"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficPolicySpec {
    /// Name of the service (same namespace).
    pub service: String,
    /// What a tagged request gets when its subset has no ready endpoint.
    #[serde(default)]
    pub fallback: Fallback,
    #[serde(default)]
    pub load_balancer: LoadBalancer,
    /// Subsets defined by pod labels (Istio's DestinationRule subsets), besides the
    /// subsets the pods' `graylane.io/tag` defines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<SubsetDef>,
    /// Ordered: the first route that matches wins.
    #[serde(default)]
    pub routes: Vec<Route>,
    /// For a data store (Redis, MySQL/MariaDB, NATS): what each lane's connections get
    /// (key prefix, schemas, subjects), so a lane's data stays apart in the same store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_lanes: Option<DataLanes>,
    /// Timeout, rate limit, concurrency cap, faults for the whole service.
    #[serde(flatten)]
    pub resilience: Resilience,
    /// Who each run of `routes` is for, when the routes come from rules of several
    /// namespaces (set by the translation of other languages; empty: every route is for
    /// every caller, as a TrafficPolicy's are).
    #[serde(skip)]
    pub views: Vec<RouteView>,
}

/// A run of a policy's routes and the callers it is for. A caller takes the routes of the
/// first view that admits it, preferring a view written in its own namespace, then one
/// written in the service's, then the others (Istio's order; GAMMA's consumer routes before
/// producer routes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteView {
    /// The callers' namespaces; `None`: every caller (known pod or not).
    pub audience: Option<Vec<String>>,
    /// The namespace the routes were written in.
    pub origin: String,
    /// `routes[first..first + len]`.
    pub first: usize,
    pub len: usize,
    /// The service ports the routes are attached to (empty: every port).
    pub ports: Vec<u16>,
    /// A request no route of the view matches is answered 404 (Gateway API) instead of
    /// going to the service.
    pub closed: bool,
    /// The objects the routes come from, for explanations.
    pub source: String,
}

/// Whether routes for `audience` (a [`RouteView`]'s) admit a caller in `namespace`
/// (`None`: not a known pod, in no namespace).
pub fn admits(audience: Option<&[String]>, namespace: Option<&str>) -> bool {
    match (audience, namespace) {
        (None, _) => true,
        (Some(list), Some(ns)) => list.iter().any(|n| n == ns),
        (Some(_), None) => false,
    }
}

/// What a tagged request gets when its subset has no ready endpoint: the base subset
/// (default), `fail` (503, fail fast), or the first of `chain` with endpoints.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fallback {
    #[serde(default)]
    pub mode: FallbackMode,
    /// For `chain`: subsets to try in order, e.g. `[v3, v2, base]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// Lanes that never leave their subset whatever the mode (stress tests must not reach
    /// production): 503 `subset_unavailable` instead.
    #[serde(default = "isolated_lanes")]
    pub isolated: Vec<String>,
}

fn isolated_lanes() -> Vec<String> {
    vec!["stress".into()]
}

impl Default for Fallback {
    fn default() -> Self {
        Self { mode: FallbackMode::Base, chain: Vec::new(), isolated: isolated_lanes() }
    }
}

/// A subset of a service's endpoints defined by pod labels: the pods carrying every label.
/// A pod can be in several subsets (its tag's and each label subset it matches); a lane
/// picks the subset of its name.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SubsetDef {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Replaces the service's load balancing within this subset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancer>,
    /// Set by translation (a Gateway API backendRef): the subset is this Service's
    /// endpoints on this port, not the service's own pods by labels.
    #[serde(skip)]
    pub backend: Option<BackendService>,
}

/// Another Service's port, whose endpoints a subset stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendService {
    pub namespace: String,
    pub name: String,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum FallbackMode {
    #[default]
    Base,
    Fail,
    Chain,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LbPolicy {
    #[default]
    RoundRobin,
    LeastRequest,
    Random,
    RingHash,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancer {
    #[serde(default)]
    pub policy: LbPolicy,
    /// For `ringHash`: what to hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hash_on: Option<HashOn>,
    /// For `ringHash`: virtual nodes on the ring (default 1024).
    #[schemars(range(min = 1, max = 1_048_576))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_ring_size: Option<u32>,
    /// Deterministic subsetting: each source workload uses this many endpoints.
    #[schemars(range(min = 1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset_size: Option<u32>,
}

/// What ring hash keys on; exactly one is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HashOn {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cookie: Option<String>,
    #[serde(rename = "sourceIP", alias = "sourceIp")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_ip: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Route {
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: RouteMatch,
    /// Weighted subsets; empty = the request's lane decides.
    #[serde(default)]
    pub destinations: Vec<Destination>,
    #[serde(default)]
    pub headers: HeaderRewrite,
    /// Header changes on the upstream's response.
    #[serde(default, skip_serializing_if = "HeaderRewrite::is_empty")]
    pub response_headers: HeaderRewrite,
    /// Path and Host changes on the forwarded request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<UrlRewrite>,
    /// Answer with a redirect instead of forwarding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect: Option<Redirect>,
    /// Replaces the service's settings for requests of this route.
    #[serde(flatten)]
    pub resilience: Resilience,
}

/// How a forwarded request's path and Host change; at most one of `path` and `prefix`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UrlRewrite {
    /// The whole path (the query is kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The leading `from` of the path becomes `to` (`/api` → `/v2/api`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PrefixRewrite>,
    /// The Host (`:authority`) sent upstream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixRewrite {
    pub from: String,
    pub to: String,
}

/// A redirect answered by the proxy: each part replaces the request's own.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Redirect {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The whole path, or (`prefix`) the leading part replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<PrefixRewrite>,
    /// 301, 302 (default), 303, 307 or 308.
    #[serde(default = "found")]
    pub status: u16,
}

fn found() -> u16 {
    302
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<StringMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: Vec<KeyMatch>,
    #[serde(default)]
    pub query: Vec<KeyMatch>,
    /// Labels the calling pod must carry (Istio's `sourceLabels`: graylane knows the caller).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub source_labels: BTreeMap<String, String>,
    /// The service port the request was sent to (Istio's `port`; default: every port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// How a string is compared; exactly one is set.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StringMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

/// A named value (header, query parameter) and how it must look.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyMatch {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// `true`: present with any value; `false`: absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub present: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Destination {
    pub subset: String,
    #[serde(default = "default_weight")]
    #[schemars(range(max = 10_000))]
    pub weight: u32,
    /// Stands in when `subset` has no ready endpoint (OpenSergo TrafficRouter's fallback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Header changes on requests this destination serves, after the route's.
    #[serde(default, skip_serializing_if = "HeaderRewrite::is_empty")]
    pub headers: HeaderRewrite,
    /// Header changes on this destination's responses, after the route's.
    #[serde(default, skip_serializing_if = "HeaderRewrite::is_empty")]
    pub response_headers: HeaderRewrite,
}

fn default_weight() -> u32 {
    1
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeaderRewrite {
    /// Set: replaces any value the header had.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
    /// Appended: a value added to those the header already has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub append: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

impl HeaderRewrite {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }
}

/// Entry coloring (OpenSergo's TrafficLabelRule): requests from the selected source
/// workloads that match get a tag (and optionally a tenant).
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[kube(
    group = "graylane.io",
    version = "v1alpha1",
    kind = "TrafficLabelRule",
    namespaced,
    shortname = "gtlr",
    printcolumn = r#"{"name":"Tag","type":"string","jsonPath":".spec.tag"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct TrafficLabelRuleSpec {
    /// Labels of the source pods whose requests this rule colors (empty: every source).
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    /// The tag given (`trafficLabel` in OpenSergo).
    #[serde(alias = "trafficLabel")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// All must match.
    #[serde(default, rename = "match")]
    pub matches: Vec<LabelMatch>,
    /// Share of matching requests colored, 0-100 (default 100).
    #[schemars(range(min = 0.0, max = 100.0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum LabelMatchType {
    Header,
    Cookie,
    Query,
    Path,
    SourceLabel,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelMatch {
    #[serde(rename = "type")]
    pub kind: LabelMatchType,
    /// Header, cookie, query or label name (unused for `path`).
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub condition: Condition,
    #[serde(default)]
    pub value: String,
}

/// How a rule compares a value.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub enum Condition {
    #[default]
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "prefix")]
    Prefix,
    #[serde(rename = "regex")]
    Regex,
    #[serde(rename = "present")]
    Present,
}

/// A policy object with its identity.
#[derive(Clone, Debug, PartialEq)]
pub struct Named<T> {
    pub namespace: String,
    pub name: String,
    pub spec: T,
}

/// The subset of untagged pods; no label subset may take its name.
pub const BASE_SUBSET: &str = "base";

/// Routes in one policy at most (each request walks them in order).
pub const MAX_ROUTES: usize = 256;
/// Header and query matches in one route, or conditions in one rule, at most.
pub const MAX_MATCHES: usize = 32;

/// Checks what serde cannot: regexes compile (within their size bounds), weights and
/// percentages are in range, conditions are known, lists are bounded. The error names the
/// field.
pub fn validate_policy(spec: &TrafficPolicySpec) -> Result<(), FieldError> {
    if spec.service.is_empty() {
        return Err(FieldError::new("spec.service", "missing"));
    }
    if spec.service.contains(['.', '/']) {
        return Err(FieldError::new(
            "spec.service",
            "names a Service of the policy's own namespace (a TrafficPolicy acts on its own namespace only)",
        ));
    }
    if spec.routes.len() > MAX_ROUTES {
        return Err(FieldError::new(
            "spec.routes",
            format!("{} routes: at most {MAX_ROUTES}", spec.routes.len()),
        ));
    }
    match (spec.fallback.mode, spec.fallback.chain.is_empty()) {
        (FallbackMode::Chain, true) => {
            return Err(FieldError::new("spec.fallback.chain", "required for mode chain"));
        }
        (FallbackMode::Base | FallbackMode::Fail, false) => {
            return Err(FieldError::new("spec.fallback.chain", "only for mode chain"));
        }
        _ => {}
    }
    resilience::validate(&spec.resilience, "spec")?;
    if let Some(d) = &spec.data_lanes {
        data_lanes::validate(d)?;
    }
    for (i, r) in spec.routes.iter().enumerate() {
        let at = |f: &str| format!("spec.routes[{i}].{f}");
        resilience::validate(&r.resilience, &format!("spec.routes[{i}]"))?;
        if let Some(path) = &r.matches.path {
            let set = [&path.exact, &path.prefix, &path.regex].iter().filter(|v| v.is_some()).count();
            if set != 1 {
                return Err(FieldError::new(at("match.path"), "give exactly one of exact, prefix, regex"));
            }
            if let Some(re) = &path.regex {
                super::pattern::anchored(re).map_err(|e| FieldError::new(at("match.path.regex"), e))?;
            }
        }
        let matches = r.matches.headers.len() + r.matches.query.len();
        if matches > MAX_MATCHES {
            return Err(FieldError::new(
                at("match"),
                format!("{matches} header and query matches: at most {MAX_MATCHES}"),
            ));
        }
        for (j, m) in r.matches.headers.iter().chain(&r.matches.query).enumerate() {
            check_key_match(m).map_err(|e| FieldError::new(at(&format!("match.headers/query[{j}]")), e))?;
        }
        if let Some(rw) = &r.rewrite {
            if rw.path.is_some() && rw.prefix.is_some() {
                return Err(FieldError::new(at("rewrite"), "give path or prefix, not both"));
            }
            if rw.path.as_deref().is_some_and(|p| !p.starts_with('/')) {
                return Err(FieldError::new(at("rewrite.path"), "must start with /"));
            }
        }
        if let Some(rd) = &r.redirect {
            if ![301, 302, 303, 307, 308].contains(&rd.status) {
                return Err(FieldError::new(at("redirect.status"), "must be 301, 302, 303, 307 or 308"));
            }
            if rd.path.is_some() && rd.prefix.is_some() {
                return Err(FieldError::new(at("redirect"), "give path or prefix, not both"));
            }
            if rd.scheme.as_deref().is_some_and(|s| s != "http" && s != "https") {
                return Err(FieldError::new(at("redirect.scheme"), "must be http or https"));
            }
        }
        if !r.destinations.is_empty() && r.destinations.iter().all(|d| d.weight == 0) {
            return Err(FieldError::new(at("destinations"), "all weights are 0"));
        }
        for (j, d) in r.destinations.iter().enumerate() {
            if d.weight > 10_000 {
                return Err(FieldError::new(at(&format!("destinations[{j}].weight")), "must be 0-10000"));
            }
        }
    }
    match &spec.load_balancer.hash_on {
        None if spec.load_balancer.policy == LbPolicy::RingHash => {
            return Err(FieldError::new("spec.loadBalancer.hashOn", "required for ringHash"));
        }
        Some(h)
            if [h.header.is_some(), h.cookie.is_some(), h.source_ip == Some(true)]
                .iter()
                .filter(|b| **b)
                .count()
                != 1 =>
        {
            return Err(FieldError::new(
                "spec.loadBalancer.hashOn",
                "give exactly one of header, cookie, sourceIP: true",
            ));
        }
        _ => {}
    }
    for (i, d) in spec.subsets.iter().enumerate() {
        if d.name.is_empty() || d.name == BASE_SUBSET {
            return Err(FieldError::new(format!("spec.subsets[{i}].name"), "must be a name other than base"));
        }
        if d.labels.is_empty() && d.backend.is_none() {
            return Err(FieldError::new(format!("spec.subsets[{i}].labels"), "give at least one label"));
        }
        if spec.subsets[..i].iter().any(|o| o.name == d.name) {
            return Err(FieldError::new(
                format!("spec.subsets[{i}].name"),
                format!("{} is defined twice", d.name),
            ));
        }
    }
    if spec.load_balancer.min_ring_size.is_some_and(|n| !(1..=1 << 20).contains(&n)) {
        return Err(FieldError::new("spec.loadBalancer.minRingSize", "must be 1-1048576"));
    }
    if spec.load_balancer.subset_size == Some(0) {
        return Err(FieldError::new("spec.loadBalancer.subsetSize", "must be at least 1"));
    }
    Ok(())
}

fn check_key_match(m: &KeyMatch) -> Result<(), String> {
    let set = [m.exact.is_some(), m.prefix.is_some(), m.regex.is_some(), m.present.is_some()];
    if set.iter().filter(|s| **s).count() > 1 {
        return Err(format!("{}: give one of exact, prefix, regex, present", m.name));
    }
    if let Some(re) = &m.regex {
        super::pattern::anchored(re).map_err(|e| format!("{}: {e}", m.name))?;
    }
    Ok(())
}

pub fn validate_rule(spec: &TrafficLabelRuleSpec) -> Result<(), FieldError> {
    if spec.tag.is_none() && spec.tenant.is_none() {
        return Err(FieldError::new("spec.tag", "a rule must give a tag or a tenant"));
    }
    if spec.percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        return Err(FieldError::new("spec.percentage", "must be 0-100"));
    }
    if spec.matches.len() > MAX_MATCHES {
        return Err(FieldError::new(
            "spec.match",
            format!("{} conditions: at most {MAX_MATCHES}", spec.matches.len()),
        ));
    }
    for (i, m) in spec.matches.iter().enumerate() {
        let field = format!("spec.match[{i}]");
        if m.condition == Condition::Regex {
            super::pattern::anchored(&m.value).map_err(|e| FieldError::new(format!("{field}.value"), e))?;
        }
        if m.kind != LabelMatchType::Path && m.key.is_empty() {
            return Err(FieldError::new(format!("{field}.key"), "required"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> TrafficPolicySpec {
        serde_norway::from_str(yaml).expect("valid yaml")
    }

    #[test]
    fn parses_routes_fallback_and_lb() {
        let p = policy(
            "service: app\nfallback: {mode: chain, chain: [v3, v2, base]}\nloadBalancer: {policy: ringHash, hashOn: {header: x-user}}\n\
             routes:\n- match: {path: {prefix: /api}, headers: [{name: x-beta, present: true}]}\n  \
             destinations: [{subset: v1, weight: 20}, {subset: v2, weight: 80}]\n",
        );
        assert_eq!(p.fallback.mode, FallbackMode::Chain);
        assert_eq!(p.fallback.chain, ["v3", "v2", "base"]);
        assert_eq!(p.load_balancer.hash_on.as_ref().and_then(|h| h.header.as_deref()), Some("x-user"));
        assert_eq!(p.routes[0].destinations[1].weight, 80);
        assert!(validate_policy(&p).is_ok());
    }

    #[test]
    fn rejects_bad_regex_and_unknown_fallback() {
        let p = policy("service: app\nroutes:\n- match: {path: {regex: '('}}\n");
        let FieldError { field, .. } = validate_policy(&p).expect_err("bad regex");
        assert_eq!(field, "spec.routes[0].match.path.regex");
        assert!(
            serde_norway::from_str::<TrafficPolicySpec>("service: a\nfallback: {mode: maybe}\n").is_err()
        );
        let many: String =
            (0..=MAX_ROUTES).map(|i| format!("- match: {{path: {{regex: '/r{i}'}}}}\n")).collect();
        let p = policy(&format!("service: app\nroutes:\n{many}"));
        assert_eq!(validate_policy(&p).expect_err("too many routes").field, "spec.routes");
        let p = policy("service: app\nfallback: {mode: chain}\n");
        assert_eq!(validate_policy(&p).expect_err("empty chain").field, "spec.fallback.chain");
        let p = policy("service: app\nloadBalancer: {policy: ringHash}\n");
        assert_eq!(validate_policy(&p).expect_err("no hashOn").field, "spec.loadBalancer.hashOn");
    }

    #[test]
    fn label_rules_accept_opensergo_names() {
        let r: TrafficLabelRuleSpec = serde_norway::from_str(
            "selector: {app: gateway}\ntrafficLabel: gray\nmatch:\n- {condition: '==', type: header, key: location, value: cn-shenzhen}\n",
        )
        .expect("valid");
        assert_eq!(r.tag.as_deref(), Some("gray"));
        assert!(validate_rule(&r).is_ok());
        let unknown = "tag: g\nmatch: [{type: header, key: k, condition: '~'}]\n";
        assert!(serde_norway::from_str::<TrafficLabelRuleSpec>(unknown).is_err());
        let bad: TrafficLabelRuleSpec =
            serde_norway::from_str("tag: g\nmatch: [{type: header, key: k, condition: regex, value: '('}]\n")
                .expect("yaml");
        assert_eq!(validate_rule(&bad).expect_err("regex").field, "spec.match[0].value");
    }
}
