//! Shadow traffic: a copy of the request to the mirror subset, fire-and-forget. The copy
//! has `-shadow` appended to its Host, its response is discarded, and at most a bounded
//! number are in flight (more are dropped): the caller never waits for it.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, header};
use http_body_util::BodyExt as _;
use rand::Rng as _;

use super::outgoing::{Head, upstream_uri};
use crate::{
    proxy::{
        Proxy,
        plan::{self, RequestPlan},
        upstream::{Origin, ReqBody},
    },
    routing::PickKey,
    telemetry::metrics,
    vocab::{Lane, TagSource},
};

/// The longest a copy may take before it is abandoned.
const COPY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether this request should be copied (its plan mirrors, and the draw says so).
pub fn wanted(plan: &RequestPlan) -> bool {
    plan.policy
        .as_ref()
        .and_then(|p| p.mirror.as_ref())
        .is_some_and(|(m, _)| rand::rng().random_range(0.0..100.0) < m.percentage)
}

/// Sends the copy, unless the mirror subset has no endpoint or too many copies are out.
/// Returns whether a copy went.
pub fn send(proxy: &Proxy, plan: &RequestPlan, from: &Origin, head: &Head, body: Bytes) -> bool {
    let (Some(policy), Some(svc)) = (plan.policy.as_ref(), plan.service.as_ref()) else { return false };
    let Some((mirror, slots)) = policy.mirror.as_ref() else { return false };
    let counter = |result: &str| metrics().policy.mirrored.with_label_values(&[&*policy.scope, result]).inc();
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        tracing::debug!(scope = %policy.scope, "mirror queue full; copy dropped");
        counter("dropped");
        return false;
    };
    let lane = Lane { tag: Some(mirror.subset.clone()), tag_source: TagSource::Rule, ..plan.lane.clone() };
    let key = PickKey { hash: None, client: "" };
    let Ok(d) = svc.decide(&lane, None, &key, None) else { return false };
    if *d.subset != *mirror.subset {
        return false; // no shadow endpoint: never copy into production
    }
    let target = plan::target(d);
    let h2 = head.version == http::Version::HTTP_2;
    let mut headers = head.headers.clone();
    let authority =
        head.uri.authority().map(|a| a.as_str()).or_else(|| headers.get(header::HOST)?.to_str().ok());
    if let Some(v) = authority.map(shadow_host).and_then(|h| HeaderValue::from_str(&h).ok()) {
        headers.insert(header::HOST, v);
    }
    // The authority travels as Host (HTTP/2: `:authority` is made from it).
    let path =
        head.uri.path_and_query().map_or_else(|| http::Uri::from_static("/"), |p| http::Uri::from(p.clone()));
    let Ok(uri) = upstream_uri(&path, &headers, &target, h2) else { return false };
    let mut req = Request::new(ReqBody::full(body));
    *req.method_mut() = head.method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = head.version;
    *req.headers_mut() = headers;
    if h2 {
        req.headers_mut().remove(header::HOST);
    }
    counter("sent");
    let failed = metrics().policy.mirrored.with_label_values(&[&*policy.scope, "failed"]);
    let pool = proxy.pool.clone();
    // The copy leaves from the caller's address too: no path goes out from the node's.
    let from = from.clone();
    tokio::spawn(async move {
        let _slot = slot;
        match tokio::time::timeout(COPY_TIMEOUT, pool.send(&from, target.endpoint, h2, req, None)).await {
            Ok(Ok(resp)) => {
                let _ = resp.into_body().collect().await;
            }
            _ => failed.inc(),
        }
    });
    true
}

/// `app:8080` → `app-shadow:8080`, `app` → `app-shadow` (Istio's convention).
fn shadow_host(host: &str) -> String {
    match host.rsplit_once(':') {
        Some((name, port))
            if (!name.contains(':') || name.ends_with(']')) && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("{name}-shadow:{port}")
        }
        _ => format!("{host}-shadow"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_hosts_keep_the_port() {
        assert_eq!(shadow_host("app"), "app-shadow");
        assert_eq!(shadow_host("app.shop:8080"), "app.shop-shadow:8080");
        assert_eq!(shadow_host("10.96.0.20"), "10.96.0.20-shadow");
    }
}
