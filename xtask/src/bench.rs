//! `cargo xtask bench`: graylane against its peers in one sandbox, one run, interleaved,
//! each variant several times, reported as medians and ratios. Not a test: numbers only.
//!
//! Variants (same client pod position, same 1 KiB nginx backend):
//! - `direct`: no capture, straight to the backend pod.
//! - `graylane`: eBPF capture + L7 routing + tag inference, to a service VIP.
//! - `nginx`: nginx as a plain reverse proxy in the node netns (the proxy's position).
//! - `iptables`: iptables DNAT into the same graylane proxy (conntrack original destination).

mod peers;
mod procstat;
mod wrk;

use std::{net::Ipv4Addr, path::PathBuf, time::Duration};

use anyhow::{Context as _, bail};
use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};

use crate::cmd::{build_agent, root};
use procstat::ProcStat;
use wrk::WrkResult;

const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const IPT_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 99);
const NGINX_PROXY: &str = "10.200.0.1:8081";

pub struct BenchArgs {
    /// Run only this variant (for profiling it from outside).
    pub only: Option<String>,
    pub rounds: usize,
    pub duration: Duration,
    pub connections: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Direct,
    Graylane,
    /// graylane with a rate limit (never reached), a circuit breaker and retries.
    Policy,
    Nginx,
    Iptables,
}

const VARIANTS: [Variant; 5] =
    [Variant::Direct, Variant::Graylane, Variant::Policy, Variant::Nginx, Variant::Iptables];
const POLICY_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 11);
const POLICY: &str = "apiVersion: graylane.io/v1alpha1
kind: TrafficPolicy
metadata: {name: web-policy}
spec:
  service: web-policy
  rateLimit: {requests: 10000000, interval: 1s, key: sourcePod}
  circuitBreaker: {consecutiveFailures: 5}
  retry: {attempts: 2}";

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::Direct => "direct",
            Variant::Graylane => "graylane",
            Variant::Policy => "policy",
            Variant::Nginx => "nginx",
            Variant::Iptables => "iptables",
        }
    }
}

/// One measured run.
struct Sample {
    wrk: WrkResult,
    /// Proxy CPU seconds spent during the run (user + system).
    cpu_s: f64,
    user_s: f64,
    rss_kib: u64,
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let bin = build_agent(true)?;
    let Some(p) = privileged("bench") else { bail!("the benchmark needs root: sudo -E cargo xtask bench") };
    let mut sb = Sandbox::new(&p)?;
    sb.add_pod(PodSpec::new("client").tag("gray"))?;
    sb.add_pod(PodSpec::new("plain-client").annotate("graylane.io/redirect", "false"))?;
    let backend_conf = peers::backend(sb.scratch())?;
    let server = sb.add_pod(PodSpec::new("server").label("app", "web").tag("gray"))?;
    server.spawn("nginx", &["-c", &backend_conf.display().to_string()])?;
    server.wait_listening(8080)?;
    let server_ip = server.ip;
    sb.add_service(ServiceSpec::new("web", VIP).named_port(80, 8080, "http").select("app", "web"));
    sb.add_service(ServiceSpec::new("web-ipt", IPT_VIP).named_port(80, 8080, "http").select("app", "web"));
    sb.add_service(
        ServiceSpec::new("web-policy", POLICY_VIP).named_port(80, 8080, "http").select("app", "web"),
    );
    sb.add_document(POLICY);
    let opts = AgentOptions {
        args: vec!["--iptables-fallback".into()],
        log: Some("warn".into()),
        binary: Some(bin),
        ..Default::default()
    };
    sb.start_agent(&opts)?;
    let agent_pid = sb.agent()?.pid().context("agent pid")?;
    let proxy_conf = peers::reverse_proxy(sb.scratch(), NGINX_PROXY, server_ip, 8080)?;
    let nginx_pid = sb.spawn_node("nginx", &["-c", &proxy_conf.display().to_string()])?;
    // iptables: the plain client's route to IPT_VIP beats its blackhole; the node NATs it.
    sb.pod("plain-client").ip(&[
        "route",
        "add",
        &format!("{IPT_VIP}/32"),
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])?;
    sb.node_exec(
        "iptables",
        &[
            "-t",
            "nat",
            "-A",
            "PREROUTING",
            "-p",
            "tcp",
            "-d",
            &IPT_VIP.to_string(),
            "--dport",
            "80",
            "-j",
            "DNAT",
            "--to-destination",
            "10.200.0.1:15001",
        ],
    )?;
    std::thread::sleep(Duration::from_millis(300));

