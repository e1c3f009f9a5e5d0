//! The one error of the request path: what went wrong, on which side (the caller, the
//! upstream, or a local policy), and whether another try may succeed. It travels up as a
//! value; `respond.rs` turns it into a response in one place, and retries ask it.

use std::{sync::Arc, time::Duration};

use crate::inventory::resilience::RejectAction;

/// Who caused it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The caller: a malformed, slow or abandoned request.
    Downstream,
    /// The endpoint: unreachable, reset, too slow.
    Upstream,
    /// graylane's own decision: routing, isolation, limits, injected faults.
    Local,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    // Routing (local).
    UnknownDestination,
    /// The caller's routes for the service (Gateway API's) have none for the request.
    NoRoute,
    NoEndpoints,
    SubsetUnavailable,
    TenantIsolation,
    CircuitOpen,
    /// Every picked endpoint is at its in-flight cap.
    EndpointsBusy,
    // Admission (local).
    /// `scope`: the policy that limited it (`x-graylane-limit`).
    RateLimited {
        action: Arc<RejectAction>,
        scope: Arc<str>,
    },
    ConcurrencyLimit,
    FaultInjected {
        status: u16,
    },
    /// The caller's deadline had passed before the request could be sent.
    DeadlineExceeded,
    // The caller.
    BadRequest,
    RequestBodyTimeout,
    BadRequestBody,
    // The endpoint.
    ConnectFailure,
    ConnectTimeout,
    /// The connection broke after the request was (partly) sent.
    Reset,
    /// No response before the deadline, the route's timeout or the per-try timeout.
    Timeout,
}

/// A failed request: the kind, the service it was for (if known), and a detail for logs
/// and the access log (addresses and library errors may appear there, never in a response).
#[derive(Clone, Debug)]
pub struct ProxyError {
    pub kind: ErrorKind,
    pub service: Option<Arc<str>>,
    pub detail: String,
}

impl ProxyError {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self { kind, service: None, detail: detail.into() }
    }

    pub fn for_service(mut self, service: &Arc<str>) -> Self {
        self.service = Some(service.clone());
        self
    }

    pub fn side(&self) -> Side {
        match self.kind {
            ErrorKind::BadRequest | ErrorKind::RequestBodyTimeout | ErrorKind::BadRequestBody => {
                Side::Downstream
            }
            ErrorKind::ConnectFailure | ErrorKind::ConnectTimeout | ErrorKind::Reset | ErrorKind::Timeout => {
                Side::Upstream
            }
            _ => Side::Local,
        }
    }

    /// Whether another try (on a fresh pick) may succeed: the endpoint failed, not the
    /// request and not a policy.
    pub fn retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::ConnectFailure | ErrorKind::ConnectTimeout | ErrorKind::Reset | ErrorKind::Timeout
        )
    }

    /// Whether the endpoint's circuit breaker should count it as a failure.
    pub fn endpoint_failure(&self) -> bool {
        self.side() == Side::Upstream
    }

    /// The `x-graylane-reason` token.
    pub fn reason(&self) -> &'static str {
        match &self.kind {
            ErrorKind::UnknownDestination => "unknown_destination",
            ErrorKind::NoRoute => "no_route",
            ErrorKind::NoEndpoints => "no_endpoints",
            ErrorKind::SubsetUnavailable => "subset_unavailable",
            ErrorKind::TenantIsolation => "tenant_isolation",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::EndpointsBusy | ErrorKind::ConcurrencyLimit => "concurrency_limit",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::FaultInjected { .. } => "fault_injected",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::RequestBodyTimeout => "request_body_timeout",
            ErrorKind::BadRequestBody => "bad_request_body",
            ErrorKind::ConnectFailure => "upstream_connect_failure",
            ErrorKind::ConnectTimeout => "upstream_connect_timeout",
            ErrorKind::Reset => "upstream_reset",
            ErrorKind::Timeout => "request_timeout",
        }
    }

    /// What happened, in graylane's words (for the response body; no addresses).
    pub fn message(&self) -> String {
        let svc = self.service.as_deref().unwrap_or("the destination");
        match &self.kind {
            ErrorKind::UnknownDestination => "the destination is neither a known service nor a pod".into(),
            ErrorKind::NoRoute => format!("no route of {svc} matches the request"),
            ErrorKind::NoEndpoints => format!("{svc} has no ready endpoint"),
            ErrorKind::SubsetUnavailable => {
                format!("{svc} has no ready endpoint in the request's lane, and the lane does not fall back")
            }
            ErrorKind::TenantIsolation => format!("{svc} has no endpoint for the caller's tenant"),
            ErrorKind::CircuitOpen => {
                format!("{svc}: every endpoint that may serve is ejected by its circuit breaker")
            }
            ErrorKind::EndpointsBusy => {
                format!("{svc}: every endpoint that may serve is at its in-flight cap")
            }
            ErrorKind::RateLimited { .. } => format!("{svc}: rate limited"),
            ErrorKind::ConcurrencyLimit => format!("{svc}: concurrency limit reached"),
            ErrorKind::FaultInjected { .. } => format!("{svc}: fault injected"),
            ErrorKind::DeadlineExceeded => "the caller's deadline has passed".into(),
            ErrorKind::BadRequest => "malformed request".into(),
            ErrorKind::RequestBodyTimeout => "the request body stopped arriving".into(),
            ErrorKind::BadRequestBody => "the request body could not be read".into(),
            ErrorKind::ConnectFailure => format!("could not connect to an endpoint of {svc}"),
            ErrorKind::ConnectTimeout => format!("connecting to an endpoint of {svc} timed out"),
            ErrorKind::Reset => format!("the connection to an endpoint of {svc} broke"),
            ErrorKind::Timeout => format!("{svc} did not answer in time"),
        }
    }
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason(), self.detail)
    }
}

impl std::error::Error for ProxyError {}

/// A connect that failed or timed out.
pub fn connect_failed(e: &std::io::Error, target: impl std::fmt::Display, timeout: Duration) -> ProxyError {
    if e.kind() == std::io::ErrorKind::TimedOut {
        ProxyError::new(ErrorKind::ConnectTimeout, format!("connect {target}: no answer within {timeout:?}"))
    } else {
        ProxyError::new(ErrorKind::ConnectFailure, format!("connect {target}: {e}"))
    }
}
