//! Every response graylane makes itself, from a [`ProxyError`], in one place: the status and
//! `x-graylane-reason` from the error's kind; a body in graylane's words (never an upstream
//! address or a library's error text: those go to the log and the access log); and for
//! gRPC callers a trailers-only `200` with `grpc-status` and `grpc-message`, as gRPC
//! clients expect of a proxy.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode, header};

use super::{
    body::Body,
    error::{ErrorKind, ProxyError},
};

/// Why graylane answered itself (`no_endpoints`, `tenant_isolation`, …).
pub const REASON: HeaderName = HeaderName::from_static("x-graylane-reason");

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const LIMIT: HeaderName = HeaderName::from_static("x-graylane-limit");

/// gRPC status codes graylane answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrpcCode {
    Unknown = 2,
    DeadlineExceeded = 4,
    Unimplemented = 12,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

/// Whether the request is gRPC (`content-type: application/grpc[+proto|…]`).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The HTTP status for an error.
pub fn status(e: &ProxyError) -> StatusCode {
    match &e.kind {
        ErrorKind::RateLimited { action, .. } => {
            StatusCode::from_u16(action.status).unwrap_or(StatusCode::TOO_MANY_REQUESTS)
        }
        ErrorKind::FaultInjected { status } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
        }
        ErrorKind::DeadlineExceeded | ErrorKind::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorKind::BadRequest | ErrorKind::BadRequestBody => StatusCode::BAD_REQUEST,
        ErrorKind::RequestBodyTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorKind::Reset => StatusCode::BAD_GATEWAY,
        ErrorKind::NoRoute => StatusCode::NOT_FOUND,
        ErrorKind::UnknownDestination
        | ErrorKind::NoEndpoints
        | ErrorKind::SubsetUnavailable
        | ErrorKind::TenantIsolation
        | ErrorKind::CircuitOpen
        | ErrorKind::EndpointsBusy
        | ErrorKind::ConcurrencyLimit
        | ErrorKind::ConnectFailure
        | ErrorKind::ConnectTimeout => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The gRPC status for an error (an injected HTTP status maps as gRPC's HTTP mapping says).
pub fn grpc_code(e: &ProxyError) -> GrpcCode {
    match &e.kind {
        ErrorKind::DeadlineExceeded | ErrorKind::Timeout => GrpcCode::DeadlineExceeded,
        ErrorKind::TenantIsolation => GrpcCode::PermissionDenied,
        ErrorKind::RateLimited { .. } | ErrorKind::ConcurrencyLimit | ErrorKind::EndpointsBusy => {
            GrpcCode::ResourceExhausted
        }
        ErrorKind::BadRequest | ErrorKind::BadRequestBody | ErrorKind::RequestBodyTimeout => {
            GrpcCode::Internal
        }
        ErrorKind::NoRoute => GrpcCode::Unimplemented,
        ErrorKind::FaultInjected { status } => match status {
            400 => GrpcCode::Internal,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 => GrpcCode::Unimplemented,
            429 | 502 | 503 | 504 => GrpcCode::Unavailable,
            _ => GrpcCode::Unknown,
        },
        ErrorKind::UnknownDestination
        | ErrorKind::NoEndpoints
        | ErrorKind::SubsetUnavailable
        | ErrorKind::CircuitOpen
        | ErrorKind::ConnectFailure
        | ErrorKind::ConnectTimeout
        | ErrorKind::Reset => GrpcCode::Unavailable,
    }
}

/// The response for `e`; `grpc`: the caller speaks gRPC.
pub fn error(e: &ProxyError, grpc: bool) -> Response<Body> {
    let mut resp = if grpc { grpc_reply(e) } else { http_reply(e) };
    resp.headers_mut().insert(REASON, HeaderValue::from_static(e.reason()));
    if let ErrorKind::RateLimited { scope, .. } = &e.kind
        && let Ok(v) = HeaderValue::from_str(scope)
    {
        resp.headers_mut().insert(LIMIT, v);
    }
    resp
}

fn http_reply(e: &ProxyError) -> Response<Body> {
    let (body, extra) = match &e.kind {
        ErrorKind::RateLimited { action, .. } if !action.body.is_empty() => {
            (action.body.clone(), &action.headers)
        }
        ErrorKind::RateLimited { action, .. } => (format!("{}\n", e.message()), &action.headers),
        _ => (format!("{}\n", e.message()), &EMPTY),
    };
    let mut resp = Response::new(Body::local(Bytes::from(body)));
    *resp.status_mut() = status(e);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(k, v);
        }
    }
    resp
}

static EMPTY: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

/// A trailers-only gRPC response: status 200, no body, the status in the headers.
fn grpc_reply(e: &ProxyError) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    h.insert(GRPC_STATUS, HeaderValue::from(grpc_code(e) as u16));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(&e.message())) {
        h.insert(GRPC_MESSAGE, v);
    }
    resp
}

/// `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2 spec).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn err(kind: ErrorKind) -> ProxyError {
        ProxyError::new(kind, "10.244.0.9:8080: Connection refused (os error 111)")
            .for_service(&Arc::from("shop/web"))
    }

    #[test]
    fn bodies_never_carry_addresses_or_library_text() {
        for kind in [ErrorKind::ConnectFailure, ErrorKind::Reset, ErrorKind::Timeout, ErrorKind::NoEndpoints]
        {
            let e = err(kind);
            let resp = error(&e, false);
            let body = match resp.body() {
                Body::Local(b) => String::from_utf8_lossy(b.as_ref().map_or(&[][..], |b| b)).into_owned(),
                Body::Upstream(..) => unreachable!(),
            };
            assert!(!body.contains("10.244") && !body.contains("os error"), "{body}");
            assert!(body.contains("shop/web"), "{body}");
            assert_eq!(resp.headers()[&REASON], e.reason());
        }
    }

    #[test]
    fn grpc_callers_get_a_status_they_understand() {
        for (kind, code) in [
            (ErrorKind::DeadlineExceeded, 4),
            (ErrorKind::NoEndpoints, 14),
            (ErrorKind::ConcurrencyLimit, 8),
            (ErrorKind::TenantIsolation, 7),
            (ErrorKind::FaultInjected { status: 404 }, 12),
        ] {
            let resp = error(&err(kind), true);
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()[&GRPC_STATUS], code.to_string().as_str());
            assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/grpc");
        }
        assert_eq!(percent_encode("a b%ü"), "a b%25%C3%BC");
    }

    #[test]
    fn a_rate_limit_answers_with_its_fallback_action() {
        let action = RejectActionLike::sentinel();
        let kind = ErrorKind::RateLimited { action: Arc::new(action), scope: Arc::from("shop/web/checkout") };
        let e = ProxyError::new(kind, "limited").for_service(&Arc::from("shop/web"));
        let resp = error(&e, false);
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(resp.headers()["x-sentinel-limit"], "foo");
        assert_eq!(resp.headers()[&LIMIT], "shop/web/checkout");
    }

    struct RejectActionLike;
    impl RejectActionLike {
        fn sentinel() -> crate::inventory::resilience::RejectAction {
            serde_norway::from_str(
                "{status: 429, body: 'Blocked by Sentinel', headers: {X-Sentinel-Limit: foo}}",
            )
            .expect("yaml")
        }
    }
}
