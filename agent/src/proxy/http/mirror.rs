//! Shadow traffic: a copy of the request to the mirror subset, fire-and-forget. The copy
//! has `-shadow` appended to its Host, its response is discarded, and at most a bounded
//! number are in flight (more are dropped): the caller never waits for it.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Uri, Version, header};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use rand::Rng as _;

use super::{
    ReqBody,
    forward::Routed,
    upstream::{Connector, endpoint_uri},
};
use crate::proxy::{
    routing::{Lane, PickKey, TagSource},
    source::ConnContext,
};
use crate::telemetry::metrics;

/// The longest a copy may take before it is abandoned.
const COPY_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether this request should be copied (its plan mirrors, and the draw says so).
pub fn wanted(routed: &Routed) -> bool {
    routed
        .plan
        .as_ref()
        .and_then(|p| p.mirror.as_ref())
        .is_some_and(|(m, _)| rand::rng().random_range(0.0..100.0) < m.percentage)
}

/// Sends the copy, unless the mirror subset has no endpoint or too many copies are out.
pub fn send(
    ctx: &ConnContext,
    routed: &Routed,
    client: &Client<Connector, ReqBody>,
    (method, uri, version, headers): (&Method, &Uri, Version, &HeaderMap),
    body: Bytes,
) {
    let (Some(plan), Some(svc)) = (routed.plan.as_ref(), routed.svc.as_ref()) else { return };
    let Some((mirror, slots)) = plan.mirror.as_ref() else { return };
    let counter = |result: &str| metrics().policy.mirrored.with_label_values(&[&*plan.scope, result]).inc();
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        tracing::debug!(scope = %plan.scope, "mirror queue full; copy dropped");
        counter("dropped");
        return;
    };
    let lane = Lane { tag: Some(mirror.subset.clone()), tag_source: TagSource::Rule, ..routed.lane.clone() };
    let key = PickKey { hash: None, client: ctx.src_pod.as_deref().unwrap_or("") };
    let Ok(d) = svc.decide(&lane, None, &key, None) else { return };
    if *d.subset != *mirror.subset {
        return; // no shadow endpoint: never copy into production
    }
    let Ok(uri) = endpoint_uri(d.endpoint.addr, Some(d.endpoint.authority.clone()), uri) else { return };
    let mut headers = headers.clone();
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(shadow_host)
        && let Ok(v) = HeaderValue::from_str(&host)
    {
        headers.insert(header::HOST, v);
    }
    let Ok(mut req) = Request::builder()
        .method(method.clone())
        .uri(uri)
        .version(version)
        .body(Full::new(body).map_err(|never| match never {}).boxed())
    else {
        return;
    };
    *req.headers_mut() = headers;
    let client = client.clone();
    ctx.flow.update(|s| s.mirrored += 1);
    counter("sent");
    let failed = metrics().policy.mirrored.with_label_values(&[&*plan.scope, "failed"]);
    tokio::spawn(async move {
        let _slot = slot;
        match tokio::time::timeout(COPY_TIMEOUT, client.request(req)).await {
            Ok(Ok(resp)) => {
                let _ = resp.into_body().collect().await;
            }
            _ => failed.inc(),
        }
    });
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
