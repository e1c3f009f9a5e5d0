//! Resilience through real captured connections: rate limits (token bucket and sliding
//! window, per-tenant keys, the fallback action), the concurrency cap, request timeouts,
//! and fault injection per lane.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

/// An `app` service (one HTTP backend) with `policy` as its TrafficPolicy spec body.
fn sandbox(test: &str, policy: &str, clients: &[PodSpec]) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    for c in clients {
        sb.add_pod(c.clone()).expect("client");
    }
    sb.add_pod(PodSpec::new("app").label("app", "app")).expect("app").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    sb.add_document(&format!(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: app}}\nspec:\n  service: app\n{policy}"
    ));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    Some(sb)
}

fn status(v: &Value, code: u16) -> u64 {
    v["status"][code.to_string()].as_u64().unwrap_or(0)
}

#[test]
fn rate_limits_admit_the_configured_rate_and_answer_the_rest_with_the_fallback_action() {
    let policy = "  rateLimit:\n    requests: 50\n    interval: 1s\n    burst: 5\n    onReject: {status: 429, body: slow down, headers: {retry-after: '1'}}\n";
    let Some(sb) = sandbox("rate_limit", policy, &[PodSpec::new("client")]) else { return };
    let v = sb.pod("client").http_load_for(&format!("http://{APP}/"), "3s", &[]).expect("load");
    let secs = v["seconds"].as_f64().unwrap_or(0.0);
    let (ok, limited) = (status(&v, 200), status(&v, 429));
    let expected = 50.0 * secs + 5.0;
    eprintln!(
        "measured: token bucket 50/s burst 5 over {secs:.2} s: admitted {ok} (expected {expected:.0}), rejected {limited}"
    );
    assert!(ok + limited > 200 && status(&v, 502) + status(&v, 503) == 0, "{v:#}");
    assert!((ok as f64 - expected).abs() <= expected * 0.10, "admitted {ok}, expected {expected:.0} ± 10%");
    let rejection =
        v["echoes"].as_array().and_then(|e| e.iter().find(|e| e["status"] == 429)).expect("a rejection");
    assert_eq!(
        (rejection["reason"].as_str(), rejection["body"].as_str()),
        (Some("rate_limited"), Some("slow down"))
    );
    assert_eq!(rejection["response_headers"]["retry-after"], "1");
    assert_eq!(rejection["response_headers"]["x-graylane-limit"], "default/app");
    // Every rejection is counted, exactly.
    let counted = sb
        .metrics()
        .metric("graylane_policy_rejected_total", &[("policy", "default/app"), ("reason", "rate_limited")])
        .expect("metrics");
    assert_eq!(counted as u64, limited);
}

#[test]
fn a_noisy_tenant_exhausts_only_its_own_budget_in_a_sliding_window() {
    let policy = "  rateLimit: {requests: 20, interval: 10s, algorithm: slidingWindow, key: tenant}\n";
    let clients = [PodSpec::new("noisy").tenant("acme"), PodSpec::new("quiet").tenant("globex")];
    let Some(sb) = sandbox("tenant_limit", policy, &clients) else { return };
    let noisy = sb.pod("noisy").http_load(&format!("http://{APP}/"), 100, &[]).expect("load");
    assert_eq!((status(&noisy, 200), status(&noisy, 429)), (20, 80), "{noisy:#}");
    let quiet = sb.pod("quiet").http_load(&format!("http://{APP}/"), 20, &[]).expect("load");
    assert_eq!(status(&quiet, 200), 20, "another tenant keeps its budget: {quiet:#}");
}

