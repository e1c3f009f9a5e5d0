//! Load generators run inside a pod: wrk (HTTP/1.1 keep-alive, closed loop), h2load
//! (HTTP/2 and gRPC-shaped POSTs, closed loop; or a fixed request rate, open loop, with
//! per-request latencies from its log).

use std::time::Duration;

use anyhow::{Context as _, bail};
use graylane_tests::Pod;

/// What a load run measured (latencies in milliseconds).
#[derive(Clone, Debug, Default)]
pub struct LoadResult {
    pub requests: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub errors: u64,
}

/// How to load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Load {
    /// wrk, HTTP/1.1 keep-alive, `connections` at once.
    Http1 { connections: u32 },
    /// wrk, HTTP/1.1 with `Connection: close`: a new connection per request.
    Http1Close { connections: u32 },
    /// h2load, HTTP/2 prior knowledge, `clients` × `streams` at once.
    Http2 { clients: u32, streams: u32 },
    /// h2load, gRPC-shaped unary POSTs over HTTP/2.
    Grpc { clients: u32, streams: u32 },
    /// h2load, HTTP/1.1 at a fixed total rate (open loop), 10 clients.
    Rate { per_second: u32 },
    /// redis-benchmark, `SET` then `GET` (3-byte values), `clients` connections; the URL is
    /// `host:port`.
    Redis { clients: u32 },
    /// sysbench `oltp_read_write` (schema `sbtest`, prepared beforehand), `threads` at once,
    /// with server-side prepared statements or (`text`) as text; the URL is `host:port`.
    Sysbench { threads: u32, text: bool },
}

pub fn run(
    pod: &Pod,
    url: &str,
    load: Load,
    duration: Duration,
    scratch: &std::path::Path,
) -> anyhow::Result<LoadResult> {
    let secs = duration.as_secs().max(1);
    match load {
        Load::Http1 { connections } | Load::Http1Close { connections } => {
            let (c, d) = (format!("-c{connections}"), format!("-d{secs}s"));
            let mut args = vec!["-t2", &c, &d, "--latency"];
            if matches!(load, Load::Http1Close { .. }) {
                args.extend(["-H", "Connection: close"]);
            }
            args.push(url);
            let (ok, out, err) = pod.run("wrk", &args)?;
            if !ok {
                bail!("wrk {url}: {err}");
            }
            parse_wrk(&out).with_context(|| format!("wrk output for {url}:\n{out}"))
        }
        Load::Http2 { clients, streams } => {
            h2load(pod, url, &[&format!("-c{clients}"), &format!("-m{streams}")], secs, scratch)
        }
        Load::Grpc { clients, streams } => {
            let body = scratch.join("grpc-body");
            // One empty protobuf message: flag 0, length 0.
            std::fs::write(&body, [0u8; 5])?;
            let data = body.display().to_string();
            h2load(
                pod,
                url,
                &[
                    &format!("-c{clients}"),
                    &format!("-m{streams}"),
                    "-d",
                    &data,
                    "-H",
                    "content-type: application/grpc",
                    "-H",
                    "te: trailers",
                ],
                secs,
                scratch,
            )
        }
        Load::Rate { per_second } => open_loop(pod, url, per_second, secs, scratch),
        Load::Redis { clients } => redis_benchmark(pod, url, clients, secs),
        Load::Sysbench { threads, text } => sysbench(pod, url, threads, text, secs),
    }
}

/// sysbench oltp_read_write for `secs`: transactions are the requests; p50 is the mean
/// latency (sysbench reports one percentile: the 99th here), errors the errors it ignored
/// (deadlocks between its own threads).
fn sysbench(pod: &Pod, addr: &str, threads: u32, text: bool, secs: u64) -> anyhow::Result<LoadResult> {
    let (host, port) = addr.rsplit_once(':').context("host:port")?;
    let args = [
        "oltp_read_write".to_owned(),
        "--db-driver=mysql".to_owned(),
        format!("--mysql-host={host}"),
        format!("--mysql-port={port}"),
        "--mysql-user=app".to_owned(),
        "--mysql-password=secret".to_owned(),
        "--mysql-db=sbtest".to_owned(),
        "--tables=2".to_owned(),
        "--table-size=10000".to_owned(),
        format!("--threads={threads}"),
        format!("--time={secs}"),
        "--percentile=99".to_owned(),
        format!("--db-ps-mode={}", if text { "disable" } else { "auto" }),
        "run".to_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out, err) = pod.run("sysbench", &args)?;
    if !ok {
        bail!("sysbench {addr}: {out}{err}");
    }
    let field = |label: &str| -> Option<(f64, f64)> {
        let line = out.lines().find(|l| l.trim_start().starts_with(label))?;
        let rest = line.split_once(':')?.1;
        let first: f64 = rest.split_whitespace().next()?.parse().ok()?;
        let per_sec =
            rest.split('(').nth(1).and_then(|r| r.split_whitespace().next()?.parse().ok()).unwrap_or(0.0);
        Some((first, per_sec))
    };
    let (transactions, tps) = field("transactions:").context("sysbench: no transactions line")?;
    let (errors, _) = field("ignored errors:").unwrap_or((0.0, 0.0));
    let (avg, _) = field("avg:").context("sysbench: no latency")?;
    let (p99, _) = field("99th percentile:").context("sysbench: no 99th percentile")?;
    Ok(LoadResult {
        requests: transactions as u64,
        rps: tps,
        p50_ms: avg,
        p99_ms: p99,
        errors: errors as u64,
    })
}

