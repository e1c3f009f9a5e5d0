//! Resilience settings of a `TrafficPolicy`, per service and per route (a route's settings
//! replace the service's): request timeout, rate limit with an OpenSergo-style fallback
//! action, concurrency cap, and fault injection per lane.

use super::FieldError;
use std::{collections::BTreeMap, time::Duration};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A duration written `250ms`, `2s` or `1m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period(pub Duration);

impl Period {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (num, unit) =
            text.trim().split_at(text.trim().find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
        let n: u64 = num.parse().map_err(|_| format!("{text:?}: expected a number and ms, s or m"))?;
        let d = match unit {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            _ => return Err(format!("{text:?}: expected a number and ms, s or m")),
        };
        if d.is_zero() {
            return Err(format!("{text:?}: must be more than zero"));
        }
        Ok(Self(d))
    }
}

impl Serialize for Period {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ms", self.0.as_millis()))
    }
}

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Period::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Period {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Period".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9]+(ms|s|m)$" })
    }
}

/// What a service or a route adds to plain forwarding.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Resilience {
    /// The whole request, until response headers (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Period>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<Fault>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    /// Per endpoint: an open endpoint is ejected from load balancing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Per subset (the pods sharing a tag): while a subset is open its lane follows the
    /// service's fallback (to base, a chain, or fail fast), like a lane without endpoints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset_breaker: Option<CircuitBreaker>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
}

impl Resilience {
    /// A route written in another namespace than the service's: the service's settings
    /// stand (its limits, breakers, faults, timeout and retries protect it from every
    /// caller); the route adds only what the service leaves unset.
    pub fn under(service: &Resilience, route: &Resilience) -> Resilience {
        let mut out = service.clone();
        macro_rules! unset {
            ($($field:ident),*) => {$(
                if out.$field.is_none() {
                    out.$field = route.$field.clone();
                }
            )*};
        }
        unset!(timeout, rate_limit, concurrency, retry, circuit_breaker, subset_breaker, mirror);
        if out.faults.is_empty() {
            out.faults = route.faults.clone();
        }
        out
    }
}

/// Shadow traffic: a copy of a share of requests goes to another subset, fire-and-forget
/// (the caller never waits; the copy's response is discarded; Host gets `-shadow`).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mirror {
    /// The subset (pods' tag) receiving the copies.
    pub subset: String,
    #[serde(default = "hundred")]
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percentage: f64,
}

fn hundred() -> f64 {
    100.0
}

/// Per endpoint: open on consecutive failures or a failure ratio (errors and slow calls)
/// over a window; while open the endpoint is ejected from balancing (fail fast when every
/// endpoint is); after `openFor`, half-open probes; then traffic comes back in steps.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CircuitBreaker {
    /// Open after this many failures in a row (0: off).
    #[serde(default = "five")]
    pub consecutive_failures: u32,
    /// Open when failures are at least this percent of the window's calls (0: off)…
    #[serde(default)]
    #[schemars(range(min = 0, max = 100))]
    pub failure_percent: u32,
    /// …once the window has this many calls.
    #[serde(default = "twenty")]
    pub min_requests: u32,
    #[serde(default = "ten_seconds")]
    pub window: Period,
    /// A call slower than this counts as a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call: Option<Period>,
    /// How long an endpoint stays open; doubles each time it opens again (capped at 10x).
    #[serde(default = "five_seconds")]
    pub open_for: Period,
    /// Successful probes in half-open before traffic comes back.
    #[serde(default = "three")]
    pub half_open_probes: u32,
    /// Share of traffic restored per `recoveryEvery` once probes succeed (default 10 % / 10 s).
    #[serde(default = "ten")]
    #[schemars(range(min = 1, max = 100))]
    pub recovery_step_percent: u32,
    #[serde(default = "ten_seconds")]
    pub recovery_every: Period,
    /// At most this percent of a subset's endpoints are ejected at once.
    #[serde(default = "fifty")]
    #[schemars(range(min = 0, max = 100))]
    pub max_ejection_percent: u32,
}

fn five() -> u32 {
    5
}
fn ten() -> u32 {
    10
}
fn fifty() -> u32 {
    50
}
fn ten_seconds() -> Period {
    Period(Duration::from_secs(10))
}
fn five_seconds() -> Period {
    Period(Duration::from_secs(5))
}

/// Retries of failed tries, on another pick of endpoint, within a budget.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Retry {
    /// Retries after the first try.
    #[schemars(range(min = 1, max = 10))]
    pub attempts: u32,
    /// Each try's own limit (the request timeout still bounds the whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<Period>,
    /// Upstream statuses that are retried (connect failures and resets always are).
    #[serde(default = "retry_statuses")]
    pub statuses: Vec<u16>,
    /// Retry non-idempotent methods (POST, PATCH) too.
    #[serde(default)]
    pub all_methods: bool,
    /// Retries in flight at most this share (percent) of requests in flight…
    #[serde(default = "twenty")]
    #[schemars(range(min = 0, max = 100))]
    pub budget_percent: u32,
    /// …but always at least this many.
    #[serde(default = "three")]
    pub min_retries: u32,
    /// First backoff (doubling, with jitter, up to ten times this).
    #[serde(default = "backoff")]
    pub backoff: Period,
}

fn retry_statuses() -> Vec<u16> {
    vec![502, 503, 504]
}
fn twenty() -> u32 {
    20
}
fn three() -> u32 {
    3
}
fn backoff() -> Period {
    Period(Duration::from_millis(25))
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum LimitAlgorithm {
    /// Refill `requests` every `interval`, up to `burst` at once (governor's GCRA).
    #[default]
    TokenBucket,
    /// At most `requests` in any sliding `interval`.
    SlidingWindow,
}

/// What each caller gets its own share of.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum LimitKey {
    /// One budget for the service (or route).
    #[default]
    Route,
    SourcePod,
    SourceTag,
    Tenant,
    /// The value of `header`.
    Header,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    #[schemars(range(min = 1))]
    pub requests: u32,
    #[serde(default = "one_second")]
    pub interval: Period,
    /// Token bucket: requests admitted at once (default `requests`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub burst: Option<u32>,
    #[serde(default)]
    pub algorithm: LimitAlgorithm,
    #[serde(default)]
    pub key: LimitKey,
    /// For `key: header`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// The response to rejected requests (default 429).
    #[serde(default)]
    pub on_reject: RejectAction,
    /// Shared by every node through Redis (the agent's `--redis`); when Redis is
    /// unreachable each node falls back to this limit locally (fail-open, counted).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub global: bool,
}

fn one_second() -> Period {
    Period(Duration::from_secs(1))
}

/// OpenSergo's fallback action: status, body and extra headers of a rejection.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectAction {
    #[serde(default = "too_many")]
    #[schemars(range(min = 200, max = 599))]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Default for RejectAction {
    fn default() -> Self {
        Self { status: too_many(), body: String::new(), headers: BTreeMap::new() }
    }
}

fn too_many() -> u16 {
    429
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Concurrency {
    /// Requests in flight at once; more are answered 503 at once, never queued.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_in_flight: Option<u32>,
    /// Requests in flight on one endpoint: a busy endpoint is skipped by the balancer, and
    /// when every pick is busy the request is answered 503 at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_per_endpoint: Option<u32>,
}

/// Chaos for a lane: abort or delay a share of its requests.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fault {
    /// Lanes (request tags) affected; empty: every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort: Option<FaultAbort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<FaultDelay>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultAbort {
    #[schemars(range(min = 200, max = 599))]
    pub status: u16,
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percentage: f64,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultDelay {
    pub duration: Period,
    #[schemars(range(min = 0.0, max = 100.0))]
    pub percentage: f64,
}

/// What serde and the schema cannot check. The error names the field under `at`.
pub fn validate(r: &Resilience, at: &str) -> Result<(), FieldError> {
    if let Some(l) = &r.rate_limit {
        if l.requests == 0 {
            return Err(FieldError::new(format!("{at}.rateLimit.requests"), "must be at least 1"));
        }
        if l.key == LimitKey::Header && l.header.as_deref().is_none_or(str::is_empty) {
            return Err(FieldError::new(format!("{at}.rateLimit.header"), "required for key: header"));
        }
        if !(200..=599).contains(&l.on_reject.status) {
            return Err(FieldError::new(format!("{at}.rateLimit.onReject.status"), "must be 200-599"));
        }
    }
    if let Some(retry) = &r.retry {
        if !(1..=10).contains(&retry.attempts) {
            return Err(FieldError::new(format!("{at}.retry.attempts"), "must be 1-10"));
        }
        if retry.budget_percent > 100 {
            return Err(FieldError::new(format!("{at}.retry.budgetPercent"), "must be 0-100"));
        }
    }
    if let Some(c) = &r.concurrency {
        if c.max_in_flight == Some(0) {
            return Err(FieldError::new(format!("{at}.concurrency.maxInFlight"), "must be at least 1"));
        }
        if c.max_per_endpoint == Some(0) {
            return Err(FieldError::new(format!("{at}.concurrency.maxPerEndpoint"), "must be at least 1"));
        }
        if c.max_in_flight.is_none() && c.max_per_endpoint.is_none() {
            return Err(FieldError::new(
                format!("{at}.concurrency"),
                "give maxInFlight, maxPerEndpoint or both",
            ));
        }
    }
    for (i, f) in r.faults.iter().enumerate() {
        let pct = [f.abort.as_ref().map(|a| a.percentage), f.delay.as_ref().map(|d| d.percentage)];
        if pct.iter().flatten().any(|p| !(0.0..=100.0).contains(p)) {
            return Err(FieldError::new(format!("{at}.faults[{i}]"), "percentages are 0-100"));
        }
        if f.abort.as_ref().is_some_and(|a| !(200..=599).contains(&a.status)) {
            return Err(FieldError::new(format!("{at}.faults[{i}].abort.status"), "must be 200-599"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_settings_parse_and_validate() {
        assert_eq!(Period::parse("250ms").map(|s| s.0), Ok(Duration::from_millis(250)));
        assert_eq!(Period::parse("2s").map(|s| s.0), Ok(Duration::from_secs(2)));
        assert!(Period::parse("2h").is_err() && Period::parse("0s").is_err() && Period::parse("s").is_err());
        let r: Resilience = serde_norway::from_str(
            "timeout: 2s\nrateLimit: {requests: 50, key: header, header: x-user, onReject: {body: slow down}}\n\
             faults: [{tags: [gray], abort: {status: 503, percentage: 10}}]",
        )
        .expect("yaml");
        assert_eq!(r.rate_limit.as_ref().map(|l| l.on_reject.status), Some(429));
        assert!(validate(&r, "spec").is_ok());
        let bad: Resilience = serde_norway::from_str("rateLimit: {requests: 5, key: header}").expect("yaml");
        assert_eq!(validate(&bad, "spec").expect_err("header").field, "spec.rateLimit.header");
    }
}
