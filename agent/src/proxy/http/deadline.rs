//! Deadline propagation: a hop never works past its caller's deadline. The deadline
//! arrives as `x-graylane-deadline` (Unix milliseconds) or gRPC's `grpc-timeout`, is
//! tightened by the route's timeout, and leaves on the forwarded request in both forms.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue};

pub const DEADLINE: HeaderName = HeaderName::from_static("x-graylane-deadline");
const GRPC_TIMEOUT: &str = "grpc-timeout";

/// The request's deadline: the caller's, tightened by `timeout` from now.
pub fn effective(headers: &HeaderMap, timeout: Option<Duration>) -> Option<Instant> {
    let now = Instant::now();
    let caller = headers
        .get(&DEADLINE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|unix_ms| {
            let left = Duration::from_millis(unix_ms).saturating_sub(unix_now());
            now + left
        })
        .or_else(|| grpc_timeout(headers).map(|d| now + d));
    let own = timeout.map(|t| now + t);
    match (caller, own) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Writes the deadline onto the forwarded request.
pub fn stamp(headers: &mut HeaderMap, deadline: Instant) {
    let left = deadline.saturating_duration_since(Instant::now());
    let unix_ms = (unix_now() + left).as_millis();
    if let Ok(v) = HeaderValue::from_str(&unix_ms.to_string()) {
        headers.insert(DEADLINE, v);
    }
    let grpc = headers.contains_key(GRPC_TIMEOUT)
        || headers
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if grpc && let Ok(v) = HeaderValue::from_str(&format!("{}m", left.as_millis().max(1))) {
        headers.insert(GRPC_TIMEOUT, v);
    }
}

fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `grpc-timeout`: up to 8 digits and a unit (H M S m u n).
fn grpc_timeout(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(GRPC_TIMEOUT)?.to_str().ok()?;
    let (n, unit) = v.split_at(v.len().checked_sub(1)?);
    let n: u64 = n.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tighter_deadline_wins_and_is_forwarded() {
        let mut h = HeaderMap::new();
        h.insert("grpc-timeout", "150m".parse().expect("hv"));
        let d = effective(&h, Some(Duration::from_secs(5))).expect("deadline");
        let left = d.saturating_duration_since(Instant::now());
        assert!(left <= Duration::from_millis(150) && left > Duration::from_millis(100), "{left:?}");
        stamp(&mut h, d);
        let forwarded = h.get("grpc-timeout").and_then(|v| v.to_str().ok()).unwrap_or("");
        assert!(
            forwarded.ends_with('m')
                && forwarded.trim_end_matches('m').parse::<u64>().is_ok_and(|m| m <= 150)
        );
        let mut caller = HeaderMap::new();
        caller.insert(
            DEADLINE,
            (unix_now() + Duration::from_millis(80)).as_millis().to_string().parse().expect("hv"),
        );
        let d = effective(&caller, Some(Duration::from_secs(1))).expect("deadline");
        assert!(d.saturating_duration_since(Instant::now()) <= Duration::from_millis(80));
        assert!(effective(&HeaderMap::new(), None).is_none());
    }
}
