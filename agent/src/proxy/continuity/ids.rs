//! The ids a request's lane can be remembered by: the trace id (W3C `traceparent`, B3,
//! Jaeger `uber-trace-id`: one 128-bit space), SkyWalking's `sw8` trace id, and
//! `x-request-id` (only when no tracer's id is there: a client chooses it). Which count is
//! configurable (`--trace-ids`). Each becomes a 64-bit key.

use http::{HeaderMap, HeaderName};
use xxhash_rust::xxh3::Xxh3;

use crate::{proxy::carriers, telemetry::trace};

/// Which ids count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TraceIds {
    pub w3c: bool,
    pub b3: bool,
    pub jaeger: bool,
    pub sw8: bool,
    pub request_id: bool,
}

impl TraceIds {
    pub const ALL: Self = Self { w3c: true, b3: true, jaeger: true, sw8: true, request_id: true };
    pub const NONE: Self = Self { w3c: false, b3: false, jaeger: false, sw8: false, request_id: false };

    /// `w3c,b3,jaeger,sw8,request-id`, any subset, or `none`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut ids = Self::NONE;
        for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            match word {
                "w3c" => ids.w3c = true,
                "b3" => ids.b3 = true,
                "jaeger" => ids.jaeger = true,
                "sw8" => ids.sw8 = true,
                "request-id" => ids.request_id = true,
                "none" => {}
                other => {
                    return Err(format!(
                        "{other:?}: trace ids are w3c, b3, jaeger, sw8, request-id (or none)"
                    ));
                }
            }
        }
        Ok(ids)
    }
}

/// Up to five keys of one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    keys: [u64; 5],
    n: usize,
    /// A tracer's id is among them.
    tracer: bool,
}

/// Whether a request's `x-request-id` becomes a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestId {
    /// Only when no tracer's id does: what a request is recalled by, and what a lane is
    /// learnt by when its caller brought a tracer's id.
    UnlessTracer,
    /// Besides the tracer's: what a base request overwrites, and what a lane is learnt by
    /// when its caller brought no tracer's id (this hop minted the one it leaves with).
    Always,
}

impl Keys {
    /// A tracer's id (not only a request id) is among them.
    pub fn has_tracer(&self) -> bool {
        self.tracer
    }

    pub fn as_slice(&self) -> &[u64] {
        &self.keys[..self.n]
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    fn push(&mut self, kind: u8, id: &[u8]) {
        let mut h = Xxh3::new();
        h.update(&[kind]);
        h.update(id);
        let key = h.digest();
        if self.n < self.keys.len() && !self.as_slice().contains(&key) {
            self.keys[self.n] = key;
            self.n += 1;
        }
    }

    /// From raw keys (a hint's).
    pub fn from_slice(keys: &[u64]) -> Self {
        let mut out = Self::default();
        for k in keys.iter().take(5) {
            out.keys[out.n] = *k;
            out.n += 1;
        }
        out
    }
}

/// Kinds keep the id spaces apart.
const TRACE: u8 = b'T';
const SW8: u8 = b'S';
const REQUEST: u8 = b'R';

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const B3: HeaderName = HeaderName::from_static("b3");
const B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn keys(headers: &HeaderMap, which: TraceIds, request_id: RequestId) -> Keys {
    let mut out = Keys::default();
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    if which.w3c
        && let Some(tp) = text(&TRACEPARENT).and_then(trace::parse_traceparent)
    {
        out.push(TRACE, &tp.trace_id);
    }
    if which.b3 {
        let b3 = text(&B3).and_then(trace::parse_b3_single).map(|i| i.trace_id).or_else(|| {
            let id = text(&B3_TRACE_ID)?;
            trace::parse_b3_single(&format!("{id}-0000000000000001")).map(|i| i.trace_id)
        });
        if let Some(id) = b3 {
            out.push(TRACE, &id);
        }
    }
    if which.jaeger
        && let Some(id) = carriers::jaeger_trace_id(headers)
        && let Some(id) = trace_id_128(id)
    {
        out.push(TRACE, &id);
    }
    if which.sw8
        && let Some(id) = carriers::sw8_trace_id(headers)
    {
        out.push(SW8, &id);
    }
    out.tracer = !out.is_empty();
    // The client picks its own `x-request-id` (anyone can send another's): it counts only
    // when no tracer's id does (see `RequestId`).
    if which.request_id
        && (request_id == RequestId::Always || out.is_empty())
        && let Some(id) = text(&REQUEST_ID).filter(|v| !v.is_empty() && v.len() <= 128)
    {
        out.push(REQUEST, id.as_bytes());
    }
    out
}

/// A hex trace id of up to 32 digits, left-padded to 128 bits (Jaeger drops leading zeros).
fn trace_id_128(hex: &str) -> Option<[u8; 16]> {
    let v = u128::from_str_radix(hex, 16).ok()?;
    (v != 0).then(|| v.to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::test_headers::map;

    #[test]
    fn one_trace_gives_one_key_whichever_tracer_carries_it() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let w3c = keys(
            &map(&[("traceparent", &format!("00-{id}-00f067aa0ba902b7-01"))]),
            TraceIds::ALL,
            RequestId::UnlessTracer,
        );
        let b3 = keys(
            &map(&[("x-b3-traceid", id), ("x-b3-spanid", "e457b5a2e4d86bd1")]),
            TraceIds::ALL,
            RequestId::UnlessTracer,
        );
        let b3_single = keys(
            &map(&[("b3", &format!("{id}-e457b5a2e4d86bd1-1"))]),
            TraceIds::ALL,
            RequestId::UnlessTracer,
        );
        let jaeger = keys(
            &map(&[("uber-trace-id", &format!("{id}:e457b5a2e4d86bd1:0:1"))]),
            TraceIds::ALL,
            RequestId::UnlessTracer,
        );
        assert_eq!(w3c.as_slice().len(), 1);
        assert_eq!(w3c, b3);
        assert_eq!(w3c, b3_single);
        assert_eq!(w3c, jaeger);
        let rid = keys(&map(&[("x-request-id", "abc")]), TraceIds::ALL, RequestId::UnlessTracer);
        assert_ne!(rid, w3c);
        assert_eq!(rid.as_slice().len(), 1);
        let tp = format!("00-{id}-00f067aa0ba902b7-01");
        let both = keys(
            &map(&[("traceparent", &tp), ("x-request-id", "abc")]),
            TraceIds::ALL,
            RequestId::UnlessTracer,
        );
        assert_eq!(both, w3c, "a tracer's id present: the request id does not count");
        let always =
            keys(&map(&[("traceparent", &tp), ("x-request-id", "abc")]), TraceIds::ALL, RequestId::Always);
        assert_eq!(always.as_slice(), [w3c.as_slice(), rid.as_slice()].concat());
        assert!(always.has_tracer() && !rid.has_tracer());
        assert!(
            keys(
                &map(&[("x-request-id", "abc")]),
                TraceIds::parse("w3c").expect("parse"),
                RequestId::UnlessTracer
            )
            .is_empty()
        );
        assert!(TraceIds::parse("zipkin").is_err());
    }
}