#[test]
fn the_concurrency_cap_rejects_at_once_and_timeouts_never_let_a_caller_hang() {
    let policy = "  concurrency: {maxInFlight: 2}\n  routes:\n  - name: slow\n    match: {path: {prefix: /sleep/3000}}\n    timeout: 300ms\n";
    let Some(sb) = sandbox("concurrency_and_timeout", policy, &[PodSpec::new("client")]) else { return };
    let out = sb
        .pod("client")
        .python_json("http_concurrent.py", &[&format!("http://{APP}/sleep/800"), "5"])
        .expect("concurrent");
    let results = out[0].as_array().cloned().unwrap_or_default();
    let ok = results.iter().filter(|r| r["status"] == 200).count();
    let capped: Vec<&Value> = results.iter().filter(|r| r["status"] == 503).collect();
    assert_eq!((ok, capped.len()), (2, 3), "{results:?}");
    assert!(
        capped.iter().all(|r| r["reason"] == "concurrency_limit" && r["ms"].as_f64().unwrap_or(1e9) < 500.0),
        "{capped:?}"
    );
    // The route's timeout replaces the service's settings (no cap there).
    let t = sb
        .pod("client")
        .python_json("http_concurrent.py", &[&format!("http://{APP}/sleep/3000"), "1"])
        .expect("timeout");
    let r = &t[0][0];
    eprintln!("measured: 300 ms route timeout answered after {} ms", r["ms"]);
    assert_eq!((r["status"].as_u64(), r["reason"].as_str()), (Some(504), Some("request_timeout")), "{r}");
    assert!(r["ms"].as_f64().unwrap_or(1e9) < 1500.0, "{r}");
}

#[test]
fn faults_hit_only_their_lane_at_their_rate() {
    let policy = "  faults:\n  - {tags: [gray], abort: {status: 503, percentage: 30}}\n  - {tags: [slow], delay: {duration: 200ms, percentage: 100}}\n";
    let Some(sb) = sandbox("faults", policy, &[PodSpec::new("client")]) else { return };
    let url = format!("http://{APP}/");
    // 4,000 requests: the 1e-6 bounds (1058..=1342) miss a 25 % rate (1000) 98 % of the time.
    let gray = sb.pod("client").http_load(&url, 4000, &["x-graylane-tag:gray"]).expect("gray");
    let aborted = status(&gray, 503);
    eprintln!("measured: 30% abort on the gray lane: {aborted}/4000");
    let want = graylane_tests::binomial_bounds(4000, 0.3);
    assert!(want.contains(&aborted), "{aborted} aborted, want {want:?}: {gray:#}");
    let base = sb.pod("client").http_load(&url, 300, &[]).expect("base");
    assert_eq!(status(&base, 200), 300, "base traffic untouched: {base:#}");
    let slow = sb.pod("client").http_load(&url, 5, &["x-graylane-tag:slow"]).expect("slow");
    let secs = slow["seconds"].as_f64().unwrap_or(0.0);
    assert!(secs >= 1.0, "5 requests delayed 200 ms each took {secs:.2} s");
}

/// Retries summed over the sandbox's flows.
fn retries(sb: &Sandbox) -> u64 {
    let flows = sb.admin().json("/flows").expect("flows");
    flows.as_array().map(|a| a.iter().filter_map(|f| f["retries"].as_u64()).sum()).unwrap_or(0)
}

