//! A request's lane, first match wins: a lane carrier the request brings (from a pod in
//! the mesh: `x-graylane-tag`, baggage, tracestate, sw8-correlation, Jaeger or B3
//! baggage), an entry coloring rule, the lane the node remembers for the calling pod's
//! trace, the calling pod's annotation, none. A pod's own tenant can never be overridden.

use std::sync::Arc;

use http::HeaderMap;
use xxhash_rust::xxh3::xxh3_64;

use super::LaneMemory;

use crate::{
    inventory::Pod,
    proxy::{Carried, carriers, conn::ConnContext},
    routing::{CompiledRule, RequestView},
    vocab::{Lane, TagSource},
};

/// The lane, and whether the caller tried to claim a tenant that is not its own.
pub struct Resolved {
    pub lane: Lane,
    pub tenant_spoof: bool,
    /// The coloring rule that applied, if any.
    pub rule: Option<Arc<str>>,
    /// The lane the calling pod is serving, when this request carries none and is in no
    /// remembered trace: the app lost it (`lane_lost`).
    pub lost: Option<Arc<str>>,
}

/// `trusted` callers' lane headers count; others' are ignored (and stripped on the way).
pub fn resolve(
    ctx: &ConnContext,
    pod: Option<&Pod>,
    trusted: bool,
    view: &RequestView<'_>,
    rules: &[CompiledRule],
    memory: &dyn LaneMemory,
) -> Resolved {
    let Carried { tag: header_tag, tenant: header_tenant } =
        if trusted { carriers::read(view.headers) } else { Carried::default() };
    let source = ctx.source_lane(pod);
    // Only percentage rules need a sample.
    let sample = if rules.iter().any(|r| r.share < 10_000) { sample(view.headers) } else { 0 };
    let labels = pod.map(|p| (p.namespace.as_str(), &p.labels));
    let rule = rules.iter().find(|r| r.applies(labels, view, sample));

    let mut tenant_spoof = false;
    let (tenant, tenant_source) = if let Some(own) = source.tenant.clone() {
        tenant_spoof = header_tenant.as_ref().is_some_and(|(h, _)| *h != own);
        (Some(own), TagSource::SourcePod)
    } else if let Some((t, from)) = header_tenant {
        (Some(t), from)
    } else if let Some(t) = rule.and_then(|r| r.tenant.clone()) {
        (Some(t), TagSource::Rule)
    } else {
        (None, TagSource::None)
    };
    // The trace memory answers for this caller's tenant only.
    let recalled = |pod: &str| memory.recall(pod, tenant.as_deref());
    let mut lost = None;
    let (tag, tag_source) = if let Some((t, from)) = header_tag {
        (Some(t), from)
    } else if let Some(t) = rule.and_then(|r| r.tag.clone()) {
        (Some(t), TagSource::Rule)
    } else if let Some(t) = ctx.src_pod.as_deref().filter(|_| trusted).and_then(recalled) {
        (Some(t.to_string()), TagSource::Trace)
    } else {
        if source.tag.is_none()
            && let Some(pod) = ctx.src_pod.as_deref().filter(|_| trusted)
        {
            lost = memory.serving(pod);
        }
        (source.tag.clone(), source.tag_source)
    };
    Resolved {
        lane: Lane { tag, tag_source, tenant, tenant_source },
        tenant_spoof,
        rule: rule.map(|r| r.name.clone()),
        lost,
    }
}

/// A stable number per request for percentage rules: the request id's hash, so retries of
/// one request color the same way; random without one.
fn sample(headers: &HeaderMap) -> u64 {
    match headers.get("x-request-id") {
        Some(id) => xxh3_64(id.as_bytes()),
        None => rand::random(),
    }
}
