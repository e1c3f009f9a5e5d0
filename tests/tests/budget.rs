//! The descriptor budget protects the node: the agent runs under a small open-files limit
//! (2,048) and one hostile pod floods it — the metrics port on the node IP, or captured
//! connections of its own — while another pod's requests keep being served and `/healthz`
//! keeps answering. A proxy full to its total cap steps out of capture: connects go
//! direct (fail-open) instead of waiting on it, and capture resumes when it has room.

use std::{
    net::{Ipv4Addr, SocketAddr},
    time::{Duration, Instant},
};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged, usage, wait_for};

const WEB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const OPEN_FILES: u64 = 2048;

fn sandbox(test: &str, extra: &[&str]) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("hostile")).expect("hostile");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("web", WEB).named_port(80, 8080, "http").select("app", "web"));
    let opts = AgentOptions {
        args: extra.iter().map(|s| (*s).to_owned()).collect(),
        open_files: Some(OPEN_FILES),
        ..AgentOptions::default()
    };
    sb.start_agent(&opts).expect("agent");
    Some(sb)
}

/// While `hostile` holds its flood: the client's requests, the agent's health and
/// descriptors. Returns (client successes of 40, worst /healthz, peak descriptors).
fn while_flooded(sb: &mut Sandbox) -> (u64, Duration, usize) {
    let pid = sb.agent().expect("agent").pid().expect("pid");
    let load = sb.pod("client").http_load(&format!("http://{WEB}/"), 40, &[]).expect("client load");
    let admin = sb.admin();
    let (mut worst, mut peak) = (Duration::ZERO, 0);
    for _ in 0..20 {
        let t = Instant::now();
        let (status, _) = admin.get("/healthz").expect("healthz under the flood");
        assert_eq!(status, 200);
        worst = worst.max(t.elapsed());
        peak = peak.max(usage(pid).1);
        std::thread::sleep(Duration::from_millis(20));
    }
    (load["status"]["200"].as_u64().unwrap_or(0), worst, peak)
}

#[test]
fn a_flood_on_the_metrics_port_is_capped_per_source_and_others_are_served() {
    let node = Ipv4Addr::new(10, 200, 0, 1);
    let metrics_addr = SocketAddr::from((node, 15090));
    let Some(mut sb) = sandbox("metrics_flood", &["--metrics-addr", &metrics_addr.to_string()]) else {
        return;
    };
    assert_eq!(sb.node_ip(), node);
    let idle = sb.admin().healthz_worst(10, Duration::from_millis(10)).expect("idle healthz");
    let flood = graylane_tests::fixture("flood.py");
    let flood = flood.to_str().expect("path").to_owned();
    // Half-sent requests: 3,000 connections, more than the agent's whole limit.
    let holder = sb
        .pod("hostile")
        .start("python3", &[&flood, &node.to_string(), "15090", "3000", "4"])
        .expect("flood");
    std::thread::sleep(Duration::from_millis(1500));
    let (ok, worst, peak) = while_flooded(&mut sb);
    let prometheus = sb.node_addr(metrics_addr);
    let refused = prometheus
        .metric("graylane_admin_refused_total", &[("site", "metrics")])
        .expect("a scrape still answers");
    let out = holder.wait_output().expect("flood output");
    eprintln!(
        "measured: metrics flood {} from one pod; other pod served {ok}/40; /healthz worst {worst:?} (idle {idle:?}); \
         agent descriptors peak {peak} (limit {OPEN_FILES}); metrics connections refused {refused}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert_eq!(ok, 40);
    let bound = graylane_tests::Admin::responsive_bound(idle);
    assert!(worst < bound, "/healthz {worst:?} flooded, {idle:?} idle: over {bound:?}");
    assert!(peak < 400, "the flood never reaches the agent's descriptors: {peak}");
    assert!(refused >= 2000.0, "{refused}");
}

#[test]
fn one_pods_idle_connections_stop_at_its_share_and_other_pods_are_served() {
    let Some(mut sb) = sandbox("per_pod_flood", &[]) else { return };
    let config = sb.admin().json("/config").expect("config");
    let per_pod = config["budget"]["max_conns_per_pod"].as_u64().expect("budget");
    eprintln!("measured: budget at {OPEN_FILES} open files: {}", config["budget"]);
    let idle = sb.admin().healthz_worst(10, Duration::from_millis(10)).expect("idle healthz");
    let held = graylane_tests::fixture("held_connections.py");
    let held = held.to_str().expect("path").to_owned();
    // More idle (served once, then held) connections than the whole limit would allow.
    let holder = sb
        .pod("hostile")
        .start("python3", &[&held, &WEB.to_string(), "80", "1500", "5"])
        .expect("held connections");
    let admin = sb.admin();
    wait_for("the hostile pod's connections", Duration::from_secs(20), || {
        sb.metrics()
            .metric("graylane_downstream_refused_total", &[("reason", "per_pod_cap")])
            .is_ok_and(|v| v > 0.0)
    });
    let (ok, worst, peak) = while_flooded(&mut sb);
    let out = holder.wait_output().expect("holder output");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("summary");
    eprintln!(
        "measured: one pod held {summary} against a per-pod cap of {per_pod}; other pod served {ok}/40; \
         /healthz worst {worst:?} (idle {idle:?}); agent descriptors peak {peak} (limit {OPEN_FILES})"
    );
    assert_eq!(summary["served"].as_u64(), Some(per_pod), "{summary}");
    assert_eq!(ok, 40);
    let bound = graylane_tests::Admin::responsive_bound(idle);
    assert!(worst < bound, "/healthz {worst:?} flooded, {idle:?} idle: over {bound:?}");
    assert!(peak < OPEN_FILES as usize - 256, "descriptors within the budget: {peak}");
    let _ = admin;
}

#[test]
fn a_proxy_at_its_total_cap_fails_open_and_captures_again_with_room() {
    let Some(sb) = sandbox("total_cap", &["--max-conns", "50", "--max-conns-per-pod", "1000"]) else {
        return;
    };
    let web = sb.pod("web").ip;
    let held = graylane_tests::fixture("held_connections.py");
    let held = held.to_str().expect("path").to_owned();
    // 60 connections to the web pod's IP (captured): 50 fill the proxy.
    let holder =
        sb.pod("hostile").start("python3", &[&held, &web.to_string(), "8080", "60", "3"]).expect("held");
    let metrics = sb.metrics();
    wait_for("capture paused", Duration::from_secs(10), || {
        metrics.metric("graylane_capture_paused", &[]).is_ok_and(|v| v == 1.0)
    });
    let admin = sb.admin();
    let fail_open_before = admin.counter("fail_open").expect("counter");
    // Another pod's connects now go straight to the pod (fail-open), and are served.
    let (code, body) = sb.pod("client").curl(&format!("http://{web}:8080/direct")).expect("curl");
    assert_eq!(code, 200, "{body}");
    assert!(admin.counter("fail_open").expect("counter") > fail_open_before);
    let out = holder.wait_output().expect("holder");
    eprintln!("measured: total cap 50, one pod held {}", String::from_utf8_lossy(&out.stdout).trim());
    wait_for("capture resumed", Duration::from_secs(10), || {
        metrics.metric("graylane_capture_paused", &[]).is_ok_and(|v| v == 0.0)
    });
    let captured = admin.counter("captured").expect("counter");
    let (code, _) = sb.pod("client").curl(&format!("http://{web}:8080/again")).expect("curl");
    assert_eq!(code, 200);
    assert_eq!(admin.counter("captured").expect("counter"), captured + 1, "captured again");
}
