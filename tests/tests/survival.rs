//! Surviving the agent: kill -9 under traffic (fail-open, fail-closed), adoption of pinned
//! state by a new agent, layout replacement, record bounds, uninstall.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, privileged};
use serde_json::Value;

/// `(name or hook, id)` of every entry of `/datapath`'s `status.<list>`: never empty, and
/// every entry has both (a missing field fails here rather than comparing as equal).
fn ids(v: &Value, list: &str, key: &str) -> Vec<(String, u64)> {
    let entries = v["status"][list].as_array().unwrap_or_else(|| panic!("no status.{list} in {v}"));
    assert!(!entries.is_empty(), "status.{list} is empty: {v}");
    entries
        .iter()
        .map(|e| {
            let name = e["name"].as_str().or_else(|| e["hook"].as_str());
            let name = name.unwrap_or_else(|| panic!("a {list} entry without name or hook: {e}"));
            let id = e[key].as_u64().unwrap_or_else(|| panic!("a {list} entry without {key}: {e}"));
            (name.to_owned(), id)
        })
        .collect()
}

/// `status.links[].adopted` of `/datapath`: one per hook (6), all equal to `adopted`.
fn assert_links_adopted(v: &Value, adopted: bool) {
    let links = v["status"]["links"].as_array().unwrap_or_else(|| panic!("no status.links in {v}"));
    assert_eq!(links.len(), 6, "one link per hook: {v}");
    assert!(links.iter().all(|l| l["adopted"] == adopted), "every link adopted = {adopted}: {v}");
}

/// One program per hook, exactly, as bpftool sees the cgroup.
fn assert_one_link_per_hook(sb: &Sandbox) {
    let mut attached = sb.attached().expect("bpftool");
    attached.sort();
    let types: Vec<&str> = attached.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "cgroup_inet4_connect",
            "cgroup_inet4_getpeername",
            "cgroup_inet6_connect",
            "cgroup_inet6_getpeername",
            "cgroup_inet_sock_release",
            "cgroup_sock_ops"
        ],
        "{attached:?}"
    );
}

/// Connects from `pod` to the server: "connected" or the Python error's type name.
fn probe(sb: &Sandbox, pod: &str, server: Ipv4Addr) -> String {
    let code = format!(
        "import socket\ntry:\n s=socket.create_connection(('{server}',8080),timeout=3); print('connected')\nexcept OSError as e:\n print(type(e).__name__)"
    );
    sb.pod(pod).run("python3", &["-c", &code]).expect("probe").1.trim().to_owned()
}

#[test]
fn kill_9_fails_open_refuses_fail_closed_pods_and_a_new_agent_adopts_pinned_state() {
    let Some(p) = privileged("kill_9_and_adopt") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client").tag("gray")).expect("client");
    sb.add_pod(PodSpec::new("strict").annotate("graylane.io/fail-mode", "closed")).expect("strict");
    sb.add_pod(PodSpec::new("server").label("app", "web"))
        .expect("server")
        .serve_echo(&[8080])
        .expect("echo");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let before = sb.admin().json("/datapath").expect("datapath");
    assert_one_link_per_hook(&sb);
    let server = sb.pod("server").ip;
    let dest = format!("{server}:8080");

    // Traffic every 20 ms for 3 s; kill -9 the agent 1 s in.
    let script = graylane_tests::fixture("connect_loop.py");
    let looping = sb
        .pod("client")
        .start("python3", &[script.to_str().unwrap_or_default(), &dest, "20", "3"])
        .expect("loop");
    std::thread::sleep(Duration::from_secs(1));
    let killed = Instant::now();
    sb.kill_agent().expect("kill");
    let out = looping.wait_output().expect("loop output");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary");
    eprintln!("measured: kill -9 under traffic: {summary}");
    let errors = summary["errors"].as_object().cloned().unwrap_or_default();
    assert!(!errors.contains_key("ConnectionRefusedError"), "graylane refused a fail-open pod: {summary}");
    // Only connections at the kill may fail: the one in flight, and any that reached the
    // listener while the process was dying (the kernel frees a killed process's memory
    // before its descriptors, and the listener accepts until it is closed) — one window.
    let times: Vec<f64> = summary["failures"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["t_ms"].as_f64()).collect())
        .unwrap_or_default();
    let failed = summary["attempts"].as_u64().unwrap_or(0) - summary["ok"].as_u64().unwrap_or(0);
    assert_eq!(failed as usize, times.len(), "{summary}");
    let spread =
        times.iter().copied().fold(f64::NAN, f64::max) - times.iter().copied().fold(f64::NAN, f64::min);
    assert!(
        times.is_empty() || spread <= 100.0,
        "only connections at the kill may fail (within 100 ms of each other): {summary}"
    );
    assert!(summary["ok"].as_u64().unwrap_or(0) > 100, "{summary}");

    // Fail-closed pod: refused while no proxy listens; fail-open pod: direct.
    assert_eq!(probe(&sb, "strict", server), "PermissionError");
    assert_eq!(probe(&sb, "client", server), "connected");
    let gap = killed.elapsed();

    // A new agent adopts: same maps, same links, one link per hook, capture resumes.
    let adopt = sb.start_agent(&AgentOptions::default()).expect("new agent");
    let after = sb.admin().json("/datapath").expect("datapath");
    eprintln!(
        "measured: new agent ready (adopting pinned state) in {} ms; install {} us",
        adopt.as_millis(),
        after["status"]["install_us"]
    );
    assert_eq!(ids(&before, "maps", "id"), ids(&after, "maps", "id"), "map ids changed");
    assert_eq!(ids(&before, "links", "link_id"), ids(&after, "links", "link_id"), "link ids changed");
    assert_links_adopted(&after, true);
    assert!(after["counters"]["fail_open"].as_u64().unwrap_or(0) >= 1);
    assert!(after["counters"]["fail_closed"].as_u64().unwrap_or(0) >= 1);
    assert_one_link_per_hook(&sb);
    assert_eq!(probe(&sb, "strict", server), "connected");
    let (code, _) = sb.pod("client").curl(&format!("http://{dest}/")).expect("curl");
    assert_eq!(code, 200);
    let flows = sb.admin().json("/flows").expect("flows");
    assert!(
        flows
            .as_array()
            .expect("flows")
            .iter()
            .any(|f| f["src_pod"] == "default/client" && f["tag"] == "gray"),
        "{flows}"
    );
    eprintln!("measured: kill → checks done {} ms", gap.as_millis());
}

