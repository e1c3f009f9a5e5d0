//! Inventories that would hand one pod's identity to another, or capture the node itself,
//! are rejected naming both documents, and the last good state keeps serving: a cgroup
//! that is the root, nested in another pod's, or taken from another namespace's pod; a
//! pod IP that is loopback, the node's, or another pod's. A deeply nested document is
//! refused before parsing. An atomically replaced file is read once, not forever.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use graylane_tests::{AgentOptions, Sandbox, cpu_seconds, privileged, wait_for};

const WEB: Ipv4Addr = graylane_tests::WEB_VIP;

fn sandbox(test: &str) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::web(&p).expect("sandbox");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    Some(sb)
}

fn rejected(sb: &Sandbox) -> f64 {
    sb.metrics().count("graylane_inventory_reloads_total", &[("result", "rejected")]).expect("metrics")
}

/// A pod document in namespace `evil`.
fn evil_pod(ip: &str, cgroup: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  namespace: evil\n  annotations:\n    graylane.io/cgroup: {cgroup:?}\n    graylane.io/tenant: red\nstatus:\n  podIP: {ip}"
    )
}

#[test]
fn identity_stealing_and_node_capturing_inventories_are_rejected_and_the_last_good_state_serves() {
    let Some(mut sb) = sandbox("inventory_sanity") else { return };
    let web = sb.pod("web").ip.to_string();
    let web_cgroup = sb.pod("web").cgroup_rel.clone().expect("cgroup");
    let tags_before = sb.admin().json("/tags").expect("tags");
    let node = sb.node_ip().to_string();
    let cases = [
        (evil_pod("10.244.9.9", "/"), "is the cgroup root itself".to_owned()),
        (evil_pod("10.244.9.9", &format!("{web_cgroup}/inner")), format!("is inside cgroup {web_cgroup}")),
        (evil_pod("10.244.9.9", &web_cgroup), format!("cgroup {web_cgroup} belongs to both")),
        (evil_pod("127.0.0.1", "pod-x"), "127.0.0.1 is a loopback address".to_owned()),
        (evil_pod(&node, "pod-x"), format!("pod IP {node} is an address of this node")),
        (evil_pod(&web, "pod-x"), format!("pod IP {web} belongs to both")),
        (
            format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: deep\n  labels: {}", "[".repeat(80_000)),
            "nested deeper than 64".to_owned(),
        ),
    ];
    for (i, (doc, want)) in cases.iter().enumerate() {
        let before = rejected(&sb);
        sb.add_document(doc);
        let started = Instant::now();
        sb.write_inventory().expect("write");
        wait_for(want, Duration::from_secs(5), || rejected(&sb) > before);
        let log = sb.agent_log();
        let line =
            log.lines().rfind(|l| l.contains("inventory reload rejected")).unwrap_or_default().to_owned();
        eprintln!("measured: case {i} rejected in {} ms: {line}", started.elapsed().as_millis());
        assert!(line.contains(want.as_str()), "case {i}: want {want:?} in {line}");
        if want.contains("both") || want.contains("inside") {
            assert!(line.contains("pod evil/x") && line.contains("pod default/web"), "both named: {line}");
        }
        // The last good state: same kernel maps, same routing.
        assert_eq!(sb.admin().json("/tags").expect("tags"), tags_before, "case {i}");
        let (code, _) = sb.pod("client").curl(&format!("http://{WEB}/")).expect("curl");
        assert_eq!(code, 200, "case {i}");
        sb.pop_document();
    }
    // A good change right after the deep document applies at once.
    let started = Instant::now();
    sb.annotate("client", "graylane.io/tag", Some("gray")).expect("annotate");
    wait_for("the good change", Duration::from_secs(5), || {
        sb.admin().json("/tags").is_ok_and(|t| t.to_string().contains("\"gray\""))
    });
    eprintln!(
        "measured: good change after a rejected deep document applied in {} ms",
        started.elapsed().as_millis()
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_atomically_replaced_inventory_is_read_once_and_a_bad_one_reported_once() {
    let Some(mut sb) = sandbox("watcher_idle") else { return };
    let pid = sb.agent().expect("agent").pid().expect("pid");
    sb.annotate("client", "graylane.io/tag", Some("gray")).expect("write + rename");
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_seconds(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle = (cpu_seconds(pid) - cpu) / 10.0;
    let reloads = sb.agent_log().matches("inventory reloaded").count();
    eprintln!(
        "measured: agent CPU over 10 s after an atomic replace: {:.2} % of a core; reloads logged: {reloads}",
        idle * 100.0
    );
    assert!(idle < 0.01, "{:.2} % of a core", idle * 100.0);
    assert_eq!(reloads, 1);

    sb.add_document(&evil_pod("127.0.0.1", "pod-x"));
    sb.write_inventory().expect("write");
    std::thread::sleep(Duration::from_secs(3));
    let reports = sb.agent_log().matches("inventory reload rejected").count();
    eprintln!("measured: a bad file reported {reports} time(s) in 3 s");
    assert_eq!(reports, 1);
}
