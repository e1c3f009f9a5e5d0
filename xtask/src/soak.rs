//! `cargo xtask soak --minutes N`: steady traffic through the agent for N minutes with a
//! kill -9 and restart every few minutes and tag churn every 10 s; reports the agent's RSS
//! slope per lifetime, its descriptors, and the request success rate. Not a CI test: run it
//! before a release (20 minutes at least).

use std::{
    fmt::Write as _,
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, Spawned, fixture, privileged, usage};
use serde_json::Value;

use crate::cmd::{build_agent, root};

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
/// Traffic runs in rounds of this long (each client prints a summary per round).
const ROUND: Duration = Duration::from_secs(60);
const KILL_EVERY: Duration = Duration::from_secs(300);
const CHURN_EVERY: Duration = Duration::from_secs(10);

/// One agent process's life: (seconds since soak start, RSS KiB, open fds) samples.
#[derive(Default)]
struct Lifetime {
    samples: Vec<(f64, u64, usize)>,
}

impl Lifetime {
    /// Least-squares slope of RSS over time, in MiB per hour, after a one-minute warm-up.
    fn slope_mib_per_hour(&self) -> Option<f64> {
        let t0 = self.samples.first()?.0;
        let pts: Vec<(f64, f64)> =
            self.samples.iter().filter(|s| s.0 - t0 >= 60.0).map(|s| (s.0, s.1 as f64 / 1024.0)).collect();
        if pts.len() < 10 {
            return None;
        }
        let n = pts.len() as f64;
        let (mx, my) = (pts.iter().map(|p| p.0).sum::<f64>() / n, pts.iter().map(|p| p.1).sum::<f64>() / n);
        let num: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let den: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        (den > 0.0).then(|| num / den * 3600.0)
    }
}

pub fn run(minutes: u64) -> anyhow::Result<()> {
    let bin = build_agent(true)?;
    let Some(p) = privileged("soak") else { bail!("the soak needs root: sudo -E cargo xtask soak") };
    let mut sb = Sandbox::new(&p)?;
    for (name, tag) in [("client", None), ("client-gray", Some("gray"))] {
        let mut spec = PodSpec::new(name);
        if let Some(t) = tag {
            spec = spec.tag(t);
        }
        sb.add_pod(spec)?;
    }
    sb.add_pod(PodSpec::new("app-base").label("app", "app"))?.serve_http(8080)?;
    sb.add_pod(PodSpec::new("app-gray").label("app", "app").tag("gray"))?.serve_http(8080)?;
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    let opts = AgentOptions { binary: Some(bin), log: Some("warn".into()), ..AgentOptions::default() };
    sb.start_agent(&opts)?;

    let total = Duration::from_secs(minutes * 60);
    let started = Instant::now();
    let mut lifetimes = vec![Lifetime::default()];
    let (mut attempts, mut ok, mut kills, mut churns) = (0u64, 0u64, 0u32, 0u32);
    let mut last_kill = Instant::now();
    let mut last_churn = Instant::now();
    let mut gray = true;
    // Connections served from the pods' own addresses and from the node's (fallbacks),
    // summed over every agent's life.
    let (mut from_pod, mut from_node) = (0.0, 0.0);
    let sources = |sb: &Sandbox| -> anyhow::Result<(f64, f64)> {
        let m = sb.metrics();
        let n = |s: &str| m.count("graylane_upstream_source_total", &[("source", s)]);
        Ok((n("pod")?, n("node")?))
    };
    let url = format!("http://{APP}/");
    let script = fixture("http_loop.py");
    let script = script.to_str().context("fixture path")?;
    eprintln!(
        "soak: {minutes} min; requests every 20 ms from 2 pods (new connection each), kill -9 every 5 min, tag churn every 10 s"
    );
    while started.elapsed() < total {
        let secs = ROUND.min(total - started.elapsed()).as_secs().max(1).to_string();
        let runs: Vec<Spawned> = ["client", "client-gray"]
            .iter()
            .map(|c| sb.pod(c).start("python3", &[script, &url, "20", &secs]))
            .collect::<anyhow::Result<_>>()?;
        let round = Instant::now();
        while round.elapsed() < Duration::from_secs(secs.parse().unwrap_or(60)) {
            let pid = sb.agent()?.pid().context("agent pid")?;
            let (rss, fds) = usage(pid);
            if let Some(l) = lifetimes.last_mut() {
                l.samples.push((started.elapsed().as_secs_f64(), rss, fds));
            }
            if last_churn.elapsed() >= CHURN_EVERY {
                gray = !gray;
                sb.annotate("app-gray", "graylane.io/tag", Some(if gray { "gray" } else { "v2" }))?;
                churns += 1;
                last_churn = Instant::now();
            }
            if last_kill.elapsed() >= KILL_EVERY {
                let (p, n) = sources(&sb)?;
                (from_pod, from_node) = (from_pod + p, from_node + n);
                sb.kill_agent()?;
                sb.start_agent(&opts)?;
                kills += 1;
                lifetimes.push(Lifetime::default());
                last_kill = Instant::now();
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        for r in runs {
            let out = r.wait_output()?;
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            attempts += v["attempts"].as_u64().unwrap_or(0);
            ok += v["ok"].as_u64().unwrap_or(0);
        }
        eprintln!(
            "soak: {:>4.1} min  requests {attempts}  ok {:.4}  kills {kills}  churns {churns}",
            started.elapsed().as_secs_f64() / 60.0,
            ok as f64 / attempts.max(1) as f64
        );
    }

    let (p, n) = sources(&sb)?;
    (from_pod, from_node) = (from_pod + p, from_node + n);
    let mut report = String::new();
    writeln!(report, "soak: {minutes} min, {kills} kill -9 restarts, {churns} tag changes")?;
    writeln!(
        report,
        "captured connections: {from_pod} from the calling pod's own address, {from_node} from the node's (fallbacks)"
    )?;
    writeln!(
        report,
        "requests: {attempts}, ok {ok}, success rate {:.4}",
        ok as f64 / attempts.max(1) as f64
    )?;
    for (i, l) in lifetimes.iter().enumerate() {
        let (Some(first), Some(last)) = (l.samples.first(), l.samples.last()) else { continue };
        let max_fds = l.samples.iter().map(|s| s.2).max().unwrap_or(0);
        let slope = l.slope_mib_per_hour().map_or("n/a (short)".into(), |s| format!("{s:+.2} MiB/h"));
        writeln!(
            report,
            "agent {i}: {:.1} min, RSS {:.1} → {:.1} MiB, slope {slope}, fds {} → {} (max {max_fds})",
            (last.0 - first.0) / 60.0,
            first.1 as f64 / 1024.0,
            last.1 as f64 / 1024.0,
            first.2,
            last.2
        )?;
    }
    print!("{report}");
    let dir = root().join("target/soak");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("report.txt"), &report)?;
    eprintln!("soak: report written to {}", dir.join("report.txt").display());
    Ok(())
}