    let url = |v: Variant| match v {
        Variant::Direct => format!("http://{server_ip}:8080/index.html"),
        Variant::Graylane => format!("http://{VIP}/index.html"),
        Variant::Policy => format!("http://{POLICY_VIP}/index.html"),
        Variant::Nginx => format!("http://{NGINX_PROXY}/index.html"),
        Variant::Iptables => format!("http://{IPT_VIP}/index.html"),
    };
    let client_of = |v: Variant| {
        if matches!(v, Variant::Graylane | Variant::Policy) { "client" } else { "plain-client" }
    };
    let proxy_pid = |v: Variant| match v {
        Variant::Direct => None,
        Variant::Graylane | Variant::Policy | Variant::Iptables => Some(agent_pid),
        Variant::Nginx => Some(nginx_pid),
    };

    // Warm up each path once (pools, caches), then interleave the rounds.
    for v in VARIANTS {
        if let Err(e) = wrk::run(sb.pod(client_of(v)), &url(v), args.connections, Duration::from_secs(1)) {
            let log = sb.agent_log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            let counters =
                sb.admin().json("/datapath").map(|d| d["counters"].to_string()).unwrap_or_default();
            bail!(
                "{e}\nkernel counters: {counters}\nagent log (last lines, newest first):\n{}",
                tail.join("\n")
            );
        }
    }
    eprintln!("bench: pids: graylane agent {agent_pid}, nginx proxy {nginx_pid}");
    let chosen: Vec<Variant> =
        VARIANTS.iter().copied().filter(|v| args.only.as_deref().is_none_or(|o| o == v.name())).collect();
    let mut samples: Vec<(Variant, Sample)> = Vec::new();
    for round in 1..=args.rounds {
        for v in chosen.iter().copied() {
            let before = proxy_pid(v).map(ProcStat::read).transpose()?;
            let wrk = wrk::run(sb.pod(client_of(v)), &url(v), args.connections, args.duration)?;
            let after = proxy_pid(v).map(ProcStat::read).transpose()?;
            let (cpu_s, user_s, rss_kib) = match (before, after) {
                (Some(b), Some(a)) => (a.cpu_s - b.cpu_s, a.user_s - b.user_s, a.rss_kib),
                _ => (0.0, 0.0, 0),
            };
            let per_req_us = |s: f64| s * 1e6 / wrk.requests.max(1) as f64;
            eprintln!(
                "bench: round {round} {:<9} {:>9.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  errors {}  proxy CPU/req {:.1} us (user {:.1})",
                v.name(),
                wrk.rps,
                wrk.p50_ms,
                wrk.p99_ms,
                wrk.errors,
                per_req_us(cpu_s),
                per_req_us(user_s),
            );
            samples.push((v, Sample { wrk, cpu_s, user_s, rss_kib }));
        }
    }
    report(&samples, args)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied().unwrap_or(0.0)
}

struct Summary {
    rps: f64,
    p50: f64,
    p99: f64,
    /// Requests per proxy CPU-second.
    per_cpu_s: f64,
    cpu_ms_per_1k: f64,
    /// Proxy user-space CPU microseconds per request.
    user_us: f64,
    rss_mib: f64,
}

