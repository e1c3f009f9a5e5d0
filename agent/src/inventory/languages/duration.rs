//! Durations as the other languages write them: Go/protobuf style `1.5s`, `500ms`, `1h30m`,
//! `2m`, `10us` (Istio, Gateway API, OpenSergo).

use std::time::Duration;

use crate::inventory::resilience::Period;

/// Parses a duration; zero is an error (a zero timeout or window means nothing here).
pub fn period(text: &str) -> Result<Period, String> {
    let bad = || format!("{text:?} is not a duration (e.g. 1.5s, 500ms, 1h30m)");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let seconds = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(bad()),
        };
        total += value * seconds;
        rest = tail;
    }
    let d = Duration::try_from_secs_f64(total).map_err(|_| bad())?;
    if d.is_zero() {
        return Err(format!("{text:?}: must be more than zero"));
    }
    Ok(Period(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_go_and_protobuf_durations() {
        assert_eq!(period("1.5s").map(|p| p.0), Ok(Duration::from_millis(1500)));
        assert_eq!(period("500ms").map(|p| p.0), Ok(Duration::from_millis(500)));
        assert_eq!(period("1h30m").map(|p| p.0), Ok(Duration::from_secs(5400)));
        assert!(period("0s").is_err());
        assert!(period("10").is_err());
        assert!(period("1d").is_err());
        assert!(period("").is_err());
    }
}
