//! Route matching, compiled once per policy: path (exact/prefix/regex), method, headers and
//! query parameters (exact/prefix/regex/present).

use http::{HeaderMap, Method};

use super::text::TextMatch;
use crate::inventory::policy::{
    Destination, HeaderRewrite, KeyMatch, Redirect, Route, StringMatch, UrlRewrite,
};

/// The parts of a request routes look at.
pub struct RequestView<'a> {
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

fn text(
    exact: &Option<String>,
    prefix: &Option<String>,
    regex: &Option<String>,
    present: Option<bool>,
) -> Result<TextMatch, String> {
    Ok(match (exact, prefix, regex, present) {
        (Some(e), _, _, _) => TextMatch::Exact(e.clone()),
        (_, Some(p), _, _) => TextMatch::Prefix(p.clone()),
        (_, _, Some(r), _) => TextMatch::regex(r)?,
        (_, _, _, Some(p)) => TextMatch::Present(p),
        _ => TextMatch::Present(true),
    })
}

#[derive(Clone)]
struct Keyed {
    name: String,
    text: TextMatch,
}

fn keyed(m: &KeyMatch) -> Result<Keyed, String> {
    Ok(Keyed { name: m.name.to_ascii_lowercase(), text: text(&m.exact, &m.prefix, &m.regex, m.present)? })
}

#[derive(Clone)]
pub struct CompiledRoute {
    /// The route's name (or `route-<index>`), for explanations.
    pub name: std::sync::Arc<str>,
    path: Option<TextMatch>,
    method: Option<Method>,
    headers: Vec<Keyed>,
    query: Vec<Keyed>,
    source_labels: std::collections::BTreeMap<String, String>,
    /// The service port it is for (`None`: every port).
    port: Option<u16>,
    pub destinations: Vec<Destination>,
    /// Whether a destination has header changes of its own.
    pub destination_headers: bool,
    pub rewrite: HeaderRewrite,
    pub response_headers: HeaderRewrite,
    pub url: Option<UrlRewrite>,
    pub redirect: Option<Redirect>,
    /// The match as written, for `/routes`.
    pub written: serde_json::Value,
    /// The route's own resilience plan (replaces the service's), if it has one.
    pub plan: Option<std::sync::Arc<crate::policy::Plan>>,
}

impl CompiledRoute {
    pub fn compile(
        route: &Route,
        index: usize,
        plan: Option<std::sync::Arc<crate::policy::Plan>>,
    ) -> Result<Self, String> {
        let path = match &route.matches.path {
            Some(StringMatch { exact, prefix, regex }) => Some(text(exact, prefix, regex, None)?),
            None => None,
        };
        Ok(Self {
            name: route.name.clone().unwrap_or_else(|| format!("route-{index}")).into(),
            path,
            method: route.matches.method.as_deref().and_then(|m| Method::from_bytes(m.as_bytes()).ok()),
            headers: route.matches.headers.iter().map(keyed).collect::<Result<_, _>>()?,
            query: route.matches.query.iter().map(keyed).collect::<Result<_, _>>()?,
            source_labels: route.matches.source_labels.clone(),
            port: route.matches.port,
            destinations: route.destinations.clone(),
            destination_headers: route
                .destinations
                .iter()
                .any(|d| !d.headers.is_empty() || !d.response_headers.is_empty()),
            rewrite: route.headers.clone(),
            response_headers: route.response_headers.clone(),
            url: route.rewrite.clone(),
            redirect: route.redirect.clone(),
            written: serde_json::to_value(&route.matches).unwrap_or_default(),
            plan,
        })
    }

    /// Whether a caller with these labels (`None`: not a known pod) may take this route.
    pub fn admits_source(&self, labels: Option<&std::collections::BTreeMap<String, String>>) -> bool {
        self.source_labels.is_empty()
            || labels.is_some_and(|l| self.source_labels.iter().all(|(k, v)| l.get(k) == Some(v)))
    }

    /// Whether the route is for requests sent to service port `port`.
    pub fn admits_port(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        if self.method.as_ref().is_some_and(|m| m != req.method) {
            return false;
        }
        if self.path.as_ref().is_some_and(|p| !p.matches(Some(req.path))) {
            return false;
        }
        let header_ok = self.headers.iter().all(|k| {
            let v = req.headers.get(&k.name).and_then(|v| v.to_str().ok());
            k.text.matches(v)
        });
        header_ok && self.query.iter().all(|k| k.text.matches(query_param(req.query, &k.name)))
    }
}

/// The first value of `name` in a raw query string (no percent-decoding).
pub fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> CompiledRoute {
        let r: Route = serde_norway::from_str(yaml).expect("yaml");
        CompiledRoute::compile(&r, 0, None).expect("compile")
    }

    fn view<'a>(
        method: &'a Method,
        path: &'a str,
        query: Option<&'a str>,
        headers: &'a HeaderMap,
    ) -> RequestView<'a> {
        RequestView { method, path, query, headers }
    }

    #[test]
    fn path_method_header_and_query_matching() {
        let r = route(
            "match: {path: {prefix: /api}, method: POST, headers: [{name: X-User, regex: 'al.*'}, {name: x-debug, present: false}], query: [{name: v, exact: '2'}]}",
        );
        let mut h = HeaderMap::new();
        h.insert("x-user", "alice".parse().expect("hv"));
        let post = Method::POST;
        assert!(r.matches(&view(&post, "/api/x", Some("a=1&v=2"), &h)));
        assert!(!r.matches(&view(&post, "/apx", Some("v=2"), &h)));
        assert!(!r.matches(&view(&Method::GET, "/api", Some("v=2"), &h)));
        assert!(!r.matches(&view(&post, "/api", Some("v=3"), &h)));
        h.insert("x-debug", "1".parse().expect("hv"));
        assert!(!r.matches(&view(&post, "/api", Some("v=2"), &h)));
        let anchored = route("match: {path: {regex: '/v[0-9]+'}}");
        assert!(anchored.matches(&view(&post, "/v12", None, &HeaderMap::new())));
        assert!(!anchored.matches(&view(&post, "/v12/x", None, &HeaderMap::new())));
    }
}