#[test]
fn retries_move_to_another_endpoint_and_the_budget_caps_them() {
    let Some(p) = privileged("retries") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    // In the inventory, but nothing listens: every try there is a connect failure.
    sb.add_pod(PodSpec::new("dead").label("app", "web")).expect("dead");
    let (retried, bare, capped) =
        (Ipv4Addr::new(10, 96, 0, 40), Ipv4Addr::new(10, 96, 0, 41), Ipv4Addr::new(10, 96, 0, 42));
    for (name, vip) in [("retried", retried), ("bare", bare), ("capped", capped)] {
        sb.add_service(ServiceSpec::new(name, vip).port(80, 8080).select("app", "web"));
    }
    let policy = |name: &str, body: &str| {
        format!(
            "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {{name: {name}}}\nspec:\n  service: {name}\n{body}"
        )
    };
    sb.add_document(&policy("retried", "  retry: {attempts: 2, backoff: 5ms}\n"));
    sb.add_document(&policy("capped", "  retry: {attempts: 2, budgetPercent: 0, minRetries: 0}\n"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client");

    let plain = client.http_load(&format!("http://{bare}/"), 100, &[]).expect("bare");
    assert!(status(&plain, 503) >= 30, "half the tries hit the dead pod: {plain:#}");
    let before = retries(&sb);
    let with = client.http_load(&format!("http://{retried}/"), 100, &[]).expect("retried");
    let spent = retries(&sb) - before;
    eprintln!(
        "measured: 100 requests over a live and a dead endpoint: {} ok with {spent} retries",
        status(&with, 200)
    );
    assert_eq!(status(&with, 200), 100, "{with:#}");
    assert!((30..=100).contains(&spent), "at most one retry per request (to the live pod): {spent}");
    let before = retries(&sb);
    let none = client.http_load(&format!("http://{capped}/"), 100, &[]).expect("capped");
    assert_eq!(retries(&sb) - before, 0, "a zero budget allows no retry: {none:#}");
    assert!(status(&none, 503) >= 30, "{none:#}");
}

#[test]
fn a_deadline_set_on_the_first_hop_bounds_the_second() {
    let Some(p) = privileged("deadline") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("front").label("app", "front")).expect("front").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("back").label("app", "back")).expect("back").serve_http(8080).expect("http");
    let (front, back) = (Ipv4Addr::new(10, 96, 0, 50), Ipv4Addr::new(10, 96, 0, 51));
    sb.add_service(ServiceSpec::new("front", front).port(80, 8080).select("app", "front"));
    sb.add_service(ServiceSpec::new("back", back).port(80, 8080).select("app", "back"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: front}\nspec: {service: front, timeout: 300ms}",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    // client → front (300 ms) → front's app calls back, which would take 2 s.
    let url = format!("http://{front}/forward/{back}:80/sleep/2000");
    let out = sb.pod("client").python_json("http_concurrent.py", &[&url, "1"]).expect("client");
    let first = &out[0][0];
    // Both hops end at the same deadline: either hop 1's timer fires first (504), or hop 2's
    // 504 reaches front's app first, which answers 200 with the error it got. Never 2 s.
    assert!(first["status"] == 504 || first["status"] == 200, "{first}");
    // The second hop had no timeout of its own: it honored the propagated deadline.
    let hop2 = graylane_tests::wait_for("the second hop to end", std::time::Duration::from_secs(3), || {
        let flows = sb.admin().json("/flows").unwrap_or_default();
        flows
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["src_pod"] == "default/front" && f["last_status"] == 504))
    });
    eprintln!(
        "measured: hop 1 answered {} after {} ms; hop 2 ended {} ms later",
        first["status"],
        first["ms"],
        hop2.as_millis()
    );
    assert!(first["ms"].as_f64().unwrap_or(1e9) < 1000.0, "{first}");
}

