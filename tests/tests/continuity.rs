//! Lane continuity through a real call chain on two nodes: gateway → relay → c, where the
//! relay is a plain base app that forwards only one propagation format, and only c has a
//! gray version (on the first node). The relay runs on the same node as c, or on the other
//! node (then the lane reaches its node as a hint, or in the tracer's own headers).

use std::net::Ipv4Addr;

use graylane_tests::{AgentOptions, Cluster, Pod, PodSpec, Sandbox, ServiceSpec, fixture, privileged};
use serde_json::Value;

const C: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 50);
const RELAY: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 40);
/// Each relay style listens on its own port (8081…), service port 81….
const STYLES: [&str; 8] = ["nothing", "w3c", "baggage", "b3multi", "b3single", "sw8", "request-id", "jaeger"];

/// The chain with the relay on node `relay_node`; agents started on both nodes.
fn chain(test: &str, relay_node: usize) -> Option<Cluster> {
    let p = privileged(test)?;
    let mut cl = Cluster::new(&p).expect("cluster");
    cl.add_pod(0, PodSpec::new("gateway").label("app", "gateway")).expect("gateway");
    cl.add_pod(0, PodSpec::new("c0").label("app", "c")).expect("c0").serve_http(8080).expect("http");
    cl.add_pod(0, PodSpec::new("c1").label("app", "c").tag("gray"))
        .expect("c1")
        .serve_http(8080)
        .expect("http");
    let relay = cl.add_pod(relay_node, PodSpec::new("relay").label("app", "relay")).expect("relay");
    let script = fixture("relay.py");
    let target = format!("http://{C}:80/");
    for (i, style) in STYLES.iter().enumerate() {
        let port = (8081 + i).to_string();
        relay.spawn("python3", &[script.to_str().expect("path"), style, &port, &target]).expect("relay");
    }
    for i in 0..STYLES.len() {
        relay.wait_listening(8081 + i as u16).expect("relay listening");
    }
    cl.add_service(ServiceSpec::new("c", C).named_port(80, 8080, "http").select("app", "c"));
    let mut relay_svc = ServiceSpec::new("relay", RELAY).select("app", "relay");
    for i in 0..STYLES.len() as u16 {
        relay_svc = relay_svc.named_port(81 + i, 8081 + i, &format!("http-{i}"));
    }
    cl.add_service(relay_svc);
    cl.start_agents(&AgentOptions::default()).expect("agents");
    Some(cl)
}

/// `n` requests from the gateway through the relay's `style` port, tagged `tag` (`-`: none).
fn through(cl: &Cluster, style: &str, n: usize, tag: &str) -> Value {
    let i = STYLES.iter().position(|s| *s == style).expect("style");
    let url = format!("http://{RELAY}:{}/", 81 + i);
    let mut out = cl.nodes[0]
        .pod("gateway")
        .python_json("chain_client.py", &[&url, &n.to_string(), style, tag])
        .expect("chain client");
    out.pop().expect("output")
}

fn count(v: &Value, pod: &str) -> u64 {
    v["pods"][pod].as_u64().unwrap_or(0)
}

fn lane_lost(cl: &Cluster, node: usize) -> f64 {
    cl.nodes[node]
        .metrics()
        .count(
            "graylane_lane_escapes_total",
            &[("reason", "lane_lost"), ("source_workload", "default/relay")],
        )
        .expect("metrics")
}

