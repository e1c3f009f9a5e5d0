//! Observability through real traffic: metric values match the requests sent, a lane
//! escape is counted exactly when a gray request falls back, the text passes `promtool`,
//! and a real Prometheus scrapes the agent and answers PromQL.

use std::{net::Ipv4Addr, time::Duration};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged, wait_for};
use serde_json::Value;

const APP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 20);
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 21);

/// `client` (untagged) → `app` (base + gray) and `other` (base only).
fn mesh(test: &str) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("app-base").label("app", "app")).expect("pod").serve_http(8080).expect("http");
    let gray = PodSpec::new("app-gray").label("app", "app").tag("gray");
    sb.add_pod(gray).expect("pod").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("other-base").label("app", "other"))
        .expect("pod")
        .serve_http(8080)
        .expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    sb.add_service(ServiceSpec::new("other", OTHER).named_port(80, 8080, "http").select("app", "other"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    Some(sb)
}

fn ok(v: &Value) -> u64 {
    v["status"]["200"].as_u64().unwrap_or(0)
}

#[test]
fn metrics_count_every_request_and_every_escape_and_prometheus_scrapes_them() {
    let Some(mut sb) = mesh("metrics") else { return };
    let client = sb.pod("client");
    let gray = ["x-graylane-tag:gray"];
    assert_eq!(ok(&client.http_load(&format!("http://{APP}/"), 30, &gray).expect("gray")), 30);
    assert_eq!(ok(&client.http_load(&format!("http://{APP}/"), 20, &[]).expect("base")), 20);
    assert_eq!(ok(&client.http_load(&format!("http://{OTHER}/"), 10, &gray).expect("escape")), 10);
    // A tag nobody declared is one `other` label, not a new series per value.
    assert_eq!(ok(&client.http_load(&format!("http://{APP}/"), 5, &["x-graylane-tag:zzz-1"]).expect("x")), 5);

    let m = sb.metrics();
    let requests = |labels: &[(&str, &str)]| m.metric("graylane_requests_total", labels).expect("metrics");
    let app = ("destination_service", "default/app");
    assert_eq!(
        requests(&[app, ("source_tag", "gray"), ("destination_subset", "gray"), ("code_class", "2xx")]),
        30.0
    );
    assert_eq!(
        requests(&[app, ("source_tag", ""), ("destination_subset", "base"), ("tag_source", "none")]),
        20.0
    );
    assert_eq!(requests(&[app, ("source_tag", "other")]), 5.0);
    assert_eq!(requests(&[("source_workload", "default/client")]), 65.0);
    let escapes = m
        .metric(
            "graylane_lane_escapes_total",
            &[("source_tag", "gray"), ("destination_service", "default/other")],
        )
        .expect("metrics");
    assert_eq!(escapes, 10.0, "one escape per gray request that fell back");
    let all_escapes = m.metric("graylane_lane_escapes_total", &[]).expect("metrics");
    assert_eq!(all_escapes, 15.0, "and the 5 undeclared-tag requests fell back too");
    let histogram = m
        .metric("graylane_request_duration_seconds_count", &[app, ("destination_subset", "gray")])
        .expect("metrics");
    assert_eq!(histogram, 30.0);
    assert!(m.metric("graylane_kernel_connects_total", &[("reason", "captured")]).expect("metrics") >= 4.0);

    // promtool's linter accepts the exposition.
    let (_, text) = m.get("/metrics").expect("metrics");
    let lint = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin.take().expect("stdin").write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .expect("promtool (install it: cargo xtask setup)");
    assert!(
        lint.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // A real Prometheus in the node netns scrapes :15090 and answers PromQL.
    let dir = sb.scratch().join("prometheus");
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        "global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: graylane\n  static_configs: [{targets: ['127.0.0.1:15090']}]\n",
    )
    .expect("config");
    sb.spawn_node(
        "prometheus",
        &[
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", dir.join("data").display()),
            "--web.listen-address=127.0.0.1:9090",
        ],
    )
    .expect("prometheus (install it: cargo xtask setup)");
    let prom = sb.node_http(9090);
    let query = "/api/v1/query?query=sum(graylane_requests_total%7Bsource_tag%3D%22gray%22%7D)";
    let mut answer = Value::Null;
    let took = wait_for("prometheus to scrape the gray request count", Duration::from_secs(30), || {
        answer = prom.json(query).unwrap_or_default();
        answer["data"]["result"][0]["value"][1] == "40"
    });
    eprintln!("measured: prometheus answered sum(gray requests) = 40 after {} ms", took.as_millis());
}

/// `graylane <args>` in the node netns (where the admin API listens on loopback).
fn cli(sb: &Sandbox, args: &[&str]) -> String {
    let bin = graylane_tests::binary().expect("binary");
    sb.node_exec(bin.to_str().expect("utf-8 path"), args).expect("graylane cli")
}

#[test]
fn the_cli_answers_where_gray_traffic_went_and_why() {
    let Some(sb) = mesh("cli") else { return };
    let client = sb.pod("client");
    client.http_load(&format!("http://{APP}/"), 3, &["x-graylane-tag:gray"]).expect("gray");
    client.http_load(&format!("http://{OTHER}/"), 2, &["x-graylane-tag:gray"]).expect("escape");
    client.http_load(&format!("http://{APP}/"), 1, &[]).expect("base");

    // JSON for scripts: filtered by tag and service.
    let json: Value =
        serde_json::from_str(&cli(&sb, &["flows", "--tag", "gray", "-o", "json"])).expect("json");
    let flows = json.as_array().cloned().unwrap_or_default();
    assert_eq!(flows.len(), 2, "two gray connections: {json:#}");
    let escaped = flows.iter().find(|f| f["service"] == "default/other").expect("the escape");
    assert_eq!(
        (escaped["subset"].as_str(), escaped["reason"].as_str()),
        (Some("base"), Some("fallback_base"))
    );
    let only_app: Value =
        serde_json::from_str(&cli(&sb, &["flows", "--service", "app", "-o", "json"])).expect("json");
    assert_eq!(only_app.as_array().map(Vec::len), Some(2), "{only_app:#}");

    // A table for people: aligned columns, the reason in WHY.
    let table = cli(&sb, &["flows", "--service", "other"]);
    eprintln!("graylane flows --service other:\n{table}");
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID") && lines[0].contains("SUBSET") && lines[0].contains("WHY"), "{table}");
    assert!(
        lines[1].contains("default/client")
            && lines[1].contains("gray")
            && lines[1].contains("fallback_base")
    );
    let subset_col = lines[0].find("SUBSET").expect("column");
    assert_eq!(&lines[1][subset_col..subset_col + 4], "base", "aligned: {table}");

    let routes = cli(&sb, &["routes", "app"]);
    assert!(
        routes.contains("default/app") && routes.contains("gray") && routes.contains("default/app-gray@"),
        "{routes}"
    );
    assert!(!routes.contains("default/other"), "{routes}");
    let tags = cli(&sb, &["tags"]);
    assert!(tags.lines().any(|l| l.contains("default/app-gray") && l.contains("gray")), "{tags}");
    let status: Value = serde_json::from_str(&cli(&sb, &["status", "-o", "json"])).expect("status");
    assert_eq!(status["ready"], true);
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));

    // An agent that is not there: exit code 1 and a one-line cause.
    let bin = graylane_tests::binary().expect("binary");
    let out =
        std::process::Command::new(&bin).args(["flows", "--admin", "127.0.0.1:1"]).output().expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("not reachable at 127.0.0.1:1"), "{err}");
}

