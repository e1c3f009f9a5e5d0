//! The first hour, as a new user meets it: a bare proxy address means port 15001; Services
//! are captured without `--service-cidr` (standalone: every cluster IP the inventory names;
//! Kubernetes: the cluster's ServiceCIDR ranges, a Service outside them reported by name);
//! `ip netns exec` (which remounts /sys) gets an error that says so once and how to start
//! instead; `graylane check` passes on the sandbox node and names each broken prerequisite.

use std::{net::Ipv4Addr, process::Command, time::Duration};

use graylane_tests::{AgentOptions, Sandbox, ServiceSpec, binary, privileged, wait_for};

/// Outside the old default range (10.96.0.0/12) the agent used to assume.
const ODD_VIP: Ipv4Addr = Ipv4Addr::new(10, 112, 0, 10);

fn web(test: &str) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::web(&p).expect("sandbox");
    sb.add_service(ServiceSpec::new("odd", ODD_VIP).named_port(80, 8080, "http").select("app", "web"));
    Some(sb)
}

#[test]
fn a_bare_address_and_no_service_cidr_capture_every_service_of_the_inventory() {
    let Some(mut sb) = web("first_hour_standalone") else { return };
    sb.start_agent(&AgentOptions::default())
        .expect("agent with --proxy-addr 10.200.0.1 and no --service-cidr");
    let log = sb.agent_log();
    assert!(log.lines().any(|l| l.contains("proxy listening") && l.contains("10.200.0.1:15001")), "{log}");
    let (code, body) = sb.pod("client").curl(&format!("http://{ODD_VIP}/")).expect("curl");
    assert_eq!(code, 200, "a Service outside 10.96.0.0/12 is captured: {body}");
    let status = sb.admin().json("/status").expect("status");
    assert_eq!(status["uncaptured_services"], serde_json::json!([]));
}

#[test]
fn kubernetes_captures_its_service_cidrs_and_names_a_service_outside_them() {
    let Some(mut sb) = web("first_hour_kube") else { return };
    sb.add_document("apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\nspec: {cidrs: [10.96.0.0/12]}");
    let kubeconfig = sb.start_fake_apiserver(0).expect("fake apiserver");
    sb.start_agent(&AgentOptions { kubeconfig: Some(kubeconfig), ..Default::default() }).expect("agent");
    let admin = sb.admin();
    wait_for("the outside service reported", Duration::from_secs(20), || {
        admin.json("/status").is_ok_and(|s| s["uncaptured_services"] == serde_json::json!(["default/odd"]))
    });
    let log = sb.agent_log();
    assert_eq!(log.matches("default/odd").count(), 1, "reported once: {log}");
    // Inside the range: captured; outside: not (the connect goes its own way).
    assert_eq!(sb.pod("client").curl("http://10.96.0.10/").expect("curl").0, 200);
    assert_eq!(sb.pod("client").curl(&format!("http://{ODD_VIP}/")).expect("curl").0, 0);
}

/// `graylane <args>` run in the node netns the way `ip netns exec` does (it remounts /sys).
fn via_ip_netns_exec(sb: &Sandbox, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", sb.node_netns()])
        .arg(binary().expect("binary"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("ip netns exec");
    (
        out.status.success(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn starting_inside_ip_netns_exec_says_why_it_fails_once_and_how_to_start() {
    let Some(sb) = web("first_hour_netns_exec") else { return };
    sb.write_inventory().expect("inventory");
    let inventory = sb.inventory_path().display().to_string();
    let pins = sb.pin_dir().display().to_string();
    let (ok, text) = via_ip_netns_exec(
        &sb,
        &["agent", "--inventory", &inventory, "--proxy-addr", "10.200.0.1", "--pin-dir", &pins],
    );
    eprintln!("measured: `ip netns exec … graylane agent` said:\n{text}");
    assert!(!ok);
    assert!(text.contains("/sys was remounted (ip netns exec does that)"), "{text}");
    assert!(text.contains("nsenter --net="), "the fix: {text}");
    for line in text.lines() {
        let parts: Vec<&str> = line.split(": ").collect();
        assert!(parts.windows(2).all(|w| w[0] != w[1]), "a cause printed twice: {line}");
    }
}

#[test]
fn graylane_check_passes_on_the_sandbox_node_and_names_what_is_broken() {
    let Some(mut sb) = web("first_hour_check") else { return };
    sb.write_inventory().expect("inventory");
    let inventory = sb.inventory_path().display().to_string();
    let pins = sb.pin_dir().display().to_string();
    let cgroup = sb.cgroup_root().display().to_string();
    let check = |sb: &Sandbox| {
        let out = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", sb.node_netns()))
            .arg("--")
            .arg(binary().expect("binary"))
            .args([
                "check",
                "--inventory",
                &inventory,
                "--proxy-addr",
                "10.200.0.1",
                "--pin-dir",
                &pins,
                "--cgroup-root",
                &cgroup,
            ])
            .output()
            .expect("check");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (ok, text) = check(&sb);
    eprintln!("measured: graylane check on the sandbox node:\n{text}");
    assert!(ok, "{text}");
    for name in [
        "kernel",
        "BTF",
        "cgroup v2",
        "bpffs",
        "capabilities",
        "open files",
        "pin dir",
        "proxy port",
        "inventory",
    ] {
        assert!(text.lines().any(|l| l.contains(name)), "{name}: {text}");
    }
    assert!(!text.contains('✗'), "{text}");

    // Broken: no cgroup v2 mount visible.
    let (ok, text) = via_ip_netns_exec(
        &sb,
        &["check", "--inventory", &inventory, "--proxy-addr", "10.200.0.1", "--pin-dir", &pins],
    );
    eprintln!("measured: graylane check under ip netns exec:\n{text}");
    assert!(!ok);
    assert!(text.lines().any(|l| l.starts_with("✗ cgroup v2") && l.contains("remounted")), "{text}");

    // Broken: the pins are held by another agent (and its ports are taken).
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let pid = sb.agent().expect("agent").pid().expect("pid");
    let (ok, text) = check(&sb);
    eprintln!("measured: graylane check beside a running agent:\n{text}");
    assert!(!ok);
    assert!(text.lines().any(|l| l.starts_with("✗ pin dir") && l.contains(&format!("pid {pid}"))), "{text}");
    assert!(text.lines().any(|l| l.starts_with("✗ proxy port") && l.contains("in use")), "{text}");
}
