//! One owner of the pinned state: a second agent on the same pins refuses (naming the
//! owner) and the first keeps capturing; `--uninstall` refuses while an agent runs and
//! detaches everything once none does; the agent notices a missing sockmap entry (and
//! restores it) and a missing link pin (and says so in `/healthz` and the metrics).

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use graylane_tests::{AgentOptions, Sandbox, privileged, wait_for};

const WEB: Ipv4Addr = graylane_tests::WEB_VIP;

fn web_sandbox(test: &str) -> Option<Sandbox> {
    let p = privileged(test)?;
    let mut sb = Sandbox::web(&p).expect("sandbox");
    sb.start_agent(&AgentOptions::default()).expect("agent");
    Some(sb)
}

fn served(sb: &Sandbox) -> bool {
    sb.pod("client").curl(&format!("http://{WEB}/")).is_ok_and(|(code, _)| code == 200)
}

#[test]
fn a_second_agent_on_the_same_pins_refuses_and_uninstall_waits_for_the_owner() {
    let Some(mut sb) = web_sandbox("second_agent") else { return };
    let owner_pid = sb.agent().expect("agent").pid().expect("pid");

    let mut second = sb.start_another_agent(&AgentOptions::default()).expect("spawn");
    let started = Instant::now();
    while !second.exited() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the second agent kept running:\n{}",
            second.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = second.log_text();
    eprintln!("measured: second agent refused after {} ms: {}", started.elapsed().as_millis(), log.trim());
    assert!(log.contains(&format!("owned by another graylane agent (pid {owner_pid})")), "{log}");
    assert!(log.contains("--takeover"), "{log}");
    // The first agent never noticed: healthy, ready, capturing.
    assert_eq!(sb.admin().get("/healthz").expect("healthz").0, 200);
    assert_eq!(sb.admin().get("/readyz").expect("readyz").0, 200);
    assert!(served(&sb), "the owner still routes");

    let (ok, text) = sb.try_uninstall().expect("uninstall");
    assert!(!ok, "uninstall under a running agent must refuse: {text}");
    assert!(text.contains(&format!("pid {owner_pid}")) && text.contains("stop it first"), "{text}");
    assert_eq!(sb.attached().expect("bpftool").len(), 6, "still attached (one program per hook)");
    assert!(served(&sb), "still capturing after the refused uninstall");

    sb.kill_agent().expect("kill");
    sb.uninstall().expect("uninstall once no agent runs");
    assert!(!sb.pin_dir().exists());
    wait_for("programs detached", Duration::from_secs(2), || sb.attached().is_ok_and(|a| a.is_empty()));
}

#[test]
fn a_missing_sockmap_entry_is_restored_and_a_missing_link_pin_fails_the_health_check() {
    let Some(mut sb) = web_sandbox("datapath_watchdog") else { return };
    let listeners = sb.pin_dir().join("maps/LISTENERS");
    let out = std::process::Command::new("bpftool")
        .args(["map", "delete", "pinned"])
        .arg(&listeners)
        .args(["key", "0", "0", "0", "0"])
        .output()
        .expect("bpftool");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metrics = sb.metrics();
    let took = wait_for("the sockmap entry repaired", Duration::from_secs(5), || {
        metrics.metric("graylane_datapath_repairs_total", &[("what", "listener")]).is_ok_and(|v| v == 1.0)
    });
    eprintln!("measured: missing sockmap entry restored after {} ms", took.as_millis());
    assert!(served(&sb), "captured and served again");
    assert!(sb.agent_log().contains("was missing from the sockmap"), "logged");

    std::fs::remove_file(sb.pin_dir().join("links/connect4")).expect("remove a link pin");
    let admin = sb.admin();
    wait_for("healthz 503", Duration::from_secs(5), || {
        admin.get("/healthz").is_ok_and(|(code, _)| code == 503)
    });
    let (_, body) = admin.get("/healthz").expect("healthz");
    assert!(body.contains("links/connect4 is gone"), "{body}");
    assert_eq!(metrics.metric("graylane_datapath_healthy", &[]).expect("metric"), 0.0);
    let status = admin.json("/status").expect("status");
    assert!(
        status["datapath_health"]["problems"][0].as_str().is_some_and(|p| p.contains("connect4")),
        "{status}"
    );
    // This agent's open link keeps capturing meanwhile.
    assert!(served(&sb));
    // A restart pins again.
    sb.kill_agent().expect("kill");
    sb.start_agent(&AgentOptions::default()).expect("restart");
    assert_eq!(sb.admin().get("/healthz").expect("healthz").0, 200);
    assert!(sb.pin_dir().join("links/connect4").exists());
    assert!(served(&sb));
}

#[test]
fn a_draining_agent_is_not_ready_but_alive_until_its_requests_finish() {
    let Some(mut sb) = web_sandbox("draining_readyz") else { return };
    let concurrent = graylane_tests::fixture("http_concurrent.py");
    let slow = sb
        .pod("client")
        .start(
            "python3",
            &[concurrent.to_str().unwrap_or_default(), &format!("http://{WEB}/sleep/1500"), "1"],
        )
        .expect("slow");
    let admin = sb.admin();
    wait_for("the slow request in flight", Duration::from_secs(5), || {
        admin.json("/routes").is_ok_and(|r| r.to_string().contains("\"in_flight\":1"))
    });
    sb.agent().expect("agent").sigterm();
    let took =
        wait_for("readyz 503", Duration::from_secs(1), || admin.get("/readyz").is_ok_and(|(c, _)| c == 503));
    let (_, body) = admin.get("/readyz").expect("readyz");
    assert_eq!(body.trim(), "not ready: draining");
    assert_eq!(admin.get("/healthz").expect("healthz").0, 200, "alive while draining");
    let out = slow.wait_output().expect("slow");
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("result");
    eprintln!(
        "measured: readyz 503 {} ms after SIGTERM; the in-flight request: {}",
        took.as_millis(),
        result[0]
    );
    assert_eq!(result[0]["status"], 200);
}
