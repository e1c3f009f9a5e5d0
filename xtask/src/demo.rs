//! `cargo xtask demo`: a node with pods in network namespaces, the agent capturing their
//! connections, and what graylane saw, in a few readable lines. Cleans up after itself.

use std::{net::Ipv4Addr, time::Instant};

use anyhow::{Context as _, bail};
use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};
use serde_json::Value;

use crate::cmd::build_agent;

const APP_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const DATA_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 30);

pub fn run() -> anyhow::Result<()> {
    // The sandbox finds the agent at target/debug/graylane, which this builds.
    build_agent(false)?;
    let Some(p) = privileged("demo") else {
        bail!("the demo needs root: sudo -E cargo xtask demo")
    };
    println!("\n== graylane demo: one node, five pods, one agent ==\n");
    let mut sb = Sandbox::new(&p)?;
    sb.add_pod(PodSpec::new("gateway").annotate("graylane.io/role", "ingress"))?;
    sb.add_pod(PodSpec::new("app-v1").label("app", "app"))?
        .serve_echo(&[8080])?;
    sb.add_pod(PodSpec::new("app-v2").label("app", "app").tag("gray"))?
        .serve_echo(&[8080])?;
    sb.add_pod(PodSpec::new("data-v1").label("app", "data"))?
        .serve_echo(&[8080])?;
    sb.add_pod(PodSpec::new("data-v2").label("app", "data").tag("gray"))?
        .serve_echo(&[8080])?;
    sb.add_service(
        ServiceSpec::new("app", APP_VIP)
            .port(80, 8080)
            .select("app", "app"),
    );
    sb.add_service(
        ServiceSpec::new("data", DATA_VIP)
            .port(80, 8080)
            .select("app", "data"),
    );
    let took = sb.start_agent(&AgentOptions::default())?;
    println!(
        "agent ready in {} ms: eBPF on the pods' cgroup, proxy on {}",
        took.as_millis(),
        sb.proxy_addr()
    );
    print_tags(&sb)?;

    println!(
        "\ntraffic: gateway → app (x2), app-v2 → data (x2, no header: the kernel knows it is gray)"
    );
    for _ in 0..2 {
        sb.pod("gateway").curl(&format!("http://{APP_VIP}/"))?;
    }
    for _ in 0..2 {
        sb.pod("app-v2").curl(&format!("http://{DATA_VIP}/"))?;
    }
    print_flows(&sb)?;

    println!("\nkill -9 the agent: pods keep reaching pod IPs directly (fail-open)");
    sb.kill_agent()?;
    let data_ip = sb.pod("data-v1").ip;
    let (code, _) = sb.pod("app-v2").curl(&format!("http://{data_ip}:8080/"))?;
    println!("  app-v2 → {data_ip}:8080 without agent: HTTP {code}");
    let t = Instant::now();
    sb.start_agent(&AgentOptions::default())?;
    let dp = sb.admin().json("/datapath")?;
    let adopted = dp["status"]["links"]
        .as_array()
        .context("links")?
        .iter()
        .filter(|l| l["adopted"] == true)
        .count();
    println!(
        "  new agent ready in {} ms, adopted {adopted}/4 pinned links",
        t.elapsed().as_millis()
    );
    println!(
        "  kernel counters: captured {}, fail_open {}",
        dp["counters"]["captured"], dp["counters"]["fail_open"]
    );
    println!(
        "\n(tag-aware routing by subset arrives with the L7 proxy; today every flow is L4 round robin)\n"
    );
    Ok(())
}

fn print_tags(sb: &Sandbox) -> anyhow::Result<()> {
    let tags = sb.admin().json("/tags")?;
    println!("\nkernel pod map (by cgroup):");
    for t in tags
        .as_array()
        .context("tags")?
        .iter()
        .filter(|t| t["cgroup_id"].is_u64())
    {
        println!(
            "  {:<18} cgroup {:<8} tag {}",
            s(&t["pod"]),
            t["cgroup_id"],
            s(&t["tag"])
        );
    }
    Ok(())
}

fn print_flows(sb: &Sandbox) -> anyhow::Result<()> {
    let flows = sb.admin().json("/flows")?;
    println!("\n  SOURCE POD         TAG    ORIGINAL DST     SERVICE        UPSTREAM");
    for f in flows.as_array().context("flows")? {
        println!(
            "  {:<18} {:<6} {:<16} {:<14} {}",
            s(&f["src_pod"]),
            s(&f["tag"]),
            s(&f["orig_dst"]),
            s(&f["service"]),
            s(&f["upstream"])
        );
    }
    Ok(())
}

fn s(v: &Value) -> String {
    v.as_str().map(str::to_owned).unwrap_or_else(|| "-".into())
}
