//! A route's changes to the request line: the path and Host it forwards with (URL
//! rewrite), or a redirect answered instead of forwarding. Query strings are kept.

use http::{HeaderValue, Response, StatusCode, Uri, header, request::Parts};

use crate::{
    inventory::policy::{PrefixRewrite, Redirect, UrlRewrite},
    proxy::{
        body::Body,
        error::{ErrorKind, ProxyError},
    },
};

/// `path` with `prefix.from` replaced by `prefix.to` (element-wise: `/api` matches `/api`
/// and `/api/x`, not `/apix`); unchanged when it does not start with it.
fn replace_prefix(path: &str, prefix: &PrefixRewrite) -> String {
    let from = prefix.from.trim_end_matches('/');
    match path.strip_prefix(from) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') || from.is_empty() => {
            let to = prefix.to.trim_end_matches('/');
            let joined = format!("{to}{rest}");
            if joined.is_empty() {
                "/".into()
            } else if joined.starts_with('/') {
                joined
            } else {
                format!("/{joined}")
            }
        }
        _ => path.to_owned(),
    }
}

fn new_path(path: &str, full: Option<&str>, prefix: Option<&PrefixRewrite>) -> String {
    match (full, prefix) {
        (Some(p), _) => p.to_owned(),
        (None, Some(pre)) => replace_prefix(path, pre),
        (None, None) => path.to_owned(),
    }
}

fn with_query(path: String, uri: &Uri) -> String {
    match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// Applies a URL rewrite to the request about to be forwarded.
pub fn apply(rw: &UrlRewrite, parts: &mut Parts) -> Result<(), ProxyError> {
    let bad = |e: String| ProxyError::new(ErrorKind::BadRequest, format!("rewritten request target: {e}"));
    let path = with_query(new_path(parts.uri.path(), rw.path.as_deref(), rw.prefix.as_ref()), &parts.uri);
    let mut uri = Uri::builder();
    if let Some(scheme) = parts.uri.scheme() {
        uri = uri.scheme(scheme.clone());
    }
    match (&rw.host, parts.uri.authority()) {
        (Some(host), Some(_)) => uri = uri.authority(host.as_str()),
        (None, Some(a)) => uri = uri.authority(a.clone()),
        (_, None) => {}
    }
    parts.uri = uri.path_and_query(path).build().map_err(|e| bad(e.to_string()))?;
    if let Some(host) = &rw.host {
        let value = HeaderValue::from_str(host).map_err(|e| bad(e.to_string()))?;
        parts.headers.insert(header::HOST, value);
    }
    Ok(())
}

/// The redirect a route answers with: `Location` built from the request, each part the
/// redirect gives replacing the request's own.
pub fn redirect(r: &Redirect, parts: &Parts) -> Response<Body> {
    let authority = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned))
        .unwrap_or_default();
    let (req_host, req_port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h.to_owned(), p.parse::<u16>().ok()),
        _ => (authority.clone(), None),
    };
    let scheme = r.scheme.clone().unwrap_or_else(|| parts.uri.scheme_str().unwrap_or("http").to_owned());
    // A new scheme means its well-known port, unless the redirect names one.
    let port = r.port.or(if r.scheme.is_some() { None } else { req_port });
    let well_known = matches!((scheme.as_str(), port), ("http", Some(80)) | ("https", Some(443)));
    let host = r.host.clone().unwrap_or(req_host);
    let path = with_query(new_path(parts.uri.path(), r.path.as_deref(), r.prefix.as_ref()), &parts.uri);
    let location = match port.filter(|_| !well_known) {
        Some(p) => format!("{scheme}://{host}:{p}{path}"),
        None => format!("{scheme}://{host}{path}"),
    };
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND);
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: &str) -> Parts {
        let (mut p, ()) = http::Request::builder().uri(uri).body(()).expect("request").into_parts();
        p.headers.insert(header::HOST, HeaderValue::from_str(host).expect("host"));
        p
    }

    fn location(r: &Redirect, p: &Parts) -> String {
        redirect(r, p).headers()[header::LOCATION].to_str().expect("ascii").to_owned()
    }

    #[test]
    fn prefixes_are_replaced_element_wise_and_queries_kept() {
        let pre = PrefixRewrite { from: "/api".into(), to: "/v2".into() };
        assert_eq!(replace_prefix("/api/x", &pre), "/v2/x");
        assert_eq!(replace_prefix("/api", &pre), "/v2");
        assert_eq!(replace_prefix("/apix", &pre), "/apix");
        let root = PrefixRewrite { from: "/api".into(), to: "/".into() };
        assert_eq!(replace_prefix("/api/x", &root), "/x");
        assert_eq!(replace_prefix("/api", &root), "/");
        let mut p = parts("/api/x?a=1", "shop:8080");
        let rw = UrlRewrite { prefix: Some(pre), host: Some("backend".into()), ..Default::default() };
        apply(&rw, &mut p).expect("rewrite");
        assert_eq!(p.uri.to_string(), "/v2/x?a=1");
        assert_eq!(p.headers[header::HOST], "backend");
    }

    #[test]
    fn redirects_replace_what_they_name_and_keep_the_rest() {
        let p = parts("/old/page?x=1", "shop:8080");
        let to_https = Redirect { scheme: Some("https".into()), status: 301, ..Default::default() };
        assert_eq!(location(&to_https, &p), "https://shop/old/page?x=1");
        let moved = Redirect {
            host: Some("new.example".into()),
            prefix: Some(PrefixRewrite { from: "/old".into(), to: "/new".into() }),
            status: 302,
            ..Default::default()
        };
        assert_eq!(location(&moved, &p), "http://new.example:8080/new/page?x=1");
        assert_eq!(redirect(&moved, &p).status(), StatusCode::FOUND);
        let port = Redirect { port: Some(80), path: Some("/x".into()), status: 308, ..Default::default() };
        assert_eq!(location(&port, &p), "http://shop/x?x=1");
    }
}
