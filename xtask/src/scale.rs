//! `cargo xtask scale`: the agent with a large inventory (default 10,000 pods, 1,000
//! services): time to ready, memory, and annotation-change-to-kernel latency.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};

use crate::cmd::build_agent;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn run(pods: usize, services: usize) -> anyhow::Result<()> {
    let bin = build_agent(true)?;
    let Some(p) = privileged("scale") else { bail!("needs root: sudo -E cargo xtask scale") };
    let mut sb = Sandbox::new(&p)?;
    sb.add_pod(PodSpec::new("client"))?;
    for i in 0..pods {
        let ip = Ipv4Addr::new(10, 240, (i / 250) as u8, (i % 250 + 1) as u8);
        let mut spec =
            PodSpec::new(&format!("pod-{i}")).label("app", &format!("svc-{}", i % services)).remote(ip);
        if i % 10 == 0 {
            spec = spec.tag("gray");
        }
        if i % 7 == 0 {
            spec = spec.tenant(&format!("tenant-{}", i % 13));
        }
        sb.add_pod(spec)?;
    }
    for j in 0..services {
        let vip = Ipv4Addr::new(10, 97, (j / 250) as u8, (j % 250 + 1) as u8);
        sb.add_service(
            ServiceSpec::new(&format!("svc-{j}"), vip).port(80, 8080).select("app", &format!("svc-{j}")),
        );
    }
    let opts =
        AgentOptions { log: Some("warn,graylane=debug".into()), binary: Some(bin), ..Default::default() };
    let ready = sb.start_agent(&opts)?;
    let pid = sb.agent()?.pid().context("agent pid")?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default()
    };
    let admin = sb.admin();
    let mut changes = Vec::new();
    let mut rss = Vec::new();
    let tags = ["gray", "blue", "green", "red", "v2", "v3", "gray", "blue", "green", "red"];
    for tag in tags {
        sb.annotate("client", "graylane.io/tag", Some(tag))?;
        let start = Instant::now();
        loop {
            let tags = admin.json("/tags?local=1")?;
            let seen = tags
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["pod"] == "default/client" && t["cgroup_id"].is_u64() && t["tag"] == tag);
            if seen {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("tag {tag} never reached the kernel");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        changes.push(start.elapsed().as_millis());
        rss.push(rss_kib(pid) / 1024);
    }
    println!(
        "\ngraylane scale: {pods} pods, {services} services (file source, release build)\n  ready in {} ms\n  \
         RSS {} (peak {}); MiB after each of {} reloads: {rss:?}\n  annotation change → kernel map (incl. reload of the whole file): {changes:?} ms\n",
        ready.as_millis(),
        field("VmRSS:"),
        field("VmHWM:"),
        tags.len(),
    );
    for line in
        sb.agent_log().lines().filter(|l| l.contains("inventory parsed") || l.contains("snapshot applied"))
    {
        eprintln!("scale: {}", line.split("DEBUG").last().unwrap_or(line));
    }
    Ok(())
}
