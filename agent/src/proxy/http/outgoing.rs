//! The request that goes upstream: the caller's request line and headers (kept for every
//! try), and how it is addressed — origin-form for HTTP/1.1 (`Host` names the service);
//! for HTTP/2 the caller's authority. The pool is keyed by endpoint, never by authority.

use std::sync::Arc;

use tokio::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Uri, Version, header, request::Parts};
use hyper::body::Incoming;

use crate::proxy::{
    error::{ErrorKind, ProxyError},
    plan::Target,
    upstream::{LocalConn, Origin, ReqBody},
};

/// The request line and headers, kept for every try.
pub struct Head {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
}

impl Head {
    pub fn from_parts(parts: Parts) -> (Self, http::Extensions) {
        (
            Self { method: parts.method, uri: parts.uri, version: parts.version, headers: parts.headers },
            parts.extensions,
        )
    }
}

/// A request ready to go upstream.
pub struct Outgoing {
    pub head: Head,
    pub body: Incoming,
    pub h2: bool,
    /// The caller's deadline, tightened by the route's timeout.
    pub deadline: Option<Instant>,
    /// Where its connections leave from (every try and the copy alike).
    pub from: Origin,
    /// The HTTP/1.1 downstream connection's own upstream connection, for its tries.
    pub local: Option<Arc<LocalConn>>,
}

/// The upstream request: origin-form for HTTP/1.1 (`Host` names the service); for HTTP/2
/// the caller's authority (the pool is keyed by endpoint, never by authority).
pub fn build(head: Head, target: &Target, body: ReqBody, h2: bool) -> Result<Request<ReqBody>, ProxyError> {
    let uri = upstream_uri(&head.uri, &head.headers, target, h2)?;
    let mut req = Request::new(body);
    *req.method_mut() = head.method;
    *req.uri_mut() = uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = head.headers;
    if h2 {
        req.headers_mut().remove(header::HOST);
    }
    Ok(req)
}

pub fn build_copy(
    head: &Head,
    target: &Target,
    body: Bytes,
    h2: bool,
) -> Result<Request<ReqBody>, ProxyError> {
    let copy = Head {
        method: head.method.clone(),
        uri: head.uri.clone(),
        version: head.version,
        headers: head.headers.clone(),
    };
    build(copy, target, ReqBody::full(body), h2)
}

pub fn upstream_uri(uri: &Uri, headers: &HeaderMap, target: &Target, h2: bool) -> Result<Uri, ProxyError> {
    // Already origin-form (what a client sends to a server): as it is, not parsed again.
    if !h2 && uri.scheme().is_none() && uri.authority().is_none() && uri.path_and_query().is_some() {
        return Ok(uri.clone());
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    if !h2 {
        return Uri::try_from(path)
            .map_err(|e| ProxyError::new(ErrorKind::BadRequest, format!("request target: {e}")));
    }
    let authority = uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_else(|| target.endpoint.to_string());
    Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| ProxyError::new(ErrorKind::BadRequest, format!("request authority: {e}")))
}
