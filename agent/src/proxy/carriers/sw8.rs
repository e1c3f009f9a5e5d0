//! The lane in SkyWalking's cross-process correlation header, `sw8-correlation`: comma-
//! separated `base64(key):base64(value)` pairs. Written (key `graylane-tag`, and
//! `graylane-tenant` with a tenant) whenever the request carries `sw8`, so the SkyWalking
//! agent in the next app carries it on; SkyWalking's limits hold (3 keys, values of 128
//! characters): when the app's own keys fill it, ours is not written.

use base64::{Engine as _, engine::general_purpose::STANDARD};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::vocab::valid_label;

const SW8: HeaderName = HeaderName::from_static("sw8");
const CORRELATION: HeaderName = HeaderName::from_static("sw8-correlation");
const TAG_KEY: &str = "graylane-tag";

/// The header [`read`] reads.
pub(super) const READS: [HeaderName; 1] = [CORRELATION];
const TENANT_KEY: &str = "graylane-tenant";
/// SkyWalking's defaults: keys per request, and a value's length.
const MAX_KEYS: usize = 3;
const MAX_VALUE: usize = 128;

/// The decoded pairs of `sw8-correlation`.
fn pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    let Some(text) = headers.get(CORRELATION).and_then(|v| v.to_str().ok()) else { return Vec::new() };
    let decode = |s: &str| STANDARD.decode(s.trim()).ok().and_then(|b| String::from_utf8(b).ok());
    text.split(',')
        .filter_map(|pair| {
            let (k, v) = pair.split_once(':')?;
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

pub fn read(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let pairs = pairs(headers);
    let get =
        |key: &str| pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).filter(|v| valid_label(v));
    (get(TAG_KEY), get(TENANT_KEY))
}

/// Writes our keys when the request carries `sw8` (and there is room).
pub fn write(headers: &mut HeaderMap, tag: Option<&str>, tenant: Option<&str>) {
    if headers.contains_key(SW8) {
        set(headers, tag, tenant);
    }
}

/// Removes our keys (callers outside the mesh).
pub fn strip(headers: &mut HeaderMap) {
    if headers.contains_key(CORRELATION) {
        set(headers, None, None);
    }
}

fn set(headers: &mut HeaderMap, tag: Option<&str>, tenant: Option<&str>) {
    let mut pairs: Vec<(String, String)> =
        pairs(headers).into_iter().filter(|(k, _)| k != TAG_KEY && k != TENANT_KEY).collect();
    for (key, value) in [(TAG_KEY, tag), (TENANT_KEY, tenant)] {
        if let Some(v) = value.filter(|v| v.len() <= MAX_VALUE)
            && pairs.len() < MAX_KEYS
        {
            pairs.push((key.to_owned(), v.to_owned()));
        }
    }
    if pairs.is_empty() {
        headers.remove(CORRELATION);
        return;
    }
    let text: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{}:{}", STANDARD.encode(k), STANDARD.encode(v))).collect();
    if let Ok(v) = HeaderValue::try_from(text.join(",")) {
        headers.insert(CORRELATION, v);
    }
}

/// The trace id of an `sw8` header (its second field, base64).
pub fn trace_id(headers: &HeaderMap) -> Option<Vec<u8>> {
    let text = headers.get(SW8)?.to_str().ok()?;
    let field = text.split('-').nth(1)?;
    STANDARD.decode(field).ok().filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_keys_join_the_apps_and_respect_skywalkings_limits() {
        let mut h = HeaderMap::new();
        h.insert(
            SW8,
            "1-dHJhY2U=-c2VnbWVudA==-3-c2VydmljZQ==-aW5zdGFuY2U=-L2FwaQ==-MTAuMC4wLjE6ODA="
                .parse()
                .expect("hv"),
        );
        assert_eq!(trace_id(&h).as_deref(), Some(&b"trace"[..]));
        h.insert(
            CORRELATION,
            format!("{}:{}", STANDARD.encode("user"), STANDARD.encode("7")).parse().expect("hv"),
        );
        write(&mut h, Some("gray"), Some("acme"));
        assert_eq!(read(&h), (Some("gray".into()), Some("acme".into())));
        assert_eq!(pairs(&h).len(), 3, "the app's key stays");
        // Full with the app's own keys: ours does not fit.
        let full: Vec<String> = ["a", "b", "c"]
            .iter()
            .map(|k| format!("{}:{}", STANDARD.encode(k), STANDARD.encode("x")))
            .collect();
        h.insert(CORRELATION, full.join(",").parse().expect("hv"));
        write(&mut h, Some("gray"), None);
        assert_eq!(read(&h), (None, None));
        strip(&mut h);
        assert_eq!(pairs(&h).len(), 3);
    }

    #[test]
    fn without_sw8_nothing_is_written_and_garbage_is_ignored() {
        let mut h = HeaderMap::new();
        write(&mut h, Some("gray"), None);
        assert!(h.is_empty());
        h.insert(CORRELATION, "%%%:###,Z3JheWxhbmUtdGFn".parse().expect("hv"));
        assert_eq!(read(&h), (None, None));
    }
}
