//! Trace context on the wire: W3C `traceparent`/`tracestate` and B3 (single `b3` header or
//! the `X-B3-*` set). The proxy's span joins the caller's trace (or starts one) and the
//! upstream sees the proxy's span as its parent, in every format the caller used.

use http::{HeaderMap, HeaderName, HeaderValue};
use rand::Rng as _;

pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub const B3: HeaderName = HeaderName::from_static("b3");
pub const B3_TRACE: HeaderName = HeaderName::from_static("x-b3-traceid");
pub const B3_SPAN: HeaderName = HeaderName::from_static("x-b3-spanid");
pub const B3_PARENT: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub const B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub const B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The caller's position in a trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    pub trace_id: [u8; 16],
    pub parent_span_id: [u8; 8],
    /// `None`: the caller did not decide.
    pub sampled: Option<bool>,
}

/// This hop: the trace, the proxy's own span, its parent (the caller's span), and whether
/// it is recorded.
#[derive(Clone, Debug)]
pub struct Hop {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent_span_id: Option<[u8; 8]>,
    pub sampled: bool,
    pub trace_state: Option<String>,
}

/// The caller's context: `traceparent` first, then `b3`, then `X-B3-*`.
pub fn extract(headers: &HeaderMap) -> Option<Incoming> {
    let text = |h: &HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    if let Some(tp) = text(&TRACEPARENT).and_then(parse_traceparent) {
        return Some(tp);
    }
    if let Some(b3) = text(&B3).and_then(parse_b3_single) {
        return Some(b3);
    }
    let trace_id = text(&B3_TRACE).and_then(trace_id)?;
    let parent_span_id = text(&B3_SPAN).and_then(hex::<8>)?;
    let sampled = match (text(&B3_FLAGS), text(&B3_SAMPLED)) {
        (Some("1"), _) => Some(true),
        (_, Some("1" | "true")) => Some(true),
        (_, Some("0" | "false")) => Some(false),
        _ => None,
    };
    Some(Incoming { trace_id, parent_span_id, sampled })
}

/// `00-<32 hex trace>-<16 hex span>-<2 hex flags>`; all-zero ids and version ff are invalid.
pub fn parse_traceparent(v: &str) -> Option<Incoming> {
    let mut parts = v.trim().split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    hex::<1>(version)?;
    let flags = hex::<1>(flags)?[0];
    Some(Incoming {
        trace_id: nonzero(hex::<16>(trace)?)?,
        parent_span_id: nonzero(hex::<8>(span)?)?,
        sampled: Some(flags & 1 == 1),
    })
}

/// `b3: {trace}-{span}[-{sampled}[-{parent}]]`, or just `b3: 0` (deny) which carries no ids.
pub fn parse_b3_single(v: &str) -> Option<Incoming> {
    let mut parts = v.trim().split('-');
    let trace_id = trace_id(parts.next()?)?;
    let parent_span_id = nonzero(hex::<8>(parts.next()?)?)?;
    let sampled = match parts.next() {
        Some("1" | "d") => Some(true),
        Some("0") => Some(false),
        None => None,
        Some(_) => return None,
    };
    Some(Incoming { trace_id, parent_span_id, sampled })
}

/// 32 hex digits, or 16 (B3's 64-bit ids, left-padded with zeros).
fn trace_id(s: &str) -> Option<[u8; 16]> {
    match s.len() {
        32 => nonzero(hex::<16>(s)?),
        16 => {
            let low = hex::<8>(s)?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            nonzero(id)
        }
        _ => None,
    }
}

fn nonzero<const N: usize>(b: [u8; N]) -> Option<[u8; N]> {
    b.iter().any(|x| *x != 0).then_some(b)
}

/// Exactly `2 * N` lowercase-or-uppercase hex digits.
fn hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    let b = s.as_bytes();
    if b.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16);
        out[i] = (d(pair[0])? * 16 + d(pair[1])?) as u8;
    }
    Some(out)
}

pub fn to_hex(b: &[u8]) -> String {
    let mut out = vec![0u8; b.len() * 2];
    hex_into(b, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex of `b` into `out` (twice as long).
pub fn hex_into(b: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (x, pair) in b.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(x >> 4)];
        pair[1] = DIGITS[usize::from(x & 0xf)];
    }
}