fn summarize(samples: &[(Variant, Sample)], v: Variant) -> Summary {
    let mine: Vec<&Sample> = samples.iter().filter(|(x, _)| *x == v).map(|(_, s)| s).collect();
    let per_cpu: Vec<f64> =
        mine.iter().filter(|s| s.cpu_s > 0.0).map(|s| s.wrk.requests as f64 / s.cpu_s).collect();
    let cpu_per_1k: Vec<f64> = mine
        .iter()
        .filter(|s| s.wrk.requests > 0 && s.cpu_s > 0.0)
        .map(|s| s.cpu_s * 1000.0 / s.wrk.requests as f64 * 1000.0)
        .collect();
    Summary {
        rps: median(mine.iter().map(|s| s.wrk.rps).collect()),
        p50: median(mine.iter().map(|s| s.wrk.p50_ms).collect()),
        p99: median(mine.iter().map(|s| s.wrk.p99_ms).collect()),
        per_cpu_s: median(per_cpu),
        cpu_ms_per_1k: median(cpu_per_1k),
        user_us: median(
            mine.iter()
                .filter(|s| s.wrk.requests > 0)
                .map(|s| s.user_s * 1e6 / s.wrk.requests as f64)
                .collect(),
        ),
        rss_mib: mine.iter().map(|s| s.rss_kib).max().unwrap_or(0) as f64 / 1024.0,
    }
}

/// `ours / theirs` of added latency, unless the peer added none (its percentile fell below
/// the direct path's: noise on a shared machine), where a ratio means nothing.
fn added_ratio(ours: f64, theirs: f64) -> String {
    if theirs <= 0.0 {
        format!("n/a ({ours:+.3} ms vs {theirs:+.3} ms: the peer's is within noise of direct)")
    } else {
        format!("{:.2}x ({ours:+.3} ms vs {theirs:+.3} ms)", ours / theirs)
    }
}

fn report(samples: &[(Variant, Sample)], args: &BenchArgs) -> anyhow::Result<()> {
    if args.only.is_some() {
        return Ok(());
    }
    let s: Vec<(Variant, Summary)> = VARIANTS.iter().map(|v| (*v, summarize(samples, *v))).collect();
    let get = |v: Variant| &s.iter().find(|(x, _)| *x == v).expect("variant").1;
    let (direct, gl, nginx, ipt) =
        (get(Variant::Direct), get(Variant::Graylane), get(Variant::Nginx), get(Variant::Iptables));
    let policy = get(Variant::Policy);
    let mut out = String::new();
    out.push_str(&format!(
        "\ngraylane bench: HTTP/1.1 keep-alive, 1 KiB nginx backend, wrk {} connections, {} rounds x {:?}, medians\n\n",
        args.connections, args.rounds, args.duration
    ));
    out.push_str("variant      req/s     p50 ms   p99 ms   proxy req/CPU-s  proxy CPU-ms/1k req  (user)  proxy RSS MiB\n");
    for (v, m) in &s {
        out.push_str(&format!(
            "{:<9} {:>9.0} {:>9.3} {:>8.3} {:>16.0} {:>20.1} {:>7.1} {:>14.1}\n",
            v.name(),
            m.rps,
            m.p50,
            m.p99,
            m.per_cpu_s,
            m.cpu_ms_per_1k,
            m.user_us,
            m.rss_mib
        ));
    }
    let efficiency = gl.per_cpu_s / nginx.per_cpu_s;
    out.push_str(&format!(
        "\nratios:\n  graylane/nginx  requests per proxy CPU-second  {efficiency:.2}x   (goal >= 1.2)\n  \
         graylane/nginx  added p99 latency              {}   (goal <= 0.8)\n  \
         graylane/nginx  added p50 latency              {}\n  \
         graylane/nginx  requests/sec                   {:.2}x\n  \
         graylane/direct requests/sec                   {:.2}x\n  \
         eBPF/iptables   capture, same proxy, req/s     {:.2}x\n  \
         policy/plain    rate limit + breaker + retry   {:.2}x req/s, {:.2}x proxy CPU per request   (goal: < 5% fewer req/s)\n",
        added_ratio(gl.p99 - direct.p99, nginx.p99 - direct.p99),
        added_ratio(gl.p50 - direct.p50, nginx.p50 - direct.p50),
        gl.rps / nginx.rps,
        gl.rps / direct.rps,
        gl.rps / ipt.rps,
        policy.rps / gl.rps,
        policy.cpu_ms_per_1k / gl.cpu_ms_per_1k,
    ));
    print!("{out}");
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let path: PathBuf = dir.join("report.txt");
    std::fs::write(&path, &out)?;
    eprintln!("bench: report written to {}", path.display());
    Ok(())
}
