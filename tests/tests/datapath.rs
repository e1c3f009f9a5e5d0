//! The datapath on the real kernel: capture, exact original destinations, identity by
//! cgroup, kernel tag maps, no loops, fail-open across kill -9, adoption, bounded records,
//! layout replacement and uninstall. Every test builds its own sandbox.

use std::{collections::HashMap, net::Ipv4Addr, time::Duration};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, privileged, wait_for};
use serde_json::Value;

const WEB_VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

fn flows(sb: &Sandbox) -> Vec<Value> {
    sb.admin().json("/flows").expect("flows").as_array().cloned().unwrap_or_default()
}

/// client (gray) and opted-out pods, a web server behind a service.
fn web_sandbox(extra_args: &[&str]) -> Option<Sandbox> {
    let p = privileged("datapath")?;
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client").tag("gray").tenant("acme")).expect("client");
    sb.add_pod(PodSpec::new("optout").annotate("graylane.io/redirect", "false")).expect("optout");
    sb.add_pod(PodSpec::new("server").label("app", "web"))
        .expect("server")
        .serve_echo(&[8080, 9999])
        .expect("echo");
    sb.add_service(ServiceSpec::new("web", WEB_VIP).port(80, 8080).select("app", "web"));
    let opts =
        AgentOptions { args: extra_args.iter().map(|s| (*s).to_owned()).collect(), ..Default::default() };
    sb.start_agent(&opts).expect("agent");
    Some(sb)
}

#[test]
fn captures_service_and_pod_destinations_but_not_excluded_ports_or_opted_out_pods() {
    let Some(sb) = web_sandbox(&["--exclude-port", "9999"]) else {
        return;
    };
    let server_ip = sb.pod("server").ip;
    let client = sb.pod("client");

    // A service VIP is blackholed in the pod: only the redirect can reach it.
    let (code, body) = client.curl(&format!("http://{WEB_VIP}/")).expect("curl");
    assert_eq!((code, body.trim()), (200, "port=8080"), "{}", sb.agent_log());
    // A pod IP destination is captured too.
    let (code, _) = client.curl(&format!("http://{server_ip}:8080/")).expect("curl");
    assert_eq!(code, 200);
    // IPv4 through an IPv6 socket (::ffff:a.b.c.d), as Java apps do.
    let v6 = client
        .python_json("concurrent_client.py", &["1", &format!("::ffff:{WEB_VIP}:80")])
        .expect("v6 client");
    assert!(v6[0]["reply"].as_str().unwrap_or("").starts_with("port=8080"), "{v6:?}");

    let all = flows(&sb);
    let from_client: Vec<&Value> = all.iter().filter(|f| f["src_pod"] == "default/client").collect();
    assert_eq!(from_client.len(), 3, "{all:#?}");
    for f in &from_client {
        assert_eq!(f["tag"], "gray");
        assert_eq!(f["tenant"], "acme");
    }
    assert!(
        from_client.iter().any(|f| f["orig_dst"] == format!("{WEB_VIP}:80") && f["service"] == "default/web")
    );
    assert!(from_client.iter().any(|f| f["orig_dst"] == format!("{server_ip}:8080")));

    // Excluded port: reaches the server directly, not through the proxy; counted, and
    // reported by the kernel as a bypassed flow.
    let (code, _) = client.curl(&format!("http://{server_ip}:9999/")).expect("curl");
    assert_eq!(code, 200);
    // Opted-out pod: pod IPs go direct; a service VIP fails inside the pod (not captured).
    let optout = sb.pod("optout");
    assert_eq!(optout.curl(&format!("http://{server_ip}:8080/")).expect("curl").0, 200);
    assert_eq!(optout.curl(&format!("http://{WEB_VIP}/")).expect("curl").0, 0);
    // Kernel events arrive asynchronously (a ring buffer read by the agent).
    graylane_tests::wait_for("the bypassed flows", std::time::Duration::from_secs(3), || {
        flows(&sb).iter().filter(|f| f["outcome"].get("bypassed").is_some()).count() >= 3
    });
    let all = flows(&sb);
    let (bypassed, proxied): (Vec<&Value>, Vec<&Value>) =
        all.iter().partition(|f| f["outcome"].get("bypassed").is_some());
    assert!(proxied.iter().all(|f| !f["orig_dst"].as_str().unwrap_or("").ends_with(":9999")), "{all:#?}");
    assert!(proxied.iter().all(|f| f["src_pod"] != "default/optout"), "{all:#?}");
    let reason = |pod: &str, port: &str| {
        bypassed
            .iter()
            .find(|f| f["src_pod"] == pod && f["orig_dst"].as_str().is_some_and(|d| d.ends_with(port)))
            .map(|f| f["outcome"]["bypassed"].clone())
    };
    assert_eq!(reason("default/client", ":9999"), Some(Value::from("excluded_port")), "{all:#?}");
    assert_eq!(reason("default/optout", ":8080"), Some(Value::from("opted_out")), "{all:#?}");
    let admin = sb.admin();
    assert!(admin.counter("excluded_port").expect("counter") >= 1);
    assert!(admin.counter("opted_out").expect("counter") >= 2);
    assert_eq!(admin.counter("captured").expect("counter"), 3);
}

