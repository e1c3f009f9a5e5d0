//! Pod lifecycle races: connections that start before the agent is ready, and a pod IP
//! reused by a new pod with another tag. Neither may put traffic in the wrong lane.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, fixture, privileged, wait_for};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

fn with_app(sb: &mut Sandbox) {
    sb.add_pod(PodSpec::new("app-base").label("app", "app")).expect("base").serve_http(8080).expect("http");
    let gray = PodSpec::new("app-gray").label("app", "app").tag("gray");
    sb.add_pod(gray).expect("gray").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
}

fn http_loop(sb: &Sandbox, pod: &str, interval_ms: &str, seconds: &str) -> graylane_tests::Spawned {
    let script = fixture("http_loop.py");
    sb.pod(pod)
        .start(
            "python3",
            &[script.to_str().unwrap_or_default(), &format!("http://{APP}/"), interval_ms, seconds],
        )
        .expect("loop")
}

#[test]
fn connections_that_start_before_the_agent_is_ready_never_land_in_a_gray_subset() {
    let Some(p) = privileged("startup_race") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    with_app(&mut sb);
    // The untagged client is already calling when the agent starts.
    let traffic = http_loop(&sb, "client", "10", "3");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let ready = sb.start_agent(&AgentOptions::default()).expect("agent");
    let tags = sb.admin().json("/tags?local=1").expect("tags");
    let in_kernel = tags
        .as_array()
        .is_some_and(|a| a.iter().any(|t| t["pod"] == "default/app-gray" && t["tag"] == "gray"));
    let out: Value = serde_json::from_slice(&traffic.wait_output().expect("loop").stdout).expect("summary");
    eprintln!(
        "measured: agent start → ready with tags in the kernel {} ms; traffic during the start: {}",
        ready.as_millis(),
        out
    );
    assert!(in_kernel, "tags are in the kernel once ready: {tags:#}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out["ok"].as_u64().unwrap_or(0) > 50, "{out}");
    assert_eq!(out["pods"], serde_json::json!({"app-base": out["ok"]}), "untagged → base, always: {out}");
}

#[test]
fn a_new_pod_on_a_reused_ip_never_inherits_the_old_pods_tag() {
    let Some(p) = privileged("ip_reuse") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("old").tag("gray")).expect("old");
    with_app(&mut sb);
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let ip = sb.pod("old").ip;
    let before: Value =
        serde_json::from_slice(&http_loop(&sb, "old", "20", "0.3").wait_output().expect("loop").stdout)
            .expect("json");
    assert_eq!(
        before["pods"],
        serde_json::json!({"app-gray": before["ok"]}),
        "the gray pod's lane: {before}"
    );

    // The old pod goes; a new untagged pod gets its IP (its own cgroup), and calls at once.
    sb.reuse_ip("old", PodSpec::new("new")).expect("reuse");
    let traffic = http_loop(&sb, "new", "5", "2");
    let ip_switched = wait_for("the IP map to name the new pod", Duration::from_secs(5), || {
        let tags = sb.admin().json("/tags").unwrap_or_default();
        tags.as_array().is_some_and(|a| {
            a.iter().any(|t| t["ip"] == ip.to_string() && t["pod"] == "default/new" && t["tag"].is_null())
        })
    });
    let out: Value = serde_json::from_slice(&traffic.wait_output().expect("loop").stdout).expect("summary");
    eprintln!(
        "measured: IP {ip} reused: kernel IP map updated {} ms after the inventory change; \
         the new pod's first success after {} ms of calling; {out}",
        ip_switched.as_millis(),
        out["first_ok_ms"]
    );
    assert!(out["ok"].as_u64().unwrap_or(0) > 50, "{out}");
    assert_eq!(
        out["pods"],
        serde_json::json!({"app-base": out["ok"]}),
        "never the old pod's gray lane: {out}"
    );
}

/// A container runtime restart recreates a pod's sandbox: the same cgroup and IP, a new
/// network namespace (the old one lives on, without its veth, while the agent holds it).
/// The pod's captured connections leave from its namespace: the agent uses a cached one
/// only while the process it was found by is still in it, so the very next connection
/// leaves from the new one; also once the old handle is a second old.
#[test]
fn a_recreated_pod_sandbox_is_served_again_at_its_next_connection() {
    let Some(p) = privileged("recreated_sandbox") else { return };
    let mut sb = Sandbox::web(&p).expect("sandbox");
    // A long-lived process in the pod, as a sandbox's pause process is: the agent follows
    // it between full looks.
    sb.pod_mut("client").spawn("sleep", &["infinity"]).expect("pause");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let url = format!("http://{}/", graylane_tests::WEB_VIP);
    let status = |sb: &Sandbox| sb.pod("client").curl(&url).expect("curl").0;
    assert_eq!(status(&sb), 200);
    for round in ["at once", "after a second"] {
        sb.recreate_netns("client").expect("recreate").spawn("sleep", &["infinity"]).expect("pause");
        if round == "after a second" {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let statuses: Vec<u16> = (0..5).map(|_| status(&sb)).collect();
        eprintln!("measured: recreated sandbox, asked {round}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200), "{round}: {statuses:?}");
    }
    let source = sb.metrics().count("graylane_upstream_source_total", &[("source", "pod")]).expect("metrics");
    assert!(source >= 10.0, "connections left from the pod's own namespace: {source}");
}