fn styles_keep_the_lane(test: &str, relay_node: usize) {
    let Some(cl) = chain(test, relay_node) else { return };
    // One gray request first, not measured: the very first lane request into a relay on
    // another node can outrun its hint (UDP beside the request's TCP), and until the relay's
    // node has taken one hint it does not know the relay serves a lane (so neither looks
    // for waiting hints nor counts `lane_lost`). Every measured request below then finds
    // the relay serving gray.
    through(&cl, "nothing", 1, "gray");
    let mut table = Vec::new();
    for style in STYLES {
        let lost_before = lane_lost(&cl, relay_node);
        let gray = through(&cl, style, 20, "gray");
        let lost = lane_lost(&cl, relay_node) - lost_before;
        let base = through(&cl, style, 10, "-");
        table.push(format!(
            "{style}: gray→c1 {}/20, base→c0 {}/10, lane_lost {lost}",
            count(&gray, "c1"),
            count(&base, "c0")
        ));
        assert_eq!(gray["errors"], 0, "{style}: {gray}\n{}", cl.logs());
        assert_eq!(count(&base, "c0"), 10, "{style}: base stays base: {base}");
        if style == "nothing" {
            assert_eq!(count(&gray, "c0"), 20, "nothing to carry the lane: {gray}");
            assert_eq!(lost, 20.0, "every lost lane counted");
        } else {
            assert_eq!(count(&gray, "c1"), 20, "{style} keeps the lane: {gray}\n{}", cl.logs());
            assert_eq!(lost, 0.0, "{style}: nothing lost");
        }
    }
    eprintln!("relay on node {relay_node}:\n  {}", table.join("\n  "));
    // The relay's calls show where their lane came from.
    let flows = cl.nodes[relay_node].admin().json("/flows?pod=default/relay").expect("flows");
    let sources: Vec<&str> =
        flows.as_array().into_iter().flatten().filter_map(|f| f["tag_source"].as_str()).collect();
    assert!(sources.contains(&"trace"), "a lane recovered by trace id: {sources:?}");
}

#[test]
fn every_propagation_style_but_nothing_keeps_the_lane_with_the_relay_beside_the_callee() {
    styles_keep_the_lane("continuity_same_node", 0);
}

#[test]
fn every_propagation_style_but_nothing_keeps_the_lane_with_the_relay_on_another_node() {
    styles_keep_the_lane("continuity_across_nodes", 1);
}

#[test]
fn hints_reach_the_relays_node_before_its_call_and_forged_hints_change_nothing() {
    let Some(cl) = chain("continuity_hint_race", 1) else { return };
    // x-request-id only: nothing but the hint can bring the lane to node 1.
    let n = 1000;
    let gray = through(&cl, "request-id", n, "gray");
    let m = cl.nodes[1].metrics();
    let race = |r: &str| m.count("graylane_lane_hint_race_total", &[("result", r)]).expect("metrics");
    let (won, lost) = (race("won"), race("lost"));
    let sent =
        cl.nodes[0].metrics().count("graylane_lane_hints_total", &[("result", "sent")]).expect("metrics");
    let accepted = m.count("graylane_lane_hints_total", &[("result", "accepted")]).expect("metrics");
    eprintln!(
        "hint race over {n} requests: gray answers {}, won {won}, lost {lost}, sent {sent}, accepted {accepted}",
        count(&gray, "c1")
    );
    assert_eq!(gray["errors"], 0, "{gray}");
    assert!(won + lost >= n as f64 * 0.99, "each trace's first call is counted: won {won} lost {lost}");
    assert!(count(&gray, "c1") as f64 >= n as f64 * 0.95, "{gray}");
    assert_eq!(count(&gray, "c1") as f64, won, "every won race kept the lane");

    // Forged hints: another key, or a tag the inventory does not name. Then a real one.
    let wrong_key = cl.nodes[0].scratch().join("wrong.key");
    std::fs::write(&wrong_key, "not the cluster's key at all").expect("key");
    let node1 = format!("{}:15011", cl.nodes[1].node_ip());
    let key = cl.key_file().to_str().expect("path").to_owned();
    let send = |key: &str, id: &str, tag: &str| {
        let script = fixture("send_hint.py");
        cl.nodes[0]
            .node_exec("python3", &[script.to_str().expect("path"), &node1, key, id, tag, "default/relay"])
            .expect("send hint");
    };
    let dropped = |r: &str| m.count("graylane_lane_hints_total", &[("result", r)]).expect("metrics");
    send(wrong_key.to_str().expect("path"), "forged-1", "gray");
    send(&key, "forged-2", "blue");
    graylane_tests::wait_for("forged hints counted", std::time::Duration::from_secs(2), || {
        dropped("bad_mac") >= 1.0 && dropped("unknown_tag") >= 1.0
    });
    let relay = cl.nodes[1].pod("relay");
    let call = |id: &str| answered(relay, &format!("http://{C}/"), &[&format!("x-request-id: {id}")]);
    assert_eq!(call("forged-1"), "c0", "a hint under another key changes nothing");
    assert_eq!(call("forged-2"), "c0", "a hint with an unknown tag changes nothing");
    send(&key, "genuine-1", "gray");
    graylane_tests::wait_for("the genuine hint accepted", std::time::Duration::from_secs(2), || {
        dropped("accepted") > accepted
    });
    assert_eq!(call("genuine-1"), "c1", "the same hint under the cluster key is taken");
}

