//! The lane on the wire, in every propagation format a request already carries, so apps
//! that forward only their tracer's headers keep the lane without knowing it. Read for
//! callers inside the mesh in this order (the first carrier with a tag wins; a tenant is
//! taken likewise, and never for a pod with a tenant of its own):
//!
//! | source | carrier |
//! |---|---|
//! | `header` | `x-graylane-tag` / `x-graylane-tenant`, W3C `baggage` `graylane-tag` / `graylane-tenant` |
//! | `tracestate` | W3C `tracestate` member `graylane=<tag>[:<tenant>]` |
//! | `sw8` | SkyWalking `sw8-correlation` keys `graylane-tag` / `graylane-tenant` |
//! | `jaeger` | `uberctx-graylane-tag` |
//! | `ot-baggage` | `ot-baggage-graylane-tag` (B3 / Brave) |
//!
//! Written on every forwarded request: graylane's own headers always, the others beside
//! the format the request uses (a `traceparent`, an `sw8`, an `uber-trace-id`, B3).
//! Stripped from requests of callers outside the mesh, and from responses to them.

mod graylane;
mod prefixed;
mod sw8;
mod tracestate;

use http::{HeaderMap, HeaderName};

pub use graylane::{TAG, TENANT};
pub use prefixed::jaeger_trace_id;
pub use sw8::trace_id as sw8_trace_id;

use crate::vocab::{Lane, TagSource};

/// What a request carries: the tag and the tenant, each with the carrier it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Carried {
    pub tag: Option<(String, TagSource)>,
    pub tenant: Option<(String, TagSource)>,
}

/// A carrier's tag and tenant.
type Lane2 = (Option<String>, Option<String>);
/// A carrier's reader.
type Reader = fn(&HeaderMap) -> Lane2;

fn jaeger(h: &HeaderMap) -> Lane2 {
    (prefixed::read(h, &prefixed::JAEGER_TAG), None)
}

fn ot_baggage(h: &HeaderMap) -> Lane2 {
    (prefixed::read(h, &prefixed::OT_TAG), None)
}

/// Every carrier, in order of precedence (later carriers are read only while a tag or a
/// tenant is still missing).
pub fn read(headers: &HeaderMap) -> Carried {
    const ORDER: [(TagSource, Reader); 5] = [
        (TagSource::Header, graylane::read_lane),
        (TagSource::Tracestate, tracestate::read),
        (TagSource::Sw8, sw8::read),
        (TagSource::Jaeger, jaeger),
        (TagSource::OtBaggage, ot_baggage),
    ];
    let mut out = Carried::default();
    // Most requests carry no lane: one pass over their names says so, no lookups.
    let carrier = |n: &HeaderName| {
        graylane::READS.contains(n)
            || tracestate::READS.contains(n)
            || sw8::READS.contains(n)
            || prefixed::READS.contains(n)
    };
    if !headers.keys().any(carrier) {
        return out;
    }
    for (source, read) in ORDER {
        if out.tag.is_some() && out.tenant.is_some() {
            break;
        }
        let (tag, tenant) = read(headers);
        if out.tag.is_none() {
            out.tag = tag.map(|t| (t, source));
        }
        if out.tenant.is_none() {
            out.tenant = tenant.map(|t| (t, source));
        }
    }
    out
}

/// Sets the lane on a forwarded request in every format it uses (and removes stale lanes).
pub fn write(headers: &mut HeaderMap, lane: &Lane) {
    let (tag, tenant) = (lane.tag.as_deref(), lane.tenant.as_deref());
    graylane::propagate(headers, lane);
    tracestate::write(headers, tag, tenant);
    sw8::write(headers, tag, tenant);
    prefixed::write(headers, tag);
}

/// Removes every lane from every carrier (callers outside the mesh, responses to them).
pub fn strip(headers: &mut HeaderMap) {
    graylane::strip_lane(headers);
    tracestate::strip(headers);
    sw8::strip(headers);
    prefixed::strip(headers);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::test_headers::map;

    #[test]
    fn the_first_carrier_with_a_tag_wins_and_each_format_round_trips() {
        let h = map(&[
            ("ot-baggage-graylane-tag", "v3"),
            ("tracestate", "graylane=v2:acme"),
            ("uberctx-graylane-tag", "v4"),
        ]);
        let c = read(&h);
        assert_eq!(c.tag, Some(("v2".into(), TagSource::Tracestate)));
        assert_eq!(c.tenant, Some(("acme".into(), TagSource::Tracestate)));
        let lane = Lane {
            tag: Some("gray".into()),
            tag_source: TagSource::Header,
            tenant: None,
            tenant_source: TagSource::None,
        };
        for (only, source) in [
            (
                ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                TagSource::Tracestate,
            ),
            (("sw8", "1-dHJhY2U=-c2VnbWVudA==-3-cw==-aQ==-ZQ==-YQ=="), TagSource::Sw8),
            (("uber-trace-id", "abc:def:0:1"), TagSource::Jaeger),
            (("b3", "80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"), TagSource::OtBaggage),
        ] {
            let mut h = map(&[only]);
            write(&mut h, &lane);
            // An app that forwards only its tracer's headers: drop graylane's own.
            h.remove(TAG);
            h.remove("baggage");
            assert_eq!(read(&h).tag, Some(("gray".into(), source)), "{only:?}");
            strip(&mut h);
            assert_eq!(read(&h), Carried::default(), "{only:?}");
        }
    }
}
