//! Hostile and malformed HTTP at the proxy's edge, over raw TCP from a pod: every case
//! gets 400/431 or a closed connection, never a panic; a smuggled request never reaches
//! the upstream; slowloris is closed within the header timeout + 1 s; connection caps
//! refuse fast.

use std::{net::Ipv4Addr, time::Duration};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged, usage};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);

fn sandbox(test: &str, extra: &[&str]) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("app").label("app", "app")).expect("app").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("app", APP).port(80, 8080).select("app", "app"));
    let log = sb.scratch().join("access.log");
    let mut args: Vec<String> = vec!["--access-log".into(), log.display().to_string()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    sb.start_agent(&AgentOptions { args, ..AgentOptions::default() }).expect("agent");
    Some(sb)
}

fn raw(sb: &Sandbox, cases: &[&str]) -> Vec<Value> {
    let mut args = vec![APP.to_string(), "80".into()];
    args.extend(cases.iter().map(|c| (*c).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.pod("client").python_json("raw_http.py", &refs).expect("raw_http.py")
}

#[test]
fn malformed_requests_get_400_431_or_a_closed_connection_and_nothing_is_smuggled() {
    let Some(mut sb) = sandbox("edge_corpus", &["--header-read-timeout-ms", "1000"]) else { return };
    let cases = [
        "ok",
        "many_headers",
        "big_header",
        "cl_te",
        "two_cl",
        "plus_cl",
        "chunk_overflow",
        "obs_fold",
        "nul",
        "bad_h2_preface",
        "h2_rapid_reset",
        "slowloris",
    ];
    let results = raw(&sb, &cases);
    for r in &results {
        eprintln!(
            "measured: {} → status {} closed {} after {} ms",
            r["case"], r["status"], r["closed"], r["ms"]
        );
    }
    let get = |case: &str| results.iter().find(|r| r["case"] == case).cloned().expect("case ran");
    assert_eq!(get("ok")["status"], 200);
    for (case, want) in [
        ("many_headers", 431),
        ("big_header", 431),
        ("two_cl", 400),
        ("plus_cl", 400),
        ("obs_fold", 400),
        ("nul", 400),
    ] {
        assert_eq!(get(case)["status"], want, "{case}: {}", get(case));
    }
    // A malformed chunk size: a 400, or no answer and the connection closed.
    let r = get("chunk_overflow");
    match r["status"].as_u64() {
        Some(400) => {}
        None => assert_eq!(r["closed"], true, "no answer, and the connection left open: {r}"),
        Some(other) => panic!("chunk_overflow answered {other}: {r}"),
    }
    // Content-Length and chunked together: RFC 9112 §6.3 lets a server reject it (400) or
    // read the body as chunked and close the connection after answering (hyper does).
    // Either way one answer, and nothing after the chunked body is read as a request.
    let r = get("cl_te");
    match r["status"].as_u64() {
        Some(400) => {}
        Some(200) => assert_eq!(r["closed"], true, "answered as chunked, then kept the connection: {r}"),
        other => panic!("cl_te: {other:?}: {r}"),
    }
    let cl_te_answered = r["status"] == 200;
    for case in ["cl_te", "chunk_overflow"] {
        let r = get(case);
        assert!(r["responses"].as_array().is_none_or(|a| a.len() <= 1), "one answer at most: {r}");
    }
    assert_eq!(get("bad_h2_preface")["closed"], true);
    let reset = get("h2_rapid_reset");
    assert!(reset["closed"] == true || reset["goaway"] == true, "rapid reset ends the connection: {reset}");
    let slow = get("slowloris");
    assert_eq!(slow["closed"], true, "{slow}");
    assert!(slow["ms"].as_f64().unwrap_or(1e9) <= 2000.0, "closed within the 1 s timeout + 1 s: {slow}");

    // What the upstream received: the benign request (so the record is real), never the
    // smuggled one; the proxy's access log agrees.
    let (status, stats) = sb.pod("client").curl(&format!("http://{APP}/_stats")).expect("upstream stats");
    assert_eq!(status, 200, "{stats}");
    let stats: Value = serde_json::from_str(&stats).expect("stats JSON");
    let seen: Vec<&str> =
        stats["requests"].as_array().expect("requests").iter().filter_map(Value::as_str).collect();
    assert!(seen.contains(&"GET /ok"), "the upstream's record lacks the benign request: {seen:?}");
    assert_eq!(
        seen.contains(&"POST /"),
        cl_te_answered,
        "cl_te's POST reached the upstream iff answered: {seen:?}"
    );
    assert!(seen.iter().all(|r| !r.contains("/smuggled")), "smuggled through: {seen:?}");
    let read_log = || std::fs::read_to_string(sb.scratch().join("access.log")).unwrap_or_default();
    graylane_tests::wait_for("the benign request in the access log", Duration::from_secs(5), || {
        read_log().contains("/ok")
    });
    assert!(!read_log().contains("/smuggled"), "{}", read_log());
    // No panic, and the proxy still serves.
    assert!(!sb.agent_log().contains("panicked"), "{}", sb.agent_log());
    assert!(!sb.agent().expect("agent").exited());
    assert_eq!(raw(&sb, &["ok"])[0]["status"], 200);
}

#[test]
fn a_pod_over_its_connection_cap_is_refused_at_once_and_others_are_not() {
    let Some(sb) = sandbox("edge_caps", &["--max-conns-per-pod", "20"]) else { return };
    // 40 connections held open at once from one pod: 20 served, 20 refused fast.
    let out = sb
        .pod("client")
        .python_json("held_connections.py", &[&APP.to_string(), "80", "40"])
        .expect("held connections");
    eprintln!("measured: 40 held connections with a cap of 20: {}", out[0]);
    assert_eq!((out[0]["served"].as_u64(), out[0]["refused"].as_u64()), (Some(20), Some(20)), "{}", out[0]);
    let refused = sb
        .metrics()
        .metric("graylane_downstream_refused_total", &[("reason", "per_pod_cap")])
        .expect("metrics");
    assert_eq!(refused, 20.0, "{}", out[0]);
}

#[test]
fn four_thousand_connections_to_a_stalled_upstream_stay_bounded_and_return_to_baseline() {
    let Some(p) = privileged("overload") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    let stalled = sb.add_pod(PodSpec::new("stalled").label("app", "stalled")).expect("stalled");
    let server = graylane_tests::fixture("stalled_server.py");
    stalled.spawn("python3", &[server.to_str().expect("path"), "8080"]).expect("stalled server");
    stalled.wait_listening(8080).expect("listening");
    sb.add_service(ServiceSpec::new("stalled", APP).port(80, 8080).select("app", "stalled"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let pid = sb.agent().expect("agent").pid().expect("pid");
    std::thread::sleep(Duration::from_millis(500));
    let (base_rss, base_fds) = usage(pid);
    let idle = sb.admin().healthz_worst(10, Duration::from_millis(10)).expect("idle healthz");

    let flood = graylane_tests::fixture("flood.py");
    let load = sb
        .pod("client")
        .start("python3", &[flood.to_str().expect("path"), &APP.to_string(), "80", "4000", "6"])
        .expect("flood");
    let admin = sb.admin();
    let (mut peak_rss, mut peak_fds, mut worst) = (0, 0, Duration::ZERO);
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        let (rss, fds) = usage(pid);
        peak_rss = peak_rss.max(rss);
        peak_fds = peak_fds.max(fds);
        let t = std::time::Instant::now();
        let (status, _) = admin.get("/healthz").expect("healthz under load");
        assert_eq!(status, 200);
        worst = worst.max(t.elapsed());
        if started.elapsed() > Duration::from_secs(8) && fds <= base_fds + 16 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = load.wait_output().expect("flood");
    let opened = String::from_utf8_lossy(&out.stdout).to_string();
    // The allocator gives freed pages back over its decay period (jemalloc: 10 s).
    let settle = std::time::Instant::now();
    let (mut settled_rss, mut settled_fds) = usage(pid);
    while settle.elapsed() < Duration::from_secs(25) && settled_rss >= base_rss + 32 * 1024 {
        std::thread::sleep(Duration::from_millis(500));
        (settled_rss, settled_fds) = usage(pid);
    }
    eprintln!(
        "measured: 4000 connections to a stalled upstream ({}): agent RSS {} → peak {} → settled {} MiB \
         ({} ms after close); fds {base_fds} → peak {peak_fds} → settled {settled_fds}; worst /healthz {} ms \
         (idle {idle:?})",
        opened.trim(),
        base_rss / 1024,
        peak_rss / 1024,
        settled_rss / 1024,
        settle.elapsed().as_millis(),
        worst.as_millis()
    );
    assert!(opened.contains("\"opened\": 4000"), "{opened}");
    assert!(peak_fds >= base_fds + 4000, "the connections really were held: {peak_fds}");
    // Bound: 8,000 sockets (both sides of 4,000 proxied connections) add < 112 MiB — hyper
    // keeps ~8 KiB of read and header buffers per HTTP/1 side. The release agent's
    // absolute peak is under 128 MiB (debug binaries start larger).
    assert!(peak_rss - base_rss < 112 * 1024, "peak RSS {peak_rss} KiB from {base_rss} KiB");
    assert!(settled_fds <= base_fds + 16, "descriptors back to baseline: {settled_fds} vs {base_fds}");
    assert!(settled_rss < base_rss + 32 * 1024, "memory back near baseline: {settled_rss} vs {base_rss} KiB");
    let bound = graylane_tests::Admin::responsive_bound(idle);
    assert!(worst < bound, "/healthz stayed responsive: {worst:?}, idle {idle:?}, over {bound:?}");
}