#[test]
fn a_failing_endpoint_is_ejected_then_probed_and_brought_back_in_steps() {
    let Some(p) = privileged("circuit_breaker") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("good").label("app", "web")).expect("good").serve_http(8080).expect("http");
    let sick = sb.scratch().join("sick");
    std::fs::write(&sick, "").expect("sick");
    sb.add_pod(PodSpec::new("flaky").label("app", "web"))
        .expect("flaky")
        .serve_http_failing_while(8080, &sick)
        .expect("http");
    sb.add_service(ServiceSpec::new("web", APP).port(80, 8080).select("app", "web"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: web}\nspec:\n  service: web\n  circuitBreaker:\n    \
         consecutiveFailures: 3\n    openFor: 1s\n    halfOpenProbes: 2\n    recoveryStepPercent: 50\n    recoveryEvery: 2s\n    maxEjectionPercent: 50\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let url = format!("http://{APP}/");
    let client = sb.pod("client");

    // Three failures in a row open the flaky endpoint's breaker: the rest go to the good one.
    let sick_run = client.http_load(&url, 100, &[]).expect("load");
    eprintln!("measured: 100 requests with one sick endpoint: {sick_run}", sick_run = sick_run["status"]);
    assert_eq!(status(&sick_run, 503), 3, "{sick_run:#}");
    assert_eq!(sick_run["pods"]["good"], 97);
    // Healed: after openFor, probes succeed and traffic returns in steps (50%, then all).
    std::fs::remove_file(&sick).expect("heal");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let probing = client.http_load(&url, 100, &[]).expect("load");
    let first_step = probing["pods"]["flaky"].as_u64().unwrap_or(0);
    std::thread::sleep(std::time::Duration::from_millis(4100));
    let recovered = client.http_load(&url, 100, &[]).expect("load");
    let last = recovered["pods"]["flaky"].as_u64().unwrap_or(0);
    eprintln!(
        "measured: flaky endpoint share after healing: {first_step}/100 while recovering, {last}/100 after"
    );
    assert_eq!(status(&probing, 200), 100, "{probing:#}");
    assert!((5..=42).contains(&first_step), "half of its round-robin share while recovering: {first_step}");
    assert!((45..=55).contains(&last), "its full round-robin share once closed: {last}");
}

#[test]
fn mirrored_copies_reach_the_shadow_subset_without_the_caller_waiting_and_stress_stays_isolated() {
    let Some(p) = privileged("mirror") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("app-v1").label("app", "app")).expect("v1").serve_http(8080).expect("http");
    // The shadow is slow: a caller that waited for copies would take 20 x 300 ms.
    let shadow = PodSpec::new("app-shadow").label("app", "app").tag("shadow");
    sb.add_pod(shadow).expect("shadow").serve_http_delayed(8080, 300).expect("http");
    sb.add_service(ServiceSpec::new("app", APP).port(80, 8080).select("app", "app"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: app}\nspec:\n  service: app\n  \
         mirror: {subset: shadow, percentage: 100}\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let shadow_ip = sb.pod("app-shadow").ip;
    let client = sb.pod("client");
    let v = client.http_load(&format!("http://{APP}/"), 20, &[]).expect("load");
    let secs = v["seconds"].as_f64().unwrap_or(f64::MAX);
    assert_eq!(v["pods"], serde_json::json!({"app-v1": 20}), "the caller is served by base only: {v:#}");
    assert!(secs < 3.0, "the caller must not wait for the copies: {secs:.2} s");
    let stats = || -> Value {
        let raw = client
            .run("curl", &["-s", &format!("http://{shadow_ip}:8080/_stats")])
            .map(|o| o.1)
            .unwrap_or_default();
        serde_json::from_str(&raw).unwrap_or_default()
    };
    graylane_tests::wait_for("the copies to land", std::time::Duration::from_secs(15), || {
        stats()["count"] == 20
    });
    let seen = stats();
    eprintln!("measured: 20 mirrored requests, shadow saw {}; the caller took {secs:.2} s", seen["count"]);
    assert!(seen["last_host"].as_str().unwrap_or("").ends_with("-shadow"), "{seen}");
    // Stress traffic never falls back to production.
    let stress = client.http_load(&format!("http://{APP}/"), 5, &["x-graylane-tag:stress"]).expect("stress");
    assert_eq!(status(&stress, 503), 5, "{stress:#}");
}

