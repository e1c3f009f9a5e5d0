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
    /// wrk, HTTP/1.1 keep-alive, `connections` at once over `threads` client threads.
    Http1 { connections: u32, threads: u32 },
    /// wrk, HTTP/1.1 with `Connection: close`: a new connection per request.
    Http1Close { connections: u32 },
    /// h2load, HTTP/2 prior knowledge, `clients` × `streams` at once.
    Http2 { clients: u32, streams: u32 },
    /// h2load, gRPC-shaped unary POSTs over HTTP/2.
    Grpc { clients: u32, streams: u32 },
    /// h2load, HTTP/1.1 at a fixed total rate (open loop), 10 clients.
    Rate { per_second: u32 },
    /// redis-benchmark, `SET` then `GET` (3-byte values), `clients` connections, `pipeline`
    /// requests in flight on each (`-P`); the URL is `host:port`.
    Redis { clients: u32, pipeline: u32 },
    /// sysbench `oltp_read_write` (schema `sbtest`, prepared beforehand), `threads` at once,
    /// with server-side prepared statements or (`text`) as text; the URL is `host:port`.
    Sysbench { threads: u32, text: bool },
}

/// `store` is the pod of the data store a Redis load reaches (its server's own counts).
pub fn run(
    pod: &Pod,
    store: Option<&Pod>,
    url: &str,
    load: Load,
    duration: Duration,
    scratch: &std::path::Path,
) -> anyhow::Result<LoadResult> {
    let secs = duration.as_secs().max(1);
    match load {
        Load::Http1 { connections, .. } | Load::Http1Close { connections } => {
            let threads = match load {
                Load::Http1 { threads, .. } => threads,
                _ => 2,
            };
            let (t, c, d) = (format!("-t{threads}"), format!("-c{connections}"), format!("-d{secs}s"));
            let mut args = vec![t.as_str(), &c, &d, "--latency"];
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
        Load::Redis { clients, pipeline } => {
            let store = store.context("a Redis load without its store")?;
            redis_benchmark(pod, store, url, clients, pipeline, secs)
        }
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
/// requests over both tests' time); p50/p99 those of all requests of both tests, read from
/// the two tests' latency histograms (see [`merged_percentile`]). redis-benchmark (7.0)
/// exits at the first error reply, which fails the case. A reply that is not an error can
/// still be wrong, so errors are what the server did not execute successfully: the
/// requests sent less the `SET` and `GET` calls that `store`'s server counted as succeeded
/// meanwhile (`INFO commandstats`): a request answered without reaching the store, or
/// reaching another instance, counts.
fn redis_benchmark(
    pod: &Pod,
    store: &Pod,
    addr: &str,
    clients: u32,
    pipeline: u32,
    secs: u64,
) -> anyhow::Result<LoadResult> {
    let (host, port) = addr.rsplit_once(':').context("host:port")?;
    // Pipelined requests go several times faster: more of them fill the same time.
    let n = 12_000 * secs * if pipeline > 1 { 6 } else { 1 };
    let (count, c, p) = (n.to_string(), clients.to_string(), pipeline.max(1).to_string());
    let served_before = redis_served(store)?;
    let (ok, out, err) = pod.run(
        "redis-benchmark",
        &["-h", host, "-p", port, "-c", &c, "-P", &p, "-n", &count, "-t", "set,get"],
    )?;
    if !ok {
        bail!("redis-benchmark {addr}: {err}");
    }
    let served = redis_served(store)?.saturating_sub(served_before);
    let tests =
        parse_redis_benchmark(&out).with_context(|| format!("redis-benchmark {addr}:\n{out}{err}"))?;
    if tests.len() != 2 || tests.iter().any(|t| t.requests != n) {
        bail!("redis-benchmark {addr}: not one SET and one GET test of {n} requests in:\n{out}{err}");
    }
    let seconds: f64 = tests.iter().map(|t| t.requests as f64 / t.rps.max(1.0)).sum();
    let requests = 2 * n;
    Ok(LoadResult {
        requests,
        rps: requests as f64 / seconds.max(1e-9),
        p50_ms: merged_percentile(&tests, 0.50),
        p99_ms: merged_percentile(&tests, 0.99),
        errors: requests.saturating_sub(served),
    })
}

/// `SET` and `GET` calls a Redis server executed without an error, so far.
pub fn redis_served(store: &Pod) -> anyhow::Result<u64> {
    let (ok, out, err) = store.run("redis-cli", &["INFO", "commandstats"])?;
    if !ok {
        bail!("redis-cli INFO commandstats: {err}");
    }
    let mut served = 0;
    for command in ["set", "get"] {
        let Some(line) = out.lines().find(|l| l.starts_with(&format!("cmdstat_{command}:"))) else {
            continue; // not called yet
        };
        let field = |name: &str| -> anyhow::Result<u64> {
            line.split([':', ','])
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .with_context(|| format!("no {name} in {line:?}"))?
                .trim()
                .parse()
                .with_context(|| format!("{name} in {line:?}"))
        };
        served += field("calls")?.saturating_sub(field("failed_calls")?);
    }
    Ok(served)
}

/// One redis-benchmark test: its request count, rate and latency histogram as printed
/// ("Latency by percentile distribution": `(milliseconds, cumulative count)` points).
#[derive(Debug)]
struct RedisTest {
    requests: u64,
    rps: f64,
    points: Vec<(f64, u64)>,
}

fn parse_redis_benchmark(out: &str) -> anyhow::Result<Vec<RedisTest>> {
    let mut tests: Vec<RedisTest> = Vec::new();
    let mut in_histogram = false;
    for line in out.lines() {
        let line = line.trim();
        if line.contains("======") {
            tests.push(RedisTest { requests: 0, rps: 0.0, points: Vec::new() });
            in_histogram = false;
            continue;
        }
        let Some(test) = tests.last_mut() else { continue };
        if let Some(rest) = line.split_once(" requests completed in ") {
            test.requests = rest.0.trim().parse().with_context(|| format!("request count in {line:?}"))?;
        } else if let Some(rest) = line.strip_prefix("throughput summary: ") {
            let rps = rest.split_whitespace().next().unwrap_or_default();
            test.rps = rps.parse().with_context(|| format!("throughput in {line:?}"))?;
        } else if line.starts_with("Latency by percentile distribution") {
            in_histogram = true;
        } else if line.is_empty() || !line.contains("cumulative count") {
            in_histogram = false;
        } else if in_histogram {
            // 50.000% <= 0.039 milliseconds (cumulative count 1046)
            let point = || -> Option<(f64, u64)> {
                let ms = line.split_once("<= ")?.1.split_whitespace().next()?.parse().ok()?;
                let count = line.split_once("cumulative count ")?.1.trim_end_matches(')').parse().ok()?;
                Some((ms, count))
            };
            test.points.push(point().with_context(|| format!("histogram line {line:?}"))?);
        }
    }
    for t in &tests {
        if t.points.last().map(|p| p.1) != Some(t.requests) || t.rps <= 0.0 {
            bail!("a test without its throughput or a histogram ending at its {} requests", t.requests);
        }
    }
    Ok(tests)
}

/// The `q` quantile of all tests' requests together: the smallest printed latency at which
/// the tests' cumulative counts add up to `q` of all requests. A test's count at a latency
/// between its printed points is taken at its point below, so the result is exact at a
/// printed point and otherwise at most the next printed latency above the true one.
fn merged_percentile(tests: &[RedisTest], q: f64) -> f64 {
    let total: u64 = tests.iter().map(|t| t.requests).sum();
    let wanted = (q * total as f64).ceil() as u64;
    let mut values: Vec<f64> = tests.iter().flat_map(|t| t.points.iter().map(|p| p.0)).collect();
    values.sort_by(f64::total_cmp);
    let below = |t: &RedisTest, v: f64| t.points.iter().take_while(|p| p.0 <= v).last().map_or(0, |p| p.1);
    values.into_iter().find(|&v| tests.iter().map(|t| below(t, v)).sum::<u64>() >= wanted).unwrap_or(0.0)
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

    #[test]
    fn reads_redis_benchmarks_tests_and_merges_their_histograms() {
        let tests = parse_redis_benchmark(include_str!("testdata/redis-benchmark.txt")).expect("parse");
        assert_eq!(tests.len(), 2);
        assert!(tests.iter().all(|t| t.requests == 2000 && t.rps > 50_000.0 && t.points.len() > 5));
        let (p50, p99) = (merged_percentile(&tests, 0.5), merged_percentile(&tests, 0.99));
        assert!(p50 > 0.0 && p50 < p99, "{p50} {p99}");

        // Half the requests at 1 ms (one test), half at 3 ms (the other): a mean of the
        // tests' percentiles would say 2 ms for both.
        let at = |ms: f64| RedisTest { requests: 100, rps: 1.0, points: vec![(ms, 100)] };
        let tests = [at(1.0), at(3.0)];
        assert_eq!((merged_percentile(&tests, 0.5), merged_percentile(&tests, 0.99)), (1.0, 3.0));
    }

    #[test]
    fn a_redis_benchmark_output_without_histogram_is_an_error() {
        let out = "====== SET ======\n  100 requests completed in 0.01 seconds\n  throughput summary: 10000.00 requests per second\n";
        assert!(parse_redis_benchmark(out).is_err());
    }
}