#[test]
fn follow_streams_new_flows_and_admin_answers_under_load() {
    use std::io::BufRead as _;
    let Some(sb) = mesh("follow") else { return };
    let bin = graylane_tests::binary().expect("binary");
    let mut cmd = std::process::Command::new("nsenter");
    cmd.arg(format!("--net={}", sb.admin().netns.display()))
        .arg("--")
        .arg(&bin)
        .args(["flows", "--follow", "-o", "json", "--service", "app"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().expect("follow");
    let stdout = child.stdout.take().expect("stdout");
    let _follower = graylane_tests::Spawned::from_child(child, "graylane flows --follow");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    for _ in 0..3 {
        sb.pod("client").http_load(&format!("http://{APP}/"), 1, &[]).expect("load");
    }
    sb.pod("client").http_load(&format!("http://{OTHER}/"), 1, &[]).expect("filtered out");
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(3)) {
        seen.push(serde_json::from_str::<Value>(&line).expect("a JSON line"));
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(seen.len(), 3, "three new flows streamed: {seen:?}");
    assert!(seen.iter().all(|f| f["service"] == "default/app"));

    // The admin API runs on its own thread: it answers while wrk saturates the proxy, in
    // about the time it answers idle.
    let idle = sb.admin().healthz_worst(20, Duration::from_millis(10)).expect("idle healthz");
    let load =
        sb.pod("client").start("wrk", &["-t2", "-c64", "-d3s", &format!("http://{APP}/")]).expect("wrk");
    std::thread::sleep(Duration::from_millis(500));
    let worst = sb.admin().healthz_worst(20, Duration::from_millis(50)).expect("healthz");
    let out = load.wait_output().expect("wrk");
    let wrk = String::from_utf8_lossy(&out.stdout);
    let rps = wrk.lines().find(|l| l.starts_with("Requests/sec")).unwrap_or("?").to_owned();
    eprintln!("measured: /healthz worst of 20 idle {idle:?}, under wrk load ({rps}) {worst:?}");
    let bound = graylane_tests::Admin::responsive_bound(idle);
    assert!(worst < bound, "{worst:?} under load, {idle:?} idle: over {bound:?}");
}

#[test]
fn connects_the_kernel_let_pass_show_in_the_flow_table_with_their_reason() {
    let Some(p) = privileged("kernel_flows") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("optout").annotate("graylane.io/redirect", "false")).expect("pod");
    sb.add_pod(PodSpec::new("app").label("app", "app")).expect("pod").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("app", APP).named_port(80, 8080, "http").select("app", "app"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let app_ip = sb.pod("app").ip;
    // The opted-out pod reaches the app's pod IP directly: the kernel reports why.
    let (code, _) = sb.pod("optout").curl(&format!("http://{app_ip}:8080/")).expect("curl");
    assert_eq!(code, 200);
    let mut flow = Value::Null;
    wait_for("the bypassed flow", Duration::from_secs(5), || {
        let flows = sb.admin().json("/flows?pod=optout").unwrap_or_default();
        flow = flows.as_array().and_then(|a| a.first().cloned()).unwrap_or_default();
        !flow.is_null()
    });
    assert_eq!(flow["outcome"]["bypassed"], "opted_out", "{flow:#}");
    assert_eq!(flow["upstream"], format!("{app_ip}:8080"));
    let table = cli(&sb, &["flows", "--pod", "optout"]);
    assert!(table.contains("bypassed by the kernel: opted_out"), "{table}");
}