impl Hop {
    /// Joins the caller's trace, or starts one; `sample` decides when the caller did not.
    pub fn start(headers: &HeaderMap, sample: impl FnOnce() -> bool) -> Self {
        let mut rng = rand::rng();
        let mut span_id = [0u8; 8];
        rng.fill(&mut span_id[..]);
        span_id[0] |= 1; // never all zero
        let trace_state = headers.get(TRACESTATE).and_then(|v| v.to_str().ok()).map(str::to_owned);
        match extract(headers) {
            Some(i) => Hop {
                trace_id: i.trace_id,
                span_id,
                parent_span_id: Some(i.parent_span_id),
                sampled: i.sampled.unwrap_or_else(sample),
                trace_state,
            },
            None => {
                let mut trace_id = [0u8; 16];
                rng.fill(&mut trace_id[..]);
                trace_id[15] |= 1;
                Hop { trace_id, span_id, parent_span_id: None, sampled: sample(), trace_state: None }
            }
        }
    }

    /// Makes this hop's span the upstream's parent: `traceparent` always, and the B3
    /// headers in whichever form the caller sent.
    pub fn inject(&self, headers: &mut HeaderMap) {
        // The common case, without allocating beyond the header value itself.
        let mut tp = [0u8; 55];
        tp[..3].copy_from_slice(b"00-");
        hex_into(&self.trace_id, &mut tp[3..35]);
        tp[35] = b'-';
        hex_into(&self.span_id, &mut tp[36..52]);
        tp[52..].copy_from_slice(if self.sampled { b"-01" } else { b"-00" });
        if let Ok(v) = HeaderValue::from_bytes(&tp) {
            headers.insert(TRACEPARENT, v);
        }
        if !headers.contains_key(B3) && !headers.contains_key(B3_TRACE) {
            return;
        }
        let (trace, span) = (to_hex(&self.trace_id), to_hex(&self.span_id));
        if headers.contains_key(B3) {
            set(headers, B3, &format!("{trace}-{span}-{}", if self.sampled { "1" } else { "0" }));
        }
        if headers.contains_key(B3_TRACE) {
            set(headers, B3_TRACE, &trace);
            set(headers, B3_SPAN, &span);
            match self.parent_span_id {
                Some(p) => set(headers, B3_PARENT, &to_hex(&p)),
                None => {
                    headers.remove(B3_PARENT);
                }
            }
            set(headers, B3_SAMPLED, if self.sampled { "1" } else { "0" });
        }
    }
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

/// Keeps the caller's `x-request-id`, or makes one (a random UUID v4); returns it.
pub fn request_id(headers: &mut HeaderMap) -> String {
    if let Some(id) =
        headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty() && v.len() <= 128)
    {
        return id.to_owned();
    }
    let mut b = [0u8; 16];
    rand::rng().fill(&mut b[..]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut id = [b'-'; 36];
    for (from, to) in [(0..4, 0..8), (4..6, 9..13), (6..8, 14..18), (8..10, 19..23), (10..16, 24..36)] {
        hex_into(&b[from], &mut id[to]);
    }
    if let Ok(v) = HeaderValue::from_bytes(&id) {
        headers.insert(REQUEST_ID, v);
    }
    String::from_utf8_lossy(&id).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn w3c_and_b3_parse_and_bad_input_is_ignored() {
        let tp = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("valid");
        assert_eq!(to_hex(&tp.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tp.sampled, Some(true));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
            "",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        let b3 = parse_b3_single("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1-05e3ac9a4f6e3b90")
            .expect("b3");
        assert_eq!(b3.sampled, Some(true));
        let short = parse_b3_single("64fe8b2a57d3eff7-e457b5a2e4d86bd1").expect("64-bit");
        assert_eq!(to_hex(&short.trace_id), "000000000000000064fe8b2a57d3eff7");
        assert!(parse_b3_single("0").is_none());
    }

    #[test]
    fn the_upstream_sees_this_hop_as_parent_in_every_format() {
        let mut h = HeaderMap::new();
        h.insert(B3_TRACE, HeaderValue::from_static("463ac35c9f6413ad48485a3953bb6124"));
        h.insert(B3_SPAN, HeaderValue::from_static("a2fb4a1d1a96d312"));
        h.insert(B3_SAMPLED, HeaderValue::from_static("1"));
        let hop = Hop::start(&h, || false);
        assert_eq!(hop.parent_span_id.map(|p| to_hex(&p)).as_deref(), Some("a2fb4a1d1a96d312"));
        assert!(hop.sampled, "the caller decided");
        hop.inject(&mut h);
        let tp = h.get(TRACEPARENT).and_then(|v| v.to_str().ok()).expect("traceparent");
        assert!(tp.starts_with("00-463ac35c9f6413ad48485a3953bb6124-"), "{tp}");
        assert_eq!(h.get(B3_SPAN).and_then(|v| v.to_str().ok()), Some(to_hex(&hop.span_id).as_str()));
        assert_eq!(h.get(B3_PARENT).and_then(|v| v.to_str().ok()), Some("a2fb4a1d1a96d312"));
        let mut none = HeaderMap::new();
        let id = request_id(&mut none);
        assert_eq!((id.len(), &id[14..15]), (36, "4"));
    }
}
