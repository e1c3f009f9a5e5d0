//! A request's lane, first match wins: a trusted header, an entry coloring rule, the
//! calling pod's annotation, none. A pod's own tenant can never be overridden.

use http::HeaderMap;
use xxhash_rust::xxh3::xxh3_64;

use super::headers;
use crate::{
    inventory::Pod,
    proxy::{
        routing::{CompiledRule, Lane, RequestView, TagSource},
        source::ConnContext,
    },
};

/// The lane, and whether the caller tried to claim a tenant that is not its own.
pub struct Resolved {
    pub lane: Lane,
    pub tenant_spoof: bool,
    /// The coloring rule that applied, if any.
    pub rule: Option<std::sync::Arc<str>>,
}

/// `trusted` callers' lane headers count; others' were stripped before this.
pub fn resolve(
    ctx: &ConnContext,
    pod: Option<&Pod>,
    trusted: bool,
    view: &RequestView<'_>,
    rules: &[CompiledRule],
) -> Resolved {
    let (header_tag, header_tenant) = if trusted { headers::read_lane(view.headers) } else { (None, None) };
    let source = ctx.source_lane(pod);
    // Only percentage rules need a sample.
    let sample = if rules.iter().any(|r| r.share < 10_000) { sample(view.headers) } else { 0 };
    let labels = pod.map(|p| (p.namespace.as_str(), &p.labels));
    let rule = rules.iter().find(|r| r.applies(labels, view, sample));

    let (tag, tag_source) = if let Some(t) = header_tag {
        (Some(t), TagSource::Header)
    } else if let Some(t) = rule.and_then(|r| r.tag.clone()) {
        (Some(t), TagSource::Rule)
    } else {
        (source.tag.clone(), source.tag_source)
    };
    let mut tenant_spoof = false;
    let (tenant, tenant_source) = if let Some(own) = source.tenant.clone() {
        tenant_spoof = header_tenant.as_ref().is_some_and(|h| *h != own);
        (Some(own), TagSource::SourcePod)
    } else if let Some(t) = header_tenant {
        (Some(t), TagSource::Header)
    } else if let Some(t) = rule.and_then(|r| r.tenant.clone()) {
        (Some(t), TagSource::Rule)
    } else {
        (None, TagSource::None)
    };
    Resolved {
        lane: Lane { tag, tag_source, tenant, tenant_source },
        tenant_spoof,
        rule: rule.map(|r| r.name.clone()),
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
