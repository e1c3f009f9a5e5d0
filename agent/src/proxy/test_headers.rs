//! For tests: a header map from name/value pairs, in order (a repeated name is appended).

use http::{HeaderMap, HeaderName};

pub fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(HeaderName::from_bytes(k.as_bytes()).expect("name"), v.parse().expect("value"));
    }
    h
}