/// redis-benchmark runs a request count, not a time: about 12,000 requests per second
/// asked, per test (`SET`, `GET`). Requests per second are the two tests' together (all
/// requests over both tests' time); p50/p99 the mean of the two tests'.
fn redis_benchmark(pod: &Pod, addr: &str, clients: u32, secs: u64) -> anyhow::Result<LoadResult> {
    let (host, port) = addr.rsplit_once(':').context("host:port")?;
    let n = (12_000 * secs).to_string();
    let c = clients.to_string();
    let (ok, out, err) =
        pod.run("redis-benchmark", &["-h", host, "-p", port, "-c", &c, "-n", &n, "-t", "set,get", "--csv"])?;
    if !ok {
        bail!("redis-benchmark {addr}: {err}");
    }
    let mut rows = Vec::new();
    for line in out.lines().filter(|l| l.starts_with("\"SET\"") || l.starts_with("\"GET\"")) {
        let f: Vec<f64> = line.split(',').skip(1).filter_map(|v| v.trim_matches('"').parse().ok()).collect();
        if f.len() >= 6 {
            rows.push((f[0], f[3], f[5]));
        }
    }
    if rows.len() != 2 {
        bail!("redis-benchmark {addr}: no SET and GET results in:\n{out}{err}");
    }
    let per_test: f64 = n.parse().unwrap_or(0.0);
    let seconds: f64 = rows.iter().map(|(rps, _, _)| per_test / rps.max(1.0)).sum();
    Ok(LoadResult {
        requests: (per_test * 2.0) as u64,
        rps: per_test * 2.0 / seconds.max(1e-9),
        p50_ms: rows.iter().map(|r| r.1).sum::<f64>() / 2.0,
        p99_ms: rows.iter().map(|r| r.2).sum::<f64>() / 2.0,
        errors: 0,
    })
}

/// Clients at a fixed rate in all, with their ticks spread over the period. One h2load
/// with `-c10 --rps=R/10` ticks all ten clients together: "1,000 per second" arrives as a
/// burst of ten every 10 ms, and latency then measures queueing behind the burst. Here each
/// client is its own h2load process, started a tenth of a period after the previous one
/// (and with the jitter of a process start), so requests arrive spread out.
fn open_loop(
    pod: &Pod,
    url: &str,
    per_second: u32,
    secs: u64,
    scratch: &std::path::Path,
) -> anyhow::Result<LoadResult> {
    const CLIENTS: u32 = 10;
    let rps = (per_second / CLIENTS).max(1);
    let step = 1.0 / f64::from(rps) / f64::from(CLIENTS);
    let mut script = String::new();
    let mut logs = Vec::new();
    for i in 0..CLIENTS {
        let log = scratch.join(format!("h2load-{i}.log"));
        let _ = std::fs::remove_file(&log);
        script += &format!(
            "(sleep {:.6}; exec h2load -D{secs} --log-file={} --h1 -c1 --rps={rps} {url} >/dev/null 2>&1) &\n",
            step * f64::from(i),
            log.display()
        );
        logs.push(log);
    }
    script += "wait\n";
    let (ok, out, err) = pod.run("sh", &["-c", &script])?;
    if !ok {
        bail!("h2load {url}: {err}\n{out}");
    }
    let mut text = String::new();
    for log in &logs {
        text += &std::fs::read_to_string(log).with_context(|| format!("h2load log {}", log.display()))?;
    }
    summarize_log(&text, url, secs, &out)
}

/// h2load for `secs` seconds; latencies from its per-request log.
fn h2load(
    pod: &Pod,
    url: &str,
    args: &[&str],
    secs: u64,
    scratch: &std::path::Path,
) -> anyhow::Result<LoadResult> {
    let log = scratch.join("h2load.log");
    let _ = std::fs::remove_file(&log);
    let log_arg = format!("--log-file={}", log.display());
    let duration = format!("-D{secs}");
    let mut all: Vec<&str> = vec![&duration, &log_arg];
    all.extend_from_slice(args);
    all.push(url);
    let (ok, out, err) = pod.run("h2load", &all)?;
    if !ok {
        bail!("h2load {url}: {err}\n{out}");
    }
    let text = std::fs::read_to_string(&log).with_context(|| format!("h2load log {}", log.display()))?;
    summarize_log(&text, url, secs, &out)
}

/// Requests, rate, p50/p99 and errors from h2load's per-request log lines.
fn summarize_log(text: &str, url: &str, secs: u64, out: &str) -> anyhow::Result<LoadResult> {
    let mut latencies: Vec<f64> = Vec::new();
    let mut errors = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let (Some(status), Some(us)) = (f.get(1), f.get(2)) else { continue };
        if !status.starts_with('2') {
            errors += 1;
        }
        if let Ok(us) = us.parse::<f64>() {
            latencies.push(us / 1000.0);
        }
    }
    if latencies.is_empty() {
        bail!("h2load {url}: no requests completed\n{out}");
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok(LoadResult {
        requests: latencies.len() as u64,
        rps: latencies.len() as f64 / secs as f64,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        errors,
    })
}

fn parse_wrk(out: &str) -> anyhow::Result<LoadResult> {
    let mut r = LoadResult::default();
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
        let r = parse_wrk(out).expect("parse");
        assert_eq!((r.requests, r.errors), (120_000, 3));
        assert!((r.p50_ms - 0.21).abs() < 1e-9 && (r.p99_ms - 3.5).abs() < 1e-9);
        assert!((r.rps - 23999.12).abs() < 1e-6);
    }
}
