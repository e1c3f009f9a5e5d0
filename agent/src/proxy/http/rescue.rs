//! Every response the proxy makes itself, in one place: status from the cause, and an
//! `x-graylane-reason` saying which.

use std::error::Error as _;

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};

use super::{Body, headers::REASON, idle_body::IdleBodyError};
use crate::proxy::routing::RouteError;

/// A local answer: `status`, a reason token, and a one-line explanation as the body.
pub fn local(status: StatusCode, reason: &'static str, detail: &str) -> Response<Body> {
    let body = Full::new(Bytes::from(format!("{detail}\n"))).map_err(|never| match never {}).boxed();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp.headers_mut().insert(REASON, http::HeaderValue::from_static(reason));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

pub fn route_error(e: &RouteError) -> Response<Body> {
    let reason = match e {
        RouteError::NoEndpoints { .. } => "no_endpoints",
        RouteError::SubsetUnavailable { .. } => "subset_unavailable",
        RouteError::TenantIsolation { .. } => "tenant_isolation",
        RouteError::CircuitOpen { .. } => "circuit_open",
    };
    local(StatusCode::SERVICE_UNAVAILABLE, reason, &e.to_string())
}

pub fn unknown_destination(dst: impl std::fmt::Display) -> Response<Body> {
    local(
        StatusCode::SERVICE_UNAVAILABLE,
        "unknown_destination",
        &format!("{dst} is neither a service nor a pod"),
    )
}

/// Connect failures (nothing was sent) are 503; failures after sending are 502.
pub fn upstream_error(
    e: &hyper_util::client::legacy::Error,
    upstream: impl std::fmt::Display,
) -> Response<Body> {
    // The downstream's body failed (malformed, or idle too long), not the upstream.
    if let Some(b) = source_chain(e).find_map(|s| s.downcast_ref::<IdleBodyError>()) {
        return match b {
            IdleBodyError::Idle(_) => {
                local(StatusCode::REQUEST_TIMEOUT, "request_body_timeout", &b.to_string())
            }
            IdleBodyError::Body(_) => local(StatusCode::BAD_REQUEST, "bad_request_body", &b.to_string()),
        };
    }
    let timed_out = source_chain(e).any(|s| {
        s.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
    });
    if e.is_connect() {
        let reason = if timed_out { "upstream_connect_timeout" } else { "upstream_connect_failure" };
        return local(StatusCode::SERVICE_UNAVAILABLE, reason, &format!("connect {upstream}: {}", chain(e)));
    }
    local(StatusCode::BAD_GATEWAY, "upstream_reset", &format!("{upstream}: {}", chain(e)))
}

fn source_chain<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |e| (*e).source())
}

fn chain(e: &hyper_util::client::legacy::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