#[test]
fn exact_original_destination_and_source_pod_for_200_concurrent_connections_from_4_pods() {
    let Some(p) = privileged("exact_original_destination") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    for i in 0..4 {
        sb.add_pod(PodSpec::new(&format!("c{i}")).tag(&format!("t{i}"))).expect("client");
    }
    sb.add_pod(PodSpec::new("server").label("app", "echo"))
        .expect("server")
        .serve_echo(&[8001, 8002, 8003, 8004, 8005])
        .expect("echo");
    let (vip_a, vip_b) = (Ipv4Addr::new(10, 96, 0, 20), Ipv4Addr::new(10, 96, 0, 21));
    sb.add_service(ServiceSpec::new("svc-a", vip_a).port(80, 8001).select("app", "echo"));
    sb.add_service(ServiceSpec::new("svc-b", vip_b).port(81, 8002).select("app", "echo"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let server = sb.pod("server").ip;
    let dests = [
        format!("{vip_a}:80"),
        format!("{vip_b}:81"),
        format!("{server}:8003"),
        format!("{server}:8004"),
        format!("{server}:8005"),
    ];
    let expected_port: HashMap<&str, &str> = [
        (dests[0].as_str(), "8001"),
        (dests[1].as_str(), "8002"),
        (dests[2].as_str(), "8003"),
        (dests[3].as_str(), "8004"),
        (dests[4].as_str(), "8005"),
    ]
    .into();

    // Four pods at once, 50 connections each, all open at the same time.
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let mut args = vec!["50".to_owned()];
            args.extend(dests.iter().cloned());
            let script = graylane_tests::fixture("concurrent_client.py");
            let mut all = vec![script.display().to_string()];
            all.extend(args);
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            (i, sb.pod(&format!("c{i}")).start("python3", &refs).expect("start client"))
        })
        .collect();
    let mut conns = Vec::new();
    for (i, run) in runs {
        let out = run.wait_output().expect("client output");
        assert!(out.status.success(), "c{i}: {}", String::from_utf8_lossy(&out.stderr));
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: Value = serde_json::from_str(line).expect("json");
            conns.push((i, v));
        }
    }
    assert_eq!(conns.len(), 200);

    let by_client: HashMap<String, Value> =
        flows(&sb).into_iter().map(|f| (f["client"].as_str().unwrap_or("").to_owned(), f)).collect();
    for (i, c) in &conns {
        let dest = c["dest"].as_str().expect("dest");
        let reply = c["reply"].as_str().unwrap_or_else(|| panic!("c{i} {dest}: {c}"));
        assert!(
            reply.starts_with(&format!("port={} ", expected_port[dest])),
            "c{i} → {dest} reached {reply}"
        );
        let local = c["local"].as_str().expect("local");
        let flow = by_client.get(local).unwrap_or_else(|| panic!("no flow for {local}"));
        assert_eq!(flow["orig_dst"], dest, "{flow}");
        assert_eq!(flow["src_pod"], format!("default/c{i}"), "{flow}");
        assert_eq!(flow["tag"], format!("t{i}"), "{flow}");
    }
    eprintln!("measured: 200/200 concurrent connections with exact original destination and source pod");
}

#[test]
fn a_pod_using_another_pods_ip_as_source_keeps_its_own_identity() {
    let Some(p) = privileged("spoofed_source") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    let victim_ip = Ipv4Addr::new(10, 244, 1, 99);
    sb.add_pod(PodSpec::new("mallory")).expect("mallory");
    sb.add_pod(PodSpec::new("victim").tag("gray").tenant("bank").remote(victim_ip)).expect("victim");
    sb.add_pod(PodSpec::new("server").label("app", "web"))
        .expect("server")
        .serve_echo(&[8080])
        .expect("echo");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    // Mallory takes the victim's address; the network delivers it to mallory.
    sb.pod("mallory").ip(&["addr", "add", &format!("{victim_ip}/32"), "dev", "eth0"]).expect("addr");
    sb.route_to_pod(victim_ip, "mallory").expect("route");

    let server = sb.pod("server").ip;
    let code = format!(
        "import socket; s=socket.socket(); s.bind(('{victim_ip}',0)); s.settimeout(5); s.connect(('{server}',8080)); \
         s.sendall(b'hi\\n'); print(s.makefile().readline().strip())"
    );
    let (ok, out, err) = sb.pod("mallory").run("python3", &["-c", &code]).expect("run");
    assert!(ok && out.starts_with("port=8080"), "{out} {err}\n{}", sb.agent_log());
    let all = flows(&sb);
    let spoofed: Vec<&Value> = all
        .iter()
        .filter(|f| f["client"].as_str().unwrap_or("").starts_with(&format!("{victim_ip}:")))
        .collect();
    assert_eq!(spoofed.len(), 1, "{all:#?}");
    assert_eq!(spoofed[0]["src_pod"], "default/mallory");
    assert_eq!(spoofed[0]["tag"], Value::Null, "the victim's gray tag must not be inherited");
    assert_eq!(spoofed[0]["tenant"], Value::Null, "the victim's tenant must not be inherited");
}