#[test]
fn an_unhealthy_gray_subset_sends_its_lane_to_base_until_it_recovers() {
    let Some(p) = privileged("subset_breaker") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("app-base").label("app", "app")).expect("base").serve_http(8080).expect("http");
    let sick = sb.scratch().join("sick");
    std::fs::write(&sick, "").expect("sick");
    for name in ["app-gray-1", "app-gray-2"] {
        let gray = PodSpec::new(name).label("app", "app").tag("gray");
        sb.add_pod(gray).expect("gray").serve_http_failing_while(8080, &sick).expect("http");
    }
    sb.add_service(ServiceSpec::new("app", APP).port(80, 8080).select("app", "app"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: app}\nspec:\n  service: app\n  \
         subsetBreaker: {consecutiveFailures: 4, openFor: 1s, halfOpenProbes: 2, recoveryStepPercent: 100}\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let url = format!("http://{APP}/");
    let client = sb.pod("client");
    let gray = ["x-graylane-tag:gray"];

    // Four failures across the subset's two pods open it; the lane then falls back to base.
    let sick_run = client.http_load(&url, 50, &gray).expect("load");
    eprintln!(
        "measured: gray lane with a sick gray subset: {}, pods {}",
        sick_run["status"], sick_run["pods"]
    );
    assert_eq!(status(&sick_run, 503), 4, "{sick_run:#}");
    assert_eq!(sick_run["pods"]["app-base"], 46, "{sick_run:#}");
    let flows = sb.admin().json("/flows").expect("flows");
    assert!(
        flows.as_array().is_some_and(|a| a.iter().any(|f| f["reason"] == "fallback_unhealthy")),
        "the flow says why: {flows:#}"
    );
    let m = sb.metrics();
    let opened = m
        .metric("graylane_circuit_breaker_transitions_total", &[("level", "subset"), ("to", "open")])
        .expect("metrics");
    assert_eq!(opened, 1.0);
    // Base traffic never noticed.
    let base = client.http_load(&url, 20, &[]).expect("base");
    assert_eq!(base["pods"], serde_json::json!({"app-base": 20}), "{base:#}");

    // Healed: after openFor, two probes succeed and the lane is back on its subset.
    std::fs::remove_file(&sick).expect("heal");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let healed = client.http_load(&url, 50, &gray).expect("load");
    eprintln!("measured: gray lane after healing: pods {}", healed["pods"]);
    assert_eq!(status(&healed, 200), 50, "{healed:#}");
    let on_gray = healed["pods"]["app-gray-1"].as_u64().unwrap_or(0)
        + healed["pods"]["app-gray-2"].as_u64().unwrap_or(0);
    assert_eq!(on_gray, 50, "{healed:#}");
    let closed = m
        .metric("graylane_circuit_breaker_transitions_total", &[("level", "subset"), ("to", "closed")])
        .expect("metrics");
    assert_eq!(closed, 1.0);
}

#[test]
fn busy_endpoints_are_skipped_and_refused_at_once_when_all_are_busy() {
    let Some(p) = privileged("per_endpoint_cap") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    for name in ["app-1", "app-2"] {
        sb.add_pod(PodSpec::new(name).label("app", "app")).expect("app").serve_http(8080).expect("http");
    }
    sb.add_service(ServiceSpec::new("app", APP).port(80, 8080).select("app", "app"));
    sb.add_document(
        "apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: app}\nspec:\n  service: app\n  \
         concurrency: {maxPerEndpoint: 1}\n",
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let out = sb
        .pod("client")
        .python_json("http_concurrent.py", &[&format!("http://{APP}/sleep/800"), "5"])
        .expect("concurrent");
    let results = out[0].as_array().cloned().unwrap_or_default();
    let ok: Vec<&Value> = results.iter().filter(|r| r["status"] == 200).collect();
    let busy: Vec<&Value> = results.iter().filter(|r| r["status"] == 503).collect();
    assert_eq!((ok.len(), busy.len()), (2, 3), "{results:?}");
    assert!(
        busy.iter().all(|r| r["reason"] == "concurrency_limit" && r["ms"].as_f64().unwrap_or(1e9) < 500.0)
    );
    let pods: std::collections::BTreeSet<&str> = ok.iter().filter_map(|r| r["pod"].as_str()).collect();
    assert_eq!(pods.len(), 2, "one request per endpoint: {ok:?}");
}
