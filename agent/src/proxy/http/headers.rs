//! The lane on the wire: `x-graylane-tag`, `x-graylane-tenant` and the W3C `baggage` keys
//! `graylane-tag` / `graylane-tenant`; and hop-by-hop headers a proxy must not forward.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::proxy::routing::{Lane, valid_label};

pub const TAG: HeaderName = HeaderName::from_static("x-graylane-tag");
pub const TENANT: HeaderName = HeaderName::from_static("x-graylane-tenant");
pub const REASON: HeaderName = HeaderName::from_static("x-graylane-reason");
const BAGGAGE_TAG: &str = "graylane-tag";
const BAGGAGE_TENANT: &str = "graylane-tenant";

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
    headers.get_all("baggage").iter().filter_map(|v| v.to_str().ok()).find_map(|line| {
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
    if !headers.contains_key("baggage") {
        // The common case: nothing to merge.
        if !entries.is_empty() {
            let joined: Vec<String> = entries.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if let Ok(v) = HeaderValue::from_str(&joined.join(",")) {
                headers.insert("baggage", v);
            }
        }
        return;
    }
    let mut members: Vec<String> = headers
        .get_all("baggage")
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
    headers.remove("baggage");
    if !members.is_empty()
        && let Ok(v) = HeaderValue::from_str(&members.join(","))
    {
        headers.insert("baggage", v);
    }
}

/// A request framed two ways (`Content-Length` and `Transfer-Encoding`): a smuggling
/// attempt or a broken client. Refused rather than normalized: the upstream might read the
/// other framing.
pub fn ambiguous_framing(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING) && headers.contains_key(header::CONTENT_LENGTH)
}

/// Whether an HTTP/1.1 request asks to switch protocols (websocket and friends).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// Removes hop-by-hop headers (RFC 9110 §7.6.1), and those the `Connection` header names.
/// `te: trailers` stays (gRPC needs it); `upgrade`/`connection` stay for an upgrade.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == header::UPGRADE))
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in ["keep-alive", "proxy-connection", "transfer-encoding", "trailer"] {
        headers.remove(n);
    }
    let te_trailers = headers.get(header::TE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(header::TE);
    }
    if !keep_upgrade {
        headers.remove(header::CONNECTION);
        headers.remove(header::UPGRADE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::routing::TagSource;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
        }
        h
    }

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

    #[test]
    fn hop_by_hop_headers_are_removed_except_for_upgrades_and_te_trailers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("x-app", "ok"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let mut names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["te", "x-app"]);
        let mut up = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&up));
        strip_hop_by_hop(&mut up, true);
        assert!(is_upgrade(&up));
    }
}
