//! The lane in W3C `tracestate`: a `graylane=<tag>[:<tenant>]` list member, written (moved
//! to the front, as an updated member must be) whenever the request has a `traceparent`,
//! so OpenTelemetry's tracecontext propagator carries it on. At most 32 members: the
//! rightmost goes when full.

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::vocab::valid_label;

const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const KEY: &str = "graylane";
const MAX_MEMBERS: usize = 32;

/// The header [`read`] reads.
pub(super) const READS: [HeaderName; 1] = [TRACESTATE];

/// Tag and tenant from our member, if it is there and well-formed.
pub fn read(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(value) = members(headers).find_map(|m| m.strip_prefix("graylane=")) else { return (None, None) };
    let (tag, tenant) = value.split_once(':').unwrap_or((value, ""));
    let ok = |v: &str| (!v.is_empty() && valid_label(v)).then(|| v.to_owned());
    (ok(tag), ok(tenant))
}

fn members(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(TRACESTATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|m| !m.is_empty())
}

/// Writes our member at the front (with a `traceparent` only: tracestate means nothing
/// without one); `None` removes it.
pub fn write(headers: &mut HeaderMap, tag: Option<&str>, tenant: Option<&str>) {
    if !headers.contains_key(TRACEPARENT) {
        return;
    }
    let ours = match (tag, tenant) {
        (None, None) => None,
        (tag, Some(tenant)) => Some(format!("{KEY}={}:{tenant}", tag.unwrap_or(""))),
        (Some(tag), None) => Some(format!("{KEY}={tag}")),
    };
    set(headers, ours);
}

/// Removes our member (callers outside the mesh).
pub fn strip(headers: &mut HeaderMap) {
    if headers.contains_key(TRACESTATE) {
        set(headers, None);
    }
}

fn set(headers: &mut HeaderMap, ours: Option<String>) {
    if !headers.contains_key(TRACESTATE) {
        // Nobody else's members: ours alone (most requests).
        if let Some(v) = ours.and_then(|o| HeaderValue::try_from(o).ok()) {
            headers.insert(TRACESTATE, v);
        }
        return;
    }
    let others: Vec<&str> = members(headers).filter(|m| m.split('=').next() != Some(KEY)).collect();
    let mut list: Vec<&str> = Vec::with_capacity(others.len() + 1);
    if let Some(o) = &ours {
        list.push(o);
    }
    list.extend(others.iter().take(MAX_MEMBERS - list.len()));
    let joined = list.join(",");
    if joined.is_empty() {
        headers.remove(TRACESTATE);
    } else if let Ok(v) = HeaderValue::try_from(joined) {
        headers.insert(TRACESTATE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::test_headers::map;

    #[test]
    fn our_member_goes_to_the_front_and_the_list_stays_within_32() {
        let tp = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
        let mut h = map(&[tp, ("tracestate", "congo=t61rcWkgMzE, graylane=old,rojo=00f067aa0ba902b7")]);
        write(&mut h, Some("gray"), None);
        assert_eq!(h["tracestate"], "graylane=gray,congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
        assert_eq!(read(&h), (Some("gray".into()), None));
        let full: Vec<String> = (0..32).map(|i| format!("k{i}=v")).collect();
        let mut h = map(&[tp, ("tracestate", &full.join(","))]);
        write(&mut h, Some("gray"), Some("acme"));
        let v = h["tracestate"].to_str().expect("ascii");
        assert_eq!(v.split(',').count(), 32);
        assert!(v.starts_with("graylane=gray:acme,k0=v") && !v.contains("k31=v"), "{v}");
        assert_eq!(read(&h), (Some("gray".into()), Some("acme".into())));
        strip(&mut h);
        assert_eq!(read(&h), (None, None));
    }

    #[test]
    fn nothing_is_written_without_a_traceparent_and_bad_values_are_ignored() {
        let mut h = map(&[("tracestate", "a=b")]);
        write(&mut h, Some("gray"), None);
        assert_eq!(h["tracestate"], "a=b");
        let bad = map(&[("tracestate", "graylane=-gray-")]);
        assert_eq!(read(&bad), (None, None));
    }
}
