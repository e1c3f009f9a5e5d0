//! graylane's own carriers: `x-graylane-tag`, `x-graylane-tenant`, and the W3C `baggage`
//! keys `graylane-tag` / `graylane-tenant` (written on every forwarded request).

use http::{HeaderMap, HeaderName, HeaderValue};

use crate::vocab::{Lane, valid_label};

pub const TAG: HeaderName = HeaderName::from_static("x-graylane-tag");
pub const TENANT: HeaderName = HeaderName::from_static("x-graylane-tenant");
const BAGGAGE: HeaderName = HeaderName::from_static("baggage");
const BAGGAGE_TAG: &str = "graylane-tag";
const BAGGAGE_TENANT: &str = "graylane-tenant";

/// The headers [`read_lane`] reads.
pub(super) const READS: [HeaderName; 3] = [TAG, TENANT, BAGGAGE];

/// Tag and tenant a request carries (headers first, then baggage). Malformed values are
/// ignored.
pub fn read_lane(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let header = |name: &HeaderName, key: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .or_else(|| baggage(headers, key))
            .filter(|v| valid_label(v))
            .map(str::to_owned)
    };
    (header(&TAG, BAGGAGE_TAG), header(&TENANT, BAGGAGE_TENANT))
}

fn baggage<'a>(headers: &'a HeaderMap, key: &str) -> Option<&'a str> {
    headers.get_all(BAGGAGE).iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
        line.split(',').find_map(|member| {
            let (k, v) = member.split_once('=')?;
            (k.trim() == key).then(|| v.split(';').next().unwrap_or("").trim())
        })
    })
}

/// Removes every lane header and baggage entry (untrusted callers, and responses to them).
pub fn strip_lane(headers: &mut HeaderMap) {
    headers.remove(&TAG);
    headers.remove(&TENANT);
    rewrite_baggage(headers, &[]);
}

/// Sets the resolved lane on a forwarded request, so the next hop keeps it.
pub fn propagate(headers: &mut HeaderMap, lane: &Lane) {
    let mut entries = Vec::new();
    for (name, key, value) in [(&TAG, BAGGAGE_TAG, &lane.tag), (&TENANT, BAGGAGE_TENANT, &lane.tenant)] {
        match value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            Some(v) => {
                headers.insert(name.clone(), v);
                entries.push((key, value.as_deref().unwrap_or_default()));
            }
            None => {
                headers.remove(name);
            }
        }
    }
    rewrite_baggage(headers, &entries);
}

/// Keeps foreign baggage members, drops ours, appends `entries`.
fn rewrite_baggage(headers: &mut HeaderMap, entries: &[(&str, &str)]) {
    if !headers.contains_key(BAGGAGE) {
        // The common case: nothing to merge, one allocation.
        if !entries.is_empty() {
            let mut joined = String::with_capacity(entries.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    joined.push(',');
                }
                joined.push_str(k);
                joined.push('=');
                joined.push_str(v);
            }
            if let Ok(v) = HeaderValue::try_from(joined) {
                headers.insert(BAGGAGE, v);
            }
        }
        return;
    }
    let mut members: Vec<String> = headers
        .get_all(BAGGAGE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|m| {
            let key = m.split('=').next().unwrap_or("").trim();
            !m.is_empty() && key != BAGGAGE_TAG && key != BAGGAGE_TENANT
        })
        .map(str::to_owned)
        .collect();
    members.extend(entries.iter().map(|(k, v)| format!("{k}={v}")));
    headers.remove(BAGGAGE);
    if !members.is_empty()
        && let Ok(v) = HeaderValue::from_str(&members.join(","))
    {
        headers.insert(BAGGAGE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::test_headers::map;
    use crate::vocab::TagSource;

    #[test]
    fn reads_headers_then_baggage_and_ignores_malformed() {
        let h = map(&[("baggage", "userId=7, graylane-tag=gray;prop=1"), ("x-graylane-tenant", "acme")]);
        assert_eq!(read_lane(&h), (Some("gray".into()), Some("acme".into())));
        let bad = map(&[("x-graylane-tag", "-bad value-")]);
        assert_eq!(read_lane(&bad), (None, None));
    }

    #[test]
    fn propagation_replaces_our_baggage_and_keeps_the_rest() {
        let mut h = map(&[("baggage", "userId=7,graylane-tag=old"), ("x-graylane-tag", "old")]);
        let lane = Lane {
            tag: Some("gray".into()),
            tag_source: TagSource::Header,
            tenant: None,
            tenant_source: TagSource::None,
        };
        propagate(&mut h, &lane);
        assert_eq!(h.get("x-graylane-tag").and_then(|v| v.to_str().ok()), Some("gray"));
        assert_eq!(h.get("baggage").and_then(|v| v.to_str().ok()), Some("userId=7,graylane-tag=gray"));
        strip_lane(&mut h);
        assert!(h.get("x-graylane-tag").is_none());
        assert_eq!(h.get("baggage").and_then(|v| v.to_str().ok()), Some("userId=7"));
    }
}
