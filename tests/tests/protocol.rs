//! Protocol correctness through real captured connections: a strict HTTP/2 server (python
//! `h2`, header validation on) accepts what graylane sends (`:authority` names the service
//! the caller asked for, no conflicting `host`); gRPC callers get gRPC statuses for local
//! answers (DEADLINE_EXCEEDED, UNAVAILABLE, PERMISSION_DENIED); a tenant reaching another
//! tenant's pod by its IP is refused (HTTP and opaque TCP); local error bodies carry no
//! address.

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged};

const STRICT: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 40);
const GRPC: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 41);
const EMPTY: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 42);

#[test]
fn a_strict_http2_server_accepts_what_graylane_forwards() {
    let Some(p) = privileged("strict_h2") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    let server = sb.add_pod(PodSpec::new("strict").label("app", "strict")).expect("strict");
    let script = graylane_tests::fixture("h2_strict_server.py");
    server.spawn("python3", &[script.to_str().expect("path"), "8080"]).expect("server");
    server.wait_listening(8080).expect("listening");
    sb.add_service(ServiceSpec::new("strict", STRICT).named_port(80, 8080, "h2c").select("app", "strict"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let (ok, out, err) = sb
        .pod("client")
        .run(
            "curl",
            &[
                "-s",
                "-m",
                "5",
                "--http2-prior-knowledge",
                "-w",
                "\n%{http_code}",
                "http://strict.default:80/x",
                "--connect-to",
                &format!("strict.default:80:{STRICT}:80"),
            ],
        )
        .expect("curl");
    eprintln!("measured: strict h2 server answered: {out:?} {err}");
    assert!(ok, "{err}");
    let (body, code) = out.rsplit_once('\n').expect("code");
    assert_eq!(code, "200", "{body}");
    assert_eq!(
        body, "authority=strict.default host=None",
        "the authority the caller asked for, no conflicting host"
    );
}

#[test]
fn grpc_callers_get_grpc_statuses_for_local_answers() {
    let Some(p) = privileged("grpc_status") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("red").tenant("red")).expect("red");
    sb.add_pod(PodSpec::new("echo").label("app", "echo")).expect("echo").serve_grpc(50051).expect("grpc");
    sb.add_pod(PodSpec::new("blue").label("app", "blue").tenant("blue"))
        .expect("blue")
        .serve_grpc(50051)
        .expect("grpc");
    sb.add_service(ServiceSpec::new("echo", GRPC).named_port(80, 50051, "grpc").select("app", "echo"));
    sb.add_service(ServiceSpec::new("empty", EMPTY).named_port(80, 50051, "grpc").select("app", "nothing"));
    sb.add_service(
        ServiceSpec::new("blue", Ipv4Addr::new(10, 96, 0, 43))
            .named_port(80, 50051, "grpc")
            .select("app", "blue"),
    );
    sb.add_document("apiVersion: graylane.io/v1alpha1\nkind: TrafficPolicy\nmetadata: {name: echo}\nspec: {service: echo, timeout: 300ms}");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let call = |pod: &str, target: String, method: &str| {
        let out =
            sb.pod(pod).python_json("grpc_status.py", &[&target, "10", method]).expect("grpc_status.py");
        out[0].clone()
    };
    let deadline = call("client", format!("{GRPC}:80"), "/echo.Echo/Slow");
    let unavailable = call("client", format!("{EMPTY}:80"), "/echo.Echo/Unary");
    let denied = call("red", "10.96.0.43:80".into(), "/echo.Echo/Unary");
    let ok = call("client", format!("{GRPC}:80"), "/echo.Echo/Unary");
    eprintln!(
        "measured: gRPC statuses: route timeout {deadline}, no endpoints {unavailable}, other tenant {denied}, plain {ok}"
    );
    assert_eq!(deadline["code"], "DEADLINE_EXCEEDED", "{deadline}");
    assert!(
        deadline["ms"].as_f64().unwrap_or(1e9) < 2000.0,
        "the route's 300 ms, not the client's 10 s: {deadline}"
    );
    assert_eq!(unavailable["code"], "UNAVAILABLE", "{unavailable}");
    assert!(
        unavailable["details"].as_str().is_some_and(|d| d.contains("default/empty") && !d.contains("10.")),
        "{unavailable}"
    );
    assert_eq!(denied["code"], "PERMISSION_DENIED", "{denied}");
    assert_eq!(ok["code"], "OK", "{ok}");
}

#[test]
fn a_tenant_reaching_another_tenants_pod_by_ip_is_refused_over_http_and_tcp() {
    let Some(p) = privileged("pod_ip_tenants") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("red").tenant("red")).expect("red");
    sb.add_pod(PodSpec::new("blue-client").tenant("blue")).expect("blue client");
    let blue = sb.add_pod(PodSpec::new("blue").label("app", "blue").tenant("blue")).expect("blue");
    blue.serve_http(8080).expect("http");
    blue.serve_echo(&[9000]).expect("tcp echo");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let blue_ip = sb.pod("blue").ip;
    let (code, body) = sb.pod("red").curl(&format!("http://{blue_ip}:8080/")).expect("curl");
    eprintln!("measured: red → blue pod by IP over HTTP: {code} {body:?}");
    assert_eq!(code, 503);
    assert!(body.contains("pod default/blue") && !body.contains(&blue_ip.to_string()), "{body}");
    let (code, _) = sb.pod("blue-client").curl(&format!("http://{blue_ip}:8080/")).expect("curl");
    assert_eq!(code, 200, "the same tenant passes");
    // Opaque TCP: the connection is closed without reaching the pod.
    let probe = format!(
        "import socket\ns=socket.create_connection(('{blue_ip}',9000),timeout=3)\ns.sendall(b'hi\\n')\ntry:\n d=s.recv(64)\nexcept OSError:\n d=b''\nprint('echo' if d else 'closed')"
    );
    let (_, red_tcp, _) = sb.pod("red").run("python3", &["-c", &probe]).expect("probe");
    let (_, blue_tcp, _) = sb.pod("blue-client").run("python3", &["-c", &probe]).expect("probe");
    eprintln!(
        "measured: red → blue pod by IP over TCP: {}; blue → blue: {}",
        red_tcp.trim(),
        blue_tcp.trim()
    );
    assert_eq!(red_tcp.trim(), "closed");
    assert_eq!(blue_tcp.trim(), "echo");
    let denied = sb
        .metrics()
        .metric("graylane_tenant_denied_total", &[("tenant", "red"), ("destination_service", "pod")])
        .expect("metrics");
    assert_eq!(denied, 2.0);
}
