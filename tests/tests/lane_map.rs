//! The lane map in a real browser (Debian's chromium, driven by playwright-core from
//! `tests/ui/`): the demo's cluster with its traffic, a tenant pair, the page served by
//! the agent. The page draws app-v2 in the gray lane, the gray escape to search-v1 in red,
//! the stress lane's Redis and MySQL mappings; a click on the escape edge lists its flows
//! with the routing explanation; the tenant filter hides the other tenant; a synthetic map
//! of 1,000 Services and 5,000 workloads is drawn within 2 s. The screenshot the README
//! shows is written here (`docs/lane-map.png`). The Prometheus mode (`graylane ui
//! --prometheus`) is checked against a real Prometheus scraping the agent.

use std::{net::Ipv4Addr, path::Path, time::Duration};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, demo, privileged, wait_for};
use serde_json::Value;

const BILLING: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 80);

/// The tests of this file one at a time: the browser's timing is measured.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn script() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ui/lane_map.mjs").display().to_string()
}

fn browser(sb: &Sandbox, args: &[&str]) -> Value {
    let s = script();
    let mut all = vec![s.as_str()];
    all.extend_from_slice(args);
    let out = sb.node_exec("node", &all).expect("node lane_map.mjs");
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["errors"], serde_json::json!([]), "the page runs clean: {v}");
    v
}

fn get(sb: &Sandbox, pod: &str, url: &str, headers: &[&str]) {
    let mut args = vec![url, "3"];
    args.extend_from_slice(headers);
    sb.pod(pod).python_json("http_load.py", &args).expect("requests");
}

#[test]
fn the_lane_map_shows_lanes_escapes_and_data_mappings_in_a_browser() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = privileged("lane_map") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    let _mysql = demo::build(&mut sb).expect("the demo's cluster");
    for (name, tenant, serves) in [
        ("acme-client", "acme", false),
        ("globex-client", "globex", false),
        ("billing-acme", "acme", true),
        ("billing-globex", "globex", true),
    ] {
        let mut spec = PodSpec::new(name).tenant(tenant);
        if serves {
            spec = spec.label("app", "billing");
        }
        let pod = sb.add_pod(spec).expect("pod");
        if serves {
            pod.serve_http(8080).expect("serve");
        }
    }
    sb.add_service(
        ServiceSpec::new("billing", BILLING).named_port(80, 8080, "http").select("app", "billing"),
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    for store in ["default/redis", "default/mysql"] {
        sb.admin().wait_data_lane(store, "stress", "store-enforced").expect("store-enforced");
    }
    let (app, data, search) = (
        format!("http://{}/", demo::APP),
        format!("http://{}/", demo::DATA),
        format!("http://{}/", demo::SEARCH),
    );
    get(&sb, "client", &app, &["x-graylane-tag:gray"]);
    get(&sb, "client", &app, &[]);
    get(&sb, "app-v2", &data, &[]);
    get(&sb, "app-v2", &search, &[]);
    get(&sb, "acme-client", &format!("http://{BILLING}/"), &[]);
    get(&sb, "globex-client", &format!("http://{BILLING}/"), &[]);
    let (redis, mysql) = (demo::REDIS.to_string(), demo::MYSQL.to_string());
    sb.pod("stress-app")
        .python_json("data_writer.py", &[&redis, &mysql, "stress", "4", "flushall"])
        .expect("stress");
    sb.pod("app-v1").python_json("data_writer.py", &[&redis, &mysql, "prod", "2", "-"]).expect("prod");

    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/lane-map.png");
    let v = browser(&sb, &["demo", "http://127.0.0.1:15000/ui", &shot.display().to_string()]);
    eprintln!("measured: the demo's map drawn in {} ms", v["render_ms"]);
    assert!(
        v["csp"]
            .as_str()
            .is_some_and(|c| c.contains("script-src 'self'") && c.contains("default-src 'none'")),
        "{v}"
    );
    let nodes = v["before"]["nodes"].as_array().cloned().unwrap_or_default();
    let edges = v["before"]["edges"].as_array().cloned().unwrap_or_default();
    let node =
        |id: &str| nodes.iter().find(|n| n["id"] == id).unwrap_or_else(|| panic!("no node {id}: {nodes:?}"));
    let base_colour = node("default/app@base")["colour"].clone();
    assert_ne!(node("default/app@gray")["colour"], base_colour, "the gray version has the lane's colour");
    let escape = edges
        .iter()
        .find(|e| e["source"] == "default/app@gray" && e["target"] == "default/search@base")
        .unwrap_or_else(|| panic!("the gray escape to search-v1: {edges:?}"));
    assert_eq!(
        (&escape["escape"], &escape["colour"]),
        (&serde_json::json!(1), &serde_json::json!("#c62828")),
        "{escape}"
    );
    assert!(escape["label"].as_str().is_some_and(|l| l.contains("fallback_base")), "{escape}");
    for (store, mapping) in [("default/redis@base", "keyPrefix shadow:"), ("default/mysql@base", "*_shadow")]
    {
        let e = edges
            .iter()
            .find(|e| e["source"] == "default/loadgen@stress" && e["target"] == store)
            .unwrap_or_else(|| panic!("the stress lane into {store}: {edges:?}"));
        assert!(e["label"].as_str().is_some_and(|l| l.contains(mapping)), "{store}: {e}");
    }
    let redis_stress = edges
        .iter()
        .find(|e| e["source"] == "default/loadgen@stress" && e["target"] == "default/redis@base")
        .expect("stress → redis");
    assert!(
        redis_stress["label"].as_str().is_some_and(|l| l.contains("refused")),
        "FLUSHALL refused: {redis_stress}"
    );
    let rows = v["clicked"]["rows"].as_array().cloned().unwrap_or_default();
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.as_str().is_some_and(|r| r.contains("fallback_base"))),
        "{v}"
    );
    let acme = v["acme"]["nodes"].as_array().cloned().unwrap_or_default();
    assert!(acme.iter().any(|n| n["tenant"] == "acme"), "{acme:?}");
    assert!(acme.iter().all(|n| n["tenant"] != "globex"), "the tenant filter hides globex: {acme:?}");
    assert!(nodes.iter().any(|n| n["id"] == "default/billing@base%globex"), "each tenant's instances apart");
    let stress = v["stress"]["edges"].as_array().cloned().unwrap_or_default();
    assert!(
        !stress.is_empty() && stress.iter().all(|e| e["source"] == "default/loadgen@stress"),
        "{stress:?}"
    );
    assert!(shot.exists(), "the screenshot");

    // Big: 1,000 Services, 5,000 workloads.
    let big = browser(&sb, &["big", "http://127.0.0.1:15000/ui", "1000", "5000"]);
    eprintln!(
        "measured: 1,000 Services and 5,000 workloads ({} nodes, {} edges) drawn in {} ms ({} ms from navigation; elements added in {} ms)",
        big["nodes"], big["edges"], big["render_ms"], big["wall_ms"], big["add_ms"]
    );
    // Every workload drawn (the Services as the grouping of their places, not as boxes).
    assert!(big["nodes"].as_u64().unwrap_or(0) >= 5000, "{big}");
    assert!(big["render_ms"].as_f64().is_some_and(|ms| ms < 2000.0), "{big}");
}