/// A sandbox with a `client` pod, an echo `server` pod on 8080, and `more` pods.
fn client_and_server(test: &str, more: &[PodSpec]) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    for spec in more {
        sb.add_pod(spec.clone()).expect("pod");
    }
    sb.add_pod(PodSpec::new("server")).expect("server").serve_echo(&[8080]).expect("echo");
    Some(sb)
}

#[test]
fn a_pinned_map_with_another_layout_is_replaced_not_reused() {
    let Some(mut sb) = client_and_server("layout_replaced", &[]) else {
        return;
    };
    sb.start_agent(&AgentOptions::default()).expect("agent");
    sb.kill_agent().expect("kill");
    // An "older version" left RECORDS with a smaller value.
    let pin = sb.pin_dir().join("maps/RECORDS");
    std::fs::remove_file(&pin).expect("unpin");
    let status = std::process::Command::new("bpftool")
        .args(["map", "create"])
        .arg(&pin)
        .args(["type", "hash", "key", "40", "value", "16", "entries", "64", "name", "RECORDS"])
        .status()
        .expect("bpftool");
    assert!(status.success());
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let dp = sb.admin().json("/datapath").expect("datapath");
    assert_eq!(dp["status"]["replaced_maps"], serde_json::json!(["RECORDS"]), "{dp}");
    // Programs that used the old map are replaced.
    assert_links_adopted(&dp, false);
    assert_one_link_per_hook(&sb);
    let server = sb.pod("server").ip;
    assert_eq!(sb.pod("client").curl(&format!("http://{server}:8080/")).expect("curl").0, 200);
    assert_eq!(sb.admin().counter("captured").expect("captured"), 1);
}