/// The pod that answered `pod`'s call to `url` (the echo's JSON `pod`; else what came).
fn answered(pod: &Pod, url: &str, headers: &[&str]) -> String {
    let mut args = vec!["-s", "-m", "5"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(url);
    let (_, out, _) = pod.run("curl", &args).expect("curl");
    serde_json::from_str::<Value>(&out).map(|v| v["pod"].as_str().unwrap_or("").to_owned()).unwrap_or(out)
}

/// One node: a pod of tenant red sends one gray request through a shared relay (it
/// forwards only `x-request-id`) carrying the id of tenant blue's requests. The relay's
/// next calls in that id, made for blue's own untagged requests, stay base: blue's request
/// into the relay overwrote the entry. The same through a relay that forwards the tracer's
/// id and the request id. (That a tracer's id outranks a request id on its own, with no
/// base request in between, is the in-process test
/// `a_stranger_cannot_lend_its_lane_to_another_callers_trace`.)
#[test]
fn a_stranger_cannot_lend_its_lane_to_another_tenants_trace() {
    let Some(p) = privileged("trace_poisoning") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("stranger").tenant("red")).expect("stranger");
    sb.add_pod(PodSpec::new("victim").tenant("blue")).expect("victim");
    sb.add_pod(PodSpec::new("c0").label("app", "c")).expect("c0").serve_http(8080).expect("http");
    sb.add_pod(PodSpec::new("c1").label("app", "c").tag("gray")).expect("c1").serve_http(8080).expect("http");
    let relay = sb.add_pod(PodSpec::new("relay").label("app", "relay")).expect("relay");
    let script = fixture("relay.py");
    let target = format!("http://{C}:80/");
    for (style, port) in [("request-id", "8081"), ("w3c-and-id", "8082")] {
        relay.spawn("python3", &[script.to_str().expect("path"), style, port, &target]).expect("relay");
    }
    relay.wait_listening(8081).expect("relay listening");
    relay.wait_listening(8082).expect("relay listening");
    sb.add_service(ServiceSpec::new("c", C).named_port(80, 8080, "http").select("app", "c"));
    sb.add_service(
        ServiceSpec::new("relay", RELAY)
            .named_port(81, 8081, "http-id")
            .named_port(82, 8082, "http-both")
            .select("app", "relay"),
    );
    sb.start_agent(&AgentOptions::default()).expect("agent");
    let by_id = format!("http://{RELAY}:81/");
    let lend = |id: &str, url: &str| {
        answered(sb.pod("stranger"), url, &["x-graylane-tag: gray", &format!("x-request-id: {id}")])
    };
    // The stranger's own call keeps its lane.
    assert_eq!(lend("order-42", &by_id), "c1");
    let victim: Vec<String> =
        (0..10).map(|_| answered(sb.pod("victim"), &by_id, &["x-request-id: order-42"])).collect();
    eprintln!("measured: the victim's 10 requests in the stranger's id went to {victim:?}");
    assert!(victim.iter().all(|p| p == "c0"), "the victim's requests left the relay in gray: {victim:?}");

    // A relay that forwards the tracer's id and the request id.
    let both = format!("http://{RELAY}:82/");
    assert_eq!(lend("order-43", &both), "c1");
    let tp = "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let victim = answered(sb.pod("victim"), &both, &[tp, "x-request-id: order-43"]);
    assert_eq!(victim, "c0", "a request id beside a tracer's id counted");
}
