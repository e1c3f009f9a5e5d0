//! Global rate limits: two nodes (two sandboxes, two agents) share one budget through a
//! real `redis-server`; when Redis dies each node falls back to its local limiter
//! (fail-open towards the global total) and counts it.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, PodSpec, Redis, Sandbox, ServiceSpec, privileged};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

const POLICY: &str = "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: app}\nspec:
  service: app
  rateLimit: {requests: 40, interval: 1s, burst: 4, global: true}
  routes:
  - name: window
    match: {path: {prefix: /window}}
    rateLimit: {requests: 30, interval: 60s, algorithm: slidingWindow, global: true}
";

fn node(p: &graylane_tests::Privileged, redis: &Redis) -> Sandbox {
    let mut sb = Sandbox::new(p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("app").label("app", "app")).expect("app").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    sb.add_document(POLICY);
    let opts = AgentOptions { args: vec!["--redis".into(), redis.url()], ..AgentOptions::default() };
    sb.start_agent(&opts).expect("agent");
    sb
}

fn status(v: &Value, code: u16) -> u64 {
    v["status"][code.to_string()].as_u64().unwrap_or(0)
}

/// Both nodes' clients send at once for `amount` (a count or a duration) to `path`.
fn load_both(nodes: &[&Sandbox; 2], path: &str, amount: &str) -> [Value; 2] {
    let url = format!("http://{APP}{path}");
    std::thread::scope(|s| {
        let runs = nodes.map(|sb| {
            let url = url.clone();
            s.spawn(move || sb.pod("client").http_load_for(&url, amount, &[]).expect("load"))
        });
        runs.map(|h| h.join().expect("load thread"))
    })
}

#[test]
fn two_nodes_share_one_budget_through_redis_and_fall_back_locally_when_it_dies() {
    let Some(p) = privileged("global_limit") else { return };
    let mut redis = Redis::start().expect("redis");
    let (a, b) = (node(&p, &redis), node(&p, &redis));

    // Token bucket: 40/s, burst 4, shared.
    let runs = load_both(&[&a, &b], "/", "3s");
    let secs = runs.iter().map(|r| r["seconds"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
    let admitted: u64 = runs.iter().map(|r| status(r, 200)).sum();
    let expected = 40.0 * secs + 4.0;
    eprintln!(
        "measured: global token bucket 40/s over {secs:.2} s from two nodes: admitted {admitted} \
         ({} + {}), expected {expected:.0}",
        status(&runs[0], 200),
        status(&runs[1], 200)
    );
    assert!(runs.iter().all(|r| status(r, 429) > 50), "both nodes were limited: {runs:#?}");
    assert!(
        (admitted as f64 - expected).abs() <= expected * 0.10,
        "admitted {admitted}, expected {expected:.0} ± 10%"
    );
    for sb in [&a, &b] {
        let m = sb.metrics();
        let fallback =
            m.count("graylane_global_rate_limit_total", &[("result", "fallback")]).expect("metrics");
        assert_eq!(fallback, 0.0, "redis was up");
    }

    // Sliding window: 30 per minute across both nodes, exactly.
    let runs = load_both(&[&a, &b], "/window", "40");
    let admitted: u64 = runs.iter().map(|r| status(r, 200)).sum();
    eprintln!("measured: global sliding window 30/min, 2 x 40 requests: admitted {admitted}");
    assert_eq!(admitted, 30, "{runs:#?}");

    // Redis dies: each node enforces the limit on its own, and counts the fallbacks.
    redis.kill();
    let runs = load_both(&[&a, &b], "/", "2s");
    let per_node: Vec<u64> = runs.iter().map(|r| status(r, 200)).collect();
    let secs = runs.iter().map(|r| r["seconds"].as_f64().unwrap_or(0.0)).fold(0.0, f64::max);
    eprintln!("measured: redis down, 40/s per node over {secs:.2} s: admitted {per_node:?}");
    for (sb, (run, ok)) in [&a, &b].iter().zip(runs.iter().zip(&per_node)) {
        let local = 40.0 * secs + 4.0;
        assert!(*ok as f64 >= local * 0.8 && (*ok as f64) <= local * 1.1, "each node's own limit: {ok}");
        assert!(
            status(run, 502) + status(run, 503) + status(run, 504) == 0,
            "fail-open, not failed: {run:#}"
        );
        let fallback = sb
            .metrics()
            .metric("graylane_global_rate_limit_total", &[("policy", "default/app"), ("result", "fallback")])
            .expect("metrics");
        assert!(fallback as u64 >= status(run, 200) + status(run, 429) - 20, "counted: {fallback}");
        assert!(sb.agent_log().contains("global rate limit: using the local limiter"));
    }
}
