//! The lane as a baggage item of the tracers that carry baggage in prefixed headers:
//! Jaeger's `uberctx-graylane-tag` (written beside `uber-trace-id`) and OpenTracing/Brave's
//! `ot-baggage-graylane-tag` (written beside B3 headers), so those clients carry it on.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::vocab::valid_label;

pub const JAEGER_TAG: HeaderName = HeaderName::from_static("uberctx-graylane-tag");
pub const OT_TAG: HeaderName = HeaderName::from_static("ot-baggage-graylane-tag");
/// The headers a carrier here is read from.
pub(super) const READS: [HeaderName; 2] = [JAEGER_TAG, OT_TAG];
const UBER_TRACE_ID: HeaderName = HeaderName::from_static("uber-trace-id");
const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE: HeaderName = HeaderName::from_static("x-b3-traceid");

/// The tag in `name`, if well-formed.
pub fn read(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| valid_label(v))
        .map(str::to_owned)
}

/// Writes the tag beside the formats the request uses; `None` removes it.
pub fn write(headers: &mut HeaderMap, tag: Option<&str>) {
    let uses = [
        (JAEGER_TAG, headers.contains_key(UBER_TRACE_ID)),
        (OT_TAG, headers.contains_key(B3) || headers.contains_key(B3_TRACE)),
    ];
    for (name, used) in uses {
        match tag.and_then(|t| HeaderValue::from_str(t).ok()) {
            Some(v) if used => {
                headers.insert(name, v);
            }
            _ => {
                headers.remove(name);
            }
        }
    }
}

/// Removes both (callers outside the mesh).
pub fn strip(headers: &mut HeaderMap) {
    headers.remove(JAEGER_TAG);
    headers.remove(OT_TAG);
}

/// The trace id of an `uber-trace-id` header (`{trace}:{span}:{parent}:{flags}`).
pub fn jaeger_trace_id(headers: &HeaderMap) -> Option<&str> {
    let text = headers.get(UBER_TRACE_ID)?.to_str().ok()?;
    let id = text.split(':').next()?;
    (!id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_beside_the_tracer_in_use_and_read_back() {
        let mut h = HeaderMap::new();
        h.insert(UBER_TRACE_ID, "abc123:def:0:1".parse().expect("hv"));
        write(&mut h, Some("gray"));
        assert_eq!(read(&h, &JAEGER_TAG).as_deref(), Some("gray"));
        assert!(!h.contains_key(OT_TAG), "no B3 here");
        assert_eq!(jaeger_trace_id(&h), Some("abc123"));
        h.insert(B3, "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".parse().expect("hv"));
        write(&mut h, Some("gray"));
        assert_eq!(read(&h, &OT_TAG).as_deref(), Some("gray"));
        strip(&mut h);
        assert!(read(&h, &JAEGER_TAG).is_none() && read(&h, &OT_TAG).is_none());
    }
}