#[test]
fn graylane_ui_builds_the_cluster_map_from_prometheus() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let Some(p) = privileged("lane_map_prometheus") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    let _mysql = demo::build(&mut sb).expect("the demo's cluster");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let config = sb.scratch().join("prometheus.yml");
    std::fs::write(
        &config,
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n- job_name: graylane\n  static_configs: [{targets: ['127.0.0.1:15090']}]\n",
    )
    .expect("config");
    let data = sb.scratch().join("prometheus-data");
    sb.spawn_node(
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            "--web.listen-address=127.0.0.1:15091",
        ],
    )
    .expect("prometheus");
    let (app, search) = (format!("http://{}/", demo::APP), format!("http://{}/", demo::SEARCH));
    let bin = graylane_tests::binary().expect("binary");
    let bin = bin.display().to_string();
    sb.spawn_node(
        &bin,
        &[
            "ui",
            "--prometheus",
            "http://127.0.0.1:15091",
            "--listen",
            "127.0.0.1:15020",
            "--window",
            "5m",
            "--no-open",
        ],
    )
    .expect("graylane ui");
    let ui = sb.node_addr("127.0.0.1:15020".parse().expect("addr"));
    // Traffic until Prometheus has seen it twice (increase() needs two samples).
    let mut map = Value::Null;
    wait_for("the gray escape in Prometheus", Duration::from_secs(30), || {
        get(&sb, "client", &app, &["x-graylane-tag:gray"]);
        get(&sb, "app-v2", &search, &[]);
        std::thread::sleep(Duration::from_millis(500));
        map = ui.json("/map").unwrap_or(Value::Null);
        map["edges"].as_array().into_iter().flatten().any(|e| e["escapes"].as_u64().unwrap_or(0) > 0)
    });
    eprintln!(
        "measured: the Prometheus map: {} nodes, {} edges",
        map["nodes"].as_array().map_or(0, Vec::len),
        map["edges"].as_array().map_or(0, Vec::len)
    );
    let edges = map["edges"].as_array().cloned().unwrap_or_default();
    let escape = edges.iter().find(|e| e["escapes"].as_u64().unwrap_or(0) > 0).expect("escape");
    assert_eq!(
        (&escape["from"], &escape["to"]),
        (&serde_json::json!("default/app@gray"), &serde_json::json!("default/search@base")),
        "{escape}"
    );
    assert!(escape["reasons"]["no_endpoints"].as_u64().unwrap_or(0) > 0, "{escape}");
    assert!(
        edges.iter().any(|e| e["from"] == "default/client@base"
            && e["to"] == "default/app@gray"
            && e["tag"] == "gray"),
        "the gray lane into app-v2: {edges:?}"
    );
    assert!(map["source"].as_str().is_some_and(|s| s.starts_with("prometheus")), "{map}");
    let (status, page) = ui.get("/ui").expect("page");
    assert!(status == 200 && page.contains("lane map"), "{status}");
}
