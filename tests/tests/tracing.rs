//! Tracing across two hops through the proxy: each hop exports one span as OTLP/HTTP
//! protobuf, which a real receiver parses with the official OpenTelemetry definitions;
//! trace and parent ids chain hop to hop; `x-request-id` is made once and kept; the access
//! log has a line per request with the routing explanation.

use std::{net::Ipv4Addr, time::Duration};

use graylane_tests::{AgentOptions, PodSpec, Sandbox, ServiceSpec, fixture, privileged, wait_for};
use serde_json::Value;

const FRONT: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 50);
const BACK: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 51);
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

#[test]
fn spans_chain_across_two_hops_and_parse_with_the_official_protobuf_definitions() {
    let Some(p) = privileged("tracing") else { return };
    let mut sb = Sandbox::new(&p).expect("sandbox");
    sb.add_pod(PodSpec::new("client")).expect("client");
    sb.add_pod(PodSpec::new("front").label("app", "front")).expect("front").serve_http(8080).expect("http");
    let back = PodSpec::new("back-gray").label("app", "back").tag("gray");
    sb.add_pod(back).expect("back").serve_http(8080).expect("http");
    sb.add_service(ServiceSpec::new("front", FRONT).named_port(80, 8080, "http").select("app", "front"));
    sb.add_service(ServiceSpec::new("back", BACK).named_port(80, 8080, "http").select("app", "back"));
    let spans_file = sb.scratch().join("spans.jsonl");
    let access_log = sb.scratch().join("access.log");
    let receiver = fixture("otlp_receiver.py");
    sb.spawn_node("python3", &[receiver.to_str().expect("path"), "4318", spans_file.to_str().expect("path")])
        .expect("otlp receiver (opentelemetry-proto: cargo xtask setup)");
    let args = [
        "--otlp-endpoint",
        "http://127.0.0.1:4318/v1/traces",
        "--trace-sample-percent",
        "100",
        "--access-log",
        access_log.to_str().expect("path"),
    ];
    let opts =
        AgentOptions { args: args.iter().map(|s| (*s).to_owned()).collect(), ..AgentOptions::default() };
    sb.start_agent(&opts).expect("agent");

    // client → front → back, the caller already in a trace, in the gray lane.
    let url = format!("http://{FRONT}/forward/{BACK}:80/");
    let traceparent = format!("traceparent: 00-{TRACE}-{CALLER_SPAN}-01");
    let (ok, body, err) = sb
        .pod("client")
        .run("curl", &["-sS", "-m", "5", "-H", &traceparent, "-H", "x-graylane-tag: gray", &url])
        .expect("curl");
    let answer: Value = serde_json::from_str(&body).unwrap_or_default();
    assert!(ok && answer["downstream_status"] == 200, "{body} {err}");

    let mut spans: Vec<Value> = Vec::new();
    wait_for("two spans at the receiver", Duration::from_secs(10), || {
        spans = std::fs::read_to_string(&spans_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        spans.len() >= 2
    });
    let by_service = |svc: &str| {
        spans
            .iter()
            .find(|s| s["attributes"]["graylane.destination.service"] == svc)
            .unwrap_or_else(|| panic!("a span for {svc}: {spans:#?}"))
            .clone()
    };
    let (hop1, hop2) = (by_service("default/front"), by_service("default/back"));
    eprintln!("hop 1: {hop1}\nhop 2: {hop2}");
    assert_eq!(hop1["content_type"], "application/x-protobuf");
    assert_eq!((hop1["trace_id"].as_str(), hop2["trace_id"].as_str()), (Some(TRACE), Some(TRACE)));
    assert_eq!(hop1["parent_span_id"], CALLER_SPAN, "hop 1 is the caller's child");
    assert_eq!(
        hop2["parent_span_id"], hop1["span_id"],
        "hop 2 is hop 1's child (front passed traceparent on)"
    );
    assert_ne!(hop1["span_id"], hop2["span_id"]);
    assert_eq!(hop1["name"], "GET default/front");
    assert_eq!(hop2["attributes"]["graylane.subset"], "gray");
    assert_eq!(hop2["attributes"]["graylane.tag"], "gray");
    assert_eq!(hop2["attributes"]["graylane.tag_source"], "header");
    assert_eq!(hop2["attributes"]["graylane.source.pod"], "default/front");
    assert_eq!(hop1["attributes"]["http.response.status_code"], 200);
    assert_eq!(hop1["resource"]["service.name"], "graylane");
    let id = hop1["attributes"]["graylane.request_id"].as_str().expect("request id").to_owned();
    assert_eq!(id.len(), 36, "generated at the first hop");
    assert_eq!(hop2["attributes"]["graylane.request_id"], id.as_str(), "and kept by the second");
    assert!(hop1["end"].as_u64() >= hop2["end"].as_u64(), "hop 1 ends after hop 2");

    // The access log: one line per request, with the routing explanation.
    let lines: Vec<Value> = std::fs::read_to_string(&access_log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let back_line = lines.iter().find(|l| l["service"] == "default/back").expect("back line");
    assert_eq!(back_line["subset"], "gray");
    assert_eq!(back_line["subset_reason"], "lane");
    assert_eq!(back_line["request_id"], id.as_str());
    assert_eq!(back_line["trace_id"], TRACE);
    let exported = sb.metrics().metric("graylane_spans_total", &[("result", "exported")]).expect("metrics");
    assert!(exported >= 2.0, "{exported}");
}
