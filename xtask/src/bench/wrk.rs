//! Runs wrk inside a pod and reads its report.

use std::time::Duration;

use anyhow::{Context as _, bail};
use graylane_tests::Pod;

pub struct WrkResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

pub fn run(pod: &Pod, url: &str, connections: u32, duration: Duration) -> anyhow::Result<WrkResult> {
    let (ok, out, err) = pod.run(
        "wrk",
        &["-t2", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs().max(1)), "--latency", url],
    )?;
    if !ok {
        bail!("wrk {url}: {err}");
    }
    parse(&out).with_context(|| format!("wrk output for {url}:\n{out}"))
}

fn parse(out: &str) -> anyhow::Result<WrkResult> {
    let mut r = WrkResult { requests: 0, rps: 0.0, p50_ms: 0.0, p99_ms: 0.0, errors: 0 };
    for line in out.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", v] => r.rps = v.parse()?,
            ["50%", v] => r.p50_ms = millis(v)?,
            ["99%", v] => r.p99_ms = millis(v)?,
            [n, "requests", "in", ..] => r.requests = n.parse()?,
            ["Non-2xx", "or", "3xx", "responses:", n] => r.errors += n.parse::<u64>()?,
            ["Socket", "errors:", rest @ ..] => {
                r.errors +=
                    rest.iter().filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok()).sum::<u64>();
            }
            _ => {}
        }
    }
    if r.requests == 0 {
        bail!("no requests completed");
    }
    Ok(r)
}

fn millis(v: &str) -> anyhow::Result<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        bail!("latency {v:?} has no unit")
    };
    Ok(num.parse::<f64>()? * scale)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_wrk_report() {
        let out = "Running 5s test @ http://x/\n  2 threads and 32 connections\n  Latency Distribution\n     50%  210.00us\n     75%  300.00us\n     90%    1.20ms\n     99%    3.50ms\n  120000 requests in 5.00s, 150.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\nRequests/sec:  23999.12\n";
        let r = parse(out).expect("parse");
        assert_eq!((r.requests, r.errors), (120_000, 3));
        assert!((r.p50_ms - 0.21).abs() < 1e-9 && (r.p99_ms - 3.5).abs() < 1e-9);
        assert!((r.rps - 23999.12).abs() < 1e-6);
    }
}
