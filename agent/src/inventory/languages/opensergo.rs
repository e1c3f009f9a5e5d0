//! OpenSergo: `traffic.opensergo.io/v1alpha1` `WorkloadLabelRule` (pods' lanes by labels;
//! `TrafficLabelRule` is graylane's own rule and parsed as one), and
//! `fault-tolerance.opensergo.io/v1alpha1` strategies — `RateLimitStrategy`,
//! `ConcurrencyLimitStrategy`, `CircuitBreakerStrategy` — with `HttpRequestFallbackAction`,
//! bound to services and resources by a `FaultToleranceRule`.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{Emit, ForeignDoc, Fragment, Rank, Report, Scope, duration::period, typed};
use crate::inventory::{
    FieldError,
    model::Pod,
    policy::{Route, RouteMatch, StringMatch},
    resilience::{CircuitBreaker, Concurrency, RateLimit, RejectAction, Resilience},
};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadLabelRule {
    #[serde(default)]
    workload_labels: Vec<String>,
    #[serde(default)]
    selector: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub enum Strategy {
    RateLimit(RateLimitStrategy),
    Throttling(ThrottlingStrategy),
    Concurrency(ConcurrencyLimitStrategy),
    CircuitBreaker(CircuitBreakerStrategy),
    Fallback(HttpRequestFallbackAction),
    /// A kind of the group graylane does not honour (AdaptiveOverloadProtectionStrategy…):
    /// reported when a rule names it.
    Other(&'static str),
}

impl Strategy {
    pub fn kind(&self) -> &'static str {
        match self {
            Strategy::RateLimit(_) => "RateLimitStrategy",
            Strategy::Throttling(_) => "ThrottlingStrategy",
            Strategy::Other(kind) => kind,
            Strategy::Concurrency(_) => "ConcurrencyLimitStrategy",
            Strategy::CircuitBreaker(_) => "CircuitBreakerStrategy",
            Strategy::Fallback(_) => "HttpRequestFallbackAction",
        }
    }
}

/// A fault-tolerance kind other than the rule.
pub fn strategy(kind: &str, spec: Value, unknown: &mut Vec<String>) -> Result<Strategy, FieldError> {
    match kind {
        "RateLimitStrategy" => typed(spec, unknown).map(Strategy::RateLimit),
        "ThrottlingStrategy" => typed(spec, unknown).map(Strategy::Throttling),
        "ConcurrencyLimitStrategy" => typed(spec, unknown).map(Strategy::Concurrency),
        "CircuitBreakerStrategy" => typed(spec, unknown).map(Strategy::CircuitBreaker),
        "HttpRequestFallbackAction" => typed(spec, unknown).map(Strategy::Fallback),
        "AdaptiveOverloadProtectionStrategy" => Ok(Strategy::Other("AdaptiveOverloadProtectionStrategy")),
        _ => Ok(Strategy::Other("an unknown fault-tolerance kind")),
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitStrategy {
    metric_type: Option<String>,
    limit_mode: Option<String>,
    threshold: f64,
    /// `1s`, `5min` (the spec's English text and examples)…
    stat_duration: Option<String>,
    /// …or whole seconds (the spec's current Chinese text).
    stat_duration_seconds: Option<u32>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottlingStrategy {
    min_interval_of_requests: String,
    queue_timeout: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConcurrencyLimitStrategy {
    max_concurrency: u32,
    limit_mode: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitBreakerStrategy {
    strategy: String,
    trigger_ratio: Option<Value>,
    stat_duration: Option<String>,
    recovery_timeout: Option<String>,
    min_request_amount: Option<u32>,
    slow_conditions: Option<SlowConditions>,
    error_conditions: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SlowConditions {
    max_allowed_rt: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRequestFallbackAction {
    behavior: String,
    #[serde(default)]
    behavior_desc: BehaviorDesc,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BehaviorDesc {
    response_status_code: Option<u16>,
    #[serde(default)]
    response_content_body: String,
    #[serde(default)]
    response_additional_headers: Vec<KeyValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultToleranceRule {
    #[serde(default)]
    selector: BTreeMap<String, String>,
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    strategies: Vec<StrategyRef>,
    fallback_action: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Target {
    target_resource_name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct StrategyRef {
    name: String,
    kind: Option<String>,
}

/// Tags the pods a rule selects with its first workload label (pods annotated
/// `graylane.io/tag` keep theirs).
pub(super) fn workload_labels(
    rule: &WorkloadLabelRule,
    doc: &ForeignDoc,
    pods: &mut [Pod],
    report: &mut Report,
) {
    let Some(tag) = rule.workload_labels.first() else {
        report.reject("Invalid", "spec.workloadLabels is empty");
        return;
    };
    if rule.workload_labels.len() > 1 {
        report.unsupported("spec.workloadLabels[1..] (a pod has one lane: the first label is used)");
    }
    if rule.selector.is_empty() {
        report.reject("Invalid", "spec.selector is empty (it would tag every pod of the namespace)");
        return;
    }
    let mut tagged = Vec::new();
    for pod in pods.iter_mut().filter(|p| p.namespace == doc.namespace) {
        if !rule.selector.iter().all(|(k, v)| pod.labels.get(k) == Some(v)) {
            continue;
        }
        match &pod.tag {
            Some(own) if own != tag => {
                report.message = format!("pod {} keeps its graylane.io/tag {own}", pod.key());
            }
            _ => {
                pod.tag = Some(tag.clone());
                tagged.push(pod.key().0);
            }
        }
    }
    report.services = tagged.into_iter().map(|p| format!("pod {p}")).collect();
}

/// A strategy named by a rule, in the rule's own namespace: another namespace's strategy
/// of the same name never fills in (it would set this namespace's limits).
fn find<'a>(
    strategies: &[(&'a ForeignDoc, &'a Strategy)],
    namespace: &str,
    r: &StrategyRef,
) -> Option<&'a Strategy> {
    strategies
        .iter()
        .find(|(d, s)| {
            d.namespace == namespace && d.name == r.name && r.kind.as_deref().is_none_or(|k| k == s.kind())
        })
        .map(|(_, s)| *s)
}

pub(super) fn fault_tolerance(
    rule: &FaultToleranceRule,
    doc: &ForeignDoc,
    scope: &Scope<'_>,
    strategies: &[(&ForeignDoc, &Strategy)],
    report: &mut Report,
    emit: &mut Emit<'_>,
) {
    let mut resilience = Resilience::default();
    for (i, r) in rule.strategies.iter().enumerate() {
        let at = format!("spec.strategies[{i}]");
        match find(strategies, &doc.namespace, r) {
            Some(Strategy::RateLimit(s)) => {
                let mut json = serde_json::json!({ "requests": (s.threshold.round() as u32).max(1) });
                if s.threshold.fract() != 0.0 {
                    report.unsupported(format!(
                        "{} threshold: {} (rounded: graylane counts whole requests)",
                        r.name, s.threshold
                    ));
                }
                let second = crate::inventory::resilience::Period(std::time::Duration::from_secs(1));
                let duration = match (&s.stat_duration, s.stat_duration_seconds) {
                    (Some(d), _) => period(&d.replace("min", "m")).map_err(|e| format!("statDuration: {e}")),
                    (None, Some(n)) if n > 0 => {
                        Ok(crate::inventory::resilience::Period(std::time::Duration::from_secs(n.into())))
                    }
                    (None, Some(_)) => Err("statDurationSeconds: must be more than zero".to_owned()),
                    (None, None) => Ok(second),
                };
                match duration {
                    Ok(p) => json["interval"] = serde_json::json!(format!("{}ms", p.0.as_millis().max(1))),
                    Err(e) => report.unsupported(format!("{} {e}", r.name)),
                }
                if s.metric_type.as_deref().is_some_and(|m| m != "RequestAmount") {
                    report.unsupported(format!(
                        "{} metricType: {}",
                        r.name,
                        s.metric_type.as_deref().unwrap_or("")
                    ));
                }
                // GlobalToLocal: a global budget, local when the global store is unreachable —
                // what graylane's global limits do.
                json["global"] =
                    serde_json::json!(matches!(s.limit_mode.as_deref(), Some("Global" | "GlobalToLocal")));
                resilience.rate_limit = serde_json::from_value::<RateLimit>(json).ok();
            }
            Some(Strategy::Throttling(s)) => match period(&s.min_interval_of_requests) {
                // One request per interval, no burst; graylane does not queue: the excess is
                // rejected at once instead of waiting up to queueTimeout.
                Ok(p) => {
                    let json = serde_json::json!({
                        "requests": 1, "burst": 1, "interval": format!("{}ms", p.0.as_millis().max(1)),
                    });
                    resilience.rate_limit = serde_json::from_value::<RateLimit>(json).ok();
                    if s.queue_timeout.is_some() {
                        report.unsupported(format!(
                            "{} queueTimeout (graylane rejects at once, it does not queue)",
                            r.name
                        ));
                    }
                }
                Err(e) => report.unsupported(format!("{} minIntervalOfRequests: {e}", r.name)),
            },
            Some(Strategy::Other(kind)) => report.unsupported(format!("{at}: {} ({kind})", r.name)),
            Some(Strategy::Concurrency(s)) => {
                if s.limit_mode.as_deref() == Some("Global") {
                    report.unsupported(format!(
                        "{} limitMode: Global (graylane caps in-flight requests per node)",
                        r.name
                    ));
                }
                resilience.concurrency = Some(Concurrency {
                    max_in_flight: Some(s.max_concurrency.max(1)),
                    max_per_endpoint: None,
                });
            }
            Some(Strategy::CircuitBreaker(s)) => {
                resilience.circuit_breaker = breaker(s, &r.name, report);
            }
            Some(Strategy::Fallback(_)) => {
                report.unsupported(format!("{at}: {} is a fallback action", r.name))
            }
            None => {
                report.reason = "StrategyNotFound".into();
                report.message = format!("{at}: no strategy named {} in namespace {}", r.name, doc.namespace);
            }
        }
    }
    if let Some(name) = &rule.fallback_action {
        let r = StrategyRef { name: name.clone(), kind: Some("HttpRequestFallbackAction".into()) };
        match find(strategies, &doc.namespace, &r) {
            Some(Strategy::Fallback(f)) if f.behavior == "ReturnProvidedResponse" => match &mut resilience
                .rate_limit
            {
                Some(limit) => {
                    let d = &f.behavior_desc;
                    limit.on_reject = RejectAction {
                        status: d.response_status_code.unwrap_or(429),
                        body: d.response_content_body.clone(),
                        headers: d
                            .response_additional_headers
                            .iter()
                            .map(|h| (h.key.clone(), h.value.clone()))
                            .collect(),
                    };
                }
                None => report.unsupported("spec.fallbackAction (graylane applies it to rate limits only)"),
            },
            Some(Strategy::Fallback(f)) => {
                report.unsupported(format!("spec.fallbackAction: behavior {}", f.behavior));
            }
            _ => {
                report.reason = "StrategyNotFound".into();
                report.message = format!("spec.fallbackAction: no HttpRequestFallbackAction named {name}");
            }
        }
    }
    let services = scope.selected(&doc.namespace, &rule.selector);
    if services.is_empty() {
        report.reject(
            "NoMatchingParent",
            format!("no Service in namespace {} selects the pods of spec.selector", doc.namespace),
        );
        return;
    }
    let mut fragment = Fragment::default();
    let mut whole = rule.targets.is_empty();
    for (i, t) in rule.targets.iter().enumerate() {
        let name = t.target_resource_name.trim();
        let (method, path) = match name.split_once(':') {
            Some((m, p)) if p.starts_with('/') => (Some(m.to_ascii_uppercase()), p),
            _ => (None, name),
        };
        if name == "*" || name.is_empty() {
            whole = true;
        } else if path.starts_with('/') {
            fragment.routes.push(Route {
                name: Some(format!("{}/{}", doc.name, name)),
                matches: RouteMatch {
                    path: Some(StringMatch { exact: Some(path.to_owned()), ..Default::default() }),
                    method,
                    ..Default::default()
                },
                resilience: resilience.clone(),
                ..Default::default()
            });
        } else {
            report.unsupported(format!(
                "spec.targets[{i}].targetResourceName: {name} (graylane names HTTP paths)"
            ));
        }
    }
    if whole {
        fragment.resilience = resilience;
    }
    for service in services {
        emit(service, Rank::OpenSergo, fragment.clone(), report);
    }
}

fn breaker(s: &CircuitBreakerStrategy, name: &str, report: &mut Report) -> Option<CircuitBreaker> {
    let ratio = match &s.trigger_ratio {
        Some(Value::Number(n)) => n.as_f64().map(|r| if r <= 1.0 { r * 100.0 } else { r }),
        Some(Value::String(t)) => t
            .trim()
            .trim_end_matches('%')
            .parse::<f64>()
            .ok()
            .map(|r| if t.contains('%') || r > 1.0 { r } else { r * 100.0 }),
        _ => None,
    };
    let mut json = serde_json::json!({
        "consecutiveFailures": 0,
        "failurePercent": ratio.unwrap_or(50.0).clamp(1.0, 100.0).round() as u32,
        "minRequests": s.min_request_amount.unwrap_or(5).max(1),
    });
    for (key, value) in [("window", &s.stat_duration), ("openFor", &s.recovery_timeout)] {
        if let Some(v) = value {
            match period(v) {
                Ok(p) => json[key] = serde_json::json!(format!("{}ms", p.0.as_millis().max(1))),
                Err(e) => report.unsupported(format!("{name} {key}: {e}")),
            }
        }
    }
    match s.strategy.as_str() {
        "ErrorRequestRatio" => {
            if s.error_conditions.is_some() {
                report.unsupported(format!("{name} errorConditions (errors are 5xx and failed exchanges)"));
            }
        }
        "SlowRequestRatio" => match s.slow_conditions.as_ref().map(|c| period(&c.max_allowed_rt)) {
            Some(Ok(p)) => json["slowCall"] = serde_json::json!(format!("{}ms", p.0.as_millis().max(1))),
            _ => {
                report.unsupported(format!(
                    "{name} slowConditions.maxAllowedRt: required for SlowRequestRatio"
                ));
                return None;
            }
        },
        other => {
            report.unsupported(format!("{name} strategy: {other}"));
            return None;
        }
    }
    serde_json::from_value(json).ok()
}
