//! The bench report: medians per case, and the ratios the targets are about.

use std::fmt::Write as _;

use super::{BenchArgs, Sample};

/// The median; of an even count, the mean of the middle two.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Medians of one case's samples.
#[derive(Default)]
pub struct Summary {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    /// Proxy CPU microseconds per request, and its user part.
    pub cpu_us: f64,
    pub user_us: f64,
    /// Node CPU microseconds per request.
    pub node_us: f64,
    pub rss_mib: f64,
    /// Errors per round, median like the rest; `worst_errors` the most in one round.
    pub errors: f64,
    pub worst_errors: u64,
    /// Upstream connections opened per 1,000 requests (graylane).
    pub opened_per_1k: f64,
}

pub fn summarize(samples: &[Sample], case: &str) -> Option<Summary> {
    let mine: Vec<&Sample> = samples.iter().filter(|s| s.case == case).collect();
    if mine.is_empty() {
        return None;
    }
    let per = |f: &dyn Fn(&Sample) -> f64| -> Vec<f64> {
        mine.iter().filter(|s| s.load.requests > 0).map(|s| f(s) * 1e6 / s.load.requests as f64).collect()
    };
    Some(Summary {
        rps: median(mine.iter().map(|s| s.load.rps).collect()),
        p50: median(mine.iter().map(|s| s.load.p50_ms).collect()),
        p99: median(mine.iter().map(|s| s.load.p99_ms).collect()),
        cpu_us: median(per(&|s| s.cpu_s)),
        user_us: median(per(&|s| s.user_s)),
        node_us: median(per(&|s| s.node_s)),
        rss_mib: mine.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
        errors: median(mine.iter().map(|s| s.load.errors as f64).collect()),
        worst_errors: mine.iter().map(|s| s.load.errors).max().unwrap_or(0),
        opened_per_1k: median(per(&|s| s.opened)) / 1e3,
    })
}

/// `ours / theirs` of added latency, unless the peer added none (noise on a shared
/// machine), where a ratio means nothing.
fn added_ratio(ours: f64, theirs: f64) -> String {
    if theirs <= 0.0 {
        format!("n/a ({ours:+.3} ms vs {theirs:+.3} ms: the peer's is within noise of direct)")
    } else {
        format!("{:.2}x ({ours:+.3} ms vs {theirs:+.3} ms)", ours / theirs)
    }
}

/// The whole report: the table, then the ratios between cases.
pub fn render(samples: &[Sample], args: &BenchArgs) -> String {
    let mut out = table(samples, args);
    ratios(&mut out, samples);
    out
}

/// Each case's medians (and the cases with errors in some round).
pub fn table(samples: &[Sample], args: &BenchArgs) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ngraylane bench: 1 KiB nginx backend, {} rounds x {:?}, medians (wrk {} connections; h2load 16 clients x 8 streams)\n",
        args.rounds, args.duration, args.connections
    );
    let _ = writeln!(
        out,
        "{:<22} {:>9} {:>8} {:>8} {:>13} {:>7} {:>13} {:>8} {:>7}",
        "case", "req/s", "p50 ms", "p99 ms", "proxy us/req", "(user)", "node us/req", "RSS MiB", "errors"
    );
    let mut names: Vec<&str> = Vec::new();
    for s in samples {
        if !names.contains(&s.case) {
            names.push(s.case);
        }
    }
    let mut erring = Vec::new();
    for name in &names {
        let Some(m) = summarize(samples, name) else { continue };
        let _ = writeln!(
            out,
            "{name:<22} {:>9.0} {:>8.3} {:>8.3} {:>13.1} {:>7.1} {:>13.1} {:>8.1} {:>7}",
            m.rps, m.p50, m.p99, m.cpu_us, m.user_us, m.node_us, m.rss_mib, m.errors
        );
        if m.worst_errors > 0 {
            erring.push(format!("{name} ({} in one round)", m.worst_errors));
        }
    }
    if !erring.is_empty() {
        let _ = writeln!(out, "errors in some round: {}", erring.join(", "));
    }
    out
}

