//! The caller's address on the wire: upstream connections leave from the calling pod's own
//! network namespace, so servers see the pod's IP over HTTP/1.1, HTTP/2, gRPC and opaque
//! TCP, on the same node and across nodes, also after a kill -9 and a new agent; a
//! firewall inside the destination pod (the way NetworkPolicy engines enforce policy)
//! rejects a caller's captured connections as it rejects its direct ones; a process in
//! the pod with a namespace of its own is not mistaken for the pod; a pod without a
//! namespace of its own (host network) is served from the node's address, and says so.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, Cluster, PodSpec, Sandbox, ServiceSpec, privileged};
use serde_json::Value;

const WEB: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 60);
const H2: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 61);
const GRPC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 62);
const TCP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 63);

/// The client address the HTTP/1.1 echo server saw, and the status.
fn http1_client(sb: &Sandbox, pod: &str) -> (u16, String) {
    let (code, body) = sb.pod(pod).curl(&format!("http://{WEB}/")).expect("curl");
    let seen: Value = serde_json::from_str(&body).unwrap_or_default();
    (code, seen["client"].as_str().unwrap_or_default().to_owned())
}

/// The peer an HTTP/2 (prior knowledge) server saw, from its `x-peer` header.
fn http2_client(sb: &Sandbox, pod: &str) -> String {
    let url = format!("http://{H2}/");
    let (ok, out, err) = sb
        .pod(pod)
        .run("curl", &["-s", "-m", "5", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", &url])
        .expect("curl");
    assert!(ok, "{err}");
    out.lines()
        .find_map(|l| l.strip_prefix("x-peer: "))
        .map(|v| v.trim().to_owned())
        .unwrap_or_else(|| panic!("no x-peer in {out:?}"))
}

/// The peer a gRPC server saw.
fn grpc_client(sb: &Sandbox, pod: &str) -> String {
    let out = sb
        .pod(pod)
        .python_json("grpc_status.py", &[&format!("{GRPC}:80"), "5", "/echo.Echo/Peer"])
        .expect("grpc");
    assert_eq!(out[0]["code"], "OK", "{out:?}");
    out[0]["details"].as_str().unwrap_or_default().to_owned()
}

/// The peer an opaque TCP echo server saw.
fn tcp_client(sb: &Sandbox, pod: &str) -> String {
    let code = format!(
        "import socket\ns=socket.create_connection(('{TCP}',9000),timeout=5)\ns.sendall(b'hi\\n')\nprint(s.makefile().readline())"
    );
    let (ok, out, err) = sb.pod(pod).run("python3", &["-c", &code]).expect("tcp client");
    assert!(ok, "{err}");
    // "port=9000 peer=10.244.0.2:40000 hi"
    out.split_whitespace()
        .find_map(|w| w.strip_prefix("peer="))
        .and_then(|p| p.rsplit_once(':'))
        .map(|(ip, _)| ip.trim_start_matches("::ffff:").to_owned())
        .unwrap_or_else(|| panic!("no peer in {out:?}"))
}

fn metric(sb: &Sandbox, name: &str, labels: &[(&str, &str)]) -> f64 {
    sb.metrics().metric(name, labels).expect("metrics")
}

#[test]
fn servers_see_the_calling_pods_ip_over_http1_http2_grpc_and_tcp_also_after_a_new_agent() {
    let Some(p) = privileged("source_ip") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    let strict = sb.add_pod(PodSpec::new("strict").label("app", "strict")).expect("strict");
    let script = graylane_tests::fixture("h2_strict_server.py");
    strict.spawn("python3", &[script.to_str().expect("path"), "8080"]).expect("h2 server");
    strict.wait_listening(8080).expect("listening");
    sb.add_pod(PodSpec::new("grpc").label("app", "grpc")).expect("grpc").serve_grpc(50051).expect("grpc");
    sb.add_pod(PodSpec::new("echo").label("app", "echo")).expect("echo").serve_echo(&[9000]).expect("echo");
    sb.add_service(ServiceSpec::new("web", WEB).named_port(80, 8080, "http").select("app", "web"));
    sb.add_service(ServiceSpec::new("strict", H2).named_port(80, 8080, "h2c").select("app", "strict"));
    sb.add_service(ServiceSpec::new("grpc", GRPC).named_port(80, 50051, "grpc").select("app", "grpc"));
    sb.add_service(ServiceSpec::new("echo", TCP).named_port(9000, 9000, "tcp").select("app", "echo"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let client = sb.pod("client").ip.to_string();

    let seen = |sb: &Sandbox| {
        let (code, h1) = http1_client(sb, "client");
        assert_eq!(code, 200);
        [h1, http2_client(sb, "client"), grpc_client(sb, "client"), tcp_client(sb, "client")]
    };
    let first = seen(&sb);
    eprintln!(
        "measured: the servers saw HTTP/1.1 {}, HTTP/2 {}, gRPC {}, TCP {} (client pod {client}, node {})",
        first[0],
        first[1],
        first[2],
        first[3],
        sb.node_ip()
    );
    assert_eq!(first, [client.clone(), client.clone(), client.clone(), client.clone()]);
    let flows = sb.admin().json("/flows?pod=default/client").expect("flows");
    let from: Vec<&str> =
        flows.as_array().into_iter().flatten().filter_map(|f| f["source_ip"].as_str()).collect();
    assert!(!from.is_empty() && from.iter().all(|s| *s == "pod"), "flows say where from: {flows}");
    // HTTP/1.1, HTTP/2 and gRPC through the proxy; the opaque TCP port is routed by the
    // kernel at connect() (the pod dials the endpoint itself).
    assert!(metric(&sb, "graylane_upstream_source_total", &[("source", "pod")]) >= 3.0);
    assert!(metric(&sb, "graylane_upstream_pod_namespaces", &[]) >= 1.0);

    // kill -9 and a new agent: the namespace handles are found again.
    sb.kill_agent().expect("kill");
    sb.start_agent(&AgentOptions::default()).expect("agent again");
    let again = seen(&sb);
    assert_eq!(again, [client.clone(), client.clone(), client.clone(), client]);
}

#[test]
fn a_firewall_inside_the_destination_pod_rejects_the_callers_captured_connections_too() {
    let Some(p) = privileged("source_ip_firewall") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("red")).expect("red");
    sb.add_pod(PodSpec::new("green")).expect("green");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("web", WEB).named_port(80, 8080, "http").select("app", "web"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let red = sb.pod("red").ip.to_string();
    // What a NetworkPolicy engine does: drop the caller's address inside the pod.
    let (ok, _, err) = sb
        .pod("web")
        .run(
            "iptables",
            &[
                "-A",
                "INPUT",
                "-s",
                &red,
                "-p",
                "tcp",
                "--dport",
                "8080",
                "-j",
                "REJECT",
                "--reject-with",
                "tcp-reset",
            ],
        )
        .expect("iptables");
    assert!(ok, "iptables in the pod: {err}");
    // Captured, through the service: refused as well, with graylane's reason.
    let (ok, out, err) = sb
        .pod("red")
        .run("curl", &["-s", "-m", "10", "-D", "-", "-o", "/dev/null", &format!("http://{WEB}/")])
        .expect("curl");
    assert!(ok, "{err}");
    eprintln!("measured: red → web through the service: {}", out.lines().next().unwrap_or_default());
    assert!(out.starts_with("HTTP/1.1 503"), "{out}");
    assert!(out.to_ascii_lowercase().contains("x-graylane-reason: upstream_connect_failure"), "{out}");
    // Other callers pass.
    let (code, seen) = http1_client(&sb, "green");
    assert_eq!((code, seen), (200, sb.pod("green").ip.to_string()));
    // From the node's address (what every captured connection did before), the rule
    // cannot see red, and red gets through: the hole this closes.
    sb.kill_agent().expect("kill");
    sb.start_agent(&AgentOptions {
        args: vec!["--upstream-source".into(), "node".into()],
        ..Default::default()
    })
    .expect("agent from the node");
    let (code, seen) = http1_client(&sb, "red");
    eprintln!("measured: with --upstream-source node, red → web: {code} (seen as {seen})");
    assert_eq!(code, 200);
    assert_ne!(seen, red);
}

#[test]
fn a_host_network_pod_is_served_from_the_node_address_and_says_so() {
    let Some(p) = privileged("source_ip_hostnet") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("hostnet")).expect("hostnet");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("web", WEB).named_port(80, 8080, "http").select("app", "web"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let (ok, body, err) = sb
        .run_on_host_network("hostnet", "curl", &["-s", "-m", "5", &format!("http://{WEB}/")])
        .expect("curl");
    assert!(ok, "{err}");
    let seen: Value = serde_json::from_str(&body).expect("json");
    // The node's address toward pods (the veth gateway): an address of the node, not a pod's.
    let client = seen["client"].as_str().unwrap_or_default().to_owned();
    let node_addrs = sb.node_exec("ip", &["-4", "-o", "addr"]).expect("node addresses");
    eprintln!("measured: the host-network pod's request arrived from {client}");
    assert!(node_addrs.contains(&format!(" {client}/")), "{client} is the node's: {node_addrs}");
    assert_ne!(client, sb.pod("hostnet").ip.to_string());
    let flows = sb.admin().json("/flows?pod=default/hostnet").expect("flows");
    let flow = flows.as_array().and_then(|f| f.first()).cloned().unwrap_or_default();
    assert_eq!(flow["source_ip"], "node", "{flows}");
    assert_eq!(flow["source_fallback"], "host_network", "{flows}");
    assert!(
        metric(&sb, "graylane_upstream_source_total", &[("source", "node"), ("reason", "host_network")])
            >= 1.0
    );
}

#[test]
fn across_nodes_the_server_sees_the_calling_pods_ip() {
    let Some(p) = privileged("source_ip_nodes") else { return };
    let mut cl = Cluster::new(&p).expect("cluster");
    cl.add_pod(0, PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    cl.add_pod(1, PodSpec::new("client")).expect("client");
    cl.add_service(ServiceSpec::new("web", WEB).named_port(80, 8080, "http").select("app", "web"));
    cl.start_agents(&AgentOptions::default()).expect("agents");
    let client = cl.nodes[1].pod("client").ip.to_string();
    let (code, seen) = http1_client(&cl.nodes[1], "client");
    eprintln!("measured: a client pod on node 1 seen by a server on node 0 as {seen} (pod {client})");
    assert_eq!((code, seen), (200, client));
}

#[test]
fn a_process_with_a_network_namespace_of_its_own_does_not_become_the_pods_address() {
    let Some(p) = privileged("source_ip_unshare") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    // First in the pod's cgroup: a process in a namespace of its own (a sandboxed helper,
    // a nested container); the pod's address is not there.
    sb.add_pod(PodSpec::new("client"))
        .expect("client")
        .spawn("unshare", &["-n", "sleep", "60"])
        .expect("unshare");
    sb.add_pod(PodSpec::new("web").label("app", "web")).expect("web").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("web", WEB).named_port(80, 8080, "http").select("app", "web"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let (code, seen) = http1_client(&sb, "client");
    assert_eq!((code, seen), (200, sb.pod("client").ip.to_string()));
}