#[test]
fn records_return_to_zero_after_100k_connections() {
    let Some(mut sb) = client_and_server("records_bounded", &[]) else {
        return;
    };
    let opts = AgentOptions { log: Some("warn".into()), ..Default::default() };
    sb.start_agent(&opts).expect("agent");
    let server = sb.pod("server").ip;
    let total: u64 = 100_000;
    let out = sb
        .pod("client")
        .python_json("many_connections.py", &[&format!("{server}:8080"), &total.to_string(), "8", "600"])
        .expect("many connections");
    eprintln!("measured: {}", out[0]);
    assert_eq!(out[0]["ok"].as_u64(), Some(total), "{}", out[0]);
    let admin = sb.admin();
    let start = Instant::now();
    loop {
        let dp = admin.json("/datapath").expect("datapath");
        if dp["records"] == 0 && dp["pending"] == 0 && dp["record_count"] == 0 {
            eprintln!(
                "measured: records and pending back to 0 in {} ms; counters {}",
                start.elapsed().as_millis(),
                dp["counters"]
            );
            assert_eq!(dp["counters"]["record_stored"], dp["counters"]["record_deleted"]);
            assert_eq!(dp["counters"]["captured"].as_u64(), Some(total));
            assert_eq!(dp["refused_without_record"], 0);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "left: records {} pending {}; {}",
            dp["records"],
            dp["pending"],
            dp["counters"]
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn uninstall_leaves_no_pins_and_no_links() {
    let Some(p) = privileged("uninstall") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client").remote(Ipv4Addr::new(10, 244, 9, 9))).expect("pod");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    assert_one_link_per_hook(&sb);
    sb.kill_agent().expect("kill");
    assert_one_link_per_hook(&sb);
    let log = sb.uninstall().expect("uninstall");
    assert!(!sb.pin_dir().exists(), "pins left: {log}");
    // Links are released once no fd holds them; give the kernel a moment.
    let start = Instant::now();
    while !sb.attached().expect("bpftool").is_empty() {
        assert!(start.elapsed() < Duration::from_secs(2), "still attached: {:?}", sb.attached());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_record_table_fails_open_instead_of_refusing() {
    let strict = PodSpec::new("strict").annotate("graylane.io/fail-mode", "closed");
    let Some(mut sb) = client_and_server("record_table_full", &[strict]) else {
        return;
    };
    let opts = AgentOptions { args: vec!["--max-connections".into(), "4".into()], ..Default::default() };
    sb.start_agent(&opts).expect("agent");
    let server = sb.pod("server").ip;
    let admin = sb.admin();

    // Fill the table: four proxied connections held open.
    let hold = format!(
        "import socket,time\nss=[socket.create_connection(('{server}',8080),timeout=5) for _ in range(4)]\n\
         for s in ss:\n s.sendall(b'hi\\n'); s.makefile().readline()\nprint('held',flush=True)\ntime.sleep(4)"
    );
    let holder = sb.pod("client").start("python3", &["-c", &hold]).expect("holder");
    let start = Instant::now();
    while admin.json("/datapath").expect("datapath")["record_count"] != 4 {
        assert!(start.elapsed() < Duration::from_secs(5), "table never filled");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Full: the next connect goes direct (fail-open), a fail-closed pod is refused.
    assert_eq!(probe(&sb, "client", server), "connected");
    assert_eq!(probe(&sb, "strict", server), "PermissionError");
    let dp = admin.json("/datapath").expect("datapath");
    assert!(dp["counters"]["records_at_capacity"].as_u64().unwrap_or(0) >= 2, "{dp}");
    assert_eq!(dp["counters"]["captured"], 4, "{dp}");
    assert_eq!(dp["refused_without_record"], 0, "{dp}");
    assert_eq!(dp["counters"]["record_map_full"], 0, "{dp}");

    // Room again once they close: capture resumes.
    let out = holder.wait_output().expect("holder");
    assert!(String::from_utf8_lossy(&out.stdout).contains("held"));
    let start = Instant::now();
    while admin.json("/datapath").expect("datapath")["record_count"] != 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "records not released");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(probe(&sb, "client", server), "connected");
    assert_eq!(admin.counter("captured").expect("captured"), 5);
}

#[test]
fn a_takeover_by_a_new_agent_loses_no_request() {
    let Some(p) = privileged("hitless_restart") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    let vip = Ipv4Addr::new(10, 96, 0, 10);
    sb.add_service(
        graylane_tests::ServiceSpec::new("web", vip).named_port(80, 8080, "http").select("app", "web"),
    );
    // The slow request goes through its own service, so its endpoint counts only it.
    let slow_vip = Ipv4Addr::new(10, 96, 0, 11);
    sb.add_service(
        graylane_tests::ServiceSpec::new("slow", slow_vip).named_port(80, 8080, "http").select("app", "web"),
    );
    let opts =
        AgentOptions { args: vec!["--drain-timeout-ms".into(), "5000".into()], ..AgentOptions::default() };
    sb.start_agent(&opts).expect("agent");
    let old_pid = sb.agent().expect("agent").pid();

    // A request every 50 ms for 4 s, each on a new connection, no retries; and a slow
    // request in flight when the old agent gets SIGTERM.
    let looping = graylane_tests::fixture("http_loop.py");
    let traffic = sb
        .pod("client")
        .start("python3", &[looping.to_str().unwrap_or_default(), &format!("http://{vip}/"), "50", "4"])
        .expect("loop");
    let concurrent = graylane_tests::fixture("http_concurrent.py");
    std::thread::sleep(Duration::from_millis(1000));
    let slow = sb
        .pod("client")
        .start(
            "python3",
            &[concurrent.to_str().unwrap_or_default(), &format!("http://{slow_vip}/sleep/1500"), "1"],
        )
        .expect("slow");
    // The slow request is in flight on the old agent (its endpoint counts it).
    let admin = sb.admin();
    graylane_tests::wait_for("the slow request in flight", Duration::from_secs(5), || {
        admin.json("/routes?service=slow").is_ok_and(|r| r.to_string().contains("\"in_flight\":1"))
    });
    let (listening, drained) = sb.replace_agent(&opts).expect("restart");
    let out = traffic.wait_output().expect("loop output");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("summary");
    let slow_out = slow.wait_output().expect("slow output");
    let slow_result: Value = serde_json::from_slice(&slow_out.stdout).expect("slow result");
    eprintln!(
        "measured: SIGTERM restart under traffic: {summary}; new agent listening after {} ms, old drained in {} ms; \
         in-flight slow request: {}",
        listening.as_millis(),
        drained.as_millis(),
        slow_result[0]
    );
    assert_ne!(sb.agent().expect("agent").pid(), old_pid);
    assert_eq!(summary["ok"], summary["attempts"], "success rate 1.0: {summary}");
    assert!(summary["attempts"].as_u64().unwrap_or(0) >= 60, "{summary}");
    assert_eq!(slow_result[0]["status"], 200, "the in-flight request finished: {slow_result}");
    assert!(drained >= Duration::from_millis(900), "the old agent waited for it: {drained:?}");
    assert_one_link_per_hook(&sb);
}