fn ratios(out: &mut String, samples: &[Sample]) {
    let get = |n: &str| summarize(samples, n).unwrap_or_default();
    let (direct, gl, nginx, ipt, policy) =
        (get("direct"), get("graylane"), get("nginx"), get("iptables"), get("policy"));
    let per_cpu = |m: &Summary| if m.cpu_us > 0.0 { 1e6 / m.cpu_us } else { 0.0 };
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let _ = writeln!(out, "\nratios:");
    let _ = writeln!(
        out,
        "  graylane/nginx  requests per proxy CPU-second (HTTP/1.1)   {:.2}x   (goal >= 1.0)",
        ratio(per_cpu(&gl), per_cpu(&nginx))
    );
    let (h2, h2n) = (get("h2 graylane"), get("h2 nginx"));
    let (g, gn) = (get("grpc graylane"), get("grpc nginx"));
    let _ = writeln!(
        out,
        "  graylane/nginx  requests per proxy CPU-second (HTTP/2)     {:.2}x   (goal >= 1.0)",
        ratio(per_cpu(&h2), per_cpu(&h2n))
    );
    let _ = writeln!(
        out,
        "  graylane/nginx  requests per proxy CPU-second (gRPC)       {:.2}x   (goal >= 1.0)",
        ratio(per_cpu(&g), per_cpu(&gn))
    );
    let _ = writeln!(
        out,
        "  graylane/nginx  node CPU per request, over direct's       {:.2}x ({:.1} vs {:.1} us)   (goal <= 0.8)",
        ratio(gl.node_us - direct.node_us, nginx.node_us - direct.node_us),
        gl.node_us - direct.node_us,
        nginx.node_us - direct.node_us
    );
    for rate in ["1k/s", "5k/s"] {
        let (d, o, n) =
            (get(&format!("{rate} direct")), get(&format!("{rate} graylane")), get(&format!("{rate} nginx")));
        let _ = writeln!(
            out,
            "  graylane/nginx  added p50 / p99 at {rate}               {} / {}   (goal <= 1.0)",
            added_ratio(o.p50 - d.p50, n.p50 - d.p50),
            added_ratio(o.p99 - d.p99, n.p99 - d.p99)
        );
    }
    for (shape, what) in [("1t32c", "1 wrk thread, 32 conns"), ("128c", "128 connections      ")] {
        let (d, o, n) = (
            get(&format!("{shape} direct")),
            get(&format!("{shape} graylane")),
            get(&format!("{shape} nginx")),
        );
        let _ = writeln!(
            out,
            "  graylane/nginx  requests per proxy CPU-second ({what})   {:.2}x   (goal >= 1.0)",
            ratio(per_cpu(&o), per_cpu(&n))
        );
        let _ = writeln!(
            out,
            "  graylane/nginx  added p50 / p99 ({what})               {} / {}   (goal <= 1.0)",
            added_ratio(o.p50 - d.p50, n.p50 - d.p50),
            added_ratio(o.p99 - d.p99, n.p99 - d.p99)
        );
    }
    let _ = writeln!(
        out,
        "  graylane/nginx  requests/sec (HTTP/1.1)                   {:.2}x",
        ratio(gl.rps, nginx.rps)
    );
    let _ = writeln!(
        out,
        "  graylane/direct requests/sec (HTTP/1.1)                   {:.2}x",
        ratio(gl.rps, direct.rps)
    );
    let _ = writeln!(
        out,
        "  eBPF/iptables   capture, same proxy, req/s                {:.2}x",
        ratio(gl.rps, ipt.rps)
    );
    let _ = writeln!(
        out,
        "  policy/plain    rate limit + breaker + retry              {:+.1} % proxy CPU per request   (goal <= 10 %)",
        (ratio(policy.cpu_us, gl.cpu_us) - 1.0) * 100.0
    );
    let (base, lane, no_memory) =
        (get("continuity: base"), get("continuity: gray"), get("continuity: no memory"));
    let _ = writeln!(
        out,
        "  lane/base       lane traffic (bridge + trace memory)      {:+.1} us proxy CPU per request ({:.1} vs {:.1}, {:+.1} %; goal <= 5 %); trace memory alone {:+.1} us",
        lane.cpu_us - base.cpu_us,
        lane.cpu_us,
        base.cpu_us,
        (ratio(lane.cpu_us, base.cpu_us) - 1.0) * 100.0,
        lane.cpu_us - no_memory.cpu_us
    );
    for (what, pod, node) in [
        ("keep-alive             ", gl, get("source: node")),
        ("a new connection per request", get("close: pod"), get("close: node")),
    ] {
        let _ = writeln!(
            out,
            "  pod/node source the caller's address, {what} {:+.1} us proxy CPU per request ({:.1} vs {:.1}); upstream connections opened per 1,000 requests {:.2} vs {:.2}",
            pod.cpu_us - node.cpu_us,
            pod.cpu_us,
            node.cpu_us,
            pod.opened_per_1k,
            node.opened_per_1k
        );
    }
    let (rd, rp, rr) = (get("redis direct"), get("redis passthrough"), get("redis rewrite"));
    let _ = writeln!(
        out,
        "  rewrite/pass    Redis SET+GET, data lane vs opaque TCP    {:+.1} % proxy CPU per request ({:.1} vs {:.1} us)   (goal < 15 %); req/s {:.2}x; p50 {:.3} vs {:.3} ms",
        (ratio(rr.cpu_us, rp.cpu_us) - 1.0) * 100.0,
        rr.cpu_us,
        rp.cpu_us,
        ratio(rr.rps, rp.rps),
        rr.p50,
        rp.p50
    );
    let _ = writeln!(
        out,
        "  rewrite/direct  Redis SET+GET req/s                       {:.2}x; passthrough/direct {:.2}x",
        ratio(rr.rps, rd.rps),
        ratio(rp.rps, rd.rps)
    );
    // Kernel lanes: opaque TCP routed at connect() against direct (goals: >= 0.95x the
    // rate, <= 1.05x the node's CPU per request) and the proxy path.
    for (name, what) in
        [("redis", "Redis -P1 req/s"), ("redis -P16", "Redis -P16 req/s"), ("sysbench", "sysbench tps")]
    {
        let (d, p, k) = (
            get(&format!("{name} direct")),
            get(&format!("{name} passthrough")),
            get(&format!("{name} kernel")),
        );
        let _ = writeln!(
            out,
            "  kernel/direct   {what:<18} kernel {:.2}x direct (goal >= 0.95x; {:.0} vs {:.0}), proxy path {:.2}x; node CPU per request kernel/direct {:.2}x (goal <= 1.05x; {:.1} vs {:.1} us), proxy path {:.2}x",
            ratio(k.rps, d.rps),
            k.rps,
            d.rps,
            ratio(p.rps, d.rps),
            ratio(k.node_us, d.node_us),
            k.node_us,
            d.node_us,
            ratio(p.node_us, d.node_us)
        );
    }
    for (text, what) in [("", "prepared statements"), (" text", "as text")] {
        let (d, p, l) = (
            get(&format!("sysbench{text} direct")),
            get(&format!("sysbench{text} passthrough")),
            get(&format!("sysbench{text} lane")),
        );
        let _ = writeln!(
            out,
            "  lane/pass       sysbench oltp_read_write, {what}: tps {:.2}x (goal >= 0.9x; {:.0} vs {:.0}); proxy CPU per transaction {:.0} vs {:.0} us; lane/direct {:.2}x, passthrough/direct {:.2}x",
            ratio(l.rps, p.rps),
            l.rps,
            p.rps,
            l.cpu_us,
            p.cpu_us,
            ratio(l.rps, d.rps),
            ratio(p.rps, d.rps)
        );
    }
    let plain = get("ledger: plain");
    let _ = writeln!(out, "\ncost ledger (proxy CPU per request over recording nothing, HTTP/1.1):");
    let mut previous = plain.cpu_us;
    for name in [
        "ledger: +metrics",
        "ledger: +flows",
        "ledger: +spans 1%",
        "ledger: +spans 100%",
        "ledger: +access log",
    ] {
        let m = get(name);
        let step = if name.ends_with("100%") || name.ends_with("log") {
            get("ledger: +spans 1%").cpu_us
        } else {
            previous
        };
        let _ = writeln!(
            out,
            "  {:<20} {:>6.1} us/req  ({:+.1} us over the line before it; {:+.1} us over plain {:.1})",
            name.trim_start_matches("ledger: "),
            m.cpu_us,
            m.cpu_us - step,
            m.cpu_us - plain.cpu_us,
            plain.cpu_us
        );
        if !name.ends_with("100%") && !name.ends_with("log") {
            previous = m.cpu_us;
        }
    }
}

/// This tree against `--baseline`: median proxy CPU per request and throughput per case,
/// and their ratios (> 1: this tree costs more).
pub fn ab(samples: &[Sample]) -> String {
    let mut out =
        String::from("bench: A/B (median of rounds)   this tree            baseline             ratio\n");
    let mut names: Vec<&str> = Vec::new();
    for s in samples.iter().filter(|s| !s.case.ends_with(" [baseline]")) {
        if !names.contains(&s.case) {
            names.push(s.case);
        }
    }
    for name in names {
        let (Some(a), Some(b)) =
            (summarize(samples, name), summarize(samples, &format!("{name} [baseline]")))
        else {
            continue;
        };
        let _ = writeln!(
            out,
            "bench: A/B {name:<22} {:>6.1} us/req {:>8.0} req/s  {:>6.1} us/req {:>8.0} req/s  CPU/req x{:.3}",
            a.cpu_us,
            a.rps,
            b.cpu_us,
            b.rps,
            if b.cpu_us > 0.0 { a.cpu_us / b.cpu_us } else { 0.0 },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
