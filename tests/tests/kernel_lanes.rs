//! Kernel lanes: connections that need nothing from userspace are routed by the connect
//! hook itself, with real pods, real servers and real clients. A stress pod lands on the
//! stress instance and a base pod on base, a gray pod with no gray instance falls back to
//! base (counted as an escape), a pod of another tenant is refused at connect() with
//! EACCES, the server sees the pod's own address, `getpeername` shows the Service address,
//! every connection is a flow on path `kernel` with its bytes, none of it touches the proxy,
//! it keeps working after kill -9 of the agent, and an endpoint change applies to the next
//! connect (the stress lane, left without instances, is refused: it never falls back).

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, fixture, privileged, wait_for};
use serde_json::{Value, json};

const DB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 70);
const VAULT: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 71);
const DB6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x96, 0, 0, 0, 0, 0, 0x70);

/// `n` connections from `pod` to `vip:port`, as the whoami client reports them.
fn connect(sb: &Sandbox, pod: &str, vip: impl Into<IpAddr>, port: u16, n: usize) -> Value {
    let vip: IpAddr = vip.into();
    let client = fixture("whoami_client.py");
    let (ok, out, err) = sb
        .pod(pod)
        .run(
            "python3",
            &[client.to_str().unwrap_or_default(), &vip.to_string(), &port.to_string(), &n.to_string()],
        )
        .expect("client");
    assert!(ok, "{pod}: {out}{err}");
    let line = out.lines().rev().find(|l| l.starts_with('{')).unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn kernel_flows(sb: &Sandbox, pod: &str) -> Vec<Value> {
    let all = sb.admin().json("/flows?limit=1000").expect("flows");
    let list = all.as_array().cloned().unwrap_or_default();
    list.into_iter().filter(|f| f["path"] == "kernel" && f["src_pod"] == format!("default/{pod}")).collect()
}

#[test]
fn lanes_are_routed_at_connect_without_the_proxy() {
    let Some(p) = privileged("kernel_lanes") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    for (name, tag, tenant) in [
        ("stress-app", Some("stress"), None),
        ("base-app", None, None),
        ("gray-app", Some("gray"), None),
        ("acme-app", None, Some("acme")),
    ] {
        let mut spec = PodSpec::new(name);
        if let Some(t) = tag {
            spec = spec.tag(t);
        }
        if let Some(t) = tenant {
            spec = spec.tenant(t);
        }
        sb.add_pod(spec).expect("client pod");
    }
    sb.add_pod(PodSpec::new("db-v1").label("app", "db")).expect("db").serve_whoami(5432).expect("serve");
    sb.add_pod(PodSpec::new("db-stress").label("app", "db").tag("stress"))
        .expect("db")
        .serve_whoami(5432)
        .expect("serve");
    sb.add_pod(PodSpec::new("vault-globex").label("app", "vault").tenant("globex"))
        .expect("vault")
        .serve_whoami(5433)
        .expect("serve");
    sb.add_service(ServiceSpec::new("db", DB).vip6(DB6).named_port(5432, 5432, "tcp-db").select("app", "db"));
    sb.add_service(
        ServiceSpec::new("vault", VAULT).named_port(5433, 5433, "tcp-vault").select("app", "vault"),
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let status = sb.admin().json("/status").expect("status");
    assert!(status["kernel_lanes"].as_u64().unwrap_or(0) >= 8, "{status}");
    // What the kernel's tables cost, as bpftool reports it.
    let maps: Value =
        serde_json::from_str(&sb.node_exec("bpftool", &["-j", "map", "show"]).expect("bpftool"))
            .expect("bpftool json");
    for name in ["LANE_ROUTES_0", "LANE_ROUTES_1", "KERNEL_CONNS"] {
        let m = maps.as_array().into_iter().flatten().rfind(|m| m["name"] == name);
        eprintln!(
            "measured: {name}: {} B locked, {} entries at most",
            m.map_or(Value::Null, |m| m["bytes_memlock"].clone()),
            m.map_or(Value::Null, |m| m["max_entries"].clone())
        );
    }

    let ip = |pod: &str| sb.pod(pod).ip.to_string();
    let peer = format!("{DB}:5432");
    // The service range is blackholed in the pods: only a rewritten connect gets through.
    let stress = connect(&sb, "stress-app", DB, 5432, 20);
    eprintln!("measured: stress-app → db: {stress}");
    assert_eq!(stress["servers"], json!({"db-stress": 20}), "{}", sb.agent_log());
    assert_eq!(stress["seen_as"], json!([ip("stress-app")]), "the server sees the pod itself");
    assert_eq!(stress["peers"], json!([peer]), "getpeername shows the Service address");
    let base = connect(&sb, "base-app", DB, 5432, 20);
    assert_eq!(base["servers"], json!({"db-v1": 20}), "{base}");
    // IPv6 as IPv4: the lane's endpoint over v6, the v6 Service address as the peer.
    let stress6 = connect(&sb, "stress-app", DB6, 5432, 5);
    assert_eq!(stress6["servers"], json!({"db-stress": 5}), "{stress6}");
    assert_eq!(stress6["seen_as"], json!([sb.pod("stress-app").ip6.to_string()]), "{stress6}");
    assert_eq!(stress6["peers"], json!([format!("[{DB6}]:5432")]), "{stress6}");
    assert_eq!(base["seen_as"], json!([ip("base-app")]));
    let gray = connect(&sb, "gray-app", DB, 5432, 10);
    assert_eq!(gray["servers"], json!({"db-v1": 10}), "gray has no instance: base ({gray})");
    // Tenant isolation at connect(): EACCES, the vault's server never sees the pod.
    for pod in ["acme-app", "base-app"] {
        let refused = connect(&sb, pod, VAULT, 5433, 5);
        assert_eq!(refused["errors"], json!({"13": 5}), "{pod} → vault: {refused}");
    }
    let shared = connect(&sb, "acme-app", DB, 5432, 5);
    assert_eq!(shared["servers"], json!({"db-v1": 5}), "untenanted endpoints are shared: {shared}");

    // Flows: every connection, on path kernel, closed with its bytes.
    wait_for("25 closed stress flows (v4 and v6)", Duration::from_secs(5), || {
        kernel_flows(&sb, "stress-app").iter().filter(|f| f["outcome"] == "closed").count() == 25
    });
    let flows = kernel_flows(&sb, "stress-app");
    let flow = flows.iter().find(|f| f["orig_dst"] == peer).expect("a v4 stress flow");
    assert_eq!(flow["service"], "default/db", "{flow}");
    assert_eq!(flow["upstream"], format!("{}:5432", ip("db-stress")), "{flow}");
    assert_eq!(flow["endpoint_pod"], "default/db-stress", "{flow}");
    assert_eq!((&flow["subset"], &flow["reason"]), (&json!("stress"), &json!("lane")), "{flow}");
    assert_eq!((&flow["lane_tag"], &flow["tag_source"]), (&json!("stress"), &json!("source-pod")), "{flow}");
    // The client sent 11 bytes and read the banner line and its echo back.
    let banner = format!("db-stress {}\n", ip("stress-app")).len() as u64;
    assert_eq!((&flow["bytes_up"], &flow["bytes_down"]), (&json!(11), &json!(banner + 11)), "{flow}");
    let gray_flow = &kernel_flows(&sb, "gray-app")[0];
    assert_eq!(gray_flow["reason"], "fallback_base", "{gray_flow}");
    let refused: Vec<Value> = kernel_flows(&sb, "acme-app")
        .into_iter()
        .filter(|f| f["local_reason"] == "tenant_isolation")
        .collect();
    assert_eq!(refused.len(), 5, "refusals are flows too");
    let all = sb.admin().json("/flows?limit=1000").expect("flows");
    let proxied = all
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["path"] == "proxy" && f["service"].as_str().is_some_and(|s| s.starts_with("default/")))
        .count();
    assert_eq!(proxied, 0, "nothing went through the proxy: {all}");

    // Metrics count them as proxied connections are counted.
    let m = sb.metrics();
    let kernel = m.count("graylane_tcp_connections_total", &[("result", "kernel")]).expect("metric");
    assert_eq!(kernel, 60.0, "20 + 20 + 5 + 10 + 5 connections");
    let denied =
        m.count("graylane_tcp_connections_total", &[("result", "tenant_isolation")]).expect("metric");
    assert_eq!(denied, 10.0);
    let escapes = m
        .count("graylane_lane_escapes_total", &[("source_tag", "gray"), ("reason", "no_endpoints")])
        .expect("metric");
    assert_eq!(escapes, 10.0, "a fallback at connect() is an escape");
    wait_for("bytes sent, counted at close", Duration::from_secs(5), || {
        m.count("graylane_tcp_bytes_total", &[("destination_service", "default/db"), ("direction", "sent")])
            .is_ok_and(|n| n == 60.0 * 11.0)
    });

    // The agent dies: the kernel keeps routing (it needs no proxy).
    sb.kill_agent().expect("kill -9");
    let after = connect(&sb, "stress-app", DB, 5432, 10);
    assert_eq!(after["servers"], json!({"db-stress": 10}), "{after}");
    let after = connect(&sb, "base-app", DB, 5432, 10);
    assert_eq!(after["servers"], json!({"db-v1": 10}), "{after}");

    // An endpoint change: db-stress leaves the stress lane. The next stress connect has no
    // stress instance, and stress never falls back to production: refused.
    sb.start_agent(&AgentOptions::default()).expect("agent again");
    sb.annotate("db-stress", "graylane.io/tag", None).expect("annotate");
    wait_for("stress refused once its instance left", Duration::from_secs(5), || {
        connect(&sb, "stress-app", DB, 5432, 1)["errors"] == json!({"111": 1})
    });
    let base = connect(&sb, "base-app", DB, 5432, 20);
    let servers = base["servers"].as_object().cloned().unwrap_or_default();
    assert_eq!(servers.len(), 2, "db-stress now serves base too: {base}");
}
