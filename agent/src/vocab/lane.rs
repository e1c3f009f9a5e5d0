//! A request's lane: its tag and tenant, and where each came from.

/// Where the tag came from, first match wins: graylane's own headers (`x-graylane-tag`,
/// W3C `baggage`), the lane written into another propagation format the app forwarded
/// (W3C `tracestate`, SkyWalking `sw8-correlation`, Jaeger `uberctx-`, B3's
/// `ot-baggage-`), an entry coloring rule, the lane remembered for the request's trace
/// (`trace`: learned on this node, or told by the caller's node), the calling pod's own
/// annotation, or nothing (base traffic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagSource {
    Header,
    Tracestate,
    Sw8,
    Jaeger,
    OtBaggage,
    Rule,
    Trace,
    SourcePod,
    None,
}

impl TagSource {
    pub const fn as_str(self) -> &'static str {
        match self {
            TagSource::Header => "header",
            TagSource::Tracestate => "tracestate",
            TagSource::Sw8 => "sw8",
            TagSource::Jaeger => "jaeger",
            TagSource::OtBaggage => "ot-baggage",
            TagSource::Rule => "rule",
            TagSource::Trace => "trace",
            TagSource::SourcePod => "source-pod",
            TagSource::None => "none",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Lane {
    pub tag: Option<String>,
    pub tag_source: TagSource,
    pub tenant: Option<String>,
    pub tenant_source: TagSource,
}

impl Lane {
    /// The lane a pod with this tag and tenant implies for what it sends: each from the
    /// source pod, or none.
    pub fn of_source_pod(tag: Option<String>, tenant: Option<String>) -> Self {
        let from = |v: &Option<String>| if v.is_some() { TagSource::SourcePod } else { TagSource::None };
        Self { tag_source: from(&tag), tenant_source: from(&tenant), tag, tenant }
    }
}

/// A Kubernetes label value: what tags and tenants must look like on the wire too.
pub fn valid_label(v: &str) -> bool {
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}