#[test]
fn tags_reach_the_kernel_and_follow_an_annotation_change_within_100ms() {
    let Some(p) = privileged("tags_follow_annotations") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("app").tag("v1")).expect("app");
    sb.add_pod(PodSpec::new("server").label("app", "web"))
        .expect("server")
        .serve_echo(&[8080])
        .expect("echo");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let admin = sb.admin();
    let app_ip = sb.pod("app").ip.to_string();
    let kernel_tag = |by_cgroup: bool| -> Option<String> {
        let tags = admin.json("/tags").ok()?;
        tags.as_array()?
            .iter()
            .find(|t| {
                t["pod"] == "default/app"
                    && (t["cgroup_id"].is_u64() == by_cgroup)
                    && (by_cgroup || t["ip"] == app_ip.as_str())
            })
            .map(|t| t["tag"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(kernel_tag(true).as_deref(), Some("v1"));
    assert_eq!(kernel_tag(false).as_deref(), Some("v1"));

    let mut worst = Duration::ZERO;
    for next in ["v2", "canary", "v3"] {
        sb.annotate("app", "graylane.io/tag", Some(next)).expect("annotate");
        let took = wait_for("tag change in the kernel", Duration::from_secs(2), || {
            kernel_tag(true).as_deref() == Some(next) && kernel_tag(false).as_deref() == Some(next)
        });
        worst = worst.max(took);
    }
    eprintln!("measured: annotation change → kernel map, worst of 3: {} ms", worst.as_millis());
    assert!(worst <= Duration::from_millis(100), "took {worst:?}");

    // New connections carry the new tag.
    let server = sb.pod("server").ip;
    assert_eq!(sb.pod("app").curl(&format!("http://{server}:8080/")).expect("curl").0, 200);
    let last = flows(&sb).into_iter().last().expect("a flow");
    assert_eq!(last["tag"], "v3");
}

#[test]
fn the_proxys_own_upstream_connections_are_never_captured_even_inside_a_managed_cgroup() {
    let Some(p) = privileged("no_loop") else {
        return;
    };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("server").label("app", "web"))
        .expect("server")
        .serve_echo(&[8080])
        .expect("echo");
    // The agent itself runs as a managed pod, under the captured cgroup root.
    sb.add_pod(PodSpec::new("graylane-agent").tag("gray")).expect("agent pod");
    sb.add_service(ServiceSpec::new("web", WEB_VIP).port(80, 8080).select("app", "web"));
    let opts = AgentOptions { cgroup: Some(sb.pod_cgroup("graylane-agent")), ..Default::default() };
    sb.start_agent(&opts).expect("agent");
    for _ in 0..5 {
        let (code, _) = sb.pod("client").curl(&format!("http://{WEB_VIP}/")).expect("curl");
        assert_eq!(code, 200, "{}", sb.agent_log());
    }
    let admin = sb.admin();
    assert_eq!(admin.counter("captured").expect("captured"), 5, "only the client's connects");
    assert_eq!(admin.counter("proxy_own").expect("proxy_own"), 5, "each upstream connect bypassed by mark");
    assert_eq!(flows(&sb).len(), 5, "no flow of the proxy to itself");
}

#[test]
fn native_ipv6_destinations_are_captured_through_the_ipv6_proxy() {
    let Some(p) = privileged("ipv6") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client").tag("gray")).expect("client");
    sb.add_pod(PodSpec::new("server").label("app", "web"))
        .expect("server")
        .serve_echo(&[8080])
        .expect("echo");
    let vip6: std::net::Ipv6Addr = "fd00:96::10".parse().expect("vip6");
    sb.add_service(ServiceSpec::new("web", WEB_VIP).vip6(vip6).port(80, 8080).select("app", "web"));
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let server6 = sb.pod("server").ip6;
    let client = sb.pod("client");
    // The v6 VIP is blackholed in the pod: only the redirect reaches it.
    let (code, body) = client.curl(&format!("http://[{vip6}]/")).expect("curl");
    assert_eq!((code, body.trim()), (200, "port=8080"), "{}", sb.agent_log());
    let (code, _) = client.curl(&format!("http://[{server6}]:8080/")).expect("curl");
    assert_eq!(code, 200);
    let all = flows(&sb);
    let v6: Vec<&Value> =
        all.iter().filter(|f| f["orig_dst"].as_str().unwrap_or("").starts_with('[')).collect();
    assert_eq!(v6.len(), 2, "{all:#?}");
    for f in &v6 {
        assert_eq!(f["src_pod"], "default/client");
        assert_eq!(f["tag"], "gray");
        assert!(f["upstream"].as_str().unwrap_or("").starts_with(&format!("[{server6}]")), "{f}");
    }
    assert_eq!(flows(&sb).iter().filter(|f| f["orig_dst"] == format!("[{vip6}]:80")).count(), 1);
}
